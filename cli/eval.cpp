// backprop eval: a saved model on labelled data: loss and accuracy with a confusion matrix, or
// RMSE, MAE and R² for regression.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace backprop::cli {

namespace {

struct EvalFlags {
  std::string model;
  DataFlags data;
  bool json = false;
  int threads = 0;
};

void print_confusion(const Evaluation& ev, const std::vector<std::string>& names) {
  const Index k = ev.n_classes;
  std::size_t width = 5;
  for (const auto& n : names) width = std::max(width, std::min<std::size_t>(n.size(), 12));
  for (Index c = 0; c < k; ++c) {
    std::int64_t total = 0;
    for (Index p = 0; p < k; ++p) total += ev.confusion[static_cast<std::size_t>(c * k + p)];
    width = std::max(width, std::to_string(total).size());
  }
  auto w = static_cast<int>(width);
  std::printf("confusion matrix (rows: true class, columns: predicted)\n%*s", w, "");
  for (Index p = 0; p < k; ++p) {
    std::printf(" %*.*s", w, w, names[static_cast<std::size_t>(p)].c_str());
  }
  std::printf("\n");
  for (Index t = 0; t < k; ++t) {
    std::printf("%*.*s", w, w, names[static_cast<std::size_t>(t)].c_str());
    for (Index p = 0; p < k; ++p) {
      std::printf(" %*lld", w,
                  static_cast<long long>(ev.confusion[static_cast<std::size_t>(t * k + p)]));
    }
    std::printf("\n");
  }
}

int run_eval(const EvalFlags& f) {
  set_num_threads(f.threads);
  ModelFile mf = load_model(f.model, f.data.limits());
  Dataset ds = load_eval_data(f.data, mf.info);
  Preprocess pre = model_preprocess(mf.info, ds);
  Evaluation ev = evaluate(mf.model, ds, {}, pre);
  const bool classify = mf.info.task == Task::kClassify;
  if (f.json) {
    nlohmann::json j{{"examples", ev.metrics.n}, {"loss", ev.metrics.loss}};
    if (classify) {
      j["accuracy"] = ev.metrics.accuracy;
      nlohmann::json rows = nlohmann::json::array();
      for (Index t = 0; t < ev.n_classes; ++t) {
        auto begin = ev.confusion.begin() + t * ev.n_classes;
        rows.push_back(std::vector<std::int64_t>(begin, begin + ev.n_classes));
      }
      j["confusion_matrix"] = rows;
      j["class_names"] = mf.info.class_names;
    } else {
      j["rmse"] = ev.metrics.rmse;
      j["mae"] = ev.mae;
      j["r2"] = ev.r2;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%s on %s: %s examples\n", f.model.c_str(), ds.source.c_str(),
              format_thousands(static_cast<double>(ev.metrics.n)).c_str());
  std::printf("loss      %s\n", format_fixed(ev.metrics.loss, 6).c_str());
  if (classify) {
    std::printf("accuracy  %s\n", format_percent(ev.metrics.accuracy).c_str());
    print_confusion(ev, mf.info.class_names);
  } else {
    std::printf("rmse      %s\nmae       %s\nr2        %s\n",
                format_fixed(ev.metrics.rmse, 6).c_str(), format_fixed(ev.mae, 6).c_str(),
                format_fixed(ev.r2, 6).c_str());
  }
  return 0;
}

}  // namespace

Run add_eval(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a saved model on labelled data");
  cmd->add_option("--model", f->model, "model file (safetensors)")->required();
  cmd->add_option("--data", f->data.data_dir,
                  "folder with t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]");
  cmd->add_option("--test", f->data.test, "labelled data: a CSV file or IDX images");
  cmd->add_option("--test-labels", f->data.test_labels, "IDX labels for --test");
  add_csv_flags(cmd, f->data, /*with_task=*/false);
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->add_option("--threads", f->threads, "kernel threads; 0 = every core")
      ->check(integer_range(0, 1024));
  return [f] { return run_eval(*f); };
}

}  // namespace backprop::cli
