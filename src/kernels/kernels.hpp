// The kernel interface: the only matrix products and elementwise loops the layers call.
// Shapes (row-major views): B = batch, I = layer inputs, O = layer outputs.
//   forward          a  = g(x·wᵀ + b)          x: B×I  w: O×I  b: O  a: B×O   (D1 + D2)
//   backward data    dz' = (dz·w) ∘ g'(a')     dz: B×O w: O×I  a', dz': B×I   (D5)
//   backward weights dw (+)= dzᵀ·x             dz: B×O x: B×I  dw: O×I        (D6)
// All three run on one strided GEMM (BLIS's decomposition: packing, cache blocks, a register-tiled
// micro-kernel), so no transpose is ever materialised, and the activation (forward) or its
// derivative (backward) is applied to each output tile in registers, right after its last k block
// (the "epilogue"). Every element of the result is accumulated by one thread in a fixed k-order
// that depends only on the problem shape and the kernel table, so the result is bitwise identical
// for any thread count. docs/gemm.md draws the loops and the packed layouts.
//
// float runs on a KernelTable: one per ISA (scalar, avx2, avx512), chosen once at start from the
// CPU (BACKPROP_ISA=scalar|avx2|avx512 overrides). double, the reference precision of gradcheck,
// runs on the portable template in gemm.cpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "backprop/activation.hpp"
#include "backprop/matrix.hpp"
#include "backprop/parallel.hpp"

namespace backprop::kernels {

// A read-only matrix operand with arbitrary strides: element (i, j) is p[i * rs + j * cs].
template <class T>
struct Operand {
  const T* p;
  Index rs, cs;
};

// What happens to a tile of C once its k products are all summed.
template <class T>
struct EpilogueT {
  // kScaledAdd: C += alpha·(A·B) on every k block (C = alpha·(A·B) without accumulate): the
  // weight-gradient product straight into the weights, W ← W − η·dzᵀx, as plain SGD needs.
  enum class Kind { kNone, kBiasActivation, kActivationGrad, kScaledAdd };
  Kind kind = Kind::kNone;
  T alpha = 1;                             // kScaledAdd
  const T* bias = nullptr;                 // kBiasActivation: n values added to every row, or null
  Activation act = Activation::kIdentity;  // kBiasActivation: g; kActivationGrad: g' from `src`
  T slope = 0;                             // leaky ReLU
  const T* src = nullptr;                  // kActivationGrad: a = g(z), m×n, C ∘= g'(a)
  Index src_ld = 0;
  const T* mask = nullptr;  // kActivationGrad, optional: C ∘= mask too (dropout's 0 or 1/(1−p))
  Index mask_ld = 0;
};
using Epilogue = EpilogueT<float>;

// Packs rows [0, rows) × k-range [0, kc) of a strided operand into the table's panel layout:
// pack_a makes MR-tall panels (kc × MR each), pack_b NR-wide panels (kc × NR each), zero-padded.
using PackFn = void (*)(Index rows, Index kc, const float* src, Index rs, Index cs, float* dst);
// C[m×n] (+)= Ap·Bp for one MR×NR tile (m <= MR, n <= NR valid); then, if ep is not null, the
// epilogue, with (row0, col0) the tile's place in the whole C (for bias and src). Row p of the
// B panel is at bp + p·ldb: ldb = NR for a packed panel, or the row stride of B when B is read in
// place (all NR columns must then exist).
using UkernelFn = void (*)(Index kc, const float* ap, const float* bp, Index ldb, float* c,
                           Index ldc, Index m, Index n, bool accumulate, const Epilogue* ep,
                           Index row0, Index col0);

// C[m×n] = X·Wᵀ with X (m×k, row stride ldx) and W (n×k, row stride ldw) read as they are, then
// the forward epilogue (kNone or kBiasActivation), col0 placing the block's columns for the bias.
using DotFn = void (*)(Index m, Index n, Index k, const float* x, Index ldx, const float* w,
                       Index ldw, float* c, Index ldc, const Epilogue* ep, Index col0);

// One Adam/AdamW step's scalars (Adam in optimizer.hpp): θ ← θ·decay (AdamW), g' = g + wd·θ
// (Adam with wd ≠ 0), m ← b1·m + (1−b1)·g', v ← b2·v + (1−b2)·g'², θ ← θ − step·m/(√v/bc2 + ε).
struct AdamArgs {
  float b1, one_minus_b1, b2, one_minus_b2, eps, step_size, bc2_sqrt, weight_decay, decay;
  bool decoupled;
};

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avx512"
  Index mr, nr;      // micro-tile; the packed layouts depend on these
  Index kc, mc, nc;  // cache blocks (docs/gemm.md)
  PackFn pack_a, pack_b;
  UkernelFn ukernel;
  // The forward form without packing, for batches of at most dot_max_m rows, where packing the
  // transposed weights costs more than the product itself.
  DotFn gemm_nt_dot;
  Index dot_max_m;
  // Elementwise, over n contiguous values. act_forward: a = g(z) (softmax: one row of n);
  // act_backward: dz = da ∘ g'(a) (not softmax); exp: y = e^x; axpy: y += alpha·x.
  void (*act_forward)(Activation g, float slope, const float* z, float* a, Index n);
  void (*act_backward)(Activation g, float slope, const float* a, const float* da, float* dz,
                       Index n);
  void (*exp)(const float* x, float* y, Index n);
  void (*axpy)(float alpha, const float* x, float* y, Index n);
  // y = (x − shift)·scale: a batch row of raw features on its way into the model.
  void (*scale_u8)(const std::uint8_t* x, const float* shift, const float* scale, float* y,
                   Index n);
  void (*scale_f32)(const float* x, const float* shift, const float* scale, float* y, Index n);
  void (*adam)(float* p, const float* g, float* m, float* v, Index n, const AdamArgs& a);
};

