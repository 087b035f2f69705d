// The report in a real browser: short real training runs write reports (train --report, and
// backprop report from the log and model), Debian's Chromium loads them headless through
// playwright-core (tests/report/browser_check.js) and the test checks what report.js built and a
// reader would see: no console error, no dialog, no request besides the file itself, the verdict
// (its class agreeing with its text) and the warnings, the summary table's rows and final
// figures, every chart drawn with its series, the confusion matrix, the per-class table, the grid
// or table of wrong examples, the predicted-vs-true scatter, and markup in class names, a column
// name and a file name shown as text. Screenshots are kept under the build folder
// (tests/report_artifacts/). A control page that does log an error, open an alert and make a
// request proves the listeners work. Chromium, Node.js and playwright-core are set-up dependencies:
// when one is missing the test fails and says to run scripts/setup.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_util.hpp"

namespace backprop::cli_test {
namespace {

using nlohmann::json;

const std::string kCli = BACKPROP_CLI;
const std::string kScript = std::string(BACKPROP_SOURCE_DIR) + "/tests/report/browser_check.js";
const std::string kModules = BACKPROP_REPORT_MODULES;
const std::filesystem::path kArtifacts = BACKPROP_REPORT_ARTIFACTS;

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = dirs.find(':', start);
    const std::string dir = dirs.substr(start, colon == std::string::npos ? colon : colon - start);
    const std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (colon == std::string::npos) return {};
    start = colon + 1;
  }
}

// 8×8 "images" of three classes: class c lights rows 2c..2c+1, on noise. A tenth of the test
// labels are flipped, so the model is sure to be confidently wrong about some.
constexpr int kSide = 8, kClasses = 3;
void write_images(const TempDir& dir, const std::string& prefix, int n, std::uint32_t seed,
                  bool flip_some) {
  Gaussian g(seed);
  Bytes pixels, labels;
  for (int i = 0; i < n; ++i) {
    const int c = i % kClasses;
    for (int y = 0; y < kSide; ++y) {
      for (int x = 0; x < kSide; ++x) {
        double v = 40 + 25 * g() + (y / 2 == c + 1 ? 150 : 0);
        pixels.push_back(static_cast<std::uint8_t>(std::max(0.0, std::min(255.0, v))));
      }
    }
    labels.push_back(static_cast<std::uint8_t>(flip_some && i % 10 == 9 ? (c + 1) % kClasses : c));
  }
  const auto un = static_cast<std::uint32_t>(n);
  dir.write(prefix + "-images-idx3-ubyte", idx_bytes(0x08, {un, kSide, kSide}, pixels));
  dir.write(prefix + "-labels-idx1-ubyte", idx_bytes(0x08, {un}, labels));
}

// y = x1 + 2·x2 − x3 + noise; the target's column name holds markup.
const std::string kTargetName = "y</script><b>bold</b>";
std::string regression_csv(int n, std::uint32_t seed) {
  Gaussian g(seed);
  std::string text = "x1,x2,x3," + kTargetName + "\n";
  for (int i = 0; i < n; ++i) {
    const double a = g(), b = g(), c = g();
    text += std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(c) + "," +
            std::to_string(a + 2 * b - c + 0.1 * g()) + "\n";
  }
  return text;
}

RunResult run_ok(const std::vector<std::string>& args, const TempDir& dir) {
  RunResult r = run_process(kCli, args, dir.path());
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  return r;
}

// Runs browser_check.js on the pages; one result object per page.
json browse(const std::vector<json>& jobs, const TempDir& dir) {
  const std::string node = find_program("node");
  const std::string chromium = find_program("chromium");
  if (node.empty()) throw std::runtime_error("node is not on PATH: run scripts/setup");
  if (chromium.empty()) throw std::runtime_error("chromium is not on PATH: run scripts/setup");
  if (!std::filesystem::exists(kModules + "/playwright-core/package.json")) {
    throw std::runtime_error(kModules + "/playwright-core is missing: run scripts/setup");
  }
  write_text(dir / "jobs.json", json(jobs).dump());
  RunOptions o;
  o.timeout = std::chrono::seconds(180);
  RunResult r = run_process(node, {kScript, kModules, chromium, dir / "jobs.json"}, dir.path(), o);
  if (!r.exited || r.exit_code != 0) throw std::runtime_error("browser_check.js: " + r.describe());
  return json::parse(r.out);
}

// Control page: an error on the console, an alert, and a request to a closed port on this
// machine.
json control_job(const TempDir& dir) {
  write_text(dir / "control.html",
             "<!DOCTYPE html><html><body><script>console.error('control');alert('control')"
             "</script><img src=\"http://127.0.0.1:9/control.png\"></body></html>");
  return {{"html", dir / "control.html"}, {"ready", false}};
}

