// A fully connected layer over a batch, forward and backward (equations D1, D2, D5–D7 of
// docs/derivation.md).
// Shapes (row-major): B = batch, I = inputs, O = outputs.
//   x: B×I   w: O×I (PyTorch's layout: w[j][i] is the derivation's w_ij)   b: O   z, a: B×O
#pragma once

#include "backprop/activation.hpp"
#include "backprop/matrix.hpp"

namespace backprop {

template <class T>
struct DenseParamsT {
  ConstMatrixViewT<T> w;  // O×I
  const T* b;             // O
};

template <class T>
struct DenseGradsT {
  MatrixViewT<T> dw;  // O×I
  T* db;              // O
};

// D1: z = x·wᵀ + b (one matrix product for the whole batch); D2: a = g(z).
// Writes z and a (B×O); a may be the same storage as z when z is not needed afterwards.
template <class T>
void dense_forward(ConstMatrixViewT<T> x, DenseParamsT<T> p, Activation g, T slope,
                   MatrixViewT<T> z, MatrixViewT<T> a) noexcept;

// Given dz = ∂L/∂z (B×O):
//   D6: dw += dzᵀ·x     D7: db += Σ_rows dz     D5 (first half): dx = dz·w   (B×I, overwritten)
// Accumulates into g (the caller zeroes it once per step). An empty dx skips D5: the first
// layer needs no gradient for its input.
template <class T>
void dense_backward(ConstMatrixViewT<T> x, DenseParamsT<T> p, ConstMatrixViewT<T> dz,
                    DenseGradsT<T> g, MatrixViewT<T> dx) noexcept;

}  // namespace backprop
