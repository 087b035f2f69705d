// Model files on the safetensors container (model_file.hpp).
#include "backprop/model_file.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <string_view>

#include "backprop/version.hpp"
#include "io/printable.hpp"
#include "util/checked.hpp"

namespace backprop {

namespace {

using detail::printable;

using nlohmann::json;

std::string weight_name(Index l) {
  return std::to_string(2 * l) + ".weight";
}
std::string bias_name(Index l) {
  return std::to_string(2 * l) + ".bias";
}

// True when `name` is weight_name(l) or bias_name(l) for some l < n_layers.
bool is_layer_tensor_name(const std::string& name, Index n_layers) {
  const auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return false;
  const std::string_view suffix = std::string_view(name).substr(dot + 1);
  if (suffix != "weight" && suffix != "bias") return false;
  Index k = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + dot, k);
  // Canonical spelling only: "2.weight", not "02.weight" or "+2.weight".
  if (ec != std::errc() || end != name.data() + dot || k < 0 || k % 2 != 0 || k / 2 >= n_layers)
    return false;
  return name.compare(0, dot, std::to_string(k)) == 0;
}

std::string_view to_string(Task t) {
  return t == Task::kClassify ? "classify" : "regress";
}

// Little-endian float bytes, whatever the host order.
void put_floats(std::span<const float> v, std::vector<std::uint8_t>& out) {
  out.resize(v.size() * 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int b = 0; b < 4; ++b)
      out[i * 4 + static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(u >> (8 * b));
  }
}

float get_float(const std::uint8_t* p) {
  std::uint32_t u = static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                    static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <class V>
std::string json_list(const V& v) {
  return json(v).dump();
}

// Control bytes of a message escaped (\xNN), whatever their origin: the message is one line.
std::string one_line(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    } else {
      out += ch;
    }
  }
  return out;
}

// The reader: every failure names the file and the key.
class MetaReader {
 public:
  MetaReader(const std::map<std::string, std::string>& meta, const std::string& name)
      : meta_(meta), name_(name) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kModel, one_line(name_ + ": " + what));
  }

  bool has(const std::string& key) const { return meta_.count(key) != 0; }

  const std::string& str(const std::string& key) const {
    auto it = meta_.find(key);
    if (it == meta_.end()) fail("__metadata__ has no '" + key + "'");
    return it->second;
  }

  json list(const std::string& key) const {
    json j = json::parse(str(key), nullptr, /*allow_exceptions=*/false);
    if (!j.is_array()) fail("__metadata__ '" + key + "' is not a JSON list");
    return j;
  }

  std::vector<std::string> strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& e : list(key)) {
      if (!e.is_string()) fail("__metadata__ '" + key + "' must hold strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  std::vector<Index> indices(const std::string& key, Index lo, Index hi) const {
    std::vector<Index> out;
    for (const auto& e : list(key)) {
      if (!e.is_number_integer() || e.get<std::int64_t>() < lo || e.get<std::int64_t>() > hi) {
        fail("__metadata__ '" + key + "' must hold integers from " + std::to_string(lo) + " to " +
             std::to_string(hi) + ", found " + e.dump());
      }
      out.push_back(e.get<Index>());
    }
    return out;
  }

  std::vector<float> floats(const std::string& key) const {
    std::vector<float> out;
    for (const auto& e : list(key)) {
      if (!e.is_number()) fail("__metadata__ '" + key + "' must hold numbers");
      double d = e.get<double>();
      // Checked before the conversion: a double outside float's range does not convert.
      if (!(std::abs(d) <= static_cast<double>(FLT_MAX))) {
        fail("__metadata__ '" + key + "' holds " + e.dump() + ", outside float's range");
      }
      out.push_back(static_cast<float>(d));
    }
    return out;
  }

  // A decimal unsigned integer, as the writer prints it; absent keys give `fallback`.
  std::uint64_t count(const std::string& key, std::uint64_t max, std::uint64_t fallback) const {
    if (!has(key)) return fallback;
    const std::string& s = str(key);
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > max) {
      fail("__metadata__ '" + key + "' is '" + printable(s) + "', expected an integer from 0 to " +
           std::to_string(max));
    }
    return v;
  }

  double number(const std::string& key) const {
    const std::string& s = str(key);
    json j = json::parse(s, nullptr, false);
    if (!j.is_number() || !std::isfinite(j.get<double>())) {
      fail("__metadata__ '" + key + "' is '" + printable(s) + "', expected a number");
    }
    return j.get<double>();
  }

 private:
  const std::map<std::string, std::string>& meta_;
  const std::string& name_;
};

}  // namespace

