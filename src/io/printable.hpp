// Text from a file, made safe for a one-line error message (shared by the model-file and
// checkpoint readers).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace backprop::detail {

// Bytes outside printable ASCII as \xNN, at most `max` bytes of s, "..." when cut.
inline std::string printable(std::string_view s, std::size_t max = 80) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

// Text echoed into a one-line message (a flag's value, a setting's name): control bytes (below
// 0x20, and 0x7F) as \xNN, other bytes as they are (UTF-8 stays readable), at most `max` bytes,
// "..." when cut. The CLI and the library's fit steps both use it.
inline std::string escape_controls(std::string_view s, std::size_t max = SIZE_MAX) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace backprop::detail
