#include "common.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "backprop/fit.hpp"
#include "io/printable.hpp"

namespace backprop::cli {

ReadLimits DataFlags::limits() const {
  ReadLimits l;
  l.max_input_bytes = max_input_bytes;
  return l;
}

CsvOptions DataFlags::csv_options() const {
  CsvOptions o;
  o.header = header ? HeaderMode::kYes : no_header ? HeaderMode::kNo : HeaderMode::kAuto;
  o.task = task == "regress" ? Task::kRegress : Task::kClassify;
  o.label_columns = split_list(label_column);
  return o;
}

std::string escape_controls(std::string_view text, std::size_t max_bytes) {
  return detail::escape_controls(text, max_bytes);
}

namespace {

// A flag value as a message may show it: quoted, cut, control bytes escaped.
std::string in_quotes(const std::string& s) {
  constexpr std::size_t kMaxEcho = 200;
  return "'" + escape_controls(s, kMaxEcho) + "'";
}

bool parse_double(const std::string& s, double& v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size() && std::isfinite(v);
}

template <class T>
bool parse_integer(const std::string& s, T& v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (parse_double(s, v) && v > 0) return {};
        return "expected a number > 0, found " + in_quotes(s);
      },
      "> 0");
}

CLI::Validator number_range(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        double v = 0;
        if (parse_double(s, v) && v >= lo && v <= hi) return {};
        char buf[96];
        std::snprintf(buf, sizeof buf, "expected a number from %g to %g, found ", lo, hi);
        return buf + in_quotes(s);
      },
      "");
}

CLI::Validator integer_range(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        long long v = 0;
        if (parse_integer(s, v) && v >= lo && v <= hi) return {};
        return "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
               ", found " + in_quotes(s);
      },
      "");
}

CLI::Validator unsigned_range(std::uint64_t lo, std::uint64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        std::uint64_t v = 0;
        if (parse_integer(s, v) && v >= lo && v <= hi) return {};
        return "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
               ", found " + in_quotes(s);
      },
      "");
}

void parse_spec_flags(ModelSpec& spec, const std::string& activation, const std::string& output,
                      const std::string& loss) {
  parse_spec_names(spec, activation, output, loss,
                   {.activation = "--activation", .output = "--output", .loss = "--loss"});
}

void add_csv_flags(CLI::App* cmd, DataFlags& f, bool with_task) {
  auto* h = cmd->add_flag("--header", f.header, "CSV: the first row is a header");
  auto* nh = cmd->add_flag("--no-header", f.no_header, "CSV: the first row is data");
  h->excludes(nh);
  cmd->add_option("--label-column", f.label_column,
                  "CSV: label column(s) by header name or 0-based index (negative from the end); "
                  "regression takes a comma list (default: the last column)");
  if (with_task) {
    cmd->add_option("--task", f.task, "classify (labels are classes) or regress (numeric targets)")
        ->check(CLI::IsMember({"classify", "regress"}));
  }
  cmd->add_option("--max-input-bytes", f.max_input_bytes,
                  "refuse any input file that is, or decompresses to, more bytes")
      ->check(unsigned_range(1, std::uint64_t{1} << 50));
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    out.push_back(
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<Index> parse_width_list(const std::string& flag, const std::string& text) {
  std::vector<Index> out;
  std::vector<std::string> items = split_list(text);
  if (items.empty()) throw Error(ErrorCode::kUsage, flag + ": expected a comma list of widths");
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string& s = items[i];
    long long v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 1 || v > (1 << 24)) {
      throw Error(ErrorCode::kUsage, flag + " " + in_quotes(text) + ": item " +
                                         std::to_string(i + 1) + " is " + in_quotes(s) +
                                         ", expected a width from 1 to 16777216");
    }
    out.push_back(static_cast<Index>(v));
  }
  return out;
}

namespace {

// True when the file starts like IDX (00 00) or gzip (1F 8B), or holds a NUL byte in its first
// four bytes: CSV is text, so such a file is binary and the IDX loader, which says what is wrong
// with its magic, reports it. Anything unreadable or not a regular file returns false, and the
// CSV loader then reports it properly.
bool looks_like_idx(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  unsigned char b[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  bool idx = false;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    ssize_t got = ::read(fd, b, sizeof b);
    if (got >= 2) {
      idx = (b[0] == 0 && b[1] == 0) || (b[0] == 0x1F && b[1] == 0x8B);
      for (ssize_t i = 0; i < got; ++i) idx = idx || b[i] == 0;
    }
  }
  ::close(fd);
  return idx;
}

// True when the file starts with the .npy magic 93 'NUMPY' (a NumPy array saved by np.save).
bool looks_like_npy(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  unsigned char b[6] = {};
  bool npy = false;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    npy = ::read(fd, b, sizeof b) == static_cast<ssize_t>(sizeof b) &&
          std::memcmp(b, "\x93NUMPY", sizeof b) == 0;
  }
  ::close(fd);
  return npy;
}