void expect_control_caught(const json& c) {
  EXPECT_FALSE(c["consoleErrors"].empty()) << "the console listener saw nothing";
  EXPECT_FALSE(c["requests"].empty()) << "the request listener saw nothing";
  EXPECT_EQ(c["dialogs"], json({"control"})) << "the dialog listener saw nothing";
  EXPECT_EQ(c["images"], 1);
}

const json& chart(const json& page, const std::string& id) {
  for (const json& c : page["charts"]) {
    if (c["id"] == "chart-" + id) return c;
  }
  throw std::runtime_error("no chart " + id + " in the page");
}

// Every chart: a canvas painted by uPlot, a legend row per series (plus the x row), the number
// of series and epochs the C++ side put in, and series colours among the pixels.
void expect_chart(const json& page, const std::string& id, int series, int points) {
  SCOPED_TRACE("chart " + id);
  const json& c = chart(page, id);
  EXPECT_TRUE(c["canvas"].get<bool>());
  EXPECT_EQ(c["series"], series);
  EXPECT_EQ(c["drawnSeries"], series);
  EXPECT_EQ(c["legendRows"], series + 1);
  EXPECT_EQ(c["points"], points);
  EXPECT_GT(c["painted"].get<int>(), 2000);
  int coloured = 0;
  for (const json& n : c["seriesPixels"]) coloured += n.get<int>();
  EXPECT_GT(coloured, 30) << c.dump();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A page report.js finished: nothing logged, opened or fetched, our three scripts only, no
// image element (wrong examples are canvases), and the verdict line consistent with the
// warnings under it: "warn" for overfitting or any warning, else "good".
void expect_clean(const json& page) {
  EXPECT_TRUE(page["ready"].get<bool>()) << "report.js did not finish";
  EXPECT_TRUE(page["consoleErrors"].empty()) << page["consoleErrors"].dump();
  EXPECT_TRUE(page["dialogs"].empty()) << page["dialogs"].dump();
  EXPECT_TRUE(page["requests"].empty()) << page["requests"].dump();
  EXPECT_EQ(page["scriptElements"], 3);
  EXPECT_EQ(page["images"], 0);
  const std::string verdict = page["verdict"];
  const std::size_t n_warnings = page["warnings"].size();
  if (n_warnings == 0) {
    EXPECT_FALSE(contains(verdict, "below")) << verdict;
  } else {
    EXPECT_TRUE(contains(verdict, " · " + std::to_string(n_warnings) +
                                      (n_warnings == 1 ? " warning below" : " warnings below")))
        << verdict;
  }
  const bool worry = contains(verdict, ": overfitting") || contains(verdict, ": mild overfitting");
  EXPECT_EQ(page["verdictClass"], worry || n_warnings > 0 ? "warn" : "good") << verdict;
}

const std::vector<std::string> kEvaluatedRows = {"Network",      "Task",         "Command",
                                                 "Model file",   "Provenance",   "Log",
                                                 "Evaluated on", "Final figures"};

TEST(ReportBrowser, ClassificationReportOfARealRunDrawsEveryPlotOffline) {
  TempDir dir;
  write_images(dir, "train", 300, 1, false);
  write_images(dir, "t10k", 90, 2, true);
  const std::string log = dir / "run.jsonl", model = dir / "model.safetensors";
  const std::string report = dir / "report.html", again = dir / "again.html";
  const int epochs = 4;
  RunResult t = run_ok({"train",        "--data",    dir.path().string(),
                        "--hidden",     "12,6",      "--activation",
                        "relu",         "--epochs",  std::to_string(epochs),
                        "--val-split",  "0.2",       "--eval-test-each-epoch",
                        "--batch-size", "16",        "--lr",
                        "0.05",         "--threads", "1",
                        "--quiet",      "--log",     log,
                        "--save",       model,       "--report",
                        report},
                       dir);
  EXPECT_NE(t.out.find("report " + report), std::string::npos) << t.out;
  run_ok(
      {"report", "--log", log, "--model", model, "--data", dir.path().string(), "--output", again},
      dir);
  std::filesystem::create_directories(kArtifacts);
  const json pages =
      browse({{{"html", report}, {"screenshot", (kArtifacts / "classify.png").string()}},
              {{"html", again}, {"screenshot", (kArtifacts / "classify-again.png").string()}},
              control_job(dir)},
             dir);
  ASSERT_EQ(pages.size(), 3u);
  expect_control_caught(pages[2]);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i == 0 ? "train --report" : "backprop report");
    const json& p = pages[i];
    expect_clean(p);
    // train, validation and test curves; learning rate; three layers' norms (and the global
    // gradient norm); dead fractions of the two ReLU layers.
    expect_chart(p, "loss", 3, epochs);
    expect_chart(p, "metric", 3, epochs);
    expect_chart(p, "lr", 1, epochs);
    expect_chart(p, "weight-norm", 3, epochs);
    expect_chart(p, "grad-norm", 4, epochs);
    expect_chart(p, "health", 2, epochs);
    for (int k = 0; k < 3; ++k) {
      EXPECT_GT(chart(p, "loss")["seriesPixels"][k].get<int>(), 0) << "loss series " << k;
    }
    EXPECT_EQ(p["confusionCells"], kClasses * kClasses);
    EXPECT_EQ(p["confusionShaded"], kClasses * kClasses);
    EXPECT_EQ(p["confusionTotal"], 90);
    EXPECT_EQ(p["perClassRows"], kClasses);
    EXPECT_EQ(p["summaryRows"], json(kEvaluatedRows));
    EXPECT_EQ(p["sections"], json({"curves", "layers", "classes", "wrong"}));
    EXPECT_EQ(p["confusionHeads"], json({"0", "1", "2"}));
    for (int k = 0; k < kClasses; ++k) {
      EXPECT_EQ(p["perClass"][k][0], std::to_string(k));
      EXPECT_TRUE(contains(p["perClass"][k][4].get<std::string>(), "%")) << p["perClass"][k];
    }
    // The last epoch of training (running), validation and test, then the final model.
    ASSERT_EQ(p["finalRows"].size(), 4u) << p["finalRows"];
    EXPECT_EQ(p["finalRows"][0][0], "training (epoch 4, running)");
    EXPECT_EQ(p["finalRows"][3][0], "test (final model)");
    // At least the nine flipped labels are wrong; each image drawn, not blank.
    ASSERT_GE(p["wrong"].size(), 9u);
    for (const json& w : p["wrong"]) {
      EXPECT_EQ(w["width"], kSide);
      EXPECT_EQ(w["opaque"], kSide * kSide);
      EXPECT_GT(w["distinct"].get<int>(), 10);
      EXPECT_NE(w["caption"].get<std::string>().find("predicted"), std::string::npos);
    }
    const std::string verdict = p["verdict"];
    EXPECT_EQ(verdict.rfind("Test accuracy ", 0), 0u) << verdict;
    EXPECT_NE(verdict.find("after 4 epochs"), std::string::npos) << verdict;
    EXPECT_NE(p["text"].get<std::string>().find("64-12-6-3 · relu hidden"), std::string::npos);
  }
  EXPECT_NE(pages[0]["text"].get<std::string>().find("--report"), std::string::npos);
  EXPECT_NE(pages[1]["text"].get<std::string>().find("backprop report --log"), std::string::npos);
  EXPECT_TRUE(std::filesystem::file_size(kArtifacts / "classify.png") > 10000);
}

