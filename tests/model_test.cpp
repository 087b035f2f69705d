// The model: forward against an independent per-example loop, backward determinism, layout,
// initialisation, workspace reuse, and learning XOR (RELIABILITY B.4.4, B.4.8).
#include "backprop/model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backprop/optimizer.hpp"
#include "backprop/rng.hpp"
#include "kernels/kernels.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

using test::activation_reference;

// One example through the net with plain loops: Σ_i w_ji x_i + b_j, the derivation's form.
std::vector<double> naive_forward(const ModelD& m, std::vector<double> x) {
  for (Index l = 0; l < m.n_layers(); ++l) {
    auto w = m.weight(l);
    auto b = m.bias(l);
    std::vector<double> z(static_cast<std::size_t>(w.rows));
    for (Index j = 0; j < w.rows; ++j) {
      double s = b[static_cast<std::size_t>(j)];
      for (Index i = 0; i < w.cols; ++i) s += w(j, i) * x[static_cast<std::size_t>(i)];
      z[static_cast<std::size_t>(j)] = s;
    }
    Activation f = m.activation(l);
    if (f == Activation::kSoftmax) {
      double mx = *std::max_element(z.begin(), z.end()), sum = 0;
      for (double& v : z) sum += (v = std::exp(v - mx));
      for (double& v : z) v /= sum;
    } else {
      for (double& v : z) v = activation_reference(f, v, m.spec().leaky_slope);
    }
    x = z;
  }
  return x;
}

TEST(Model, ForwardMatchesAPerExampleLoop) {
  for (Activation h : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity}) {
    for (Activation o : {Activation::kSigmoid, Activation::kSoftmax, Activation::kIdentity}) {
      ModelD m({.layers = {6, 9, 5, 4}, .hidden = h, .output = o, .loss = Loss::kQuadratic});
      m.init(Init::kLecun, 7);
      Rng rng(3);
      for (Index l = 0; l < m.n_layers(); ++l)
        for (double& b : m.bias(l)) b = rng.normal();
      MatrixD x(5, 6);
      for (Index i = 0; i < 5; ++i)
        for (Index j = 0; j < 6; ++j) x(i, j) = rng.normal();
      ConstMatrixViewT<double> a = m.forward(x.view());
      for (Index i = 0; i < 5; ++i) {
        std::vector<double> want =
            naive_forward(m, std::vector<double>(x.view().row(i), x.view().row(i) + 6));
        for (Index j = 0; j < 4; ++j)
          EXPECT_NEAR(a(i, j), want[static_cast<std::size_t>(j)], 1e-13);
      }
    }
  }
}

TEST(Model, BackwardIsBitwiseDeterministic) {
  Model m({.layers = {30, 40, 20, 5}, .hidden = Activation::kRelu});
  m.init(Init::kHe, 1);
  Rng rng(2);
  Matrix x(64, 30), y(64, 5);
  for (Index i = 0; i < 64; ++i) {
    for (Index j = 0; j < 30; ++j) x(i, j) = static_cast<float>(rng.normal());
    y(i, static_cast<Index>(rng.below(5))) = 1;
  }
  m.forward(x.view());
  m.backward(x.view(), y.view());
  std::vector<float> g1(m.grads().begin(), m.grads().end());
  m.forward(x.view());
  m.backward(x.view(), y.view());
  ASSERT_EQ(0, std::memcmp(g1.data(), m.grads().data(), g1.size() * sizeof(float)));
}

TEST(Model, ParametersAreLaidOutAlignedAndCounted) {
  Model m({.layers = {3, 5, 2}});
  EXPECT_EQ(m.spec().n_params(), 3 * 5 + 5 + 5 * 2 + 2);
  for (Index l = 0; l < m.n_layers(); ++l) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.weight(l).data) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m.bias(l).data()) % 64, 0u);
    EXPECT_EQ(m.weight(l).rows, m.spec().layers[static_cast<std::size_t>(l) + 1]);
    EXPECT_EQ(m.weight(l).cols, m.spec().layers[static_cast<std::size_t>(l)]);
  }
  EXPECT_EQ(m.params().size(), m.grads().size());
}