// Label columns when they are header names (data read without a header names them
// "column N", which no header holds).
std::vector<std::string> header_label_columns(const std::vector<std::string>& columns) {
  for (const std::string& c : columns) {
    if (c.rfind("column ", 0) == 0) return {};
  }
  return columns;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// DIR/name, or DIR/name.gz; empty when neither exists.
std::string find_in_dir(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {dir + "/" + name, dir + "/" + name + ".gz"}) {
    if (exists(candidate)) return candidate;
  }
  return {};
}

std::string require_in_dir(const std::string& dir, const std::string& name) {
  std::string p = find_in_dir(dir, name);
  if (p.empty()) {
    throw Error(ErrorCode::kIo, dir + ": has neither " + name + " nor " + name + ".gz");
  }
  return p;
}

void check_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kIo, dir +
                                    ": not a directory (--data expects the folder holding "
                                    "train-images-idx3-ubyte[.gz] and friends)");
  }
}

// One data file: IDX images or a NumPy array with labels, or CSV.
Dataset load_one(const std::string& flag, const std::string& path, const std::string& labels_flag,
                 const std::string& labels, const DataFlags& f, const CsvOptions& csv,
                 std::vector<std::string>& inputs, Shard shard = {}) {
  inputs.push_back(path);
  if (looks_like_npy(path)) {
    if (labels.empty()) {
      throw Error(ErrorCode::kUsage, flag + " " + path +
                                         " is a NumPy array: give its labels with " + labels_flag +
                                         " FILE (.npy)");
    }
    inputs.push_back(labels);
    return load_npy(path, labels, csv.task, f.limits(), shard);
  }
  // A labels file says the data is IDX, whatever its first bytes (a broken magic must be
  // reported by the IDX loader, not read as CSV).
  if (!labels.empty() || looks_like_idx(path)) {
    if (labels.empty()) {
      throw Error(ErrorCode::kUsage, flag + " " + path + " is an IDX file: give its labels with " +
                                         labels_flag + " FILE");
    }
    inputs.push_back(labels);
    return load_idx(path, labels, f.limits(), shard);
  }
  Dataset ds = load_csv(path, csv, f.limits());
  keep_shard(ds, shard);
  return ds;
}

}  // namespace

void align_classes(Dataset& ds, const std::vector<std::string>& classes) {
  if (ds.class_names == classes) return;
  std::map<std::string, std::int32_t> index;
  for (std::size_t i = 0; i < classes.size(); ++i) index[classes[i]] = static_cast<std::int32_t>(i);
  std::vector<std::int32_t> remap(ds.class_names.size(), -1);
  for (std::size_t c = 0; c < ds.class_names.size(); ++c) {
    auto it = index.find(ds.class_names[c]);
    if (it != index.end()) remap[c] = it->second;
  }
  for (std::size_t i = 0; i < ds.labels.size(); ++i) {
    std::int32_t to = remap[static_cast<std::size_t>(ds.labels[i])];
    if (to < 0) {
      throw Error(ErrorCode::kData, ds.labels_source + ": label " +
                                        std::to_string(static_cast<std::size_t>(ds.first_row) + i) +
                                        " (0-based) is class '" +
                                        ds.class_names[static_cast<std::size_t>(ds.labels[i])] +
                                        "', which the model never saw (it knows " +
                                        std::to_string(classes.size()) + " classes)");
    }
    ds.labels[i] = to;
  }
  ds.class_names = classes;
}

namespace {

// .npy labels are class indices: label v is the model's class v, whatever its name (a PyTorch
// model's classes may be words). Arrays trained here have classes "0", "1", ..., so this agrees
// with align_classes for them.
void align_class_indices(Dataset& ds, const std::vector<std::string>& classes) {
  for (std::size_t i = 0; i < ds.labels.size(); ++i) {
    if (static_cast<std::size_t>(ds.labels[i]) >= classes.size()) {
      throw Error(ErrorCode::kData, ds.labels_source + ": label " +
                                        std::to_string(static_cast<std::size_t>(ds.first_row) + i) +
                                        " (0-based) is class index " +
                                        std::to_string(ds.labels[i]) + ", but the model has " +
                                        std::to_string(classes.size()) + " classes (0.." +
                                        std::to_string(classes.size() - 1) + ")");
    }
  }
  ds.class_names = classes;
}

void align_labels(Dataset& ds, const std::vector<std::string>& classes) {
  if (ds.format == DataFormat::kNpy) {
    align_class_indices(ds, classes);
  } else {
    align_classes(ds, classes);
  }
}

}  // namespace

