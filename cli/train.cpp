// backprop train: load data, build (or load) the network, train it, report each epoch, save; with
// checkpoints, an exact --resume, and SIGINT/SIGTERM ending in a checkpoint and exit 130/143.
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "backprop/checkpoint.hpp"
#include "backprop/fit.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "kernels/kernels.hpp"
#include "mpi.hpp"
#include "report.hpp"

namespace backprop::cli {

namespace {

struct TrainFlags {
  DataFlags data;
  double val_split = 0;
  bool standardize = false, no_standardize = false, no_standardize_targets = false;
  std::string layers, hidden = "100";
  std::string activation = "sigmoid", output, loss, init = "auto", init_from;
  double leaky_slope = 0.01;
  // Optimizer; --lr defaults per optimizer (0.1 for the SGD family, PyTorch's for the others).
  std::string optimizer = "sgd";
  double lr = 0.1;
  double momentum = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  // Regularisation and schedule.
  std::string dropout;
  double clip_norm = 0, label_smoothing = 0;
  std::string schedule = "constant";
  int warmup = 0, lr_step = 10, plateau_patience = 5, patience = 0;
  double lr_gamma = 0.1, lr_min = 0, plateau_factor = 0.1;
  std::string on_nonfinite = "stop";
  Index batch_size = 16;
  int epochs = 20;
  std::uint64_t seed = 1;
  int threads = 0;
  bool eval_test_each_epoch = false;
  // Checkpoints.
  std::string checkpoint_dir, resume;
  int checkpoint_every = 1, keep = 3;
  double checkpoint_minutes = 0;
  std::string save = "model.safetensors", log, report;
  bool no_save = false, quiet = false, no_overlap = false, shard_data = false;
  // Which flags were given (CLI11 options), for defaults that depend on others.
  CLI::Option *lr_opt = nullptr, *gamma_opt = nullptr, *wd_opt = nullptr;
  CLI::Option *layers_opt = nullptr, *hidden_opt = nullptr, *activation_opt = nullptr,
              *output_opt = nullptr, *loss_opt = nullptr;
};

// The signal that asked training to stop (0: none). The handler only sets it; the loop checks it
// after every batch, writes a checkpoint and unwinds.
std::atomic<bool> g_stop{false};
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  g_stop.store(true);
  // A second signal ends the process at once.
  std::signal(sig, SIG_DFL);
}

nlohmann::json num(double v) {
  if (std::isfinite(v)) return v;
  return nullptr;
}

nlohmann::json metrics_json(const std::string& prefix, const Metrics& m, Task task) {
  nlohmann::json j = nlohmann::json::object();
  if (m.n == 0) return j;
  j[prefix + "_loss"] = num(m.loss);
  if (task == Task::kClassify) {
    j[prefix + "_accuracy"] = num(m.accuracy);
  } else {
    j[prefix + "_rmse"] = num(m.rmse);
  }
  return j;
}

// One line of --log: the epoch's figures, the learning rate, and the network's health.
nlohmann::json epoch_log(const EpochStats& s, Task task) {
  nlohmann::json j{{"epoch", s.epoch}};
  j.update(metrics_json("train", s.train, task));
  j.update(metrics_json("val", s.val, task));
  j.update(metrics_json("test", s.test, task));
  j["learning_rate"] = s.learning_rate;
  j["seconds"] = s.seconds;
  j["samples_per_second"] = s.samples_per_second;
  j["grad_norm"] = num(s.grad_norm);
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t l = 0; l < s.layers.size(); ++l) {
    const LayerHealth& h = s.layers[l];
    nlohmann::json lj{
        {"layer", l + 1}, {"weight_norm", num(h.weight_norm)}, {"grad_norm", num(h.grad_norm)}};
    if (!std::isnan(h.saturated)) lj["saturated"] = h.saturated;
    if (!std::isnan(h.dead)) lj["dead"] = h.dead;
    layers.push_back(lj);
  }
  j["layers"] = layers;
  if (s.skipped_batches > 0) j["skipped_batches"] = s.skipped_batches;
  if (s.best) j["best"] = true;
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
    std::printf("  %9s  %8s  %10s\n", "lr", "seconds", "samples/s");
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
    char lr[32];
    std::snprintf(lr, sizeof lr, "%.3g", s.learning_rate);
    std::printf("  %9s  %8s  %10s%s\n", lr, format_fixed(s.seconds, 2).c_str(),
                format_thousands(s.samples_per_second).c_str(), s.best ? "  *" : "");
    std::fflush(stdout);
  }

 private:
  std::string figure(const Metrics& m) const {
    return task_ == Task::kClassify ? format_percent(m.accuracy) : format_fixed(m.rmse, 4);
  }
  Task task_;
  bool val_, test_;
};

// A directory that exists and can be written (checkpoints go there), checked before any data is
// read. With `create`, a missing directory is made (its parent must exist, as with mkdir).
void check_directory(const std::string& flag, const std::string& dir, bool create) {
  struct stat st {};
  if (create && ::stat(dir.c_str(), &st) != 0 && errno == ENOENT &&
      ::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST) {
    throw Error(ErrorCode::kUsage,
                flag + " " + dir + ": cannot create it: " + std::strerror(errno));
  }
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kUsage, flag + " " + dir + ": not a directory");
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw Error(ErrorCode::kUsage, flag + " " + dir + ": not writable");
  }
}

