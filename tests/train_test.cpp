// The training loop on synthetic data it makes itself: learning (spirals, regression),
// determinism across runs and thread counts, mini-batch bookkeeping, the validation split,
// evaluation metrics, and the non-finite guard.
#include "backprop/train.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <set>

#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"

namespace backprop {
namespace {

// Two interleaved spirals, n points per arm, in [-1, 1]².
Dataset spirals(Index n_per_class, std::uint64_t seed) {
  Dataset ds;
  ds.source = "spirals";
  ds.task = Task::kClassify;
  ds.n = 2 * n_per_class;
  ds.n_features = 2;
  ds.sample_shape = {2};
  ds.feature_names = {"x", "y"};
  ds.label_columns = {"arm"};
  ds.class_names = {"0", "1"};
  Rng rng(seed);
  for (Index c = 0; c < 2; ++c) {
    for (Index i = 0; i < n_per_class; ++i) {
      double t = 0.25 + 3.0 * static_cast<double>(i) / static_cast<double>(n_per_class);
      double r = t / 3.25, angle = 1.6 * t + static_cast<double>(c) * std::numbers::pi;
      ds.x_f32.push_back(static_cast<float>(r * std::cos(angle) + 0.01 * rng.normal()));
      ds.x_f32.push_back(static_cast<float>(r * std::sin(angle) + 0.01 * rng.normal()));
      ds.labels.push_back(static_cast<std::int32_t>(c));
    }
  }
  return ds;
}

// y = A·x + c with 3 features and 2 targets, no noise.
Dataset linear_regression(Index n, std::uint64_t seed) {
  Dataset ds;
  ds.source = "linear";
  ds.task = Task::kRegress;
  ds.n = n;
  ds.n_features = 3;
  ds.sample_shape = {3};
  ds.feature_names = {"a", "b", "c"};
  ds.label_columns = {"u", "v"};
  Rng rng(seed);
  for (Index i = 0; i < n; ++i) {
    double x[3] = {rng.normal(), rng.normal(), rng.normal()};
    for (double v : x) ds.x_f32.push_back(static_cast<float>(v));
    ds.targets.push_back(static_cast<float>(0.5 * x[0] - 1.0 * x[1] + 0.25 * x[2] + 1.0));
    ds.targets.push_back(static_cast<float>(-0.3 * x[0] + 0.8 * x[2] - 0.5));
  }
  return ds;
}

TrainData all_of(const Dataset& ds) {
  TrainData d;
  d.data = &ds;
  d.train_rows = all_rows(ds);
  d.pre = scale_preprocess(ds);
  return d;
}

TEST(Train, LearnsTwoSpirals) {
  Dataset ds = spirals(200, 1);
  Model m({.layers = {2, 32, 32, 2}, .hidden = Activation::kTanh});
  m.init(Init::kXavier, 1);
  Sgd sgd(0.3);
  TrainOptions opt{.epochs = 400, .batch_size = 16, .seed = 1};
  train(m, sgd, all_of(ds), opt);
  Evaluation ev = evaluate(m, ds, {}, scale_preprocess(ds));
  // A linear model gets about 50-65% here; a working MLP separates the arms almost perfectly.
  EXPECT_GE(ev.metrics.accuracy, 0.97);
  std::int64_t total = 0;
  for (auto c : ev.confusion) total += c;
  EXPECT_EQ(total, ds.n);
}

TEST(Train, FitsALinearRegression) {
  Dataset ds = linear_regression(500, 2);
  Model m({.layers = {3, 16, 2},
           .hidden = Activation::kTanh,
           .output = Activation::kIdentity,
           .loss = Loss::kQuadratic});
  m.init(Init::kXavier, 2);
  Sgd sgd(0.05);
  TrainOptions opt{.epochs = 150, .batch_size = 10, .seed = 2};
  train(m, sgd, all_of(ds), opt);
  Evaluation ev = evaluate(m, ds, {}, scale_preprocess(ds));
  EXPECT_GT(ev.r2, 0.995);
  EXPECT_LT(ev.metrics.rmse, 0.1);
  EXPECT_LT(ev.mae, ev.metrics.rmse * 1.0001);  // MAE <= RMSE always
}

std::vector<float> train_params(int threads, std::uint64_t seed) {
  set_num_threads(threads);
  Dataset ds = spirals(300, 5);
  // Wide enough that the GEMMs split across threads (see kMinMacsPerThread in gemm.cpp).
  Model m({.layers = {2, 256, 128, 2}, .hidden = Activation::kRelu});
  m.init(Init::kHe, seed);
  Sgd sgd(0.05);
  TrainOptions opt{.epochs = 3, .batch_size = 64, .seed = seed};
  train(m, sgd, all_of(ds), opt);
  set_num_threads(0);
  return {m.params().begin(), m.params().end()};
}

TEST(Train, IsBitwiseReproducibleAndThreadCountInvariant) {
  std::vector<float> one = train_params(1, 7);
  std::vector<float> two = train_params(2, 7);
  std::vector<float> three = train_params(3, 7);
  std::vector<float> again = train_params(2, 7);
  std::vector<float> other_seed = train_params(2, 8);
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
  };
  EXPECT_TRUE(same(one, two));
  EXPECT_TRUE(same(one, three));
  EXPECT_TRUE(same(two, again));
  EXPECT_FALSE(same(one, other_seed));
}

TEST(Train, UsesEveryExampleOncePerEpochIncludingThePartialBatch) {
  Dataset ds = spirals(5, 3);  // 10 examples
  Model m({.layers = {2, 3, 2}});
  m.init(Init::kXavier, 1);
  Sgd sgd(0.1);
  std::vector<Index> done;
  TrainCallbacks cb;
  cb.on_batch = [&](const Progress& p) {
    EXPECT_EQ(p.total, 10);
    done.push_back(p.done);
  };
  std::vector<EpochStats> h =
      train(m, sgd, all_of(ds), {.epochs = 2, .batch_size = 4, .seed = 1}, cb);
  EXPECT_EQ(done, (std::vector<Index>{4, 8, 10, 4, 8, 10}));
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].train.n, 10);
  EXPECT_EQ(h[1].epoch, 2);
  EXPECT_TRUE(std::isfinite(h[1].train.loss));
  EXPECT_EQ(h[1].val.n, 0);
}

