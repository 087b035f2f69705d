// Threads per product and per elementwise pass: the choice (one thread for tiny products, more
// as the flops grow), and the parallel elementwise paths (column sums, axpy, Adam, activations,
// the loss gradient, the batch gather) giving the same bits at 1, 2, 3 and 7 threads (more threads
// than this machine's cores: the pool runs them anyway).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <vector>

#include "backprop/batch.hpp"
#include "backprop/loss.hpp"
#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"
#include "kernels/kernels.hpp"

namespace backprop::kernels {
namespace {

const int kThreadCounts[] = {1, 2, 3, 7};

TEST(GemmThreads, TinyProductsRunOnOneThread) {
  for (const KernelTable* t : available()) {
    // Network (a): 784-30-10 at batch 10, all three forms of both layers.
    EXPECT_EQ(gemm_threads(10, 30, 784, t->mr, t->nr, 16), 1) << t->name;  // forward, layer 1
    EXPECT_EQ(gemm_threads(30, 784, 10, t->mr, t->nr, 16), 1) << t->name;  // dW, layer 1
    EXPECT_EQ(gemm_threads(10, 10, 30, t->mr, t->nr, 16), 1) << t->name;   // forward, layer 2
    EXPECT_EQ(gemm_threads(10, 30, 10, t->mr, t->nr, 16), 1) << t->name;   // dX, layer 2
    EXPECT_EQ(gemm_threads(1, 1, 1, t->mr, t->nr, 16), 1) << t->name;
    EXPECT_EQ(gemm_threads(0, 5, 5, t->mr, t->nr, 16), 1) << t->name;
  }
}

TEST(GemmThreads, GrowWithTheFlopsUpToEveryCore) {
  for (const KernelTable* t : available()) {
    // Square products growing in every dimension: the choice never falls as the flops grow.
    int last = 1;
    for (Index s = 1; s <= 2048; s += s / 8 + 1) {
      int threads = gemm_threads(s, s, s, t->mr, t->nr, 16);
      EXPECT_GE(threads, last) << t->name << " " << s << "³";
      EXPECT_LE(threads, 16);
      last = threads;
    }
    EXPECT_EQ(last, 16) << t->name;
    // Growing k alone (the split is over C's tiles, so the cap stays the tile count).
    last = 1;
    for (Index k = 1; k <= 100000; k *= 2) {
      int threads = gemm_threads(256, 1024, k, t->mr, t->nr, 16);
      EXPECT_GE(threads, last) << t->name << " k = " << k;
      last = threads;
    }
    // Network (c)'s first layer forward takes every core of a 16-core machine.
    EXPECT_EQ(gemm_threads(256, 1024, 784, t->mr, t->nr, 16), 16) << t->name;
    // Never more threads than strips of micro-tiles.
    EXPECT_LE(gemm_threads(1000000, 1, 1000, t->mr, t->nr, 64),
              static_cast<int>((1000000 + t->mr - 1) / t->mr));
    EXPECT_EQ(gemm_threads(4, 4, 100000000, t->mr, t->nr, 64), 1) << t->name;  // one tile
  }
}

// Runs `fill` (which writes its result into `out`) at every thread count and checks every result
// is bitwise the one-thread result; also checks that the work was big enough to be split.
void expect_thread_count_invariant(double work, Index pieces,
                                   const std::function<void(std::vector<float>&)>& fill,
                                   const char* what) {
  ASSERT_GE(detail::threads_for(work, kMinMacsPerThread, pieces, 7), 3)
      << what << ": too small to be split; the test would prove nothing";
  std::vector<float> one;
  for (int threads : kThreadCounts) {
    set_num_threads(threads);
    std::vector<float> out;
    fill(out);
    if (threads == 1) {
      one = out;
      continue;
    }
    ASSERT_EQ(out.size(), one.size());
    EXPECT_EQ(0, std::memcmp(out.data(), one.data(), out.size() * sizeof(float)))
        << what << " at " << threads << " threads";
  }
  set_num_threads(0);
}

std::vector<float> random_values(Index n, std::uint64_t seed, double lo = -2, double hi = 2) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * rng.uniform());
  return v;
}

TEST(ParallelElementwise, ColumnSumsAreThreadCountInvariant) {
  constexpr Index kRows = 256, kCols = 1000;
  std::vector<float> dz = random_values(kRows * kCols, 1);
  expect_thread_count_invariant(
      kRows * kCols * kElementCost, (kCols + 63) / 64,
      [&](std::vector<float>& out) {
        out = random_values(kCols, 2);
        column_sums<float>(ConstMatrixView(dz.data(), kRows, kCols), out.data(), true);
        std::vector<float> fresh(static_cast<std::size_t>(kCols));
        column_sums<float>(ConstMatrixView(dz.data(), kRows, kCols), fresh.data(), false);
        out.insert(out.end(), fresh.begin(), fresh.end());
      },
      "column_sums");
}

