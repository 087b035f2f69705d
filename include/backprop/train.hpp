// The training loop and evaluation. The loop shuffles the training rows each epoch from the seed,
// walks them in mini-batches (the last one partial), takes one optimizer step per batch, and
// reports through callbacks; it never prints. Around the step: a learning-rate schedule, dropout,
// label smoothing, gradient clipping, a guard against non-finite values, early stopping on the
// validation loss, per-layer health figures, and checkpoints from which train() resumes to the
// same bits as an uninterrupted run. Evaluation runs forward passes only.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "backprop/batch.hpp"
#include "backprop/data.hpp"
#include "backprop/model.hpp"
#include "backprop/optimizer.hpp"

namespace backprop {

inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

// Loss and the task's main figure on some rows; NaN where not measured. The loss is the one the
// model is trained on (regression with standardised targets: that of the standardised targets);
// regression figures are in the targets' own units (output_to_target, batch.hpp).
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

class Collective;

// The same over a data-parallel group whose ranks hold different parts of a data set (Shard):
// each rank evaluates exactly `rows` of its own part (none when empty), and every rank returns
// the figures of all the ranks' rows together. Every rank must call it.
Evaluation evaluate_sharded(Model& model, const Dataset& ds, std::span<const Index> rows,
                            const Preprocess& pre, Collective& ranks, Index batch = 1000);

// The learning rate of each epoch e = 1..E, from the base rate η of the optimizer:
//   warm-up  e <= W: η·e/(W+1), linear (so one warm-up epoch runs at η/2, not η)
//   then, with t = e − W − 1 epochs since the warm-up and T = E − W:
//   constant η;  step η·γ^⌊t/step⌋;  exponential η·γ^t;
//   cosine η_min + (η − η_min)·½(1 + cos(π t/T));
//   plateau η·f^k after k reductions, one each time the validation loss has not improved for
//   `plateau_patience` epochs (PyTorch's ReduceLROnPlateau in mode min, threshold 0).
enum class ScheduleKind { kConstant, kStep, kExponential, kCosine, kPlateau };
std::string_view to_string(ScheduleKind k);
ScheduleKind parse_schedule(std::string_view name);  // throws Error(kUsage)

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::kConstant;
  int warmup = 0;
  int step = 10;       // step: epochs between decays
  double gamma = 0.1;  // step and exponential: the factor per decay
  double min_lr = 0;   // cosine: the floor
  int plateau_patience = 5;
  double plateau_factor = 0.1;
};

enum class NonFinitePolicy { kStop, kSkipBatch };

struct TrainOptions {
  int epochs = 10;
  Index batch_size = 32;
  std::uint64_t seed = 1;
  bool eval_test_each_epoch = false;  // otherwise the test set is evaluated after the last epoch
  ScheduleOptions schedule{};
  std::vector<double> dropout{};  // per hidden layer (one value: every hidden layer); empty: none
  double clip_norm = 0;           // clip the global gradient norm to this (0: off)
  double label_smoothing = 0;     // cross-entropy targets (1−ε)·one-hot + ε/K (classify)
  int patience = 0;               // early stopping after this many epochs without a better
                                  // validation loss, restoring the best weights (0: off)
  NonFinitePolicy on_nonfinite = NonFinitePolicy::kStop;
  // Checkpoints (through TrainCallbacks::checkpoint) at the end of every N-th epoch (0: never at
  // epoch ends), and also mid-epoch once this many minutes have passed since the last (0: never).
  int checkpoint_every_epochs = 1;
  double checkpoint_every_minutes = 0;
  // Checked after every batch: when it becomes true, the loop writes a checkpoint (if it writes
  // any) and throws Error(kInterrupted).
  const std::atomic<bool>* stop = nullptr;
  // Data-parallel training over a group of processes (collective.hpp); null: this process alone.
  Collective* collective = nullptr;
  // With a collective: start summing each layer's gradients as soon as backward has produced them
  // (Collective::start_sum), rather than all of them after backward.
  bool overlap_sums = true;
};

struct TrainData {
  const Dataset* data = nullptr;
  std::vector<Index> train_rows, val_rows;  // rows of *data
  const Dataset* test = nullptr;            // optional
  Preprocess pre;
  // With a collective (TrainOptions::collective): each rank's data, rows and test set are its own
  // part of the whole (Shard), not the same on every rank. Each epoch every rank shuffles its
  // training rows, and each global batch takes from every rank a share of its rows proportional
  // to its part (see docs/distributed.md); validation and test figures are summed over the ranks.
  // Ranks whose parts differ in size see every one of their rows once per epoch all the same.
  bool sharded = false;
};

