// Every kernel table this CPU runs, on the three GEMM forms with every epilogue: against a long
// double reference, against the scalar table, on edge shapes around each table's micro-tile and
// cache blocks, and bitwise across thread counts and repeated runs. Also the portable template
// (double, gradcheck's path) against the same reference.
#include "kernels/kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"
#include "kernels/reference.hpp"

namespace backprop::kernels {
namespace {

// A float sum of k products carries rounding of order k·eps relative to Σ|products|: 1e-5 of that
// magnitude is far above float rounding for k <= 5000 and far below any indexing or packing
// mistake, which is of the order of the values themselves. The activations add at most their own
// approximation error (docs/gemm.md: < 1e-6 absolute for sigmoid and tanh).
constexpr double kSumTol = 1e-5;
constexpr double kActTol = 2e-6;
constexpr double kDoubleSumTol = 1e-13;

enum class Form { kForward, kBackwardData, kBackwardWeights };
const char* form_name(Form f) {
  switch (f) {
    case Form::kForward:
      return "forward";
    case Form::kBackwardData:
      return "backward-data";
    case Form::kBackwardWeights:
      return "backward-weights";
  }
  return "?";
}

template <class T>
BasicMatrix<T> random_matrix(Index r, Index c, Rng& rng, double lo = -1, double hi = 1) {
  BasicMatrix<T> m(r, c);
  for (Index i = 0; i < r; ++i)
    for (Index j = 0; j < c; ++j) m(i, j) = static_cast<T>(lo + (hi - lo) * rng.uniform());
  return m;
}

// One problem: C[m×n] = A·B of the given form, its operands, and its epilogue.
template <class T>
struct Problem {
  Form form;
  Index m, n, k;
  BasicMatrix<T> p,
      q;  // forward: x (m×k), w (n×k); data: dz (m×k), w (k×n); weights: dz (k×m), x (k×n)
  BasicMatrix<T> bias;  // 1×n
  BasicMatrix<T> src;   // m×n, the cached activations for ∘ g'
  BasicMatrix<T> c0;    // what C holds before (the accumulating form adds to it)
  BasicMatrix<T> mask;  // m×n dropout mask (0 or 1/(1−p)) when the case uses one
  typename EpilogueT<T>::Kind kind;
  Activation act;
  T slope = T(0.07);

  Problem(Form f, Index m_, Index n_, Index k_, typename EpilogueT<T>::Kind kind_, Activation g,
          std::uint64_t seed)
      : form(f), m(m_), n(n_), k(k_), kind(kind_), act(g) {
    Rng rng(seed);
    switch (f) {
      case Form::kForward:
        p = random_matrix<T>(m, k, rng);
        q = random_matrix<T>(n, k, rng);
        break;
      case Form::kBackwardData:
        p = random_matrix<T>(m, k, rng);
        q = random_matrix<T>(k, n, rng);
        break;
      case Form::kBackwardWeights:
        p = random_matrix<T>(k, m, rng);
        q = random_matrix<T>(k, n, rng);
        break;
    }
    bias = random_matrix<T>(1, n, rng);
    // Cached activations in the range of g's output.
    src = random_matrix<T>(m, n, rng, g == Activation::kSigmoid ? 0.0 : -1.0, 1.0);
    c0 = random_matrix<T>(m, n, rng);
  }

  // Dropout's mask on the ∘ g' epilogue: 0 with probability 0.3, else 1/0.7.
  void with_mask(std::uint64_t seed) {
    Rng rng(seed);
    mask.resize(m, n);
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) mask(i, j) = rng.uniform() < 0.3 ? T(0) : T(1.0 / 0.7);
  }

  EpilogueT<T> epilogue() const {
    EpilogueT<T> ep;
    ep.kind = kind;
    ep.act = act;
    ep.slope = slope;
    if (kind == EpilogueT<T>::Kind::kBiasActivation) ep.bias = bias.data();
    if (kind == EpilogueT<T>::Kind::kActivationGrad) {
      ep.src = src.data();
      ep.src_ld = n;
      if (mask.size() > 0) {
        ep.mask = mask.data();
        ep.mask_ld = n;
      }
    }
    return ep;
  }
  Operand<T> a() const {
    if (form == Form::kBackwardWeights) return {p.data(), 1, m};
    return {p.data(), k, 1};
  }
  Operand<T> b() const {
    if (form == Form::kForward) return {q.data(), 1, k};
    return {q.data(), n, 1};
  }
  bool accumulate() const { return form == Form::kBackwardWeights; }

