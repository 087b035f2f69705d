// The one random number generator: xoshiro256** seeded through splitmix64, with its own uniform,
// normal and shuffle so that a seed gives the same numbers with every compiler and standard
// library (std::normal_distribution and std::shuffle are implementation-defined). Independent
// streams for initialisation, shuffling and splitting are derived from one user seed by name.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>

namespace backprop {

class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  // A generator for one purpose ("init", "shuffle", "split"...) derived from a user seed; streams
  // with different names are independent.
  static Rng stream(std::uint64_t seed, std::string_view purpose);

  std::uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Standard normal (Box–Muller; draws two uniforms per call, keeps no hidden state).
  double normal();
  // Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). n > 0.
  std::uint64_t below(std::uint64_t n);

  // Fisher–Yates, back to front.
  template <class It>
  void shuffle(It first, It last) {
    auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      std::uint64_t j = below(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

  std::array<std::uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<std::uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<std::uint64_t, 4> s_{};
};

}  // namespace backprop
