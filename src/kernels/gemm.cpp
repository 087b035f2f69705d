// The loops around the micro-kernel (BLIS numbering), packing buffers and the split across
// threads, for every kernel table; and the portable template for double.
//
//   loop 5  jc over n in blocks of NC          (B block shared by loops 3..1)
//   loop 4  pc over k in blocks of KC          pack B[pc:pc+kc, jc:jc+nc] into NR-wide panels
//   loop 3  ic over m in blocks of MC          pack A[ic:ic+mc, pc:pc+kc] into MR-tall panels
//   loop 2  jr over nc in steps of NR
//   loop 1  ir over mc in steps of MR          micro-kernel: MR×NR tile of C (+)= Ap · Bp
//
// The epilogue runs in the micro-kernel on the last k block, so each tile is activated (or
// multiplied by g') while still in registers. Each C element sums its k products in the order
// p = 0..k-1 within a KC block and adds the blocks in order, whatever the split across threads;
// threads take disjoint rectangles of C.
#include <algorithm>
#include <cstring>
#include <memory>

#include "backprop/parallel.hpp"
#include "kernels/kernels.hpp"
#include "kernels/reference.hpp"

namespace backprop::kernels {

namespace {

// Grow-only per-thread buffer (slot 0: packed A, slot 1: packed B); after the first product of
// the largest shape nothing allocates. The pool's threads are persistent, so these live as long
// as the process.
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

Index round_up(Index n, Index to) {
  return (n + to - 1) / to * to;
}

// One thread's rectangle of C: loops 5..1. (row0, col0) place it in the whole C.
void gemm_serial(const KernelTable& t, Index m, Index n, Index k, Operand<float> a,
                 Operand<float> b, float* c, Index ldc, bool accumulate, const Epilogue& ep,
                 Index row0, Index col0) {
  const Epilogue* last = ep.kind == Epilogue::Kind::kNone ? nullptr : &ep;
  float* ap = scratch<float>(0, t.mc * t.kc);
  float* bp = scratch<float>(1, t.kc * round_up(std::min(n, t.nc), t.nr));
  // B with contiguous rows and k within one block (the weight gradient at batch sizes up to KC;
  // dz·w for narrow layers) is read in place: packing would copy every element for a panel used
  // only a few times. A partial last panel is still packed (the kernel reads whole panels).
  const bool b_in_place = b.cs == 1 && k <= t.kc;
  // k == 0 still runs one (empty) k block, so C is cleared or kept and the epilogue applied.
  const Index k_blocks_end = std::max<Index>(k, 1);
  for (Index jc = 0; jc < n; jc += t.nc) {  // loop 5
    const Index nc = std::min(t.nc, n - jc);
    const Index nc_full = b_in_place ? nc / t.nr * t.nr : 0;  // panels read in place
    for (Index pc = 0; pc < k_blocks_end; pc += t.kc) {       // loop 4
      const Index kc = std::min(t.kc, k - pc);
      const float* b_block = b.p + pc * b.rs + jc * b.cs;
      if (nc_full < nc) {
        t.pack_b(nc - nc_full, kc, b_block + nc_full * b.cs, b.rs, b.cs, bp + nc_full * kc);
      }
      const bool acc = accumulate || pc > 0;
      // The scaled add applies to every k block's partial sum; the others to the finished sum.
      const Epilogue* e = pc + t.kc >= k || ep.kind == Epilogue::Kind::kScaledAdd ? last : nullptr;
      for (Index ic = 0; ic < m; ic += t.mc) {  // loop 3
        const Index mc = std::min(t.mc, m - ic);
        t.pack_a(mc, kc, a.p + ic * a.rs + pc * a.cs, a.rs, a.cs, ap);
        for (Index jr = 0; jr < nc; jr += t.nr) {  // loop 2
          const bool in_place = jr < nc_full;
          const float* bj = in_place ? b_block + jr : bp + jr * kc;
          const Index ldb = in_place ? b.rs : t.nr;
          for (Index ir = 0; ir < mc; ir += t.mr) {  // loop 1
            t.ukernel(kc, ap + ir * kc, bj, ldb, c + (ic + ir) * ldc + jc + jr, ldc,
                      std::min(t.mr, mc - ir), std::min(t.nr, nc - jr), acc, e, row0 + ic + ir,
                      col0 + jc + jr);
          }
        }
      }
    }
  }
}

// How many threads a product of this size gets, and whether C is split along n (else m).
struct Split {
  int threads;
  bool along_n;
  Index unit;
};

Split plan(Index m, Index n, Index k, Index mr, Index nr) {
  bool along_n = n >= m;
  return {gemm_threads(m, n, k, mr, nr, num_threads()), along_n, along_n ? nr : mr};
}

// ---------------------------------------------------------------------------------------------
// The portable template: double (gradcheck's reference) and float (tests).

template <class T>
struct Blocking {
  static constexpr Index kMr = 4, kNr = 8, kKc = 256, kMc = 128, kNc = 2048;
};

template <class T>
void ref_pack_a(Index mc, Index kc, const T* a, Index rs, Index cs, T* ap) {
  constexpr Index kMr = Blocking<T>::kMr;
  for (Index ir = 0; ir < mc; ir += kMr, ap += kc * kMr) {
    Index mr = std::min(kMr, mc - ir);
    for (Index p = 0; p < kc; ++p) {
      for (Index i = 0; i < kMr; ++i) ap[p * kMr + i] = i < mr ? a[(ir + i) * rs + p * cs] : T(0);
    }
  }
}

template <class T>
void ref_pack_b(Index kc, Index nc, const T* b, Index rs, Index cs, T* bp) {
  constexpr Index kNr = Blocking<T>::kNr;
  for (Index jr = 0; jr < nc; jr += kNr, bp += kc * kNr) {
    Index nr = std::min(kNr, nc - jr);
    for (Index p = 0; p < kc; ++p) {
      for (Index j = 0; j < kNr; ++j) bp[p * kNr + j] = j < nr ? b[p * rs + (jr + j) * cs] : T(0);
    }
  }
}

template <class T>
void ref_ukernel(Index kc, const T* __restrict ap, const T* __restrict bp, T* c, Index ldc, Index m,
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
    for (Index j = 0; j < n; ++j) ci[j] = (accumulate ? ci[j] : T(0)) + acc[i][j];
  }
}

template <class T>
void ref_epilogue(Index m, Index n, T* c, Index ldc, const EpilogueT<T>& ep, Index row0,
                  Index col0) {
  using Kind = typename EpilogueT<T>::Kind;
  if (ep.kind == Kind::kNone) return;
  for (Index i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    for (Index j = 0; j < n; ++j) {
      if (ep.kind == Kind::kBiasActivation) {
        T z = ci[j] + (ep.bias != nullptr ? ep.bias[col0 + j] : T(0));
        ci[j] = reference::act(ep.act, z, ep.slope);
      } else {
        T a = ep.src[(row0 + i) * ep.src_ld + col0 + j];
        ci[j] *= reference::deriv(ep.act, a, ep.slope);
        if (ep.mask != nullptr) ci[j] *= ep.mask[(row0 + i) * ep.mask_ld + col0 + j];
      }
    }
  }
}

template <class T>
void ref_serial(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc,
                bool accumulate, const EpilogueT<T>& ep, Index row0, Index col0);

// C += alpha·(A·B) on the portable path: the product into a temporary, then the scaled add.
template <class T>
void ref_scaled_add(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc,
                    bool accumulate, const EpilogueT<T>& ep) {
  BasicMatrix<T> prod(m, n);
  ref_serial<T>(m, n, k, a, b, prod.data(), n, false, EpilogueT<T>{}, 0, 0);
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      T* cij = c + i * ldc + j;
      *cij = (accumulate ? *cij : T(0)) + ep.alpha * prod(i, j);
    }
  }
}

