// Fitting a network to a data set in one call, and the steps of it: the library form of what
// `backprop train` does between reading the data and saving the model, so that the CLI, the Python
// package and a C++ user take the same path (the same seed and data give the same model bits).
// The steps, in order:
//   check_fit_config   everything that can be checked without data (names, widths, init)
//   fit_spec           the model's widths from the data, its activations and loss (defaults by
//                      task: cross-entropy + softmax to classify, quadratic + identity to regress)
//   fit_split          the seeded validation hold-out
//   fit_preprocess     the features' scaling (standardised for CSV, by default) and the
//                      regression targets' standardisation, from the training rows
//   fit_info           what the model file records of the run
//   fit                all of it, then Model::init and train()
//
//   FitConfig c;
//   c.hidden = {32};
//   c.activation = "relu";
//   c.train.epochs = 50;
//   FitResult r = fit(train_set, c);
//   save_model("model.safetensors", r.model, r.info);
#pragma once

#include <span>
#include <string>
#include <vector>

#include "backprop/batch.hpp"
#include "backprop/data.hpp"
#include "backprop/model.hpp"
#include "backprop/model_file.hpp"
#include "backprop/optimizer.hpp"
#include "backprop/train.hpp"

namespace backprop {

// How error messages name each setting: FitConfig's field names by default. The CLI passes its
// flag names ("--layers"), so that a message names what the user typed.
struct FitNames {
  std::string layers = "layers", hidden = "hidden", activation = "activation", output = "output",
              loss = "loss", init = "init", optimizer = "optimizer", val_split = "val_split";
};

struct FitConfig {
  std::vector<Index> hidden{100};      // hidden widths; inputs and outputs come from the data
  std::vector<Index> layers;           // every width, inputs to outputs: when not empty it
                                       // replaces hidden, and must agree with the data
  std::string activation = "sigmoid";  // hidden: sigmoid, tanh, relu, leaky-relu, identity
  // "" = the task's default: loss cross-entropy (classify) or quadratic (regress); output softmax
  // with cross-entropy, sigmoid with the quadratic loss when classifying, identity to regress.
  std::string output, loss;
  double leaky_slope = 0.01;
  std::string init = "auto";  // auto (he for the ReLU family, else xavier), xavier, he, lecun
  OptimizerConfig optimizer;  // make_optimizer's input; lr defaults per optimizer
  // Epochs, batch size, seed (initialisation, shuffling, the split and dropout), schedule,
  // dropout, patience...: train()'s options, with the CLI's defaults.
  TrainOptions train{.epochs = 20, .batch_size = 16};
  double val_split = 0;  // the fraction of the training rows held out, in [0, 1)
  int standardize = -1;  // features: -1 by data format (CSV standardised, else scaled), 0, 1
  // Regression: train on each target standardised from the training rows (mean, standard
  // deviation) and give outputs in the targets' units (Preprocess::target_shift/target_scale).
  bool standardize_targets = true;
  FitNames names;
};

struct FitResult {
  Model model;
  ModelInfo info;  // what save_model writes with it
  Preprocess pre;  // info.preprocess
  Split split;     // rows of the training set
  std::vector<EpochStats> history;
};

// The hidden activation, output activation and loss by name into spec (Error(kUsage) naming the
// setting as `names` does; the CLI's --activation, --output, --loss and gradcheck use it too).
void parse_spec_names(ModelSpec& spec, const std::string& activation, const std::string& output,
                      const std::string& loss, const FitNames& names = {});

// What needs no data: the activation, output and loss names and the task's defaults for the
// loss and output, layers (at least two widths), init, the optimizer and val_split. Throws
// Error(kUsage). (Widths are checked by ModelSpec::validate when the model is made.)
void check_fit_config(const FitConfig& config, Task task);

// The loss and output activation names after the task's defaults.
std::string fit_loss_name(const FitConfig& config, Task task);
std::string fit_output_name(const FitConfig& config, Task task);

// The model for `train`: layers (checked against the data: Error(kData)) or the data's inputs,
// hidden and the data's outputs (classes or targets); activations and loss as check_fit_config.
ModelSpec fit_spec(const FitConfig& config, const Dataset& train);

// "auto" is he for the ReLU family and xavier otherwise.
Init fit_init(const FitConfig& config, Activation hidden);

// split_validation(train, val_split, seed); a split that leaves no training rows is Error(kData)
// (unless `shard`: a rank's part may be empty; the loop checks the sum over the ranks).
Split fit_split(const FitConfig& config, const Dataset& train, bool shard = false);

// Whether the features are standardised: `standardize`, or by format (CSV columns come in any
// units; IDX images and arrays are scaled onto [0, 1]).
bool fit_standardizes(const FitConfig& config, const Dataset& train);

// The features' preprocessing from the training rows: standardisation (fit_standardizes) or the
// data's natural scale; for regression with standardize_targets, the targets' too. With ranks (data
// parallel, each rank holding a part), over every rank's rows; every rank must call it.
Preprocess fit_preprocess(const FitConfig& config, const Dataset& train,
                          std::span<const Index> train_rows, Collective* ranks = nullptr);

// What the model file records of the data and the run: task, classes, feature and label names,
// sample shape, seed and the init's name. Preprocessing, data_hash and train_examples are the
// caller's (fit fills them).
ModelInfo fit_info(const FitConfig& config, const Dataset& train, const std::string& init);

// All of the above, then the model initialised from the seed and trained (train(): test, when
// given, is evaluated after the last epoch, or every epoch with train.eval_test_each_epoch).
// Throws what its steps and train() throw.
FitResult fit(const Dataset& train, const FitConfig& config, const Dataset* test = nullptr,
              const TrainCallbacks& callbacks = {});

}  // namespace backprop
