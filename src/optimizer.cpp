#include "backprop/optimizer.hpp"

#include <cmath>
#include <string>

#include "kernels/kernels.hpp"

namespace backprop {

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(ErrorCode::kUsage, what);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_rate(double lr) {
  require(std::isfinite(lr) && lr > 0, "learning rate " + number(lr) + ": expected > 0");
}

void check_decay(double wd) {
  require(std::isfinite(wd) && wd >= 0, "weight decay " + number(wd) + ": expected >= 0");
}

// Restores the named vectors of `s` into `slots` (each resized to arena_size first), refusing a
// missing, unknown or wrongly sized entry.
void restore(const OptimizerState& s, std::size_t arena_size, std::string_view optimizer,
             std::initializer_list<std::pair<const char*, std::vector<float>*>> slots,
             std::initializer_list<std::pair<const char*, std::int64_t*>> counters = {}) {
  auto fail = [&](const std::string& what) {
    throw Error(ErrorCode::kData, std::string(optimizer) + " state: " + what);
  };
  for (const auto& [name, v] : s.tensors) {
    bool known = false;
    for (const auto& slot : slots) known = known || name == slot.first;
    if (!known) fail("unexpected entry '" + name + "'");
    if (v.size() != arena_size) {
      fail("'" + name + "' holds " + std::to_string(v.size()) + " values, the model has " +
           std::to_string(arena_size));
    }
  }
  for (const auto& [name, value] : s.counters) {
    bool known = false;
    for (const auto& c : counters) known = known || name == c.first;
    if (!known) fail("unexpected counter '" + name + "'");
  }
  for (const auto& [name, dst] : slots) {
    auto it = s.tensors.find(name);
    if (it == s.tensors.end()) fail("'" + std::string(name) + "' is missing");
    *dst = it->second;
  }
  for (const auto& [name, dst] : counters) {
    auto it = s.counters.find(name);
    if (it == s.counters.end()) fail("counter '" + std::string(name) + "' is missing");
    *dst = it->second;
  }
}

void ensure(std::vector<float>& v, std::size_t n, float value = 0.0f) {
  if (v.size() != n) v.assign(n, value);
}

// The elementwise updates over the arena, split across as many threads as n values pay for
// (`streams` weighs a value, kernels::parallel_ranges); each value is updated by one thread with
// the same arithmetic, so the result does not depend on the thread count.
template <class F>
void each_range(std::size_t n, double streams, F&& f) {
  kernels::parallel_ranges(static_cast<Index>(n), streams, 16, f);
}

}  // namespace

Optimizer::Optimizer(double lr) : lr_(lr) {
  check_rate(lr);
}

void Optimizer::set_state(const OptimizerState& s, std::size_t arena_size) {
  restore(s, arena_size, name(), {});
}

// --------------------------------------------------------------------------------------------

Sgd::Sgd(double lr, double weight_decay) : Optimizer(lr), weight_decay_(weight_decay) {
  check_decay(weight_decay);
}

std::optional<double> Sgd::plain_sgd_rate() const {
  if (weight_decay_ != 0) return std::nullopt;
  return lr_;
}

void Sgd::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  if (weight_decay_ == 0) {
    kernels::axpy<float>(-static_cast<float>(lr_), grads, params);  // θ += (−η)·g
    return;
  }
  const auto lr = static_cast<float>(lr_), wd = static_cast<float>(weight_decay_);
  float* p = params.data();
  const float* gr = grads.data();
  each_range(params.size(), 1, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      float g = gr[i] + wd * p[i];
      p[i] = p[i] - lr * g;
    }
  });
}

// --------------------------------------------------------------------------------------------

Momentum::Momentum(double lr, double momentum, bool nesterov, double weight_decay)
    : Optimizer(lr), momentum_(momentum), weight_decay_(weight_decay), nesterov_(nesterov) {
  require(std::isfinite(momentum) && momentum >= 0 && momentum < 1,
          "momentum " + number(momentum) + ": expected a value in [0, 1)");
  check_decay(weight_decay);
}

