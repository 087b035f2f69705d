// The vectorised exp, sigmoid and tanh of every kernel table against glibc in double, over a dense
// sweep; the bounds are the documented maximum errors (docs/gemm.md).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/kernels.hpp"

namespace backprop::kernels {
namespace {

// Documented bounds (docs/gemm.md), a little above what the sweep measures on every table:
constexpr double kExpRelErr = 3e-7;      // relative, for e^x in [FLT_MIN, 2.4e38]
constexpr double kSigmoidAbsErr = 2e-7;  // absolute, everywhere
constexpr double kSigmoidRelErr = 5e-7;  // relative, where σ(x) >= 1e-30 (x >= -69)
constexpr double kTanhAbsErr = 2e-7;     // absolute, everywhere
constexpr double kTanhRelErr = 5e-7;     // relative, for |x| >= 1e-3 (and absolute below)

std::vector<float> sweep() {
  std::vector<float> x;
  for (double v = -100.0; v <= 100.0; v += 1.0 / 4096) x.push_back(static_cast<float>(v));
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-8f, -1e-8f, 88.0f, 88.37f, -87.33f, -87.34f}) {
    x.push_back(v);
  }
  return x;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", v);
  return buf;
}

struct Errors {
  double abs = 0, rel = 0;
  float worst_x = 0;
};

template <class F, class R>
Errors measure(const std::vector<float>& x, const std::vector<float>& y, F&& included, R&& exact,
               double rel_floor) {
  Errors e;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!included(x[i])) continue;
    double want = exact(static_cast<double>(x[i]));
    double err = std::fabs(static_cast<double>(y[i]) - want);
    double rel = err / std::max(std::fabs(want), rel_floor);
    e.abs = std::max(e.abs, err);
    if (rel > e.rel) {
      e.rel = rel;
      e.worst_x = x[i];
    }
  }
  return e;
}

class MathOfEveryTable : public ::testing::TestWithParam<std::string> {};

TEST_P(MathOfEveryTable, ExpSigmoidAndTanhStayWithinTheirDocumentedErrors) {
  const KernelTable& t = *find(GetParam());
  const std::vector<float> x = sweep();
  const auto n = static_cast<Index>(x.size());
  std::vector<float> y(x.size());

  t.exp(x.data(), y.data(), n);
  Errors e = measure(
      x, y, [](float v) { return v >= -87.33f && v <= 88.37f; },
      [](double v) { return std::exp(v); }, 0.0);
  EXPECT_LE(e.rel, kExpRelErr) << "exp at x = " << e.worst_x;
  RecordProperty("exp_max_rel_err", sci(e.rel));
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_TRUE(std::isfinite(y[i]) && y[i] > 0.0f) << "exp(" << x[i] << ") = " << y[i];
  }

  t.act_forward(Activation::kSigmoid, 0.0f, x.data(), y.data(), n);
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  e = measure(
      x, y, [](float) { return true; }, sigmoid, 1e300);
  EXPECT_LE(e.abs, kSigmoidAbsErr);
  RecordProperty("sigmoid_max_abs_err", sci(e.abs));
  e = measure(
      x, y, [](float v) { return v >= -69.0f; }, sigmoid, 0.0);
  EXPECT_LE(e.rel, kSigmoidRelErr) << "sigmoid at x = " << e.worst_x;
  RecordProperty("sigmoid_max_rel_err", sci(e.rel));

  t.act_forward(Activation::kTanh, 0.0f, x.data(), y.data(), n);
  auto tanh_ = [](double v) { return std::tanh(v); };
  e = measure(
      x, y, [](float) { return true; }, tanh_, 1e300);
  EXPECT_LE(e.abs, kTanhAbsErr);
  RecordProperty("tanh_max_abs_err", sci(e.abs));
  e = measure(
      x, y, [](float v) { return std::fabs(v) >= 1e-3f; }, tanh_, 0.0);
  EXPECT_LE(e.rel, kTanhRelErr) << "tanh at x = " << e.worst_x;
  RecordProperty("tanh_max_rel_err", sci(e.rel));
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_LE(std::fabs(y[i]), 1.0f);
    ASSERT_EQ(std::signbit(y[i]), std::signbit(x[i])) << "tanh(" << x[i] << ")";
  }
}

TEST_P(MathOfEveryTable, SoftmaxRowsSumToOneAtExtremeLogits) {
  const KernelTable& t = *find(GetParam());
  for (std::vector<float> z : {std::vector<float>{1000, -1000, 0},
                               {89, 0, 1},
                               std::vector<float>(37, -1000.0f),
                               {3, 3, 3, 3, 3}}) {
    std::vector<float> a(z.size());
    t.act_forward(Activation::kSoftmax, 0.0f, z.data(), a.data(), static_cast<Index>(z.size()));
    double sum = 0;
    for (float v : a) {
      ASSERT_TRUE(std::isfinite(v) && v >= 0.0f);
      sum += v;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);  // float rounding of a sum of at most 37 terms
  }
}

std::vector<std::string> table_names() {
  std::vector<std::string> names;
  for (const KernelTable* t : available()) names.push_back(t->name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(ThisCpu, MathOfEveryTable, ::testing::ValuesIn(table_names()),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace backprop::kernels