TEST(ParallelElementwise, AxpyAndAdamAreThreadCountInvariant) {
  constexpr Index kN = (Index{1} << 20) + 13;  // a tail past the last 16-float boundary
  std::vector<float> x = random_values(kN, 3), g = random_values(kN, 4);
  const std::vector<float> p0 = random_values(kN, 6), m0 = random_values(kN, 7),
                           v0 = random_values(kN, 8, 0, 1);
  expect_thread_count_invariant(
      kN * kElementCost, (kN + 15) / 16,
      [&](std::vector<float>& out) {
        out = p0;
        axpy<float>(-0.3f, x, out);
      },
      "axpy");
  AdamArgs a{0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, 1e-3f, 0.03f, 0.01f, 0.99f, false};
  for (bool decoupled : {false, true}) {
    a.decoupled = decoupled;
    expect_thread_count_invariant(
        kN * kElementCost * 4, (kN + 15) / 16,
        [&](std::vector<float>& out) {
          std::vector<float> p = p0, m = m0, v = v0;
          for (int step = 0; step < 3; ++step)
            adam_step(p.data(), g.data(), m.data(), v.data(), kN, a);
          out = p;
          out.insert(out.end(), m.begin(), m.end());
          out.insert(out.end(), v.begin(), v.end());
        },
        decoupled ? "adamw" : "adam");
  }
}

TEST(ParallelElementwise, ActivationsAndTheLossGradientAreThreadCountInvariant) {
  constexpr Index kRows = 300, kCols = 1024;
  std::vector<float> z = random_values(kRows * kCols, 9, -6, 6);
  for (Activation g :
       {Activation::kSigmoid, Activation::kTanh, Activation::kRelu, Activation::kSoftmax}) {
    expect_thread_count_invariant(
        kRows * kCols * kElementCost * 2, kRows,
        [&](std::vector<float>& out) {
          out.assign(static_cast<std::size_t>(kRows * kCols), 0.0f);
          activation_forward_rows<float>(g, 0.01f, ConstMatrixView(z.data(), kRows, kCols),
                                         MatrixView(out.data(), kRows, kCols));
          if (g == Activation::kSoftmax) return;
          std::vector<float> dz(out.size());
          activation_backward_rows<float>(g, 0.01f, ConstMatrixView(out.data(), kRows, kCols),
                                          ConstMatrixView(z.data(), kRows, kCols),
                                          MatrixView(dz.data(), kRows, kCols));
          out.insert(out.end(), dz.begin(), dz.end());
        },
        "activation");
  }
  // The loss gradient, row by row: softmax + quadratic (D4b has a per-row dot product).
  std::vector<float> a = random_values(kRows * kCols, 10, 0, 1),
                     y = random_values(kRows * kCols, 11, 0, 1);
  for (auto [out_act, loss] : {std::pair{Activation::kSoftmax, Loss::kQuadratic},
                               std::pair{Activation::kSigmoid, Loss::kQuadratic},
                               std::pair{Activation::kSoftmax, Loss::kCrossEntropy}}) {
    expect_thread_count_invariant(
        kRows * kCols * kElementCost * 3, kRows,
        [&](std::vector<float>& out) {
          out.assign(static_cast<std::size_t>(kRows * kCols), 0.0f);
          loss_backward<float>(out_act, loss, ConstMatrixView(a.data(), kRows, kCols),
                               ConstMatrixView(y.data(), kRows, kCols),
                               MatrixView(out.data(), kRows, kCols), 0);
        },
        "loss_backward");
  }
}

TEST(ParallelElementwise, TheBatchGatherIsThreadCountInvariant) {
  Dataset ds;
  ds.n = 1000;
  ds.n_features = 784;
  ds.value_scale = 1.0f / 255;
  Rng rng(12);
  ds.x_u8.resize(static_cast<std::size_t>(ds.n * ds.n_features));
  for (auto& v : ds.x_u8) v = static_cast<std::uint8_t>(rng.below(256));
  ds.class_names = {"0", "1", "2"};
  for (Index r = 0; r < ds.n; ++r) ds.labels.push_back(static_cast<std::int32_t>(rng.below(3)));
  std::vector<Index> rows;
  for (Index i = 0; i < 256; ++i) rows.push_back(static_cast<Index>(rng.below(1000)));
  Preprocess pre = scale_preprocess(ds);
  pre.shift.assign(pre.shift.size(), 0.25f);
  expect_thread_count_invariant(
      256.0 * 784 * kElementCost, 256,
      [&](std::vector<float>& out) {
        std::vector<float> x(256 * 784), y(256 * 3);
        gather_batch(ds, rows, pre, MatrixView(x.data(), 256, 784), MatrixView(y.data(), 256, 3));
        out = x;
        out.insert(out.end(), y.begin(), y.end());
      },
      "gather_batch");
}

}  // namespace
}  // namespace backprop::kernels
