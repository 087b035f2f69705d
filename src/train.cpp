#include "backprop/train.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>

#include "backprop/collective.hpp"
#include "backprop/rng.hpp"

namespace backprop {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void check_fits(const Model& model, const Dataset& ds) {
  if (ds.n_features != model.n_inputs()) {
    throw Error(ErrorCode::kData, ds.source + ": data has " + std::to_string(ds.n_features) +
                                      " features, the model expects " +
                                      std::to_string(model.n_inputs()));
  }
  if (ds.has_labels() && ds.n_outputs() != model.n_outputs()) {
    throw Error(ErrorCode::kData, ds.source + ": data has " + std::to_string(ds.n_outputs()) +
                                      (ds.task == Task::kClassify ? " classes" : " targets") +
                                      ", the model has " + std::to_string(model.n_outputs()) +
                                      " outputs");
  }
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

Index argmax_row(const float* a, Index k) {
  Index best = 0;
  for (Index j = 1; j < k; ++j) {
    if (a[j] > a[best]) best = j;
  }
  return best;
}

// Sums over batches, turned into Metrics at the end.
struct Tally {
  Index n = 0;
  double loss_sum = 0;  // Σ batch_loss × batch_size
  Index correct = 0;    // classify
  double sq_err = 0;    // regress: Σ (a − y)²
  Index n_values = 0;   // regress: rows × targets

  void add(const Dataset& ds, std::span<const Index> rows, ConstMatrixView a, ConstMatrixView y,
           double batch_loss) {
    const auto b = static_cast<Index>(rows.size());
    n += b;
    loss_sum += batch_loss * static_cast<double>(b);
    if (ds.task == Task::kClassify) {
      for (Index i = 0; i < b; ++i) {
        correct += argmax_row(a.row(i), a.cols) ==
                   ds.labels[static_cast<std::size_t>(rows[static_cast<std::size_t>(i)])];
      }
    } else {
      for (Index i = 0; i < b; ++i) {
        for (Index j = 0; j < a.cols; ++j) {
          double d = static_cast<double>(a(i, j)) - static_cast<double>(y(i, j));
          sq_err += d * d;
        }
      }
      n_values += b * a.cols;
    }
  }

  Metrics metrics(Task task) const {
    Metrics m;
    m.n = n;
    if (n == 0) return m;
    m.loss = loss_sum / static_cast<double>(n);
    if (task == Task::kClassify) {
      m.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    } else {
      m.rmse = std::sqrt(sq_err / static_cast<double>(n_values));
    }
    return m;
  }
};

}  // namespace

namespace {

// What an evaluation adds up over its rows; every field is a sum, so that ranks holding parts of a
// data set can add theirs together.
struct EvalSums {
  Index k = 0;
  Tally tally;
  std::vector<std::int64_t> confusion;  // classify: k × k
  double abs_err = 0;                   // regress: Σ |a − y|
  // regress, per target: Σ y, Σ y² and Σ (a − y)², for R².
  std::vector<double> y_sum, y_sq, res_sq;

