// The training loop's schedules, clipping, label smoothing, early stopping, non-finite guard, and
// exact resume: a run interrupted at any batch and continued from its checkpoint ends with the
// same bits as a run that never stopped (RELIABILITY B.2.7).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <numbers>

#include "backprop/checkpoint.hpp"
#include "backprop/rng.hpp"
#include "backprop/train.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

Dataset blobs(Index per_class, std::uint64_t seed) {
  Dataset ds;
  ds.source = "blobs";
  ds.n = 3 * per_class;
  ds.n_features = 4;
  ds.sample_shape = {4};
  ds.feature_names = {"a", "b", "c", "d"};
  ds.label_columns = {"k"};
  ds.class_names = {"0", "1", "2"};
  Rng rng(seed);
  for (Index c = 0; c < 3; ++c) {
    for (Index i = 0; i < per_class; ++i) {
      for (Index j = 0; j < 4; ++j) {
        ds.x_f32.push_back(static_cast<float>((j == c ? 2.0 : 0.0) + rng.normal()));
      }
      ds.labels.push_back(static_cast<std::int32_t>(c));
    }
  }
  return ds;
}

TEST(Schedule, EachKindGivesItsRates) {
  ScheduleOptions s;
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 7, 10, 1), 0.1);
  s.kind = ScheduleKind::kStep;
  s.step = 3;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 1, 10, 1), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 4, 10, 1), 0.05);
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 7, 10, 1), 0.025);
  s.kind = ScheduleKind::kExponential;
  s.gamma = 0.9;
  EXPECT_NEAR(scheduled_rate(0.1, s, 3, 10, 1), 0.1 * 0.81, 1e-15);
  s.kind = ScheduleKind::kCosine;
  s.min_lr = 0.01;
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 1, 10, 1), 0.1);
  EXPECT_NEAR(scheduled_rate(0.1, s, 6, 10, 1), 0.055, 1e-15);  // halfway: the midpoint
  s.warmup = 4;
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 1, 10, 1), 0.02);  // linear warm-up: η·e/(W+1)
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 4, 10, 1), 0.08);
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 5, 10, 1), 0.1);  // cosine starts after it
  s.kind = ScheduleKind::kPlateau;
  s.warmup = 0;
  EXPECT_DOUBLE_EQ(scheduled_rate(0.1, s, 9, 10, 0.01), 0.001);
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::kCosine);
  EXPECT_THROW(parse_schedule("linear"), Error);
}

TEST(ClipGradients, BoundsTheNormAndLeavesSmallGradientsAlone) {
  Rng rng(3);
  std::vector<float> g(1000);
  for (float& v : g) v = static_cast<float>(rng.normal());
  const std::vector<float> before = g;
  double norm = clip_gradients(g, 1e9);  // far above: untouched, bitwise
  EXPECT_EQ(g, before);
  EXPECT_NEAR(norm, std::sqrt(1000.0), 3.0);
  for (double c : {0.5, 1.0, 7.3}) {
    g = before;
    EXPECT_DOUBLE_EQ(clip_gradients(g, c), norm);
    double after = 0;
    for (float v : g) after += double(v) * v;
    EXPECT_LE(std::sqrt(after), c * (1 + 1e-6));
    EXPECT_GE(std::sqrt(after), c * (1 - 1e-6));
  }
  g = before;
  g[5] = NAN;
  EXPECT_TRUE(std::isnan(clip_gradients(g, 1.0)));
  EXPECT_EQ(g[6], before[6]);  // a non-finite norm changes nothing: the caller decides
}

TEST(LabelSmoothing, SpreadsEpsilonOverTheClasses) {
  Dataset ds = blobs(2, 1);
  Matrix x(1, 4), y(1, 3);
  std::vector<Index> row = {3};  // class 1
  gather_batch(ds, row, scale_preprocess(ds), x.view(), y.view(), 0.3f);
  EXPECT_FLOAT_EQ(y(0, 0), 0.1f);
  EXPECT_FLOAT_EQ(y(0, 1), 0.8f);
  EXPECT_FLOAT_EQ(y(0, 2), 0.1f);
}

TrainData all_rows_of(const Dataset& ds, double val_fraction) {
  Split split = split_validation(ds, val_fraction, 1);
  TrainData d;
  d.data = &ds;
  d.train_rows = split.train;
  d.val_rows = split.val;
  d.pre = standardize_preprocess(ds, split.train);
  return d;
}

