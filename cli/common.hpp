// Pieces the subcommands share: the data flags and loaders, output-path pre-flight checks,
// number formatting and the terminal progress bar. The CLI is a thin shell over the library:
// nothing here does math.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backprop/backprop.hpp"
#include "backprop/model_file.hpp"

namespace backprop::cli {

inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

// Flags that say where data comes from and how to read it.
struct DataFlags {
  std::string data_dir;       // --data DIR: the four standard IDX files
  std::string train, labels;  // --train FILE [--labels FILE] (IDX images need labels)
  std::string test, test_labels;
  bool header = false, no_header = false;
  std::string label_column;  // --label-column NAME|INDEX[,...]
  std::string task = "classify";
  std::uint64_t max_input_bytes = ReadLimits{}.max_input_bytes;

  ReadLimits limits() const;
  CsvOptions csv_options() const;
};

// Validators with one-line messages that say what was expected and what was found.
CLI::Validator positive_number();                                   // finite and > 0
CLI::Validator number_range(double lo, double hi);                  // finite, lo <= v <= hi
CLI::Validator integer_range(long long lo, long long hi);           // an integer, lo..hi
CLI::Validator unsigned_range(std::uint64_t lo, std::uint64_t hi);  // a non-negative integer

// `text` with every control byte (< 0x20, 0x7F) written as \xNN, cut after max_bytes ("..."), so
// that a value echoed in an error stays one printable line (RELIABILITY.md A.78).
std::string escape_controls(std::string_view text, std::size_t max_bytes = SIZE_MAX);

// Runs f(); an Error(kUsage) it throws is rethrown with "flag: " in front, and control bytes of
// the echoed value escaped.
template <class F>
auto for_flag(const std::string& flag, F f) {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUsage) throw;
    throw Error(ErrorCode::kUsage, flag + ": " + escape_controls(e.what()));
  }
}

// --activation, --output and --loss into spec; each error names its flag (Error(kUsage)).
void parse_spec_flags(ModelSpec& spec, const std::string& activation, const std::string& output,
                      const std::string& loss);

// Registers --header/--no-header, --label-column, --max-input-bytes (and --task when asked).
void add_csv_flags(CLI::App* cmd, DataFlags& f, bool with_task);

struct TrainingData {
  Dataset train;
  std::optional<Dataset> test;
  std::vector<std::string> inputs;  // every file read, for the pre-flight "output is an input"
};

// --data DIR, or --train/--labels[/--test/--test-labels], or Fashion-MNIST from its Debian path.
// With a shard (train --shard-data), only that part of the training and test rows is kept: an
// uncompressed IDX images file or a .npy features file is read only there; others are read
// whole and the rest dropped.
TrainingData load_training_data(const DataFlags& f, Shard shard = {});

// Labelled data for an existing model (eval): --data DIR uses the t10k files, or --test FILE
// [--test-labels FILE]. Features are picked by the model's names (CSV with a header) and labels
// mapped onto the model's classes.
Dataset load_eval_data(const DataFlags& f, const ModelInfo& info);

// Unlabelled features for predict: IDX images or CSV rows.
Dataset load_predict_data(const std::string& path, const DataFlags& f, const ModelInfo& info);

// Relabels ds onto `classes` (by name); a class the model never saw is Error(kData).
void align_classes(Dataset& ds, const std::vector<std::string>& classes);

// Before any data is read: the output's directory exists, the output is not a directory, and it
// is not one of the inputs. Throws Error(kUsage) naming the flag.
void check_output_path(const std::string& flag, const std::string& path,
                       const std::vector<std::string>& inputs);

// "784,100,10" -> {784, 100, 10}; throws Error(kUsage) naming the flag and the bad item.
std::vector<Index> parse_width_list(const std::string& flag, const std::string& text);
std::vector<std::string> split_list(const std::string& text);

// Shortest text that reads back to the same float (std::to_chars).
std::string format_float(float v);
std::string format_fixed(double v, int decimals);
std::string format_percent(double fraction);                  // "87.12%"
std::string format_thousands(double v);                       // "25,123"
std::string format_layers(const std::vector<Index>& widths);  // "784-100-10"

// Writes `text` to `path` atomically, or to stdout when path is empty or "-".
void write_output(const std::string& path, const std::string& text);

// A progress bar on stderr, drawn only when stderr is a terminal, at most every 100 ms.
class ProgressBar {
 public:
  ProgressBar();
  void update(const Progress& p);
  void clear();  // erase the bar before a line is printed

 private:
  bool enabled_;
  double last_ = -1;
  bool drawn_ = false;
};

}  // namespace backprop::cli