std::vector<double> parse_rates(const std::string& flag, const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split_list(text)) {
    double v = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || !(v >= 0) ||
        !(v < 1)) {
      throw Error(ErrorCode::kUsage,
                  flag + " '" + text + "': '" + item + "' is not a rate in [0, 1)");
    }
    out.push_back(v);
  }
  return out;
}

// Everything that decides the trained weights, as JSON: stored in checkpoints and compared on
// --resume. Threads, output paths, logging and checkpoint settings are left out (they change
// nothing in the result).
// data.standardize_targets appears only when true, so that checkpoints of runs from before target
// standardisation resume with --no-standardize-targets (and are refused without it).
nlohmann::json run_config(const TrainFlags& f, const ModelSpec& spec, const OptimizerConfig& oc,
                          const TrainOptions& o, bool standardize, bool standardize_targets) {
  nlohmann::json s{{"kind", std::string(to_string(o.schedule.kind))},
                   {"warmup", o.schedule.warmup},
                   {"step", o.schedule.step},
                   {"gamma", o.schedule.gamma},
                   {"min_lr", o.schedule.min_lr},
                   {"plateau_patience", o.schedule.plateau_patience},
                   {"plateau_factor", o.schedule.plateau_factor}};
  nlohmann::json config{
      {"data",
       {{"task", f.data.task},
        {"label_column", f.data.label_column},
        {"header", f.data.header      ? "yes"
                   : f.data.no_header ? "no"
                                      : "auto"},
        {"val_split", f.val_split},
        {"standardize", standardize}}},
      {"model",
       {{"layers", spec.layers},
        {"hidden", std::string(to_string(spec.hidden))},
        {"output", std::string(to_string(spec.output))},
        {"loss", std::string(to_string(spec.loss))},
        {"leaky_slope", spec.leaky_slope},
        {"init", f.init},
        {"init_from", f.init_from}}},
      {"optimizer",
       {{"kind", oc.kind},
        {"lr", oc.lr.value_or(default_learning_rate(oc.kind))},
        {"momentum", oc.momentum},
        {"beta1", oc.beta1},
        {"beta2", oc.beta2},
        {"eps", oc.eps},
        {"weight_decay", oc.weight_decay.value_or(oc.kind == "adamw" ? 1e-2 : 0.0)}}},
      {"training",
       {{"epochs", o.epochs},
        {"batch_size", o.batch_size},
        {"seed", std::to_string(o.seed)},
        {"dropout", o.dropout},
        {"clip_norm", o.clip_norm},
        {"label_smoothing", o.label_smoothing},
        {"schedule", s},
        {"patience", o.patience},
        {"on_nonfinite", f.on_nonfinite}}}};
  if (standardize_targets) config["data"]["standardize_targets"] = true;
  return config;
}

// "optimizer.lr: 0.1 in the checkpoint, 0.2 here" for every leaf that differs.
void diff_configs(const nlohmann::json& a, const nlohmann::json& b, const std::string& path,
                  std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      diff_configs(value, b.contains(key) ? b.at(key) : nlohmann::json(),
                   path.empty() ? key : path + "." + key, out);
    }
    for (const auto& [key, value] : b.items()) {
      if (!a.contains(key)) {
        out.push_back(escape_controls(path.empty() ? key : path + "." + key, 200) + ": new here");
      }
    }
  } else if (a != b) {
    // Key names and values from the checkpoint file are echoed with control bytes escaped.
    out.push_back(escape_controls(path, 200) + ": " + escape_controls(a.dump(), 200) +
                  " in the checkpoint, " + b.dump() + " here");
  }
}

// Sharded: the identity of the whole data set from every rank's part, the same on every rank.
std::string sharded_data_hash(MpiGroup& group, const Dataset& ds) {
  const std::string mine = data_hash(ds);  // "xxh3-128:" and 32 hex digits
  constexpr std::size_t kDigits = 9;
  const std::vector<std::uint64_t> high =
      group.gather(std::stoull(mine.substr(kDigits, 16), nullptr, 16));
  const std::vector<std::uint64_t> low =
      group.gather(std::stoull(mine.substr(kDigits + 16, 16), nullptr, 16));
  std::vector<std::string> parts;
  for (std::size_t r = 0; r < high.size(); ++r) {
    char hex[33];
    std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(high[r]),
                  static_cast<unsigned long long>(low[r]));
    parts.push_back(std::string("xxh3-128:") + hex);
  }
  return combined_data_hash(parts);
}

