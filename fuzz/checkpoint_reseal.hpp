// A checkpoint's checksum, recomputed outside the library (the same fields, in the same order,
// as src/io/checkpoint.cpp: XXH3-128 over every tensor's name, dtype, shape and bytes and every
// metadata entry but "checksum", each field preceded by its 64-bit length), so that a fuzz target
// or a test can change a checkpoint's content and seal it again: its other checks, behind the
// checksum, then see the change. Should the library's checksum change, resealed files fail with
// "checksum mismatch", which fuzz_checkpoint_load and the catalogue tests report.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "backprop/io.hpp"

namespace backprop::fuzz {

inline std::string checkpoint_checksum(const Safetensors& st) {
  XXH3_state_t* h = XXH3_createState();
  XXH3_128bits_reset(h);
  auto add = [&](const void* p, std::size_t n) {
    const std::uint64_t len = n;
    XXH3_128bits_update(h, &len, sizeof len);
    if (n > 0) XXH3_128bits_update(h, p, n);
  };
  for (const Tensor& t : st.tensors) {
    add(t.name.data(), t.name.size());
    add(t.dtype.data(), t.dtype.size());
    add(t.shape.data(), t.shape.size() * sizeof(std::uint64_t));
    add(t.data.data(), t.data.size());
  }
  for (const auto& [key, value] : st.metadata) {
    if (key == "checksum") continue;
    add(key.data(), key.size());
    add(value.data(), value.size());
  }
  const XXH128_hash_t d = XXH3_128bits_digest(h);
  XXH3_freeState(h);
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(d.high64),
                static_cast<unsigned long long>(d.low64));
  return std::string("xxh3-128:") + hex;
}

// st with its checksum recomputed, as file bytes.
inline std::vector<std::uint8_t> reseal_checkpoint(Safetensors st) {
  st.metadata["checksum"] = checkpoint_checksum(st);
  return serialize_safetensors(st);
}

}  // namespace backprop::fuzz
