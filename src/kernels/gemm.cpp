// The loops around the micro-kernel (BLIS numbering), packing and the split across threads.
//
//   loop 5  jc over n in blocks of NC          (B block shared by loops 3..1)
//   loop 4  pc over k in blocks of KC          pack B[pc:pc+kc, jc:jc+nc] into NR-wide panels
//   loop 3  ic over m in blocks of MC          pack A[ic:ic+mc, pc:pc+kc] into MR-tall panels
//   loop 2  jr over nc in steps of NR
//   loop 1  ir over mc in steps of MR          micro-kernel: MR×NR tile of C += Ap · Bp
//
// Packed A panel: kc rows of MR values (column p of the MR×kc sub-block is contiguous).
// Packed B panel: kc rows of NR values (row p of the kc×NR sub-block is contiguous).
// Edges are zero-padded in the packed buffers, so the micro-kernel always runs a full MR×NR tile
// and only the store is masked.
//
// Each C element sums its k products in the order p = 0..k-1 within a KC block and adds the
// blocks in order, whatever the split across threads; threads take disjoint rectangles of C.
#include "kernels/kernels.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "backprop/parallel.hpp"

namespace backprop::kernels {

namespace {

// Block sizes of the portable kernel. MR×NR accumulators fit the 16 SSE registers for float
// (4×8 floats = 8 registers); KC×NR of B stays in L1, MC×KC of A in L2.
template <class T>
struct Blocking {
  static constexpr Index kMr = 4, kNr = 8, kKc = 256, kMc = 128, kNc = 2048;
};

// Grow-only per-thread packing buffer; after the first product of the largest shape no call
// allocates.
template <class T>
T* scratch(int slot, Index elems) {
  struct Buffer {
    std::unique_ptr<T[], detail::AlignedFree> p;
    Index capacity = 0;
  };
  thread_local Buffer buffers[2];
  Buffer& b = buffers[slot];
  if (b.capacity < elems) {
    b.p.reset(static_cast<T*>(detail::aligned_zero_alloc(elems, sizeof(T))));
    b.capacity = elems;
  }
  return b.p.get();
}

template <class T>
void pack_a(Index mc, Index kc, const T* a, Index rs, Index cs, T* ap) {
  constexpr Index kMr = Blocking<T>::kMr;
  for (Index ir = 0; ir < mc; ir += kMr) {
    Index mr = std::min(kMr, mc - ir);
    for (Index p = 0; p < kc; ++p) {
      const T* src = a + ir * rs + p * cs;
      for (Index i = 0; i < mr; ++i) ap[p * kMr + i] = src[i * rs];
      for (Index i = mr; i < kMr; ++i) ap[p * kMr + i] = T(0);
    }
    ap += kc * kMr;
  }
}

template <class T>
void pack_b(Index kc, Index nc, const T* b, Index rs, Index cs, T* bp) {
  constexpr Index kNr = Blocking<T>::kNr;
  for (Index jr = 0; jr < nc; jr += kNr) {
    Index nr = std::min(kNr, nc - jr);
    for (Index p = 0; p < kc; ++p) {
      const T* src = b + p * rs + jr * cs;
      for (Index j = 0; j < nr; ++j) bp[p * kNr + j] = src[j * cs];
      for (Index j = nr; j < kNr; ++j) bp[p * kNr + j] = T(0);
    }
    bp += kc * kNr;
  }
}

// C[m×n] (+)= Ap·Bp for one MR×NR tile (m <= MR, n <= NR valid). The j loop vectorises.
template <class T>
void ukernel(Index kc, const T* __restrict ap, const T* __restrict bp, T* c, Index ldc, Index m,
             Index n, bool accumulate) {
  constexpr Index kMr = Blocking<T>::kMr, kNr = Blocking<T>::kNr;
  T acc[kMr][kNr] = {};
  for (Index p = 0; p < kc; ++p) {
    for (Index i = 0; i < kMr; ++i) {
      T ai = ap[p * kMr + i];
      for (Index j = 0; j < kNr; ++j) acc[i][j] += ai * bp[p * kNr + j];
    }
  }
  for (Index i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (accumulate) {
      for (Index j = 0; j < n; ++j) ci[j] += acc[i][j];
    } else {
      for (Index j = 0; j < n; ++j) ci[j] = acc[i][j];
    }
  }
}

// One thread's rectangle: loops 5..1.
template <class T>
void gemm_serial(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc,
                 bool accumulate, const T* bias) {
  using Bk = Blocking<T>;
  if (k == 0 && !accumulate) {
    for (Index i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
  }
  if (k > 0) {
    T* ap = scratch<T>(0, Bk::kMc * Bk::kKc);
    T* bp = scratch<T>(1, Bk::kKc * ((std::min(n, Bk::kNc) + Bk::kNr - 1) / Bk::kNr * Bk::kNr));
    for (Index jc = 0; jc < n; jc += Bk::kNc) {  // loop 5
      Index nc = std::min(Bk::kNc, n - jc);
      for (Index pc = 0; pc < k; pc += Bk::kKc) {  // loop 4
        Index kc = std::min(Bk::kKc, k - pc);
        pack_b(kc, nc, b.p + pc * b.rs + jc * b.cs, b.rs, b.cs, bp);
        bool acc = accumulate || pc > 0;
        for (Index ic = 0; ic < m; ic += Bk::kMc) {  // loop 3
          Index mc = std::min(Bk::kMc, m - ic);
          pack_a(mc, kc, a.p + ic * a.rs + pc * a.cs, a.rs, a.cs, ap);
          for (Index jr = 0; jr < nc; jr += Bk::kNr) {    // loop 2
            for (Index ir = 0; ir < mc; ir += Bk::kMr) {  // loop 1
              ukernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc,
                      std::min(Bk::kMr, mc - ir), std::min(Bk::kNr, nc - jr), acc);
            }
          }
        }
      }
    }
  }
  if (bias != nullptr) {
    for (Index i = 0; i < m; ++i) {
      T* ci = c + i * ldc;
      for (Index j = 0; j < n; ++j) ci[j] += bias[j];
    }
  }
}

// Below this many multiply-adds a product runs on the calling thread: waking a worker costs more.
constexpr double kMinMacsPerThread = 64.0 * 1024;

}  // namespace

template <class T>
void gemm(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc, bool accumulate,
          const T* bias) noexcept {
  using Bk = Blocking<T>;
  if (m <= 0 || n <= 0) return;
  double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  int threads = std::min(num_threads(), std::max(1, static_cast<int>(macs / kMinMacsPerThread)));
  // Split C into `threads` slabs along its longer dimension, on micro-tile boundaries.
  bool split_n = n >= m;
  Index extent = split_n ? n : m, unit = split_n ? Bk::kNr : Bk::kMr;
  Index units = (extent + unit - 1) / unit;
  threads = static_cast<int>(std::min<Index>(threads, units));
  if (threads <= 1) {
    gemm_serial(m, n, k, a, b, c, ldc, accumulate, bias);
    return;
  }
  detail::parallel_for(threads, [&](int t) {
    Index u0 = units * t / threads, u1 = units * (t + 1) / threads;
    Index begin = u0 * unit, end = std::min(extent, u1 * unit);
    if (begin >= end) return;
    if (split_n) {
      Operand<T> bs{b.p + begin * b.cs, b.rs, b.cs};
      gemm_serial(m, end - begin, k, a, bs, c + begin, ldc, accumulate,
                  bias ? bias + begin : nullptr);
    } else {
      Operand<T> as{a.p + begin * a.rs, a.rs, a.cs};
      gemm_serial(end - begin, n, k, as, b, c + begin * ldc, ldc, accumulate, bias);
    }
  });
}

template <class T>
void gemm_forward(ConstMatrixViewT<T> x, ConstMatrixViewT<T> w, const T* b,
                  MatrixViewT<T> z) noexcept {
  BACKPROP_DASSERT(x.cols == w.cols && z.rows == x.rows && z.cols == w.rows);
  // B operand is wᵀ (I×O): element (p, j) = w[j][p].
  gemm<T>(x.rows, w.rows, x.cols, {x.data, x.stride, 1}, {w.data, 1, w.stride}, z.data, z.stride,
          false, b);
}

template <class T>
void gemm_backward_data(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> w, MatrixViewT<T> dx) noexcept {
  BACKPROP_DASSERT(dz.cols == w.rows && dx.rows == dz.rows && dx.cols == w.cols);
  gemm<T>(dz.rows, w.cols, dz.cols, {dz.data, dz.stride, 1}, {w.data, w.stride, 1}, dx.data,
          dx.stride, false, nullptr);
}

template <class T>
void gemm_backward_weights(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> x,
                           MatrixViewT<T> dw) noexcept {
  BACKPROP_DASSERT(dz.rows == x.rows && dw.rows == dz.cols && dw.cols == x.cols);
  // A operand is dzᵀ (O×B): element (i, p) = dz[p][i].
  gemm<T>(dz.cols, x.cols, dz.rows, {dz.data, 1, dz.stride}, {x.data, x.stride, 1}, dw.data,
          dw.stride, true, nullptr);
}

#define BACKPROP_INSTANTIATE(T)                                                       \
  template void gemm<T>(Index, Index, Index, Operand<T>, Operand<T>, T*, Index, bool, \
                        const T*) noexcept;                                           \
  template void gemm_forward<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>, const T*,   \
                                MatrixViewT<T>) noexcept;                             \
  template void gemm_backward_data<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>,       \
                                      MatrixViewT<T>) noexcept;                       \
  template void gemm_backward_weights<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>,    \
                                         MatrixViewT<T>) noexcept;
BACKPROP_INSTANTIATE(float)
BACKPROP_INSTANTIATE(double)
#undef BACKPROP_INSTANTIATE

}  // namespace backprop::kernels
