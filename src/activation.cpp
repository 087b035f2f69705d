#include "backprop/activation.hpp"

#include "kernels/kernels.hpp"

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

template <class T>
void activation_forward(Activation f, ConstMatrixViewT<T> z, MatrixViewT<T> a, T slope) noexcept {
  kernels::activation_forward_rows<T>(f, slope, z, a);
}

template <class T>
void activation_backward(Activation f, ConstMatrixViewT<T> a, ConstMatrixViewT<T> da,
                         MatrixViewT<T> dz, T slope) noexcept {
  kernels::activation_backward_rows<T>(f, slope, a, da, dz);
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
