// Activations, elementwise (softmax: per row). Forward maps z to a = g(z); backward multiplies an
// incoming gradient by g'(z), computed from the cached output a, so hidden layers keep only a.
// Shapes: B = batch, O = units; z, a, da, dz: B×O.
#pragma once

#include <string>
#include <string_view>

#include "backprop/matrix.hpp"

namespace backprop {

enum class Activation { kSigmoid, kTanh, kRelu, kLeakyRelu, kIdentity, kSoftmax };

// Flag spellings: "sigmoid", "tanh", "relu", "leaky-relu", "identity", "softmax".
std::string_view to_string(Activation f);
// Throws Error(kUsage) naming the accepted spellings.
Activation parse_activation(std::string_view name);
// Hidden layers may use every activation but softmax; outputs: sigmoid, softmax, identity.
bool is_hidden_activation(Activation f);
bool is_output_activation(Activation f);

// D2: a = g(z), in place (a may alias z). `slope` is leaky ReLU's negative-side slope.
// float runs on the active kernel table (vectorised exp, sigmoid and tanh, whose maximum errors
// docs/gemm.md lists); double on std:: functions. Sigmoid is evaluated so that exp never
// overflows; softmax subtracts the row maximum.
template <class T>
void activation_forward(Activation f, ConstMatrixViewT<T> z, MatrixViewT<T> a, T slope) noexcept;

// D5 (the ∘ g'(z) half): dz = da ∘ g'(z), with g' taken from the output a:
// sigmoid a(1-a), tanh 1-a², ReLU [a>0], leaky ReLU [a>0] + slope·[a<=0], identity 1.
// In place (dz may alias da). Not defined for softmax, whose Jacobian is not diagonal: the loss
// handles a softmax output (loss_backward).
template <class T>
void activation_backward(Activation f, ConstMatrixViewT<T> a, ConstMatrixViewT<T> da,
                         MatrixViewT<T> dz, T slope) noexcept;

}  // namespace backprop
