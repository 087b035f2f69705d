// Model files: safetensors that PyTorch opens as they are. Layer l's parameters are the tensors
// "{2l}.weight" (F32, out×in) and "{2l}.bias" (F32, out), the names PyTorch gives the Linear
// modules of nn.Sequential(Linear, activation, Linear, activation, ...). "__metadata__" holds, as
// strings (JSON text for lists): format "backprop-mlp" and format_version "1"; layers,
// hidden_activation, output_activation, loss, leaky_relu_slope; task, class_names, feature_names,
// label_columns, sample_shape; input_shift and input_scale (the preprocessing); for regression
// with standardised targets target_shift and target_scale (absent otherwise); and provenance:
// backprop_version, seed, init, data_hash, train_examples. No timestamps: the same training run
// writes the same bytes. docs/formats.md lists every key.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backprop/batch.hpp"
#include "backprop/data.hpp"
#include "backprop/io.hpp"
#include "backprop/model.hpp"

namespace backprop {

// What a model file says beyond the architecture and the weights.
struct ModelInfo {
  Task task = Task::kClassify;
  std::vector<std::string> class_names;    // classify: one per output
  std::vector<std::string> feature_names;  // one per input
  std::vector<std::string> label_columns;  // where labels/targets came from
  std::vector<Index> sample_shape;         // {28, 28} for images
  Preprocess preprocess;                   // empty vectors: inputs used as they are
  // provenance
  std::string version;  // of the library that wrote the file (save_model fills it)
  std::uint64_t seed = 0;
  std::string init;
  std::string data_hash;
  Index train_examples = 0;
  bool operator==(const ModelInfo&) const = default;
};

// The preprocessing the model applies to rows of ds: the file's, or (a file without input
// preprocessing) ds's natural scale; the file's target standardisation either way.
Preprocess model_preprocess(const ModelInfo& info, const Dataset& ds);

struct ModelFile {
  Model model;
  ModelInfo info;
};

inline constexpr int kModelFormatVersion = 1;

// The file's bytes (deterministic), and an atomic write of them. Throws Error(kNumeric) if a
// weight is not finite, so a diverged run never replaces a good file.
std::vector<std::uint8_t> serialize_model(const Model& model, const ModelInfo& info);
void save_model(const std::string& path, const Model& model, const ModelInfo& info);

// Reads and validates a model file: the safetensors rules (io.hpp), then format and version, the
// architecture, every expected tensor present with the right dtype and shape and no other,
// finite weights, and metadata consistent with the shapes. Throws Error(kFormat/kModel/kIo).
ModelFile parse_model(std::span<const std::uint8_t> bytes, const std::string& name,
                      const ReadLimits& limits);
ModelFile load_model(const std::string& path, const ReadLimits& limits = {});

}  // namespace backprop
