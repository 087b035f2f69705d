// The portable kernel table: plain C++ for any CPU, one float per "vector". The compiler may
// still vectorise its loops for the baseline ISA. multiply-add is two roundings here (the build
// uses -ffp-contract=off), so this table is also the reference the SIMD tables are tested against.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.hpp"

namespace backprop::kernels {
namespace {

struct Simd {
  using V = float;
  static constexpr Index kW = 1;
  static V zero() { return 0.0f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V load_n(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  static void store_n(float* p, V v, int n) {
    if (n > 0) *p = v;
  }
  static V load_u8(const std::uint8_t* p) { return static_cast<float>(*p); }
  static V fmadd(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V sqrt(V x) { return std::sqrt(x); }
  static V max(V a, V b) { return a > b ? a : b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static V round(V x) { return std::nearbyint(x); }
  static V pow2i(V n) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127)
                                << 23);
  }
  static V neg(V x) { return -x; }
  static V abs(V x) { return std::fabs(x); }
  static V copysign(V mag, V sign) { return std::copysign(mag, sign); }
  static V select_lt(V x, V t, V a, V b) { return x < t ? a : b; }
  static V select_gt0(V x, V a, V b) { return x > 0.0f ? a : b; }
  static void transpose(V*) {}
  static float reduce_add(V x) { return x; }
  static float reduce_max(V x) { return x; }
};

using S = Simd;
#include "kernels/generic.inc"

}  // namespace

// 4×8 accumulators; KC × NR of B (8 KiB) in L1, MC × KC of A (128 KiB) in L2.
const KernelTable& scalar_table() {
  static const KernelTable table = make_table<4, 8, 256, 128, 2048, 4, 4>("scalar", 16);
  return table;
}

}  // namespace backprop::kernels
