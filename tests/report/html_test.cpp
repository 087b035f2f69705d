// The report's C++ side (cli/report.cpp) without a browser: the page's JSON holds every text as
// it is shown; text from outside (class names, column names, the command line, file names)
// survives as data inside the JSON, and nowhere else in the page but the escaped title, so it
// cannot end an element or add one; the page template's slots are filled once each, never from
// a slot's own text; NaN and infinities become gaps and "n/a", never invalid JSON; the log reader
// names the bad line; the verdict names the final figure, the best epoch, overfitting and
// unhealthy layers; the most confidently wrong examples are found in order.
// tests/report/browser_test.cpp loads real reports in Chromium and checks what report.js builds.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backprop/backprop.hpp"
#include "report.hpp"

namespace backprop::cli {
namespace {

using nlohmann::json;

const std::string kEvil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>";

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
    ++n;
  return n;
}

// The page split at its data: the JSON text inside #report-data, and everything else.
struct Page {
  std::string data, outside;
};

Page split_page(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-data\">";
  const std::size_t begin = html.find(open);
  EXPECT_NE(begin, std::string::npos);
  if (begin == std::string::npos) return {"", html};
  const std::size_t start = begin + open.size();
  const std::size_t end = html.find("</script>", start);
  return {html.substr(start, end - start), html.substr(0, start) + html.substr(end)};
}

// The JSON the page's script reads, parsed back.
json report_data(const std::string& html) {
  return json::parse(split_page(html).data);
}

// The row of the summary table named `name`.
const json& summary_row(const json& data, const std::string& name) {
  for (const json& row : data["summary"]) {
    if (row["name"] == name) return row;
  }
  throw std::runtime_error("no summary row " + name);
}

json epoch(int e, double train_loss, double train_acc, double val_loss, double val_acc) {
  return {{"epoch", e},
          {"train_loss", train_loss},
          {"train_accuracy", train_acc},
          {"val_loss", val_loss},
          {"val_accuracy", val_acc},
          {"learning_rate", 0.1},
          {"seconds", 1.5},
          {"samples_per_second", 1000},
          {"grad_norm", 0.5},
          {"layers",
           json::array({{{"layer", 1}, {"weight_norm", 3.0}, {"grad_norm", 0.4}, {"dead", 0.0}},
                        {{"layer", 2}, {"weight_norm", 1.0}, {"grad_norm", 0.2}}})}};
}

// A classification report with an evaluation, as make_report would leave it.
Report classify_report(std::vector<std::string> classes) {
  Report r;
  r.epochs = {epoch(1, 1.0, 0.6, 0.9, 0.65), epoch(2, 0.7, 0.75, 0.8, 0.74)};
  r.log_name = "run.jsonl";
  r.command_line = "backprop train --report 'a\"b' " + kEvil;
  r.has_model = true;
  r.model_name = "m<1>.safetensors";
  r.spec.layers = {4, 3, static_cast<Index>(classes.size())};
  r.spec.hidden = Activation::kRelu;
  r.info.class_names = std::move(classes);
  r.info.version = "0.1.0";
  r.info.data_hash = "abc";
  r.evaluated = true;
  r.eval_name = "test";
  r.eval_source = kEvil;
  r.eval.n_classes = static_cast<Index>(r.info.class_names.size());
  r.eval.confusion.assign(r.info.class_names.size() * r.info.class_names.size(), 0);
  r.eval.confusion[0] = 5;
  r.eval.confusion[1] = 2;
  r.eval.confusion.back() = 4;
  r.eval.metrics = {11, 0.5, 9.0 / 11, NAN};
  r.wrong = {{3, 0, 1, 0.9, {0, 255, 128, 7}}};
  r.image_height = 2;
  r.image_width = 2;
  return r;
}

TEST(ReportHtml, ClassNamesCommandLineAndFileNamesStayDataInsideTheJson) {
  const Report r = classify_report({kEvil, "a\"b'c&d"});
  const std::string html = render_report(r);
  // Exactly our three script elements open and close: the data, uPlot, ours.
  EXPECT_EQ(count(html, "</script>"), 3u);
  EXPECT_EQ(count(html, "<script"), 3u);
  // The outside text is nowhere in the page as it is: inside the JSON, < > & are \u escapes.
  EXPECT_EQ(html.find(kEvil), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("a\"b'c&d"), std::string::npos);
  EXPECT_EQ(html.find("m<1>"), std::string::npos);
  // Outside the JSON only the title holds any of it, escaped.
  const Page page = split_page(html);
  EXPECT_EQ(page.outside.find("alert("), std::string::npos);
  EXPECT_EQ(page.outside.find("a&quot;b"), std::string::npos);
  EXPECT_NE(page.outside.find("<title>backprop report: m&lt;1&gt;.safetensors</title>"),
            std::string::npos);
  EXPECT_NE(page.data.find("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"), std::string::npos);
  // Inside, the same text reads back as data, wherever the page shows it.
  const json data = json::parse(page.data);
  EXPECT_EQ(data["classes"]["names"], json({kEvil, "a\"b'c&d"}));
  EXPECT_EQ(data["classes"]["per_class"][0]["class"], kEvil);
  EXPECT_EQ(data["classes"]["per_class"][1]["class"], "a\"b'c&d");
  EXPECT_EQ(data["wrong"]["examples"][0]["truth"], kEvil);
  EXPECT_EQ(data["wrong"]["examples"][0]["predicted"], "a\"b'c&d");
  EXPECT_EQ(summary_row(data, "Command")["code"], r.command_line);
  EXPECT_EQ(summary_row(data, "Model file")["text"], "m<1>.safetensors");
  EXPECT_EQ(summary_row(data, "Evaluated on")["text"], "test: " + kEvil + ", 11 examples");
  // The K×K counts, and the wrong image's pixels (base64 of 0, 255, 128, 7) and size.
  EXPECT_EQ(data["classes"]["confusion"], json::parse("[[5, 2], [0, 4]]"));
  EXPECT_EQ(data["wrong"]["width"], 2);
  EXPECT_EQ(data["wrong"]["height"], 2);
  EXPECT_EQ(data["wrong"]["examples"][0]["pixels"], "AP+ABw==");
}

TEST(ReportPage, SlotNamesInOutsideTextAreShownNotFilled) {
  Report r = classify_report({"a", "b"});
  r.model_name = "{{report_js}}{{data}}";
  const std::string html = render_report(r);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<title>backprop report: {{report_js}}{{data}}</title>"), std::string::npos);
  EXPECT_EQ(count(html, "<script"), 3u);
  EXPECT_EQ(count(html, "id=\"report-data\""), 1u);
  EXPECT_EQ(report_data(html)["summary"][3]["text"], "{{report_js}}{{data}}");
}

TEST(FillSlots, FillsEverySlotInOnePassAndRefusesUnknownOrUnusedOnes) {
  EXPECT_EQ(fill_slots("a{{x}}b{{y}}{{x}}", {{"x", "{{y}}"}, {"y", "Y"}}), "a{{y}}bY{{y}}");
  EXPECT_EQ(fill_slots("plain", {}), "plain");
  EXPECT_DEATH(fill_slots("a{{z}}", {{"x", "1"}}), "slot != slots.end");
  EXPECT_DEATH(fill_slots("a{{x}}", {{"x", "1"}, {"y", "2"}}), "used");
  EXPECT_DEATH(fill_slots("a{{x", {{"x", "1"}}), "close");
}

TEST(ReportJson, SummaryFinalFiguresAndPerClassFiguresAreTheTextShown) {
  const json data = report_json(classify_report({"a", "b"}));
  std::vector<std::string> names;
  for (const json& row : data["summary"]) names.push_back(row["name"]);
  EXPECT_EQ(names,
            (std::vector<std::string>{"Network", "Task", "Command", "Model file", "Provenance",
                                      "Log", "Evaluated on", "Final figures"}));
  EXPECT_EQ(summary_row(data, "Task")["text"], "classification, 2 classes");
  EXPECT_EQ(summary_row(data, "Log")["text"],
            "run.jsonl: 2 epochs, 3.0 s of training, 1,000 samples/s");
  const json& final = summary_row(data, "Final figures")["final"];
  EXPECT_EQ(final["metric"], "accuracy");
  EXPECT_EQ(final["rows"], json::parse(R"json([
    {"set": "training (epoch 2, running)", "loss": "0.7000", "metric": "75.00%"},
    {"set": "validation (epoch 2)", "loss": "0.8000", "metric": "74.00%"},
    {"set": "test (final model)", "loss": "0.5000", "metric": "81.82%"}])json"));
  EXPECT_FALSE(final.contains("note"));
  // Confusion [[5, 2], [0, 4]]: every a predicted is right, 5 of 7 found;
  // b: 4 of 6 predicted right, all 4 found.
  EXPECT_EQ(data["classes"]["per_class"], json::parse(R"json([
    {"class": "a", "support": "7", "precision": "100.0%", "recall": "71.4%", "f1": "83.3%"},
    {"class": "b", "support": "4", "precision": "66.7%", "recall": "100.0%", "f1": "80.0%"}])json"));
  EXPECT_EQ(data["eval_name"], "test");
  EXPECT_EQ(data["wrong"]["examples"][0]["output"], "90.0%");
  EXPECT_EQ(data["wrong"]["examples"][0]["output_rounded"], "90%");
  // Each chart in its section, in the page's order.
  std::vector<std::string> sections;
  for (const json& c : data["charts"])
    sections.push_back(c["section"].get<std::string>() + " " + c["id"].get<std::string>());
  EXPECT_EQ(sections,
            (std::vector<std::string>{"curves loss", "curves metric", "curves lr",
                                      "layers weight-norm", "layers grad-norm", "layers health"}));
}

TEST(ReportHtml, TextInsideTheScriptDataIsEscapedAndReadsBackTheSame) {
  Report r;
  r.task = Task::kRegress;
  r.epochs = {{{"epoch", 1}, {"train_loss", 2.0}, {"train_rmse", 1.4}}};
  r.log_name = "log";
  r.has_model = true;
  r.spec.layers = {2, 1};
  r.spec.output = Activation::kIdentity;
  r.info.task = Task::kRegress;
  r.evaluated = true;
  r.eval_name = "test";
  r.target_names = {kEvil + "\xE2\x80\xA8"};
  r.scatter = {{{1.0f, 1.5f}, {0.0f, -0.5f}, {NAN, 2.0f}}};
  const std::string html = render_report(r);
  EXPECT_EQ(count(html, "</script>"), 3u);
  // U+2028 is harmless in HTML text but written as \u2028 inside the script.
  const std::size_t data_at = html.find("id=\"report-data\"");
  EXPECT_EQ(html.find("\xE2\x80\xA8", data_at), std::string::npos);
  EXPECT_NE(html.find("\\u2028", data_at), std::string::npos);
  const json data = report_data(html);
  const json* scatter = nullptr;
  for (const json& c : data["charts"]) {
    if (c["id"] == "scatter-0") scatter = &c;
  }
  ASSERT_NE(scatter, nullptr);
  EXPECT_EQ((*scatter)["title"], "Predicted vs true: " + kEvil + "\xE2\x80\xA8");
  // Sorted by the true value, NaN kept as a gap (null), predicted and the ideal line.
  ASSERT_EQ((*scatter)["series"].size(), 2u);
  EXPECT_EQ((*scatter)["x"].size(), 3u);
  EXPECT_EQ((*scatter)["x"][0], 0.0);
  EXPECT_EQ((*scatter)["series"][0]["values"][0], -0.5);
  EXPECT_EQ((*scatter)["section"], "scatter");
  EXPECT_FALSE(data.contains("classes"));
  EXPECT_FALSE(data.contains("wrong"));
}

TEST(ReportHtml, NonFiniteNumbersBecomeGapsAndNotAvailable) {
  Report r;
  json a = epoch(1, 1.0, 0.5, 1.0, 0.5);
  json b = epoch(2, NAN, INFINITY, -INFINITY, NAN);
  b["grad_norm"] = INFINITY;
  b["learning_rate"] = NAN;
  b["layers"][0] = {{"layer", 1}, {"weight_norm", NAN}, {"grad_norm", -INFINITY}, {"dead", NAN}};
  b["layers"][1] = {{"layer", 2}, {"weight_norm", nullptr}, {"grad_norm", NAN}};
  b["train_loss"] = nullptr;
  r.epochs = {a, b};
  r.log_name = "log";
  const std::string text = split_page(render_report(r)).data;
  EXPECT_EQ(text.find("NaN"), std::string::npos);
  EXPECT_EQ(text.find("Infinity"), std::string::npos);
  const json data = json::parse(text);
  for (const json& c : data["charts"]) {
    for (const json& s : c["series"]) {
      ASSERT_EQ(s["values"].size(), 2u) << c["id"];
      EXPECT_TRUE(s["values"][1].is_null()) << c["id"] << " " << s["label"];
    }
  }
  const json& last_train = summary_row(data, "Final figures")["final"]["rows"][0];
  EXPECT_EQ(last_train["loss"], "n/a");
  EXPECT_EQ(last_train["metric"], "n/a");
  EXPECT_NE(report_verdict(r).find("Validation accuracy n/a"), std::string::npos)
      << report_verdict(r);
  const auto warnings = report_warnings(r);
  ASSERT_FALSE(warnings.empty());
  EXPECT_EQ(warnings[0], "The training loss was not finite in epoch 2");
}

TEST(ParseLog, ReadsTheTrainLogAndNamesTheLineOfAnyError) {
  const auto epochs = parse_log(
      "{\"epoch\":1,\"train_loss\":0.5,\"val_loss\":null,\"best\":true,\"layers\":[{\"layer\":1,"
      "\"weight_norm\":2,\"dead\":0.1}]}\n\n{\"epoch\":2,\"train_loss\":0.4}\n",
      "run.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[1]["train_loss"], 0.4);

  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"{\"epoch\":1}\nnot json\n", "run.jsonl:2: expected one JSON object per line"},
      {"[1,2]\n", "run.jsonl:1: expected one JSON object per line"},
      {"{\"train_loss\":1}\n", "run.jsonl:1: expected an integer \"epoch\" >= 1"},
      {"{\"epoch\":0}\n", "run.jsonl:1: expected an integer \"epoch\" >= 1"},
      {"{\"epoch\":2}\n{\"epoch\":2}\n", "run.jsonl:2: epoch 2 does not follow epoch 2"},
      {"{\"epoch\":1,\"train_loss\":\"x\"}\n", "run.jsonl:1: \"train_loss\" is not a number"},
      {"{\"epoch\":1,\"layers\":[{\"dead\":\"x\"}]}\n", "layer value \"dead\" is not a number"},
  };
  for (const Case& c : cases) {
    try {
      parse_log(c.text, "run.jsonl");
      ADD_FAILURE() << "accepted " << c.text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << c.text;
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  try {
    parse_log("\n \n", "empty.jsonl");
    ADD_FAILURE() << "accepted an empty log";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kData);
    EXPECT_STREQ(e.what(), "empty.jsonl: holds no epochs");
  }
}

TEST(ReportVerdict, NamesTheFinalFigureTheBestEpochOverfittingAndUnhealthyLayers) {
  Report r = classify_report({"a", "b"});
  // Train accuracy climbs to 99%, validation peaks at epoch 2 and its loss rises after.
  r.epochs = {epoch(1, 0.9, 0.70, 0.60, 0.80), epoch(2, 0.4, 0.90, 0.40, 0.86),
              epoch(3, 0.1, 0.99, 0.55, 0.85)};
  r.epochs[2]["layers"][0]["dead"] = 0.5;
  const std::string v = report_verdict(r);
  EXPECT_EQ(v,
            "Test accuracy 81.82% after 3 epochs · best epoch 2 of 3 (lowest validation loss) · "
            "train−validation gap 14.0 points: overfitting (validation loss rising since epoch 2) "
            "· 1 warning below");
  const auto w = report_warnings(r);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "Layer 1: 50% of its ReLU units are dead (never active on the probe batch)");
  EXPECT_EQ(report_json(r)["verdict"], json({{"text", v}, {"warn", true}}));
  EXPECT_EQ(report_json(r)["warnings"], json(w));

