// The model's forward pass, loss and gradients against an independent NumPy float64 reference
// (tests/reference/mlp_reference.py, written from the math), for every hidden activation and every
// valid (output, loss) pair on a 4-6-5-3 net with a batch of 5 (RELIABILITY B.4.9).
//
// The script runs under the system Python, which scripts/setup provides with NumPy: a missing
// interpreter or NumPy is a setup bug, so these tests fail rather than skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backprop/activation.hpp"
#include "backprop/loss.hpp"
#include "backprop/model.hpp"
#include "backprop/rng.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

using nlohmann::json;
using test::activation_reference;
using test::TempDir;

// B.4.9's bound. Both sides compute in float64 on O(1) values through a few dozen operations, so
// they differ by a few ulps (~1e-15); 1e-12 leaves room for summation order but not for a wrong
// term (any error in a formula moves the result by ~1e-2 or more here).
constexpr double kMaxAbsDiff = 1e-12;
// Hidden pre-activations stay at least this far from ReLU's kink, where the derivative jumps.
constexpr double kKinkMargin = 0.05;
// A gradient this small everywhere would make the comparison vacuous.
constexpr double kNotTriviallyZero = 1e-3;

constexpr Index kBatch = 5;
const std::vector<Index> kLayers = {4, 6, 5, 3};
constexpr double kLeakySlope = 0.07;  // not the default, so a slope that is ignored shows

const std::string kPython = BACKPROP_SYSTEM_PYTHON;
const std::string kScript = std::string(BACKPROP_SOURCE_DIR) + "/tests/reference/mlp_reference.py";

struct Case {
  Activation hidden;
  Activation output;
  Loss loss;
};