std::vector<std::uint8_t> serialize_model(const Model& model, const ModelInfo& info) {
  const ModelSpec& spec = model.spec();
  Safetensors st;
  auto& m = st.metadata;
  m["format"] = "backprop-mlp";
  m["format_version"] = std::to_string(kModelFormatVersion);
  m["layers"] = json_list(spec.layers);
  m["hidden_activation"] = std::string(to_string(spec.hidden));
  m["output_activation"] = std::string(to_string(spec.output));
  m["loss"] = std::string(to_string(spec.loss));
  m["leaky_relu_slope"] = json(spec.leaky_slope).dump();
  m["task"] = std::string(to_string(info.task));
  m["class_names"] = json_list(info.class_names);
  m["feature_names"] = json_list(info.feature_names);
  m["label_columns"] = json_list(info.label_columns);
  m["sample_shape"] = json_list(info.sample_shape);
  m["input_shift"] = json_list(info.preprocess.shift);
  m["input_scale"] = json_list(info.preprocess.scale);
  // Only when the targets are standardised, so that every other file keeps its bytes.
  if (info.preprocess.standardizes_targets()) {
    m["target_shift"] = json_list(info.preprocess.target_shift);
    m["target_scale"] = json_list(info.preprocess.target_scale);
  }
  m["backprop_version"] = std::string(version());
  m["seed"] = std::to_string(info.seed);
  m["init"] = info.init;
  m["data_hash"] = info.data_hash;
  m["train_examples"] = std::to_string(info.train_examples);

  for (Index l = 0; l < model.n_layers(); ++l) {
    ConstMatrixView w = model.weight(l);
    auto b = model.bias(l);
    std::span<const float> wspan(w.data, static_cast<std::size_t>(w.size()));
    for (const auto& [tname, s] : {std::pair{weight_name(l), wspan}, std::pair{bias_name(l), b}}) {
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (!std::isfinite(s[i])) {
          throw Error(ErrorCode::kNumeric, "refusing to save a model whose tensor " + tname +
                                               " (layer " + std::to_string(l + 1) + ") holds " +
                                               (std::isnan(s[i]) ? "NaN" : "Inf") + " at element " +
                                               std::to_string(i));
        }
      }
    }
    Tensor tw{weight_name(l),
              "F32",
              {static_cast<std::uint64_t>(w.rows), static_cast<std::uint64_t>(w.cols)},
              {}};
    put_floats(wspan, tw.data);
    Tensor tb{bias_name(l), "F32", {static_cast<std::uint64_t>(b.size())}, {}};
    put_floats(b, tb.data);
    st.tensors.push_back(std::move(tw));
    st.tensors.push_back(std::move(tb));
  }
  return serialize_safetensors(st);
}

void save_model(const std::string& path, const Model& model, const ModelInfo& info) {
  std::vector<std::uint8_t> bytes = serialize_model(model, info);
  write_file_atomic(path, bytes);
}

