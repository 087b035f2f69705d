// The analytic gradients of every hidden activation × output × loss pair, on nets with 1, 2 and 3
// hidden layers and batches of 1 and 7, against five-point central differences in double.
#include "backprop/gradcheck.hpp"

#include "kernels/kernels.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

namespace backprop {
namespace {

// A gradient is "trivially zero" when its largest element is below this: every tensor of these
// random nets has elements of order 1e-3 to 1, so a wiring mistake that zeroes a gradient shows.
constexpr double kNonTrivialGradient = 1e-7;

using Combo = std::tuple<Activation, Activation, Loss, int /*hidden layers*/, int /*batch*/>;

std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (Activation h : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity}) {
    for (Activation o : {Activation::kSigmoid, Activation::kSoftmax, Activation::kIdentity}) {
      for (Loss l : {Loss::kQuadratic, Loss::kCrossEntropy}) {
        if (!is_valid_output_loss(o, l)) continue;
        for (int depth : {1, 2, 3}) {
          for (int batch : {1, 7}) out.emplace_back(h, o, l, depth, batch);
        }
      }
    }
  }
  return out;
}

std::string combo_name(const ::testing::TestParamInfo<Combo>& info) {
  auto [h, o, l, depth, batch] = info.param;
  std::string s = std::string(to_string(h)) + "_" + std::string(to_string(o)) + "_" +
                  std::string(to_string(l)) + "_d" + std::to_string(depth) + "_b" +
                  std::to_string(batch);
  for (char& c : s) {
    if (c == '-') c = '_';
  }
  return s;
}

// 5 inputs, 1-3 hidden layers of 7, 6, 4, 3 outputs.
ModelSpec spec_of(const Combo& c) {
  auto [hidden, output, loss, depth, batch] = c;
  ModelSpec spec;
  spec.layers = {5};
  const Index widths[] = {7, 6, 4};
  for (int d = 0; d < depth; ++d) spec.layers.push_back(widths[d]);
  spec.layers.push_back(3);
  spec.hidden = hidden;
  spec.output = output;
  spec.loss = loss;
  return spec;
}

class GradcheckAll : public ::testing::TestWithParam<Combo> {};

TEST_P(GradcheckAll, AnalyticMatchesFiniteDifferences) {
  const int depth = std::get<3>(GetParam());
  ModelSpec spec = spec_of(GetParam());
  GradcheckOptions options;
  options.batch = std::get<4>(GetParam());
  options.seed = 3;
  GradcheckReport report = gradcheck(spec, options);
  ASSERT_EQ(report.tensors.size(), static_cast<std::size_t>(2 * (depth + 1)));
  for (const auto& t : report.tensors) {
    SCOPED_TRACE("layer " + std::to_string(t.layer) + (t.is_bias ? " bias" : " weight"));
    EXPECT_EQ(t.n_failed, 0) << "max rel err " << t.max_rel_err << ", max abs err "
                             << t.max_abs_err;
    EXPECT_GT(t.max_abs_grad, kNonTrivialGradient);
  }
  EXPECT_TRUE(report.passed());
}

INSTANTIATE_TEST_SUITE_P(EveryPair, GradcheckAll, ::testing::ValuesIn(all_combos()), combo_name);

// The float path training takes, on every kernel table this CPU runs, held to float32's tolerance
// (kFloatRelTol) against the same double finite differences.
class GradcheckFloat : public ::testing::TestWithParam<std::string> {};

