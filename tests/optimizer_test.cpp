// Every optimizer against steps computed independently in double from PyTorch's definitions
// (torch.optim 1.13), its state round trip, and end-to-end training on a small problem.
#include "backprop/optimizer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"
#include "backprop/train.hpp"

namespace backprop {
namespace {

// Float arithmetic against the double formulas: a few roundings per step on values of order 1.
constexpr double kStepTol = 1e-6;

const std::vector<float> kP0 = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f};
const std::vector<std::vector<float>> kGrads = {{0.5f, 0.25f, -1.0f, 0.0f, 2.0f},
                                                {0.4f, -0.3f, -0.5f, 0.1f, 1.5f},
                                                {-0.2f, 0.2f, 0.6f, 0.0f, -1.0f}};

void expect_path(Optimizer& opt, const std::vector<std::vector<double>>& want) {
  std::vector<float> p = kP0;
  for (std::size_t s = 0; s < kGrads.size(); ++s) {
    opt.step(p, kGrads[s]);
    for (std::size_t i = 0; i < p.size(); ++i) {
      EXPECT_NEAR(p[i], want[s][i], kStepTol * (1 + std::fabs(want[s][i])))
          << opt.name() << " step " << s + 1 << " element " << i;
    }
  }
}

// The reference: each optimizer's update in double, written from its definition.
std::vector<std::vector<double>> reference(const std::string& kind, double lr, double wd,
                                           double mu = 0.9) {
  std::vector<double> p(kP0.begin(), kP0.end()), a(p.size(), 0), b(p.size(), 0);
  std::vector<double> step(p.size(), lr);
  std::vector<std::vector<double>> out;
  for (std::size_t s = 0; s < kGrads.size(); ++s) {
    const double t = static_cast<double>(s + 1);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double g = kGrads[s][i];
      if (kind == "sgd") {
        p[i] -= lr * (g + wd * p[i]);
      } else if (kind == "momentum" || kind == "nesterov") {
        double gd = g + wd * p[i];
        a[i] = mu * a[i] + gd;
        p[i] -= lr * (kind == "nesterov" ? gd + mu * a[i] : a[i]);
      } else if (kind == "adam" || kind == "adamw") {
        double gd = g;
        if (kind == "adamw") {
          p[i] *= 1 - lr * wd;
        } else {
          gd += wd * p[i];
        }
        a[i] = 0.9 * a[i] + 0.1 * gd;
        b[i] = 0.999 * b[i] + 0.001 * gd * gd;
        double mhat = a[i] / (1 - std::pow(0.9, t)), vhat = b[i] / (1 - std::pow(0.999, t));
        p[i] -= lr * mhat / (std::sqrt(vhat) + 1e-8);
      } else if (kind == "rmsprop") {
        double gd = g + wd * p[i];
        a[i] = 0.99 * a[i] + 0.01 * gd * gd;
        p[i] -= lr * gd / (std::sqrt(a[i]) + 1e-8);
      } else if (kind == "irprop") {
        double prod = g * a[i];
        step[i] = std::clamp(step[i] * (prod > 0 ? 1.2 : prod < 0 ? 0.5 : 1.0), 1e-6, 50.0);
        if (prod < 0) g = 0;
        p[i] -= (g > 0 ? 1 : g < 0 ? -1 : 0) * step[i];
        a[i] = g;
      }
    }
    out.push_back(p);
  }
  return out;
}

TEST(Optimizers, EachTakesTheStepsOfItsDefinition) {
  for (double wd : {0.0, 0.05}) {
    SCOPED_TRACE("weight decay " + std::to_string(wd));
    Sgd sgd(0.1, wd);
    expect_path(sgd, reference("sgd", 0.1, wd));
    Momentum momentum(0.1, 0.9, false, wd);
    expect_path(momentum, reference("momentum", 0.1, wd));
    Momentum nesterov(0.1, 0.9, true, wd);
    expect_path(nesterov, reference("nesterov", 0.1, wd));
    Adam adam(0.01, 0.9, 0.999, 1e-8, wd, false);
    expect_path(adam, reference("adam", 0.01, wd));
    Adam adamw(0.01, 0.9, 0.999, 1e-8, wd, true);
    expect_path(adamw, reference("adamw", 0.01, wd));
    RmsProp rmsprop(0.01, 0.99, 1e-8, wd);
    expect_path(rmsprop, reference("rmsprop", 0.01, wd));
  }
  IRpropMinus irprop(0.01);
  expect_path(irprop, reference("irprop", 0.01, 0));
}