template <class T>
void ref_serial(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc,
                bool accumulate, const EpilogueT<T>& ep, Index row0, Index col0) {
  using Bk = Blocking<T>;
  if (ep.kind == EpilogueT<T>::Kind::kScaledAdd) {
    ref_scaled_add<T>(m, n, k, a, b, c, ldc, accumulate, ep);
    return;
  }
  if (k == 0 && !accumulate) {
    for (Index i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
  }
  if (k > 0) {
    T* ap = scratch<T>(0, Bk::kMc * Bk::kKc);
    T* bp = scratch<T>(1, Bk::kKc * round_up(std::min(n, Bk::kNc), Bk::kNr));
    for (Index jc = 0; jc < n; jc += Bk::kNc) {
      Index nc = std::min(Bk::kNc, n - jc);
      for (Index pc = 0; pc < k; pc += Bk::kKc) {
        Index kc = std::min(Bk::kKc, k - pc);
        ref_pack_b(kc, nc, b.p + pc * b.rs + jc * b.cs, b.rs, b.cs, bp);
        bool acc = accumulate || pc > 0;
        for (Index ic = 0; ic < m; ic += Bk::kMc) {
          Index mc = std::min(Bk::kMc, m - ic);
          ref_pack_a(mc, kc, a.p + ic * a.rs + pc * a.cs, a.rs, a.cs, ap);
          for (Index jr = 0; jr < nc; jr += Bk::kNr) {
            for (Index ir = 0; ir < mc; ir += Bk::kMr) {
              ref_ukernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc,
                          std::min(Bk::kMr, mc - ir), std::min(Bk::kNr, nc - jr), acc);
            }
          }
        }
      }
    }
  }
  ref_epilogue(m, n, c, ldc, ep, row0, col0);
}