TEST_P(GradcheckFloat, EveryPairPassesOnThisTable) {
  const kernels::KernelTable* table = kernels::find(GetParam());
  ASSERT_NE(table, nullptr);
  const kernels::KernelTable& before = kernels::active();
  kernels::set_active(*table);
  double worst = 0;
  for (const Combo& c : all_combos()) {
    ModelSpec spec = spec_of(c);
    GradcheckOptions options;
    options.batch = std::get<4>(c);
    options.seed = 3;
    options.precision = Precision::kFloat;
    GradcheckReport report = gradcheck(spec, options);
    for (const auto& t : report.tensors) {
      worst = std::max(worst, t.max_rel_err);
      EXPECT_EQ(t.n_failed, 0) << combo_name(::testing::TestParamInfo<Combo>(c, 0)) << " layer "
                               << t.layer << (t.is_bias ? " bias" : " weight") << ": max rel err "
                               << t.max_rel_err;
    }
  }
  kernels::set_active(before);
  RecordProperty("worst_rel_err", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(EveryTable, GradcheckFloat, ::testing::ValuesIn([] {
                           std::vector<std::string> names;
                           for (const auto* kt : kernels::available()) names.push_back(kt->name);
                           return names;
                         }()),
                         [](const auto& p) { return p.param; });

TEST(Gradcheck, DropoutBackwardMatchesFiniteDifferences) {
  for (Activation h : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity}) {
    for (Precision precision : {Precision::kDouble, Precision::kFloat}) {
      ModelSpec spec{.layers = {6, 9, 8, 4}, .hidden = h};
      GradcheckOptions options;
      options.batch = 7;
      options.precision = precision;
      options.dropout = {0.3, 0.5};
      GradcheckReport report = gradcheck(spec, options);
      for (const auto& t : report.tensors) {
        EXPECT_EQ(t.n_failed, 0) << to_string(h) << " layer " << t.layer
                                 << (t.is_bias ? " bias" : " weight") << ": " << t.max_rel_err;
        EXPECT_GT(t.max_abs_grad, kNonTrivialGradient);
      }
    }
  }
}

TEST(Gradcheck, PassesOverManySeeds) {
  // RELIABILITY B.4.1: 100 seeds of a 3-layer tanh/softmax/cross-entropy net.
  ModelSpec spec{.layers = {6, 8, 5, 4},
                 .hidden = Activation::kTanh,
                 .output = Activation::kSoftmax,
                 .loss = Loss::kCrossEntropy};
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    GradcheckOptions options;
    options.seed = seed;
    options.batch = 5;
    EXPECT_TRUE(gradcheck(spec, options).passed()) << "seed " << seed;
  }
}

TEST(CompareGradients, FlagsAWrongGradient) {
  GradcheckOptions options;
  std::vector<double> numeric = {0.5, -0.25, 1e-3, 0.0};
  std::vector<double> analytic = numeric;
  EXPECT_EQ(compare_gradients(analytic, numeric, options).n_failed, 0);
  analytic[1] *= 1.0 + 1e-5;  // a 1e-5 relative slip: over the 1e-6 tolerance
  EXPECT_EQ(compare_gradients(analytic, numeric, options).n_failed, 1);
  analytic = numeric;
  analytic[3] = 1e-10;  // below the floor: judged on 1e-6 × 1e-5 = 1e-11 absolute
  EXPECT_EQ(compare_gradients(analytic, numeric, options).n_failed, 1);
  analytic[3] = 5e-12;
  EXPECT_EQ(compare_gradients(analytic, numeric, options).n_failed, 0);
  analytic[0] = std::nan("");
  EXPECT_EQ(compare_gradients(analytic, numeric, options).n_failed, 1);
  // The tensor floor: an error of 4e-5 on a gradient of 1e-3 fails at 1e-2 relative, and passes
  // once the floor is 10% of the tensor's largest gradient (0.05): 4e-5 / 0.05 = 8e-4 < 1e-2.
  GradcheckOptions loose;
  loose.rel_tol = 1e-2;
  analytic = numeric;
  analytic[2] = 1e-3 + 4e-5;
  EXPECT_EQ(compare_gradients(analytic, numeric, loose).n_failed, 1);
  loose.tensor_floor = 0.1;
  EXPECT_EQ(compare_gradients(analytic, numeric, loose).n_failed, 0);
}

}  // namespace
}  // namespace backprop