TEST(Model, InitialisationFollowsEachScheme) {
  const Index fan_in = 400, fan_out = 300;
  for (Init init : {Init::kXavier, Init::kHe, Init::kLecun}) {
    Model m(
        {.layers = {fan_in, fan_out}, .output = Activation::kIdentity, .loss = Loss::kQuadratic});
    m.init(init, 9);
    auto w = m.weight(0);
    double sum = 0, sq = 0, max_abs = 0;
    for (Index i = 0; i < w.rows; ++i)
      for (Index j = 0; j < w.cols; ++j) {
        sum += w(i, j);
        sq += double(w(i, j)) * w(i, j);
        max_abs = std::max(max_abs, std::abs(double(w(i, j))));
      }
    double n = static_cast<double>(w.size()), var = sq / n - (sum / n) * (sum / n);
    double want = init == Init::kXavier ? 2.0 / (fan_in + fan_out)
                  : init == Init::kHe   ? 2.0 / fan_in
                                        : 1.0 / fan_in;
    // 120,000 draws: the sample variance is within ~1% of the true one; allow 3%.
    EXPECT_NEAR(var / want, 1.0, 0.03) << to_string(init);
    EXPECT_NEAR(sum / n, 0.0, 0.01 * std::sqrt(want));
    if (init == Init::kXavier) {
      EXPECT_LE(max_abs, std::sqrt(6.0 / (fan_in + fan_out)));
    }
    for (float b : m.bias(0)) EXPECT_EQ(b, 0.0f);
  }
  Model a({.layers = {4, 3}}), b({.layers = {4, 3}}), c({.layers = {4, 3}});
  a.init(Init::kXavier, 1);
  b.init(Init::kXavier, 1);
  c.init(Init::kXavier, 2);
  EXPECT_EQ(0, std::memcmp(a.params().data(), b.params().data(), a.params().size_bytes()));
  EXPECT_NE(0, std::memcmp(a.params().data(), c.params().data(), a.params().size_bytes()));
}

TEST(Model, WorkspaceReuseDoesNotLeakBetweenBatches) {
  Model m({.layers = {4, 6, 3}});
  m.init(Init::kXavier, 3);
  Matrix big(8, 4), small(2, 4);
  for (Index i = 0; i < 8; ++i)
    for (Index j = 0; j < 4; ++j) big(i, j) = static_cast<float>(i - j);
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 4; ++j) small(i, j) = big(i, j);
  Matrix first(2, 3), again(2, 3);
  copy<float>(m.forward(small.view()), first.view());
  m.forward(big.view());
  copy<float>(m.forward(small.view()), again.view());
  EXPECT_EQ(0, std::memcmp(first.data(), again.data(), 6 * sizeof(float)));
  copy<float>(m.forward(big.view()).rows_range(0, 2), again.view());
  EXPECT_EQ(0, std::memcmp(first.data(), again.data(), 6 * sizeof(float)));
}

TEST(Model, RejectsBadSpecsAndShapes) {
  EXPECT_THROW(Model({.layers = {3}}), Error);
  EXPECT_THROW(Model({.layers = {3, 0, 2}}), Error);
  EXPECT_THROW(Model({.layers = {3, 2}, .hidden = Activation::kSoftmax}), Error);
  EXPECT_THROW(Model({.layers = {3, 2}, .output = Activation::kTanh}), Error);
  EXPECT_THROW(
      Model({.layers = {3, 2}, .output = Activation::kIdentity, .loss = Loss::kCrossEntropy}),
      Error);
  EXPECT_THROW(Model({.layers = {3, 2}, .leaky_slope = 0}), Error);
  Model m({.layers = {3, 2}});
  Matrix wrong(4, 5);
  EXPECT_THROW(m.forward(wrong.view()), Error);
}