TEST(ReportBrowser, RegressionReportShowsTheScatterAndMarkupAsText) {
  TempDir dir;
  write_text(dir / "train.csv", regression_csv(240, 3));
  write_text(dir / "test.csv", regression_csv(80, 4));
  const std::string report = dir / "report.html";
  const int epochs = 3;
  run_ok({"train",
          "--train",
          dir / "train.csv",
          "--test",
          dir / "test.csv",
          "--task",
          "regress",
          "--hidden",
          "8",
          "--activation",
          "tanh",
          "--epochs",
          std::to_string(epochs),
          "--val-split",
          "0.25",
          "--batch-size",
          "8",
          "--lr",
          "0.05",
          "--threads",
          "1",
          "--quiet",
          "--no-save",
          "--report",
          report},
         dir);
  std::filesystem::create_directories(kArtifacts);
  const json pages = browse(
      {{{"html", report}, {"screenshot", (kArtifacts / "regress.png").string()}}, control_job(dir)},
      dir);
  ASSERT_EQ(pages.size(), 2u);
  expect_control_caught(pages[1]);
  const json& p = pages[0];
  expect_clean(p);
  // The test set is measured at the last epoch only (no --eval-test-each-epoch): one point.
  expect_chart(p, "loss", 3, epochs);
  expect_chart(p, "metric", 3, epochs);
  expect_chart(p, "lr", 1, epochs);
  expect_chart(p, "weight-norm", 2, epochs);
  expect_chart(p, "grad-norm", 3, epochs);
  expect_chart(p, "health", 1, epochs);
  // Predicted against true for the 80 test rows, and the ideal line; both visible.
  expect_chart(p, "scatter-0", 2, 80);
  EXPECT_GT(chart(p, "scatter-0")["seriesPixels"][0].get<int>(), 80);
  EXPECT_GT(chart(p, "scatter-0")["seriesPixels"][1].get<int>(), 0);
  EXPECT_EQ(p["confusionCells"], 0);
  EXPECT_TRUE(p["wrong"].empty());
  // The column name's markup is text on the page, not elements.
  EXPECT_EQ(p["boldOutsideWrongGrid"], 0);
  EXPECT_NE(p["text"].get<std::string>().find("Predicted vs true: " + kTargetName),
            std::string::npos);
  EXPECT_EQ(p["verdict"].get<std::string>().rfind("Test RMSE ", 0), 0u) << p["verdict"];
  EXPECT_EQ(p["sections"], json({"curves", "layers", "scatter"}));
  EXPECT_EQ(p["summaryRows"], json(kEvaluatedRows));  // the model file "(not saved)"
  EXPECT_EQ(p["finalRows"].size(), 4u) << p["finalRows"];
  EXPECT_EQ(p["finalNote"].get<std::string>().rfind("MAE ", 0), 0u) << p["finalNote"];
  EXPECT_TRUE(contains(p["finalNote"].get<std::string>(), " · R² ")) << p["finalNote"];
}

