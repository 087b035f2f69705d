// ONNX export: a trained network as an ONNX model (IR version 7, default-domain opset 13) that
// ONNX Runtime and other runtimes run as they are. The graph, for L layers:
//
//   input [batch × I] ─► Sub(input_shift) ─► Div(input_divisor) ─► Gemm(0.weight, 0.bias, transB)
//     ─► hidden activation ─► ... ─► Gemm(2(L−1).weight, 2(L−1).bias) ─► output activation ─►
//     output
//
// "batch" is a named (dynamic) dimension, so any number of rows runs. Gemm computes x·Wᵀ + b with
// W stored out × in, exactly as the model file stores it (initializers keep the tensor names).
// Activations are Sigmoid, Tanh, Relu, LeakyRelu(alpha = slope) and Softmax(axis 1); identity adds
// no node. The preprocessing x' = (x − shift) · scale becomes Sub and Div by 1/scale (rounded to
// float; Mul by scale if some 1/scale is not finite), each left out when it does nothing (shift all
// 0, scale all 1, or no preprocessing in the file). A regression model trained on standardised
// targets ends in Mul(target_scale) and Add(target_shift), so that "output" is in the targets'
// units as predict gives it. metadata_props carry the model file's
// description as strings, with the same keys and JSON text as its __metadata__: class_names (the
// output columns, in order), feature_names, label_columns, task, layers, hidden_activation,
// output_activation, loss, leaky_relu_slope, sample_shape, backprop_version, seed, init, data_hash,
// train_examples (and target_shift, target_scale when present). The same model gives the same
// bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backprop/model.hpp"
#include "backprop/model_file.hpp"

namespace backprop {

inline constexpr int kOnnxIrVersion = 7;
inline constexpr int kOnnxOpset = 13;

// The serialized ModelProto. Throws Error(kNumeric) if a weight or the preprocessing is not finite.
std::vector<std::uint8_t> serialize_onnx(const Model& model, const ModelInfo& info);
// serialize_onnx, written atomically to path (io.hpp's write_file_atomic).
void save_onnx(const std::string& path, const Model& model, const ModelInfo& info);

}  // namespace backprop