TEST(Optimizers, DefaultsMatchPyTorch) {
  EXPECT_EQ(default_learning_rate("adam"), 1e-3);
  EXPECT_EQ(default_learning_rate("adamw"), 1e-3);
  EXPECT_EQ(default_learning_rate("rmsprop"), 1e-2);
  EXPECT_EQ(default_learning_rate("irprop"), 1e-2);
  // AdamW decays by 0.01 unless told otherwise: the first step from p = 1 with g = 0 is
  // p·(1 − lr·0.01) exactly.
  auto adamw = make_optimizer({.kind = "adamw"});
  std::vector<float> p = {1.0f}, g = {0.0f};
  adamw->step(p, g);
  EXPECT_FLOAT_EQ(p[0], static_cast<float>(1 - 1e-3 * 1e-2));
  EXPECT_EQ(make_optimizer({.kind = "nesterov"})->name(), "nesterov");
  EXPECT_THROW(make_optimizer({.kind = "lbfgs"}), Error);
  EXPECT_THROW(make_optimizer({.kind = "momentum", .momentum = 1.0}), Error);
  EXPECT_THROW(make_optimizer({.kind = "adam", .lr = -1.0}), Error);
  EXPECT_THROW(make_optimizer({.kind = "irprop", .weight_decay = 0.1}), Error);
  // Only undecayed SGD may be fused into the backward pass.
  EXPECT_TRUE(Sgd(0.1).plain_sgd_rate().has_value());
  EXPECT_FALSE(Sgd(0.1, 0.01).plain_sgd_rate().has_value());
  EXPECT_FALSE(Momentum(0.1).plain_sgd_rate().has_value());
}

TEST(Optimizers, StateRoundTripsAndContinuesIdentically) {
  for (const char* kind : {"momentum", "nesterov", "adam", "adamw", "rmsprop", "irprop"}) {
    SCOPED_TRACE(kind);
    auto a = make_optimizer({.kind = kind});
    auto b = make_optimizer({.kind = kind});
    std::vector<float> pa = kP0, pb;
    a->step(pa, kGrads[0]);
    pb = pa;
    b->set_state(a->state(), pa.size());
    EXPECT_EQ(a->state(), b->state());
    a->step(pa, kGrads[1]);
    b->step(pb, kGrads[1]);
    EXPECT_EQ(pa, pb);  // bitwise: the state holds everything the next step needs
    OptimizerState wrong = a->state();
    wrong.tensors.begin()->second.pop_back();
    EXPECT_THROW(b->set_state(wrong, pa.size()), Error);
    OptimizerState extra = a->state();
    extra.tensors["bogus"] = std::vector<float>(pa.size());
    EXPECT_THROW(b->set_state(extra, pa.size()), Error);
  }
  // Adam's step 0 with non-zero moments would divide by zero at the bias correction.
  Adam adam;
  std::vector<float> p = kP0;
  adam.step(p, kGrads[0]);
  OptimizerState s = adam.state();
  s.counters["step"] = 0;
  EXPECT_THROW(adam.set_state(s, p.size()), Error);
}

