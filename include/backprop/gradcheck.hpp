// Gradient check: the analytic gradient of every weight and bias (backward, D4–D7) against
// central finite differences of the loss, both in double precision, on random data.
//
// The numeric derivative is the five-point central difference
//   g ≈ [8(L(θ+h) − L(θ−h)) − (L(θ+2h) − L(θ−2h))] / 12h,   h = 1e-4,
// whose truncation error is O(h⁴) (~1e-16) and rounding error ~1e-12·|L|, so an element passes
// when |g_analytic − g_numeric| ≤ rel_tol · max(|g_analytic|, |g_numeric|, abs_floor), with
// rel_tol = 1e-6 and abs_floor = 1e-5: gradients smaller than the floor are held to 1e-11
// absolute, well above the method's error and far below any real mistake.
// ReLU and leaky ReLU are not differentiable at 0: examples are redrawn until every hidden
// pre-activation of those layers is at least kink_margin away from it, far more than a step of
// h can move it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backprop/model.hpp"

namespace backprop {

// Which analytic gradient is checked: the double reference path, or the float path training uses
// (the active kernel table: SIMD micro-kernels, fused epilogues, vectorised exp), against the same
// double finite differences. Float is held to float32's tolerance: see kFloatRelTol.
enum class Precision { kDouble, kFloat };

struct GradcheckOptions {
  Index batch = 7;
  std::uint64_t seed = 1;
  Precision precision = Precision::kDouble;
  double step = 1e-4;
  double rel_tol = 1e-6;
  double abs_floor = 1e-5;
  // Also a floor relative to the tensor: scale >= tensor_floor · max |g_numeric| of the tensor.
  double tensor_floor = 0;
  // Dropout rates per hidden layer (empty: none). Every evaluation of the loss replays the same
  // masks, so the check covers the masked backward pass.
  std::vector<double> dropout;
  double kink_margin = 1e-2;
};

// Tolerance of the float path. float32 rounds to 2^-24 ≈ 6e-8 relative, and the sums behind a
// gradient round relative to the size of their terms, which is the size of the tensor's largest
// gradients, not of each element: the suite measures absolute errors up to ~2e-7 on tensors whose
// largest gradient is ~1. So an element passes when |g_a − g_n| ≤ 1e-4 · max(|g_a|, |g_n|,
// 1e-4, 1e-2 · max |g_n| of its tensor): 1e-4 relative for the large gradients, an absolute
// 1e-6 of the tensor's scale for the small ones, about 5× above the worst the suite measures
// (2.1e-5 on the avx2 and avx512 tables, 1.3e-5 on scalar).
inline constexpr double kFloatRelTol = 1e-4;
inline constexpr double kFloatAbsFloor = 1e-4;
inline constexpr double kFloatTensorFloor = 1e-2;

// One tensor's comparison.
struct GradcheckTensor {
  Index layer = 0;
  bool is_bias = false;
  Index size = 0;
  double max_abs_err = 0;   // max |g_a − g_n|
  double max_rel_err = 0;   // max |g_a − g_n| / max(|g_a|, |g_n|, abs_floor, tensor floor)
  double max_abs_grad = 0;  // max |g_n|: shows the gradient is not trivially zero
  Index n_failed = 0;       // elements over rel_tol
};

struct GradcheckReport {
  std::vector<GradcheckTensor> tensors;  // per layer: weight, then bias
  bool passed() const;
};

// Builds a double model of `spec` with random weights and biases, draws a batch of random inputs
// and targets suited to the output (probability vectors for softmax, values in [0, 1] for sigmoid,
// normal values for identity) and compares every gradient. Throws Error(kUsage) for a bad spec,
// and Error(kNumeric) if no inputs clear the ReLU kinks.
GradcheckReport gradcheck(const ModelSpec& spec, const GradcheckOptions& options);

// The comparison rule on two arrays of the same length (exposed so tests can show it fails on a
// wrong gradient).
GradcheckTensor compare_gradients(std::span<const double> analytic, std::span<const double> numeric,
                                  const GradcheckOptions& options);

}  // namespace backprop