TEST(EarlyStopping, StopsAndRestoresTheBestWeights) {
  Dataset ds = blobs(40, 2);
  TrainData d = all_rows_of(ds, 0.3);
  Model m({.layers = {4, 64, 3}, .hidden = Activation::kRelu});
  m.init(Init::kHe, 1);
  // A learning rate high enough that the validation loss soon stops improving.
  Sgd sgd(2.0);
  TrainOptions o{.epochs = 60, .batch_size = 4, .seed = 1};
  o.patience = 3;
  std::vector<EpochStats> h = train(m, sgd, d, o);
  ASSERT_LT(h.size(), 60u) << "expected an early stop";
  int best = 0;
  double best_loss = 1e300;
  for (const EpochStats& s : h) {
    if (s.best) {
      best = s.epoch;
      best_loss = s.val.loss;
    }
  }
  EXPECT_EQ(static_cast<int>(h.size()), best + 3);
  // The weights are the best epoch's: the validation loss is that epoch's, exactly.
  EXPECT_EQ(evaluate(m, ds, d.val_rows, d.pre).metrics.loss, best_loss);
}

TEST(Plateau, ReducesTheRateWhenTheValidationLossStalls) {
  Dataset ds = blobs(40, 3);
  TrainData d = all_rows_of(ds, 0.3);
  Model m({.layers = {4, 8, 3}});
  m.init(Init::kXavier, 1);
  Sgd sgd(3.0);
  TrainOptions o{.epochs = 30, .batch_size = 8, .seed = 1};
  o.schedule.kind = ScheduleKind::kPlateau;
  o.schedule.plateau_patience = 2;
  o.schedule.plateau_factor = 0.5;
  std::vector<EpochStats> h = train(m, sgd, d, o);
  EXPECT_EQ(h.front().learning_rate, 3.0);
  EXPECT_LT(h.back().learning_rate, 3.0);
  // Every reduction follows two epochs without a better validation loss.
  double best = 1e300;
  int bad = 0;
  for (std::size_t e = 0; e + 1 < h.size(); ++e) {
    if (h[e].val.loss < best) {
      best = h[e].val.loss;
      bad = 0;
    } else {
      ++bad;
    }
    const bool reduced = h[e + 1].learning_rate < h[e].learning_rate;
    EXPECT_EQ(reduced, bad == 2) << "epoch " << e + 2;
    if (reduced) bad = 0;
  }
}

TEST(NonFinite, StopsNamingTheBatchAndLayerOrSkipsTheBatch) {
  Dataset ds = blobs(30, 4);
  TrainData d = all_rows_of(ds, 0);
  for (bool fused : {true, false}) {
    Model m({.layers = {4, 8, 3}});
    m.init(Init::kXavier, 1);
    m.weight(1)(2, 3) = NAN;  // a poisoned weight in layer 2
    Sgd sgd(0.1, fused ? 0.0 : 1e-4);
    test::expect_error(
        [&] { train(m, sgd, d, {.epochs = 2, .batch_size = 8, .seed = 1}); }, ErrorCode::kNumeric,
        {"epoch 1, batch 1", "the loss is NaN", "layer 2's weights", "learning rate"});
  }
  // skip-batch: batches whose gradient is not finite are skipped, the rest train.
  Model m({.layers = {4, 8, 3}});
  m.init(Init::kXavier, 1);
  Dataset bad = ds;
  bad.x_f32[5] = NAN;  // one row (the library API takes what it is given; loaders refuse NaN)
  TrainData db = all_rows_of(bad, 0);
  db.pre = scale_preprocess(bad);
  Sgd sgd(0.1);
  TrainOptions o{.epochs = 2, .batch_size = 8, .seed = 1};
  o.on_nonfinite = NonFinitePolicy::kSkipBatch;
  std::vector<EpochStats> h = train(m, sgd, db, o);
  EXPECT_EQ(h[0].skipped_batches, 1);
  EXPECT_EQ(h[1].skipped_batches, 1);
  for (float p : m.params()) ASSERT_TRUE(std::isfinite(p));
}

