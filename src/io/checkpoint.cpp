// Checkpoints on the safetensors container (checkpoint.hpp).
#include "backprop/checkpoint.hpp"

#include <dirent.h>
#include <unistd.h>
#include <xxhash.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>
#include "io/printable.hpp"

namespace backprop {

namespace {

using detail::printable;

using nlohmann::json;

constexpr const char* kFormat = "backprop-checkpoint";
constexpr int kFormatVersion = 1;

// ---------------------------------------------------------------------------------------------
// JSON that round-trips every value exactly: doubles as numbers when finite (nlohmann prints the
// shortest text that reads back to the same double) and as strings otherwise; 64-bit integers as
// decimal strings (JSON numbers lose precision above 2^53).

// The deepest nesting of brackets in JSON text, strings skipped, without recursing: checked
// before anything recursive (dump, the CLI's comparison of configurations) meets the value.
int json_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return deepest;
}

json num(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

double to_num(const json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s == "nan") return std::nan("");
    if (s == "inf") return INFINITY;
    if (s == "-inf") return -INFINITY;
  }
  throw Error(ErrorCode::kFormat, std::string("expected a number, found a JSON ") + j.type_name());
}

std::string u64(std::uint64_t v) {
  return std::to_string(v);
}

std::uint64_t to_u64(const json& j) {
  if (!j.is_string()) {
    throw Error(
        ErrorCode::kFormat,
        std::string("expected an unsigned integer as a string, found a JSON ") + j.type_name());
  }
  const std::string& s = j.get_ref<const std::string&>();
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    throw Error(ErrorCode::kFormat, "expected an unsigned integer, found '" + printable(s) + "'");
  }
  return v;
}

// An integer of type T from a JSON integer, refusing fractions, other types and values out of
// T's range (a cast of 1e300 to int would be undefined behaviour, a wrap-around a wrong count).
template <class T>
T integer(const json& j) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<std::uint64_t>();
    if (v <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const auto v = j.get<std::int64_t>();
    if (v >= std::numeric_limits<T>::min() && v <= std::numeric_limits<T>::max()) {
      return static_cast<T>(v);
    }
  }
  throw Error(ErrorCode::kFormat,
              "expected an integer in range, found " +
                  (j.is_number() ? printable(j.dump()) : std::string("a JSON ") + j.type_name()));
}

json metrics_json(const Metrics& m) {
  return {{"n", m.n}, {"loss", num(m.loss)}, {"accuracy", num(m.accuracy)}, {"rmse", num(m.rmse)}};
}

Metrics to_metrics(const json& j) {
  return {integer<Index>(j.at("n")), to_num(j.at("loss")), to_num(j.at("accuracy")),
          to_num(j.at("rmse"))};
}

json epoch_json(const EpochStats& e) {
  json layers = json::array();
  for (const LayerHealth& h : e.layers) {
    layers.push_back({{"weight_norm", num(h.weight_norm)},
                      {"grad_norm", num(h.grad_norm)},
                      {"saturated", num(h.saturated)},
                      {"dead", num(h.dead)}});
  }
  return {{"epoch", e.epoch},
          {"train", metrics_json(e.train)},
          {"val", metrics_json(e.val)},
          {"test", metrics_json(e.test)},
          {"learning_rate", num(e.learning_rate)},
          {"seconds", num(e.seconds)},
          {"samples_per_second", num(e.samples_per_second)},
          {"grad_norm", num(e.grad_norm)},
          {"layers", layers},
          {"skipped_batches", e.skipped_batches},
          {"best", e.best}};
}

EpochStats to_epoch(const json& j) {
  EpochStats e;
  e.epoch = integer<int>(j.at("epoch"));
  e.train = to_metrics(j.at("train"));
  e.val = to_metrics(j.at("val"));
  e.test = to_metrics(j.at("test"));
  e.learning_rate = to_num(j.at("learning_rate"));
  e.seconds = to_num(j.at("seconds"));
  e.samples_per_second = to_num(j.at("samples_per_second"));
  e.grad_norm = to_num(j.at("grad_norm"));
  for (const json& h : j.at("layers")) {
    e.layers.push_back({to_num(h.at("weight_norm")), to_num(h.at("grad_norm")),
                        to_num(h.at("saturated")), to_num(h.at("dead"))});
  }
  e.skipped_batches = integer<Index>(j.at("skipped_batches"));
  e.best = j.at("best").get<bool>();
  return e;
}

json rng_json(const std::array<std::uint64_t, 4>& s) {
  return json::array({u64(s[0]), u64(s[1]), u64(s[2]), u64(s[3])});
}

