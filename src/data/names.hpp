// Text the loaders put in names and messages: the names of columns that have none in the file,
// and bytes shown as hex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace backprop::detail {

// prefix followed by j: "x7", "y0".
inline std::string numbered_name(const char* prefix, std::size_t j) {
  // Appended rather than prefix + to_string(j), on which GCC 12 warns falsely (-Wrestrict) at -O3.
  std::string name = prefix;
  name += std::to_string(j);
  return name;
}

// "x0", "x1", ...: feature j of data without a header (IDX pixels, headerless CSV).
inline std::string default_feature_name(std::size_t j) {
  return numbered_name("x", j);
}

// "1F": one byte as two upper-case hex digits.
inline std::string hex_byte(std::uint8_t b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return {kHex[b >> 4], kHex[b & 0xF]};
}

// "1F 8B 08": bytes as hex, separated by spaces.
inline std::string hex_bytes(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0) out += ' ';
    out += hex_byte(bytes[i]);
  }
  return out;
}

}  // namespace backprop::detail
