// What every GEMM benchmark program shares: the problem list, the buffers, the timer and the JSON
// line it prints per measurement. One program per library (ours in bench/gemm_bench.cpp, each peer
// in bench/peers/), so no two BLAS libraries are ever linked into one process.
//
// Shapes are the MLP's (row-major): M = batch, N = layer outputs, K = layer inputs.
//   forward          Z[M×N]  = X[M×K]·W[N×K]ᵀ         (BLAS: NoTrans, Trans,   beta 0)
//   backward_data    dX[M×K] = dZ[M×N]·W[N×K]         (BLAS: NoTrans, NoTrans, beta 0)
//   backward_weights dW[N×K] += dZ[M×N]ᵀ·X[M×K]       (BLAS: Trans,   NoTrans, beta 1)
// Each counts 2·M·N·K flops.
//
// Timing: one warm-up call, then --reps (5) repetitions of at least --min-seconds (0.2 s) each,
// with a steady clock; the JSON line carries the best and the median per-call time as GFLOP/s.
// Usage: <program> --threads T [--reps R] [--min-seconds S] [--only NAME]
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace bench {

enum class Form { kForward, kBackwardData, kBackwardWeights };

inline const char* form_name(Form f) {
  switch (f) {
    case Form::kForward:
      return "forward";
    case Form::kBackwardData:
      return "backward_data";
    case Form::kBackwardWeights:
      return "backward_weights";
  }
  return "?";
}

struct Problem {
  Form form;
  long m, n, k;  // M = batch, N = outputs, K = inputs (the MLP's names, whatever the form)
};

// The MLP shapes in all three forms, then 1024³ (forward).
inline std::vector<Problem> problems() {
  const long shapes[][3] = {{10, 30, 784}, {64, 128, 784}, {256, 1024, 784}, {256, 1024, 1024}};
  std::vector<Problem> out;
  for (const auto& s : shapes) {
    for (Form f : {Form::kForward, Form::kBackwardData, Form::kBackwardWeights}) {
      out.push_back({f, s[0], s[1], s[2]});
    }
  }
  out.push_back({Form::kForward, 1024, 1024, 1024});
  return out;
}

inline std::string shape_name(const Problem& p) {
  return std::to_string(p.m) + "x" + std::to_string(p.n) + "x" + std::to_string(p.k);
}

// A 64-byte-aligned float buffer of uniform values in [-1, 1), the same for every program.
class Buffer {
 public:
  Buffer(std::size_t n, unsigned seed) {
    p_ = static_cast<float*>(
        ::operator new[](std::max<std::size_t>(n, 1) * sizeof(float), std::align_val_t(64)));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) p_[i] = u(rng);
  }
  ~Buffer() { ::operator delete[](p_, std::align_val_t(64)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  float* data() { return p_; }

 private:
  float* p_;
};

// The operands of one problem: x (M×K), w (N×K), dz (M×N) and the output of its form.
struct Operands {
  explicit Operands(const Problem& p)
      : x(static_cast<std::size_t>(p.m * p.k), 1),
        w(static_cast<std::size_t>(p.n * p.k), 2),
        dz(static_cast<std::size_t>(p.m * p.n), 3),
        out(static_cast<std::size_t>(p.form == Form::kForward        ? p.m * p.n
                                     : p.form == Form::kBackwardData ? p.m * p.k
                                                                     : p.n * p.k),
            4) {}
  Buffer x, w, dz, out;
};

struct Options {
  int threads = 1;
  int reps = 5;
  double min_seconds = 0.2;
  std::string only;  // a shape_name or form to run alone; empty: everything
};

inline Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n", argv[0], a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads") {
      o.threads = std::atoi(value().c_str());
    } else if (a == "--reps") {
      o.reps = std::atoi(value().c_str());
    } else if (a == "--min-seconds") {
      o.min_seconds = std::atof(value().c_str());
    } else if (a == "--only") {
      o.only = value();
    } else {
      std::fprintf(stderr, "usage: %s --threads T [--reps R] [--min-seconds S] [--only NAME]\n",
                   argv[0]);
      std::exit(2);
    }
  }
  if (o.threads < 1 || o.reps < 1 || o.min_seconds <= 0) {
    std::fprintf(stderr, "%s: --threads and --reps must be >= 1, --min-seconds > 0\n", argv[0]);
    std::exit(2);
  }
  return o;
}