std::array<std::uint64_t, 4> to_rng(const json& j) {
  if (!j.is_array() || j.size() != 4) throw Error(ErrorCode::kFormat, "an RNG state is 4 numbers");
  std::array<std::uint64_t, 4> s{};
  for (std::size_t i = 0; i < 4; ++i) s[i] = to_u64(j[i]);
  // xoshiro256**'s all-zero state is a fixed point: never a state a seed produces.
  if (s == std::array<std::uint64_t, 4>{}) {
    throw Error(ErrorCode::kFormat, "an RNG state of all zeros is not a valid state");
  }
  return s;
}

json state_json(const TrainState& s) {
  json history = json::array();
  for (const EpochStats& e : s.history) history.push_back(epoch_json(e));
  return {{"epoch", s.epoch},
          {"batch", s.batch},
          {"shuffle_rng", rng_json(s.shuffle_rng)},
          {"dropout_rng", rng_json(s.dropout_rng)},
          {"seen", s.seen},
          {"correct", s.correct},
          {"values", s.values},
          {"skipped", s.skipped},
          {"loss_sum", num(s.loss_sum)},
          {"sq_err", num(s.sq_err)},
          {"plateau_scale", num(s.plateau_scale)},
          {"plateau_best", num(s.plateau_best)},
          {"plateau_bad", s.plateau_bad},
          {"best_val_loss", num(s.best_val_loss)},
          {"best_epoch", s.best_epoch},
          {"bad_epochs", s.bad_epochs},
          {"history", history}};
}

TrainState to_state(const json& j) {
  TrainState s;
  s.epoch = integer<int>(j.at("epoch"));
  s.batch = integer<Index>(j.at("batch"));
  s.shuffle_rng = to_rng(j.at("shuffle_rng"));
  s.dropout_rng = to_rng(j.at("dropout_rng"));
  s.seen = integer<Index>(j.at("seen"));
  s.correct = integer<Index>(j.at("correct"));
  s.values = integer<Index>(j.at("values"));
  s.skipped = integer<Index>(j.at("skipped"));
  s.loss_sum = to_num(j.at("loss_sum"));
  s.sq_err = to_num(j.at("sq_err"));
  s.plateau_scale = to_num(j.at("plateau_scale"));
  s.plateau_best = to_num(j.at("plateau_best"));
  s.plateau_bad = integer<int>(j.at("plateau_bad"));
  s.best_val_loss = to_num(j.at("best_val_loss"));
  s.best_epoch = integer<int>(j.at("best_epoch"));
  s.bad_epochs = integer<int>(j.at("bad_epochs"));
  for (const json& e : j.at("history")) s.history.push_back(to_epoch(e));
  if (s.epoch < 0 || s.batch < 0 || s.seen < 0 || s.skipped < 0 ||
      static_cast<std::size_t>(s.epoch) != s.history.size() || !(s.plateau_scale > 0) ||
      !std::isfinite(s.plateau_scale)) {
    throw Error(ErrorCode::kFormat, "the training state is inconsistent");
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Tensors

template <class T>
Tensor tensor_of(const std::string& name, const char* dtype, std::span<const T> v) {
  Tensor t{name, dtype, {static_cast<std::uint64_t>(v.size())}, {}};
  t.data.resize(v.size() * sizeof(T));
  // Little-endian bytes: the host is little-endian on every platform this builds for, checked.
  static_assert(std::endian::native == std::endian::little);
  if (!v.empty()) std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

template <class T>
std::vector<T> values_of(const Tensor& t, const char* dtype, const std::string& file) {
  if (t.dtype != dtype || t.shape.size() != 1) {
    throw Error(ErrorCode::kFormat,
                file + ": tensor '" + t.name + "' should be a 1-D " + dtype + " vector");
  }
  std::vector<T> v(t.data.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

std::string file_name(const TrainState& s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "checkpoint-%06d-%09lld.safetensors", s.epoch,
                static_cast<long long>(s.batch));
  return buf;
}

bool is_checkpoint_name(const std::string& n) {
  const std::string prefix = "checkpoint-", suffix = ".safetensors";
  return n.size() > prefix.size() + suffix.size() && n.compare(0, prefix.size(), prefix) == 0 &&
         n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         n.find(".tmp.") == std::string::npos;
}

}  // namespace

// XXH3-128 over every tensor and every metadata entry but the checksum itself.
std::string checkpoint_checksum(const Safetensors& st) {
  XXH3_state_t* h = XXH3_createState();
  BACKPROP_ASSERT(h != nullptr);
  XXH3_128bits_reset(h);
  auto add = [&](const void* p, std::size_t n) {
    const std::uint64_t len = n;
    XXH3_128bits_update(h, &len, sizeof len);  // lengths too, so field boundaries count
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
  XXH128_hash_t d = XXH3_128bits_digest(h);
  XXH3_freeState(h);
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(d.high64),
                static_cast<unsigned long long>(d.low64));
  return std::string("xxh3-128:") + hex;
}

std::vector<std::uint8_t> serialize_checkpoint(const Model& model, const ModelInfo& info,
                                               const Optimizer& optimizer, const TrainState& state,
                                               const std::string& config,
                                               const std::string& data_hash) {
  Safetensors st;
  // Wider element types first, so each tensor's data is aligned to its element size.
  std::vector<std::int64_t> order(state.order.begin(), state.order.end());
  st.tensors.push_back(tensor_of<std::int64_t>("state.order", "I64", order));
  OptimizerState os = optimizer.state();
  for (const auto& [name, v] : os.tensors) {
    if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); })) {
      throw Error(ErrorCode::kNumeric, "refusing to write a checkpoint whose optimizer state '" +
                                           name + "' is not finite");
    }
    st.tensors.push_back(tensor_of<float>("optimizer." + name, "F32", v));
  }
  if (!state.best_params.empty()) {
    st.tensors.push_back(tensor_of<float>("state.best_params", "F32", state.best_params));
  }
  std::vector<std::uint8_t> model_bytes = serialize_model(model, info);  // refuses NaN weights
  st.tensors.push_back(tensor_of<std::uint8_t>("model", "U8", model_bytes));

  json counters = json::object();
  for (const auto& [name, v] : os.counters) counters[name] = std::to_string(v);
  st.metadata["format"] = kFormat;
  st.metadata["format_version"] = std::to_string(kFormatVersion);
  st.metadata["config"] = config;
  st.metadata["data_hash"] = data_hash;
  st.metadata["optimizer"] = std::string(optimizer.name());
  st.metadata["optimizer_counters"] = counters.dump();
  st.metadata["state"] = state_json(state).dump();
  st.metadata["checksum"] = checkpoint_checksum(st);
  return serialize_safetensors(st);
}

