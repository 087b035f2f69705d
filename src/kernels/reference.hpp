// Plain-loop activations for any floating type: the double path (gradcheck's reference) and the
// portable GEMM's epilogue. std:: math throughout.
#pragma once

#include <algorithm>
#include <cmath>

#include "backprop/activation.hpp"
#include "backprop/matrix.hpp"

namespace backprop::kernels::reference {

template <class T>
T sigmoid(T z) {
  // exp of a non-positive number only: no overflow for z = ±1000.
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  T e = std::exp(z);
  return e / (T(1) + e);
}

// g(z) for every activation but softmax.
template <class T>
T act(Activation g, T z, T slope) {
  switch (g) {
    case Activation::kSigmoid:
      return sigmoid(z);
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kRelu:
      return z > T(0) ? z : T(0);
    case Activation::kLeakyRelu:
      return z > T(0) ? z : slope * z;
    default:
      return z;
  }
}

// g'(z) from a = g(z), for every activation but softmax.
template <class T>
T deriv(Activation g, T a, T slope) {
  switch (g) {
    case Activation::kSigmoid:
      return a * (T(1) - a);
    case Activation::kTanh:
      return T(1) - a * a;
    case Activation::kRelu:
      return a > T(0) ? T(1) : T(0);
    case Activation::kLeakyRelu:
      return a > T(0) ? T(1) : slope;  // a > 0 exactly when z > 0
    default:
      return T(1);
  }
}

template <class T>
void softmax_row(const T* z, T* a, Index n) {
  // Subtract the row maximum so exp never overflows; the largest term is exp(0) = 1, so the sum
  // is at least 1 and the division is safe.
  T m = z[0];
  for (Index j = 1; j < n; ++j) m = std::max(m, z[j]);
  T sum = 0;
  for (Index j = 0; j < n; ++j) {
    a[j] = std::exp(z[j] - m);
    sum += a[j];
  }
  T inv = T(1) / sum;
  for (Index j = 0; j < n; ++j) a[j] *= inv;
}

}  // namespace backprop::kernels::reference
