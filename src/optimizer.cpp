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
  // θ += (−η)·g, vectorised on the active kernel table.
  kernels::active().axpy(-static_cast<float>(lr_), grads.data(), params.data(),
                         static_cast<Index>(params.size()));
}

double train_step(Model& model, ConstMatrixView x, ConstMatrixView y, Optimizer& opt) {
  model.forward(x);
  double loss = model.loss(y);
  model.backward(x, y);
  opt.step(model.params(), model.grads());
  return loss;
}

}  // namespace backprop
