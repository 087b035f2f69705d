// Private entry points of the IDX loader for bytes already in memory: the fuzz targets
// (fuzz/fuzz_idx.cpp) call these, and load_idx / load_idx_images (data.hpp) run the same code on
// what read_file returns, so what is fuzzed is what the CLI runs.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "backprop/data.hpp"

namespace backprop::detail {

// load_idx_images on a file's bytes: images (raw or gzip, by content), n x d1 x ..., finite.
Dataset parse_idx_images(std::span<const std::uint8_t> images, const std::string& name,
                         const ReadLimits& limits);

// load_idx on two files' bytes: the images, then the role checks of the labels (1 dimension, an
// integer type, one per image, each >= 0 and under limits.max_classes).
Dataset parse_idx_dataset(std::span<const std::uint8_t> images, const std::string& images_name,
                          std::span<const std::uint8_t> labels, const std::string& labels_name,
                          const ReadLimits& limits);

}  // namespace backprop::detail
