// A multilayer perceptron: a stack of dense layers, forward over a batch and backward in reverse
// order (D1–D7). Parameters live in one flat, 64-byte-aligned arena (layer by layer: weight O×I
// row-major, then bias O), and gradients in a second arena of the same layout, so an optimizer
// sees two spans and nothing of the shape. Written for float (training) and double (gradcheck's
// reference). The model owns a workspace sized for the largest batch seen; it allocates only when
// a batch is larger than any before.
//
//   Model m({.layers = {2, 4, 1}, .hidden = Activation::kTanh, .output = Activation::kSigmoid,
//            .loss = Loss::kQuadratic});
//   m.init(Init::kXavier, /*seed=*/1);
//   ConstMatrixView out = m.forward(x);   // B×1
//   double l = m.loss(y);                 // after forward
//   m.backward(x, y);                     // grads() now holds ∂L/∂θ
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "backprop/activation.hpp"
#include "backprop/dense.hpp"
#include "backprop/loss.hpp"
#include "backprop/matrix.hpp"
#include "backprop/rng.hpp"

namespace backprop {

struct ModelSpec {
  std::vector<Index> layers;  // widths: inputs, hidden..., outputs (at least two entries)
  Activation hidden = Activation::kSigmoid;
  Activation output = Activation::kSoftmax;
  Loss loss = Loss::kCrossEntropy;
  double leaky_slope = 0.01;  // leaky ReLU's slope for z < 0, in (0, 1)

  // Throws Error(kUsage) naming the problem: fewer than two widths, a width < 1 or over 2^24,
  // an activation not allowed where it is, cross-entropy without probabilities, a bad slope.
  void validate() const;
  Index n_layers() const { return static_cast<Index>(layers.size()) - 1; }
  // Weights and biases, without the arena's alignment padding.
  Index n_params() const;
  bool operator==(const ModelSpec&) const = default;
};

// Weight initialisation (biases start at zero):
//   xavier  Glorot uniform, U(±√(6/(I+O)))   for sigmoid and tanh
//   he      N(0, 2/I)                        for ReLU and leaky ReLU
//   lecun   N(0, 1/I), the derivation's
enum class Init { kXavier, kHe, kLecun };
std::string_view to_string(Init init);
Init parse_init(std::string_view name);  // throws Error(kUsage)
Init default_init(Activation hidden);    // he for the ReLU family, else xavier

template <class T>
class BasicModel {
 public:
  BasicModel() = default;
  // Parameters zero; call init() or write them.
  explicit BasicModel(ModelSpec spec);

  const ModelSpec& spec() const { return spec_; }
  Index n_layers() const { return spec_.n_layers(); }
  Index n_inputs() const { return spec_.layers.front(); }
  Index n_outputs() const { return spec_.layers.back(); }
  Activation activation(Index l) const { return l + 1 == n_layers() ? spec_.output : spec_.hidden; }

  // Every weight drawn from the named scheme with Rng::stream(seed, "init"), layer by layer.
  void init(Init init, std::uint64_t seed);

  // The arenas (alignment padding included; it stays zero).
  std::span<T> params() { return {params_.data(), static_cast<std::size_t>(params_.size())}; }
  std::span<const T> params() const {
    return {params_.data(), static_cast<std::size_t>(params_.size())};
  }
  std::span<T> grads() { return {grads_.data(), static_cast<std::size_t>(grads_.size())}; }
  std::span<const T> grads() const {
    return {grads_.data(), static_cast<std::size_t>(grads_.size())};
  }
  // Layer l (0-based): weight O×I, bias O, and their gradients.
  MatrixViewT<T> weight(Index l) { return view_of(params_.data(), l); }
  ConstMatrixViewT<T> weight(Index l) const { return view_of(params_.data(), l); }
  std::span<T> bias(Index l) { return bias_of(params_.data(), l); }
  std::span<const T> bias(Index l) const { return bias_of(params_.data(), l); }
  MatrixViewT<T> weight_grad(Index l) { return view_of(grads_.data(), l); }
  std::span<T> bias_grad(Index l) { return bias_of(grads_.data(), l); }
  // Layer l's stretch of the gradient arena: its weights, then its bias, padding included.
  std::span<T> layer_grads(Index l) {
    const auto u = static_cast<std::size_t>(l);
    const Index end = u + 1 < w_offset_.size() ? w_offset_[u + 1] : grads_.size();
    return {grads_.data() + w_offset_[u], static_cast<std::size_t>(end - w_offset_[u])};
  }
  std::span<const T> bias_grad(Index l) const { return bias_of(grads_.data(), l); }
  ConstMatrixViewT<T> weight_grad(Index l) const { return view_of(grads_.data(), l); }

