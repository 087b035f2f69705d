// Output activations and losses at the extremes (RELIABILITY B.4.5), and the exact values of the
// formulas on small hand-computed cases.
#include "backprop/loss.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "backprop/activation.hpp"

namespace backprop {
namespace {

// Probabilities must sum to 1 within a few ulps of the sum's magnitude.
constexpr double kSumTolF32 = 1e-6, kSumTolF64 = 1e-15;

template <class T>
void check_softmax_row(std::initializer_list<T> logits, double sum_tol) {
  BasicMatrix<T> z({logits}), a(1, static_cast<Index>(logits.size())),
      y(1, static_cast<Index>(logits.size())), dz(1, static_cast<Index>(logits.size()));
  activation_forward<T>(Activation::kSoftmax, z.view(), a.view(), T(0));
  double sum = 0;
  for (Index j = 0; j < a.cols(); ++j) {
    ASSERT_TRUE(std::isfinite(a(0, j)));
    ASSERT_GE(a(0, j), T(0));
    sum += a(0, j);
  }
  EXPECT_NEAR(sum, 1.0, sum_tol);
  // Cross-entropy against every one-hot target: finite, >= 0, gradient a − y.
  for (Index c = 0; c < a.cols(); ++c) {
    fill<T>(y.view(), T(0));
    y(0, c) = T(1);
    double l =
        loss_forward<T>(Activation::kSoftmax, Loss::kCrossEntropy, z.view(), a.view(), y.view());
    EXPECT_TRUE(std::isfinite(l));
    EXPECT_GE(l, 0.0);
    loss_backward<T>(Activation::kSoftmax, Loss::kCrossEntropy, a.view(), y.view(), dz.view());
    for (Index j = 0; j < a.cols(); ++j) {
      EXPECT_NEAR(dz(0, j), a(0, j) - y(0, j), 1e-6);
    }
  }
}

TEST(Softmax, StableForHugeLogits) {
  check_softmax_row<float>({1000.0f, -1000.0f, 0.0f}, kSumTolF32);
  check_softmax_row<float>({-1000.0f, -1000.0f, -1000.0f}, kSumTolF32);
  check_softmax_row<float>({89.0f, 0.0f, 1.0f}, kSumTolF32);  // exp(89) overflows float
  check_softmax_row<float>({3.0f, 3.0f, 3.0f, 3.0f}, kSumTolF32);
  check_softmax_row<double>({1e4, -1e4, 0.0}, kSumTolF64);
  check_softmax_row<double>({0.5, 0.5}, kSumTolF64);
}

TEST(CrossEntropy, SoftmaxLossIsTheNegativeLogProbability) {
  MatrixD z({{1.0, 2.0, 3.0}}), a(1, 3), y({{0.0, 0.0, 1.0}});
  activation_forward<double>(Activation::kSoftmax, z.view(), a.view(), 0.0);
  double l =
      loss_forward<double>(Activation::kSoftmax, Loss::kCrossEntropy, z.view(), a.view(), y.view());
  EXPECT_NEAR(l, -std::log(a(0, 2)), 1e-15);
  // With logit 1000 on the wrong class the loss is 1000 − 0, not inf.
  MatrixD z2({{1000.0, 0.0}}), a2(1, 2), y2({{0.0, 1.0}});
  activation_forward<double>(Activation::kSoftmax, z2.view(), a2.view(), 0.0);
  EXPECT_NEAR(loss_forward<double>(Activation::kSoftmax, Loss::kCrossEntropy, z2.view(), a2.view(),
                                   y2.view()),
              1000.0, 1e-9);
}

TEST(CrossEntropy, BinaryFromLogitsIsFiniteAtTheExtremes) {
  MatrixD z({{1000.0, -1000.0, 0.0}}), a(1, 3), y({{0.0, 1.0, 1.0}});
  activation_forward<double>(Activation::kSigmoid, z.view(), a.view(), 0.0);
  EXPECT_EQ(a(0, 0), 1.0);
  EXPECT_EQ(a(0, 1), 0.0);
  double l =
      loss_forward<double>(Activation::kSigmoid, Loss::kCrossEntropy, z.view(), a.view(), y.view());
  // 1000 (wrong, confident) + 1000 (wrong, confident) + log 2.
  EXPECT_NEAR(l, 2000.0 + std::log(2.0), 1e-9);
}

TEST(Quadratic, IsHalfTheSquaredErrorAveragedOverTheBatch) {
  MatrixD z({{0.5, 1.0}, {2.0, -1.0}}), y({{0.0, 0.0}, {1.0, 1.0}});
  // identity output: a = z. Example 1: ½(0.25 + 1) = 0.625; example 2: ½(1 + 4) = 2.5.
  double l =
      loss_forward<double>(Activation::kIdentity, Loss::kQuadratic, z.view(), z.view(), y.view());
  EXPECT_DOUBLE_EQ(l, (0.625 + 2.5) / 2);
  MatrixD dz(2, 2);
  loss_backward<double>(Activation::kIdentity, Loss::kQuadratic, z.view(), y.view(), dz.view());
  EXPECT_DOUBLE_EQ(dz(0, 0), 0.5 / 2);  // (a − y)/B: the sign is a − y, not y − a
  EXPECT_DOUBLE_EQ(dz(1, 1), -2.0 / 2);
}

TEST(Quadratic, SoftmaxUsesTheFullJacobian) {
  // With a = softmax(z), ∂L/∂z_j = Σ_k (a_k − y_k) a_k (δ_kj − a_j). The elementwise shortcut
  // (a − y) ∘ a(1 − a) differs whenever more than one output is wrong.
  MatrixD z({{0.3, -0.2, 1.1}}), a(1, 3), y({{1.0, 0.0, 0.0}}), dz(1, 3);
  activation_forward<double>(Activation::kSoftmax, z.view(), a.view(), 0.0);
  loss_backward<double>(Activation::kSoftmax, Loss::kQuadratic, a.view(), y.view(), dz.view());
  for (Index j = 0; j < 3; ++j) {
    double want = 0;
    for (Index k = 0; k < 3; ++k) {
      want += (a(0, k) - y(0, k)) * a(0, k) * ((k == j ? 1.0 : 0.0) - a(0, j));
    }
    EXPECT_NEAR(dz(0, j), want, 1e-15);
    double elementwise = (a(0, j) - y(0, j)) * a(0, j) * (1 - a(0, j));
    EXPECT_GT(std::abs(dz(0, j) - elementwise), 1e-3);
  }
}

TEST(Validity, CrossEntropyNeedsProbabilities) {
  EXPECT_FALSE(is_valid_output_loss(Activation::kIdentity, Loss::kCrossEntropy));
  EXPECT_TRUE(is_valid_output_loss(Activation::kIdentity, Loss::kQuadratic));
  EXPECT_TRUE(is_valid_output_loss(Activation::kSoftmax, Loss::kQuadratic));
  EXPECT_FALSE(is_valid_output_loss(Activation::kTanh, Loss::kQuadratic));
  EXPECT_THROW(parse_loss("mse"), Error);
  EXPECT_EQ(parse_loss("cross-entropy"), Loss::kCrossEntropy);
}

TEST(Activations, ForwardAndDerivativeFromTheOutput) {
  MatrixD z({{-2.0, -0.5, 0.0, 0.5, 2.0}}), a(1, 5), ones(1, 5), d(1, 5);
  fill<double>(ones.view(), 1.0);
  const double h = 1e-6;
  for (Activation f : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity}) {
    activation_forward<double>(f, z.view(), a.view(), 0.1);
    activation_backward<double>(f, a.view(), ones.view(), d.view(), 0.1);
    for (Index j = 0; j < 5; ++j) {
      if (z(0, j) == 0.0 && (f == Activation::kRelu || f == Activation::kLeakyRelu)) continue;
      MatrixD zp({{z(0, j) + h}}), zm({{z(0, j) - h}}), ap(1, 1), am(1, 1);
      activation_forward<double>(f, zp.view(), ap.view(), 0.1);
      activation_forward<double>(f, zm.view(), am.view(), 0.1);
      EXPECT_NEAR(d(0, j), (ap(0, 0) - am(0, 0)) / (2 * h), 1e-8)
          << to_string(f) << " at z = " << z(0, j);
    }
  }
  EXPECT_THROW(parse_activation("swish"), Error);
  EXPECT_EQ(parse_activation("leaky-relu"), Activation::kLeakyRelu);
}

}  // namespace
}  // namespace backprop
