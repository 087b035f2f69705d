// Numerical robustness through the model and the training loop (RELIABILITY.md B.4.5, B.4.6),
// beyond the loss-level tests of tests/loss_test.cpp and the poisoned-weight test of
// tests/train_resume_test.cpp:
//  - logits of ±1000 through a whole model: a finite loss of the right value, finite gradients
//    equal to (softmax − onehot)·xᵀ;
//  - a NaN in one input row stops training at the batch that holds it (within one step), naming
//    it; with --on-nonfinite skip-batch, exactly the batch holding the row (found from the
//    epoch's shuffled order) is skipped, and no other.
// (A NaN weight given with --init-from is refused by the model loader: catalogue_test.cpp's
// InitFromAModelWithANanWeight row.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backprop/activation.hpp"
#include "backprop/batch.hpp"
#include "backprop/model.hpp"
#include "backprop/optimizer.hpp"
#include "backprop/rng.hpp"
#include "backprop/train.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

TEST(Logits, OfPlusMinus1000GiveAFiniteLossAndGradientThroughTheModel) {
  // One softmax layer 2 -> 3 whose weights make the logits (1000, -1000, 0) for x = (1, 0).
  Model m(ModelSpec{.layers = {2, 3}});
  auto w = m.weight(0);
  w(0, 0) = 1000.0f;
  w(1, 0) = -1000.0f;
  w(2, 0) = 0.0f;
  w(0, 1) = w(1, 1) = w(2, 1) = 0.0f;
  for (float& b : m.bias(0)) b = 0.0f;
  const Matrix x({{1.0f, 0.0f}});
  for (Index target = 0; target < 3; ++target) {
    SCOPED_TRACE("target class " + std::to_string(target));
    Matrix y(1, 3);
    for (Index j = 0; j < 3; ++j) y(0, j) = j == target ? 1.0f : 0.0f;
    const auto a = m.forward(x.view());
    double sum = 0;
    for (Index j = 0; j < 3; ++j) {
      ASSERT_TRUE(std::isfinite(a(0, j)));
      sum += a(0, j);
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    // Cross-entropy = logsumexp(z) − z_target = 1000 − z_target.
    const double expected[3] = {0.0, 2000.0, 1000.0};
    const double loss = m.loss(y.view());
    ASSERT_TRUE(std::isfinite(loss));
    EXPECT_GE(loss, 0.0);
    EXPECT_NEAR(loss, expected[target], 1e-3);
    m.backward(x.view(), y.view());
    for (float g : m.grads()) ASSERT_TRUE(std::isfinite(g));
    // ∂L/∂W = (a − y) xᵀ: column 0 is a − y, column 1 is 0.
    auto gw = m.weight_grad(0);
    for (Index j = 0; j < 3; ++j) {
      EXPECT_NEAR(gw(j, 0), a(0, j) - y(0, j), 1e-6);
      EXPECT_EQ(gw(j, 1), 0.0f);
    }
  }
}

// 3 classes of 4-feature points, 20 rows each.
Dataset blobs() {
  Dataset ds;
  ds.source = "blobs";
  ds.n = 60;
  ds.n_features = 4;
  ds.sample_shape = {4};
  ds.feature_names = {"a", "b", "c", "d"};
  ds.label_columns = {"k"};
  ds.class_names = {"0", "1", "2"};
  Rng rng(3);
  for (Index i = 0; i < ds.n; ++i) {
    const Index c = i % 3;
    for (Index j = 0; j < 4; ++j) {
      ds.x_f32.push_back(static_cast<float>((j == c ? 2.0 : 0.0) + rng.normal()));
    }
    ds.labels.push_back(static_cast<std::int32_t>(c));
  }
  return ds;
}

TrainData every_row(const Dataset& ds) {
  TrainData d;
  d.data = &ds;
  for (Index i = 0; i < ds.n; ++i) d.train_rows.push_back(i);
  d.pre = scale_preprocess(ds);
  return d;
}

constexpr Index kBatch = 8;

TrainOptions options() {
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = kBatch;
  o.seed = 5;
  return o;
}

// The first epoch's shuffled order of the rows, as the loop draws it (the order depends on the
// seed and the row count only, not on the values).
std::vector<Index> first_epoch_order(const Dataset& ds) {
  TrainData d = every_row(ds);
  Model m(ModelSpec{.layers = {4, 6, 3}});
  m.init(Init::kXavier, 1);
  Sgd sgd(0.1);
  std::vector<Index> order;
  TrainCallbacks cb;
  TrainOptions o = options();
  o.epochs = 1;
  o.checkpoint_every_epochs = 1;
  cb.checkpoint = [&](const Model&, const Optimizer&, const TrainState& st) {
    if (order.empty()) order = st.order;
    return std::string("memory");
  };
  train(m, sgd, d, o, cb);
  return order;
}

TEST(NonFinite, ANanInOneInputRowStopsTrainingAtItsBatch) {
  // Under --on-nonfinite stop the run stops with kNumeric at the batch holding the NaN, naming
  // it, before that batch's update (RELIABILITY.md B.4.6): the vectorised exp, sigmoid, tanh and
  // ReLU pass NaN through (their clamps take x as the operand min/max return for NaN), so the
  // batch's loss is NaN.
  const Dataset clean = blobs();
  const std::vector<Index> order = first_epoch_order(clean);
  ASSERT_EQ(order.size(), 60u);
  for (Activation hidden : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu}) {
    for (Index batch : {1, 3, 7}) {  // 8 batches of 8 (the last of 4)
      for (bool fused : {true, false}) {
        SCOPED_TRACE(std::string(to_string(hidden)) + ", batch " + std::to_string(batch) +
                     (fused ? ", fused SGD" : ", SGD + decay"));
        Dataset ds = clean;
        const Index row = order[static_cast<std::size_t>((batch - 1) * kBatch + 1)];
        ds.x_f32[static_cast<std::size_t>(row * 4 + 2)] = std::numeric_limits<float>::quiet_NaN();
        TrainData d = every_row(ds);
        d.pre = scale_preprocess(clean);
        Model m(ModelSpec{.layers = {4, 6, 3}, .hidden = hidden});
        m.init(Init::kXavier, 1);
        Sgd sgd(0.1, fused ? 0.0 : 1e-4);
        Index batches_done = 0;
        int epochs_done = 0;
        TrainCallbacks cb;
        cb.on_batch = [&](const Progress&) { ++batches_done; };
        cb.on_epoch = [&](const EpochStats&) { ++epochs_done; };
        test::expect_error([&] { train(m, sgd, d, options(), cb); }, ErrorCode::kNumeric,
                           {"epoch 1, batch " + std::to_string(batch) + ":", "the loss is NaN"});
        EXPECT_EQ(batches_done, batch - 1) << "not stopped at the batch holding the NaN";
        EXPECT_EQ(epochs_done, 0);
        for (float p : m.params()) ASSERT_TRUE(std::isfinite(p)) << "the NaN reached a weight";
      }
    }
  }
}