  // Inverted dropout for a training pass: hidden layer l's output is multiplied by a mask of 0
  // (with probability rates[l]) or 1/(1 − rates[l]), drawn from rng row by row; backward() uses
  // the same masks. One rate per hidden layer, each in [0, 1); 0 leaves a layer alone.
  struct Dropout {
    std::span<const double> rates;
    Rng* rng = nullptr;
    // Data parallelism: this batch is rows [row_offset, row_offset + B) of a global batch of
    // total_rows rows. The masks of all total_rows rows are drawn (in the order one process
    // would draw them) and this batch's rows used, so a row's mask does not depend on how the
    // batch is split. total_rows = 0: the batch is the whole batch.
    Index row_offset = 0, total_rows = 0;
  };

  // D1–D2 for every layer: the output A[L] (B×n_outputs), valid until the next forward().
  // With dropout (training only) the hidden outputs are masked as above. Throws Error(kUsage) if
  // x is not B×n_inputs with B >= 1, or the dropout rates do not fit the hidden layers.
  ConstMatrixViewT<T> forward(ConstMatrixViewT<T> x, const Dropout* dropout = nullptr);
  // After forward(x): the batch-averaged loss against y (B×n_outputs) (D3).
  double loss(ConstMatrixViewT<T> y) const;
  // After forward(x) with the same x: grads() = ∂L/∂θ for this batch (overwritten; D4–D7).
  // average_over > 0: the gradient of the loss summed over these rows divided by average_over
  // (a slice of a larger batch, for data parallelism) rather than their average. layer_done, if
  // given, is called with l as soon as layer l's gradients are final (top layer first), so that
  // data parallelism can start summing them while the layers below are differentiated.
  void backward(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y, Index average_over = 0,
                const std::function<void(Index)>* layer_done = nullptr);
  // After forward(x) with the same x: backward and plain SGD in one pass (D4–D8), each layer's
  // W ← W − η·∂L/∂W applied straight from the weight-gradient product (its dz·w for the layer
  // below taken first, with the old W), so ∂L/∂W is never stored. grads() holds only the bias
  // gradients afterwards. For batches of at most 256 the parameters are bitwise those of
  // backward() followed by Sgd::step.
  void backward_sgd(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y, double lr);
  // Hidden layer l's output A[l+1] of the last forward (after any dropout), B×width.
  ConstMatrixViewT<T> hidden_output(Index l) const {
    BACKPROP_ASSERT(l >= 0 && l + 1 < n_layers());
    return acts_[static_cast<std::size_t>(l)].view().rows_range(0, batch_);
  }
  // Output pre-activations Z[L] of the last forward (B×n_outputs).
  ConstMatrixViewT<T> logits() const { return z_out_.view().rows_range(0, batch_); }

 private:
  template <class P>  // P = T or const T
  MatrixViewT<P> view_of(P* base, Index l) const {
    auto u = static_cast<std::size_t>(l);
    return MatrixViewT<P>(base + w_offset_[u], spec_.layers[u + 1], spec_.layers[u]);
  }
  template <class P>
  std::span<P> bias_of(P* base, Index l) const {
    auto u = static_cast<std::size_t>(l);
    return {base + b_offset_[u], static_cast<std::size_t>(spec_.layers[u + 1])};
  }
  void ensure_workspace(Index batch);
  void check_backward_shapes(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y) const;
  // Ping-pong buffer `which` (0 or 1) viewed as batch × cols.
  MatrixViewT<T> delta(int which, Index cols);
  // Checks the shapes, then Δ[L] from the loss (D4) into delta(0).
  MatrixViewT<T> output_delta(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y, Index average_over);
  // A[l-1] of the last forward (x for the first layer), after any dropout.
  ConstMatrixViewT<T> layer_input(ConstMatrixViewT<T> x, Index l) const;
  // For layer l > 0: the activations g' is taken from (before any dropout) and the mask (empty
  // without dropout) of its input.
  ConstMatrixViewT<T> input_for_derivative(Index l) const;
  ConstMatrixViewT<T> input_mask(Index l) const;
  DenseParamsT<T> layer_params(Index l) const { return {weight(l), bias(l).data()}; }

  ModelSpec spec_;
  std::vector<Index> w_offset_, b_offset_;
  BasicMatrix<T> params_, grads_;  // 1×arena
  // Workspace: acts_[l] = A[l+1] (rows >= batch), z_out_ = Z[L], delta_[0/1] = ping-pong
  // buffers for Δ and ∂L/∂A, as wide as the widest layer.
  std::vector<BasicMatrix<T>> acts_;
  BasicMatrix<T> z_out_, delta_[2];
  // Dropout of the last forward, per hidden layer: the activations before the mask (g' is taken
  // from them) and the mask; dropped_[l] says whether layer l was masked.
  std::vector<BasicMatrix<T>> pre_dropout_, masks_;
  std::vector<char> dropped_;
  Index capacity_ = 0, batch_ = 0;
};

using Model = BasicModel<float>;
using ModelD = BasicModel<double>;

extern template class BasicModel<float>;
extern template class BasicModel<double>;

// A float model's parameters copied into a double one of the same spec, and back.
ModelD to_double(const Model& m);
Model to_float(const ModelD& m);

}  // namespace backprop
