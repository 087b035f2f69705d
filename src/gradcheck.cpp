#include "backprop/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "backprop/rng.hpp"

namespace backprop {

bool GradcheckReport::passed() const {
  return std::all_of(tensors.begin(), tensors.end(),
                     [](const GradcheckTensor& t) { return t.n_failed == 0; });
}

GradcheckTensor compare_gradients(std::span<const double> analytic, std::span<const double> numeric,
                                  const GradcheckOptions& options) {
  BACKPROP_ASSERT(analytic.size() == numeric.size());
  GradcheckTensor t;
  t.size = static_cast<Index>(analytic.size());
  double largest = 0;
  for (double gn : numeric) largest = std::max(largest, std::abs(gn));
  const double floor = std::max(options.abs_floor, options.tensor_floor * largest);
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    double ga = analytic[i], gn = numeric[i];
    double abs_err = std::abs(ga - gn);
    double scale = std::max({std::abs(ga), std::abs(gn), floor});
    double rel_err = abs_err / scale;
    // A NaN anywhere must fail, so compare in the form that is false for NaN.
    bool ok = rel_err <= options.rel_tol;
    if (!ok) ++t.n_failed;
    t.max_abs_err = std::max(t.max_abs_err, std::isnan(abs_err) ? INFINITY : abs_err);
    t.max_rel_err = std::max(t.max_rel_err, std::isnan(rel_err) ? INFINITY : rel_err);
    t.max_abs_grad = std::max(t.max_abs_grad, std::abs(gn));
  }
  return t;
}

namespace {

bool has_kink(Activation f) {
  return f == Activation::kRelu || f == Activation::kLeakyRelu;
}

// Whether every hidden pre-activation of example x (one row) clears the kink margin.
bool clear_of_kinks(const ModelD& m, const double* x, double margin) {
  std::vector<double> in(x, x + m.n_inputs()), out;
  for (Index l = 0; l + 1 < m.n_layers(); ++l) {
    auto w = m.weight(l);
    auto b = m.bias(l);
    out.assign(static_cast<std::size_t>(w.rows), 0.0);
    for (Index j = 0; j < w.rows; ++j) {
      double z = b[static_cast<std::size_t>(j)];
      for (Index i = 0; i < w.cols; ++i) z += w(j, i) * in[static_cast<std::size_t>(i)];
      if (std::abs(z) < margin) return false;
      double slope = m.spec().leaky_slope;
      out[static_cast<std::size_t>(j)] =
          z > 0 ? z : (m.spec().hidden == Activation::kRelu ? 0.0 : slope * z);
    }
    in.swap(out);
  }
  return true;
}

}  // namespace

GradcheckReport gradcheck(const ModelSpec& spec, const GradcheckOptions& options) {
  spec.validate();
  if (options.batch < 1) {
    throw Error(ErrorCode::kUsage, "gradcheck batch size must be >= 1");
  }
  ModelD model(spec);
  Rng rng = Rng::stream(options.seed, "gradcheck");
  // Weights N(0, 1/I) keep sigmoid and tanh away from saturation; non-zero biases make the bias
  // gradients non-trivial.
  for (Index l = 0; l < model.n_layers(); ++l) {
    auto w = model.weight(l);
    double sd = 1.0 / std::sqrt(static_cast<double>(w.cols));
    for (Index i = 0; i < w.rows; ++i)
      for (Index j = 0; j < w.cols; ++j) w(i, j) = rng.normal() * sd;
    for (double& b : model.bias(l)) b = 0.5 * rng.normal();
  }

  const Index batch = options.batch, n_in = model.n_inputs(), n_out = model.n_outputs();
  MatrixD x(batch, n_in), y(batch, n_out);
  for (Index r = 0; r < batch; ++r) {
    constexpr int kMaxDraws = 10000;
    int draws = 0;
    do {
      if (++draws > kMaxDraws) {
        throw Error(ErrorCode::kNumeric,
                    "gradcheck: could not draw inputs whose ReLU pre-activations all clear the "
                    "kink margin; use a narrower network");
      }
      for (Index c = 0; c < n_in; ++c) x(r, c) = rng.normal();
    } while (has_kink(spec.hidden) && !clear_of_kinks(model, x.view().row(r), options.kink_margin));

    double sum = 0;
    for (Index c = 0; c < n_out; ++c) {
      switch (spec.output) {
        case Activation::kSoftmax:
          y(r, c) = 0.05 + rng.uniform();
          sum += y(r, c);
          break;
        case Activation::kSigmoid:
          y(r, c) = rng.uniform();
          break;
        default:
          y(r, c) = rng.normal();
          break;
      }
    }
    if (spec.output == Activation::kSoftmax) {
      for (Index c = 0; c < n_out; ++c) y(r, c) /= sum;
    }
  }

  // Dropout masks are drawn from a fresh copy of the same stream at every forward pass.
  auto forward = [&](auto& m, const auto& input) {
    if (options.dropout.empty()) return m.forward(input);
    Rng masks = Rng::stream(options.seed, "gradcheck-dropout");
    typename std::remove_reference_t<decltype(m)>::Dropout d{options.dropout, &masks};
    return m.forward(input, &d);
  };
  forward(model, x);
  model.backward(x, y);
  std::vector<double> analytic(model.grads().begin(), model.grads().end());
  GradcheckOptions rule = options;
  if (options.precision == Precision::kFloat) {
    // The same network and batch in float, on the path training takes.
    Model fmodel = to_float(model);
    Matrix fx(batch, n_in), fy(batch, n_out);
    for (Index r = 0; r < batch; ++r) {
      for (Index c = 0; c < n_in; ++c) fx(r, c) = static_cast<float>(x(r, c));
      for (Index c = 0; c < n_out; ++c) fy(r, c) = static_cast<float>(y(r, c));
    }
    forward(fmodel, fx);
    fmodel.backward(fx, fy);
    analytic.assign(fmodel.grads().begin(), fmodel.grads().end());
    rule.rel_tol = kFloatRelTol;
    rule.abs_floor = kFloatAbsFloor;
    rule.tensor_floor = kFloatTensorFloor;
  }

  auto loss_at = [&]() {
    forward(model, x);
    return model.loss(y);
  };
  const double h = options.step;
  GradcheckReport report;
  auto check = [&](std::span<double> params, std::span<const double> grads, Index layer,
                   bool is_bias) {
    std::vector<double> numeric(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      const double saved = params[i];
      params[i] = saved + h;
      double f1 = loss_at();
      params[i] = saved - h;
      double fm1 = loss_at();
      params[i] = saved + 2 * h;
      double f2 = loss_at();
      params[i] = saved - 2 * h;
      double fm2 = loss_at();
      params[i] = saved;
      numeric[i] = (8.0 * (f1 - fm1) - (f2 - fm2)) / (12.0 * h);
    }
    GradcheckTensor t = compare_gradients(grads, numeric, rule);
    t.layer = layer;
    t.is_bias = is_bias;
    report.tensors.push_back(t);
  };
  const double* base = model.params().data();
  for (Index l = 0; l < model.n_layers(); ++l) {
    auto w = model.weight(l);
    auto b = model.bias(l);
    std::span<double> wspan(w.data, static_cast<std::size_t>(w.size()));
    auto w_off = static_cast<std::size_t>(w.data - base);
    auto b_off = static_cast<std::size_t>(b.data() - base);
    check(wspan, std::span<const double>(analytic).subspan(w_off, wspan.size()), l, false);
    check(b, std::span<const double>(analytic).subspan(b_off, b.size()), l, true);
  }
  return report;
}

}  // namespace backprop