// The flags as the library's FitConfig (widths, activations, init, optimizer, schedule, dropout,
// split, standardisation), with the flag names for messages. Throws Error(kUsage) naming a flag
// whose value does not parse.
FitConfig fit_config(const TrainFlags& f) {
  FitConfig c;
  c.names = {.layers = "--layers",
             .hidden = "--hidden",
             .activation = "--activation",
             .output = "--output",
             .loss = "--loss",
             .init = "--init",
             .optimizer = "--optimizer",
             .val_split = "--val-split"};
  if (f.layers.empty()) {
    c.hidden = parse_width_list("--hidden", f.hidden);
  } else {
    c.hidden.clear();
    c.layers = parse_width_list("--layers", f.layers);
  }
  c.activation = f.activation;
  c.output = f.output;
  c.loss = f.loss;
  c.leaky_slope = f.leaky_slope;
  c.init = f.init;

  OptimizerConfig& oc = c.optimizer;
  oc.kind = f.optimizer;
  if (f.lr_opt->count() > 0) oc.lr = f.lr;
  oc.momentum = f.momentum;
  oc.beta1 = f.beta1;
  oc.beta2 = f.beta2;
  oc.eps = f.eps;
  if (f.wd_opt->count() > 0) oc.weight_decay = f.weight_decay;

  TrainOptions& o = c.train;
  o.epochs = f.epochs;
  o.batch_size = f.batch_size;
  o.seed = f.seed;
  o.eval_test_each_epoch = f.eval_test_each_epoch;
  o.schedule.kind = for_flag("--schedule", [&] { return parse_schedule(f.schedule); });
  o.schedule.warmup = f.warmup;
  o.schedule.step = f.lr_step;
  // γ's default depends on the schedule: 0.1 per step, 0.95 per epoch for exponential.
  o.schedule.gamma = f.gamma_opt->count() > 0
                         ? f.lr_gamma
                         : (o.schedule.kind == ScheduleKind::kExponential ? 0.95 : 0.1);
  o.schedule.min_lr = f.lr_min;
  o.schedule.plateau_patience = f.plateau_patience;
  o.schedule.plateau_factor = f.plateau_factor;
  o.dropout = f.dropout.empty() ? std::vector<double>{} : parse_rates("--dropout", f.dropout);
  o.clip_norm = f.clip_norm;
  o.label_smoothing = f.label_smoothing;
  o.patience = f.patience;
  o.on_nonfinite =
      f.on_nonfinite == "skip-batch" ? NonFinitePolicy::kSkipBatch : NonFinitePolicy::kStop;
  o.checkpoint_every_epochs = f.checkpoint_every;
  o.checkpoint_every_minutes = f.checkpoint_minutes;
  o.stop = &g_stop;
  o.overlap_sums = !f.no_overlap;

  c.val_split = f.val_split;
  c.standardize = f.standardize ? 1 : f.no_standardize ? 0 : -1;
  c.standardize_targets = !f.no_standardize_targets;
  return c;
}

// Flags that cannot go together: --layers with --hidden, --init-from with any architecture flag.
void check_architecture_flags(const TrainFlags& f) {
  if (!f.layers.empty() && f.hidden_opt->count() > 0) {
    throw Error(ErrorCode::kUsage, "give either --layers or --hidden, not both");
  }
  if (!f.init_from.empty() &&
      (f.layers_opt->count() > 0 || f.hidden_opt->count() > 0 || f.activation_opt->count() > 0 ||
       f.output_opt->count() > 0 || f.loss_opt->count() > 0)) {
    throw Error(ErrorCode::kUsage,
                "--init-from takes the architecture from its file: drop --layers, --hidden, "
                "--activation, --output and --loss");
  }
}

// The files and folder this process writes (empty: none).
struct Outputs {
  std::string save, log, report, checkpoint_dir;
};

// Before any data is read: every output path can be written and names another file, the
// checkpoint folders exist (--checkpoint-dir is made), and --report is not asked of a sharded
// run. Only rank 0 writes: the other ranks get empty paths (checkpoints are rank 0's too).
Outputs check_outputs(const TrainFlags& f, bool sharded, bool rank0) {
  Outputs out{f.no_save ? "" : f.save, f.log, f.report,
              !f.checkpoint_dir.empty() ? f.checkpoint_dir : f.resume};
  check_output_path("--save", out.save, {});
  check_output_path("--log", out.log, {});
  check_output_path("--report", out.report, {});
  if (!out.save.empty() && out.save == out.log) {
    throw Error(ErrorCode::kUsage, "--save and --log name the same file");
  }
  if (!out.report.empty() && (out.report == out.save || out.report == out.log)) {
    throw Error(ErrorCode::kUsage, "--report names the same file as --save or --log");
  }
  // Sharded, no rank holds the whole data the report's confusion matrix and examples come from.
  if (sharded && !out.report.empty()) {
    throw Error(ErrorCode::kUsage,
                "--report needs the whole data on one rank, and --shard-data splits it: write "
                "--log and --save, then run backprop report --log LOG --model MODEL --test FILE");
  }
  if (!f.resume.empty()) check_directory("--resume", f.resume, false);
  if (!out.checkpoint_dir.empty()) check_directory("--checkpoint-dir", out.checkpoint_dir, true);
  if (!rank0) {
    out.save.clear();
    out.log.clear();
    out.report.clear();
  }
  return out;
}