TEST(Model, DoubleAndFloatCopiesAgree) {
  Model m({.layers = {5, 4, 3}});
  m.init(Init::kXavier, 4);
  ModelD d = to_double(m);
  Model back = to_float(d);
  EXPECT_EQ(0, std::memcmp(m.params().data(), back.params().data(), m.params().size_bytes()));
}

TEST(Learning, XorReachesLowLossWithin5000Steps) {
  // RELIABILITY B.4.8: a 2-4-1 network, loss < 1e-3 within 5000 full-batch steps.
  Matrix x({{0, 0}, {0, 1}, {1, 0}, {1, 1}}), y({{0}, {1}, {1}, {0}});
  Model m({.layers = {2, 4, 1},
           .hidden = Activation::kTanh,
           .output = Activation::kSigmoid,
           .loss = Loss::kCrossEntropy});
  m.init(Init::kXavier, 1);
  Sgd sgd(1.0);
  double loss = 1;
  int step = 0;
  for (; step < 5000 && loss >= 1e-3; ++step) loss = train_step(m, x.view(), y.view(), sgd);
  EXPECT_LT(loss, 1e-3) << "after " << step << " steps";
  ConstMatrixView out = m.forward(x.view());
  for (Index i = 0; i < 4; ++i) EXPECT_EQ(out(i, 0) > 0.5f, y(i, 0) > 0.5f);
}

// An optimizer that is plain SGD but does not say so: training takes the general path with it.
class UnfusedSgd final : public Optimizer {
 public:
  explicit UnfusedSgd(double lr) : Optimizer(lr), sgd_(lr) {}
  void step(std::span<float> p, std::span<const float> g) override { sgd_.step(p, g); }
  std::string_view name() const override { return "unfused-sgd"; }

 private:
  Sgd sgd_;
};

TEST(Model, FusedSgdStepIsBitwiseTheUnfusedOne) {
  for (const kernels::KernelTable* table : kernels::available()) {
    const kernels::KernelTable& before = kernels::active();
    kernels::set_active(*table);
    for (Activation h : {Activation::kSigmoid, Activation::kRelu}) {
      ModelSpec spec{.layers = {40, 64, 33, 5}, .hidden = h};
      Model fused(spec), plain(spec);
      fused.init(default_init(h), 3);
      plain.init(default_init(h), 3);
      Sgd sgd(0.2);
      UnfusedSgd unfused(0.2);
      Rng rng(4);
      for (int step = 0; step < 20; ++step) {
        const Index b = step % 2 == 0 ? 64 : 7;  // within one k block (<= 256)
        Matrix x(b, 40), y(b, 5);
        for (Index i = 0; i < b; ++i) {
          for (Index j = 0; j < 40; ++j) x(i, j) = static_cast<float>(rng.normal());
          y(i, static_cast<Index>(rng.below(5))) = 1;
        }
        double lf = train_step(fused, x.view(), y.view(), sgd);
        double lp = train_step(plain, x.view(), y.view(), unfused);
        ASSERT_EQ(lf, lp) << table->name << " step " << step;
      }
      EXPECT_EQ(
          0, std::memcmp(fused.params().data(), plain.params().data(), fused.params().size_bytes()))
          << table->name << " " << to_string(h);
    }
    kernels::set_active(before);
  }
}

TEST(Optimizer, SgdTakesExactlyOneStep) {
  std::vector<float> p = {1.0f, -2.0f, 0.5f}, g = {0.5f, 0.25f, -1.0f};
  Sgd sgd(0.1);
  sgd.step(p, g);
  EXPECT_FLOAT_EQ(p[0], 1.0f - 0.1f * 0.5f);
  EXPECT_FLOAT_EQ(p[1], -2.0f - 0.1f * 0.25f);
  EXPECT_FLOAT_EQ(p[2], 0.5f + 0.1f);
  EXPECT_THROW(Sgd(-1), Error);
  EXPECT_THROW(Sgd(0), Error);
  EXPECT_THROW(Sgd(std::nan("")), Error);
}

}  // namespace
}  // namespace backprop
