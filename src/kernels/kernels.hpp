// The kernel interface: the only matrix products the layers call. Shapes (row-major views):
// B = batch, I = layer inputs, O = layer outputs.
//   forward          z  = x·wᵀ + b    x: B×I   w: O×I   b: O   z: B×O    (D1, overwrite)
//   backward data    dx = dz·w        dz: B×O  w: O×I          dx: B×I   (D5, overwrite)
//   backward weights dw += dzᵀ·x      dz: B×O  x: B×I          dw: O×I   (D6, accumulate)
// All three run on one strided GEMM (BLIS's decomposition: packing, cache blocks, a register-tiled
// micro-kernel), so no transpose is ever materialised. Every element of the result is accumulated
// by one thread in a fixed k-order that depends only on the problem shape, so the result is
// bitwise identical for any thread count. docs/gemm.md draws the loops and the packed layouts.
#pragma once

#include "backprop/matrix.hpp"

namespace backprop::kernels {

// A read-only matrix operand with arbitrary strides: element (i, j) is p[i * rs + j * cs].
template <class T>
struct Operand {
  const T* p;
  Index rs, cs;
};

// C[m×n] = A[m×k]·B[k×n] (accumulate: C += ...), then, if bias != nullptr, C[i][j] += bias[j].
// c is row-major with leading dimension ldc. k == 0 leaves C as it was (plus the bias).
template <class T>
void gemm(Index m, Index n, Index k, Operand<T> a, Operand<T> b, T* c, Index ldc, bool accumulate,
          const T* bias) noexcept;

template <class T>
void gemm_forward(ConstMatrixViewT<T> x, ConstMatrixViewT<T> w, const T* b,
                  MatrixViewT<T> z) noexcept;
template <class T>
void gemm_backward_data(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> w, MatrixViewT<T> dx) noexcept;
template <class T>
void gemm_backward_weights(ConstMatrixViewT<T> dz, ConstMatrixViewT<T> x,
                           MatrixViewT<T> dw) noexcept;

}  // namespace backprop::kernels
