// The machine's single-precision FMA peak: a loop of independent vector FMAs per thread (16
// AVX-512 accumulators, or 12 AVX2 ones without AVX-512: enough to cover the FMA latency times
// the number of FMA pipes on current x86 cores), timed on 1 and on 2 threads (or --threads
// LIST). Prints one JSON line per thread count: 2 flops per lane per FMA, best of --reps (5)
// repetitions of at least --min-seconds (0.2) each.
//   peak [--threads 1,2] [--reps R] [--min-seconds S]
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// acc = acc·b + c on every accumulator, `iters` times; the sum keeps the work observable.
__attribute__((target("avx512f"))) float fma_loop_avx512(long iters) {
  constexpr int kAcc = 16;
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 0.01f);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}
constexpr double kFlopsPerIterAvx512 = 16.0 * 16 * 2;

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters) {
  constexpr int kAcc = 12;
  __m256 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i) * 0.01f);
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}
constexpr double kFlopsPerIterAvx2 = 12.0 * 8 * 2;

std::atomic<float> g_sink{0};

// Wall seconds for `threads` threads each running loop(iters), from the moment all of them have
// started (a blocking barrier, so no thread spins on a core another one needs) to the last one's
// end.
double run_threads(float (*loop)(long), long iters, int threads) {
  std::barrier start(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      g_sink.store(loop(iters), std::memory_order_relaxed);
    });
  }
  start.arrive_and_wait();
  auto t0 = Clock::now();
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> thread_counts{1, 2};
  int reps = 5;
  double min_seconds = 0.2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [--threads 1,2] [--reps R] [--min-seconds S]\n", argv[0]);
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--threads") {
      thread_counts.clear();
      for (std::size_t p = 0; p < v.size();) {
        std::size_t q = v.find(',', p);
        if (q == std::string::npos) q = v.size();
        thread_counts.push_back(std::atoi(v.substr(p, q - p).c_str()));
        p = q + 1;
      }
    } else if (a == "--reps") {
      reps = std::atoi(v.c_str());
    } else if (a == "--min-seconds") {
      min_seconds = std::atof(v.c_str());
    } else {
      std::fprintf(stderr, "usage: %s [--threads 1,2] [--reps R] [--min-seconds S]\n", argv[0]);
      return 2;
    }
  }
  const char* isa = nullptr;
  float (*loop)(long) = nullptr;
  double flops_per_iter = 0;
  if (__builtin_cpu_supports("avx512f")) {
    isa = "avx512";
    loop = fma_loop_avx512;
    flops_per_iter = kFlopsPerIterAvx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    isa = "avx2";
    loop = fma_loop_avx2;
    flops_per_iter = kFlopsPerIterAvx2;
  } else {
    std::fprintf(stderr, "peak: this CPU has neither AVX-512 nor AVX2+FMA\n");
    return 1;
  }
  for (int threads : thread_counts) {
    if (threads < 1 || reps < 1) {
      std::fprintf(stderr, "peak: threads and reps must be >= 1\n");
      return 2;
    }
    long iters = 1 << 16;
    for (;;) {
      double s = run_threads(loop, iters, threads);
      if (s >= min_seconds / 4) {
        iters = std::max(1L, static_cast<long>(static_cast<double>(iters) * min_seconds / s));
        break;
      }
      iters *= 4;
    }
    double best = 1e300;
    for (int r = 0; r < reps; ++r) best = std::min(best, run_threads(loop, iters, threads));
    double gflops = flops_per_iter * static_cast<double>(iters) * threads / best * 1e-9;
    std::printf("{\"kind\": \"peak\", \"isa\": \"%s\", \"threads\": %d, \"gflops\": %.3f}\n", isa,
                threads, gflops);
    std::fflush(stdout);
  }
  return 0;
}
