// The training loop and evaluation. The loop shuffles the training rows each epoch from the seed,
// walks them in mini-batches (the last one partial), takes one optimizer step per batch, and
// reports through callbacks; it never prints. Evaluation runs forward passes only.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include "backprop/batch.hpp"
#include "backprop/data.hpp"
#include "backprop/model.hpp"
#include "backprop/optimizer.hpp"

namespace backprop {

inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

// Loss and the task's main figure on some rows; NaN where not measured.
struct Metrics {
  Index n = 0;
  double loss = kNoValue;
  double accuracy = kNoValue;  // classify: fraction of rows whose arg-max output is the label
  double rmse = kNoValue;      // regress: √(mean over rows and targets of (a − y)²)
};

struct Evaluation {
  Metrics metrics;
  // classify: confusion[t * K + p] counts rows of true class t predicted as p.
  std::vector<std::int64_t> confusion;
  Index n_classes = 0;
  // regress:
  double mae = kNoValue;  // mean |a − y| over rows and targets
  double r2 = kNoValue;   // 1 − SS_res/SS_tot per target, averaged over targets
};

// Forward passes in batches of `batch` over `rows` of ds (all rows if empty).
Evaluation evaluate(Model& model, const Dataset& ds, std::span<const Index> rows,
                    const Preprocess& pre, Index batch = 1000);

struct TrainOptions {
  int epochs = 10;
  Index batch_size = 32;
  std::uint64_t seed = 1;
  bool eval_test_each_epoch = false;  // otherwise the test set is evaluated after the last epoch
};

struct TrainData {
  const Dataset* data = nullptr;
  std::vector<Index> train_rows, val_rows;  // rows of *data
  const Dataset* test = nullptr;            // optional
  Preprocess pre;
};

struct EpochStats {
  int epoch = 0;  // 1-based
  // Running figures over the epoch's batches, each measured before that batch's update.
  Metrics train;
  Metrics val, test;  // n == 0 when not evaluated this epoch
  double learning_rate = 0;
  double seconds = 0;  // training time of the epoch, evaluation excluded
  double samples_per_second = 0;
};

struct Progress {
  int epoch = 0, epochs = 0;
  Index done = 0, total = 0;  // examples of this epoch
  double seconds = 0;         // since the epoch started
};

struct TrainCallbacks {
  std::function<void(const Progress&)> on_batch;    // after every batch
  std::function<void(const EpochStats&)> on_epoch;  // after every epoch
};

// Trains in place. Throws Error(kNumeric) naming the epoch and batch if the loss stops being
// finite, and Error(kUsage) for options out of range or data that does not fit the model.
std::vector<EpochStats> train(Model& model, Optimizer& optimizer, const TrainData& data,
                              const TrainOptions& options, const TrainCallbacks& callbacks = {});

}  // namespace backprop