  // All of it as doubles (counts are exact up to 2^53), and back.
  std::vector<double> pack() const {
    std::vector<double> v = {static_cast<double>(tally.n),        tally.loss_sum,
                             static_cast<double>(tally.correct),  tally.sq_err,
                             static_cast<double>(tally.n_values), abs_err};
    for (std::int64_t c : confusion) v.push_back(static_cast<double>(c));
    for (const auto* part : {&y_sum, &y_sq, &res_sq}) v.insert(v.end(), part->begin(), part->end());
    return v;
  }
  void unpack(const std::vector<double>& v) {
    std::size_t i = 0;
    tally.n = static_cast<Index>(v[i++]);
    tally.loss_sum = v[i++];
    tally.correct = static_cast<Index>(v[i++]);
    tally.sq_err = v[i++];
    tally.n_values = static_cast<Index>(v[i++]);
    abs_err = v[i++];
    for (std::int64_t& c : confusion) c = static_cast<std::int64_t>(v[i++]);
    for (auto* part : {&y_sum, &y_sq, &res_sq}) {
      for (double& x : *part) x = v[i++];
    }
  }
};

// Forward passes over exactly `rows` (none: zero sums).
EvalSums evaluation_sums(Model& model, const Dataset& ds, std::span<const Index> rows,
                         const Preprocess& pre, Index batch) {
  check_fits(model, ds);
  BACKPROP_ASSERT(batch >= 1 && (rows.empty() || ds.has_labels()));  // an empty part has none
  const Index k = model.n_outputs();
  const auto n = static_cast<Index>(rows.size());
  EvalSums s;
  s.k = k;
  const bool classify = ds.task == Task::kClassify;
  if (classify) {
    s.confusion.assign(static_cast<std::size_t>(k * k), 0);
  } else {
    for (auto* part : {&s.y_sum, &s.y_sq, &s.res_sq}) part->assign(static_cast<std::size_t>(k), 0);
  }
  if (n == 0) return s;
  Matrix x(std::min(batch, n), ds.n_features), y(std::min(batch, n), k);
  for (Index start = 0; start < n; start += batch) {
    Index b = std::min(batch, n - start);
    auto chunk = rows.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(b));
    MatrixView xb = x.view().rows_range(0, b), yb = y.view().rows_range(0, b);
    gather_batch(ds, chunk, pre, xb, yb);
    ConstMatrixView a = model.forward(xb);
    s.tally.add(ds, chunk, a, yb, model.loss(yb));
    for (Index i = 0; i < b; ++i) {
      if (classify) {
        auto t = ds.labels[static_cast<std::size_t>(chunk[static_cast<std::size_t>(i)])];
        ++s.confusion[static_cast<std::size_t>(t * k + argmax_row(a.row(i), k))];
      } else {
        for (Index j = 0; j < k; ++j) {
          double yv = yb(i, j), d = static_cast<double>(a(i, j)) - yv;
          auto u = static_cast<std::size_t>(j);
          s.abs_err += std::abs(d);
          s.y_sum[u] += yv;
          s.y_sq[u] += yv * yv;
          s.res_sq[u] += d * d;
        }
      }
    }
  }
  return s;
}

Evaluation finish_evaluation(const EvalSums& s, Task task) {
  Evaluation ev;
  ev.metrics = s.tally.metrics(task);
  const Index n = s.tally.n, k = s.k;
  if (task == Task::kClassify) {
    ev.n_classes = k;
    ev.confusion = s.confusion;
  } else if (n > 0) {
    ev.mae = s.abs_err / static_cast<double>(n * k);
    double r2 = 0;
    for (std::size_t u = 0; u < static_cast<std::size_t>(k); ++u) {
      double mean = s.y_sum[u] / static_cast<double>(n);
      double ss_tot = s.y_sq[u] - static_cast<double>(n) * mean * mean;
      // A constant target has no variance to explain: R² is 1 if it is matched exactly, else 0
      // (scikit-learn's convention).
      r2 += ss_tot > 0 ? 1.0 - s.res_sq[u] / ss_tot : (s.res_sq[u] == 0 ? 1.0 : 0.0);
    }
    ev.r2 = r2 / static_cast<double>(k);
  }
  return ev;
}

}  // namespace

Evaluation evaluate(Model& model, const Dataset& ds, std::span<const Index> rows,
                    const Preprocess& pre, Index batch) {
  std::vector<Index> all;
  if (rows.empty()) {
    all = all_rows(ds);
    rows = all;
  }
  return finish_evaluation(evaluation_sums(model, ds, rows, pre, batch), ds.task);
}

Evaluation evaluate_sharded(Model& model, const Dataset& ds, std::span<const Index> rows,
                            const Preprocess& pre, Collective& ranks, Index batch) {
  EvalSums s = evaluation_sums(model, ds, rows, pre, batch);
  std::vector<double> v = s.pack();
  ranks.sum(v);
  s.unpack(v);
  return finish_evaluation(s, ds.task);
}

std::string_view to_string(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::kConstant:
      return "constant";
    case ScheduleKind::kStep:
      return "step";
    case ScheduleKind::kExponential:
      return "exponential";
    case ScheduleKind::kCosine:
      return "cosine";
    case ScheduleKind::kPlateau:
      return "plateau";
  }
  return "?";
}

ScheduleKind parse_schedule(std::string_view name) {
  for (ScheduleKind k : {ScheduleKind::kConstant, ScheduleKind::kStep, ScheduleKind::kExponential,
                         ScheduleKind::kCosine, ScheduleKind::kPlateau}) {
    if (name == to_string(k)) return k;
  }
  throw Error(ErrorCode::kUsage, "unknown schedule '" + std::string(name) +
                                     "': expected constant, step, exponential, cosine or plateau");
}

