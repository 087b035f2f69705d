// Optimizers: step(params, grads) over the model's flat arenas; they know nothing of the model's
// shape. Each follows PyTorch's definition of the same name (torch.optim, 1.13), defaults
// included, so a run here and there with the same hyper-parameters takes the same steps:
//
//   sgd       θ ← θ − η(g + λθ)                                          (D8 when λ = 0)
//   momentum  b ← μb + (g + λθ);  θ ← θ − ηb                              (b = 0 at the start)
//   nesterov  b ← μb + (g + λθ);  θ ← θ − η((g + λθ) + μb)
//   adam      g' = g + λθ; m ← β1 m + (1−β1) g'; v ← β2 v + (1−β2) g'²;
//             θ ← θ − (η / (1−β1^t)) · m / (√v / √(1−β2^t) + ε)
//   adamw     θ ← θ(1 − ηλ), then adam with λ = 0 (decoupled decay)
//   rmsprop   g' = g + λθ; s ← αs + (1−α) g'²;  θ ← θ − η g' / (√s + ε)
//   irprop    (iRprop−) per weight: if g·g_prev > 0 the step grows ×1.2 (≤ 50), if < 0 it
//             shrinks ×0.5 (≥ 1e-6) and g is taken as 0; θ ← θ − sign(g)·step; g_prev ← g.
//             η is the initial step. Meant for full-batch training.
//
// λ is --weight-decay (L2, coupled except for adamw), μ --momentum, β1/β2/ε --beta1/--beta2/--eps,
// α rmsprop's smoothing (0.99). Scalars are double, state is float, one rounding per operation
// as PyTorch does on float tensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backprop/model.hpp"

namespace backprop {

// What an optimizer carries from step to step, for checkpoints: named vectors of the parameter
// arena's length (momentum buffers, moments) and named counters.
struct OptimizerState {
  std::map<std::string, std::vector<float>> tensors;
  std::map<std::string, std::int64_t> counters;
  bool operator==(const OptimizerState&) const = default;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of params from grads (same length: Model::params() and Model::grads()).
  virtual void step(std::span<float> params, std::span<const float> grads) = 0;
  virtual std::string_view name() const = 0;

  // The learning rate if this optimizer is plain SGD (θ ← θ − η·g and nothing else), so the
  // training loop may fuse the step into the backward pass (Model::backward_sgd).
  virtual std::optional<double> plain_sgd_rate() const { return std::nullopt; }

  // The state a checkpoint stores, and its restoration. set_state throws Error(kData) naming the
  // entry when a vector's length does not match `arena_size` or an entry is missing or unknown.
  virtual OptimizerState state() const { return {}; }
  virtual void set_state(const OptimizerState& s, std::size_t arena_size);

  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }

 protected:
  explicit Optimizer(double lr);
  double lr_;
};

// D8 (with weight decay λ: θ ← θ − η(g + λθ)).
class Sgd final : public Optimizer {
 public:
  explicit Sgd(double lr, double weight_decay = 0);
  void step(std::span<float> params, std::span<const float> grads) override;
  std::string_view name() const override { return "sgd"; }
  std::optional<double> plain_sgd_rate() const override;

 private:
  double weight_decay_;
};

class Momentum final : public Optimizer {
 public:
  Momentum(double lr, double momentum = 0.9, bool nesterov = false, double weight_decay = 0);
  void step(std::span<float> params, std::span<const float> grads) override;
  std::string_view name() const override { return nesterov_ ? "nesterov" : "momentum"; }
  OptimizerState state() const override;
  void set_state(const OptimizerState& s, std::size_t arena_size) override;

 private:
  double momentum_, weight_decay_;
  bool nesterov_;
  std::vector<float> buf_;
};

// Adam, or AdamW with decoupled = true.
class Adam final : public Optimizer {
 public:
  Adam(double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0, bool decoupled = false);
  void step(std::span<float> params, std::span<const float> grads) override;
  std::string_view name() const override { return decoupled_ ? "adamw" : "adam"; }
  OptimizerState state() const override;
  void set_state(const OptimizerState& s, std::size_t arena_size) override;

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
  std::int64_t t_ = 0;
  std::vector<float> m_, v_;
};

class RmsProp final : public Optimizer {
 public:
  RmsProp(double lr = 1e-2, double alpha = 0.99, double eps = 1e-8, double weight_decay = 0);
  void step(std::span<float> params, std::span<const float> grads) override;
  std::string_view name() const override { return "rmsprop"; }
  OptimizerState state() const override;
  void set_state(const OptimizerState& s, std::size_t arena_size) override;

 private:
  double alpha_, eps_, weight_decay_;
  std::vector<float> sq_;
};

class IRpropMinus final : public Optimizer {
 public:
  // lr: the initial step of every weight.
  explicit IRpropMinus(double lr = 1e-2, double eta_minus = 0.5, double eta_plus = 1.2,
                       double step_min = 1e-6, double step_max = 50);
  void step(std::span<float> params, std::span<const float> grads) override;
  std::string_view name() const override { return "irprop"; }
  OptimizerState state() const override;
  void set_state(const OptimizerState& s, std::size_t arena_size) override;

 private:
  double eta_minus_, eta_plus_, step_min_, step_max_;
  std::vector<float> prev_, steps_;
};

// The hyper-parameters of every optimizer; make_optimizer takes those its kind uses.
struct OptimizerConfig {
  std::string kind = "sgd";  // sgd, momentum, nesterov, adam, adamw, rmsprop, irprop
  std::optional<double> lr =
      std::nullopt;  // default: 0.1 for the SGD family, 1e-3 adam(w), 1e-2 rmsprop, irprop
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::optional<double> weight_decay = std::nullopt;  // default 0, and 0.01 for adamw (PyTorch's)
  double alpha = 0.99;
};
// Throws Error(kUsage) for an unknown kind or a value out of range.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config);
double default_learning_rate(std::string_view kind);

// One training step on a batch: forward, loss, backward, optimizer step (for plain SGD fused into
// the backward pass). Returns the batch loss (before the update).
double train_step(Model& model, ConstMatrixView x, ConstMatrixView y, Optimizer& opt);

}  // namespace backprop
