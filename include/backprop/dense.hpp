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
// Writes z and a (B×O). When a is the same storage as z (z not needed afterwards), g is applied
// to each tile inside the matrix product; otherwise z is written and a computed from it.
template <class T>
void dense_forward(ConstMatrixViewT<T> x, DenseParamsT<T> p, Activation g, T slope,
                   MatrixViewT<T> z, MatrixViewT<T> a) noexcept;

// Given dz = ∂L/∂z (B×O), for a layer whose input x = g_x(z_x) is the previous layer's output:
//   D6: dw (+)= dzᵀ·x   D7: db (+)= Σ_rows dz   D5: dz_x = (dz·w) ∘ g_x'(z_x)  (B×I, overwritten)
// g_x' is taken from x itself and applied inside the matrix product. With accumulate the
// gradients are added to g (several batches into one step), otherwise they overwrite it. An
// empty dz_x skips D5: the first layer needs no gradient for its input. If x went through
// dropout (x = a ∘ mask), pass a as x_act and the mask: g_x' is then taken from a and dz_x is
// multiplied by the mask.
template <class T>
void dense_backward(ConstMatrixViewT<T> x, DenseParamsT<T> p, ConstMatrixViewT<T> dz,
                    DenseGradsT<T> g, Activation g_x, T slope, MatrixViewT<T> dz_x,
                    bool accumulate = true, ConstMatrixViewT<T> x_act = {},
                    ConstMatrixViewT<T> x_mask = {}) noexcept;

}  // namespace backprop
