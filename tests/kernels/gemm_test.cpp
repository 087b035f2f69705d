// The three GEMM forms against a plain triple loop in long double, on edge shapes and sizes past
// every block size, and bitwise equality across thread counts.
#include "kernels/kernels.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <vector>

#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"

namespace backprop {
namespace {

// Float sums of k products of values in [-1, 1]: the error bound grows like k·eps; 1e-5 relative
// to the sum of |products| (plus a tiny floor) is far above float rounding for k <= 1100 and far
// below any indexing mistake, which is of the order of the values themselves.
constexpr double kFloatTol = 1e-5;
constexpr double kDoubleTol = 1e-13;

template <class T>
BasicMatrix<T> random_matrix(Index r, Index c, Rng& rng) {
  BasicMatrix<T> m(r, c);
  for (Index i = 0; i < r; ++i)
    for (Index j = 0; j < c; ++j) m(i, j) = static_cast<T>(2 * rng.uniform() - 1);
  return m;
}

enum class Form { kForward, kBackwardData, kBackwardWeights };

// Reference: C[i][j] = Σ_p A(i,p)·B(p,j) with the operands each form implies, plus |terms|.
template <class T>
void reference(Form form, const BasicMatrix<T>& p, const BasicMatrix<T>& q, const T* bias,
               const BasicMatrix<T>& c0, std::vector<long double>& out,
               std::vector<long double>& mag, Index m, Index n, Index k) {
  out.assign(static_cast<std::size_t>(m * n), 0);
  mag.assign(static_cast<std::size_t>(m * n), 0);
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      long double s = 0, a = 0;
      for (Index t = 0; t < k; ++t) {
        long double x = 0;
        switch (form) {
          case Form::kForward:
            x = (long double)p(i, t) * q(j, t);
            break;  // x·wᵀ
          case Form::kBackwardData:
            x = (long double)p(i, t) * q(t, j);
            break;  // dz·w
          case Form::kBackwardWeights:
            x = (long double)p(t, i) * q(t, j);
            break;  // dzᵀ·x
        }
        s += x;
        a += std::fabs(x);
      }
      if (form == Form::kForward && bias) {
        s += bias[j];
        a += std::fabs((long double)bias[j]);
      }
      if (form == Form::kBackwardWeights) {
        s += c0(i, j);
        a += std::fabs((long double)c0(i, j));
      }
      out[static_cast<std::size_t>(i * n + j)] = s;
      mag[static_cast<std::size_t>(i * n + j)] = a;
    }
  }
}

// Runs one form on an m×n×k problem and returns C.
template <class T>
BasicMatrix<T> run(Form form, const BasicMatrix<T>& p, const BasicMatrix<T>& q, const T* bias,
                   const BasicMatrix<T>& c0, Index m, Index n) {
  BasicMatrix<T> c = c0;
  (void)m;
  (void)n;
  switch (form) {
    case Form::kForward:
      kernels::gemm_forward<T>(p.view(), q.view(), bias, c.view());
      break;
    case Form::kBackwardData:
      kernels::gemm_backward_data<T>(p.view(), q.view(), c.view());
      break;
    case Form::kBackwardWeights:
      kernels::gemm_backward_weights<T>(p.view(), q.view(), c.view());
      break;
  }
  return c;
}

template <class T>
void check_form(Form form, Index m, Index n, Index k, std::uint64_t seed) {
  Rng rng(seed);
  BasicMatrix<T> p, q;
  switch (form) {
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
  BasicMatrix<T> bias_m = random_matrix<T>(1, n, rng);
  // Overwriting forms must ignore what C held; the accumulating form must add to it.
  BasicMatrix<T> c0 = random_matrix<T>(m, n, rng);
  const T* bias = form == Form::kForward ? bias_m.data() : nullptr;
  std::vector<long double> want, mag;
  reference(form, p, q, bias, c0, want, mag, m, n, k);
  BasicMatrix<T> got = run(form, p, q, bias, c0, m, n);
  const double tol = std::is_same_v<T, float> ? kFloatTol : kDoubleTol;
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      auto u = static_cast<std::size_t>(i * n + j);
      double err = std::fabs(static_cast<double>(got(i, j) - want[u]));
      ASSERT_LE(err, tol * (static_cast<double>(mag[u]) + 1e-30))
          << "form " << static_cast<int>(form) << " " << m << "x" << n << "x" << k << " at (" << i
          << "," << j << ")";
    }
  }
}

using Shape = std::tuple<Index, Index, Index>;

class GemmShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmShapes, EveryFormMatchesTheReference) {
  auto [m, n, k] = GetParam();
  for (Form f : {Form::kForward, Form::kBackwardData, Form::kBackwardWeights}) {
    check_form<float>(f, m, n, k, 11);
    check_form<double>(f, m, n, k, 12);
  }
}

// 1×1×1, odd sizes, one past each micro-tile (4, 8) and cache block (KC 256, MC 128), and the
// MLP shapes of the derivation's network.
INSTANTIATE_TEST_SUITE_P(EdgeShapes, GemmShapes,
                         ::testing::Values(Shape{1, 1, 1}, Shape{7, 17, 3}, Shape{5, 9, 1},
                                           Shape{4, 8, 256}, Shape{5, 9, 257}, Shape{129, 3, 2},
                                           Shape{1, 33, 513}, Shape{130, 70, 300},
                                           Shape{10, 30, 784}, Shape{64, 10, 100},
                                           Shape{3, 2050, 5}));

TEST(Gemm, KZeroOverwritesWithBiasOnly) {
  Matrix c({{5, 5}});
  float bias[2] = {1, 2};
  Matrix a(1, 0), b(2, 0);
  kernels::gemm_forward<float>(a.view(), b.view(), bias, c.view());
  EXPECT_EQ(c(0, 0), 1.0f);
  EXPECT_EQ(c(0, 1), 2.0f);
}

TEST(Gemm, ResultDoesNotDependOnTheThreadCount) {
  Rng rng(5);
  for (Shape s : {Shape{256, 300, 784}, Shape{10, 1000, 50}, Shape{700, 16, 40}}) {
    auto [m, n, k] = s;
    Matrix x = random_matrix<float>(m, k, rng), w = random_matrix<float>(n, k, rng);
    Matrix bias = random_matrix<float>(1, n, rng);
    std::vector<Matrix> results;
    for (int threads : {1, 2, 3, 4}) {
      set_num_threads(threads);
      Matrix z(m, n);
      kernels::gemm_forward<float>(x.view(), w.view(), bias.data(), z.view());
      Matrix dw(n, k);
      kernels::gemm_backward_weights<float>(z.view(), x.view(), dw.view());
      results.push_back(z);
      results.push_back(dw);
    }
    for (std::size_t r = 2; r < results.size(); ++r) {
      const Matrix& a = results[r % 2];
      const Matrix& b = results[r];
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * 4))
          << "result " << r << " differs from the 1-thread run";
    }
  }
  set_num_threads(0);
}

}  // namespace
}  // namespace backprop