double scheduled_rate(double base, const ScheduleOptions& s, int epoch, int epochs,
                      double plateau_scale) {
  if (epoch <= s.warmup) return base * static_cast<double>(epoch) / (s.warmup + 1);
  const int t = epoch - s.warmup - 1;
  switch (s.kind) {
    case ScheduleKind::kConstant:
      return base;
    case ScheduleKind::kStep:
      return base * std::pow(s.gamma, t / s.step);
    case ScheduleKind::kExponential:
      return base * std::pow(s.gamma, t);
    case ScheduleKind::kCosine: {
      const double span = std::max(1, epochs - s.warmup);
      return s.min_lr + (base - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * t / span));
    }
    case ScheduleKind::kPlateau:
      return base * plateau_scale;
  }
  return base;
}

double clip_gradients(std::span<float> grads, double max_norm) {
  double sq = 0;
  for (float g : grads) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const auto scale = static_cast<float>(max_norm / norm);
    for (float& g : grads) g *= scale;
  }
  return norm;
}

namespace {

bool all_finite(std::span<const float> v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

// "layer 2's weights" for the first layer holding a non-finite parameter (grads: gradient),
// or an empty string when all are finite.
std::string first_nonfinite_layer(const Model& m, bool grads) {
  for (Index l = 0; l < m.n_layers(); ++l) {
    ConstMatrixView w = grads ? m.weight_grad(l) : m.weight(l);
    std::span<const float> b = grads ? m.bias_grad(l) : m.bias(l);
    const std::string what = grads ? "gradient" : "";
    if (!all_finite({w.data, static_cast<std::size_t>(w.size())})) {
      return "layer " + std::to_string(l + 1) + (grads ? "'s weight gradients" : "'s weights");
    }
    if (!all_finite(b)) {
      return "layer " + std::to_string(l + 1) + (grads ? "'s bias gradients" : "'s biases");
    }
  }
  return "";
}

double frobenius(std::span<const float> v) {
  double sq = 0;
  for (float x : v) sq += static_cast<double>(x) * x;
  return std::sqrt(sq);
}

// Per-layer norms and the saturation or dead fractions, from a forward and backward pass of the
// probe batch (which overwrites the gradients, not the parameters).
void measure_health(Model& model, ConstMatrixView x, ConstMatrixView y, EpochStats& st) {
  if (x.rows == 0) return;  // no probe rows (a rank whose part has no training rows): no figures
  model.forward(x);
  model.backward(x, y);
  st.grad_norm = frobenius(model.grads());
  st.layers.assign(static_cast<std::size_t>(model.n_layers()), LayerHealth{});
  for (Index l = 0; l < model.n_layers(); ++l) {
    LayerHealth& h = st.layers[static_cast<std::size_t>(l)];
    ConstMatrixView w = model.weight(l), dw = model.weight_grad(l);
    h.weight_norm = frobenius({w.data, static_cast<std::size_t>(w.size())});
    h.grad_norm = frobenius({dw.data, static_cast<std::size_t>(dw.size())});
    if (l + 1 == model.n_layers()) continue;
    ConstMatrixView a = model.hidden_output(l);
    const Activation g = model.spec().hidden;
    if (g == Activation::kSigmoid || g == Activation::kTanh) {
      // g' below 5% of its peak (¼ for sigmoid, 1 for tanh).
      Index saturated = 0;
      for (Index i = 0; i < a.rows; ++i) {
        for (Index j = 0; j < a.cols; ++j) {
          double v = a(i, j);
          double d = g == Activation::kSigmoid ? v * (1 - v) / 0.25 : 1 - v * v;
          saturated += d < 0.05;
        }
      }
      h.saturated = static_cast<double>(saturated) / static_cast<double>(a.size());
    } else if (g == Activation::kRelu || g == Activation::kLeakyRelu) {
      Index dead = 0;
      for (Index j = 0; j < a.cols; ++j) {
        bool alive = false;
        for (Index i = 0; i < a.rows && !alive; ++i) alive = a(i, j) > 0.0f;
        dead += !alive;
      }
      h.dead = static_cast<double>(dead) / static_cast<double>(a.cols);
    }
  }
}

void check_has_validation(const TrainOptions& o, bool any, bool sharded = false) {
  if ((o.schedule.kind == ScheduleKind::kPlateau || o.patience > 0) && !any) {
    throw Error(ErrorCode::kUsage,
                std::string(o.patience > 0 ? "--patience" : "--schedule plateau") +
                    " watches the validation loss: give --val-split" +
                    (sharded ? " (sharded, each rank holds out that fraction of its own part, "
                               "rounded; here no rank holds out a row)"
                             : ""));
  }
}

void validate(const Model& model, const TrainData& data, const TrainOptions& o) {
  auto usage = [](const std::string& what) { throw Error(ErrorCode::kUsage, what); };
  const Dataset& ds = *data.data;
  if (o.epochs < 1) usage("epochs must be >= 1");
  if (o.batch_size < 1) usage("batch size must be >= 1");
  // A sharded run checks its counts over all the ranks (train()).
  const bool sharded = data.sharded && o.collective != nullptr && o.collective->size() > 1;
  if (data.train_rows.empty() && !sharded) {
    throw Error(ErrorCode::kData, ds.source + ": no training rows");
  }
  const Index hidden = model.n_layers() - 1;
  if (!o.dropout.empty() && o.dropout.size() != 1 &&
      static_cast<Index>(o.dropout.size()) != hidden) {
    usage("--dropout has " + std::to_string(o.dropout.size()) + " rates for " +
          std::to_string(hidden) + " hidden layers: give one rate, or one per hidden layer");
  }
  for (double p : o.dropout) {
    if (!(p >= 0 && p < 1)) usage("dropout rate " + format_number(p) + ": expected [0, 1)");
  }
  if (!o.dropout.empty() && hidden == 0) usage("--dropout needs a hidden layer");
  if (!(o.clip_norm >= 0 && std::isfinite(o.clip_norm))) usage("clip norm must be >= 0");
  if (!(o.label_smoothing >= 0 && o.label_smoothing < 1)) {
    usage("label smoothing " + format_number(o.label_smoothing) + ": expected [0, 1)");
  }
  if (o.label_smoothing > 0 &&
      (ds.task != Task::kClassify || model.spec().loss != Loss::kCrossEntropy)) {
    usage("--label-smoothing applies to classification with the cross-entropy loss");
  }
  const ScheduleOptions& s = o.schedule;
  if (s.warmup < 0 || s.warmup >= o.epochs) usage("--warmup must be less than --epochs");
  if (s.step < 1) usage("--lr-step must be >= 1");
  if (!(s.gamma > 0 && s.gamma <= 1)) usage("--lr-gamma must be in (0, 1]");
  if (!(s.min_lr >= 0)) usage("--lr-min must be >= 0");
  if (s.plateau_patience < 1) usage("--plateau-patience must be >= 1");
  if (!(s.plateau_factor > 0 && s.plateau_factor < 1)) usage("--plateau-factor must be in (0, 1)");
  if (o.patience < 0) usage("--patience must be >= 0");
  if (!sharded) check_has_validation(o, !data.val_rows.empty());
}

// The first rows of the training set in dataset order: the same probe batch every epoch.
std::vector<Index> probe_rows(const TrainData& data) {
  std::vector<Index> rows = data.train_rows;
  rows.resize(std::min<std::size_t>(rows.size(), 256));
  return rows;
}

// After a batch's gradient: clip it, check it, step. Returns whether the batch was skipped
// instead (a non-finite gradient under the skip-batch policy); under the stop policy calls
// fail(what, in_grads), which throws. The norm is needed to clip, or to skip a batch before its
// step; under the stop policy without clipping a non-finite gradient reaches the weights and the
// next batch's loss (or the epoch's weight check) says so.
template <class Fail>
bool clip_check_step(Model& model, Optimizer& optimizer, const TrainOptions& options,
                     const Fail& fail) {
  const bool need_norm =
      options.clip_norm > 0 || options.on_nonfinite == NonFinitePolicy::kSkipBatch;
  const double norm = need_norm ? clip_gradients(model.grads(), options.clip_norm) : 0.0;
  if (!std::isfinite(norm)) {
    if (options.on_nonfinite == NonFinitePolicy::kStop) fail("a gradient is not finite", true);
    return true;
  }
  optimizer.step(model.params(), model.grads());
  return false;
}

// One global batch of b rows, data-parallel: this rank's rows (from row `offset` of the batch)
// forward and backward, the gradient scaled by rows/b and summed over the ranks together with the
// running figures and the flags, then the same clipping, checks and step on every rank. Returns
// whether any rank was asked to stop; sets skip when the batch is skipped (non-finite,
// skip-batch policy); calls fail(what, in_grads) for a non-finite loss or gradient under the stop
// policy.
template <class Fail>
bool data_parallel_batch(Model& model, Optimizer& optimizer, const TrainData& data,
                         const TrainOptions& options, Collective& comm, Model::Dropout& dropout,
                         bool any_dropout, std::span<const Index> rows, Index b, Index offset,
                         MatrixView x, MatrixView y, float smoothing, Tally& tally, bool& skip,
                         const Fail& fail) {
  const Dataset& ds = *data.data;
  const auto m = static_cast<Index>(rows.size());
  Tally mine;
  double loss = 0;
  std::span<float> grads = model.grads();
  // Each layer's gradients are summed as soon as they are final (overlap), or all at the end.
  bool summed = false;
  const std::function<void(Index)> start_layer = [&](Index l) {
    comm.start_sum(model.layer_grads(l));
  };
  if (m > 0) {
    MatrixView xb = x.rows_range(0, m), yb = y.rows_range(0, m);
    gather_batch(ds, rows, data.pre, xb, yb, smoothing);
    dropout.row_offset = offset;
    dropout.total_rows = b;
    ConstMatrixView a = model.forward(xb, any_dropout ? &dropout : nullptr);
    loss = model.loss(yb);
    if (std::isfinite(loss)) {
      mine.add(ds, rows, a, yb, loss);
      // ∂(Σ over my rows of ℓ)/∂θ / b: the ranks' sum is the gradient of the batch average.
      model.backward(xb, yb, b, options.overlap_sums ? &start_layer : nullptr);
      summed = options.overlap_sums;
    }
  } else if (any_dropout) {
    // No rows here: draw (and drop) the masks the other ranks' rows take, so that every rank's
    // dropout stream stays at the same place.
    for (Index l = 0; l + 1 < model.n_layers(); ++l) {
      if (dropout.rates[static_cast<std::size_t>(l)] <= 0) continue;
      for (Index k = 0; k < b * model.spec().layers[static_cast<std::size_t>(l) + 1]; ++k) {
        (void)dropout.rng->uniform();
      }
    }
  }
  if (m == 0 || !std::isfinite(loss)) std::fill(grads.begin(), grads.end(), 0.0f);
  if (summed) {
    comm.finish_sums();
  } else if (options.overlap_sums) {  // the same buckets in the same order as the other ranks
    for (Index l = model.n_layers() - 1; l >= 0; --l) comm.start_sum(model.layer_grads(l));
    comm.finish_sums();
  } else {
    comm.sum(grads);
  }
  const bool stop_here = options.stop != nullptr && options.stop->load();
  std::array<double, 8> shared = {std::isfinite(loss) ? 0.0 : 1.0,
                                  std::isnan(loss) ? 1.0 : 0.0,
                                  stop_here ? 1.0 : 0.0,
                                  static_cast<double>(mine.n),
                                  mine.loss_sum,
                                  static_cast<double>(mine.correct),
                                  mine.sq_err,
                                  static_cast<double>(mine.n_values)};
  comm.sum(shared);
  skip = false;
  if (shared[0] > 0) {  // a non-finite loss on some rank
    if (options.on_nonfinite == NonFinitePolicy::kStop) {
      fail(std::string("the loss is ") + (shared[1] > 0 ? "NaN" : "infinite"), false);
    }
    skip = true;
  } else {
    tally.n += static_cast<Index>(shared[3]);
    tally.loss_sum += shared[4];
    tally.correct += static_cast<Index>(shared[5]);
    tally.sq_err += shared[6];
    tally.n_values += static_cast<Index>(shared[7]);
    skip = clip_check_step(model, optimizer, options, fail);
  }
  return shared[2] > 0;
}

}  // namespace

ShardSchedule::ShardSchedule(std::vector<Index> parts)
    : parts_(std::move(parts)), taken_(parts_.size(), 0) {
  for (Index p : parts_) {
    BACKPROP_ASSERT(p >= 0);
    n_ += p;
  }
}

const std::vector<Index>& ShardSchedule::before(Index to) {
  BACKPROP_ASSERT(to >= 0 && to <= n_);
  __extension__ typedef __int128 Wide;  // parts·n can pass 2^63
  if (to < at_) {
    std::fill(taken_.begin(), taken_.end(), 0);
    at_ = 0;
  }
  for (; at_ < to; ++at_) {
    std::size_t best = 0;
    Wide best_deficit = 0;
    for (std::size_t r = 0; r < parts_.size(); ++r) {
      // n × (the share due by position at_ + 1 − the rows taken); the deficits sum to n > 0, and
      // a part already used up has none.
      const Wide deficit =
          static_cast<Wide>(parts_[r]) * (at_ + 1) - static_cast<Wide>(taken_[r]) * n_;
      if (r == 0 || deficit > best_deficit) {
        best = r;
        best_deficit = deficit;
      }
    }
    BACKPROP_ASSERT(taken_[best] < parts_[best]);
    ++taken_[best];
  }
  return taken_;
}

ShardSchedule::Slice ShardSchedule::slice(Index start, Index end, int rank) {
  BACKPROP_ASSERT(rank >= 0 && static_cast<std::size_t>(rank) < parts_.size() && start <= end);
  from_ = before(start);  // the same size every time: no allocation after the first
  before(end);
  Slice s{from_[static_cast<std::size_t>(rank)], taken_[static_cast<std::size_t>(rank)], 0};
  for (std::size_t r = 0; r < static_cast<std::size_t>(rank); ++r) s.offset += taken_[r] - from_[r];
  return s;
}

std::vector<EpochStats> train(Model& model, Optimizer& optimizer, const TrainData& data,
                              const TrainOptions& options, const TrainCallbacks& callbacks,
                              const TrainState* resume) {
  BACKPROP_ASSERT(data.data != nullptr);
  const Dataset& ds = *data.data;
  check_fits(model, ds);
  if (data.test != nullptr) check_fits(model, *data.test);
  validate(model, data, options);

  // Data parallelism: this process is rank `rank` of `world` (see collective.hpp).
  Collective* comm = options.collective;
  const int world = comm != nullptr ? comm->size() : 1, rank = comm != nullptr ? comm->rank() : 0;
  const bool sharded = data.sharded && world > 1;
  // Training rows: this process's, or with sharded data every rank's (parts[r]) and their sum.
  Index n = static_cast<Index>(data.train_rows.size()),
        val_n = static_cast<Index>(data.val_rows.size());
  std::vector<Index> parts;
  if (sharded) {
    std::vector<double> counts(2 * static_cast<std::size_t>(world), 0.0);
    counts[static_cast<std::size_t>(rank)] = static_cast<double>(n);
    counts[static_cast<std::size_t>(world + rank)] = static_cast<double>(val_n);
    comm->sum(counts);
    n = val_n = 0;
    for (int r = 0; r < world; ++r) {
      parts.push_back(static_cast<Index>(counts[static_cast<std::size_t>(r)]));
      n += parts.back();
      val_n += static_cast<Index>(counts[static_cast<std::size_t>(world + r)]);
    }
    if (n == 0) throw Error(ErrorCode::kData, ds.source + ": no training rows on any rank");
    check_has_validation(options, val_n > 0, true);
  }
  ShardSchedule schedule(parts);

  TrainState st;
  if (resume != nullptr) {
    st = *resume;
    if (st.epoch > options.epochs) {
      throw Error(ErrorCode::kData, "the checkpoint is past the end of this run (epoch " +
                                        std::to_string(st.epoch) + " of " +
                                        std::to_string(options.epochs) + ")");
    }
    // The saved order must be these training rows, shuffled: anything else is another dataset.
    // (Sharded, the order is rank 0's, and each rank redraws its own: see below.)
    std::vector<Index> a = st.order, b = data.train_rows;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (!sharded && !st.order.empty() && a != b) {
      throw Error(ErrorCode::kData, "the checkpoint's row order does not match the training rows");
    }
    // batch may equal the epoch's batch count: stopped after its last batch, before the epoch's
    // end (evaluation, schedule) ran.
    const Index bs = std::min(options.batch_size, n);
    if (st.batch < 0 || st.batch > (n + bs - 1) / bs) {
      throw Error(ErrorCode::kData, "the checkpoint's batch is past the end of its epoch");
    }
  } else {
    st.shuffle_rng = Rng::stream(options.seed, "shuffle").state();
    st.dropout_rng = Rng::stream(options.seed, "dropout").state();
  }
  Rng shuffle(0), dropout_rng(0);
  shuffle.set_state(st.shuffle_rng);
  dropout_rng.set_state(st.dropout_rng);

  // One dropout rate per hidden layer (a single rate applies to all).
  std::vector<double> rates = options.dropout;
  if (rates.size() == 1) rates.assign(static_cast<std::size_t>(model.n_layers() - 1), rates[0]);
  bool any_dropout = false;
  for (double p : rates) any_dropout = any_dropout || p > 0;
  Model::Dropout dropout{rates, &dropout_rng};

  const double base_lr = optimizer.learning_rate();
  // Plain SGD is fused into backward unless the gradients themselves are needed.
  const bool fused = optimizer.plain_sgd_rate().has_value() && options.clip_norm == 0 &&
                     options.on_nonfinite == NonFinitePolicy::kStop && world == 1;

  const Index bs = std::min(options.batch_size, n);
  // Sharded, a rank's share of a batch is at most the batch and at most its part.
  const Index rows_max =
      sharded ? std::max<Index>(1, std::min<Index>(bs, static_cast<Index>(data.train_rows.size())))
              : bs;
  Matrix x(rows_max, ds.n_features), y(rows_max, model.n_outputs());
  const std::vector<Index> probe = probe_rows(data);
  Matrix px(static_cast<Index>(probe.size()), ds.n_features),
      py(static_cast<Index>(probe.size()), model.n_outputs());
  gather_batch(ds, probe, data.pre, px.view(), py.view());
  const float smoothing = static_cast<float>(options.label_smoothing);

  auto last_checkpoint = Clock::now();
  auto checkpoint = [&] {
    if (!callbacks.checkpoint) return;
    st.shuffle_rng = shuffle.state();
    st.dropout_rng = dropout_rng.state();
    std::string path = callbacks.checkpoint(model, optimizer, st);
    last_checkpoint = Clock::now();
    if (callbacks.on_checkpoint) callbacks.on_checkpoint(path);
  };
  auto nonfinite = [&](int epoch, Index batch, const std::string& what, bool in_grads) {
    std::string where = first_nonfinite_layer(model, in_grads);
    if (where.empty() && !in_grads) where = first_nonfinite_layer(model, true);
    throw Error(ErrorCode::kNumeric,
                "epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch) + ": " +
                    what + (where.empty() ? "" : "; the first non-finite values are in " + where) +
                    "; the learning rate (" + format_number(optimizer.learning_rate()) +
                    ") may be too high (or use --on-nonfinite skip-batch)");
  };

  for (int epoch = st.epoch + 1; epoch <= options.epochs; ++epoch) {
    const double lr =
        scheduled_rate(base_lr, options.schedule, epoch, options.epochs, st.plateau_scale);
    optimizer.set_learning_rate(lr);
    if (sharded) {
      // Each rank's own order, drawn from the seed, the rank and the epoch alone, so that a
      // resumed rank redraws it (a checkpoint holds rank 0's state only).
      st.order = data.train_rows;
      Rng::stream(options.seed, "shard order " + std::to_string(rank) + " " + std::to_string(epoch))
          .shuffle(st.order.begin(), st.order.end());
    }
    if (st.batch == 0) {  // a fresh epoch (not resumed in its middle)
      if (st.order.empty()) st.order = data.train_rows;
      if (!sharded) shuffle.shuffle(st.order.begin(), st.order.end());
      st.seen = st.correct = st.values = st.skipped = 0;
      st.loss_sum = st.sq_err = 0;
    }
    Tally tally{st.seen, st.loss_sum, st.correct, st.sq_err, st.values};
    const auto t0 = Clock::now();
    const Index first = st.batch;
    for (Index batch = first; batch * bs < n; ++batch) {
      const Index start = batch * bs, b = std::min(bs, n - start);
      const auto fail = [&](const std::string& what, bool in_grads) {
        nonfinite(epoch, batch + 1, what, in_grads);
      };
      bool skip = false, stop = false;
      if (world > 1) {
        // This rank's slice of the global batch: rows [lo, hi) of its order, which are rows
        // [offset, offset + hi − lo) of the batch's `total`; the rest is as one process does it.
        Index lo = start + b * rank / world, hi = start + b * (rank + 1) / world;
        Index offset = lo - start;
        if (sharded) {
          const ShardSchedule::Slice s = schedule.slice(start, start + b, rank);
          lo = s.lo;
          hi = s.hi;
          offset = s.offset;
          BACKPROP_ASSERT(hi - lo <= rows_max && hi <= static_cast<Index>(st.order.size()));
        }
        stop = data_parallel_batch(
            model, optimizer, data, options, *comm, dropout, any_dropout,
            std::span<const Index>(st.order.data() + lo, static_cast<std::size_t>(hi - lo)), b,
            offset, x.view(), y.view(), smoothing, tally, skip, fail);
      } else {
        std::span<const Index> rows(st.order.data() + start, static_cast<std::size_t>(b));
        MatrixView xb = x.view().rows_range(0, b), yb = y.view().rows_range(0, b);
        gather_batch(ds, rows, data.pre, xb, yb, smoothing);
        if (start + b < n) {
          prefetch_rows(
              ds, std::span<const Index>(st.order.data() + start + b,
                                         static_cast<std::size_t>(std::min(bs, n - start - b))));
        }
        ConstMatrixView a = model.forward(xb, any_dropout ? &dropout : nullptr);
        const double loss = model.loss(yb);
        if (!std::isfinite(loss)) {
          if (options.on_nonfinite == NonFinitePolicy::kStop) {
            fail(std::string("the loss is ") + (std::isnan(loss) ? "NaN" : "infinite"), false);
          }
          skip = true;
        } else {
          tally.add(ds, rows, a, yb, loss);
          if (fused) {
            model.backward_sgd(xb, yb, lr);  // D4–D8 in one pass: ∂L/∂W never stored
          } else {
            model.backward(xb, yb);
            skip = clip_check_step(model, optimizer, options, fail);
          }
        }
        stop = options.stop != nullptr && options.stop->load();
      }
      if (skip) ++st.skipped;
      st.batch = batch + 1;
      st.seen = tally.n;
      st.loss_sum = tally.loss_sum;
      st.correct = tally.correct;
      st.sq_err = tally.sq_err;
      st.values = tally.n_values;
      if (callbacks.on_batch) {
        callbacks.on_batch({epoch, options.epochs, start + b, n, seconds_since(t0)});
      }
      if (stop || (options.checkpoint_every_minutes > 0 && start + b < n &&
                   seconds_since(last_checkpoint) >= 60 * options.checkpoint_every_minutes)) {
        checkpoint();
      }
      if (stop) {
        throw Error(ErrorCode::kInterrupted, "interrupted in epoch " + std::to_string(epoch) +
                                                 ", batch " + std::to_string(batch + 1));
      }
    }
    EpochStats stats;
    stats.epoch = epoch;
    stats.seconds = seconds_since(t0);
    const Index trained = std::max<Index>(0, n - first * bs);
    stats.samples_per_second = static_cast<double>(trained) / std::max(stats.seconds, 1e-9);
    stats.learning_rate = lr;
    stats.train = tally.metrics(ds.task);
    stats.skipped_batches = st.skipped;
    if (sharded) {
      if (val_n > 0)
        stats.val = evaluate_sharded(model, ds, data.val_rows, data.pre, *comm).metrics;
    } else if (!data.val_rows.empty()) {
      stats.val = evaluate(model, ds, data.val_rows, data.pre).metrics;
    }
    if (data.test != nullptr && (options.eval_test_each_epoch || epoch == options.epochs)) {
      stats.test =
          sharded
              ? evaluate_sharded(model, *data.test, all_rows(*data.test), data.pre, *comm).metrics
              : evaluate(model, *data.test, {}, data.pre).metrics;
    }
    measure_health(model, px.view(), py.view(), stats);
    // The model's parameters must still be finite after the epoch (the fused SGD path updates
    // them without materialising gradients).
    if (!all_finite(model.params())) nonfinite(epoch, st.batch, "a weight is not finite", false);

    if (options.schedule.kind == ScheduleKind::kPlateau) {
      if (stats.val.loss < st.plateau_best) {
        st.plateau_best = stats.val.loss;
        st.plateau_bad = 0;
      } else if (++st.plateau_bad >= options.schedule.plateau_patience) {
        st.plateau_scale *= options.schedule.plateau_factor;
        st.plateau_bad = 0;
      }
    }
    bool stop_early = false;
    if (options.patience > 0) {
      if (stats.val.loss < st.best_val_loss) {
        st.best_val_loss = stats.val.loss;
        st.best_epoch = epoch;
        st.bad_epochs = 0;
        st.best_params.assign(model.params().begin(), model.params().end());
        stats.best = true;
      } else {
        stop_early = ++st.bad_epochs >= options.patience;
      }
    }
    st.epoch = epoch;
    st.batch = 0;
    st.history.push_back(stats);
    if (callbacks.on_epoch) callbacks.on_epoch(stats);
    if ((options.checkpoint_every_epochs > 0 && epoch % options.checkpoint_every_epochs == 0) ||
        epoch == options.epochs || stop_early) {
      checkpoint();
    }
    if (stop_early) break;
  }
  if (options.patience > 0 && !st.best_params.empty()) {
    std::copy(st.best_params.begin(), st.best_params.end(), model.params().begin());
  }
  return st.history;
}

}  // namespace backprop
