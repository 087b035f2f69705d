#include "backprop/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "backprop/rng.hpp"
#include "kernels/kernels.hpp"

namespace backprop {

namespace {

constexpr Index kMaxWidth = Index{1} << 24;
constexpr Index kArenaAlign = 16;  // elements: every tensor starts on a 64-byte boundary (float)

Index round_up(Index n, Index to) {
  return (n + to - 1) / to * to;
}

}  // namespace

void ModelSpec::validate() const {
  if (layers.size() < 2) {
    throw Error(ErrorCode::kUsage,
                "a model needs at least two layer widths (inputs and outputs), got " +
                    std::to_string(layers.size()));
  }
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] < 1 || layers[i] > kMaxWidth) {
      throw Error(ErrorCode::kUsage, "layer width " + std::to_string(i) + " is " +
                                         std::to_string(layers[i]) + ": expected 1 to " +
                                         std::to_string(kMaxWidth));
    }
  }
  if (!is_hidden_activation(hidden)) {
    throw Error(ErrorCode::kUsage, "hidden activation '" + std::string(to_string(hidden)) +
                                       "' is not allowed: expected sigmoid, tanh, relu, "
                                       "leaky-relu or identity");
  }
  if (!is_output_activation(output)) {
    throw Error(ErrorCode::kUsage, "output activation '" + std::string(to_string(output)) +
                                       "' is not allowed: expected sigmoid, softmax or identity");
  }
  if (!is_valid_output_loss(output, loss)) {
    throw Error(ErrorCode::kUsage,
                "cross-entropy needs probabilities: use --output softmax or sigmoid, or "
                "--loss quadratic with an identity output");
  }
  if (!(leaky_slope > 0.0 && leaky_slope < 1.0)) {
    throw Error(ErrorCode::kUsage,
                "leaky ReLU slope " + std::to_string(leaky_slope) + " is outside (0, 1)");
  }
  // The parameter count must fit comfortably: checked here, once, for every model we build.
  double total = 0;
  for (std::size_t l = 0; l + 1 < layers.size(); ++l) {
    total += static_cast<double>(layers[l] + 1) * static_cast<double>(layers[l + 1]);
  }
  if (total > static_cast<double>(Index{1} << 34)) {
    throw Error(ErrorCode::kUsage, "model has " + std::to_string(total) +
                                       " parameters: more than 2^34 is not supported");
  }
}

Index ModelSpec::n_params() const {
  Index total = 0;
  for (std::size_t l = 0; l + 1 < layers.size(); ++l) total += (layers[l] + 1) * layers[l + 1];
  return total;
}

std::string_view to_string(Init init) {
  switch (init) {
    case Init::kXavier:
      return "xavier";
    case Init::kHe:
      return "he";
    case Init::kLecun:
      return "lecun";
  }
  return "?";
}

Init parse_init(std::string_view name) {
  for (Init i : {Init::kXavier, Init::kHe, Init::kLecun}) {
    if (name == to_string(i)) return i;
  }
  throw Error(ErrorCode::kUsage,
              "unknown init '" + std::string(name) + "': expected xavier, he or lecun");
}

Init default_init(Activation hidden) {
  return hidden == Activation::kRelu || hidden == Activation::kLeakyRelu ? Init::kHe
                                                                         : Init::kXavier;
}

template <class T>
BasicModel<T>::BasicModel(ModelSpec spec) : spec_(std::move(spec)) {
  spec_.validate();
  Index offset = 0;
  for (Index l = 0; l < spec_.n_layers(); ++l) {
    auto u = static_cast<std::size_t>(l);
    w_offset_.push_back(offset);
    offset = round_up(offset + spec_.layers[u + 1] * spec_.layers[u], kArenaAlign);
    b_offset_.push_back(offset);
    offset = round_up(offset + spec_.layers[u + 1], kArenaAlign);
  }
  params_.resize(1, offset);
  grads_.resize(1, offset);
}

template <class T>
void BasicModel<T>::init(Init init, std::uint64_t seed) {
  Rng rng = Rng::stream(seed, "init");
  for (Index l = 0; l < n_layers(); ++l) {
    MatrixViewT<T> w = weight(l);
    auto fan_in = static_cast<double>(w.cols), fan_out = static_cast<double>(w.rows);
    for (Index i = 0; i < w.rows; ++i) {
      for (Index j = 0; j < w.cols; ++j) {
        double v = 0;
        switch (init) {
          case Init::kXavier: {
            double limit = std::sqrt(6.0 / (fan_in + fan_out));
            v = (2.0 * rng.uniform() - 1.0) * limit;
            break;
          }
          case Init::kHe:
            v = rng.normal() * std::sqrt(2.0 / fan_in);
            break;
          case Init::kLecun:
            v = rng.normal() * std::sqrt(1.0 / fan_in);
            break;
        }
        w(i, j) = static_cast<T>(v);
      }
    }
    for (T& b : bias(l)) b = T(0);
  }
}