// The updates over a large arena run split across threads: every optimizer (and SGD with weight
// decay, which is not fused) gives the same bits at 1, 2, 3 and 7 threads, over a few steps, for
// an arena with a tail past the last 16-value boundary.
TEST(Optimizers, LargeArenaStepsAreThreadCountInvariant) {
  constexpr std::size_t kN = (std::size_t{1} << 20) + 7;
  Rng rng(3);
  std::vector<float> p0(kN);
  std::vector<std::vector<float>> grads(3, std::vector<float>(kN));
  for (float& v : p0) v = static_cast<float>(rng.normal());
  for (auto& g : grads) {
    for (float& v : g) v = static_cast<float>(rng.normal());
  }
  for (const char* kind : {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "irprop"}) {
    SCOPED_TRACE(kind);
    std::vector<float> one;
    for (int threads : {1, 2, 3, 7}) {
      set_num_threads(threads);
      OptimizerConfig c{.kind = kind};
      if (std::string(kind) != "irprop") c.weight_decay = 1e-2;
      auto opt = make_optimizer(c);
      std::vector<float> p = p0;
      for (const auto& g : grads) opt->step(p, g);
      if (threads == 1) {
        one = p;
        continue;
      }
      EXPECT_EQ(0, std::memcmp(p.data(), one.data(), kN * sizeof(float))) << threads << " threads";
    }
  }
  // Plain SGD (no decay) runs on the parallel axpy.
  std::vector<float> one;
  for (int threads : {1, 2, 3, 7}) {
    set_num_threads(threads);
    Sgd sgd(0.1);
    std::vector<float> p = p0;
    for (const auto& g : grads) sgd.step(p, g);
    if (threads == 1) {
      one = p;
      continue;
    }
    EXPECT_EQ(0, std::memcmp(p.data(), one.data(), kN * sizeof(float))) << threads << " threads";
  }
  set_num_threads(0);
}

Dataset spirals(Index per_class) {
  Dataset ds;
  ds.source = "spirals";
  ds.n = 2 * per_class;
  ds.n_features = 2;
  ds.sample_shape = {2};
  ds.feature_names = {"x", "y"};
  ds.label_columns = {"arm"};
  ds.class_names = {"0", "1"};
  Rng rng(1);
  for (Index c = 0; c < 2; ++c) {
    for (Index i = 0; i < per_class; ++i) {
      double t = 0.25 + 3.0 * static_cast<double>(i) / static_cast<double>(per_class);
      double r = t / 3.25, angle = 1.6 * t + static_cast<double>(c) * std::numbers::pi;
      ds.x_f32.push_back(static_cast<float>(r * std::cos(angle) + 0.01 * rng.normal()));
      ds.x_f32.push_back(static_cast<float>(r * std::sin(angle) + 0.01 * rng.normal()));
      ds.labels.push_back(static_cast<std::int32_t>(c));
    }
  }
  return ds;
}

TEST(Optimizers, EachTrainsTwoSpirals) {
  Dataset ds = spirals(150);
  struct Case {
    OptimizerConfig config;
    Index batch;
    int epochs;
  };
  // A linear model separates these arms at 50-65%; each optimizer must reach 95%.
  for (const Case& c :
       {Case{{.kind = "momentum", .lr = 0.05}, 16, 150},
        Case{{.kind = "nesterov", .lr = 0.05}, 16, 150},
        Case{{.kind = "adam", .lr = 0.01}, 16, 150}, Case{{.kind = "adamw", .lr = 0.01}, 16, 150},
        Case{{.kind = "rmsprop", .lr = 0.005}, 16, 150},
        Case{{.kind = "irprop"}, 300, 400}}) {  // full batch
    SCOPED_TRACE(c.config.kind);
    Model m({.layers = {2, 32, 32, 2}, .hidden = Activation::kTanh});
    m.init(Init::kXavier, 1);
    auto opt = make_optimizer(c.config);
    TrainData d;
    d.data = &ds;
    d.train_rows = all_rows(ds);
    d.pre = scale_preprocess(ds);
    train(m, *opt, d, {.epochs = c.epochs, .batch_size = c.batch, .seed = 1});
    EXPECT_GE(evaluate(m, ds, {}, d.pre).metrics.accuracy, 0.95);
  }
}

}  // namespace
}  // namespace backprop