  // The exact result (long double sums), and the magnitude Σ|terms| each element's error scales
  // with.
  void reference(std::vector<long double>& out, std::vector<long double>& mag) const {
    out.assign(static_cast<std::size_t>(m * n), 0);
    mag.assign(static_cast<std::size_t>(m * n), 0);
    Operand<T> oa = a(), ob = b();
    for (Index i = 0; i < m; ++i) {
      for (Index j = 0; j < n; ++j) {
        long double s = accumulate() ? c0(i, j) : 0, g = std::fabs((long double)s);
        for (Index t = 0; t < k; ++t) {
          long double x = (long double)oa.p[i * oa.rs + t * oa.cs] * ob.p[t * ob.rs + j * ob.cs];
          s += x;
          g += std::fabs(x);
        }
        if (kind == EpilogueT<T>::Kind::kBiasActivation) {
          s += bias(0, j);
          g += std::fabs((long double)bias(0, j));
          s = reference::act<long double>(act, s, slope);
        } else if (kind == EpilogueT<T>::Kind::kActivationGrad) {
          long double d = reference::deriv<long double>(act, src(i, j), slope);
          if (mask.size() > 0) d *= mask(i, j);
          s *= d;
          g *= std::fabs(d);
        }
        out[static_cast<std::size_t>(i * n + j)] = s;
        mag[static_cast<std::size_t>(i * n + j)] = g;
      }
    }
  }