// After the data is read: no output is one of its files.
void check_outputs_are_not_inputs(const Outputs& out, const std::vector<std::string>& inputs) {
  check_output_path("--save", out.save, inputs);
  check_output_path("--log", out.log, inputs);
  check_output_path("--report", out.report, inputs);
}

// --init-from's architecture, which must map the data's features to its outputs.
ModelSpec init_from_spec(const std::string& path, const ModelFile& from, const Dataset& ds) {
  const ModelSpec& spec = from.model.spec();
  if (spec.layers.front() != ds.n_features || spec.layers.back() != ds.n_outputs()) {
    throw Error(ErrorCode::kData, path + ": the model maps " + std::to_string(spec.layers.front()) +
                                      " inputs to " + std::to_string(spec.layers.back()) +
                                      " outputs, but " + ds.source + " has " +
                                      std::to_string(ds.n_features) + " features and " +
                                      std::to_string(ds.n_outputs()) + " outputs");
  }
  return spec;
}

// --resume: the newest valid checkpoint of the folder, refused if made with another
// configuration (`config`, run_config's text).
Checkpoint resume_checkpoint(const TrainFlags& f, const std::string& config) {
  std::vector<std::string> skipped;
  Checkpoint ckpt = find_checkpoint(f.resume, f.data.limits(), &skipped);
  for (const std::string& s : skipped) {
    std::fprintf(stderr, "backprop train: warning: %s; falling back to an older checkpoint\n",
                 s.c_str());
  }
  std::vector<std::string> diffs;
  diff_configs(nlohmann::json::parse(ckpt.config), nlohmann::json::parse(config), "", diffs);
  if (!diffs.empty()) {
    std::string list;
    for (std::size_t i = 0; i < diffs.size() && i < 4; ++i) {
      if (i) list += "; ";
      list += diffs[i];
    }
    if (diffs.size() > 4) list += "; and " + std::to_string(diffs.size() - 4) + " more";
    throw Error(ErrorCode::kUsage, "--resume " + f.resume + ": " + ckpt.path +
                                       " was made with another configuration: " + list);
  }
  return ckpt;
}

// The checkpoint's data and optimizer must be this run's; then its weights and optimizer state
// replace the fresh ones.
void restore_checkpoint(const TrainFlags& f, const Checkpoint& ckpt, const std::string& data_hash,
                        MpiGroup* group, bool sharded, Model& model, Optimizer& optimizer) {
  if (ckpt.data_hash != data_hash) {
    // A sharded run's data hash is that of its N parts (combined_data_hash).
    const std::string hint =
        group != nullptr
            ? "; if the checkpoint's run used --shard-data, resume with it and the same number "
              "of ranks (here " +
                  std::to_string(group->size()) + (sharded ? ", sharded)" : ", not sharded)")
            : "";
    throw Error(ErrorCode::kData, "--resume " + f.resume + ": " + ckpt.path +
                                      " was trained on other data (" + ckpt.data_hash +
                                      ", this data is " + data_hash + ")" + hint);
  }
  if (ckpt.optimizer != optimizer.name()) {
    throw Error(ErrorCode::kUsage, "--resume: the checkpoint's optimizer is " + ckpt.optimizer +
                                       ", this run's " + std::string(optimizer.name()));
  }
  std::copy(ckpt.model.model.params().begin(), ckpt.model.model.params().end(),
            model.params().begin());
  optimizer.set_state(ckpt.optimizer_state, model.params().size());
}

// Before the first sum: every rank must be running the same command on the same data, from the
// same checkpoint. Sharded, each rank holds other rows: it compares what it knows of the whole
// (the row counts, the features, the classes). A difference is raised on every rank at once.
void check_ranks_agree(MpiGroup& group, const std::string& config, const Checkpoint* ckpt,
                       bool sharded, const TrainingData& td, const std::string& data_hash,
                       bool& collective_error) {
  const Dataset& ds = td.train;
  std::string what = config + "\n" + (ckpt ? ckpt->path : std::string()) + "\n";
  if (sharded) {
    what += std::to_string(ds.whole_rows()) + " " + std::to_string(ds.n_features) + " " +
            (td.test ? std::to_string(td.test->whole_rows()) : std::string("-"));
    for (const std::string& c : ds.class_names) what += "\n" + c;
  } else {
    what += data_hash;
  }
  const std::vector<std::uint64_t> all = group.gather(fingerprint(what));
  for (int r = 1; r < group.size(); ++r) {
    if (all[static_cast<std::size_t>(r)] != all[0]) {
      collective_error = true;
      throw Error(ErrorCode::kUsage,
                  "rank " + std::to_string(r) + " of " + std::to_string(group.size()) +
                      " has another configuration, data or checkpoint than rank 0: every "
                      "rank must run the same command on the same files");
    }
  }
}