void Momentum::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  ensure(buf_, params.size());
  const auto lr = static_cast<float>(lr_), mu = static_cast<float>(momentum_),
             wd = static_cast<float>(weight_decay_);
  const bool decay = weight_decay_ != 0, nesterov = nesterov_;
  float* p = params.data();
  float* buf = buf_.data();
  const float* gr = grads.data();
  each_range(params.size(), 2, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      float g = decay ? gr[i] + wd * p[i] : gr[i];
      // PyTorch starts the buffer at the first gradient; μ·0 + g is exactly that.
      buf[i] = mu * buf[i] + g;
      float d = nesterov ? g + mu * buf[i] : buf[i];
      p[i] = p[i] - lr * d;
    }
  });
}

OptimizerState Momentum::state() const {
  return {{{"momentum_buffer", buf_}}, {}};
}

void Momentum::set_state(const OptimizerState& s, std::size_t arena_size) {
  restore(s, arena_size, name(), {{"momentum_buffer", &buf_}});
}

// --------------------------------------------------------------------------------------------

Adam::Adam(double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled)
    : Optimizer(lr),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay),
      decoupled_(decoupled) {
  require(beta1 >= 0 && beta1 < 1, "beta1 " + number(beta1) + ": expected a value in [0, 1)");
  require(beta2 >= 0 && beta2 < 1, "beta2 " + number(beta2) + ": expected a value in [0, 1)");
  require(std::isfinite(eps) && eps > 0, "eps " + number(eps) + ": expected > 0");
  check_decay(weight_decay);
}

void Adam::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  ensure(m_, params.size());
  ensure(v_, params.size());
  ++t_;
  // Bias corrections in double, as PyTorch computes them in Python floats.
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(t_));
  kernels::AdamArgs a;
  a.b1 = static_cast<float>(beta1_);
  a.one_minus_b1 = static_cast<float>(1.0 - beta1_);
  a.b2 = static_cast<float>(beta2_);
  a.one_minus_b2 = static_cast<float>(1.0 - beta2_);
  a.eps = static_cast<float>(eps_);
  a.step_size = static_cast<float>(lr_ / bc1);
  a.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  a.weight_decay = static_cast<float>(weight_decay_);
  a.decay = static_cast<float>(1.0 - lr_ * weight_decay_);
  a.decoupled = decoupled_;
  kernels::adam_step(params.data(), grads.data(), m_.data(), v_.data(),
                     static_cast<Index>(params.size()), a);
}

OptimizerState Adam::state() const {
  return {{{"exp_avg", m_}, {"exp_avg_sq", v_}}, {{"step", t_}}};
}

void Adam::set_state(const OptimizerState& s, std::size_t arena_size) {
  std::int64_t t = 0;
  std::vector<float> m, v;
  restore(s, arena_size, name(), {{"exp_avg", &m}, {"exp_avg_sq", &v}}, {{"step", &t}});
  // t = 0 with moments would divide by 1 − β^0 = 0 at the next bias correction.
  bool any = false;
  for (float x : v) any = any || x != 0.0f;
  if (t < 0 || t > (std::int64_t{1} << 40) || (t == 0 && any)) {
    throw Error(ErrorCode::kData, std::string(name()) + " state: step " + std::to_string(t) +
                                      " is not a valid count for these moments");
  }
  t_ = t;
  m_ = std::move(m);
  v_ = std::move(v);
}

// --------------------------------------------------------------------------------------------

RmsProp::RmsProp(double lr, double alpha, double eps, double weight_decay)
    : Optimizer(lr), alpha_(alpha), eps_(eps), weight_decay_(weight_decay) {
  require(alpha >= 0 && alpha < 1, "alpha " + number(alpha) + ": expected a value in [0, 1)");
  require(std::isfinite(eps) && eps > 0, "eps " + number(eps) + ": expected > 0");
  check_decay(weight_decay);
}