// Runs `serial` on one or several disjoint slabs of C.
template <class T, class Serial>
void split_and_run(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc, Index mr,
                   Index nr, Serial&& serial) {
  if (m <= 0 || n <= 0) return;
  Split s = plan(m, n, k, mr, nr);
  if (s.threads <= 1) {
    serial(m, n, a, b, c, Index{0}, Index{0});
    return;
  }
  const Index extent = s.along_n ? n : m;
  const Index units = (extent + s.unit - 1) / s.unit;
  detail::parallel_for(s.threads, [&](int t) {
    Index begin = units * t / s.threads * s.unit;
    Index end = std::min(extent, units * (t + 1) / s.threads * s.unit);
    if (begin >= end) return;
    if (s.along_n) {
      serial(m, end - begin, a, Operand<T>{b.p + begin * b.cs, b.rs, b.cs}, c + begin, Index{0},
             begin);
    } else {
      serial(end - begin, n, Operand<T>{a.p + begin * a.rs, a.rs, a.cs}, b, c + begin * ldc, begin,
             Index{0});
    }
  });
}

}  // namespace

int gemm_threads(Index m, Index n, Index k, Index mr, Index nr, int available) noexcept {
  if (m <= 0 || n <= 0) return 1;
  const bool along_n = n >= m;
  const Index unit = along_n ? nr : mr;
  const Index units = ((along_n ? n : m) + unit - 1) / unit;
  const double macs =
      static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::max<Index>(k, 1));
  return detail::threads_for(macs, kMinMacsPerThread, units, available);
}

void gemm(const KernelTable& t, Index m, Index n, Index k, Operand<float> a, Operand<float> b,
          float* c, Index ldc, bool accumulate, const Epilogue& ep) noexcept {
  split_and_run<float>(
      m, n, k, a, b, c, ldc, t.mr, t.nr,
      [&](Index mm, Index nn, Operand<float> aa, Operand<float> bb, float* cc, Index r0, Index c0) {
        gemm_serial(t, mm, nn, k, aa, bb, cc, ldc, accumulate, ep, r0, c0);
      });
}

void gemm_nt(const KernelTable& t, Index m, Index n, Index k, const float* x, Index ldx,
             const float* w, Index ldw, float* c, Index ldc, const Epilogue& ep) noexcept {
  if (m > t.dot_max_m) {
    gemm(t, m, n, k, {x, ldx, 1}, {w, 1, ldw}, c, ldc, false, ep);
    return;
  }
  const Epilogue* e = ep.kind == Epilogue::Kind::kNone ? nullptr : &ep;
  // Each element is one dot product computed the same way in any tile, so any split of the
  // columns gives the same bits; 16-column units keep tiles whole.
  split_and_run<float>(
      m, n, k, {x, ldx, 1}, {w, 1, ldw}, c, ldc, t.mr, 16,
      [&](Index mm, Index nn, Operand<float> aa, Operand<float> bb, float* cc, Index, Index c0) {
        t.gemm_nt_dot(mm, nn, k, aa.p, ldx, bb.p, ldw, cc, ldc, e, c0);
      });
}

template <class T>
void gemm_reference(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc,
                    bool accumulate, const EpilogueT<T>& ep) noexcept {
  split_and_run<T>(
      m, n, k, a, b, c, ldc, Blocking<T>::kMr, Blocking<T>::kNr,
      [&](Index mm, Index nn, Operand<T> aa, Operand<T> bb, T* cc, Index r0, Index c0) {
        ref_serial<T>(mm, nn, k, aa, bb, cc, ldc, accumulate, ep, r0, c0);
      });
}

