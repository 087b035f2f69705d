#include "backprop/optimizer.hpp"

#include <cmath>
#include <string>

namespace backprop {

Sgd::Sgd(double lr) : Optimizer(lr) {
  if (!(std::isfinite(lr) && lr > 0)) {
    throw Error(ErrorCode::kUsage, "learning rate " + std::to_string(lr) + ": expected > 0");
  }
}

void Sgd::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  const auto lr = static_cast<float>(lr_);
  float* p = params.data();
  const float* g = grads.data();
  for (std::size_t i = 0; i < params.size(); ++i) p[i] -= lr * g[i];
}

double train_step(Model& model, ConstMatrixView x, ConstMatrixView y, Optimizer& opt) {
  model.forward(x);
  double loss = model.loss(y);
  model.backward(x, y);
  opt.step(model.params(), model.grads());
  return loss;
}

}  // namespace backprop