void RmsProp::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  ensure(sq_, params.size());
  const auto lr = static_cast<float>(lr_), a = static_cast<float>(alpha_),
             one_minus_a = static_cast<float>(1.0 - alpha_), eps = static_cast<float>(eps_),
             wd = static_cast<float>(weight_decay_);
  const bool decay = weight_decay_ != 0;
  float* p = params.data();
  float* sq = sq_.data();
  const float* gr = grads.data();
  each_range(params.size(), 3, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      float g = decay ? gr[i] + wd * p[i] : gr[i];
      sq[i] = sq[i] * a + one_minus_a * (g * g);
      p[i] = p[i] + (-lr) * (g / (std::sqrt(sq[i]) + eps));
    }
  });
}

OptimizerState RmsProp::state() const {
  return {{{"square_avg", sq_}}, {}};
}

void RmsProp::set_state(const OptimizerState& s, std::size_t arena_size) {
  restore(s, arena_size, name(), {{"square_avg", &sq_}});
}

// --------------------------------------------------------------------------------------------

IRpropMinus::IRpropMinus(double lr, double eta_minus, double eta_plus, double step_min,
                         double step_max)
    : Optimizer(lr),
      eta_minus_(eta_minus),
      eta_plus_(eta_plus),
      step_min_(step_min),
      step_max_(step_max) {
  require(eta_minus > 0 && eta_minus < 1 && eta_plus > 1, "irprop: expected 0 < η− < 1 < η+");
  require(step_min > 0 && step_min <= step_max, "irprop: expected 0 < step_min <= step_max");
}

void IRpropMinus::step(std::span<float> params, std::span<const float> grads) {
  BACKPROP_ASSERT(params.size() == grads.size());
  ensure(prev_, params.size());
  ensure(steps_, params.size(), static_cast<float>(lr_));
  const auto up = static_cast<float>(eta_plus_), down = static_cast<float>(eta_minus_),
             lo = static_cast<float>(step_min_), hi = static_cast<float>(step_max_);
  float* p = params.data();
  float* prev = prev_.data();
  float* steps = steps_.data();
  const float* gr = grads.data();
  each_range(params.size(), 3, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) {
      float g = gr[i];
      float s = g * prev[i];
      float factor = s > 0 ? up : (s < 0 ? down : 1.0f);
      steps[i] = std::min(std::max(steps[i] * factor, lo), hi);
      // iRprop−: after a sign change the weight stays put and the gradient is forgotten.
      if (s < 0) g = 0.0f;
      float sign = g > 0 ? 1.0f : (g < 0 ? -1.0f : 0.0f);
      p[i] = p[i] - sign * steps[i];
      prev[i] = g;
    }
  });
}

OptimizerState IRpropMinus::state() const {
  return {{{"prev", prev_}, {"step_size", steps_}}, {}};
}

void IRpropMinus::set_state(const OptimizerState& s, std::size_t arena_size) {
  restore(s, arena_size, name(), {{"prev", &prev_}, {"step_size", &steps_}});
}

// --------------------------------------------------------------------------------------------

double default_learning_rate(std::string_view kind) {
  if (kind == "adam" || kind == "adamw") return 1e-3;
  if (kind == "rmsprop" || kind == "irprop") return 1e-2;
  return 0.1;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c) {
  const double lr = c.lr.value_or(default_learning_rate(c.kind));
  const double wd = c.weight_decay.value_or(c.kind == "adamw" ? 1e-2 : 0.0);
  if (c.kind == "sgd") return std::make_unique<Sgd>(lr, wd);
  if (c.kind == "momentum") return std::make_unique<Momentum>(lr, c.momentum, false, wd);
  if (c.kind == "nesterov") return std::make_unique<Momentum>(lr, c.momentum, true, wd);
  if (c.kind == "adam") return std::make_unique<Adam>(lr, c.beta1, c.beta2, c.eps, wd, false);
  if (c.kind == "adamw") return std::make_unique<Adam>(lr, c.beta1, c.beta2, c.eps, wd, true);
  if (c.kind == "rmsprop") return std::make_unique<RmsProp>(lr, c.alpha, c.eps, wd);
  if (c.kind == "irprop") {
    require(wd == 0, "irprop takes no weight decay");
    return std::make_unique<IRpropMinus>(lr);
  }
  throw Error(ErrorCode::kUsage, "unknown optimizer '" + c.kind +
                                     "': expected sgd, momentum, nesterov, adam, adamw, rmsprop "
                                     "or irprop");
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
