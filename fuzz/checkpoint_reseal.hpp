// A checkpoint with its checksum recomputed by the library (checkpoint_checksum), so that a fuzz
// target or a test can change a checkpoint's content and seal it again: the checks behind the
// checksum then see the change.
#pragma once

#include <cstdint>
#include <vector>

#include "backprop/checkpoint.hpp"
#include "backprop/io.hpp"

namespace backprop::fuzz {

// st with its checksum recomputed, as file bytes.
inline std::vector<std::uint8_t> reseal_checkpoint(Safetensors st) {
  st.metadata["checksum"] = backprop::checkpoint_checksum(st);
  return serialize_safetensors(st);
}

}  // namespace backprop::fuzz