// The data, model and training lines above the epoch table.
void print_header(const TrainFlags& f, const TrainingData& td, Index train_rows, Index val_rows,
                  const MpiGroup* sharded_over, const ModelSpec& spec, const ModelInfo& info,
                  const Optimizer& optimizer, const Checkpoint* ckpt) {
  const Dataset& ds = td.train;
  std::printf("data    %s: %s examples (%s for training, %s held out)%s%s\n", ds.source.c_str(),
              format_thousands(static_cast<double>(ds.whole_rows())).c_str(),
              format_thousands(static_cast<double>(train_rows)).c_str(),
              format_thousands(static_cast<double>(val_rows)).c_str(),
              td.test ? (", test " + td.test->source + ": " +
                         format_thousands(static_cast<double>(td.test->whole_rows())) + " examples")
                            .c_str()
                      : "",
              sharded_over != nullptr
                  ? (", sharded over " + std::to_string(sharded_over->size()) + " ranks").c_str()
                  : "");
  std::printf("model   %s, %s hidden, %s output, %s loss, %s parameters, init %s\n",
              format_layers(spec.layers).c_str(), std::string(to_string(spec.hidden)).c_str(),
              std::string(to_string(spec.output)).c_str(),
              std::string(to_string(spec.loss)).c_str(),
              format_thousands(static_cast<double>(spec.n_params())).c_str(), info.init.c_str());
  std::printf("train   %s lr %g, batch %lld, %d epochs, seed %llu, %d threads, %s kernels\n",
              std::string(optimizer.name()).c_str(), optimizer.learning_rate(),
              static_cast<long long>(f.batch_size), f.epochs,
              static_cast<unsigned long long>(f.seed), num_threads(), kernels::active().name);
  if (ckpt) {
    std::printf("resume  %s: epoch %d, batch %lld\n", ckpt->path.c_str(), ckpt->state.epoch,
                static_cast<long long>(ckpt->state.batch));
  }
  std::fflush(stdout);
}

// After training: early stopping, the final figure (test, else validation, else the last epoch's
// running figure), and the training time.
void print_summary(const TrainOptions& options, const std::vector<EpochStats>& history,
                   const Metrics* test, const Metrics* val, Task task) {
  const EpochStats& last = history.back();
  if (options.patience > 0 && static_cast<int>(history.size()) < options.epochs) {
    std::printf("stopped early after epoch %d: no better validation loss for %d epochs\n",
                last.epoch, options.patience);
  }
  if (options.patience > 0) {
    int best = 0;
    for (const EpochStats& s : history) best = s.best ? s.epoch : best;
    if (best > 0) std::printf("restored the weights of epoch %d (best validation loss)\n", best);
  }
  const bool classify = task == Task::kClassify;
  if (test != nullptr) {
    std::printf(
        "test %s %s, loss %s (%s examples)\n", classify ? "accuracy" : "rmse",
        classify ? format_percent(test->accuracy).c_str() : format_fixed(test->rmse, 4).c_str(),
        format_fixed(test->loss, 4).c_str(),
        format_thousands(static_cast<double>(test->n)).c_str());
  } else if (val != nullptr) {
    std::printf(
        "validation %s %s (%s examples)\n", classify ? "accuracy" : "rmse",
        classify ? format_percent(val->accuracy).c_str() : format_fixed(val->rmse, 4).c_str(),
        format_thousands(static_cast<double>(val->n)).c_str());
  } else {
    std::printf("train %s %s (running, last epoch)\n", classify ? "accuracy" : "rmse",
                classify ? format_percent(last.train.accuracy).c_str()
                         : format_fixed(last.train.rmse, 4).c_str());
  }
}

double total_seconds(const std::vector<EpochStats>& history) {
  double total = 0;
  for (const auto& s : history) total += s.seconds;
  return total;
}