TrainingData load_training_data(const DataFlags& f, Shard shard) {
  TrainingData out;
  if (!f.data_dir.empty() && !f.train.empty()) {
    throw Error(ErrorCode::kUsage, "give either --data DIR or --train FILE, not both");
  }
  if (f.train.empty() && !f.labels.empty()) {
    throw Error(ErrorCode::kUsage, "--labels goes with --train (IDX images or a .npy array)");
  }
  if (f.test.empty() && !f.test_labels.empty()) {
    throw Error(ErrorCode::kUsage, "--test-labels goes with --test (IDX images or a .npy array)");
  }
  CsvOptions csv = f.csv_options();
  if (!f.train.empty()) {
    csv.min_rows = 2;
    out.train = load_one("--train", f.train, "--labels", f.labels, f, csv, out.inputs, shard);
  } else {
    std::string dir = f.data_dir.empty() ? kDefaultDataDir : f.data_dir;
    if (f.data_dir.empty() && !exists(dir)) {
      throw Error(ErrorCode::kUsage,
                  "no --data or --train given, and Fashion-MNIST is not installed at " + dir +
                      " (apt-get install dataset-fashion-mnist)");
    }
    check_dir(dir);
    std::string images = require_in_dir(dir, "train-images-idx3-ubyte");
    std::string labels = require_in_dir(dir, "train-labels-idx1-ubyte");
    out.inputs = {images, labels};
    out.train = load_idx(images, labels, f.limits(), shard);
    std::string ti = find_in_dir(dir, "t10k-images-idx3-ubyte");
    std::string tl = find_in_dir(dir, "t10k-labels-idx1-ubyte");
    if (!ti.empty() && !tl.empty()) {
      out.inputs.push_back(ti);
      out.inputs.push_back(tl);
      out.test = load_idx(ti, tl, f.limits(), shard);
    }
  }
  if (out.train.whole_rows() < 2) {
    throw Error(ErrorCode::kData, out.train.source + ": " + std::to_string(out.train.whole_rows()) +
                                      " example(s); training needs at least 2");
  }
  if (!f.test.empty()) {
    CsvOptions tcsv = csv;
    tcsv.task = out.train.task;
    tcsv.class_names = out.train.class_names;
    tcsv.feature_names = out.train.feature_names;
    if (out.train.format == DataFormat::kCsv && f.label_column.empty()) {
      tcsv.default_label_columns = header_label_columns(out.train.label_columns);
    }
    out.test =
        load_one("--test", f.test, "--test-labels", f.test_labels, f, tcsv, out.inputs, shard);
  }
  if (out.test) {
    if (out.test->n_features != out.train.n_features) {
      throw Error(ErrorCode::kData,
                  out.test->source + ": has " + std::to_string(out.test->n_features) +
                      " features, the training data " + std::to_string(out.train.n_features));
    }
    // Images of another shape with the same pixel count (2 x 8 for 4 x 4) are another data set.
    if (out.test->format == DataFormat::kIdx && out.train.format == DataFormat::kIdx &&
        out.test->sample_shape != out.train.sample_shape) {
      auto text = [](const std::vector<Index>& shape) {
        std::string s;
        for (Index d : shape) s += (s.empty() ? "" : " x ") + std::to_string(d);
        return s;
      };
      throw Error(ErrorCode::kData, out.test->source + ": holds samples of " +
                                        text(out.test->sample_shape) + ", the training data " +
                                        text(out.train.sample_shape));
    }
    if (out.train.task == Task::kClassify) align_labels(*out.test, out.train.class_names);
  }
  return out;
}

