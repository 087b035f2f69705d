// backprop train: load data, build the network, train with SGD, report each epoch, save.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "kernels/kernels.hpp"

namespace backprop::cli {

namespace {

struct TrainFlags {
  DataFlags data;
  double val_split = 0;
  bool standardize = false, no_standardize = false;
  std::string layers, hidden = "100";
  std::string activation = "sigmoid", output, loss, init = "auto";
  double leaky_slope = 0.01;
  double lr = 0.1;
  Index batch_size = 16;
  int epochs = 20;
  std::uint64_t seed = 1;
  int threads = 0;
  bool eval_test_each_epoch = false;
  std::string save = "model.safetensors", log;
  bool no_save = false, quiet = false;
};

nlohmann::json metrics_json(const std::string& prefix, const Metrics& m, Task task) {
  nlohmann::json j = nlohmann::json::object();
  if (m.n == 0) return j;
  j[prefix + "_loss"] = m.loss;
  if (task == Task::kClassify) {
    j[prefix + "_accuracy"] = m.accuracy;
  } else {
    j[prefix + "_rmse"] = m.rmse;
  }
  return j;
}

// The per-epoch table: fixed-width columns, one line per epoch.
class EpochTable {
 public:
  EpochTable(Task task, bool val, bool test) : task_(task), val_(val), test_(test) {}

  void header() const {
    const char* metric = task_ == Task::kClassify ? "acc" : "rmse";
    std::printf("%5s  %10s  %9s", "epoch", "train_loss", (std::string("train_") + metric).c_str());
    if (val_) std::printf("  %10s  %9s", "val_loss", (std::string("val_") + metric).c_str());
    if (test_) std::printf("  %10s  %9s", "test_loss", (std::string("test_") + metric).c_str());
    std::printf("  %8s  %10s\n", "seconds", "samples/s");
    std::fflush(stdout);
  }

  void row(const EpochStats& s) const {
    std::printf("%5d  %10s  %9s", s.epoch, format_fixed(s.train.loss, 4).c_str(),
                figure(s.train).c_str());
    if (val_) {
      std::printf("  %10s  %9s", format_fixed(s.val.loss, 4).c_str(), figure(s.val).c_str());
    }
    if (test_) {
      std::printf("  %10s  %9s", s.test.n ? format_fixed(s.test.loss, 4).c_str() : "-",
                  s.test.n ? figure(s.test).c_str() : "-");
    }
    std::printf("  %8s  %10s\n", format_fixed(s.seconds, 2).c_str(),
                format_thousands(s.samples_per_second).c_str());
    std::fflush(stdout);
  }