namespace {

template <class T>
void run(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc, bool accumulate,
         const EpilogueT<T>& ep) {
  if constexpr (std::is_same_v<T, float>) {
    gemm(active(), m, n, k, a, b, c, ldc, accumulate, ep);
  } else {
    gemm_reference<T>(m, n, k, a, b, c, ldc, accumulate, ep);
  }
}

}  // namespace

template <class T>
void gemm_forward(ConstMatrixViewT<T> x, ConstMatrixViewT<T> w, const T* b, Activation g, T slope,
                  MatrixViewT<T> a) noexcept {
  BACKPROP_DASSERT(x.cols == w.cols && a.rows == x.rows && a.cols == w.rows);
  BACKPROP_DASSERT(g != Activation::kSoftmax);
  EpilogueT<T> ep;
  ep.kind = EpilogueT<T>::Kind::kBiasActivation;
  ep.bias = b;
  ep.act = g;
  ep.slope = slope;
  if constexpr (std::is_same_v<T, float>) {
    gemm_nt(active(), x.rows, w.rows, x.cols, x.data, x.stride, w.data, w.stride, a.data, a.stride,
            ep);
  } else {
    // B operand is wᵀ (I×O): element (p, j) = w[j][p].
    gemm_reference<T>(x.rows, w.rows, x.cols, {x.data, x.stride, 1}, {w.data, 1, w.stride}, a.data,
                      a.stride, false, ep);
  }
}

template <class T>
void gemm_backward_data(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> w, Activation g, T slope,
                        ConstMatrixViewT<T> a_prev, MatrixViewT<T> dz_prev,
                        ConstMatrixViewT<T> mask) noexcept {
  BACKPROP_DASSERT(dz.cols == w.rows && dz_prev.rows == dz.rows && dz_prev.cols == w.cols);
  EpilogueT<T> ep;
  if (!a_prev.empty()) {
    BACKPROP_DASSERT(a_prev.rows == dz_prev.rows && a_prev.cols == dz_prev.cols);
    BACKPROP_DASSERT(g != Activation::kSoftmax);
    ep.kind = EpilogueT<T>::Kind::kActivationGrad;
    ep.act = g;
    ep.slope = slope;
    ep.src = a_prev.data;
    ep.src_ld = a_prev.stride;
    if (!mask.empty()) {
      BACKPROP_DASSERT(mask.rows == dz_prev.rows && mask.cols == dz_prev.cols);
      ep.mask = mask.data;
      ep.mask_ld = mask.stride;
    }
  }
  run<T>(dz.rows, w.cols, dz.cols, {dz.data, dz.stride, 1}, {w.data, w.stride, 1}, dz_prev.data,
         dz_prev.stride, false, ep);
}

template <class T>
void gemm_backward_weights(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> x, MatrixViewT<T> dw,
                           bool accumulate) noexcept {
  BACKPROP_DASSERT(dz.rows == x.rows && dw.rows == dz.cols && dw.cols == x.cols);
  // A operand is dzᵀ (O×B): element (i, p) = dz[p][i].
  run<T>(dz.cols, x.cols, dz.rows, {dz.data, 1, dz.stride}, {x.data, x.stride, 1}, dw.data,
         dw.stride, accumulate, EpilogueT<T>{});
}

void adam_step(float* p, const float* g, float* m, float* v, Index n, const AdamArgs& a) noexcept {
  const KernelTable& t = active();
  // Elementwise, so any split gives the same bits (ranges start on 16-float boundaries, so the
  // vector body and the tail see the same elements as on one thread). Seven streams, a sqrt and
  // two divisions per value: weighed as four plain streams.
  parallel_ranges(n, 4, 16, [&](Index begin, Index end) {
    t.adam(p + begin, g + begin, m + begin, v + begin, end - begin, a);
  });
}

template <class T>
void column_sums(ConstMatrixViewT<T> dz, T* db, bool accumulate) noexcept {
  // Each column is summed over the rows in order by one range of columns, so the split (by
  // columns, 64 at a time) never changes a sum.
  parallel_ranges(dz.cols, static_cast<double>(dz.rows), 64, [&](Index begin, Index end) {
    if (!accumulate) std::fill(db + begin, db + end, T(0));
    for (Index i = 0; i < dz.rows; ++i) {
      const T* di = dz.row(i);
      for (Index j = begin; j < end; ++j) db[j] += di[j];
    }
  });
}