// The per-layer health figures of the metrics log: a ReLU layer whose biases push every unit
// negative is all dead, sigmoid units driven by huge weights are saturated, and the norms are
// those of the model's own tensors.
TEST(LayerHealth, SeesDeadReLUsSaturatedSigmoidsAndTheNorms) {
  Dataset ds = blobs(30, 6);
  TrainData d = all_rows_of(ds, 0);
  {
    Model m({.layers = {4, 8, 6, 3}, .hidden = Activation::kRelu});
    m.init(Init::kHe, 1);
    for (Index j = 0; j < 8; ++j) m.bias(0)[j] = -1000.0f;  // layer 1: no unit ever fires
    Sgd sgd(1e-6);
    std::vector<EpochStats> h = train(m, sgd, d, {.epochs = 1, .batch_size = 8, .seed = 1});
    ASSERT_EQ(h[0].layers.size(), 3u);
    EXPECT_EQ(h[0].layers[0].dead, 1.0);
    EXPECT_TRUE(std::isnan(h[0].layers[0].saturated));
    // Nothing flows back through dead units: layer 1's weights get no gradient.
    EXPECT_EQ(h[0].layers[0].grad_norm, 0.0);
    double w = 0;
    for (Index i = 0; i < 8; ++i)
      for (Index j = 0; j < 4; ++j) w += static_cast<double>(m.weight(0)(i, j)) * m.weight(0)(i, j);
    EXPECT_NEAR(h[0].layers[0].weight_norm, std::sqrt(w), 1e-4 * std::sqrt(w));
    EXPECT_GT(h[0].grad_norm, 0.0);
  }
  {
    Model m({.layers = {4, 8, 3}, .hidden = Activation::kSigmoid});
    m.init(Init::kXavier, 1);
    Sgd sgd(1e-6);
    std::vector<EpochStats> calm = train(m, sgd, d, {.epochs = 1, .batch_size = 8, .seed = 1});
    for (Index i = 0; i < 8; ++i)
      for (Index j = 0; j < 4; ++j) m.weight(0)(i, j) *= 1000.0f;
    std::vector<EpochStats> hot = train(m, sgd, d, {.epochs = 1, .batch_size = 8, .seed = 1});
    EXPECT_LT(calm[0].layers[0].saturated, 0.2);
    EXPECT_GT(hot[0].layers[0].saturated, 0.9);
    EXPECT_TRUE(std::isnan(hot[0].layers[0].dead));
    EXPECT_TRUE(std::isnan(hot[0].layers[1].saturated));  // the output layer has no such figure
  }
}

// Trains the same run straight and interrupted at `stop_after` batches (with the checkpoint
// taken there round-tripped through its file format), then resumed; returns both final
// parameter arenas.
struct ResumeRun {
  std::vector<float> straight, resumed;
};

ResumeRun straight_and_resumed(const std::string& optimizer, Index stop_after) {
  Dataset ds = blobs(30, 5);
  TrainData d = all_rows_of(ds, 0.2);
  ModelSpec spec{.layers = {4, 16, 12, 3}, .hidden = Activation::kTanh};
  TrainOptions o{.epochs = 5, .batch_size = 7, .seed = 9};
  o.dropout = {0.2, 0.1};
  o.schedule.kind = ScheduleKind::kCosine;
  o.schedule.warmup = 1;
  o.patience = 10;
  o.label_smoothing = 0.05;
  o.checkpoint_every_epochs = 0;
  auto fresh = [&] {
    Model m(spec);
    m.init(Init::kXavier, 9);
    return m;
  };
  auto opt = [&] { return make_optimizer({.kind = optimizer, .lr = 0.05}); };

  ResumeRun r;
  Model a = fresh();
  auto oa = opt();
  train(a, *oa, d, o);
  r.straight.assign(a.params().begin(), a.params().end());

  Model b = fresh();
  auto ob = opt();
  std::atomic<bool> stop{false};
  Index batches = 0;
  std::vector<std::uint8_t> file;
  TrainCallbacks cb;
  cb.on_batch = [&](const Progress&) { stop.store(++batches == stop_after); };
  ModelInfo info;
  info.class_names = ds.class_names;
  info.feature_names = ds.feature_names;
  cb.checkpoint = [&](const Model& m, const Optimizer& op, const TrainState& st) {
    file = serialize_checkpoint(m, info, op, st, "{}", "hash");
    return std::string("memory");
  };
  TrainOptions ob_opts = o;
  ob_opts.stop = &stop;
  try {
    train(b, *ob, d, ob_opts, cb);
    ADD_FAILURE() << "not interrupted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInterrupted);
  }
  Checkpoint c = parse_checkpoint(file, "memory", {});
  Model resumed(spec);
  std::copy(c.model.model.params().begin(), c.model.model.params().end(), resumed.params().begin());
  auto oc = opt();
  oc->set_state(c.optimizer_state, resumed.params().size());
  train(resumed, *oc, d, o, {}, &c.state);
  r.resumed.assign(resumed.params().begin(), resumed.params().end());
  return r;
}

TEST(Resume, IsBitwiseTheUninterruptedRunAtTwentyStoppingPoints) {
  // 5 epochs of ceil(72 / 7) = 11 batches: stops inside epochs and on their boundaries.
  Rng rng(11);
  std::vector<Index> points = {1, 10, 11, 12, 22, 33, 54};
  while (points.size() < 20) points.push_back(1 + static_cast<Index>(rng.below(54)));
  const char* optimizers[] = {"sgd", "momentum", "adam", "rmsprop"};
  for (std::size_t i = 0; i < points.size(); ++i) {
    const char* kind = optimizers[i % 4];
    ResumeRun r = straight_and_resumed(kind, points[i]);
    ASSERT_EQ(r.straight.size(), r.resumed.size());
    EXPECT_EQ(0, std::memcmp(r.straight.data(), r.resumed.data(), r.straight.size() * 4))
        << kind << " stopped after batch " << points[i];
  }
}

}  // namespace
}  // namespace backprop