TEST(NonFinite, SkipBatchSkipsExactlyTheBatchHoldingANanRow) {
  const Dataset clean = blobs();
  const std::vector<Index> order = first_epoch_order(clean);
  Dataset ds = clean;
  const Index row = order[4 * kBatch];  // the first row of batch 5 in epoch 1
  ds.x_f32[static_cast<std::size_t>(row * 4)] = std::numeric_limits<float>::infinity();
  TrainData d = every_row(ds);
  d.pre = scale_preprocess(clean);
  Model m(ModelSpec{.layers = {4, 6, 3}});
  m.init(Init::kXavier, 1);
  Sgd sgd(0.1);
  TrainOptions o = options();
  o.on_nonfinite = NonFinitePolicy::kSkipBatch;
  std::vector<Index> skipped_after;  // the running count of skipped batches after each batch
  TrainCallbacks cb;
  o.checkpoint_every_minutes = 1e-12;  // a checkpoint (the state) after every batch
  cb.checkpoint = [&](const Model&, const Optimizer&, const TrainState& st) {
    if (st.epoch == 0) skipped_after.push_back(st.skipped);
    return std::string("memory");
  };
  const std::vector<EpochStats> h = train(m, sgd, d, o, cb);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].skipped_batches, 1);
  EXPECT_EQ(h[1].skipped_batches, 1);  // the row is in some batch of epoch 2 as well
  ASSERT_GE(skipped_after.size(), 5u);
  for (std::size_t b = 0; b < 4; ++b) EXPECT_EQ(skipped_after[b], 0) << "batch " << b + 1;
  EXPECT_EQ(skipped_after[4], 1) << "batch 5 holds the row";
  for (float p : m.params()) ASSERT_TRUE(std::isfinite(p));
}

}  // namespace
}  // namespace backprop
