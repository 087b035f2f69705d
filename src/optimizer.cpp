#include "backprop/optimizer.hpp"

#include <cmath>
#include <string>

#include "kernels/kernels.hpp"

namespace backprop {

Sgd::Sgd(double lr) : Optimizer(lr) {
  if (!(std::isfinite(lr) && lr > 0)) {
    throw Error(ErrorCode::kUsage, "learning rate " + std::to_string(lr) + ": expected > 0");
  }
}

void Sgd::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  kernels::axpy<float>(-static_cast<float>(lr_), grads, params);  // θ += (−η)·g
}

double train_step(Model& model, ConstMatrixView x, ConstMatrixView y, Optimizer& opt) {
  model.forward(x);
  double loss = model.loss(y);
  if (std::optional<double> lr = opt.plain_sgd_rate()) {
    model.backward_sgd(x, y, *lr);
  } else {
    model.backward(x, y);
    opt.step(model.params(), model.grads());
  }
  return loss;
}

}  // namespace backprop