Checkpoint parse_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name,
                            const ReadLimits& limits) {
  Safetensors st = parse_safetensors(bytes, name, limits);
  auto fail = [&](ErrorCode code, const std::string& what) -> void {
    throw Error(code, name + ": " + what);
  };
  auto meta = [&](const char* key) -> const std::string& {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end())
      fail(ErrorCode::kFormat, std::string("__metadata__ has no '") + key + "'");
    return it->second;
  };
  if (!st.metadata.count("format") || meta("format") != kFormat) {
    fail(ErrorCode::kFormat, "not a backprop checkpoint (no format 'backprop-checkpoint')");
  }
  if (meta("format_version") != std::to_string(kFormatVersion)) {
    fail(ErrorCode::kFormat, "checkpoint format_version '" + printable(meta("format_version")) +
                                 "'; this build reads version " + std::to_string(kFormatVersion));
  }
  if (meta("checksum") != checkpoint_checksum(st)) {
    fail(ErrorCode::kFormat, "checksum mismatch: the checkpoint is corrupt");
  }
  Checkpoint c;
  c.path = name;
  c.config = meta("config");
  c.data_hash = meta("data_hash");
  c.optimizer = meta("optimizer");
  // What the CLI echoes and parses on --resume: a plain optimizer name, a printable hash, and a
  // configuration that is a JSON object.
  auto plain = [](const std::string& v, bool lower_only) {
    if (v.empty() || v.size() > 200) return false;
    return std::all_of(v.begin(), v.end(), [&](char ch) {
      return lower_only ? (ch >= 'a' && ch <= 'z') : (ch >= 0x20 && ch < 0x7F);
    });
  };
  if (!plain(c.optimizer, true)) {
    fail(ErrorCode::kFormat, "optimizer '" + printable(c.optimizer) + "' is not a name");
  }
  if (!plain(c.data_hash, false)) {
    fail(ErrorCode::kFormat, "data_hash '" + printable(c.data_hash) + "' is not printable text");
  }
  // JSON nesting: the state needs 5 levels, the configuration 3.
  for (const char* key : {"config", "optimizer_counters", "state"}) {
    if (json_depth(meta(key)) > 8) {
      fail(ErrorCode::kFormat, std::string(key) + " is nested deeper than 8 levels");
    }
  }
  try {
    if (!json::parse(c.config).is_object()) fail(ErrorCode::kFormat, "config is not a JSON object");
  } catch (const json::exception&) {
    fail(ErrorCode::kFormat, "config is not valid JSON");
  }
  try {
    json counters = json::parse(meta("optimizer_counters"));
    for (const auto& [key, value] : counters.items()) {
      std::uint64_t v = to_u64(value);
      if (v > (std::uint64_t{1} << 62))
        throw Error(ErrorCode::kFormat, "counter '" + printable(key) + "' is too large");
      c.optimizer_state.counters[key] = static_cast<std::int64_t>(v);
    }
    c.state = to_state(json::parse(meta("state")));
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, "malformed state: " + printable(e.what(), 200));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kFormat) throw;
    fail(ErrorCode::kFormat, e.what());
  }
  bool have_model = false;
  for (const Tensor& t : st.tensors) {
    if (t.name == "model") {
      if (t.dtype != "U8") fail(ErrorCode::kFormat, "tensor 'model' should be U8");
      c.model = parse_model(t.data, name + " (model)", limits);
      have_model = true;
    } else if (t.name == "state.order") {
      for (std::int64_t r : values_of<std::int64_t>(t, "I64", name)) {
        if (r < 0) fail(ErrorCode::kFormat, "state.order holds a negative row");
        c.state.order.push_back(static_cast<Index>(r));
      }
    } else if (t.name == "state.best_params") {
      c.state.best_params = values_of<float>(t, "F32", name);
    } else if (t.name.rfind("optimizer.", 0) == 0) {
      c.optimizer_state.tensors[t.name.substr(10)] = values_of<float>(t, "F32", name);
    } else {
      fail(ErrorCode::kFormat, "unexpected tensor '" + t.name + "'");
    }
  }
  if (!have_model) fail(ErrorCode::kFormat, "tensor 'model' is missing");
  // The model's weights are checked by parse_model; the rest must be finite too (the writer
  // refuses to write anything else), or a resumed run would start from NaN.
  auto finite = [&](const std::vector<float>& v, const std::string& what) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!std::isfinite(v[i])) {
        fail(ErrorCode::kFormat, what + " value " + std::to_string(i) + " is not finite");
      }
    }
  };
  for (const auto& [key, v] : c.optimizer_state.tensors) finite(v, "optimizer." + key);
  finite(c.state.best_params, "state.best_params");
  const std::size_t arena = c.model.model.params().size();
  if (!c.state.best_params.empty() && c.state.best_params.size() != arena) {
    fail(ErrorCode::kFormat, "state.best_params does not match the model's parameters");
  }
  return c;
}