// Three classes named with markup, in a CSV: two features, class c around angle 120°·c, a tenth
// of the test labels moved to the next class.
const std::vector<std::string> kClassNames = {"</script><script>alert(1)</script>", "<b>bold</b>",
                                              "<img src=x onerror=alert(2)>"};
std::string named_classes_csv(int n, std::uint32_t seed, bool flip_some) {
  Gaussian g(seed);
  std::string text = "x1,x2,label\n";
  for (int i = 0; i < n; ++i) {
    const int c = i % 3;
    const double angle = 2.0943951 * c;
    const int label = flip_some && i % 10 == 9 ? (c + 1) % 3 : c;
    text += std::to_string(2 * std::cos(angle) + 0.5 * g()) + "," +
            std::to_string(2 * std::sin(angle) + 0.5 * g()) + "," +
            kClassNames[static_cast<std::size_t>(label)] + "\n";
  }
  return text;
}

TEST(ReportBrowser, ClassNamesAndFileNamesWithMarkupAreShownAsText) {
  TempDir dir;
  write_text(dir / "train.csv", named_classes_csv(300, 5, false));
  write_text(dir / "test.csv", named_classes_csv(90, 6, true));
  const std::string report = dir / "r<b>x.html";
  run_ok({"train", "--train", dir / "train.csv", "--test", dir / "test.csv", "--hidden", "8",
          "--epochs", "3", "--batch-size", "16", "--lr", "0.1", "--threads", "1", "--quiet",
          "--no-save", "--report", report},
         dir);
  std::filesystem::create_directories(kArtifacts);
  const json pages = browse(
      {{{"html", report}, {"screenshot", (kArtifacts / "named.png").string()}}, control_job(dir)},
      dir);
  ASSERT_EQ(pages.size(), 2u);
  expect_control_caught(pages[1]);
  const json& p = pages[0];
  expect_clean(p);
  // Classes in byte order, each shown as its text: in the matrix, the per-class table and the
  // table of wrong examples (the samples are not images).
  EXPECT_EQ(p["confusionHeads"], json(kClassNames));
  EXPECT_EQ(p["confusionCells"], 9);
  EXPECT_EQ(p["confusionTotal"], 90);
  ASSERT_EQ(p["perClass"].size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(p["perClass"][k][0], kClassNames[k]);
  EXPECT_EQ(p["sections"], json({"curves", "layers", "classes", "wrong"}));
  EXPECT_TRUE(p["wrong"].empty());
  ASSERT_GE(p["wrongTable"].size(), 9u);
  for (const json& w : p["wrongTable"]) {
    EXPECT_NE(std::find(kClassNames.begin(), kClassNames.end(), w[1]), kClassNames.end()) << w;
    EXPECT_NE(std::find(kClassNames.begin(), kClassNames.end(), w[2]), kClassNames.end()) << w;
    EXPECT_TRUE(contains(w[3].get<std::string>(), "%")) << w;
  }
  EXPECT_EQ(p["boldOutsideWrongGrid"], 0);
  // The report's file name, in the command line, is text too.
  EXPECT_TRUE(contains(p["text"].get<std::string>(), "r<b>x.html")) << p["text"];
  EXPECT_EQ(p["verdict"].get<std::string>().rfind("Test accuracy ", 0), 0u) << p["verdict"];
}

}  // namespace
}  // namespace backprop::cli_test
