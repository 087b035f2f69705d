// ONNX export (onnx.hpp), written with protobuf from src/io/onnx_schema.proto.
#include "backprop/onnx.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <span>
#include <string_view>

#include "backprop/error.hpp"
#include "backprop/io.hpp"
#include "backprop/version.hpp"
#include "onnx_schema.pb.h"

namespace backprop {

namespace {

namespace pb = onnx_schema;
using nlohmann::json;

// Activation g as an ONNX operator; empty for identity, which needs no node.
std::string_view onnx_op(Activation g) {
  switch (g) {
    case Activation::kSigmoid:
      return "Sigmoid";
    case Activation::kTanh:
      return "Tanh";
    case Activation::kRelu:
      return "Relu";
    case Activation::kLeakyRelu:
      return "LeakyRelu";
    case Activation::kSoftmax:
      return "Softmax";
    case Activation::kIdentity:
      break;
  }
  return {};
}

// A float initializer: the values little-endian, whatever the host order.
void add_initializer(pb::GraphProto& graph, const std::string& name,
                     const std::vector<std::int64_t>& dims, std::span<const float> values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw Error(ErrorCode::kNumeric, "refusing to export a model whose tensor " + name +
                                           " holds a non-finite value at element " +
                                           std::to_string(i));
    }
  }
  pb::TensorProto* t = graph.add_initializer();
  t->set_name(name);
  t->set_data_type(pb::TensorProto::FLOAT);
  for (std::int64_t d : dims) t->add_dims(d);
  std::string raw(values.size() * 4, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &values[i], 4);
    for (std::size_t b = 0; b < 4; ++b) raw[i * 4 + b] = static_cast<char>(u >> (8 * b));
  }
  t->set_raw_data(std::move(raw));
}

pb::NodeProto* add_node(pb::GraphProto& graph, std::string_view op, const std::string& name,
                        const std::vector<std::string>& inputs, const std::string& output) {
  pb::NodeProto* n = graph.add_node();
  n->set_op_type(std::string(op));
  n->set_name(name);
  for (const std::string& in : inputs) n->add_input(in);
  n->add_output(output);
  return n;
}

// A float tensor of shape [batch, width], batch named so that any number of rows runs.
void add_value_info(google::protobuf::RepeatedPtrField<pb::ValueInfoProto>* list,
                    const std::string& name, Index width, const std::string& doc) {
  pb::ValueInfoProto* v = list->Add();
  v->set_name(name);
  v->set_doc_string(doc);
  pb::TypeProto::Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(pb::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param("batch");
  t->mutable_shape()->add_dim()->set_dim_value(width);
}

std::string join(const std::vector<std::string>& names, std::size_t max_names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < max_names; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > max_names) out += ", ...";
  return out;
}

}  // namespace

