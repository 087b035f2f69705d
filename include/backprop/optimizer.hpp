// Optimizers: step(params, grads) over the model's flat arenas. They know nothing of the model's
// shape. This release has plain SGD (D8); momentum, Adam and friends slot in behind the same
// interface.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "backprop/model.hpp"

namespace backprop {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of params from grads (same length: Model::params() and Model::grads()).
  virtual void step(std::span<float> params, std::span<const float> grads) = 0;
  virtual std::string_view name() const = 0;

  // The learning rate if this optimizer is plain SGD (θ ← θ − η·g and nothing else), so the
  // training loop may fuse the step into the backward pass (Model::backward_sgd).
  virtual std::optional<double> plain_sgd_rate() const { return std::nullopt; }

  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }

 protected:
  explicit Optimizer(double lr) : lr_(lr) {}
  double lr_;
};

// D8: θ ← θ − η ∂L/∂θ. Throws Error(kUsage) unless lr is finite and > 0.
class Sgd final : public Optimizer {
 public:
  explicit Sgd(double lr);
  void step(std::span<float> params, std::span<const float> grads) override;
  std::string_view name() const override { return "sgd"; }
  std::optional<double> plain_sgd_rate() const override { return lr_; }
};

// One training step on a batch: forward, loss, backward, optimizer step (for plain SGD fused into
// the backward pass). Returns the batch loss (before the update).
double train_step(Model& model, ConstMatrixView x, ConstMatrixView y, Optimizer& opt);

}  // namespace backprop
