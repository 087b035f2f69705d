#include "backprop/fit.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "io/printable.hpp"

namespace backprop {

namespace {

// A name as a message may show it: quoted, cut, control bytes escaped.
std::string in_quotes(const std::string& s) {
  constexpr std::size_t kMaxEcho = 200;
  return "'" + detail::escape_controls(s, kMaxEcho) + "'";
}

// Runs f(); an Error(kUsage) it throws is rethrown with "name: " in front, and control bytes of
// the echoed value escaped (the message is one line whatever the value holds).
template <class F>
auto named(const std::string& name, F f) {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUsage) throw;
    throw Error(ErrorCode::kUsage, name + ": " + detail::escape_controls(e.what()));
  }
}

std::string outputs_word(const Dataset& ds) {
  return ds.task == Task::kClassify ? " classes" : " targets";
}

}  // namespace

void parse_spec_names(ModelSpec& spec, const std::string& activation, const std::string& output,
                      const std::string& loss, const FitNames& names) {
  spec.hidden = named(names.activation, [&] { return parse_activation(activation); });
  if (!is_hidden_activation(spec.hidden)) {
    throw Error(ErrorCode::kUsage, names.activation + ": " + in_quotes(activation) +
                                       " is an output activation; hidden layers take sigmoid, "
                                       "tanh, relu, leaky-relu or identity");
  }
  spec.output = named(names.output, [&] { return parse_activation(output); });
  if (!is_output_activation(spec.output)) {
    throw Error(ErrorCode::kUsage, names.output + ": " + in_quotes(output) +
                                       " is not an output activation: expected softmax, sigmoid "
                                       "or identity");
  }
  spec.loss = named(names.loss, [&] { return parse_loss(loss); });
  if (!is_valid_output_loss(spec.output, spec.loss)) {
    throw Error(ErrorCode::kUsage, names.loss + " " + loss + " needs probabilities: use " +
                                       names.output + " softmax or sigmoid, or " + names.loss +
                                       " quadratic with " + names.output + " " + output);
  }
}

std::string fit_loss_name(const FitConfig& config, Task task) {
  if (!config.loss.empty()) return config.loss;
  return task == Task::kRegress ? "quadratic" : "cross-entropy";
}

std::string fit_output_name(const FitConfig& config, Task task) {
  // Cross-entropy pairs with softmax; the quadratic loss with a sigmoid output (the derivation's
  // network) or, for regression, an identity output.
  if (!config.output.empty()) return config.output;
  if (task == Task::kRegress) return "identity";
  return fit_loss_name(config, task) == "quadratic" ? "sigmoid" : "softmax";
}

void check_fit_config(const FitConfig& config, Task task) {
  ModelSpec spec;
  parse_spec_names(spec, config.activation, fit_output_name(config, task),
                   fit_loss_name(config, task), config.names);
  if (!config.layers.empty() && config.layers.size() < 2) {
    throw Error(ErrorCode::kUsage,
                config.names.layers + " needs at least the input and output widths");
  }
  (void)fit_init(config, spec.hidden);
  (void)named(config.names.optimizer, [&] { return make_optimizer(config.optimizer); });
  if (!(config.val_split >= 0 && config.val_split < 1)) {
    throw Error(ErrorCode::kUsage, config.names.val_split + " " + std::to_string(config.val_split) +
                                       ": expected [0, 1)");
  }
}

ModelSpec fit_spec(const FitConfig& config, const Dataset& train) {
  check_fit_config(config, train.task);
  ModelSpec spec;
  parse_spec_names(spec, config.activation, fit_output_name(config, train.task),
                   fit_loss_name(config, train.task), config.names);
  spec.leaky_slope = config.leaky_slope;
  if (!config.layers.empty()) {
    if (config.layers.front() != train.n_features) {
      throw Error(ErrorCode::kData, config.names.layers + " starts with " +
                                        std::to_string(config.layers.front()) + ", but " +
                                        train.source + " has " + std::to_string(train.n_features) +
                                        " features");
    }
    if (config.layers.back() != train.n_outputs()) {
      throw Error(ErrorCode::kData, config.names.layers + " ends with " +
                                        std::to_string(config.layers.back()) + ", but " +
                                        train.source + " has " + std::to_string(train.n_outputs()) +
                                        outputs_word(train));
    }
    spec.layers = config.layers;
  } else {
    spec.layers.push_back(train.n_features);
    spec.layers.insert(spec.layers.end(), config.hidden.begin(), config.hidden.end());
    spec.layers.push_back(train.n_outputs());
  }
  return spec;
}

Init fit_init(const FitConfig& config, Activation hidden) {
  if (config.init == "auto") return default_init(hidden);
  return named(config.names.init, [&] { return parse_init(config.init); });
}

Split fit_split(const FitConfig& config, const Dataset& train, bool shard) {
  Split split = split_validation(train, config.val_split, config.train.seed);
  if (split.train.empty() && !shard) {
    throw Error(ErrorCode::kData, config.names.val_split + " leaves no training rows");
  }
  return split;
}

bool fit_standardizes(const FitConfig& config, const Dataset& train) {
  return config.standardize > 0 || (config.standardize < 0 && train.format == DataFormat::kCsv);
}

Preprocess fit_preprocess(const FitConfig& config, const Dataset& train,
                          std::span<const Index> train_rows, Collective* ranks) {
  Preprocess pre = !fit_standardizes(config, train) ? scale_preprocess(train)
                   : ranks != nullptr ? standardize_preprocess_sharded(train, train_rows, *ranks)
                                      : standardize_preprocess(train, train_rows);
  if (train.task == Task::kRegress && config.standardize_targets) {
    if (ranks != nullptr) {
      standardize_targets_sharded(pre, train, train_rows, *ranks);
    } else {
      standardize_targets(pre, train, train_rows);
    }
  }
  return pre;
}

ModelInfo fit_info(const FitConfig& config, const Dataset& train, const std::string& init) {
  ModelInfo info;
  info.task = train.task;
  info.class_names = train.class_names;
  info.feature_names = train.feature_names;
  info.label_columns = train.label_columns;
  info.sample_shape = train.sample_shape;
  info.seed = config.train.seed;
  info.init = init;
  return info;
}

FitResult fit(const Dataset& train_set, const FitConfig& config, const Dataset* test,
              const TrainCallbacks& callbacks) {
  const ModelSpec spec = fit_spec(config, train_set);
  const Init init = fit_init(config, spec.hidden);
  std::unique_ptr<Optimizer> optimizer = make_optimizer(config.optimizer);
  FitResult r;
  r.model = Model(spec);
  r.split = fit_split(config, train_set);
  r.pre = fit_preprocess(config, train_set, r.split.train);
  r.info = fit_info(config, train_set, std::string(to_string(init)));
  r.info.preprocess = r.pre;
  r.info.data_hash = data_hash(train_set);
  r.info.train_examples = static_cast<Index>(r.split.train.size());
  r.model.init(init, config.train.seed);

  TrainData data;
  data.data = &train_set;
  data.train_rows = r.split.train;
  data.val_rows = r.split.val;
  data.test = test;
  data.pre = r.pre;
  r.history = train(r.model, *optimizer, data, config.train, callbacks);
  return r;
}

}  // namespace backprop
