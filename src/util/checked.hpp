// Overflow-checked size arithmetic for anything derived from bytes we read. Every size taken from
// a file header goes through these before it reaches an allocation or a pointer offset.
#pragma once

#include <cstdint>

namespace backprop::detail {

// out = a * b; false when the product does not fit.
inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}

// out = a + b; false when the sum does not fit.
inline bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_add_overflow(a, b, &out);
}

}  // namespace backprop::detail