  BasicMatrix<T> run_table(const KernelTable& t) const {
    BasicMatrix<T> c = c0;
    if constexpr (std::is_same_v<T, float>) {
      gemm(t, m, n, k, a(), b(), c.data(), n, accumulate(), epilogue());
    }
    return c;
  }
  // The forward form through gemm_nt: the dot-product kernel for m <= t.dot_max_m.
  BasicMatrix<T> run_nt(const KernelTable& t) const {
    BasicMatrix<T> c = c0;
    if constexpr (std::is_same_v<T, float>) {
      gemm_nt(t, m, n, k, p.data(), k, q.data(), k, c.data(), n, epilogue());
    }
    return c;
  }
  BasicMatrix<T> run_reference_template() const {
    BasicMatrix<T> c = c0;
    gemm_reference<T>(m, n, k, a(), b(), c.data(), n, accumulate(), epilogue());
    return c;
  }
};

std::string describe(Form f, Index m, Index n, Index k, int kind, Activation g) {
  return std::string(form_name(f)) + " " + std::to_string(m) + "x" + std::to_string(n) + "x" +
         std::to_string(k) + " epilogue " + std::to_string(kind) + " " + std::string(to_string(g));
}

template <class T>
void expect_close(const BasicMatrix<T>& got, const std::vector<long double>& want,
                  const std::vector<long double>& mag, double sum_tol, double act_tol,
                  const std::string& what) {
  for (Index i = 0; i < got.rows(); ++i) {
    for (Index j = 0; j < got.cols(); ++j) {
      auto u = static_cast<std::size_t>(i * got.cols() + j);
      double err = std::fabs(static_cast<double>(got(i, j) - want[u]));
      ASSERT_LE(err, sum_tol * static_cast<double>(mag[u]) + act_tol)
          << what << " at (" << i << "," << j << "): got " << got(i, j) << ", want "
          << static_cast<double>(want[u]);
    }
  }
}

// Every (form, epilogue) pair the layers use, plus none for every form.
std::vector<std::tuple<Form, int, Activation>> cases() {
  using K = Epilogue::Kind;
  std::vector<std::tuple<Form, int, Activation>> out;
  for (Form f : {Form::kForward, Form::kBackwardData, Form::kBackwardWeights}) {
    out.emplace_back(f, static_cast<int>(K::kNone), Activation::kIdentity);
  }
  for (Activation g : {Activation::kSigmoid, Activation::kTanh, Activation::kRelu,
                       Activation::kLeakyRelu, Activation::kIdentity}) {
    out.emplace_back(Form::kForward, static_cast<int>(K::kBiasActivation), g);
    out.emplace_back(Form::kBackwardData, static_cast<int>(K::kActivationGrad), g);
  }
  return out;
}

// Shapes: 1×1×1, odd sizes, and one below / at / above each table's MR, NR, KC, MC and NC, plus
// the MLP shapes of the benchmark configurations.
std::vector<std::tuple<Index, Index, Index>> shapes_for(const KernelTable& t) {
  std::vector<std::tuple<Index, Index, Index>> s = {
      {1, 1, 1}, {7, 17, 3}, {10, 30, 784}, {64, 10, 128}, {5, 9, 0}};
  for (Index d : {Index{-1}, Index{0}, Index{1}}) {
    s.emplace_back(t.mr + d, t.nr + d, 5);
    s.emplace_back(3, 5, t.kc + d);
    s.emplace_back(t.mc + d, 7, 9);
  }
  s.emplace_back(2, t.nc + 1, 3);
  s.emplace_back(2 * t.mr + 1, 3 * t.nr + 3, 2 * t.kc + 7);
  return s;
}

class EveryTable : public ::testing::TestWithParam<std::string> {
 protected:
  const KernelTable& table() const {
    const KernelTable* t = find(GetParam());
    EXPECT_NE(t, nullptr);
    return *t;
  }
};

TEST_P(EveryTable, MatchesTheReferenceOnEveryFormEpilogueAndEdgeShape) {
  const KernelTable& t = table();
  for (auto [m, n, k] : shapes_for(t)) {
    for (auto [form, kind, g] : cases()) {
      if (m <= 0 || n <= 0) continue;
      Problem<float> pr(form, m, n, k, static_cast<Epilogue::Kind>(kind), g, 17);
      std::vector<long double> want, mag;
      pr.reference(want, mag);
      expect_close(pr.run_table(t), want, mag, kSumTol, kActTol,
                   std::string(t.name) + " " + describe(form, m, n, k, kind, g));
      if (HasFatalFailure()) return;
    }
  }
}

TEST_P(EveryTable, MasksTheActivationGradientForDropout) {
  const KernelTable& t = table();
  for (auto [m, n, k] :
       {std::tuple<Index, Index, Index>{7, 17, 3}, {13, 33, 300}, {64, 784, 128}}) {
    for (Activation g : {Activation::kSigmoid, Activation::kRelu, Activation::kTanh}) {
      Problem<float> pr(Form::kBackwardData, m, n, k, Epilogue::Kind::kActivationGrad, g, 29);
      pr.with_mask(30);
      std::vector<long double> want, mag;
      pr.reference(want, mag);
      Matrix got = pr.run_table(t);
      expect_close(got, want, mag, kSumTol, kActTol,
                   std::string(t.name) + " masked " + describe(Form::kBackwardData, m, n, k, 2, g));
      for (Index i = 0; i < m; ++i)
        for (Index j = 0; j < n; ++j) {
          if (pr.mask(i, j) == 0.0f) {
            ASSERT_EQ(got(i, j), 0.0f);
          }
        }
    }
  }
}

TEST_P(EveryTable, AgreesWithTheScalarTable) {
  const KernelTable& t = table();
  const KernelTable& s = scalar_table();
  for (auto [m, n, k] : {std::tuple<Index, Index, Index>{13, 33, 300}, {64, 128, 784}}) {
    for (auto [form, kind, g] : cases()) {
      Problem<float> pr(form, m, n, k, static_cast<Epilogue::Kind>(kind), g, 23);
      std::vector<long double> want, mag;
      pr.reference(want, mag);
      Matrix mine = pr.run_table(t), scalar = pr.run_table(s);
      // Both are within the reference's tolerance of the exact result, so within twice of each
      // other; compare the pair directly as well.
      for (Index i = 0; i < m; ++i) {
        for (Index j = 0; j < n; ++j) {
          double tol =
              2 *
              (kSumTol * static_cast<double>(mag[static_cast<std::size_t>(i * n + j)]) + kActTol);
          ASSERT_NEAR(mine(i, j), scalar(i, j), tol) << describe(form, m, n, k, kind, g);
        }
      }
    }
  }
}

TEST_P(EveryTable, IsBitwiseIdenticalForAnyThreadCountAndRunToRun) {
  const KernelTable& t = table();
  for (auto [form, kind, g] : cases()) {
    Problem<float> pr(form, 200, 300, 400, static_cast<Epilogue::Kind>(kind), g, 5);
    set_num_threads(1);
    Matrix one = pr.run_table(t), again = pr.run_table(t);
    for (int threads : {2, 3, 4}) {
      set_num_threads(threads);
      Matrix many = pr.run_table(t);
      ASSERT_EQ(0, std::memcmp(one.data(), many.data(), static_cast<std::size_t>(one.size()) * 4))
          << describe(form, 200, 300, 400, kind, g) << " with " << threads << " threads";
    }
    ASSERT_EQ(0, std::memcmp(one.data(), again.data(), static_cast<std::size_t>(one.size()) * 4));
  }
  set_num_threads(0);
}

TEST_P(EveryTable, ForwardDotKernelMatchesTheReference) {
  const KernelTable& t = table();
  ASSERT_GE(t.dot_max_m, 1);
  using K = Epilogue::Kind;
  for (Index m : {Index{1}, Index{3}, Index{4}, Index{5}, t.dot_max_m}) {
    for (Index n : {Index{1}, Index{4}, Index{5}, Index{30}, Index{33}}) {
      for (Index k : {Index{0}, Index{1}, Index{15}, Index{16}, Index{17}, Index{784}}) {
        for (auto [kind, g] : {std::pair{K::kNone, Activation::kIdentity},
                               std::pair{K::kBiasActivation, Activation::kSigmoid},
                               std::pair{K::kBiasActivation, Activation::kTanh},
                               std::pair{K::kBiasActivation, Activation::kRelu},
                               std::pair{K::kBiasActivation, Activation::kLeakyRelu},
                               std::pair{K::kBiasActivation, Activation::kIdentity}}) {
          Problem<float> pr(Form::kForward, m, n, k, kind, g, 41);
          std::vector<long double> want, mag;
          pr.reference(want, mag);
          expect_close(pr.run_nt(t), want, mag, kSumTol, kActTol,
                       std::string(t.name) + " dot " +
                           describe(Form::kForward, m, n, k, static_cast<int>(kind), g));
          if (HasFatalFailure()) return;
        }
      }
    }
  }
  // Bitwise the same for any thread count.
  Problem<float> pr(Form::kForward, t.dot_max_m, 1000, 300, K::kBiasActivation, Activation::kTanh,
                    3);
  set_num_threads(1);
  Matrix one = pr.run_nt(t);
  set_num_threads(2);
  Matrix two = pr.run_nt(t);
  set_num_threads(0);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), static_cast<std::size_t>(one.size()) * 4));
}