TEST(Train, ReportsValidationAndTestFigures) {
  Dataset ds = spirals(100, 4), test = spirals(20, 9);
  Split s = split_validation(ds, 0.2, 1);
  TrainData d = all_of(ds);
  d.train_rows = s.train;
  d.val_rows = s.val;
  d.test = &test;
  Model m({.layers = {2, 8, 2}});
  m.init(Init::kXavier, 1);
  Sgd sgd(0.1);
  auto h = train(m, sgd, d, {.epochs = 2, .batch_size = 8, .seed = 1});
  EXPECT_EQ(h[0].val.n, 40);
  EXPECT_EQ(h[0].test.n, 0);  // only after the last epoch by default
  EXPECT_EQ(h[1].test.n, 40);
  EXPECT_GE(h[1].val.accuracy, 0.0);
  EXPECT_LE(h[1].val.accuracy, 1.0);
}

TEST(Split, IsStratifiedSeededAndExact) {
  Dataset ds = spirals(50, 1);  // 50 per class
  ds.labels[0] = 1;             // 49 / 51
  Split a = split_validation(ds, 0.3, 5), b = split_validation(ds, 0.3, 5),
        c = split_validation(ds, 0.3, 6);
  EXPECT_EQ(a.val.size(), 30u);
  EXPECT_EQ(a.train.size(), 70u);
  EXPECT_EQ(a.val, b.val);
  EXPECT_NE(a.val, c.val);
  std::set<Index> all(a.train.begin(), a.train.end());
  all.insert(a.val.begin(), a.val.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_TRUE(std::is_sorted(a.val.begin(), a.val.end()));
  int per_class[2] = {0, 0};
  for (Index r : a.val) ++per_class[ds.labels[static_cast<std::size_t>(r)]];
  EXPECT_NEAR(per_class[0], 0.3 * 49, 1.0);
  EXPECT_NEAR(per_class[1], 0.3 * 51, 1.0);
  EXPECT_TRUE(split_validation(ds, 0.0, 1).val.empty());
}

TEST(Preprocess, StandardisesFromTheTrainingRows) {
  Dataset ds = linear_regression(200, 3);
  for (Index i = 0; i < ds.n; ++i)
    ds.x_f32[static_cast<std::size_t>(i * 3 + 2)] = 7.0f;  // constant
  std::vector<Index> rows = all_rows(ds);
  Preprocess p = standardize_preprocess(ds, rows);
  Matrix x(ds.n, 3);
  gather_batch(ds, rows, p, x.view(), MatrixView());
  for (Index j = 0; j < 2; ++j) {
    double s = 0, sq = 0;
    for (Index i = 0; i < ds.n; ++i) {
      s += x(i, j);
      sq += double(x(i, j)) * x(i, j);
    }
    EXPECT_NEAR(s / ds.n, 0.0, 1e-5);
    EXPECT_NEAR(sq / ds.n, 1.0, 1e-4);
  }
  for (Index i = 0; i < ds.n; ++i) EXPECT_EQ(x(i, 2), 0.0f);  // centred, not divided by 0
}

TEST(Batch, ImagesAreScaledAndLabelsOneHot) {
  Dataset ds;
  ds.source = "bytes";
  ds.n = 2;
  ds.n_features = 3;
  ds.x_u8 = {0, 255, 51, 10, 20, 30};
  ds.value_scale = 1.0f / 255;
  ds.labels = {2, 0};
  ds.class_names = {"a", "b", "c"};
  ds.label_columns = {"label"};
  Matrix x(2, 3), y(2, 3);
  std::vector<Index> rows = {1, 0};
  gather_batch(ds, rows, scale_preprocess(ds), x.view(), y.view());
  EXPECT_FLOAT_EQ(x(1, 1), 1.0f);
  EXPECT_FLOAT_EQ(x(1, 2), 0.2f);
  EXPECT_FLOAT_EQ(x(0, 0), 10.0f / 255);
  EXPECT_EQ(y(0, 0), 1.0f);
  EXPECT_EQ(y(0, 2), 0.0f);
  EXPECT_EQ(y(1, 2), 1.0f);
}

TEST(Train, StopsWithAClearErrorWhenTheLossDiverges) {
  Dataset ds = linear_regression(50, 4);
  for (float& t : ds.targets) t *= 1e6f;
  Model m({.layers = {3, 8, 2}, .output = Activation::kIdentity, .loss = Loss::kQuadratic});
  m.init(Init::kXavier, 1);
  Sgd sgd(10.0);
  try {
    train(m, sgd, all_of(ds), {.epochs = 50, .batch_size = 5, .seed = 1});
    FAIL() << "training should have stopped";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNumeric);
    EXPECT_EQ(std::string(e.what()).rfind("epoch ", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find(", batch "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("learning rate"), std::string::npos) << e.what();
  }
}

TEST(Train, RejectsDataThatDoesNotFitTheModel) {
  Dataset ds = spirals(10, 1);
  Model m({.layers = {3, 4, 2}});
  Sgd sgd(0.1);
  EXPECT_THROW(train(m, sgd, all_of(ds), {}), Error);
  Model m2({.layers = {2, 4, 3}});
  EXPECT_THROW(train(m2, sgd, all_of(ds), {}), Error);
}

TEST(DataHash, DependsOnTheDataOnly) {
  Dataset a = spirals(20, 1), b = spirals(20, 1), c = spirals(20, 1);
  c.labels[3] = 1 - c.labels[3];
  EXPECT_EQ(data_hash(a), data_hash(b));
  EXPECT_NE(data_hash(a), data_hash(c));
  EXPECT_EQ(data_hash(a).rfind("xxh3-128:", 0), 0u);
  EXPECT_EQ(data_hash(a).size(), 9u + 32u);
}

}  // namespace
}  // namespace backprop