std::string case_name(const Case& c) {
  std::string s = std::string(to_string(c.hidden)) + "_" + std::string(to_string(c.output)) + "_" +
                  std::string(to_string(c.loss));
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

// gtest prints parameters in failure messages and test lists; bytes would say nothing.
void PrintTo(const Case& c, std::ostream* os) {
  *os << case_name(c);
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (Activation h : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity}) {
    for (Activation o : {Activation::kSigmoid, Activation::kSoftmax, Activation::kIdentity}) {
      for (Loss loss : {Loss::kQuadratic, Loss::kCrossEntropy}) {
        if (is_valid_output_loss(o, loss)) cases.push_back({h, o, loss});
      }
    }
  }
  return cases;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `command` through the shell; returns its exit status and captured stdout+stderr.
std::pair<int, std::string> run(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  int status = pclose(pipe);
  return {status, output};
}

json matrix_json(ConstMatrixViewT<double> m) {
  json rows = json::array();
  for (Index i = 0; i < m.rows; ++i)
    rows.push_back(std::vector<double>(m.row(i), m.row(i) + m.cols));
  return rows;
}

// Pre-activations of one layer for the whole batch, with plain loops: z_ij = Σ_k x_ik w_jk + b_j.
MatrixD pre_activations(const ModelD& m, Index l, const MatrixD& x) {
  auto w = m.weight(l);
  auto b = m.bias(l);
  MatrixD z(x.rows(), w.rows);
  for (Index i = 0; i < x.rows(); ++i) {
    for (Index j = 0; j < w.rows; ++j) {
      double s = b[static_cast<std::size_t>(j)];
      for (Index k = 0; k < w.cols; ++k) s += x(i, k) * w(j, k);
      z(i, j) = s;
    }
  }
  return z;
}

// Fixed pseudo-random weights, biases, inputs and targets. Each hidden unit's bias is then nudged
// by the smallest multiple of 0.1 that keeps all of its batch's pre-activations at least
// kKinkMargin away from 0, layer by layer, so that no case sits on ReLU's kink.
void fill_case(const Case& c, ModelD& m, MatrixD& x, MatrixD& y) {
  Rng rng(20240611);
  for (Index l = 0; l < m.n_layers(); ++l) {
    auto w = m.weight(l);
    double sd = 1.0 / std::sqrt(static_cast<double>(w.cols));
    for (Index j = 0; j < w.rows; ++j)
      for (Index k = 0; k < w.cols; ++k) w(j, k) = 1.5 * sd * rng.normal();
    for (double& b : m.bias(l)) b = 0.5 * rng.normal();
  }
  for (Index i = 0; i < x.rows(); ++i)
    for (Index k = 0; k < x.cols(); ++k) x(i, k) = rng.normal();

  MatrixD in = x;
  for (Index l = 0; l + 1 < m.n_layers(); ++l) {
    MatrixD z = pre_activations(m, l, in);
    for (Index j = 0; j < z.cols(); ++j) {
      double shift = 0;
      for (int step = 0; step <= 20; ++step) {
        shift = (step % 2 == 0 ? 1 : -1) * 0.1 * ((step + 1) / 2);
        bool clear = true;
        for (Index i = 0; i < z.rows(); ++i) clear &= std::abs(z(i, j) + shift) >= kKinkMargin;
        if (clear) break;
      }
      m.bias(l)[static_cast<std::size_t>(j)] += shift;
    }
    z = pre_activations(m, l, in);
    for (Index i = 0; i < z.rows(); ++i)
      for (Index j = 0; j < z.cols(); ++j) {
        EXPECT_GE(std::abs(z(i, j)), kKinkMargin) << "layer " << l << " unit " << j;
        z(i, j) = activation_reference(c.hidden, z(i, j), m.spec().leaky_slope);
      }
    in = z;
  }

  // Targets each loss is defined for: soft class distributions for softmax cross-entropy (rows
  // sum to 1, not one-hot, so Σ_k y_k is exercised), probabilities for sigmoid cross-entropy, and
  // any real numbers for the quadratic loss.
  for (Index i = 0; i < y.rows(); ++i) {
    double sum = 0;
    for (Index k = 0; k < y.cols(); ++k) {
      y(i, k) = c.loss == Loss::kQuadratic ? rng.normal() : 0.05 + 0.9 * rng.uniform();
      sum += y(i, k);
    }
    if (c.output == Activation::kSoftmax && c.loss == Loss::kCrossEntropy)
      for (Index k = 0; k < y.cols(); ++k) y(i, k) /= sum;
  }
}

double max_abs_diff(ConstMatrixViewT<double> ours, const json& theirs) {
  EXPECT_EQ(theirs.size(), static_cast<std::size_t>(ours.rows));
  double worst = 0;
  for (Index i = 0; i < ours.rows; ++i) {
    const json& row = theirs.at(static_cast<std::size_t>(i));
    EXPECT_EQ(row.size(), static_cast<std::size_t>(ours.cols));
    for (Index j = 0; j < ours.cols; ++j)
      worst =
          std::max(worst, std::abs(ours(i, j) - row.at(static_cast<std::size_t>(j)).get<double>()));
  }
  return worst;
}

double max_abs(ConstMatrixViewT<double> m) {
  double worst = 0;
  for (Index i = 0; i < m.rows; ++i)
    for (Index j = 0; j < m.cols; ++j) worst = std::max(worst, std::abs(m(i, j)));
  return worst;
}

TEST(ReferenceScript, RunsUnderTheSystemPythonWithNumpy) {
  auto [status, output] =
      run(shell_quote(kPython) + " -c " + shell_quote("import numpy; print(numpy.__version__)"));
  EXPECT_EQ(status, 0) << kPython
                       << " with NumPy is required (scripts/setup installs it): " << output;
  EXPECT_TRUE(std::filesystem::is_regular_file(kScript)) << kScript;
}

class ReferenceMlp : public testing::TestWithParam<Case> {};

TEST_P(ReferenceMlp, MatchesNumpyFloat64ForwardLossAndGradients) {
  const Case c = GetParam();
  ModelD m({.layers = kLayers,
            .hidden = c.hidden,
            .output = c.output,
            .loss = c.loss,
            .leaky_slope = kLeakySlope});
  MatrixD x(kBatch, kLayers.front()), y(kBatch, kLayers.back());
  fill_case(c, m, x, y);

  ConstMatrixViewT<double> out = m.forward(x.view());
  const double loss = m.loss(y.view());
  m.backward(x.view(), y.view());

  json in;
  in["layers"] = kLayers;
  in["hidden"] = to_string(c.hidden);
  in["output"] = to_string(c.output);
  in["loss"] = to_string(c.loss);
  in["leaky_slope"] = m.spec().leaky_slope;
  in["weights"] = json::array();
  in["biases"] = json::array();
  for (Index l = 0; l < m.n_layers(); ++l) {
    in["weights"].push_back(matrix_json(m.weight(l)));
    auto b = m.bias(l);
    in["biases"].push_back(std::vector<double>(b.begin(), b.end()));
  }
  in["x"] = matrix_json(x.view());
  in["y"] = matrix_json(y.view());

  TempDir dir;
  const std::string in_path = dir / "in.json";
  const std::string out_path = dir / "out.json";
  {
    std::ofstream f(in_path);
    f << in.dump();  // nlohmann writes doubles with enough digits to round-trip
    ASSERT_TRUE(f.good()) << in_path;
  }
  auto [status, output] = run(shell_quote(kPython) + " " + shell_quote(kScript) + " " +
                              shell_quote(in_path) + " " + shell_quote(out_path));
  ASSERT_EQ(status, 0) << "reference script failed: " << output;
  json ref;
  {
    std::ifstream f(out_path);
    ASSERT_TRUE(f.good()) << out_path;
    ref = json::parse(f);
  }

  EXPECT_LE(max_abs_diff(out, ref.at("output")), kMaxAbsDiff) << "forward output";
  EXPECT_LE(std::abs(loss - ref.at("loss").get<double>()), kMaxAbsDiff)
      << "loss: ours " << loss << ", NumPy " << ref.at("loss").get<double>();
  ASSERT_EQ(ref.at("dW").size(), static_cast<std::size_t>(m.n_layers()));
  ASSERT_EQ(ref.at("db").size(), static_cast<std::size_t>(m.n_layers()));
  for (Index l = 0; l < m.n_layers(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    auto u = static_cast<std::size_t>(l);
    auto db = static_cast<const ModelD&>(m).bias_grad(l);
    ConstMatrixViewT<double> db_row(db.data(), 1, static_cast<Index>(db.size()));
    EXPECT_LE(max_abs_diff(m.weight_grad(l), ref.at("dW").at(u)), kMaxAbsDiff) << "dW";
    EXPECT_LE(max_abs_diff(db_row, json::array({ref.at("db").at(u)})), kMaxAbsDiff) << "db";
    EXPECT_GT(max_abs(m.weight_grad(l)), kNotTriviallyZero) << "dW is (nearly) zero";
  }
}

INSTANTIATE_TEST_SUITE_P(EveryActivationAndLoss, ReferenceMlp, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& param_info) {
                           return case_name(param_info.param);
                         });

}  // namespace
}  // namespace backprop