Checkpoint read_checkpoint(const std::string& path, const ReadLimits& limits) {
  std::vector<std::uint8_t> bytes = read_file(path, limits.max_input_bytes);
  return parse_checkpoint(bytes, path, limits);
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    throw Error(ErrorCode::kIo, dir + ": opendir failed: " + std::strerror(errno) + " (errno " +
                                    std::to_string(errno) + ")");
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (is_checkpoint_name(n)) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (std::string& n : names) n = dir + "/" + n;
  return names;
}

Checkpoint find_checkpoint(const std::string& dir, const ReadLimits& limits,
                           std::vector<std::string>* skipped) {
  std::vector<std::string> files = list_checkpoints(dir);
  std::string tried;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      return read_checkpoint(*it, limits);
    } catch (const Error& e) {
      if (skipped != nullptr) skipped->push_back(e.what());
      tried += tried.empty() ? "" : "; ";
      tried += e.what();
    }
  }
  throw Error(ErrorCode::kData,
              dir + ": no valid checkpoint" +
                  (files.empty() ? std::string(" (none found)") : " (" + tried + ")"));
}

CheckpointWriter::CheckpointWriter(std::string dir, int keep, std::string config,
                                   std::string data_hash, ModelInfo info)
    : dir_(std::move(dir)),
      keep_(keep),
      config_(std::move(config)),
      data_hash_(std::move(data_hash)),
      info_(std::move(info)) {
  BACKPROP_ASSERT(keep_ >= 1);
}

std::string CheckpointWriter::write(const Model& model, const Optimizer& optimizer,
                                    const TrainState& state) {
  std::vector<std::uint8_t> bytes =
      serialize_checkpoint(model, info_, optimizer, state, config_, data_hash_);
  const std::string path = dir_ + "/" + file_name(state);
  write_file_atomic(path, bytes);
  // Only after the new one is durable: drop the oldest beyond `keep`.
  std::vector<std::string> files = list_checkpoints(dir_);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep_) < files.size(); ++i) {
    ::unlink(files[i].c_str());
  }
  return path;
}

}  // namespace backprop