ModelFile parse_model(std::span<const std::uint8_t> bytes, const std::string& name,
                      const ReadLimits& limits) {
  // Never unpickle: say what the file is instead of failing on its first 8 bytes.
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0) {
    throw Error(ErrorCode::kModel, name +
                                       ": is a ZIP archive (a PyTorch .pt/.pth file?); only "
                                       "safetensors model files are supported");
  }
  // A safetensors header of 128 + 256·k bytes (k <= 5) also begins 80 0k: its byte 8 opens the
  // JSON header, where a pickle has an opcode or frame-length byte.
  const bool json_follows =
      bytes.size() > 8 && (bytes[8] == '{' || bytes[8] == ' ' || bytes[8] == '\t' ||
                           bytes[8] == '\n' || bytes[8] == '\r');
  if (bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5 && !json_follows) {
    throw Error(ErrorCode::kModel, name +
                                       ": is a Python pickle; only safetensors model files "
                                       "are supported, and pickles are never loaded");
  }
  Safetensors st = parse_safetensors(bytes, name, limits);
  MetaReader meta(st.metadata, name);
  if (!meta.has("format")) {
    meta.fail("not a backprop model: __metadata__ has no 'format' (expected 'backprop-mlp')");
  }
  if (meta.str("format") != "backprop-mlp") {
    meta.fail("format is '" + printable(meta.str("format")) + "', expected 'backprop-mlp'");
  }
  const std::string& fv = meta.str("format_version");
  if (fv != std::to_string(kModelFormatVersion)) {
    meta.fail("format_version is '" + printable(fv) + "'; this build reads version " +
              std::to_string(kModelFormatVersion));
  }

  ModelSpec spec;
  spec.layers = meta.indices("layers", 1, Index{1} << 24);
  try {
    spec.hidden = parse_activation(meta.str("hidden_activation"));
    spec.output = parse_activation(meta.str("output_activation"));
    spec.loss = parse_loss(meta.str("loss"));
    spec.leaky_slope = meta.number("leaky_relu_slope");
    spec.validate();
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUsage) throw;
    meta.fail("architecture: " + printable(e.what(), 300));
  }

  // Exactly the expected tensors, each F32 with its shape, and nothing else. Names are checked
  // one by one (an O(tensors x layers) search would let a header of many tensors and a long
  // layers list take hours), and every shape before the model is allocated, so that its size is
  // backed by tensor data actually in the file, not by the layers metadata alone.
  std::map<std::string, const Tensor*> by_name;
  for (const Tensor& t : st.tensors) by_name[t.name] = &t;
  const Index L = spec.n_layers();
  if (static_cast<Index>(st.tensors.size()) != 2 * L) {
    for (const Tensor& t : st.tensors) {
      if (!is_layer_tensor_name(t.name, L))
        meta.fail("unexpected tensor '" + t.name + "' for a " + std::to_string(L) + "-layer model");
    }
  }
  auto expected_tensors = [&](Index l) {
    auto u = static_cast<std::size_t>(l);
    const std::vector<std::uint64_t> wshape = {static_cast<std::uint64_t>(spec.layers[u + 1]),
                                               static_cast<std::uint64_t>(spec.layers[u])};
    const std::vector<std::uint64_t> bshape = {static_cast<std::uint64_t>(spec.layers[u + 1])};
    return std::array{std::pair{weight_name(l), wshape}, std::pair{bias_name(l), bshape}};
  };
  for (Index l = 0; l < L; ++l) {
    for (const auto& [tname, shape] : expected_tensors(l)) {
      auto it = by_name.find(tname);
      if (it == by_name.end()) meta.fail("tensor '" + tname + "' is missing");
      const Tensor& t = *it->second;
      if (t.dtype != "F32")
        meta.fail("tensor '" + tname + "' has dtype " + t.dtype + ", expected F32");
      if (t.shape != shape) {
        meta.fail("tensor '" + tname + "' has shape " + json(t.shape).dump() + ", expected " +
                  json(shape).dump() + " from layers " + json(spec.layers).dump());
      }
    }
  }
  Model model(spec);
  for (Index l = 0; l < L; ++l) {
    for (const auto& [tname, shape] : expected_tensors(l)) {
      const Tensor& t = *by_name.at(tname);
      float* dst = tname == weight_name(l) ? model.weight(l).data : model.bias(l).data();
      std::size_t count = t.data.size() / 4;
      for (std::size_t i = 0; i < count; ++i) {
        float v = get_float(t.data.data() + 4 * i);
        if (!std::isfinite(v))
          meta.fail("tensor '" + tname + "' holds a non-finite value at element " +
                    std::to_string(i));
        dst[i] = v;
      }
    }
  }

  ModelInfo info;
  const std::string& task = meta.str("task");
  if (task == "classify") {
    info.task = Task::kClassify;
  } else if (task == "regress") {
    info.task = Task::kRegress;
  } else {
    meta.fail("task is '" + printable(task) + "', expected classify or regress");
  }
  info.class_names = meta.strings("class_names");
  info.feature_names = meta.strings("feature_names");
  info.label_columns = meta.strings("label_columns");
  info.sample_shape = meta.indices("sample_shape", 1, Index{1} << 31);
  info.preprocess.shift = meta.floats("input_shift");
  info.preprocess.scale = meta.floats("input_scale");
  const auto n_in = static_cast<std::size_t>(spec.layers.front());
  const auto n_out = static_cast<std::size_t>(spec.layers.back());
  if (info.task == Task::kClassify && info.class_names.size() != n_out) {
    meta.fail("class_names has " + std::to_string(info.class_names.size()) + " entries for " +
              std::to_string(n_out) + " outputs");
  }
  if (info.task == Task::kRegress && info.label_columns.size() != n_out) {
    meta.fail("label_columns has " + std::to_string(info.label_columns.size()) + " entries for " +
              std::to_string(n_out) + " regression outputs");
  }
  if (info.task == Task::kRegress && !info.class_names.empty()) {
    meta.fail("class_names must be empty for a regression model, found " +
              std::to_string(info.class_names.size()) + " names");
  }
  if (!info.sample_shape.empty()) {
    std::uint64_t product = 1;
    bool fits = true;
    for (Index d : info.sample_shape) {
      fits = fits && detail::checked_mul(product, static_cast<std::uint64_t>(d), product);
    }
    if (!fits || product != n_in) {
      meta.fail("sample_shape " + json(info.sample_shape).dump() + " holds " +
                (fits ? std::to_string(product) : std::string("more than 2^64")) + " values for " +
                std::to_string(n_in) + " inputs");
    }
  }
  if (info.feature_names.size() != n_in) {
    meta.fail("feature_names has " + std::to_string(info.feature_names.size()) + " entries for " +
              std::to_string(n_in) + " inputs");
  }
  for (const auto* v : {&info.preprocess.shift, &info.preprocess.scale}) {
    if (!v->empty() && v->size() != n_in) {
      meta.fail("input_shift/input_scale have " + std::to_string(v->size()) + " entries for " +
                std::to_string(n_in) + " inputs");
    }
  }
  if (info.preprocess.shift.size() != info.preprocess.scale.size()) {
    meta.fail("input_shift and input_scale differ in length");
  }
  // Files written before target standardisation have neither key: outputs are the targets.
  if (meta.has("target_shift") || meta.has("target_scale")) {
    if (info.task != Task::kRegress) meta.fail("target_shift/target_scale in a classifier");
    info.preprocess.target_shift = meta.floats("target_shift");
    info.preprocess.target_scale = meta.floats("target_scale");
    for (const auto* v : {&info.preprocess.target_shift, &info.preprocess.target_scale}) {
      if (v->size() != n_out) {
        meta.fail("target_shift/target_scale have " + std::to_string(v->size()) + " entries for " +
                  std::to_string(n_out) + " outputs");
      }
    }
    for (float v : info.preprocess.target_scale) {
      if (!(v > 0)) meta.fail("target_scale holds " + json(v).dump() + ", expected > 0");
    }
  }
  info.version = meta.has("backprop_version") ? meta.str("backprop_version") : "";
  info.init = meta.has("init") ? meta.str("init") : "";
  info.data_hash = meta.has("data_hash") ? meta.str("data_hash") : "";
  info.seed = meta.count("seed", UINT64_MAX, 0);
  info.train_examples = static_cast<Index>(meta.count("train_examples", INT64_MAX, 0));
  return ModelFile{std::move(model), std::move(info)};
}

Preprocess model_preprocess(const ModelInfo& info, const Dataset& ds) {
  Preprocess pre = info.preprocess.shift.empty() ? scale_preprocess(ds) : info.preprocess;
  pre.target_shift = info.preprocess.target_shift;
  pre.target_scale = info.preprocess.target_scale;
  return pre;
}

ModelFile load_model(const std::string& path, const ReadLimits& limits) {
  std::vector<std::uint8_t> bytes = read_file(path, limits.max_input_bytes);
  return parse_model(bytes, path, limits);
}

}  // namespace backprop
