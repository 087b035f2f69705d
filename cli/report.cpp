// backprop report, and the report module train --report shares (report.hpp): gather the figures,
// judge the run in one line, and write them out as one self-contained HTML file.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>

#include "backprop/version.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace backprop::cli {

namespace {

using nlohmann::json;

// A hidden layer with at least this fraction of its units dead or saturated is named in the
// warnings: past a quarter, a layer has lost a good part of its width.
constexpr double kWarnFraction = 0.25;
// Overfitting thresholds on the last epoch: classification in accuracy points (train − held
// out), regression as the ratio of held-out to training RMSE.
constexpr double kMildGapPoints = 2, kOverfitGapPoints = 5;
constexpr double kMildRmseRatio = 1.1, kOverfitRmseRatio = 1.3;
// The held-out loss counts as rising when its last value is this much above its minimum.
constexpr double kRisingLoss = 1.02;

// The palette of the charts (train, validation, test first; then per layer).
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr std::size_t kNColors = sizeof kColors / sizeof kColors[0];

// A member as a finite number, if it is one.
std::optional<double> number(const json& j, const std::string& key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

bool has_key(const std::vector<json>& epochs, const std::string& key) {
  for (const json& e : epochs) {
    if (e.contains(key)) return true;
  }
  return false;
}

// The value per epoch as JSON (null where missing or not finite), scaled.
json column(const std::vector<json>& epochs, const std::string& key, double scale = 1) {
  json out = json::array();
  for (const json& e : epochs) {
    std::optional<double> v = number(e, key);
    out.push_back(v ? json(*v * scale) : json(nullptr));
  }
  return out;
}

std::size_t layer_count(const std::vector<json>& epochs) {
  std::size_t n = 0;
  for (const json& e : epochs) {
    auto it = e.find("layers");
    if (it != e.end() && it->is_array()) n = std::max(n, it->size());
  }
  return n;
}

json layer_column(const std::vector<json>& epochs, std::size_t layer, const std::string& key,
                  double scale = 1) {
  json out = json::array();
  for (const json& e : epochs) {
    std::optional<double> v;
    auto it = e.find("layers");
    if (it != e.end() && it->is_array() && layer < it->size()) v = number((*it)[layer], key);
    out.push_back(v ? json(*v * scale) : json(nullptr));
  }
  return out;
}

bool layer_has(const std::vector<json>& epochs, std::size_t layer, const std::string& key) {
  for (const json& e : epochs) {
    auto it = e.find("layers");
    if (it != e.end() && it->is_array() && layer < it->size() && (*it)[layer].contains(key)) {
      return true;
    }
  }
  return false;
}

std::string fmt(double v, int decimals) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string pct(double fraction, int decimals = 2) {
  if (!std::isfinite(fraction)) return "n/a";
  return fmt(100 * fraction, decimals) + "%";
}

std::string fmt_g(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

const char* metric_key(Task task) {
  return task == Task::kClassify ? "accuracy" : "rmse";
}

int epoch_of(const json& e) {
  return e.at("epoch").get<int>();
}

// The held-out set the log measured each epoch: "val", else "test", else "".
std::string held_out(const std::vector<json>& epochs) {
  if (has_key(epochs, "val_loss")) return "val";
  if (has_key(epochs, "test_loss")) return "test";
  return "";
}

std::string set_name(const std::string& prefix) {
  return prefix == "val" ? "validation" : prefix == "test" ? "test" : "training";
}

struct BestEpoch {
  int epoch = 0;  // 0: none
  std::string why;
};

BestEpoch best_epoch(const std::vector<json>& epochs) {
  BestEpoch b;
  for (const json& e : epochs) {
    auto it = e.find("best");
    if (it != e.end() && it->is_boolean() && it->get<bool>()) {
      b = {epoch_of(e), "kept by early stopping"};
    }
  }
  if (b.epoch > 0) return b;
  const std::string h = held_out(epochs);
  if (h.empty()) return b;
  double lowest = INFINITY;
  for (const json& e : epochs) {
    std::optional<double> v = number(e, h + "_loss");
    if (v && *v < lowest) {
      lowest = *v;
      b = {epoch_of(e), "lowest " + set_name(h) + " loss"};
    }
  }
  return b;
}

// "no sign of overfitting", "mild overfitting" or "overfitting", with the figures behind it;
// empty when the log has no held-out set. `worry` is set for the latter two.
std::string overfitting(const Report& r, bool& worry) {
  const std::string h = held_out(r.epochs);
  if (h.empty()) return "";
  const json& last = r.epochs.back();
  std::string out;
  int level = 0;
  if (r.task == Task::kClassify) {
    std::optional<double> tr = number(last, "train_accuracy"), ho = number(last, h + "_accuracy");
    if (!tr || !ho) return "";
    const double gap = 100 * (*tr - *ho);
    level = gap >= kOverfitGapPoints ? 2 : gap >= kMildGapPoints ? 1 : 0;
    out = "train−" + set_name(h) + " gap " + fmt(gap, 1) + " points";
  } else {
    std::optional<double> tr = number(last, "train_rmse"), ho = number(last, h + "_rmse");
    if (!tr || !ho || *tr <= 0) return "";
    const double ratio = *ho / *tr;
    level = ratio >= kOverfitRmseRatio ? 2 : ratio >= kMildRmseRatio ? 1 : 0;
    out = set_name(h) + "/train RMSE " + fmt(ratio, 2) + "×";
  }
  // A held-out loss well above its minimum at the end says the same from the other side.
  double lowest = INFINITY;
  int lowest_epoch = 0;
  for (const json& e : r.epochs) {
    std::optional<double> v = number(e, h + "_loss");
    if (v && *v < lowest) {
      lowest = *v;
      lowest_epoch = epoch_of(e);
    }
  }
  std::optional<double> end_loss = number(last, h + "_loss");
  const bool rising = end_loss && lowest_epoch < epoch_of(last) && *end_loss > lowest * kRisingLoss;
  if (rising) level = std::max(level, 1);
  worry = level > 0;
  out += std::string(": ") + (level == 2   ? "overfitting"
                              : level == 1 ? "mild overfitting"
                                           : "no sign of overfitting");
  if (rising) {
    out += " (" + set_name(h) + " loss rising since epoch " + std::to_string(lowest_epoch) + ")";
  }
  return out;
}

}  // namespace

std::string shell_quote(std::string_view arg) {
  bool plain = !arg.empty();
  for (char c : arg) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
    plain = plain && ok;
  }
  if (plain) return std::string(arg);
  std::string q = "'";
  for (char c : arg) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

namespace {

// Grayscale pixels (0..255) of row `row`: u8 data as stored, floats stretched from the image's
// own minimum to maximum (a constant image is mid-grey).
std::vector<std::uint8_t> pixels_of(const Dataset& ds, Index row) {
  const auto n = static_cast<std::size_t>(ds.n_features);
  const auto begin = static_cast<std::size_t>(row) * n;
  std::vector<std::uint8_t> out(n);
  if (!ds.x_u8.empty()) {
    std::copy_n(ds.x_u8.begin() + static_cast<std::ptrdiff_t>(begin), n, out.begin());
    return out;
  }
  const float* x = ds.x_f32.data() + begin;
  float lo = INFINITY, hi = -INFINITY;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isfinite(x[i])) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    double v = hi > lo && std::isfinite(x[i]) ? (x[i] - lo) / (hi - lo) : 0.5;
    out[i] = static_cast<std::uint8_t>(std::lround(255 * v));
  }
  return out;
}

std::string base64(std::span<const std::uint8_t> bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t v = std::uint32_t{bytes[i]} << 16;
    if (i + 1 < bytes.size()) v |= std::uint32_t{bytes[i + 1]} << 8;
    if (i + 2 < bytes.size()) v |= bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Charts: each is {id, title, xlabel, ylabel, log, x, series: [{label, color, values, dash,
// points}]}; report.js hands them to uPlot as they are.

json series(const std::string& label, std::size_t color, json values, bool dash = false) {
  return {{"label", label},
          {"color", kColors[color % kNColors]},
          {"values", std::move(values)},
          {"dash", dash},
          {"points", false}};
}

json chart(const std::string& id, const std::string& title, const std::string& ylabel,
           const json& x, json list, bool log = false) {
  return {{"id", id},   {"title", title}, {"xlabel", "epoch"},        {"ylabel", ylabel},
          {"log", log}, {"x", x},         {"series", std::move(list)}};
}

// Log-scale charts cannot show 0 or negative values: those become gaps.
json positive_only(json values) {
  for (json& v : values) {
    if (v.is_number() && !(v.get<double>() > 0)) v = nullptr;
  }
  return values;
}

json charts_json(const Report& r) {
  const std::vector<json>& e = r.epochs;
  json x = json::array();
  for (const json& ep : e) x.push_back(epoch_of(ep));
  json charts = json::array();
  const char* sets[] = {"train", "val", "test"};

  json loss = json::array();
  json metric = json::array();
  const bool classify = r.task == Task::kClassify;
  for (std::size_t s = 0; s < 3; ++s) {
    const std::string p = sets[s];
    if (has_key(e, p + "_loss")) loss.push_back(series(set_name(p), s, column(e, p + "_loss")));
    if (has_key(e, p + "_" + metric_key(r.task))) {
      metric.push_back(
          series(set_name(p), s, column(e, p + "_" + metric_key(r.task), classify ? 100 : 1)));
    }
  }
  charts.push_back(chart("loss", "Loss", "loss", x, loss));
  if (!metric.empty()) {
    charts.push_back(chart("metric", classify ? "Accuracy" : "RMSE",
                           classify ? "accuracy (%)" : "RMSE", x, metric));
  }
  if (has_key(e, "learning_rate")) {
    charts.push_back(chart("lr", "Learning rate", "η", x,
                           json::array({series("learning rate", 4, column(e, "learning_rate"))})));
  }
  const std::size_t n_layers = layer_count(e);
  if (n_layers > 0) {
    json weights = json::array(), grads = json::array(), health = json::array();
    for (std::size_t l = 0; l < n_layers; ++l) {
      const std::string name = "layer " + std::to_string(l + 1);
      weights.push_back(series(name, l, layer_column(e, l, "weight_norm")));
      grads.push_back(series(name, l, positive_only(layer_column(e, l, "grad_norm"))));
      if (layer_has(e, l, "dead")) {
        health.push_back(series(name + " dead", l, layer_column(e, l, "dead", 100)));
      }
      if (layer_has(e, l, "saturated")) {
        health.push_back(series(name + " saturated", l, layer_column(e, l, "saturated", 100)));
      }
    }
    if (has_key(e, "grad_norm")) {
      grads.push_back(series("all layers", 7, positive_only(column(e, "grad_norm")), true));
    }
    charts.push_back(chart("weight-norm", "Weight norm per layer", "‖W‖", x, weights));
    charts.push_back(
        chart("grad-norm", "Gradient norm per layer (log scale)", "‖∂L/∂W‖", x, grads, true));
    if (!health.empty()) {
      charts.push_back(
          chart("health", "Dead / saturated units", "% of the layer's units", x, health));
    }
  }
  // Regression: predicted against true, the points sorted by the true value (uPlot's x must
  // ascend), with the ideal y = x as a dashed line.
  for (std::size_t t = 0; t < r.scatter.size(); ++t) {
    std::vector<std::pair<float, float>> pts = r.scatter[t];
    std::stable_sort(pts.begin(), pts.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    json truth = json::array(), predicted = json::array();
    for (const auto& [y, a] : pts) {
      truth.push_back(std::isfinite(y) ? json(y) : json(nullptr));
      predicted.push_back(std::isfinite(a) ? json(a) : json(nullptr));
    }
    json pred = series("predicted", 0, predicted);
    pred["points"] = true;
    json c =
        chart("scatter-" + std::to_string(t), "Predicted vs true: " + r.target_names[t],
              "predicted", truth, json::array({pred, series("ideal (y = x)", 3, truth, true)}));
    c["xlabel"] = "true";
    charts.push_back(c);
  }
  return charts;
}

// ---------------------------------------------------------------------------------------------
// HTML

std::string chart_div(const json& c) {
  return "<figure class=\"chart\" id=\"chart-" + html_escape(c["id"].get<std::string>()) +
         "\" data-series=\"" + std::to_string(c["series"].size()) + "\" data-points=\"" +
         std::to_string(c["x"].size()) + "\"><figcaption>" +
         html_escape(c["title"].get<std::string>()) + "</figcaption></figure>\n";
}

std::string row(const std::string& head, const std::string& cell_html) {
  return "<tr><th>" + html_escape(head) + "</th><td>" + cell_html + "</td></tr>\n";
}

std::string summary_table(const Report& r) {
  std::string out = "<table id=\"summary\">\n";
  const json& last = r.epochs.back();
  if (r.has_model) {
    std::string arch = format_layers(r.spec.layers) + " · " +
                       std::string(to_string(r.spec.hidden)) + " hidden · " +
                       std::string(to_string(r.spec.output)) + " output · " +
                       std::string(to_string(r.spec.loss)) + " loss · " +
                       format_thousands(static_cast<double>(r.spec.n_params())) + " parameters";
    out += row("Network", html_escape(arch));
  } else {
    out += row("Network", html_escape(std::to_string(layer_count(r.epochs)) +
                                      " layers (from the log; no model given)"));
  }
  out += row(
      "Task",
      r.task == Task::kClassify
          ? html_escape("classification" +
                        (r.has_model ? ", " + std::to_string(r.info.class_names.size()) + " classes"
                                     : std::string()))
          : "regression");
  out += row("Command", "<code>" + html_escape(r.command_line) + "</code>");
  if (r.has_model) {
    out += row("Model file", html_escape(r.model_name.empty() ? "(not saved)" : r.model_name));
    std::string prov = "backprop " + (r.info.version.empty() ? "?" : r.info.version) + " · seed " +
                       std::to_string(r.info.seed) + " · init " + r.info.init + " · data " +
                       r.info.data_hash + " (XXH3-128) · " +
                       format_thousands(static_cast<double>(r.info.train_examples)) +
                       " training examples";
    out += row("Provenance", html_escape(prov));
  }
  double seconds = 0, rate = 0;
  int n_rate = 0;
  for (const json& e : r.epochs) {
    seconds += number(e, "seconds").value_or(0);
    if (auto v = number(e, "samples_per_second")) {
      rate += *v;
      ++n_rate;
    }
  }
  out += row("Log", html_escape(r.log_name + ": " + std::to_string(r.epochs.size()) + " epochs, " +
                                fmt(seconds, 1) + " s of training" +
                                (n_rate ? ", " + format_thousands(rate / n_rate) + " samples/s"
                                        : std::string())));
  if (r.evaluated) {
    out += row("Evaluated on",
               html_escape(r.eval_name + ": " + r.eval_source + ", " +
                           format_thousands(static_cast<double>(r.eval.metrics.n)) + " examples"));
  }
  // Final figures: the last epoch of each set, then the evaluation of the final model.
  const bool classify = r.task == Task::kClassify;
  std::string fig = "<table id=\"final\"><tr><th></th><th>loss</th><th>" +
                    std::string(classify ? "accuracy" : "RMSE") + "</th></tr>";
  for (const char* p : {"train", "val", "test"}) {
    const std::string s = p;
    if (!last.contains(s + "_loss")) continue;
    const double loss = number(last, s + "_loss").value_or(NAN);
    const double m = number(last, s + "_" + metric_key(r.task)).value_or(NAN);
    fig += "<tr><td>" + html_escape(set_name(s)) + " (epoch " + std::to_string(epoch_of(last)) +
           (s == "train" ? ", running" : "") + ")</td><td>" + fmt(loss, 4) + "</td><td>" +
           (classify ? pct(m) : fmt_g(m)) + "</td></tr>";
  }
  if (r.evaluated) {
    fig += "<tr><td>" + html_escape(r.eval_name) + " (final model)</td><td>" +
           fmt(r.eval.metrics.loss, 4) + "</td><td>" +
           (classify ? pct(r.eval.metrics.accuracy) : fmt_g(r.eval.metrics.rmse)) + "</td></tr>";
  }
  fig += "</table>";
  if (r.evaluated && !classify) {
    fig += "<p>MAE " + fmt_g(r.eval.mae) + " · R² " + fmt(r.eval.r2, 4) + "</p>";
  }
  out += row("Final figures", fig);
  return out + "</table>\n";
}

// The heatmap: rows true classes, columns predictions; each cell shaded by its share of the
// row (recall on the diagonal in blue, confusions in red, stretched ×3 so small ones show).
std::string confusion_table(const Report& r) {
  const Index k = r.eval.n_classes;
  const auto& names = r.info.class_names;
  const auto at = [&](Index t, Index p) {
    return r.eval.confusion[static_cast<std::size_t>(t * k + p)];
  };
  std::string out =
      "<table id=\"confusion\"><caption>rows: true class · columns: predicted</caption><tr><th>"
      "</th>";
  for (Index p = 0; p < k; ++p) {
    out += "<th class=\"pred\">" + html_escape(names[static_cast<std::size_t>(p)]) + "</th>";
  }
  out += "</tr>\n";
  for (Index t = 0; t < k; ++t) {
    std::int64_t total = 0;
    for (Index p = 0; p < k; ++p) total += at(t, p);
    const std::string& tn = names[static_cast<std::size_t>(t)];
    out += "<tr><th class=\"true\">" + html_escape(tn) + "</th>";
    for (Index p = 0; p < k; ++p) {
      const std::int64_t c = at(t, p);
      const double share = total > 0 ? static_cast<double>(c) / static_cast<double>(total) : 0;
      const double alpha = t == p ? share : std::min(1.0, 3 * share);
      char style[96];
      std::snprintf(style, sizeof style, "background:rgba(%s,%.3f)%s",
                    t == p ? "31,119,180" : "214,39,40", alpha, alpha > 0.55 ? ";color:#fff" : "");
      const std::string title = "true " + tn + ", predicted " + names[static_cast<std::size_t>(p)] +
                                ": " + std::to_string(c) + " (" + pct(share, 1) + " of " + tn + ")";
      out += "<td class=\"cell\" style=\"" + std::string(style) + "\" title=\"" +
             html_escape(title) + "\">" + std::to_string(c) + "</td>";
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

std::string per_class_table(const Report& r) {
  const Index k = r.eval.n_classes;
  const auto at = [&](Index t, Index p) {
    return static_cast<double>(r.eval.confusion[static_cast<std::size_t>(t * k + p)]);
  };
  std::string out =
      "<table id=\"per-class\"><tr><th>class</th><th>support</th><th>precision</th>"
      "<th>recall</th><th>F1</th></tr>\n";
  for (Index c = 0; c < k; ++c) {
    double row_sum = 0, col_sum = 0;
    for (Index j = 0; j < k; ++j) {
      row_sum += at(c, j);
      col_sum += at(j, c);
    }
    const double tp = at(c, c);
    const double precision = col_sum > 0 ? tp / col_sum : NAN;
    const double recall = row_sum > 0 ? tp / row_sum : NAN;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : NAN;
    out += "<tr><td>" + html_escape(r.info.class_names[static_cast<std::size_t>(c)]) + "</td><td>" +
           format_thousands(row_sum) + "</td><td>" + pct(precision, 1) + "</td><td>" +
           pct(recall, 1) + "</td><td>" + pct(f1, 1) + "</td></tr>\n";
  }
  return out + "</table>\n";
}

std::string wrong_grid(const Report& r) {
  std::string out = "<div id=\"wrong-grid\">\n";
  for (std::size_t i = 0; i < r.wrong.size(); ++i) {
    const WrongExample& w = r.wrong[i];
    out += "<figure class=\"wrong\"><canvas class=\"sample\" width=\"" +
           std::to_string(r.image_width) + "\" height=\"" + std::to_string(r.image_height) +
           "\" data-index=\"" + std::to_string(i) + "\"></canvas><figcaption>true <b>" +
           html_escape(r.info.class_names[static_cast<std::size_t>(w.truth)]) +
           "</b><br>predicted <b>" +
           html_escape(r.info.class_names[static_cast<std::size_t>(w.predicted)]) + "</b> " +
           pct(w.confidence, 0) + "<br><small>row " + std::to_string(w.row) +
           "</small></figcaption></figure>\n";
  }
  return out + "</div>\n";
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string script_json(const nlohmann::json& j) {
  // dump() never fails on invalid UTF-8 here: it is replaced, not thrown on.
  const std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < text.size() && text[i + 1] == '\x80' &&
               (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
      out += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<nlohmann::json> parse_log(std::string_view text, const std::string& name) {
  std::vector<json> epochs;
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = name + ":" + std::to_string(line_no) + ": ";
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      throw Error(ErrorCode::kFormat, where + "expected one JSON object per line");
    }
    auto ep = j.find("epoch");
    if (ep == j.end() || !ep->is_number_integer() || ep->get<long long>() < 1 ||
        ep->get<long long>() > 100000000) {
      throw Error(ErrorCode::kFormat, where + "expected an integer \"epoch\" >= 1");
    }
    if (!epochs.empty() && ep->get<int>() <= epoch_of(epochs.back())) {
      throw Error(ErrorCode::kFormat, where + "epoch " + std::to_string(ep->get<int>()) +
                                          " does not follow epoch " +
                                          std::to_string(epoch_of(epochs.back())));
    }
    for (const auto& [key, value] : j.items()) {
      if (key == "layers") {
        if (!value.is_array()) throw Error(ErrorCode::kFormat, where + "\"layers\" is not a list");
        for (const json& l : value) {
          if (!l.is_object()) {
            throw Error(ErrorCode::kFormat, where + "\"layers\" holds a non-object");
          }
          for (const auto& [lk, lv] : l.items()) {
            if (!lv.is_number() && !lv.is_null()) {
              throw Error(ErrorCode::kFormat, where + "layer value \"" + escape_controls(lk, 64) +
                                                  "\" is not a number");
            }
          }
        }
      } else if (!value.is_number() && !value.is_null() && !value.is_boolean()) {
        throw Error(ErrorCode::kFormat,
                    where + "\"" + escape_controls(key, 64) + "\" is not a number");
      }
    }
    epochs.push_back(std::move(j));
  }
  if (epochs.empty()) throw Error(ErrorCode::kData, name + ": holds no epochs");
  return epochs;
}

Report make_report(const ReportInput& in) {
  BACKPROP_ASSERT(!in.epochs.empty());
  Report r;
  r.epochs = in.epochs;
  r.log_name = in.log_name;
  r.command_line = in.command_line;
  r.task = has_key(r.epochs, "train_rmse") && !has_key(r.epochs, "train_accuracy")
               ? Task::kRegress
               : Task::kClassify;
  if (in.model == nullptr || in.info == nullptr) return r;

  r.has_model = true;
  r.model_name = in.model_name;
  r.spec = in.model->spec();
  r.info = *in.info;
  if (r.info.version.empty()) r.info.version = std::string(version());
  r.task = r.info.task;
  const std::size_t log_layers = layer_count(r.epochs);
  if (log_layers != 0 && log_layers != static_cast<std::size_t>(r.spec.n_layers())) {
    throw Error(ErrorCode::kData, r.log_name + ": its epochs have " + std::to_string(log_layers) +
                                      " layers, " + in.model_name + " has " +
                                      std::to_string(r.spec.n_layers()));
  }
  if (in.data == nullptr) return r;

  const Dataset& ds = *in.data;
  std::vector<Index> rows =
      in.rows.empty() ? all_rows(ds) : std::vector<Index>(in.rows.begin(), in.rows.end());
  if (rows.empty()) return r;
  Model& model = *in.model;
  r.evaluated = true;
  r.eval_name = in.data_name;
  r.eval_source = ds.source;
  r.eval = evaluate(model, ds, rows, in.pre);

  const bool classify = r.task == Task::kClassify;
  const Index k = model.n_outputs();
  const bool image =
      ds.sample_shape.size() == 2 && ds.sample_shape[0] * ds.sample_shape[1] == ds.n_features;
  if (!classify) {
    for (Index t = 0; t < k && static_cast<std::size_t>(t) < kMaxScatterTargets; ++t) {
      r.target_names.push_back(static_cast<std::size_t>(t) < r.info.label_columns.size()
                                   ? r.info.label_columns[static_cast<std::size_t>(t)]
                                   : "target " + std::to_string(t + 1));
    }
    r.scatter.resize(r.target_names.size());
  }
  // An even stride over the rows keeps the scatter at most kMaxScatterPoints, deterministically.
  const std::size_t stride = (rows.size() + kMaxScatterPoints - 1) / kMaxScatterPoints;
  struct Candidate {
    Index row, truth, predicted;
    double confidence;
  };
  std::vector<Candidate> wrong;
  constexpr Index kBatch = 1000;
  Matrix x(std::min<Index>(kBatch, static_cast<Index>(rows.size())), ds.n_features);
  for (std::size_t start = 0; start < rows.size(); start += kBatch) {
    const std::size_t b = std::min<std::size_t>(kBatch, rows.size() - start);
    std::span<const Index> chunk(rows.data() + start, b);
    MatrixView xb = x.view().rows_range(0, static_cast<Index>(b));
    gather_batch(ds, chunk, in.pre, xb, MatrixView());
    ConstMatrixView a = model.forward(xb);
    for (std::size_t i = 0; i < b; ++i) {
      const float* ai = a.row(static_cast<Index>(i));
      const Index row_i = chunk[i];
      if (classify) {
        const Index best = std::max_element(ai, ai + k) - ai;
        const Index truth = ds.labels[static_cast<std::size_t>(row_i)];
        if (best != truth) wrong.push_back({row_i, truth, best, ai[best]});
      } else if ((start + i) % stride == 0) {
        for (std::size_t t = 0; t < r.scatter.size(); ++t) {
          const float y =
              ds.targets[static_cast<std::size_t>(row_i) * static_cast<std::size_t>(k) + t];
          r.scatter[t].emplace_back(y, output_to_target(in.pre, static_cast<Index>(t), ai[t]));
        }
      }
    }
  }
  if (classify) {
    const std::size_t n = std::min(kMaxWrongExamples, wrong.size());
    std::partial_sort(wrong.begin(), wrong.begin() + static_cast<std::ptrdiff_t>(n), wrong.end(),
                      [](const Candidate& a, const Candidate& b) {
                        return a.confidence != b.confidence ? a.confidence > b.confidence
                                                            : a.row < b.row;
                      });
    for (std::size_t i = 0; i < n; ++i) {
      WrongExample w{wrong[i].row, wrong[i].truth, wrong[i].predicted, wrong[i].confidence, {}};
      if (image) w.pixels = pixels_of(ds, w.row);
      r.wrong.push_back(std::move(w));
    }
    if (image) {
      r.image_height = ds.sample_shape[0];
      r.image_width = ds.sample_shape[1];
    }
  }
  return r;
}

std::string report_verdict(const Report& r) {
  const json& last = r.epochs.back();
  const bool classify = r.task == Task::kClassify;
  const std::string metric = classify ? "accuracy" : "RMSE";
  auto figure = [&](double v) { return classify ? pct(v) : fmt_g(v); };
  std::string out;
  if (r.evaluated) {
    out = capitalised(r.eval_name) + " " + metric + " " +
          figure(classify ? r.eval.metrics.accuracy : r.eval.metrics.rmse);
  } else {
    for (const char* p : {"test", "val", "train"}) {
      const std::string key = std::string(p) + "_" + metric_key(r.task);
      if (last.contains(key)) {
        out = capitalised(set_name(p)) + " " + metric + " " +
              figure(number(last, key).value_or(NAN)) +
              (std::string(p) == "train" ? " (running)" : "");
        break;
      }
    }
    if (out.empty()) out = "No " + metric + " recorded";
  }
  const int n = epoch_of(last);
  out += " after " + std::to_string(n) + (n == 1 ? " epoch" : " epochs");
  BestEpoch b = best_epoch(r.epochs);
  if (b.epoch > 0) {
    out += " · best epoch " + std::to_string(b.epoch) + " of " + std::to_string(n) + " (" + b.why +
           ")";
  }
  bool worry = false;
  std::string gap = overfitting(r, worry);
  if (!gap.empty()) out += " · " + gap;
  std::vector<std::string> warnings = report_warnings(r);
  if (!warnings.empty()) {
    out += " · " + std::to_string(warnings.size()) +
           (warnings.size() == 1 ? " warning below" : " warnings below");
  }
  return out;
}

std::vector<std::string> report_warnings(const Report& r) {
  std::vector<std::string> out;
  const json& last = r.epochs.back();
  auto it = last.find("layers");
  if (it != last.end() && it->is_array()) {
    for (std::size_t l = 0; l < it->size(); ++l) {
      const std::string name = "layer " + std::to_string(l + 1);
      if (auto d = number((*it)[l], "dead"); d && *d >= kWarnFraction) {
        out.push_back(capitalised(name) + ": " + pct(*d, 0) +
                      " of its ReLU units are dead (never active on the probe batch)");
      }
      if (auto s = number((*it)[l], "saturated"); s && *s >= kWarnFraction) {
        out.push_back(capitalised(name) + ": " + pct(*s, 0) +
                      " of its units are saturated (gradient under 5% of its peak)");
      }
    }
  }
  double skipped = 0;
  for (const json& e : r.epochs) {
    skipped += number(e, "skipped_batches").value_or(0);
    if (e.contains("train_loss") && !number(e, "train_loss")) {
      out.push_back("The training loss was not finite in epoch " + std::to_string(epoch_of(e)));
    }
  }
  if (skipped > 0) {
    out.push_back(format_thousands(skipped) + " batches skipped for non-finite values");
  }
  auto first_loss = number(r.epochs.front(), "train_loss");
  auto last_loss = number(last, "train_loss");
  if (r.epochs.size() > 1 && first_loss && last_loss && *last_loss > *first_loss) {
    out.push_back("The training loss rose from " + fmt(*first_loss, 4) + " to " +
                  fmt(*last_loss, 4) + ": the learning rate may be too high");
  }
  return out;
}

std::string render_report(const Report& r) {
  BACKPROP_ASSERT(!r.epochs.empty());
  const bool classify = r.task == Task::kClassify;
  const std::vector<std::string> warnings = report_warnings(r);
  bool worry = false;
  overfitting(r, worry);
  const json charts = charts_json(r);

  json data{{"charts", charts}};
  json images = json::array();
  for (const WrongExample& w : r.wrong) {
    if (!w.pixels.empty()) images.push_back(base64(w.pixels));
  }
  data["images"] = {{"width", r.image_width}, {"height", r.image_height}, {"pixels", images}};

  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Nothing may be fetched: scripts and styles are inline, images are drawn on canvases.
  h += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<meta name=\"generator\" content=\"backprop " + html_escape(version()) + "\">\n";
  h += "<title>backprop report: " + html_escape(r.model_name.empty() ? r.log_name : r.model_name) +
       "</title>\n";
  h += "<style>\n";
  h += detail::report_asset_chart_css();
  h += "\n";
  h += detail::report_asset_report_css();
  h += "</style>\n</head>\n<body>\n<header>\n<h1>Training report</h1>\n";
  h += "<p id=\"verdict\" class=\"" + std::string(worry || !warnings.empty() ? "warn" : "good") +
       "\">" + html_escape(report_verdict(r)) + "</p>\n";
  if (!warnings.empty()) {
    h += "<ul id=\"warnings\">\n";
    for (const std::string& w : warnings) h += "<li>" + html_escape(w) + "</li>\n";
    h += "</ul>\n";
  }
  h += summary_table(r);
  h += "</header>\n<main>\n";

  h += "<section id=\"curves\">\n<h2>Learning curves</h2>\n<div class=\"charts\">\n";
  for (const json& c : charts) {
    const std::string id = c["id"];
    if (id == "loss" || id == "metric" || id == "lr") h += chart_div(c);
  }
  h += "</div>\n</section>\n";
  h += "<section id=\"layers\">\n<h2>Layer health</h2>\n";
  h += "<p class=\"note\">Measured at the end of each epoch on a probe batch of training "
       "examples. Dead: ReLU units inactive on the whole batch; saturated: sigmoid/tanh units "
       "whose derivative is under 5% of its peak.</p>\n<div class=\"charts\">\n";
  bool any_layer_chart = false;
  for (const json& c : charts) {
    const std::string id = c["id"];
    if (id == "weight-norm" || id == "grad-norm" || id == "health") {
      h += chart_div(c);
      any_layer_chart = true;
    }
  }
  if (!any_layer_chart) h += "<p>The log holds no per-layer figures.</p>\n";
  h += "</div>\n</section>\n";

  if (r.evaluated && classify) {
    h += "<section id=\"classes\">\n<h2>" + html_escape(capitalised(r.eval_name)) +
         " set: confusion matrix and per-class figures</h2>\n<div class=\"side\">\n";
    h += confusion_table(r);
    h += per_class_table(r);
    h += "</div>\n</section>\n";
    if (!r.wrong.empty()) {
      h += "<section id=\"wrong\">\n<h2>Most confidently wrong</h2>\n<p class=\"note\">The " +
           std::to_string(r.wrong.size()) + " " + html_escape(r.eval_name) +
           " examples the model got wrong with the highest output for its (wrong) choice.</p>\n";
      if (r.image_width > 0) {
        h += wrong_grid(r);
      } else {
        h += "<table id=\"wrong-table\"><tr><th>row</th><th>true</th><th>predicted</th>"
             "<th>output</th></tr>\n";
        for (const WrongExample& w : r.wrong) {
          h += "<tr><td>" + std::to_string(w.row) + "</td><td>" +
               html_escape(r.info.class_names[static_cast<std::size_t>(w.truth)]) + "</td><td>" +
               html_escape(r.info.class_names[static_cast<std::size_t>(w.predicted)]) +
               "</td><td>" + pct(w.confidence, 1) + "</td></tr>\n";
        }
        h += "</table>\n";
      }
      h += "</section>\n";
    }
  }
  if (!r.scatter.empty()) {
    h += "<section id=\"scatter\">\n<h2>" + html_escape(capitalised(r.eval_name)) +
         " set: predicted vs true</h2>\n<div class=\"charts\">\n";
    for (const json& c : charts) {
      if (c["id"].get<std::string>().rfind("scatter-", 0) == 0) h += chart_div(c);
    }
    h += "</div>\n</section>\n";
  }
  h += "</main>\n<footer>\n<p>Made by backprop " + html_escape(version()) + ". Charts: uPlot " +
       html_escape(detail::report_chart_version()) +
       " (MIT licence), embedded.</p>\n<details><summary>uPlot licence</summary><pre>" +
       html_escape(detail::report_asset_chart_licence()) + "</pre></details>\n</footer>\n";
  h += "<script type=\"application/json\" id=\"report-data\">" + script_json(data) + "</script>\n";
  h += "<script>\n";
  h += detail::report_asset_chart_js();
  h += "\n</script>\n<script>\n";
  h += detail::report_asset_report_js();
  h += "\n</script>\n</body>\n</html>\n";
  return h;
}

void write_report(const std::string& path, const ReportInput& in) {
  write_output(path, render_report(make_report(in)));
}

std::string current_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::string out;
  std::size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    std::size_t end = raw.find('\0', pos);
    if (end == std::string::npos) end = raw.size();
    std::string arg = raw.substr(pos, end - pos);
    pos = end + 1;
    if (first) {
      // The program as the user knows it, not the build path.
      auto slash = arg.find_last_of('/');
      if (slash != std::string::npos) arg = arg.substr(slash + 1);
    } else {
      out += ' ';
    }
    out += shell_quote(arg);
    first = false;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// backprop report

namespace {

struct ReportFlags {
  std::string log, model, output;
  DataFlags data;
  int threads = 0;
};

int run_report(const ReportFlags& f) {
  std::vector<std::string> inputs;
  for (const std::string* p : {&f.log, &f.model, &f.data.test, &f.data.test_labels}) {
    if (!p->empty()) inputs.push_back(*p);
  }
  check_output_path("--output", f.output, inputs);
  if (f.model.empty() && (!f.data.data_dir.empty() || !f.data.test.empty())) {
    throw Error(ErrorCode::kUsage, "--data and --test need --model: the report evaluates it");
  }
  set_num_threads(f.threads);
  const std::vector<std::uint8_t> bytes = read_file(f.log, f.data.limits().max_input_bytes);
  ReportInput in;
  in.epochs =
      parse_log(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), f.log);
  in.log_name = f.log;
  in.command_line = current_command_line();
  std::optional<ModelFile> mf;
  std::optional<Dataset> ds;
  if (!f.model.empty()) {
    mf = load_model(f.model, f.data.limits());
    in.model = &mf->model;
    in.info = &mf->info;
    in.model_name = f.model;
    if (!f.data.data_dir.empty() || !f.data.test.empty()) {
      ds = load_eval_data(f.data, mf->info);
      in.data = &*ds;
      in.data_name = "test";
      in.pre = model_preprocess(mf->info, *ds);
    }
  }
  write_report(f.output, in);
  return 0;
}

}  // namespace

void write_train_report(const std::string& path, const std::vector<nlohmann::json>& epochs,
                        Model& model, const ModelInfo& info, const std::string& model_name,
                        const Dataset& train_data, std::span<const Index> val_rows,
                        const Dataset* test, const Preprocess& pre) {
  ReportInput in;
  in.epochs = epochs;
  in.log_name = "this run";
  in.command_line = current_command_line();
  in.model = &model;
  in.info = &info;
  in.model_name = model_name;
  in.pre = pre;
  if (test != nullptr) {
    in.data = test;
    in.data_name = "test";
  } else if (!val_rows.empty()) {
    in.data = &train_data;
    in.rows = val_rows;
    in.data_name = "validation";
  }
  write_report(path, in);
}

Run add_report(CLI::App& app) {
  auto f = std::make_shared<ReportFlags>();
  CLI::App* cmd = app.add_subcommand(
      "report", "write a self-contained HTML report of a training run (docs/report.md)");
  cmd->add_option("--log", f->log, "the run's --log file (one JSON object per epoch)")->required();
  cmd->add_option("--model", f->model,
                  "the trained model: architecture, provenance, and the evaluation on --data or "
                  "--test");
  cmd->add_option("--data", f->data.data_dir,
                  "folder with t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]");
  cmd->add_option("--test", f->data.test, "labelled data: a CSV file, IDX images or .npy");
  cmd->add_option("--test-labels", f->data.test_labels, "IDX labels for --test");
  add_csv_flags(cmd, f->data, /*with_task=*/false);
  cmd->add_option("--output", f->output, "the HTML file to write")->required();
  cmd->add_option("--threads", f->threads, "kernel threads; 0 = every core")
      ->check(integer_range(0, 1024));
  return [f] { return run_report(*f); };
}

}  // namespace backprop::cli