 private:
  std::string figure(const Metrics& m) const {
    return task_ == Task::kClassify ? format_percent(m.accuracy) : format_fixed(m.rmse, 4);
  }
  Task task_;
  bool val_, test_;
};

int run_train(TrainFlags& f) {
  if (!f.layers.empty() && f.hidden != "100") {
    throw Error(ErrorCode::kUsage, "give either --layers or --hidden, not both");
  }
  // Everything that can be checked without data is checked first.
  std::vector<Index> widths =
      f.layers.empty() ? std::vector<Index>{} : parse_width_list("--layers", f.layers);
  std::vector<Index> hidden =
      f.layers.empty() ? parse_width_list("--hidden", f.hidden) : std::vector<Index>{};
  if (!f.layers.empty() && widths.size() < 2) {
    throw Error(ErrorCode::kUsage, "--layers needs at least the input and output widths");
  }
  const bool regress = f.data.task == "regress";
  ModelSpec spec;
  // Defaults follow the task and each other: cross-entropy pairs with softmax; the quadratic loss
  // with a sigmoid output (the derivation's network) or, for regression, an identity output.
  const std::string loss = f.loss.empty() ? (regress ? "quadratic" : "cross-entropy") : f.loss;
  const std::string output = !f.output.empty()     ? f.output
                             : regress             ? "identity"
                             : loss == "quadratic" ? "sigmoid"
                                                   : "softmax";
  parse_spec_flags(spec, f.activation, output, loss);
  spec.leaky_slope = f.leaky_slope;
  Init init = f.init == "auto" ? default_init(spec.hidden)
                               : for_flag("--init", [&] { return parse_init(f.init); });
  std::string save = f.no_save ? "" : f.save;
  check_output_path("--save", save, {});
  check_output_path("--log", f.log, {});
  if (!save.empty() && save == f.log) {
    throw Error(ErrorCode::kUsage, "--save and --log name the same file");
  }
  set_num_threads(f.threads);

  TrainingData td = load_training_data(f.data);
  check_output_path("--save", save, td.inputs);
  check_output_path("--log", f.log, td.inputs);
  Dataset& ds = td.train;
  if (!widths.empty()) {
    if (widths.front() != ds.n_features) {
      throw Error(ErrorCode::kData, "--layers starts with " + std::to_string(widths.front()) +
                                        ", but " + ds.source + " has " +
                                        std::to_string(ds.n_features) + " features");
    }
    if (widths.back() != ds.n_outputs()) {
      throw Error(ErrorCode::kData, "--layers ends with " + std::to_string(widths.back()) +
                                        ", but " + ds.source + " has " +
                                        std::to_string(ds.n_outputs()) +
                                        (ds.task == Task::kClassify ? " classes" : " targets"));
    }
    spec.layers = widths;
  } else {
    spec.layers.push_back(ds.n_features);
    spec.layers.insert(spec.layers.end(), hidden.begin(), hidden.end());
    spec.layers.push_back(ds.n_outputs());
  }

  Split split = split_validation(ds, f.val_split, f.seed);
  if (split.train.empty()) throw Error(ErrorCode::kData, "--val-split leaves no training rows");
  // CSV columns come in any units: standardise them unless told not to. IDX images are scaled
  // to [0, 1] and left at that unless asked.
  bool standardize = f.standardize || (!f.no_standardize && ds.format == DataFormat::kCsv);
  TrainData data;
  data.data = &ds;
  data.train_rows = split.train;
  data.val_rows = split.val;
  data.test = td.test ? &*td.test : nullptr;
  data.pre = standardize ? standardize_preprocess(ds, split.train) : scale_preprocess(ds);

  Model model(spec);
  model.init(init, f.seed);
  Sgd sgd(f.lr);
  TrainOptions options;
  options.epochs = f.epochs;
  options.batch_size = f.batch_size;
  options.seed = f.seed;
  options.eval_test_each_epoch = f.eval_test_each_epoch;

  if (!f.quiet) {
    std::string arch = format_layers(spec.layers);
    std::printf("data    %s: %s examples (%s for training, %s held out)%s\n", ds.source.c_str(),
                format_thousands(static_cast<double>(ds.n)).c_str(),
                format_thousands(static_cast<double>(split.train.size())).c_str(),
                format_thousands(static_cast<double>(split.val.size())).c_str(),
                td.test ? (", test " + td.test->source + ": " +
                           format_thousands(static_cast<double>(td.test->n)) + " examples")
                              .c_str()
                        : "");
    std::printf("model   %s, %s hidden, %s output, %s loss, %s parameters, init %s\n", arch.c_str(),
                std::string(to_string(spec.hidden)).c_str(),
                std::string(to_string(spec.output)).c_str(),
                std::string(to_string(spec.loss)).c_str(),
                format_thousands(static_cast<double>(spec.n_params())).c_str(),
                std::string(to_string(init)).c_str());
    std::printf("train   sgd lr %g, batch %lld, %d epochs, seed %llu, %d threads, %s kernels\n",
                f.lr, static_cast<long long>(f.batch_size), f.epochs,
                static_cast<unsigned long long>(f.seed), num_threads(), kernels::active().name);
    std::fflush(stdout);
  }

  EpochTable table(ds.task, !split.val.empty(), td.test && f.eval_test_each_epoch);
  if (!f.quiet) table.header();
  ProgressBar bar;
  std::string log_text;
  TrainCallbacks callbacks;
  if (!f.quiet) callbacks.on_batch = [&](const Progress& p) { bar.update(p); };
  callbacks.on_epoch = [&](const EpochStats& s) {
    bar.clear();
    if (!f.quiet) table.row(s);
    if (!f.log.empty()) {
      nlohmann::json j{{"epoch", s.epoch}};
      j.update(metrics_json("train", s.train, ds.task));
      j.update(metrics_json("val", s.val, ds.task));
      j.update(metrics_json("test", s.test, ds.task));
      j["learning_rate"] = s.learning_rate;
      j["seconds"] = s.seconds;
      j["samples_per_second"] = s.samples_per_second;
      log_text += j.dump() + "\n";
      // Rewritten whole each epoch: the log on disk is always complete.
      write_output(f.log, log_text);
    }
  };
  std::vector<EpochStats> history = train(model, sgd, data, options, callbacks);
  const EpochStats& last = history.back();

  if (td.test) {
    const Metrics& t = last.test;
    if (ds.task == Task::kClassify) {
      std::printf("test accuracy %s, loss %s (%s examples)\n", format_percent(t.accuracy).c_str(),
                  format_fixed(t.loss, 4).c_str(),
                  format_thousands(static_cast<double>(t.n)).c_str());
    } else {
      std::printf("test rmse %s, loss %s (%s examples)\n", format_fixed(t.rmse, 4).c_str(),
                  format_fixed(t.loss, 4).c_str(),
                  format_thousands(static_cast<double>(t.n)).c_str());
    }
  } else if (!split.val.empty()) {
    std::printf("validation %s %s (%s examples)\n",
                ds.task == Task::kClassify ? "accuracy" : "rmse",
                ds.task == Task::kClassify ? format_percent(last.val.accuracy).c_str()
                                           : format_fixed(last.val.rmse, 4).c_str(),
                format_thousands(static_cast<double>(last.val.n)).c_str());
  } else {
    std::printf("train %s %s (running, last epoch)\n",
                ds.task == Task::kClassify ? "accuracy" : "rmse",
                ds.task == Task::kClassify ? format_percent(last.train.accuracy).c_str()
                                           : format_fixed(last.train.rmse, 4).c_str());
  }
  double total_seconds = 0;
  for (const auto& s : history) total_seconds += s.seconds;
  if (!save.empty()) {
    ModelInfo info;
    info.task = ds.task;
    info.class_names = ds.class_names;
    info.feature_names = ds.feature_names;
    info.label_columns = ds.label_columns;
    info.sample_shape = ds.sample_shape;
    info.preprocess = data.pre;
    info.seed = f.seed;
    info.init = std::string(to_string(init));
    info.data_hash = data_hash(ds);
    info.train_examples = static_cast<Index>(split.train.size());
    save_model(save, model, info);
    std::printf("saved %s (training took %.1f s)\n", save.c_str(), total_seconds);
  } else {
    std::printf("training took %.1f s; model not saved\n", total_seconds);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

Run add_train(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  CLI::App* cmd = app.add_subcommand("train", "train a network and save it");
  cmd->add_option("--data", f->data.data_dir,
                  "folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] and the "
                  "t10k pair (default: Fashion-MNIST at " +
                      std::string(kDefaultDataDir) + ")");
  cmd->add_option("--train", f->data.train, "training data: a CSV file or IDX images");
  cmd->add_option("--labels", f->data.labels, "IDX labels for --train");
  cmd->add_option("--test", f->data.test, "test data, reported after training");
  cmd->add_option("--test-labels", f->data.test_labels, "IDX labels for --test");
  add_csv_flags(cmd, f->data, /*with_task=*/true);
  cmd->add_option("--val-split", f->val_split,
                  "hold out this fraction of the training data for validation (stratified)")
      ->check(number_range(0.0, 0.99));
  auto* s =
      cmd->add_flag("--standardize", f->standardize, "standardise features (default for CSV)");
  auto* ns = cmd->add_flag("--no-standardize", f->no_standardize,
                           "use features as they are (IDX images are still scaled to [0, 1])");
  s->excludes(ns);

  cmd->add_option("--layers", f->layers, "all widths, inputs to outputs: 784,30,10");
  cmd->add_option("--hidden", f->hidden,
                  "hidden widths; inputs and outputs come from the data (default 100)");
  cmd->add_option("--activation", f->activation,
                  "hidden activation: sigmoid, tanh, relu, leaky-relu, identity (default sigmoid)");
  cmd->add_option("--output", f->output,
                  "output activation: softmax, sigmoid, identity (default softmax; sigmoid with "
                  "--loss quadratic; identity for regression)");
  cmd->add_option("--loss", f->loss,
                  "quadratic or cross-entropy (default cross-entropy; quadratic for regression)");
  cmd->add_option("--leaky-slope", f->leaky_slope, "leaky ReLU slope for z < 0 (default 0.01)")
      ->check(number_range(1e-6, 0.999999));
  cmd->add_option("--init", f->init,
                  "auto, xavier, he or lecun (default auto: he for ReLUs, "
                  "else xavier)");

  cmd->add_option("--lr", f->lr, "learning rate η (default 0.1)")->check(positive_number());
  cmd->add_option("--batch-size", f->batch_size, "examples per step (default 16)")
      ->check(integer_range(1, 1 << 24));
  cmd->add_option("--epochs", f->epochs, "passes over the training data (default 20)")
      ->check(integer_range(1, 1000000));
  cmd->add_option("--seed", f->seed, "seeds initialisation, shuffling and the split (default 1)")
      ->check(unsigned_range(0, UINT64_MAX));
  cmd->add_option("--threads", f->threads, "kernel threads; 0 = every core (default 0)")
      ->check(integer_range(0, 1024));
  cmd->add_flag("--eval-test-each-epoch", f->eval_test_each_epoch,
                "report the test set after every epoch, not only the last");

  cmd->add_option("--save", f->save, "model file to write (default model.safetensors)");
  cmd->add_flag("--no-save", f->no_save, "do not write a model file");
  cmd->add_option("--log", f->log, "write one JSON object per epoch to this file");
  cmd->add_flag("--quiet", f->quiet, "print only errors and the final summary");
  return [f] { return run_train(*f); };
}

}  // namespace backprop::cli