// collective_error: set when the error was raised on every rank at once (a decision the ranks
// took together), so that each can end normally instead of aborting the job.
int run_train_on(TrainFlags& f, MpiGroup* group, bool& collective_error) {
  const bool rank0 = group == nullptr || group->rank() == 0;
  // Everything that can be checked without data is checked first.
  check_architecture_flags(f);
  const FitConfig config = fit_config(f);
  check_fit_config(config, f.data.task == "regress" ? Task::kRegress : Task::kClassify);
  std::unique_ptr<Optimizer> optimizer = make_optimizer(config.optimizer);
  TrainOptions options = config.train;

  const bool sharded = f.shard_data && group != nullptr;
  if (f.shard_data && group == nullptr && !f.quiet) {
    std::fprintf(stderr,
                 "backprop train: warning: --shard-data has no effect without mpirun (one "
                 "process reads all the data)\n");
  }
  const Outputs out = check_outputs(f, sharded, rank0);
  // Under mpirun, the default shares this machine's cores among its ranks.
  set_num_threads(
      f.threads == 0 && group != nullptr
          ? std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / group->local_size())
          : f.threads);

  // --init-from: the architecture, weights, classes and preprocessing of a model file.
  std::optional<ModelFile> from;
  if (!f.init_from.empty()) from = load_model(f.init_from, f.data.limits());

  const Shard shard = sharded ? Shard{group->rank(), group->size()} : Shard{};
  TrainingData td = load_training_data(f.data, shard);
  check_outputs_are_not_inputs(out, td.inputs);
  Dataset& ds = td.train;
  if (from && ds.task == Task::kClassify && !from->info.class_names.empty()) {
    align_classes(ds, from->info.class_names);
    if (td.test) align_classes(*td.test, from->info.class_names);
  }
  const ModelSpec spec = from ? init_from_spec(f.init_from, *from, ds) : fit_spec(config, ds);
  // Sharded: each rank splits its own part (the loop checks that some rank has training rows).
  const Split split = fit_split(config, ds, sharded);
  const bool standardize = fit_standardizes(config, ds);

  Model model(spec);
  const Init init = fit_init(config, spec.hidden);
  if (from) {
    std::copy(from->model.params().begin(), from->model.params().end(), model.params().begin());
  } else {
    model.init(init, f.seed);
  }
  ModelInfo info =
      fit_info(config, ds, from ? "from " + f.init_from : std::string(to_string(init)));
  const std::string run = run_config(f, spec, config.optimizer, options, standardize,
                                     ds.task == Task::kRegress && config.standardize_targets)
                              .dump();
  std::optional<Checkpoint> ckpt;
  if (!f.resume.empty()) ckpt = resume_checkpoint(f, run);

  // The data's identity (sharded: from every rank's part, after the ranks have agreed).
  if (!sharded) info.data_hash = data_hash(ds);
  if (group != nullptr) {
    options.collective = group;
    check_ranks_agree(*group, run, ckpt ? &*ckpt : nullptr, sharded, td, info.data_hash,
                      collective_error);
  }
  if (sharded) info.data_hash = sharded_data_hash(*group, ds);

  TrainData data;
  data.data = &ds;
  data.train_rows = split.train;
  data.val_rows = split.val;
  data.test = td.test ? &*td.test : nullptr;
  data.sharded = sharded;
  data.pre = fit_preprocess(config, ds, split.train, sharded ? group : nullptr);
  if (from && !from->info.preprocess.shift.empty()) data.pre = from->info.preprocess;
  info.preprocess = data.pre;
  // Row counts of the whole run (sharded: summed over the ranks).
  std::array<double, 2> counts = {static_cast<double>(split.train.size()),
                                  static_cast<double>(split.val.size())};
  if (sharded) group->sum(counts);
  const auto train_rows = static_cast<Index>(counts[0]), val_rows = static_cast<Index>(counts[1]);
  info.train_examples = train_rows;
  if (ckpt) restore_checkpoint(f, *ckpt, info.data_hash, group, sharded, model, *optimizer);

  if (!f.quiet) {
    print_header(f, td, train_rows, val_rows, sharded ? group : nullptr, spec, info, *optimizer,
                 ckpt ? &*ckpt : nullptr);
  }
  EpochTable table(ds.task, val_rows > 0, td.test && f.eval_test_each_epoch);
  if (!f.quiet) table.header();
  ProgressBar bar;
  std::string log_text;
  auto log_epoch = [&](const EpochStats& s) {
    if (out.log.empty()) return;
    log_text += epoch_log(s, ds.task).dump() + "\n";
    write_output(out.log, log_text);  // rewritten whole each epoch: always complete on disk
  };
  if (ckpt) {  // the epochs before the resume, as they were
    for (const EpochStats& s : ckpt->state.history) {
      if (!f.quiet) table.row(s);
      log_epoch(s);
    }
  }
  TrainCallbacks callbacks;
  if (!f.quiet) callbacks.on_batch = [&](const Progress& p) { bar.update(p); };
  callbacks.on_epoch = [&](const EpochStats& s) {
    bar.clear();
    if (!f.quiet) table.row(s);
    log_epoch(s);
  };
  std::optional<CheckpointWriter> writer;
  if (!out.checkpoint_dir.empty() && rank0) {
    writer.emplace(out.checkpoint_dir, f.keep, run, info.data_hash, info);
    callbacks.checkpoint = [&](const Model& m, const Optimizer& o, const TrainState& st) {
      return writer->write(m, o, st);
    };
  }
  std::string last_checkpoint;
  callbacks.on_checkpoint = [&](const std::string& path) { last_checkpoint = path; };

  g_stop.store(false);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::vector<EpochStats> history;
  try {
    history = train(model, *optimizer, data, options, callbacks, ckpt ? &ckpt->state : nullptr);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInterrupted) {
      // With several ranks, a non-finite value or a bad option is seen by all of them at once
      // (the loop decides from summed figures); a failed checkpoint write is rank 0's alone.
      collective_error = e.code() == ErrorCode::kNumeric || e.code() == ErrorCode::kUsage;
      throw;
    }
    bar.clear();
    const int sig = g_signal;
    if (rank0)
      std::fprintf(
          stderr, "backprop train: %s by %s; %s\n", e.what(), sig == SIGTERM ? "SIGTERM" : "SIGINT",
          last_checkpoint.empty()
              ? "no checkpoint (no --checkpoint-dir)"
              : ("checkpoint " + last_checkpoint + "; continue with --resume " + out.checkpoint_dir)
                    .c_str());
    return 128 + (sig == SIGTERM ? SIGTERM : SIGINT);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  // The final model (with early stopping: the best epoch's) on the test set, else on the
  // validation rows.
  std::optional<Metrics> test, val;
  if (td.test) {
    test = sharded ? evaluate_sharded(model, *td.test, all_rows(*td.test), data.pre, *group).metrics
                   : evaluate(model, *td.test, {}, data.pre).metrics;
  } else if (val_rows > 0) {
    val = sharded ? evaluate_sharded(model, ds, split.val, data.pre, *group).metrics
                  : evaluate(model, ds, split.val, data.pre).metrics;
  }
  print_summary(options, history, test ? &*test : nullptr, val ? &*val : nullptr, ds.task);
  if (!out.save.empty()) {
    save_model(out.save, model, info);
    std::printf("saved %s (training took %.1f s)\n", out.save.c_str(), total_seconds(history));
  } else {
    std::printf("training took %.1f s; model not saved\n", total_seconds(history));
  }
  if (!out.report.empty()) {
    std::vector<nlohmann::json> epochs;
    for (const EpochStats& s : history) epochs.push_back(epoch_log(s, ds.task));
    write_train_report(out.report, epochs, model, info, out.save, ds, split.val,
                       td.test ? &*td.test : nullptr, data.pre);
    std::printf("report %s\n", out.report.c_str());
  }
  std::fflush(stdout);
  return 0;
}