using Clock = std::chrono::steady_clock;

struct Timing {
  double best, median;  // seconds per call
  long calls;           // in the best repetition
};

// Seconds per call of fn(): one warm-up call, then `reps` repetitions, each calling fn() until at
// least min_seconds have passed (the clock is read every `batch` calls, a batch lasting >= 20 µs
// so reading it costs nothing measurable). Best and median of the repetitions.
template <class F>
Timing time_calls(F&& fn, const Options& o) {
  using Seconds = std::chrono::duration<double>;
  fn();
  long batch = 1;
  for (;;) {
    auto t0 = Clock::now();
    for (long i = 0; i < batch; ++i) fn();
    if (Seconds(Clock::now() - t0).count() >= 20e-6 || batch >= (1L << 20)) break;
    batch *= 2;
  }
  std::vector<std::pair<double, long>> per_call;  // (seconds per call, calls)
  for (int r = 0; r < o.reps; ++r) {
    long calls = 0;
    double s = 0;
    auto t0 = Clock::now();
    do {
      for (long i = 0; i < batch; ++i) fn();
      calls += batch;
      s = Seconds(Clock::now() - t0).count();
    } while (s < o.min_seconds);
    per_call.emplace_back(s / static_cast<double>(calls), calls);
  }
  std::sort(per_call.begin(), per_call.end());
  return {per_call.front().first, per_call[per_call.size() / 2].first, per_call.front().second};
}

// One JSON object per line on stdout: the library's identity first ("kind": "info"), then one
// line per measurement ("kind": "gemm"). `extra` is a JSON fragment (`"key": value, ...`).
inline void print_info(const char* lib, const std::string& extra) {
  std::printf("{\"kind\": \"info\", \"lib\": \"%s\"%s%s}\n", lib, extra.empty() ? "" : ", ",
              extra.c_str());
  std::fflush(stdout);
}

// Runs every problem (or the --only one) through call(problem, operands) and prints its line.
template <class Call>
int run_all(const char* lib, const Options& o, Call&& call) {
  for (const Problem& p : problems()) {
    if (!o.only.empty() && o.only != shape_name(p) && o.only != form_name(p.form)) continue;
    Operands ops(p);
    Timing t = time_calls([&] { call(p, ops); }, o);
    double flops =
        2.0 * static_cast<double>(p.m) * static_cast<double>(p.n) * static_cast<double>(p.k);
    std::printf(
        "{\"kind\": \"gemm\", \"lib\": \"%s\", \"threads\": %d, \"shape\": \"%s\", "
        "\"form\": \"%s\", \"m\": %ld, \"n\": %ld, \"k\": %ld, \"gflops\": %.3f, "
        "\"gflops_median\": %.3f, \"seconds_per_call\": %.9g, \"calls\": %ld, \"reps\": %d}\n",
        lib, o.threads, shape_name(p).c_str(), form_name(p.form), p.m, p.n, p.k,
        flops / t.best * 1e-9, flops / t.median * 1e-9, t.best, t.calls, o.reps);
    std::fflush(stdout);
  }
  return 0;
}

// A JSON string literal's body: quotes and backslashes escaped, control characters dropped.
inline std::string json_escape(const char* s) {
  std::string out;
  for (; s != nullptr && *s != '\0'; ++s) {
    if (*s == '"' || *s == '\\') out += '\\';
    if (static_cast<unsigned char>(*s) >= 0x20) out += *s;
  }
  return out;
}

}  // namespace bench