// The table float work runs on: chosen once, the widest this CPU supports, unless BACKPROP_ISA
// names another it supports (an unknown or unsupported name is reported on stderr and ignored).
const KernelTable& active();
// Makes t the table float work runs on from now on: for tests and benchmarks that compare tables
// in one process. Not thread-safe; call it between computations.
void set_active(const KernelTable& t);
// Every table this CPU can run, scalar first.
std::vector<const KernelTable*> available();
// The table of that name if this CPU runs it, else null.
const KernelTable* find(std::string_view name);

// C[m×n] = X·Wᵀ, then the epilogue (kNone or kBiasActivation): the forward form on table t,
// through the dot-product kernel when m <= t.dot_max_m and the packed GEMM otherwise.
void gemm_nt(const KernelTable& t, Index m, Index n, Index k, const float* x, Index ldx,
             const float* w, Index ldw, float* c, Index ldc, const Epilogue& ep) noexcept;
// C[m×n] = A[m×k]·B[k×n] (accumulate: C += ...), then the epilogue.
void gemm(const KernelTable& t, Index m, Index n, Index k, Operand<float> a, Operand<float> b,
          float* c, Index ldc, bool accumulate, const Epilogue& ep) noexcept;
// The portable template (double; float too, for tests).
template <class T>
void gemm_reference(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc,
                    bool accumulate, const EpilogueT<T>& ep) noexcept;

// Threads per product, chosen by work. A thread costs about a microsecond to wake and hand its
// share, and the operands it reads must then move between cores' caches; a share below
// kMinMacsPerThread multiply-adds (about 10 µs of one core's micro-kernel) does not pay for that,
// so a product gets one thread per kMinMacsPerThread of its m·n·k, at most one per micro-tile
// column (row) strip, at most `available`. Network (a)'s products (784-30-10, batch 10: at most
// 235k) run on the calling thread; (c)'s (hundreds of millions) on every core.
constexpr double kMinMacsPerThread = 512.0 * 1024;
int gemm_threads(Index m, Index n, Index k, Index mr, Index nr, int available) noexcept;

