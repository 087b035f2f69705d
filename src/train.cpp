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

// Row r's regression targets, as the data holds them.
const float* target_row(const Dataset& ds, Index r) {
  return ds.targets.data() + static_cast<std::size_t>(r) * static_cast<std::size_t>(ds.n_targets());
}

// Sums over batches, turned into Metrics at the end.
struct Tally {
  Index n = 0;
  double loss_sum = 0;  // Σ batch_loss × batch_size
  Index correct = 0;    // classify
  double sq_err = 0;    // regress: Σ (a − y)²
  Index n_values = 0;   // regress: rows × targets

  // Outputs a of `rows`, whose batch loss was batch_loss. Regression errors are taken in the
  // targets' own units (output_to_target against the data's targets).
  void add(const Dataset& ds, const Preprocess& pre, std::span<const Index> rows, ConstMatrixView a,
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
        const float* y = target_row(ds, rows[static_cast<std::size_t>(i)]);
        for (Index j = 0; j < a.cols; ++j) {
          double d =
              static_cast<double>(output_to_target(pre, j, a(i, j))) - static_cast<double>(y[j]);
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
    s.tally.add(ds, pre, chunk, a, model.loss(yb));
    for (Index i = 0; i < b; ++i) {
      if (classify) {
        auto t = ds.labels[static_cast<std::size_t>(chunk[static_cast<std::size_t>(i)])];
        ++s.confusion[static_cast<std::size_t>(t * k + argmax_row(a.row(i), k))];
      } else {
        const float* truth = target_row(ds, chunk[static_cast<std::size_t>(i)]);
        for (Index j = 0; j < k; ++j) {
          double yv = truth[j], d = static_cast<double>(output_to_target(pre, j, a(i, j))) - yv;
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
      mine.add(ds, data.pre, rows, a, loss);
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

namespace {

// The training rows of the whole run: this process's, or with sharded data every rank's
// (parts[r]) and their sums.
struct RowCounts {
  Index n = 0, val_n = 0;
  std::vector<Index> parts;  // sharded only
};

RowCounts count_rows(const TrainData& data, const TrainOptions& options, Collective* comm,
                     bool sharded) {
  RowCounts c{
      static_cast<Index>(data.train_rows.size()), static_cast<Index>(data.val_rows.size()), {}};
  if (!sharded) return c;
  const int world = comm->size(), rank = comm->rank();
  std::vector<double> counts(2 * static_cast<std::size_t>(world), 0.0);
  counts[static_cast<std::size_t>(rank)] = static_cast<double>(c.n);
  counts[static_cast<std::size_t>(world + rank)] = static_cast<double>(c.val_n);
  comm->sum(counts);
  c.n = c.val_n = 0;
  for (int r = 0; r < world; ++r) {
    c.parts.push_back(static_cast<Index>(counts[static_cast<std::size_t>(r)]));
    c.n += c.parts.back();
    c.val_n += static_cast<Index>(counts[static_cast<std::size_t>(world + r)]);
  }
  if (c.n == 0) throw Error(ErrorCode::kData, data.data->source + ": no training rows on any rank");
  check_has_validation(options, c.val_n > 0, true);
  return c;
}

// The state to start from: a fresh one (the RNG streams drawn from the seed), or the resumed one
// after checking that it belongs to these options and rows.
TrainState start_state(const TrainData& data, const TrainOptions& options, const TrainState* resume,
                       Index n, bool sharded) {
  TrainState st;
  if (resume == nullptr) {
    st.shuffle_rng = Rng::stream(options.seed, "shuffle").state();
    st.dropout_rng = Rng::stream(options.seed, "dropout").state();
    return st;
  }
  st = *resume;
  if (st.epoch > options.epochs) {
    throw Error(ErrorCode::kData, "the checkpoint is past the end of this run (epoch " +
                                      std::to_string(st.epoch) + " of " +
                                      std::to_string(options.epochs) + ")");
  }
  // The saved order must be these training rows, shuffled: anything else is another dataset.
  // (Sharded, the order is rank 0's, and each rank redraws its own: see the epoch loop.)
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
  return st;
}

// One dropout rate per hidden layer (a single rate applies to all).
std::vector<double> dropout_rates(const TrainOptions& options, const Model& model) {
  std::vector<double> rates = options.dropout;
  if (rates.size() == 1) rates.assign(static_cast<std::size_t>(model.n_layers() - 1), rates[0]);
  return rates;
}

// The epoch loop of train(): what it carries between batches and epochs, and one method per step.
class Trainer {
 public:
  Trainer(Model& model, Optimizer& optimizer, const TrainData& data, const TrainOptions& options,
          const TrainCallbacks& callbacks, const TrainState* resume)
      : model_(model),
        optimizer_(optimizer),
        data_(data),
        ds_(*data.data),
        options_(options),
        callbacks_(callbacks),
        comm_(options.collective),
        world_(comm_ != nullptr ? comm_->size() : 1),
        rank_(comm_ != nullptr ? comm_->rank() : 0),
        sharded_(data.sharded && world_ > 1),
        rows_(count_rows(data, options, comm_, sharded_)),
        schedule_(rows_.parts),
        st_(start_state(data, options, resume, rows_.n, sharded_)),
        rates_(dropout_rates(options, model)),
        dropout_{rates_, &dropout_rng_},
        base_lr_(optimizer.learning_rate()),
        // Plain SGD is fused into backward unless the gradients themselves are needed.
        fused_(optimizer.plain_sgd_rate().has_value() && options.clip_norm == 0 &&
               options.on_nonfinite == NonFinitePolicy::kStop && world_ == 1),
        bs_(std::min(options.batch_size, rows_.n)),
        smoothing_(static_cast<float>(options.label_smoothing)) {
    shuffle_.set_state(st_.shuffle_rng);
    dropout_rng_.set_state(st_.dropout_rng);
    for (double p : rates_) any_dropout_ = any_dropout_ || p > 0;
    // Sharded, a rank's share of a batch is at most the batch and at most its part.
    const Index rows_max =
        sharded_
            ? std::max<Index>(1, std::min<Index>(bs_, static_cast<Index>(data.train_rows.size())))
            : bs_;
    rows_max_ = rows_max;
    x_ = Matrix(rows_max, ds_.n_features);
    y_ = Matrix(rows_max, model.n_outputs());
    const std::vector<Index> probe = probe_rows(data);
    px_ = Matrix(static_cast<Index>(probe.size()), ds_.n_features);
    py_ = Matrix(static_cast<Index>(probe.size()), model.n_outputs());
    gather_batch(ds_, probe, data.pre, px_.view(), py_.view());
  }

  std::vector<EpochStats> run() {
    for (int epoch = st_.epoch + 1; epoch <= options_.epochs; ++epoch) {
      if (!run_epoch(epoch)) break;
    }
    if (options_.patience > 0 && !st_.best_params.empty()) {
      std::copy(st_.best_params.begin(), st_.best_params.end(), model_.params().begin());
    }
    return st_.history;
  }

 private:
  // One epoch: its learning rate and order, its batches, then evaluation, health, the schedule
  // and early stopping. Returns false when early stopping ends the run.
  bool run_epoch(int epoch) {
    const double lr =
        scheduled_rate(base_lr_, options_.schedule, epoch, options_.epochs, st_.plateau_scale);
    optimizer_.set_learning_rate(lr);
    start_epoch(epoch);
    Tally tally{st_.seen, st_.loss_sum, st_.correct, st_.sq_err, st_.values};
    const auto t0 = Clock::now();
    const Index first = st_.batch;
    for (Index batch = first; batch * bs_ < rows_.n; ++batch)
      run_batch(epoch, batch, lr, tally, t0);

    EpochStats stats;
    stats.epoch = epoch;
    stats.seconds = seconds_since(t0);
    const Index trained = std::max<Index>(0, rows_.n - first * bs_);
    stats.samples_per_second = static_cast<double>(trained) / std::max(stats.seconds, 1e-9);
    stats.learning_rate = lr;
    stats.train = tally.metrics(ds_.task);
    stats.skipped_batches = st_.skipped;
    evaluate_epoch(epoch, stats);
    measure_health(model_, px_.view(), py_.view(), stats);
    // The model's parameters must still be finite after the epoch (the fused SGD path updates
    // them without materialising gradients).
    if (!all_finite(model_.params())) nonfinite(epoch, st_.batch, "a weight is not finite", false);

    update_plateau(stats);
    const bool stop_early = update_early_stopping(epoch, stats);
    st_.epoch = epoch;
    st_.batch = 0;
    st_.history.push_back(stats);
    if (callbacks_.on_epoch) callbacks_.on_epoch(stats);
    if ((options_.checkpoint_every_epochs > 0 && epoch % options_.checkpoint_every_epochs == 0) ||
        epoch == options_.epochs || stop_early) {
      checkpoint();
    }
    return !stop_early;
  }

  // The epoch's order of the training rows, and zero running sums (unless resumed mid-epoch).
  void start_epoch(int epoch) {
    if (sharded_) {
      // Each rank's own order, drawn from the seed, the rank and the epoch alone, so that a
      // resumed rank redraws it (a checkpoint holds rank 0's state only).
      st_.order = data_.train_rows;
      Rng::stream(options_.seed,
                  "shard order " + std::to_string(rank_) + " " + std::to_string(epoch))
          .shuffle(st_.order.begin(), st_.order.end());
    }
    if (st_.batch == 0) {  // a fresh epoch (not resumed in its middle)
      if (st_.order.empty()) st_.order = data_.train_rows;
      if (!sharded_) shuffle_.shuffle(st_.order.begin(), st_.order.end());
      st_.seen = st_.correct = st_.values = st_.skipped = 0;
      st_.loss_sum = st_.sq_err = 0;
    }
  }

  // One batch (0-based `batch` of the epoch), the running sums kept in st_, progress reported,
  // a checkpoint when due; throws Error(kInterrupted) when asked to stop.
  void run_batch(int epoch, Index batch, double lr, Tally& tally, Clock::time_point t0) {
    const Index n = rows_.n;
    const Index start = batch * bs_, b = std::min(bs_, n - start);
    const auto fail = [&](const std::string& what, bool in_grads) {
      nonfinite(epoch, batch + 1, what, in_grads);
    };
    bool skip = false, stop = false;
    if (world_ > 1) {
      stop = run_parallel_batch(start, b, tally, skip, fail);
    } else {
      skip = run_local_batch(start, b, lr, tally, fail);
      stop = options_.stop != nullptr && options_.stop->load();
    }
    if (skip) ++st_.skipped;
    st_.batch = batch + 1;
    st_.seen = tally.n;
    st_.loss_sum = tally.loss_sum;
    st_.correct = tally.correct;
    st_.sq_err = tally.sq_err;
    st_.values = tally.n_values;
    if (callbacks_.on_batch) {
      callbacks_.on_batch({epoch, options_.epochs, start + b, n, seconds_since(t0)});
    }
    if (stop || (options_.checkpoint_every_minutes > 0 && start + b < n &&
                 seconds_since(last_checkpoint_) >= 60 * options_.checkpoint_every_minutes)) {
      checkpoint();
    }
    if (stop) {
      throw Error(ErrorCode::kInterrupted, "interrupted in epoch " + std::to_string(epoch) +
                                               ", batch " + std::to_string(batch + 1));
    }
  }

  // This process alone: rows [start, start + b) of the order, forward, loss, backward and step.
  // Returns whether the batch was skipped (a non-finite value under the skip-batch policy).
  template <class Fail>
  bool run_local_batch(Index start, Index b, double lr, Tally& tally, const Fail& fail) {
    const Index n = rows_.n;
    std::span<const Index> rows(st_.order.data() + start, static_cast<std::size_t>(b));
    MatrixView xb = x_.view().rows_range(0, b), yb = y_.view().rows_range(0, b);
    gather_batch(ds_, rows, data_.pre, xb, yb, smoothing_);
    if (start + b < n) {
      prefetch_rows(ds_,
                    std::span<const Index>(st_.order.data() + start + b,
                                           static_cast<std::size_t>(std::min(bs_, n - start - b))));
    }
    ConstMatrixView a = model_.forward(xb, any_dropout_ ? &dropout_ : nullptr);
    const double loss = model_.loss(yb);
    if (!std::isfinite(loss)) {
      if (options_.on_nonfinite == NonFinitePolicy::kStop) {
        fail(std::string("the loss is ") + (std::isnan(loss) ? "NaN" : "infinite"), false);
      }
      return true;
    }
    tally.add(ds_, data_.pre, rows, a, loss);
    if (fused_) {
      model_.backward_sgd(xb, yb, lr);  // D4–D8 in one pass: ∂L/∂W never stored
      return false;
    }
    model_.backward(xb, yb);
    return clip_check_step(model_, optimizer_, options_, fail);
  }

  // Data parallel: this rank's slice of the global batch [start, start + b): rows [lo, hi) of its
  // order, which are rows [offset, offset + hi − lo) of the batch; the rest is as one process
  // does it. Returns whether any rank was asked to stop.
  template <class Fail>
  bool run_parallel_batch(Index start, Index b, Tally& tally, bool& skip, const Fail& fail) {
    Index lo = start + b * rank_ / world_, hi = start + b * (rank_ + 1) / world_;
    Index offset = lo - start;
    if (sharded_) {
      const ShardSchedule::Slice s = schedule_.slice(start, start + b, rank_);
      lo = s.lo;
      hi = s.hi;
      offset = s.offset;
      BACKPROP_ASSERT(hi - lo <= rows_max_ && hi <= static_cast<Index>(st_.order.size()));
    }
    return data_parallel_batch(
        model_, optimizer_, data_, options_, *comm_, dropout_, any_dropout_,
        std::span<const Index>(st_.order.data() + lo, static_cast<std::size_t>(hi - lo)), b, offset,
        x_.view(), y_.view(), smoothing_, tally, skip, fail);
  }

  // The validation rows every epoch, the test set after the last (or every epoch when asked).
  void evaluate_epoch(int epoch, EpochStats& stats) {
    if (sharded_) {
      if (rows_.val_n > 0) {
        stats.val = evaluate_sharded(model_, ds_, data_.val_rows, data_.pre, *comm_).metrics;
      }
    } else if (!data_.val_rows.empty()) {
      stats.val = evaluate(model_, ds_, data_.val_rows, data_.pre).metrics;
    }
    if (data_.test != nullptr && (options_.eval_test_each_epoch || epoch == options_.epochs)) {
      stats.test =
          sharded_ ? evaluate_sharded(model_, *data_.test, all_rows(*data_.test), data_.pre, *comm_)
                         .metrics
                   : evaluate(model_, *data_.test, {}, data_.pre).metrics;
    }
  }

  // The plateau schedule: one reduction each time the validation loss has not improved for
  // plateau_patience epochs.
  void update_plateau(const EpochStats& stats) {
    if (options_.schedule.kind != ScheduleKind::kPlateau) return;
    if (stats.val.loss < st_.plateau_best) {
      st_.plateau_best = stats.val.loss;
      st_.plateau_bad = 0;
    } else if (++st_.plateau_bad >= options_.schedule.plateau_patience) {
      st_.plateau_scale *= options_.schedule.plateau_factor;
      st_.plateau_bad = 0;
    }
  }

  // Early stopping: keeps the best epoch's weights and marks it; returns whether to stop now.
  bool update_early_stopping(int epoch, EpochStats& stats) {
    if (options_.patience <= 0) return false;
    if (stats.val.loss < st_.best_val_loss) {
      st_.best_val_loss = stats.val.loss;
      st_.best_epoch = epoch;
      st_.bad_epochs = 0;
      st_.best_params.assign(model_.params().begin(), model_.params().end());
      stats.best = true;
      return false;
    }
    return ++st_.bad_epochs >= options_.patience;
  }

  void checkpoint() {
    if (!callbacks_.checkpoint) return;
    st_.shuffle_rng = shuffle_.state();
    st_.dropout_rng = dropout_rng_.state();
    std::string path = callbacks_.checkpoint(model_, optimizer_, st_);
    last_checkpoint_ = Clock::now();
    if (callbacks_.on_checkpoint) callbacks_.on_checkpoint(path);
  }

  // Throws Error(kNumeric) naming the epoch, the batch, what is not finite and the first layer
  // holding a non-finite value.
  [[noreturn]] void nonfinite(int epoch, Index batch, const std::string& what,
                              bool in_grads) const {
    std::string where = first_nonfinite_layer(model_, in_grads);
    if (where.empty() && !in_grads) where = first_nonfinite_layer(model_, true);
    throw Error(ErrorCode::kNumeric,
                "epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch) + ": " +
                    what + (where.empty() ? "" : "; the first non-finite values are in " + where) +
                    "; the learning rate (" + format_number(optimizer_.learning_rate()) +
                    ") may be too high (or use --on-nonfinite skip-batch)" + targets_note());
  }

  // Regression: whether the targets were standardised, for the non-finite message.
  std::string targets_note() const {
    if (ds_.task != Task::kRegress) return "";
    return data_.pre.standardizes_targets()
               ? "; the targets were standardised (mean and standard deviation of the training "
                 "rows)"
               : "; the targets were not standardised (--no-standardize-targets): targets far "
                 "from 1 in size make large gradients";
  }

  Model& model_;
  Optimizer& optimizer_;
  const TrainData& data_;
  const Dataset& ds_;
  const TrainOptions& options_;
  const TrainCallbacks& callbacks_;
  // Data parallelism: this process is rank rank_ of world_ (see collective.hpp).
  Collective* comm_;
  const int world_, rank_;
  const bool sharded_;
  const RowCounts rows_;
  ShardSchedule schedule_;
  TrainState st_;
  Rng shuffle_{0}, dropout_rng_{0};
  std::vector<double> rates_;
  bool any_dropout_ = false;
  Model::Dropout dropout_;
  const double base_lr_;
  const bool fused_;
  const Index bs_;
  Index rows_max_ = 0;
  const float smoothing_;
  Matrix x_, y_, px_, py_;  // the batch, and the probe batch of measure_health
  Clock::time_point last_checkpoint_ = Clock::now();
};

}  // namespace

std::vector<EpochStats> train(Model& model, Optimizer& optimizer, const TrainData& data,
                              const TrainOptions& options, const TrainCallbacks& callbacks,
                              const TrainState* resume) {
  BACKPROP_ASSERT(data.data != nullptr);
  check_fits(model, *data.data);
  if (data.test != nullptr) check_fits(model, *data.test);
  validate(model, data, options);
  return Trainer(model, optimizer, data, options, callbacks, resume).run();
}

}  // namespace backprop
