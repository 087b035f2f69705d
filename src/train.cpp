#include "backprop/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

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

Evaluation evaluate(Model& model, const Dataset& ds, std::span<const Index> rows_in,
                    const Preprocess& pre, Index batch) {
  check_fits(model, ds);
  BACKPROP_ASSERT(batch >= 1 && ds.has_labels());
  std::vector<Index> all;
  std::span<const Index> rows = rows_in;
  if (rows.empty()) {
    all = all_rows(ds);
    rows = all;
  }
  const Index k = model.n_outputs();
  const auto n = static_cast<Index>(rows.size());
  Matrix x(std::min(batch, n), ds.n_features), y(std::min(batch, n), k);
  Evaluation ev;
  Tally tally;
  const bool classify = ds.task == Task::kClassify;
  if (classify) {
    ev.n_classes = k;
    ev.confusion.assign(static_cast<std::size_t>(k * k), 0);
  }
  double abs_err = 0;
  // R² needs each target's mean first: one pass for the sums of y and y², one for the residuals.
  std::vector<double> y_sum(static_cast<std::size_t>(k), 0), y_sq(static_cast<std::size_t>(k), 0),
      res_sq(static_cast<std::size_t>(k), 0);
  for (Index start = 0; start < n; start += batch) {
    Index b = std::min(batch, n - start);
    auto chunk = rows.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(b));
    MatrixView xb = x.view().rows_range(0, b), yb = y.view().rows_range(0, b);
    gather_batch(ds, chunk, pre, xb, yb);
    ConstMatrixView a = model.forward(xb);
    tally.add(ds, chunk, a, yb, model.loss(yb));
    for (Index i = 0; i < b; ++i) {
      if (classify) {
        auto t = ds.labels[static_cast<std::size_t>(chunk[static_cast<std::size_t>(i)])];
        ++ev.confusion[static_cast<std::size_t>(t * k + argmax_row(a.row(i), k))];
      } else {
        for (Index j = 0; j < k; ++j) {
          double yv = yb(i, j), d = static_cast<double>(a(i, j)) - yv;
          auto u = static_cast<std::size_t>(j);
          abs_err += std::abs(d);
          y_sum[u] += yv;
          y_sq[u] += yv * yv;
          res_sq[u] += d * d;
        }
      }
    }
  }
  ev.metrics = tally.metrics(ds.task);
  if (!classify && n > 0) {
    ev.mae = abs_err / static_cast<double>(n * k);
    double r2 = 0;
    for (std::size_t u = 0; u < static_cast<std::size_t>(k); ++u) {
      double mean = y_sum[u] / static_cast<double>(n);
      double ss_tot = y_sq[u] - static_cast<double>(n) * mean * mean;
      // A constant target has no variance to explain: R² is 1 if it is matched exactly, else 0
      // (scikit-learn's convention).
      r2 += ss_tot > 0 ? 1.0 - res_sq[u] / ss_tot : (res_sq[u] == 0 ? 1.0 : 0.0);
    }
    ev.r2 = r2 / static_cast<double>(k);
  }
  return ev;
}

std::vector<EpochStats> train(Model& model, Optimizer& optimizer, const TrainData& data,
                              const TrainOptions& options, const TrainCallbacks& callbacks) {
  BACKPROP_ASSERT(data.data != nullptr);
  const Dataset& ds = *data.data;
  if (options.epochs < 1) throw Error(ErrorCode::kUsage, "epochs must be >= 1");
  if (options.batch_size < 1) throw Error(ErrorCode::kUsage, "batch size must be >= 1");
  if (data.train_rows.empty()) throw Error(ErrorCode::kData, ds.source + ": no training rows");
  check_fits(model, ds);
  if (data.test != nullptr) check_fits(model, *data.test);

  const Index n = static_cast<Index>(data.train_rows.size());
  const Index bs = std::min(options.batch_size, n);
  Matrix x(bs, ds.n_features), y(bs, model.n_outputs());
  std::vector<Index> order = data.train_rows;
  Rng rng = Rng::stream(options.seed, "shuffle");
  std::vector<EpochStats> history;

  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    rng.shuffle(order.begin(), order.end());
    auto t0 = Clock::now();
    Tally tally;
    Index batch_no = 0;
    for (Index start = 0; start < n; start += bs, ++batch_no) {
      Index b = std::min(bs, n - start);
      std::span<const Index> rows(order.data() + start, static_cast<std::size_t>(b));
      MatrixView xb = x.view().rows_range(0, b), yb = y.view().rows_range(0, b);
      gather_batch(ds, rows, data.pre, xb, yb);
      if (start + b < n) {
        prefetch_rows(
            ds, std::span<const Index>(order.data() + start + b,
                                       static_cast<std::size_t>(std::min(bs, n - start - b))));
      }
      ConstMatrixView a = model.forward(xb);
      double loss = model.loss(yb);
      if (!std::isfinite(loss)) {
        throw Error(ErrorCode::kNumeric,
                    "epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch_no + 1) +
                        ": the loss is " + (std::isnan(loss) ? "NaN" : "infinite") +
                        "; the learning rate (" + format_number(optimizer.learning_rate()) +
                        ") may be too high");
      }
      tally.add(ds, rows, a, yb, loss);
      if (std::optional<double> lr = optimizer.plain_sgd_rate()) {
        model.backward_sgd(xb, yb, *lr);  // D4–D8 in one pass: ∂L/∂W never stored
      } else {
        model.backward(xb, yb);
        optimizer.step(model.params(), model.grads());
      }
      if (callbacks.on_batch) {
        callbacks.on_batch({epoch, options.epochs, start + b, n, seconds_since(t0)});
      }
    }
    EpochStats st;
    st.epoch = epoch;
    st.seconds = seconds_since(t0);
    st.samples_per_second = static_cast<double>(n) / std::max(st.seconds, 1e-9);
    st.learning_rate = optimizer.learning_rate();
    st.train = tally.metrics(ds.task);
    if (!data.val_rows.empty()) st.val = evaluate(model, ds, data.val_rows, data.pre).metrics;
    if (data.test != nullptr && (options.eval_test_each_epoch || epoch == options.epochs)) {
      st.test = evaluate(model, *data.test, {}, data.pre).metrics;
    }
    history.push_back(st);
    if (callbacks.on_epoch) callbacks.on_epoch(st);
  }
  return history;
}

}  // namespace backprop
