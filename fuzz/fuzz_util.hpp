// What every fuzz target shares: the oracle for rejections. An input may be accepted or rejected,
// but a rejection must be a backprop::Error with a non-empty message of one printable line (what
// the CLI prints: no raw control byte from the input); any other exception, a crash, a sanitizer
// report, a hang (-timeout) or an allocation past -malloc_limit_mb is a finding. Targets add their
// own checks on accepted inputs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "backprop/error.hpp"

namespace backprop::fuzz {

using Bytes = std::span<const std::uint8_t>;

// Stops the run with a message: libFuzzer saves the input as a crash, the replay test fails.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) finding(what);
}

inline void check_message(const Error& e) {
  const std::string_view msg = e.what();
  if (msg.empty()) finding("an Error with an empty message");
  // One printable line: every control byte (newline, escape, NUL...) that came from the input must
  // have been escaped. The names the targets pass are plain.
  for (char ch : msg) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F)
      finding("an Error message with a raw control byte: " + std::string(msg));
  }
}

// Runs f(); returns true when it returned, false when it threw a clean Error.
template <class F>
bool accepts(F&& f) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    check_message(e);
    return false;
  }
}

// Splits `bytes` at the first `separator`: {before, after}; after is empty when there is none.
inline std::pair<Bytes, Bytes> split_at(Bytes bytes, std::string_view separator) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const std::size_t at = text.find(separator);
  if (at == std::string_view::npos) return {bytes, {}};
  return {bytes.first(at), bytes.subspan(at + separator.size())};
}

}  // namespace backprop::fuzz