template <class T>
void axpy(T alpha, std::span<const T> x, std::span<T> y) noexcept {
  BACKPROP_DASSERT(x.size() == y.size());
  parallel_ranges(static_cast<Index>(x.size()), 1, 16, [&](Index begin, Index end) {
    if constexpr (std::is_same_v<T, float>) {
      active().axpy(alpha, x.data() + begin, y.data() + begin, end - begin);
    } else {
      for (Index i = begin; i < end; ++i)
        y[static_cast<std::size_t>(i)] += alpha * x[static_cast<std::size_t>(i)];
    }
  });
}

template <class T>
void gemm_update_weights(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> x, MatrixViewT<T> w,
                         T alpha) noexcept {
  BACKPROP_DASSERT(dz.rows == x.rows && w.rows == dz.cols && w.cols == x.cols);
  EpilogueT<T> ep;
  ep.kind = EpilogueT<T>::Kind::kScaledAdd;
  ep.alpha = alpha;
  run<T>(dz.cols, x.cols, dz.rows, {dz.data, 1, dz.stride}, {x.data, x.stride, 1}, w.data, w.stride,
         true, ep);
}

template <class T>
void activation_forward_rows(Activation g, T slope, ConstMatrixViewT<T> z,
                             MatrixViewT<T> a) noexcept {
  BACKPROP_DASSERT(z.rows == a.rows && z.cols == a.cols);
  // Row by row, each row whole (softmax needs it): any split of the rows gives the same bits.
  const double streams = static_cast<double>(z.cols) * (g == Activation::kSoftmax ? 3 : 2);
  parallel_ranges(z.rows, streams, 1, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      if constexpr (std::is_same_v<T, float>) {
        active().act_forward(g, slope, z.row(i), a.row(i), z.cols);
      } else if (g == Activation::kSoftmax) {
        reference::softmax_row(z.row(i), a.row(i), z.cols);
      } else {
        for (Index j = 0; j < z.cols; ++j) a(i, j) = reference::act(g, z(i, j), slope);
      }
    }
  });
}

template <class T>
void activation_backward_rows(Activation g, T slope, ConstMatrixViewT<T> a, ConstMatrixViewT<T> da,
                              MatrixViewT<T> dz) noexcept {
  BACKPROP_DASSERT(g != Activation::kSoftmax);
  parallel_ranges(a.rows, static_cast<double>(a.cols) * 3, 1, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      if constexpr (std::is_same_v<T, float>) {
        active().act_backward(g, slope, a.row(i), da.row(i), dz.row(i), a.cols);
      } else {
        for (Index j = 0; j < a.cols; ++j) {
          dz(i, j) = da(i, j) * reference::deriv(g, a(i, j), slope);
        }
      }
    }
  });
}

#define BACKPROP_INSTANTIATE(T)                                                                    \
  template void gemm_reference<T>(Index, Index, Index, Operand<T>, Operand<T>, T*, Index, bool,    \
                                  const EpilogueT<T>&) noexcept;                                   \
  template void gemm_forward<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>, const T*, Activation, T, \
                                MatrixViewT<T>) noexcept;                                          \
  template void gemm_backward_data<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>, Activation, T,     \
                                      ConstMatrixViewT<T>, MatrixViewT<T>,                         \
                                      ConstMatrixViewT<T>) noexcept;                               \
  template void gemm_backward_weights<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>, MatrixViewT<T>, \
                                         bool) noexcept;                                           \
  template void column_sums<T>(ConstMatrixViewT<T>, T*, bool) noexcept;                            \
  template void axpy<T>(T, std::span<const T>, std::span<T>) noexcept;                             \
  template void gemm_update_weights<T>(ConstMatrixViewT<T>, ConstMatrixViewT<T>, MatrixViewT<T>,   \
                                       T) noexcept;                                                \
  template void activation_forward_rows<T>(Activation, T, ConstMatrixViewT<T>,                     \
                                           MatrixViewT<T>) noexcept;                               \
  template void activation_backward_rows<T>(Activation, T, ConstMatrixViewT<T>,                    \
                                            ConstMatrixViewT<T>, MatrixViewT<T>) noexcept;
BACKPROP_INSTANTIATE(float)
BACKPROP_INSTANTIATE(double)
#undef BACKPROP_INSTANTIATE

}  // namespace backprop::kernels