// Elementwise passes (optimizer updates, the batch gather, activations, column sums) are weighed
// in the same unit: a pass streams about one float per nanosecond on one core, where the
// micro-kernel does tens of multiply-adds, so an element counts as kElementCost multiply-adds
// (times the pass's streams). A pass over n elements then starts a thread per 16 Ki elements of a
// one-stream pass, fewer for a heavier one.
constexpr double kElementCost = 32;

// Runs f(begin, end) over [0, n) in contiguous ranges, one per thread the work pays for
// (`streams` weighs an element: kElementCost·streams multiply-adds); range boundaries are
// multiples of `align` (the last range ends at n). For work whose result does not depend on the
// split: each output element written by exactly one range.
template <class F>
void parallel_ranges(Index n, double streams, Index align, F&& f) {
  if (n <= 0) return;
  const Index units = (n + align - 1) / align;
  const int threads = detail::threads_for(static_cast<double>(n) * kElementCost * streams,
                                          kMinMacsPerThread, units);
  if (threads <= 1) {
    f(Index{0}, n);
    return;
  }
  detail::parallel_for(threads, [&](int t) {
    const Index begin = units * t / threads * align;
    const Index end = std::min(n, units * (t + 1) / threads * align);
    if (begin < end) f(begin, end);
  });
}

// The three forms. float runs on active(), double on the portable template.
template <class T>
void gemm_forward(ConstMatrixViewT<T> x, ConstMatrixViewT<T> w, const T* b, Activation g, T slope,
                  MatrixViewT<T> a) noexcept;
// a_prev empty: dz_prev = dz·w (no activation to differentiate). A non-empty mask (dropout of
// the previous layer's output) multiplies in as well: dz_prev = (dz·w) ∘ g'(a_prev) ∘ mask.
template <class T>
void gemm_backward_data(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> w, Activation g, T slope,
                        ConstMatrixViewT<T> a_prev, MatrixViewT<T> dz_prev,
                        ConstMatrixViewT<T> mask = {}) noexcept;
// w += alpha·dzᵀ·x: plain SGD's update (alpha = −η) from the weight-gradient product itself,
// without writing dw. With the batch within one k block (B <= the table's KC) the result is
// bitwise what gemm_backward_weights followed by axpy(alpha, dw, w) gives.
template <class T>
void gemm_update_weights(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> x, MatrixViewT<T> w,
                         T alpha) noexcept;
// accumulate: dw += dzᵀ·x; otherwise dw = dzᵀ·x.
template <class T>
void gemm_backward_weights(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> x, MatrixViewT<T> dw,
                           bool accumulate) noexcept;

// D7: db (+)= Σ_rows dz, rows added in order, so the sum does not depend on how the batch was
// computed (db: dz.cols values); threads take ranges of columns.
template <class T>
void column_sums(ConstMatrixViewT<T> dz, T* db, bool accumulate) noexcept;

// y += alpha·x elementwise (SGD's step): active().axpy for float, a plain loop for double.
template <class T>
void axpy(T alpha, std::span<const T> x, std::span<T> y) noexcept;

// Adam's step over n parameters on active(), split across as many threads as it pays for
// (parallel_ranges, ranges on 16-float boundaries).
void adam_step(float* p, const float* g, float* m, float* v, Index n, const AdamArgs& a) noexcept;

// Elementwise helpers over row-major views, on active() for float and plain loops for double.
template <class T>
void activation_forward_rows(Activation g, T slope, ConstMatrixViewT<T> z,
                             MatrixViewT<T> a) noexcept;
template <class T>
void activation_backward_rows(Activation g, T slope, ConstMatrixViewT<T> a, ConstMatrixViewT<T> da,
                              MatrixViewT<T> dz) noexcept;

// The tables, defined in scalar/, avx2/ and avx512/ (each compiled with its own flags).
const KernelTable& scalar_table();
const KernelTable& avx2_table();
const KernelTable& avx512_table();

}  // namespace backprop::kernels