std::vector<std::string> table_names() {
  std::vector<std::string> names;
  for (const KernelTable* t : available()) names.push_back(t->name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(ThisCpu, EveryTable, ::testing::ValuesIn(table_names()),
                         [](const auto& p) { return p.param; });

TEST(ReferenceTemplate, DoubleMatchesTheExactResult) {
  for (auto [m, n, k] : {std::tuple<Index, Index, Index>{1, 1, 1},
                         {7, 17, 3},
                         {5, 9, 257},
                         {129, 10, 20},
                         {10, 2050, 6}}) {
    for (auto [form, kind, g] : cases()) {
      Problem<double> pr(form, m, n, k, static_cast<EpilogueT<double>::Kind>(kind), g, 31);
      std::vector<long double> want, mag;
      pr.reference(want, mag);
      expect_close(pr.run_reference_template(), want, mag, kDoubleSumTol, 1e-15,
                   "double " + describe(form, m, n, k, kind, g));
      if (HasFatalFailure()) return;
    }
  }
}

TEST(Dispatch, ScalarIsAlwaysAvailableAndTheActiveTableIsOneOfThem) {
  std::vector<const KernelTable*> tables = available();
  ASSERT_FALSE(tables.empty());
  EXPECT_STREQ(tables.front()->name, "scalar");
  bool found = false;
  for (const KernelTable* t : tables) found = found || t == &active();
  EXPECT_TRUE(found);
  EXPECT_EQ(find("no-such-isa"), nullptr);
  // Each table's blocks hold whole micro-tiles.
  for (const KernelTable* t : tables) {
    EXPECT_EQ(t->mc % t->mr, 0) << t->name;
    EXPECT_EQ(t->nc % t->nr, 0) << t->name;
  }
}

}  // namespace
}  // namespace backprop::kernels