// `backprop train`, alone or as one rank of `mpirun -np N backprop train ...`: there, only rank
// 0 prints and writes; an error on one rank ends the whole job with that rank's message.
int run_train(TrainFlags& f) {
  std::unique_ptr<MpiGroup> group = MpiGroup::start_if_launched();
  bool collective = false;
  if (group == nullptr) return run_train_on(f, nullptr, collective);
  if (group->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) {
    group->abort(1);
  }
  int code = 1;
  std::string what;
  try {
    return run_train_on(f, group.get(), collective);
  } catch (const Error& e) {
    code = e.code() == ErrorCode::kUsage ? 2 : 1;
    if (collective) {
      if (group->rank() == 0) throw;  // main prints it, as without MPI
      // The other ranks leave quietly with status 0: the job's status is rank 0's, and mpirun
      // ends the whole job as soon as one rank exits non-zero, which could kill rank 0 before
      // it has printed the message.
      return 0;
    }
    what = e.what();
  } catch (const std::exception& e) {
    what = e.what();
  }
  std::fprintf(stderr, "backprop train: error: rank %d of %d: %s\n", group->rank(), group->size(),
               escape_controls(what).c_str());
  std::fflush(stderr);
  group->abort(code);
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
  cmd->add_flag("--no-standardize-targets", f->no_standardize_targets,
                "regression: train on the targets as they are (default: each target "
                "standardised from the training rows, outputs given in the targets' units)");

  f->layers_opt =
      cmd->add_option("--layers", f->layers, "all widths, inputs to outputs: 784,30,10");
  f->hidden_opt = cmd->add_option(
      "--hidden", f->hidden, "hidden widths; inputs and outputs come from the data (default 100)");
  f->activation_opt = cmd->add_option(
      "--activation", f->activation,
      "hidden activation: sigmoid, tanh, relu, leaky-relu, identity (default sigmoid)");
  f->output_opt = cmd->add_option("--output", f->output,
                                  "output activation: softmax, sigmoid, identity (default "
                                  "softmax; sigmoid with --loss quadratic; identity for "
                                  "regression)");
  f->loss_opt = cmd->add_option(
      "--loss", f->loss,
      "quadratic or cross-entropy (default cross-entropy; quadratic for regression)");
  cmd->add_option("--leaky-slope", f->leaky_slope, "leaky ReLU slope for z < 0 (default 0.01)")
      ->check(number_range(1e-6, 0.999999));
  cmd->add_option("--init", f->init,
                  "auto, xavier, he or lecun (default auto: he for ReLUs, else xavier)");
  cmd->add_option("--init-from", f->init_from,
                  "start from this model file: its architecture, weights, classes and "
                  "preprocessing");

  cmd->add_option("--optimizer", f->optimizer,
                  "sgd, momentum, nesterov, adam, adamw, rmsprop or irprop (default sgd)")
      ->check(CLI::IsMember({"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "irprop"}));
  f->lr_opt = cmd->add_option("--lr", f->lr,
                              "learning rate η (default 0.1 for sgd, momentum, nesterov; 0.001 "
                              "for adam, adamw; 0.01 for rmsprop and irprop's initial step)")
                  ->check(positive_number());
  cmd->add_option("--momentum", f->momentum, "momentum μ of momentum and nesterov (default 0.9)")
      ->check(number_range(0.0, 0.999999));
  cmd->add_option("--beta1", f->beta1, "Adam's β1 (default 0.9)")
      ->check(number_range(0.0, 0.999999));
  cmd->add_option("--beta2", f->beta2, "Adam's β2 (default 0.999)")
      ->check(number_range(0.0, 0.999999999));
  cmd->add_option("--eps", f->eps, "Adam's and RMSprop's ε (default 1e-8)")
      ->check(positive_number());
  f->wd_opt = cmd->add_option("--weight-decay", f->weight_decay,
                              "L2 weight decay λ (decoupled for adamw; default 0, adamw 0.01)")
                  ->check(number_range(0.0, 1e6));
  cmd->add_option("--dropout", f->dropout,
                  "inverted dropout on the hidden layers' outputs: one rate for all, or one per "
                  "hidden layer (0.2,0.5)");
  cmd->add_option("--clip-norm", f->clip_norm,
                  "clip the gradient's global L2 norm to this (default 0: off)")
      ->check(number_range(0.0, 1e30));
  cmd->add_option("--label-smoothing", f->label_smoothing,
                  "cross-entropy targets (1−ε)·one-hot + ε/K (default 0)")
      ->check(number_range(0.0, 0.999));
  cmd->add_option("--schedule", f->schedule,
                  "learning rate per epoch: constant, step, exponential, cosine, plateau "
                  "(default constant)");
  cmd->add_option("--warmup", f->warmup, "epochs of linear warm-up (default 0)")
      ->check(integer_range(0, 1000000));
  cmd->add_option("--lr-step", f->lr_step, "step schedule: epochs between decays (default 10)")
      ->check(integer_range(1, 1000000));
  f->gamma_opt = cmd->add_option("--lr-gamma", f->lr_gamma,
                                 "step and exponential schedules: factor per decay (default "
                                 "0.1 for step, 0.95 for exponential)")
                     ->check(number_range(1e-9, 1.0));
  cmd->add_option("--lr-min", f->lr_min, "cosine schedule: the final learning rate (default 0)")
      ->check(number_range(0.0, 1e6));
  cmd->add_option("--plateau-patience", f->plateau_patience,
                  "plateau schedule: epochs without a better validation loss before reducing "
                  "(default 5)")
      ->check(integer_range(1, 1000000));
  cmd->add_option("--plateau-factor", f->plateau_factor,
                  "plateau schedule: the factor of each reduction (default 0.1)")
      ->check(number_range(1e-9, 0.999999));
  cmd->add_option("--patience", f->patience,
                  "early stopping: stop after this many epochs without a better validation loss "
                  "and keep the best epoch's weights (default 0: off)")
      ->check(integer_range(0, 1000000));
  cmd->add_option("--on-nonfinite", f->on_nonfinite,
                  "a NaN or infinite loss, gradient or weight: stop (default) or skip-batch")
      ->check(CLI::IsMember({"stop", "skip-batch"}));

  cmd->add_option("--batch-size", f->batch_size, "examples per step (default 16)")
      ->check(integer_range(1, 1 << 24));
  cmd->add_option("--epochs", f->epochs, "passes over the training data (default 20)")
      ->check(integer_range(1, 1000000));
  cmd->add_option("--seed", f->seed,
                  "seeds initialisation, shuffling, the split and dropout (default 1)")
      ->check(unsigned_range(0, UINT64_MAX));
  cmd->add_option("--threads", f->threads, "kernel threads; 0 = every core (default 0)")
      ->check(integer_range(0, 1024));
  cmd->add_flag("--eval-test-each-epoch", f->eval_test_each_epoch,
                "report the test set after every epoch, not only the last");

  cmd->add_option("--checkpoint-dir", f->checkpoint_dir,
                  "write checkpoints to this folder (atomically; resume with --resume)");
  cmd->add_option("--checkpoint-every", f->checkpoint_every,
                  "checkpoint at the end of every N-th epoch (default 1; 0: only the last)")
      ->check(integer_range(0, 1000000));
  cmd->add_option("--checkpoint-minutes", f->checkpoint_minutes,
                  "also checkpoint mid-epoch once this many minutes have passed (default 0: off)")
      ->check(number_range(0.0, 1e9));
  cmd->add_option("--keep", f->keep, "keep the newest K checkpoints (default 3)")
      ->check(integer_range(1, 1000000));
  cmd->add_option("--resume", f->resume,
                  "continue from the newest valid checkpoint in this folder (same flags and data "
                  "as the interrupted run); new checkpoints go there too");

  cmd->add_flag("--shard-data", f->shard_data,
                "under mpirun: each rank reads and keeps only its part of the training and test "
                "data (1/N of the rows) instead of all of it; see docs/distributed.md");
  cmd->add_flag("--no-overlap", f->no_overlap,
                "under mpirun: sum all gradients after backward instead of each layer's as soon as "
                "it is done (to measure the overlap)");

  cmd->add_option("--save", f->save, "model file to write (default model.safetensors)");
  cmd->add_flag("--no-save", f->no_save, "do not write a model file");
  cmd->add_option("--log", f->log,
                  "write one JSON object per epoch to this file: metrics, learning rate, "
                  "gradient norms, per-layer health");
  cmd->add_option("--report", f->report,
                  "write a self-contained HTML report of the run here at the end (curves, layer "
                  "health, confusion matrix or scatter; docs/report.md)");
  cmd->add_flag("--quiet", f->quiet, "print only errors and the final summary");
  return [f] { return run_train(*f); };
}

}  // namespace backprop::cli
