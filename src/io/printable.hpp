// Text from a file, made safe for a one-line error message (shared by the model-file and
// checkpoint readers).
#pragma once

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

}  // namespace backprop::detail