std::vector<std::uint8_t> serialize_onnx(const Model& model, const ModelInfo& info) {
  const ModelSpec& spec = model.spec();
  const Index n_in = model.n_inputs();
  pb::ModelProto m;
  m.set_ir_version(kOnnxIrVersion);
  m.set_producer_name("backprop");
  m.set_producer_version(std::string(version()));
  m.set_doc_string("multilayer perceptron exported by backprop");
  pb::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);

  pb::GraphProto& g = *m.mutable_graph();
  g.set_name("backprop_mlp");
  add_value_info(
      g.mutable_input(), "input", n_in,
      "raw features, in the order of metadata feature_names: " + join(info.feature_names, 8));

  // Preprocessing: x' = (x − shift) · scale, as Sub and Div when they change anything.
  std::string x = "input";
  const Preprocess& pre = info.preprocess;
  if (pre.shift.size() != pre.scale.size() ||
      (!pre.shift.empty() && pre.shift.size() != static_cast<std::size_t>(n_in))) {
    throw Error(ErrorCode::kUsage, "ONNX export: the preprocessing has " +
                                       std::to_string(pre.shift.size()) + " shifts and " +
                                       std::to_string(pre.scale.size()) + " scales for " +
                                       std::to_string(n_in) + " inputs");
  }
  if (!pre.shift.empty()) {
    bool any_shift = false, any_scale = false, divisible = true;
    std::vector<float> divisor(pre.scale.size());
    for (std::size_t j = 0; j < pre.scale.size(); ++j) {
      any_shift = any_shift || pre.shift[j] != 0.0f;
      any_scale = any_scale || pre.scale[j] != 1.0f;
      divisor[j] = static_cast<float>(1.0 / static_cast<double>(pre.scale[j]));
      divisible = divisible && std::isfinite(divisor[j]) && divisor[j] != 0.0f;
    }
    if (any_shift) {
      add_initializer(g, "input_shift", {n_in}, pre.shift);
      add_node(g, "Sub", "preprocess_shift", {x, "input_shift"}, "input_shifted");
      x = "input_shifted";
    }
    if (any_scale) {
      if (divisible) {
        add_initializer(g, "input_divisor", {n_in}, divisor);
        add_node(g, "Div", "preprocess_scale", {x, "input_divisor"}, "input_scaled");
      } else {
        add_initializer(g, "input_scale", {n_in}, pre.scale);
        add_node(g, "Mul", "preprocess_scale", {x, "input_scale"}, "input_scaled");
      }
      x = "input_scaled";
    }
  }

  // Regression with standardised targets: the last layer gives standardised targets, which Mul
  // and Add turn into the targets' units (output_to_target).
  const bool to_targets = pre.standardizes_targets();
  if (to_targets && (pre.target_scale.size() != static_cast<std::size_t>(model.n_outputs()) ||
                     pre.target_shift.size() != pre.target_scale.size())) {
    throw Error(ErrorCode::kUsage, "ONNX export: the target standardisation has " +
                                       std::to_string(pre.target_shift.size()) + " shifts and " +
                                       std::to_string(pre.target_scale.size()) + " scales for " +
                                       std::to_string(model.n_outputs()) + " outputs");
  }
  const std::string last_out = to_targets ? "output_standardized" : "output";
  const Index L = model.n_layers();
  for (Index l = 0; l < L; ++l) {
    const bool last = l + 1 == L;
    const Activation act = model.activation(l);
    const std::string layer = std::to_string(l + 1);
    const std::string wname = std::to_string(2 * l) + ".weight";
    const std::string bname = std::to_string(2 * l) + ".bias";
    ConstMatrixView w = model.weight(l);
    add_initializer(g, wname, {w.rows, w.cols},
                    std::span<const float>(w.data, static_cast<std::size_t>(w.size())));
    add_initializer(g, bname, {w.rows}, model.bias(l));

    const std::string_view op = onnx_op(act);
    const std::string z = last && op.empty() ? last_out : "z" + layer;
    pb::NodeProto* gemm = add_node(g, "Gemm", "gemm" + layer, {x, wname, bname}, z);
    pb::AttributeProto* trans_b = gemm->add_attribute();
    trans_b->set_name("transB");
    trans_b->set_type(pb::AttributeProto::INT);
    trans_b->set_i(1);
    x = z;
    if (op.empty()) continue;

    const std::string a = last ? last_out : "a" + layer;
    pb::NodeProto* n = add_node(g, op, std::string(to_string(act)) + layer, {x}, a);
    if (act == Activation::kLeakyRelu) {
      pb::AttributeProto* alpha = n->add_attribute();
      alpha->set_name("alpha");
      alpha->set_type(pb::AttributeProto::FLOAT);
      alpha->set_f(static_cast<float>(spec.leaky_slope));
    } else if (act == Activation::kSoftmax) {
      pb::AttributeProto* axis = n->add_attribute();
      axis->set_name("axis");
      axis->set_type(pb::AttributeProto::INT);
      axis->set_i(1);
    }
    x = a;
  }
  if (to_targets) {
    const Index k = model.n_outputs();
    add_initializer(g, "target_scale", {k}, pre.target_scale);
    add_node(g, "Mul", "postprocess_scale", {last_out, "target_scale"}, "output_scaled");
    add_initializer(g, "target_shift", {k}, pre.target_shift);
    add_node(g, "Add", "postprocess_shift", {"output_scaled", "target_shift"}, "output");
  }
  const bool classify = info.task == Task::kClassify;
  add_value_info(g.mutable_output(), "output", model.n_outputs(),
                 classify ? "class probabilities, in the order of metadata class_names: " +
                                join(info.class_names, 8)
                          : "regression outputs, in the order of metadata label_columns: " +
                                join(info.label_columns, 8));

  // The model file's description, with its keys and JSON text.
  auto meta = [&m](const std::string& key, const std::string& value) {
    pb::StringStringEntryProto* e = m.add_metadata_props();
    e->set_key(key);
    e->set_value(value);
  };
  meta("task", classify ? "classify" : "regress");
  meta("class_names", json(info.class_names).dump());
  meta("feature_names", json(info.feature_names).dump());
  meta("label_columns", json(info.label_columns).dump());
  meta("sample_shape", json(info.sample_shape).dump());
  meta("layers", json(spec.layers).dump());
  meta("hidden_activation", std::string(to_string(spec.hidden)));
  meta("output_activation", std::string(to_string(spec.output)));
  meta("loss", std::string(to_string(spec.loss)));
  meta("leaky_relu_slope", json(spec.leaky_slope).dump());
  meta("backprop_version", info.version.empty() ? std::string(version()) : info.version);
  meta("seed", std::to_string(info.seed));
  meta("init", info.init);
  meta("data_hash", info.data_hash);
  meta("train_examples", std::to_string(info.train_examples));
  if (to_targets) {
    meta("target_shift", json(pre.target_shift).dump());
    meta("target_scale", json(pre.target_scale).dump());
  }

  std::string bytes;
  BACKPROP_ASSERT(m.SerializeToString(&bytes));
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

void save_onnx(const std::string& path, const Model& model, const ModelInfo& info) {
  std::vector<std::uint8_t> bytes = serialize_onnx(model, info);
  write_file_atomic(path, bytes);
}

}  // namespace backprop