template <class T>
void BasicModel<T>::ensure_workspace(Index batch) {
  if (batch <= capacity_ && !acts_.empty()) return;
  Index widest = *std::max_element(spec_.layers.begin(), spec_.layers.end());
  acts_.resize(static_cast<std::size_t>(n_layers()));
  for (Index l = 0; l < n_layers(); ++l) {
    acts_[static_cast<std::size_t>(l)].resize(batch, spec_.layers[static_cast<std::size_t>(l) + 1]);
  }
  z_out_.resize(batch, n_outputs());
  delta_[0].resize(batch, widest);
  delta_[1].resize(batch, widest);
  capacity_ = batch;
}

template <class T>
ConstMatrixViewT<T> BasicModel<T>::forward(ConstMatrixViewT<T> x, const Dropout* dropout) {
  if (x.rows < 1 || x.cols != n_inputs()) {
    throw Error(ErrorCode::kUsage, "forward: input is " + std::to_string(x.rows) + "x" +
                                       std::to_string(x.cols) + ", expected B x " +
                                       std::to_string(n_inputs()) + " with B >= 1");
  }
  const Index hidden_layers = n_layers() - 1;
  if (dropout != nullptr) {
    if (static_cast<Index>(dropout->rates.size()) != hidden_layers || dropout->rng == nullptr) {
      throw Error(ErrorCode::kUsage, "dropout: " + std::to_string(dropout->rates.size()) +
                                         " rates for " + std::to_string(hidden_layers) +
                                         " hidden layers");
    }
    for (double p : dropout->rates) {
      if (!(p >= 0 && p < 1)) {
        throw Error(ErrorCode::kUsage, "dropout rate " + std::to_string(p) + ": expected [0, 1)");
      }
    }
  }
  ensure_workspace(x.rows);
  batch_ = x.rows;
  dropped_.assign(static_cast<std::size_t>(std::max<Index>(hidden_layers, 0)), 0);
  ConstMatrixViewT<T> in = x;
  const T slope = static_cast<T>(spec_.leaky_slope);
  for (Index l = 0; l < n_layers(); ++l) {
    auto u = static_cast<std::size_t>(l);
    MatrixViewT<T> a = acts_[u].view().rows_range(0, batch_);
    // Hidden layers compute z into a's storage and activate in place; the output layer keeps
    // Z[L] for the loss, which cross-entropy evaluates from the logits.
    MatrixViewT<T> z = l + 1 == n_layers() ? z_out_.view().rows_range(0, batch_) : a;
    dense_forward<T>(in, layer_params(l), activation(l), slope, z, a);
    const double p = dropout != nullptr && l < hidden_layers ? dropout->rates[u] : 0.0;
    if (p > 0) {
      // Keep a (g' is taken from it), draw the mask, and pass a ∘ mask on.
      if (pre_dropout_.size() != acts_.size()) {
        pre_dropout_.resize(acts_.size());
        masks_.resize(acts_.size());
      }
      pre_dropout_[u].resize(batch_, a.cols);
      masks_[u].resize(batch_, a.cols);
      copy<T>(a, pre_dropout_[u].view());
      const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
      const Index total = dropout->total_rows > 0 ? dropout->total_rows : batch_;
      const Index first = dropout->total_rows > 0 ? dropout->row_offset : 0;
      BACKPROP_ASSERT(first >= 0 && first + batch_ <= total);
      for (Index r = 0; r < total; ++r) {
        if (r < first || r >= first + batch_) {  // another rank's row: draw, and pass over
          for (Index j = 0; j < a.cols; ++j) (void)dropout->rng->uniform();
          continue;
        }
        T* ai = a.row(r - first);
        T* mi = masks_[u].view().row(r - first);
        for (Index j = 0; j < a.cols; ++j) {
          mi[j] = dropout->rng->uniform() < p ? T(0) : keep_scale;
          ai[j] *= mi[j];
        }
      }
      dropped_[u] = 1;
    }
    in = a;
  }
  return in;
}

template <class T>
double BasicModel<T>::loss(ConstMatrixViewT<T> y) const {
  BACKPROP_ASSERT(batch_ > 0);
  if (y.rows != batch_ || y.cols != n_outputs()) {
    throw Error(ErrorCode::kUsage, "loss: targets are " + std::to_string(y.rows) + "x" +
                                       std::to_string(y.cols) + ", expected " +
                                       std::to_string(batch_) + "x" + std::to_string(n_outputs()));
  }
  ConstMatrixViewT<T> a = acts_.back().view().rows_range(0, batch_);
  return loss_forward<T>(spec_.output, spec_.loss, logits(), a, y);
}

template <class T>
void BasicModel<T>::check_backward_shapes(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y) const {
  BACKPROP_ASSERT(batch_ > 0);
  if (x.rows != batch_ || x.cols != n_inputs() || y.rows != batch_ || y.cols != n_outputs()) {
    throw Error(ErrorCode::kUsage, "backward: inputs " + std::to_string(x.rows) + "x" +
                                       std::to_string(x.cols) + " and targets " +
                                       std::to_string(y.rows) + "x" + std::to_string(y.cols) +
                                       " do not match the last forward pass (" +
                                       std::to_string(batch_) + " examples)");
  }
}