  // A healthy run; early stopping's mark wins over the lowest loss.
  Report g = classify_report({"a", "b"});
  g.evaluated = false;
  g.epochs = {epoch(1, 0.9, 0.80, 0.60, 0.80), epoch(2, 0.5, 0.85, 0.50, 0.845)};
  g.epochs[0]["best"] = true;
  EXPECT_EQ(report_verdict(g),
            "Validation accuracy 84.50% after 2 epochs · best epoch 1 of 2 (kept by early "
            "stopping) · train−validation gap 0.5 points: no sign of overfitting");
  EXPECT_TRUE(report_warnings(g).empty());
  EXPECT_EQ(report_json(g)["verdict"]["warn"], false);
  EXPECT_EQ(report_json(g)["warnings"], json::array());
}

TEST(MakeReport, FindsTheMostConfidentlyWrongExamplesAndTheirPixels) {
  // 2 inputs → 2 classes, softmax(x): the predicted class is the larger input.
  ModelSpec spec;
  spec.layers = {2, 2};
  spec.output = Activation::kSoftmax;
  Model model(spec);
  model.weight(0).row(0)[0] = 1;
  model.weight(0).row(1)[1] = 1;
  ModelInfo info;
  info.class_names = {"left", "right"};
  info.sample_shape = {1, 2};
  Dataset ds;
  ds.n = 5;
  ds.n_features = 2;
  ds.sample_shape = {1, 2};
  ds.class_names = info.class_names;
  ds.label_columns = {"label"};
  ds.source = "five";
  // Rows 1, 3 and 4 are wrong, with margins 1, 3 and 2.
  ds.x_f32 = {2, 0, 1, 2, 0, 5, 3, 0, 2, 0};
  ds.labels = {0, 0, 1, 1, 1};
  ReportInput in;
  in.epochs = {epoch(1, 1.0, 0.5, 1.0, 0.5)};
  in.epochs[0]["layers"] = json::array({{{"layer", 1}, {"weight_norm", 1.0}}});
  in.model = &model;
  in.info = &info;
  in.data = &ds;
  in.data_name = "test";
  in.pre.shift = {0, 0};
  in.pre.scale = {1, 1};
  const Report r = make_report(in);
  ASSERT_TRUE(r.evaluated);
  EXPECT_EQ(r.eval.metrics.n, 5);
  EXPECT_EQ(r.eval.confusion, (std::vector<std::int64_t>{1, 1, 2, 1}));
  ASSERT_EQ(r.wrong.size(), 3u);
  EXPECT_EQ(r.wrong[0].row, 3);
  EXPECT_EQ(r.wrong[1].row, 4);
  EXPECT_EQ(r.wrong[2].row, 1);
  EXPECT_NEAR(r.wrong[0].confidence, 1 / (1 + std::exp(-3.0)), 1e-6);
  EXPECT_EQ(r.wrong[0].truth, 1);
  EXPECT_EQ(r.wrong[0].predicted, 0);
  // Float pixels are stretched from the image's minimum to its maximum.
  EXPECT_EQ(r.wrong[0].pixels, (std::vector<std::uint8_t>{255, 0}));
  EXPECT_EQ(r.image_width, 2);
  EXPECT_EQ(r.image_height, 1);

  // A log from a network of another depth is refused.
  in.epochs[0]["layers"].push_back({{"layer", 3}});
  EXPECT_THROW(make_report(in), Error);
}

TEST(CommandLine, QuotesWhatTheShellWouldSplitOrExpand) {
  EXPECT_EQ(shell_quote("--hidden=256,128"), "--hidden=256,128");
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
  // This test binary's name, without its directory.
  const std::string line = current_command_line();
  EXPECT_EQ(line.rfind("report_html_test", 0), 0u) << line;
}

}  // namespace
}  // namespace backprop::cli
