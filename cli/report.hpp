// The training report: one self-contained HTML file (docs/report.md) made from the per-epoch
// lines of a --log, and, when a model is given, its architecture, provenance and an evaluation on
// labelled data: loss and accuracy (or RMSE) curves, the learning rate, per-layer weight and
// gradient norms and saturated/dead fractions, a confusion-matrix heatmap with per-class
// precision, recall and F1 and the most confidently wrong images, or a predicted-versus-true
// scatter. Shared by `backprop report` and `backprop train --report`.
//
// The C++ side gathers and computes: a Report, then one JSON document of everything the page
// shows (report_json). The page is cli/report.html, a template embedded at build time
// (cli/report.cmake) with uPlot, our report.js and report.css; render_report fills its slots, and
// report.js builds the verdict, the tables and the sections from the JSON in the browser, with
// text nodes only. The file makes no network request: everything is inline and a
// Content-Security-Policy forbids any fetch. Text from outside (class names, column names, file
// names, the command line) is only ever data: inside the JSON, < > & are \u escapes, so it
// cannot end the script element, and report.js never parses it as markup; in the page's title
// it is HTML-escaped.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backprop/backprop.hpp"
#include "backprop/model_file.hpp"

namespace backprop::cli {

// A --log file's text: one JSON object per line (blank lines skipped), each with an integer
// "epoch"; every other member a number, null, true/false or, for "layers", an array of objects.
// Throws Error(kFormat) naming `name`, the line and what is wrong; Error(kData) for no epochs.
std::vector<nlohmann::json> parse_log(std::string_view text, const std::string& name);

// One of the most confidently wrong examples: row of the evaluated data, its true and predicted
// class, the predicted class's output, and its pixels (sample_shape h×w, 0..255) for images.
struct WrongExample {
  Index row = 0;
  Index truth = 0, predicted = 0;
  double confidence = 0;
  std::vector<std::uint8_t> pixels;
};

// Everything a report shows, gathered; report_json turns it into the page's data.
struct Report {
  std::vector<nlohmann::json> epochs;  // the log lines, in order
  std::string log_name;                // where they came from
  std::string command_line;            // the command that made the run (or the report)
  Task task = Task::kClassify;         // from the model, else from the log's keys

  bool has_model = false;
  std::string model_name;  // the model file, or "" when not saved
  ModelSpec spec;
  ModelInfo info;

  // The model's evaluation on labelled data (has_model only).
  bool evaluated = false;
  std::string eval_name;    // "test" or "validation"
  std::string eval_source;  // the data file
  Evaluation eval;
  std::vector<WrongExample> wrong;  // classify, most confident first; pixels for 2-D samples
  Index image_height = 0, image_width = 0;
  // regress: per target (at most kMaxScatterTargets), up to kMaxScatterPoints (truth, predicted).
  std::vector<std::string> target_names;
  std::vector<std::vector<std::pair<float, float>>> scatter;
};

inline constexpr std::size_t kMaxWrongExamples = 24;
inline constexpr std::size_t kMaxScatterTargets = 4;
inline constexpr std::size_t kMaxScatterPoints = 2000;

// What a report is made from: the log lines, and optionally the model with labelled data.
struct ReportInput {
  std::vector<nlohmann::json> epochs;
  std::string log_name, command_line;
  Model* model = nullptr;  // forward passes need a mutable workspace
  const ModelInfo* info = nullptr;
  std::string model_name;
  const Dataset* data = nullptr;  // labelled, aligned to the model's classes
  std::span<const Index> rows;    // rows of data to evaluate (all when empty)
  std::string data_name;          // "test" or "validation"
  Preprocess pre;                 // the model's preprocessing
};

// Evaluates the model (if any) and gathers the wrong examples or the scatter.
Report make_report(const ReportInput& in);

// The one-line verdict at the top, and the warnings under it (dead or saturated layers,
// non-finite values, skipped batches, a rising training loss).
std::string report_verdict(const Report& r);
std::vector<std::string> report_warnings(const Report& r);

// The page's data, read by report.js (cli/report.js says what it makes of each member):
//   verdict {text, warn}   the verdict line; warn: overfitting or any warning
//   warnings [text]        report_warnings
//   summary [{name, text | code | final}]   the header table's rows; code: the command line;
//                          final: {metric, rows: [{set, loss, metric}], note?} (the final figures)
//   eval_name              "test", "validation", or "" when the model was not evaluated
//   charts [{section, id, title, xlabel, ylabel, log, x, series: [{label, color, values, dash,
//           points}]}]     section "curves", "layers" or "scatter"; null values are gaps
//   classes {names, confusion: K×K counts [true][predicted], per_class: [{class, support,
//           precision, recall, f1}]}   (an evaluated classification only)
//   wrong {width, height, examples: [{row, truth, predicted, output, output_rounded, pixels?}]}
//                          (likewise; pixels: base64 grayscale, height×width, for images)
// Every figure is the text the page shows ("87.47%", "n/a"); only the confusion counts are
// numbers, which the page shades by their share of the row.
nlohmann::json report_json(const Report& r);

// One slot of a page template: `{{name}}` in the page becomes `text`, as it is (the caller
// escapes it for where it goes).
struct Slot {
  std::string_view name;
  std::string text;
};

// The page with its slots filled, in one pass: a slot's text is never read for slots itself.
// Every slot the page names must be given, and every slot given must be in the page.
std::string fill_slots(std::string_view page, const std::vector<Slot>& slots);

// The complete HTML document: cli/report.html filled with the assets and report_json(r).
std::string render_report(const Report& r);

// make_report + render_report, written atomically to `path`.
void write_report(const std::string& path, const ReportInput& in);

// train --report: the report of the run that just ended, from its epochs (as --log writes them),
// the final model, and the test data if any, else the validation rows of the training data.
void write_train_report(const std::string& path, const std::vector<nlohmann::json>& epochs,
                        Model& model, const ModelInfo& info, const std::string& model_name,
                        const Dataset& train_data, std::span<const Index> val_rows,
                        const Dataset* test, const Preprocess& pre);

// This process's command line (/proc/self/cmdline), each argument quoted for a POSIX shell when
// it needs it; "" when it cannot be read.
std::string current_command_line();

// One argument as a POSIX shell reads it back: as it is when plain, else in single quotes.
std::string shell_quote(std::string_view arg);

// Text for HTML element content and attribute values: & < > " ' as entities.
std::string html_escape(std::string_view text);

// JSON text safe inside <script>: <, > and & as \u escapes, and U+2028/2029 too.
std::string script_json(const nlohmann::json& j);

namespace detail {
// The embedded page and assets (generated by cli/report.cmake).
std::string_view report_chart_version();
std::string_view report_asset_page_html();
std::string_view report_asset_chart_js();
std::string_view report_asset_chart_css();
std::string_view report_asset_chart_licence();
std::string_view report_asset_report_js();
std::string_view report_asset_report_css();
}  // namespace detail

}  // namespace backprop::cli