template <class T>
MatrixViewT<T> BasicModel<T>::delta(int which, Index cols) {
  return MatrixViewT<T>(delta_[which].data(), batch_, cols);
}

template <class T>
MatrixViewT<T> BasicModel<T>::output_delta(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y,
                                           Index average_over) {
  check_backward_shapes(x, y);
  // D4: Δ[L] from the loss, into the first ping-pong buffer.
  MatrixViewT<T> dz = delta(0, n_outputs());
  loss_backward<T>(spec_.output, spec_.loss, acts_.back().view().rows_range(0, batch_), y, dz,
                   average_over);
  return dz;
}

template <class T>
ConstMatrixViewT<T> BasicModel<T>::layer_input(ConstMatrixViewT<T> x, Index l) const {
  return l == 0 ? x : acts_[static_cast<std::size_t>(l) - 1].view().rows_range(0, batch_);
}

template <class T>
ConstMatrixViewT<T> BasicModel<T>::input_for_derivative(Index l) const {
  auto u = static_cast<std::size_t>(l) - 1;
  if (u < dropped_.size() && dropped_[u]) return pre_dropout_[u].view().rows_range(0, batch_);
  return acts_[u].view().rows_range(0, batch_);
}

template <class T>
ConstMatrixViewT<T> BasicModel<T>::input_mask(Index l) const {
  auto u = static_cast<std::size_t>(l) - 1;
  if (u < dropped_.size() && dropped_[u]) return masks_[u].view().rows_range(0, batch_);
  return {};
}

template <class T>
void BasicModel<T>::backward(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y, Index average_over,
                             const std::function<void(Index)>* layer_done) {
  const T slope = static_cast<T>(spec_.leaky_slope);
  MatrixViewT<T> dz = output_delta(x, y, average_over);
  int cur = 0;
  for (Index l = n_layers() - 1; l >= 0; --l) {
    auto u = static_cast<std::size_t>(l);
    ConstMatrixViewT<T> in = layer_input(x, l);
    MatrixViewT<T> dz_prev = l == 0 ? MatrixViewT<T>() : delta(1 - cur, spec_.layers[u]);
    DenseGradsT<T> g{weight_grad(l), bias_grad(l).data()};
    // D6, D7, and D5: Δ[l-1] = (Δ[l]·W[l]) ∘ g'(Z[l-1]) (∘ the dropout mask), g' from the cached
    // A[l-1] before the mask.
    dense_backward<T>(in, layer_params(l), dz, g, spec_.hidden, slope, dz_prev,
                      /*accumulate=*/false, l > 0 ? input_for_derivative(l) : in,
                      l > 0 ? input_mask(l) : ConstMatrixViewT<T>());
    if (layer_done != nullptr) (*layer_done)(l);
    dz = dz_prev;
    cur = 1 - cur;
  }
}

template <class T>
void BasicModel<T>::backward_sgd(ConstMatrixViewT<T> x, ConstMatrixViewT<T> y, double lr) {
  const T slope = static_cast<T>(spec_.leaky_slope);
  const T minus_lr = static_cast<T>(-lr);
  MatrixViewT<T> dz = output_delta(x, y, 0);
  int cur = 0;
  for (Index l = n_layers() - 1; l >= 0; --l) {
    auto u = static_cast<std::size_t>(l);
    ConstMatrixViewT<T> in = layer_input(x, l);
    // D5 first: the layer below needs this layer's weights before the update.
    MatrixViewT<T> dz_prev = l == 0 ? MatrixViewT<T>() : delta(1 - cur, spec_.layers[u]);
    if (l > 0) {
      kernels::gemm_backward_data<T>(dz, weight(l), spec_.hidden, slope, input_for_derivative(l),
                                     dz_prev, input_mask(l));
    }
    // D6 + D8: W ← W − η·Δᵀ·A, from the accumulators.
    kernels::gemm_update_weights<T>(dz, in, weight(l), minus_lr);
    // D7 + D8: the bias gradient (column sums in row order, as dense_backward), then the step.
    std::span<T> db = bias_grad(l);
    kernels::column_sums<T>(dz, db.data(), /*accumulate=*/false);
    kernels::axpy<T>(minus_lr, db, bias(l));
    dz = dz_prev;
    cur = 1 - cur;
  }
}

template class BasicModel<float>;
template class BasicModel<double>;

namespace {
template <class To, class From>
BasicModel<To> convert(const BasicModel<From>& m) {
  BasicModel<To> out(m.spec());
  auto src = m.params();
  auto dst = out.params();
  for (std::size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<To>(src[i]);
  return out;
}
}  // namespace

ModelD to_double(const Model& m) {
  return convert<double>(m);
}
Model to_float(const ModelD& m) {
  return convert<float>(m);
}

}  // namespace backprop
