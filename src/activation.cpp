#include "backprop/activation.hpp"

#include <algorithm>
#include <cmath>

namespace backprop {

std::string_view to_string(Activation f) {
  switch (f) {
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
    case Activation::kRelu:
      return "relu";
    case Activation::kLeakyRelu:
      return "leaky-relu";
    case Activation::kIdentity:
      return "identity";
    case Activation::kSoftmax:
      return "softmax";
  }
  return "?";
}

Activation parse_activation(std::string_view name) {
  for (Activation f : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity, Activation::kSoftmax}) {
    if (name == to_string(f)) return f;
  }
  throw Error(ErrorCode::kUsage,
              "unknown activation '" + std::string(name) +
                  "': expected sigmoid, tanh, relu, leaky-relu, identity or softmax");
}

bool is_hidden_activation(Activation f) {
  return f != Activation::kSoftmax;
}

bool is_output_activation(Activation f) {
  return f == Activation::kSigmoid || f == Activation::kSoftmax || f == Activation::kIdentity;
}

namespace {

template <class T>
T sigmoid(T z) {
  // exp of a non-positive number only: no overflow for z = ±1000.
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  T e = std::exp(z);
  return e / (T(1) + e);
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

}  // namespace

template <class T>
void activation_forward(Activation f, ConstMatrixViewT<T> z, MatrixViewT<T> a, T slope) noexcept {
  BACKPROP_DASSERT(z.rows == a.rows && z.cols == a.cols);
  for (Index i = 0; i < z.rows; ++i) {
    const T* zi = z.row(i);
    T* ai = a.row(i);
    switch (f) {
      case Activation::kSigmoid:
        for (Index j = 0; j < z.cols; ++j) ai[j] = sigmoid(zi[j]);
        break;
      case Activation::kTanh:
        for (Index j = 0; j < z.cols; ++j) ai[j] = std::tanh(zi[j]);
        break;
      case Activation::kRelu:
        for (Index j = 0; j < z.cols; ++j) ai[j] = zi[j] > T(0) ? zi[j] : T(0);
        break;
      case Activation::kLeakyRelu:
        for (Index j = 0; j < z.cols; ++j) ai[j] = zi[j] > T(0) ? zi[j] : slope * zi[j];
        break;
      case Activation::kIdentity:
        if (ai != zi) std::copy(zi, zi + z.cols, ai);
        break;
      case Activation::kSoftmax:
        softmax_row(zi, ai, z.cols);
        break;
    }
  }
}

template <class T>
void activation_backward(Activation f, ConstMatrixViewT<T> a, ConstMatrixViewT<T> da,
                         MatrixViewT<T> dz, T slope) noexcept {
  BACKPROP_DASSERT(f != Activation::kSoftmax);
  BACKPROP_DASSERT(a.rows == da.rows && a.cols == da.cols && dz.rows == a.rows &&
                   dz.cols == a.cols);
  for (Index i = 0; i < a.rows; ++i) {
    const T* ai = a.row(i);
    const T* gi = da.row(i);
    T* di = dz.row(i);
    switch (f) {
      case Activation::kSigmoid:
        for (Index j = 0; j < a.cols; ++j) di[j] = gi[j] * (ai[j] * (T(1) - ai[j]));
        break;
      case Activation::kTanh:
        for (Index j = 0; j < a.cols; ++j) di[j] = gi[j] * (T(1) - ai[j] * ai[j]);
        break;
      case Activation::kRelu:
        for (Index j = 0; j < a.cols; ++j) di[j] = ai[j] > T(0) ? gi[j] : T(0);
        break;
      case Activation::kLeakyRelu:
        // a > 0 exactly when z > 0 (slope > 0), so the output tells the side of the kink.
        for (Index j = 0; j < a.cols; ++j) di[j] = ai[j] > T(0) ? gi[j] : slope * gi[j];
        break;
      case Activation::kIdentity:
      case Activation::kSoftmax:
        if (di != gi) std::copy(gi, gi + a.cols, di);
        break;
    }
  }
}

template void activation_forward<float>(Activation, ConstMatrixView, MatrixView, float) noexcept;
template void activation_forward<double>(Activation, ConstMatrixViewT<double>, MatrixViewT<double>,
                                         double) noexcept;
template void activation_backward<float>(Activation, ConstMatrixView, ConstMatrixView, MatrixView,
                                         float) noexcept;
template void activation_backward<double>(Activation, ConstMatrixViewT<double>,
                                          ConstMatrixViewT<double>, MatrixViewT<double>,
                                          double) noexcept;

}  // namespace backprop