Dataset load_eval_data(const DataFlags& f, const ModelInfo& info) {
  if (!f.data_dir.empty() && !f.test.empty()) {
    throw Error(ErrorCode::kUsage, "give either --data DIR or --test FILE, not both");
  }
  if (f.data_dir.empty() && f.test.empty()) {
    throw Error(ErrorCode::kUsage, "eval needs data: --data DIR or --test FILE");
  }
  if (f.test.empty() && !f.test_labels.empty()) {
    throw Error(ErrorCode::kUsage, "--test-labels goes with --test (IDX images or a .npy array)");
  }
  Dataset ds;
  if (!f.data_dir.empty()) {
    check_dir(f.data_dir);
    ds = load_idx(require_in_dir(f.data_dir, "t10k-images-idx3-ubyte"),
                  require_in_dir(f.data_dir, "t10k-labels-idx1-ubyte"), f.limits());
  } else {
    CsvOptions csv = f.csv_options();
    csv.task = info.task;
    csv.feature_names = info.feature_names;
    if (info.task == Task::kClassify) csv.class_names = info.class_names;
    csv.default_label_columns = header_label_columns(info.label_columns);
    std::vector<std::string> inputs;
    ds = load_one("--test", f.test, "--test-labels", f.test_labels, f, csv, inputs);
  }
  if (ds.task != info.task) {
    throw Error(ErrorCode::kData, ds.source + ": holds " +
                                      (ds.task == Task::kClassify ? "class labels" : "targets") +
                                      ", but the model was trained to " +
                                      (info.task == Task::kClassify ? "classify" : "regress"));
  }
  if (ds.n_features != static_cast<Index>(info.feature_names.size())) {
    throw Error(ErrorCode::kData, ds.source + ": has " + std::to_string(ds.n_features) +
                                      " features, the model expects " +
                                      std::to_string(info.feature_names.size()));
  }
  if (ds.task == Task::kClassify) align_labels(ds, info.class_names);
  return ds;
}

Dataset load_predict_data(const std::string& path, const DataFlags& f, const ModelInfo& info) {
  Dataset ds;
  if (looks_like_npy(path)) {
    ds = load_npy_features(path, f.limits());
  } else if (looks_like_idx(path)) {
    ds = load_idx_images(path, f.limits());
  } else {
    CsvOptions csv = f.csv_options();
    csv.task = info.task;
    csv.labels_required = false;
    csv.feature_names = info.feature_names;
    ds = load_csv(path, csv, f.limits());
  }
  if (ds.n_features != static_cast<Index>(info.feature_names.size())) {
    throw Error(ErrorCode::kData, ds.source + ": has " + std::to_string(ds.n_features) +
                                      " features, the model expects " +
                                      std::to_string(info.feature_names.size()));
  }
  return ds;
}

void check_output_path(const std::string& flag, const std::string& path,
                       const std::vector<std::string>& inputs) {
  if (path.empty() || path == "-") return;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kUsage, flag + " " + path + ": is a directory, expected a file path");
  }
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kUsage, flag + " " + path + ": directory " + dir + " does not exist");
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw Error(ErrorCode::kUsage, flag + " " + path + ": directory " + dir + " is not writable");
  }
  for (const std::string& in : inputs) {
    struct stat a {
    }, b{};
    if (in == path || (::stat(in.c_str(), &a) == 0 && ::stat(path.c_str(), &b) == 0 &&
                       a.st_dev == b.st_dev && a.st_ino == b.st_ino)) {
      throw Error(ErrorCode::kUsage, flag + " " + path + ": is also an input file");
    }
  }
}

std::string format_float(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  BACKPROP_ASSERT(ec == std::errc());
  return std::string(buf, end);
}

std::string format_fixed(double v, int decimals) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string format_percent(double fraction) {
  if (std::isnan(fraction)) return "-";
  return format_fixed(100.0 * fraction, 2) + "%";
}

std::string format_thousands(double v) {
  std::string digits = std::to_string(static_cast<long long>(std::llround(v)));
  std::string out;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (n > 0 && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

std::string format_layers(const std::vector<Index>& widths) {
  std::string out;
  for (std::size_t i = 0; i < widths.size(); ++i) {
    if (i > 0) out += '-';
    out += std::to_string(widths[i]);
  }
  return out;
}

void write_output(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return;
  }
  write_file_atomic(path, std::span<const std::uint8_t>(
                              reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

ProgressBar::ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1) {}

void ProgressBar::update(const Progress& p) {
  if (!enabled_) return;
  if (p.seconds < last_) last_ = -1;  // a new epoch restarted the clock
  if (p.done < p.total && p.seconds - last_ < 0.1) return;
  last_ = p.seconds;
  constexpr int kWidth = 30;
  double frac = p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1.0;
  int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(kWidth - filled), '.');
  double eta = frac > 0 ? p.seconds * (1.0 - frac) / frac : 0.0;
  std::fprintf(stderr, "\r\033[K  epoch %d/%d [%s] %3d%%  %lld/%lld  eta %.1fs", p.epoch, p.epochs,
               bar.c_str(), static_cast<int>(frac * 100), static_cast<long long>(p.done),
               static_cast<long long>(p.total), eta);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::clear() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
  last_ = -1;
}

}  // namespace backprop::cli
