// Losses of the output layer, averaged over the batch, and their gradient with respect to the
// output layer's pre-activation, Δ[L] = ∂L/∂Z[L] (D3, D4). The pair (output activation, loss)
// decides the formula; docs/derivation.md derives each one.
// Shapes: B = batch, K = outputs; z, a, y, dz: B×K.
#pragma once

#include <string_view>

#include "backprop/activation.hpp"
#include "backprop/matrix.hpp"

namespace backprop {

enum class Loss { kQuadratic, kCrossEntropy };

// Flag spellings: "quadratic", "cross-entropy".
std::string_view to_string(Loss l);
Loss parse_loss(std::string_view name);  // throws Error(kUsage)

// Whether the pair is defined: cross-entropy needs probabilities (a sigmoid or softmax output).
bool is_valid_output_loss(Activation output, Loss loss);

// D3: L = (1/B) Σ_i ℓ(z_i, y_i), where per example
//   quadratic:               ℓ = ½ Σ_k (a_k − y_k)²
//   softmax + cross-entropy: ℓ = Σ_k y_k (logsumexp(z) − z_k)           (= −Σ y log softmax(z))
//   sigmoid + cross-entropy: ℓ = Σ_k max(z_k,0) − z_k y_k + log(1+e^−|z_k|)  (binary CE)
// Cross-entropy is computed from the logits z, so logits of ±1000 give finite losses.
// Accumulated in double in a fixed order.
template <class T>
double loss_forward(Activation output, Loss loss, ConstMatrixViewT<T> z, ConstMatrixViewT<T> a,
                    ConstMatrixViewT<T> y) noexcept;

// D4: dz = ∂L/∂Z[L], including the 1/B of the batch average:
//   sigmoid  + quadratic:     (a − y) ∘ a(1 − a) / B                               (D4a)
//   softmax  + quadratic:     a_j [(a_j − y_j) − Σ_k (a_k − y_k) a_k] / B          (D4b)
//   identity + quadratic:     (a − y) / B                                          (D4c)
//   softmax  + cross-entropy: (a (Σ_k y_k) − y) / B   (= (a − y)/B for one-hot y)  (D4d)
//   sigmoid  + cross-entropy: (a − y) / B                                          (D4e)
// average_over: the B of the divisions (0: y.rows). Data-parallel training differentiates the
// average over the whole global batch from a slice of its rows.
template <class T>
void loss_backward(Activation output, Loss loss, ConstMatrixViewT<T> a, ConstMatrixViewT<T> y,
                   MatrixViewT<T> dz, Index average_over = 0) noexcept;

}  // namespace backprop