// Per layer, measured on a fixed probe batch (the first rows of the training set, no dropout)
// after each epoch.
struct LayerHealth {
  double weight_norm = 0, grad_norm = 0;
  // Hidden sigmoid/tanh layers: the fraction of activations whose g' is below 5% of its peak
  // (saturated). Hidden ReLU-family layers: the fraction of units that are <= 0 for every probe
  // example (dead). NaN for the output layer and identity layers.
  double saturated = kNoValue, dead = kNoValue;
};

struct EpochStats {
  int epoch = 0;  // 1-based
  // Running figures over the epoch's batches, each measured before that batch's update.
  Metrics train;
  Metrics val, test;  // n == 0 when not evaluated this epoch
  double learning_rate = 0;
  double seconds = 0;  // training time of the epoch, evaluation excluded
  double samples_per_second = 0;
  double grad_norm = kNoValue;  // global gradient norm on the probe batch
  std::vector<LayerHealth> layers;
  Index skipped_batches = 0;  // --on-nonfinite skip-batch
  bool best = false;          // early stopping: the best validation loss so far
};

struct Progress {
  int epoch = 0, epochs = 0;
  Index done = 0, total = 0;  // examples of this epoch
  double seconds = 0;         // since the epoch started
};

struct TrainState;

struct TrainCallbacks {
  std::function<void(const Progress&)> on_batch;    // after every batch
  std::function<void(const EpochStats&)> on_epoch;  // after every epoch
  // Writes a checkpoint of this moment and returns where (io: checkpoint.hpp). Unset: none.
  std::function<std::string(const Model&, const Optimizer&, const TrainState&)> checkpoint;
  std::function<void(const std::string&)> on_checkpoint;  // after each committed checkpoint
};

// Everything the loop carries between batches that decides what comes next: with the model's
// parameters and the optimizer's state it is a checkpoint, and resuming from it gives the same
// bits as never having stopped.
struct TrainState {
  int epoch = 0;             // epochs completed
  Index batch = 0;           // batches completed of epoch `epoch + 1`
  std::vector<Index> order;  // this epoch's shuffled training rows (empty before the first)
  std::array<std::uint64_t, 4> shuffle_rng{}, dropout_rng{};
  // The running sums of the epoch in progress.
  Index seen = 0, correct = 0, values = 0, skipped = 0;
  double loss_sum = 0, sq_err = 0;
  // Schedule and early stopping.
  double plateau_scale = 1, plateau_best = std::numeric_limits<double>::infinity();
  int plateau_bad = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  int best_epoch = 0, bad_epochs = 0;
  std::vector<float> best_params;  // empty until a best epoch exists
  std::vector<EpochStats> history;
};

// Trains in place from the start, or, with `resume`, from that state (the caller has already
// loaded the model's parameters and the optimizer's state from the same checkpoint). Returns
// every epoch's figures, those before the resume included. Throws Error(kNumeric) naming the
// epoch, batch and first layer affected when a loss, gradient or weight stops being finite,
// Error(kInterrupted) when options.stop is raised, and Error(kUsage) for options out of range or
// data that does not fit the model.
std::vector<EpochStats> train(Model& model, Optimizer& optimizer, const TrainData& data,
                              const TrainOptions& options, const TrainCallbacks& callbacks = {},
                              const TrainState* resume = nullptr);

// Sharded data (TrainData::sharded): which rows of each rank's part an epoch's global positions
// 0..n−1 take, n being the parts' sum. Position p goes to the rank furthest behind its
// proportional share parts[r]·(p+1)/n (ties: the lowest rank), so a global batch of b positions
// holds exactly b rows, each rank's count over any prefix of the epoch is within a row of
// proportional, and every row of every part is taken once by the epoch's end.
class ShardSchedule {
 public:
  explicit ShardSchedule(std::vector<Index> parts);
  // Each rank's rows before global position `to` (0 <= to <= n): going on from the last position
  // asked, or over from the epoch's start when `to` is before it.
  const std::vector<Index>& before(Index to);

  // Rank `rank`'s rows of the global positions [start, end): rows [lo, hi) of its part, which
  // are rows [offset, offset + hi − lo) of the batch's rows in rank order.
  struct Slice {
    Index lo = 0, hi = 0, offset = 0;
  };
  Slice slice(Index start, Index end, int rank);

 private:
  std::vector<Index> parts_, taken_, from_;
  Index n_ = 0, at_ = 0;
};

// The learning rate of epoch e (1-based) under options, with the plateau reductions so far.
double scheduled_rate(double base, const ScheduleOptions& s, int epoch, int epochs,
                      double plateau_scale);

// Scales grads so their global L2 norm is at most max_norm, and returns the norm before (in
// double, summed in order). Gradients already within the bound are left bitwise unchanged; a
// non-finite norm leaves them as they are (the caller decides).
double clip_gradients(std::span<float> grads, double max_norm);

}  // namespace backprop
