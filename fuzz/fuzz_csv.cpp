// F3 (RELIABILITY.md B.1): CSV text through parse_csv, the function load_csv (and so the CLI)
// runs on a file's bytes. The first two bytes choose the options, so every mode of the reader is
// reached: header auto/yes/no, classify or regress, labels required or not (predict), label
// columns by index, negative index or name, a model's classes and feature names (eval, predict),
// min_rows, and small max_line_bytes / max_classes caps. The rest is the file.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t a = data[0], b = data[1];
  const Bytes text(data + 2, size - 2);

  CsvOptions o;
  o.header = (a & 3) == 1 ? HeaderMode::kYes : (a & 3) == 2 ? HeaderMode::kNo : HeaderMode::kAuto;
  o.task = (a >> 2) & 1 ? Task::kRegress : Task::kClassify;
  o.labels_required = ((a >> 3) & 1) == 0;
  static const std::vector<std::vector<std::string>> kLabelColumns = {
      {}, {"0"}, {"-1"}, {"label"}, {"a", "b"}, {"1", "-1"}, {"99"}, {"x0"}};
  o.label_columns = kLabelColumns[(a >> 4) & 7];
  if (b & 1) o.class_names = {"0", "1", "x"};
  if (b & 2) o.feature_names = {"a", "b"};
  if (b & 4) o.feature_names = {"x0", "x1", "x2"};
  if (b & 8) o.min_rows = 2;
  if (b & 64) o.default_label_columns = {"label"};
  ReadLimits limits;
  if (b & 16) limits.max_line_bytes = 64;
  if (b & 32) limits.max_classes = 3;

  Dataset ds;
  if (!accepts([&] { ds = parse_csv(text, "fuzz.csv", o, limits); })) return 0;
  check(ds.n >= o.min_rows && ds.n >= 1, "fewer rows than min_rows");
  check(ds.n_features >= 1, "no features");
  check(ds.x_f32.size() == static_cast<std::size_t>(ds.n * ds.n_features),
        "feature array is not n x features");
  check(ds.feature_names.size() == static_cast<std::size_t>(ds.n_features),
        "one feature name per feature");
  for (float v : ds.x_f32) check(std::isfinite(v), "a non-finite feature was accepted");
  if (!o.labels_required) {
    check(!ds.has_labels(), "labels read when none were asked for");
  } else if (o.task == Task::kRegress) {
    check(ds.targets.size() == static_cast<std::size_t>(ds.n * ds.n_targets()),
          "target array is not n x targets");
    for (float v : ds.targets) check(std::isfinite(v), "a non-finite target was accepted");
  } else {
    check(ds.labels.size() == static_cast<std::size_t>(ds.n), "label count is not n");
    check(ds.class_names.size() <= limits.max_classes || !o.class_names.empty(),
          "more classes than max_classes");
    for (std::int32_t l : ds.labels) {
      check(l >= 0 && static_cast<std::size_t>(l) < ds.class_names.size(), "label out of range");
    }
  }
  return 0;
}
