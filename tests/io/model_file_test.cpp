// Tests for model files (src/io/model_file.cpp): save -> load round trips over every activation,
// loss and task (parameters, metadata and predictions bitwise equal), the deterministic file
// layout PyTorch expects, every rejection rule of the loader (table-driven, by error code and
// message), truncations and appends (RELIABILITY B.2 items 1-3, A.56-59), refusing to save
// non-finite weights (B.4.6), and I/O errors.
#include "backprop/model_file.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/io.hpp"
#include "backprop/model.hpp"
#include "backprop/rng.hpp"
#include "backprop/version.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

using namespace backprop::test;
using testing::HasSubstr;

constexpr const char* kName = "m.safetensors";

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Weights from the named init, and biases drawn too (init leaves them at zero, which would make a
// round trip of the biases vacuous).
Model make_model(const ModelSpec& spec, std::uint64_t seed) {
  Model m(spec);
  m.init(Init::kLecun, seed);
  Rng rng(seed + 1000);
  for (Index l = 0; l < m.n_layers(); ++l)
    for (float& b : m.bias(l)) b = static_cast<float>(rng.normal());
  return m;
}

Matrix make_batch(Index rows, Index cols, std::uint64_t seed) {
  Rng rng(seed);
  Matrix x(rows, cols);
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) x(i, j) = static_cast<float>(3 * rng.normal());
  return x;
}

std::vector<std::string> numbered(const std::string& prefix, Index n) {
  std::vector<std::string> out;
  for (Index i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

struct RoundTripCase {
  std::string what;
  ModelSpec spec;
  ModelInfo info;
};

// Every hidden activation, every output activation, both losses, both tasks, 1 to 3 hidden layers,
// names that JSON must escape or that are not ASCII, and preprocessing values at float's edges.
std::vector<RoundTripCase> round_trip_cases() {
  std::vector<RoundTripCase> cases;
  {
    RoundTripCase c{"sigmoid hidden, softmax + cross-entropy, names needing escapes", {}, {}};
    c.spec = {.layers = {4, 6, 3},
              .hidden = Activation::kSigmoid,
              .output = Activation::kSoftmax,
              .loss = Loss::kCrossEntropy};
    c.info.task = Task::kClassify;
    c.info.class_names = {"chat \"noir\"", "a, b, c", "猫 – ñandú ü 🐈"};
    c.info.feature_names = {"x,1", "\"x2\"", "x\\3", "ẋ\t4"};
    c.info.label_columns = {"species"};
    c.info.preprocess.shift = {0.0f, -0.0f, 1e-30f, 3.4e38f};
    c.info.preprocess.scale = {1.0f / 255.0f, 1e-30f, 3.4e38f, -0.0f};
    c.info.seed = 42;
    c.info.init = "xavier";
    c.info.data_hash = "xxh3-128:0123456789abcdef0123456789abcdef";
    c.info.train_examples = 150;
    cases.push_back(c);
  }
  {
    RoundTripCase c{"tanh hidden x2, softmax + quadratic, image shape", {}, {}};
    c.spec = {.layers = {9, 7, 5, 4},
              .hidden = Activation::kTanh,
              .output = Activation::kSoftmax,
              .loss = Loss::kQuadratic};
    c.info.class_names = {"0", "1", "2", "3"};
    c.info.feature_names = numbered("pixel", 9);
    c.info.sample_shape = {3, 3};
    c.info.preprocess.shift = std::vector<float>(9, 0.0f);
    c.info.preprocess.scale = std::vector<float>(9, 1.0f / 255.0f);
    c.info.seed = std::numeric_limits<std::uint64_t>::max();
    c.info.init = "xavier";
    c.info.train_examples = 60000;
    cases.push_back(c);
  }
  {
    RoundTripCase c{"relu hidden x3, identity + quadratic, regression on 2 columns", {}, {}};
    c.spec = {.layers = {3, 8, 8, 8, 2},
              .hidden = Activation::kRelu,
              .output = Activation::kIdentity,
              .loss = Loss::kQuadratic};
    c.info.task = Task::kRegress;
    c.info.feature_names = {"rooms", "area, m²", "year"};
    c.info.label_columns = {"price", "log \"price\""};
    c.info.preprocess.shift = {-1.5f, 1e-30f, -3.4e38f};
    c.info.preprocess.scale = {0.125f, 3.4e38f, std::numeric_limits<float>::denorm_min()};
    c.info.seed = 7;
    c.info.init = "he";
    c.info.data_hash = "xxh3-128:ffffffffffffffffffffffffffffffff";
    c.info.train_examples = 1;
    cases.push_back(c);
  }
  {
    RoundTripCase c{"leaky ReLU (slope 0.2) hidden, sigmoid + cross-entropy, one output", {}, {}};
    c.spec = {.layers = {2, 3, 1},
              .hidden = Activation::kLeakyRelu,
              .output = Activation::kSigmoid,
              .loss = Loss::kCrossEntropy,
              .leaky_slope = 0.2};
    c.info.class_names = {"positive"};
    c.info.feature_names = {"", " "};
    c.info.init = "he";
    cases.push_back(c);
  }
  {
    RoundTripCase c{"identity hidden x2, sigmoid + quadratic, empty preprocessing", {}, {}};
    c.spec = {.layers = {5, 4, 4, 3},
              .hidden = Activation::kIdentity,
              .output = Activation::kSigmoid,
              .loss = Loss::kQuadratic};
    c.info.class_names = {"a", "b", "c"};
    c.info.feature_names = numbered("f", 5);
    c.info.init = "lecun";
    cases.push_back(c);
  }
  {
    RoundTripCase c{"leaky ReLU (slope 1/3) hidden x3, identity + quadratic, regression", {}, {}};
    c.spec = {.layers = {1, 2, 3, 2, 2},
              .hidden = Activation::kLeakyRelu,
              .output = Activation::kIdentity,
              .loss = Loss::kQuadratic,
              .leaky_slope = 1.0 / 3.0};
    c.info.task = Task::kRegress;
    c.info.feature_names = {"t"};
    c.info.label_columns = {"sin", "cos"};
    c.info.preprocess.shift = {0.5f};
    c.info.preprocess.scale = {2.0f};
    cases.push_back(c);
  }
  return cases;
}

void expect_same_parameters(const Model& got, const Model& want) {
  ASSERT_EQ(got.n_layers(), want.n_layers());
  for (Index l = 0; l < want.n_layers(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    ConstMatrixView gw = got.weight(l), ww = want.weight(l);
    ASSERT_EQ(gw.rows, ww.rows);
    ASSERT_EQ(gw.cols, ww.cols);
    EXPECT_EQ(std::memcmp(gw.data, ww.data, static_cast<std::size_t>(ww.size()) * sizeof(float)),
              0);
    ASSERT_EQ(got.bias(l).size(), want.bias(l).size());
    EXPECT_EQ(std::memcmp(got.bias(l).data(), want.bias(l).data(), want.bias(l).size_bytes()), 0);
  }
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(bits_of(got[i]), bits_of(want[i])) << "element " << i << ": " << want[i];
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(ModelFile, RoundTripsParametersMetadataAndPredictionsBitwise) {
  TempDir dir;
  std::uint64_t seed = 1;
  for (const RoundTripCase& c : round_trip_cases()) {
    SCOPED_TRACE(c.what);
    Model model = make_model(c.spec, seed++);
    const std::string path = dir / "model.safetensors";
    save_model(path, model, c.info);
    ModelFile loaded = load_model(path);

    EXPECT_EQ(loaded.model.spec(), c.spec);
    expect_same_parameters(loaded.model, model);
    ModelInfo want = c.info;
    want.version = std::string(version());
    EXPECT_EQ(loaded.info, want);
    // == on floats calls -0.0 equal to 0.0; the file must keep the sign too.
    expect_same_bits(loaded.info.preprocess.shift, want.preprocess.shift);
    expect_same_bits(loaded.info.preprocess.scale, want.preprocess.scale);

    Matrix x = make_batch(7, c.spec.layers.front(), seed);
    ConstMatrixView want_out = model.forward(x.view());
    ConstMatrixView got_out = loaded.model.forward(x.view());
    ASSERT_EQ(got_out.rows, want_out.rows);
    ASSERT_EQ(got_out.cols, want_out.cols);
    for (Index i = 0; i < want_out.rows; ++i) {
      EXPECT_EQ(std::memcmp(got_out.row(i), want_out.row(i),
                            static_cast<std::size_t>(want_out.cols) * sizeof(float)),
                0)
          << "prediction row " << i;
    }
  }
}

TEST(ModelFile, RoundTripsThroughBytesWithoutTheFilesystem) {
  const RoundTripCase c = round_trip_cases().front();
  Model model = make_model(c.spec, 3);
  ModelFile loaded = parse_model(serialize_model(model, c.info), kName, {});
  expect_same_parameters(loaded.model, model);
  EXPECT_EQ(loaded.info.class_names, c.info.class_names);
}

TEST(ModelFile, KeepsTheVersionOfTheLibraryThatWroteItNotTheCallers) {
  const RoundTripCase c = round_trip_cases().front();
  ModelInfo info = c.info;
  info.version = "0.0.0-not-this";
  ModelFile loaded = parse_model(serialize_model(make_model(c.spec, 3), info), kName, {});
  EXPECT_EQ(loaded.info.version, version());
}

// Regression with standardised targets: the two vectors round trip; a file written without them
// (every file before issue 15, and every classifier) has no such keys and still loads, as
// targets used as they are.
TEST(ModelFile, KeepsTheTargetStandardisationAndLoadsFilesWithoutIt) {
  const ModelSpec spec{.layers = {3, 4, 2},
                       .hidden = Activation::kTanh,
                       .output = Activation::kIdentity,
                       .loss = Loss::kQuadratic};
  ModelInfo info;
  info.task = Task::kRegress;
  info.feature_names = {"a", "b", "c"};
  info.label_columns = {"u", "v"};
  info.preprocess.shift = {1.0f, 2.0f, 3.0f};
  info.preprocess.scale = {0.5f, 0.25f, 2.0f};
  const Model model = make_model(spec, 9);
  const Bytes plain = serialize_model(model, info);
  const Safetensors plain_st = parse_safetensors(plain, kName, {});
  EXPECT_EQ(plain_st.metadata.count("target_shift"), 0u);
  EXPECT_FALSE(parse_model(plain, kName, {}).info.preprocess.standardizes_targets());

  info.preprocess.target_shift = {5000.0f, -2e6f};
  info.preprocess.target_scale = {1234.5f, 4e5f};
  const ModelFile loaded = parse_model(serialize_model(model, info), kName, {});
  EXPECT_EQ(loaded.info.preprocess, info.preprocess);
  EXPECT_FLOAT_EQ(output_to_target(loaded.info.preprocess, 1, 0.5f), -2e6f + 0.5f * 4e5f);

  // A classifier may not carry them, and a scale must be positive, one per output.
  ModelInfo bad = info;
  bad.preprocess.target_scale = {1.0f, 0.0f};
  test::expect_error([&] { parse_model(serialize_model(model, bad), kName, {}); },
                     ErrorCode::kModel, {"target_scale", "> 0"});
  bad.preprocess.target_scale = {1.0f};
  bad.preprocess.target_shift = {1.0f};
  test::expect_error([&] { parse_model(serialize_model(model, bad), kName, {}); },
                     ErrorCode::kModel, {"target_shift/target_scale", "2 outputs"});
}

// ---------------------------------------------------------------------------------------------
// Layout and determinism

TEST(SerializeModel, IsDeterministicForEqualModels) {
  for (const RoundTripCase& c : round_trip_cases()) {
    SCOPED_TRACE(c.what);
    // Two models built the same way, as two identical training runs would.
    Model a = make_model(c.spec, 11), b = make_model(c.spec, 11);
    const Bytes first = serialize_model(a, c.info);
    EXPECT_EQ(serialize_model(a, c.info), first);
    EXPECT_EQ(serialize_model(b, c.info), first);
    // ...and the bytes do depend on the weights.
    b.weight(0)(0, 0) += 1.0f;
    EXPECT_NE(serialize_model(b, c.info), first);
  }
}

TEST(SerializeModel, LaysOutTensorsAsPyTorchSequentialNamesThem) {
  const ModelSpec spec = {.layers = {4, 6, 5, 3},
                          .hidden = Activation::kTanh,
                          .output = Activation::kSoftmax,
                          .loss = Loss::kCrossEntropy};
  ModelInfo info;
  info.class_names = {"a", "b", "c"};
  info.feature_names = numbered("f", 4);
  Model model = make_model(spec, 5);
  const Bytes bytes = serialize_model(model, info);

  EXPECT_EQ(read_le64(bytes) % 8, 0u);
  Safetensors st = parse_safetensors(bytes, kName, {});
  EXPECT_EQ(st.metadata.at("format"), "backprop-mlp");
  EXPECT_EQ(st.metadata.at("format_version"), "1");
  EXPECT_EQ(st.metadata.at("backprop_version"), version());
  EXPECT_EQ(st.metadata.at("layers"), "[4,6,5,3]");
  EXPECT_EQ(st.metadata.at("hidden_activation"), "tanh");
  EXPECT_EQ(st.metadata.at("output_activation"), "softmax");
  EXPECT_EQ(st.metadata.at("loss"), "cross-entropy");

  struct Expected {
    std::string name;
    std::vector<std::uint64_t> shape;
  };
  const std::vector<Expected> want = {{"0.weight", {6, 4}}, {"0.bias", {6}},
                                      {"2.weight", {5, 6}}, {"2.bias", {5}},
                                      {"4.weight", {3, 5}}, {"4.bias", {3}}};
  ASSERT_EQ(st.tensors.size(), want.size());
  for (std::size_t t = 0; t < want.size(); ++t) {
    SCOPED_TRACE(want[t].name);
    const Tensor& tensor = st.tensors[t];
    EXPECT_EQ(tensor.name, want[t].name);
    EXPECT_EQ(tensor.dtype, "F32");
    EXPECT_EQ(tensor.shape, want[t].shape);
    // Little-endian F32, row-major [out, in], element for element.
    const Index l = static_cast<Index>(t / 2);
    std::vector<float> values;
    if (t % 2 == 0) {
      ConstMatrixView w = model.weight(l);
      values.assign(w.data, w.data + w.size());
    } else {
      values.assign(model.bias(l).begin(), model.bias(l).end());
    }
    ASSERT_EQ(tensor.data.size(), 4 * values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::uint32_t u = 0;
      for (int k = 3; k >= 0; --k) u = (u << 8) | tensor.data[4 * i + static_cast<std::size_t>(k)];
      EXPECT_EQ(u, bits_of(values[i])) << "element " << i;
    }
  }
}

// A pickle starts with 0x80 and a protocol byte 0-5; so does a safetensors file whose header is
// 128 + 256·k bytes long (k <= 5), since the length is little-endian. Such a file must load.
TEST(ParseModel, LoadsFilesWhoseHeaderLengthBeginsLikeAPickle) {
  const RoundTripCase c = round_trip_cases()[3];
  Model model = make_model(c.spec, 9);
  std::set<std::uint64_t> pickle_like;
  for (std::size_t pad = 0; pad < 1500; ++pad) {
    ModelInfo info = c.info;
    info.data_hash = std::string(pad, 'h');
    const Bytes bytes = serialize_model(model, info);
    if (bytes[0] != 0x80 || bytes[1] > 5) continue;
    if (!pickle_like.insert(read_le64(bytes)).second) continue;
    SCOPED_TRACE("header length " + std::to_string(read_le64(bytes)));
    try {
      ModelFile loaded = parse_model(bytes, kName, {});
      expect_same_parameters(loaded.model, model);
      EXPECT_EQ(loaded.info.data_hash, info.data_hash);
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  // The padding reaches several of 128 + 256·k; without them this test would prove nothing.
  EXPECT_GE(pickle_like.size(), 3u);
}

// ---------------------------------------------------------------------------------------------
// Rejections

// The file every rejection starts from: 3 inputs, 4 hidden, 2 outputs; tensors "0.weight",
// "0.bias", "2.weight", "2.bias" in that order.
ModelSpec base_spec() {
  return {.layers = {3, 4, 2},
          .hidden = Activation::kSigmoid,
          .output = Activation::kSoftmax,
          .loss = Loss::kCrossEntropy};
}

ModelInfo base_info() {
  ModelInfo info;
  info.class_names = {"no", "yes"};
  info.feature_names = {"a", "b", "c"};
  info.preprocess.shift = {0.0f, 0.0f, 0.0f};
  info.preprocess.scale = {1.0f, 1.0f, 1.0f};
  return info;
}

Bytes base_file() {
  return serialize_model(make_model(base_spec(), 17), base_info());
}

Safetensors base_safetensors() {
  return parse_safetensors(base_file(), kName, {});
}

// The base file with its container edited, re-serialised canonically.
Bytes with(const std::function<void(Safetensors&)>& edit) {
  Safetensors st = base_safetensors();
  edit(st);
  return serialize_safetensors(st);
}

Tensor& tensor_named(Safetensors& st, const std::string& name) {
  auto it = std::find_if(st.tensors.begin(), st.tensors.end(),
                         [&](const Tensor& t) { return t.name == name; });
  BACKPROP_ASSERT(it != st.tensors.end());
  return *it;
}

void put_float(Tensor& t, std::size_t i, float v) {
  const std::uint32_t u = bits_of(v);
  for (int k = 0; k < 4; ++k)
    t.data[4 * i + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(u >> (8 * k));
}

// The base file with `from` replaced by `to` in its header text (first occurrence), and the
// header length rewritten to match.
Bytes with_header_edit(const std::string& from, const std::string& to) {
  const Bytes base = base_file();
  const std::uint64_t n = read_le64(base);
  std::string header(base.begin() + 8, base.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const auto at = header.find(from);
  BACKPROP_ASSERT(at != std::string::npos);
  header.replace(at, from.size(), to);
  Bytes out = le64(header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), base.begin() + 8 + static_cast<std::ptrdiff_t>(n), base.end());
  return out;
}

Bytes truncated(std::size_t length) {
  Bytes b = base_file();
  b.resize(length);
  return b;
}

struct Rejection {
  std::string what;
  Bytes bytes;
  ErrorCode code;
  std::vector<std::string> says;  // besides the file name
};

std::vector<Rejection> rejections() {
  const Bytes base = base_file();
  const std::size_t n = read_le64(base);
  const std::size_t data_start = 8 + n;
  const auto set_meta = [](const std::string& key, const std::string& value) {
    return with([=](Safetensors& st) { st.metadata[key] = value; });
  };
  const auto drop_meta = [](const std::string& key) {
    return with([=](Safetensors& st) { st.metadata.erase(key); });
  };

  std::vector<Rejection> r;
  // Container errors (kFormat).
  r.push_back({"an empty file", truncated(0), ErrorCode::kFormat, {"too short"}});
  r.push_back({"a file cut inside the header",
               truncated(8 + n / 2),
               ErrorCode::kFormat,
               {"past end of file"}});
  r.push_back({"a file cut at the end of the header",
               truncated(data_start),
               ErrorCode::kFormat,
               {"\"0.weight\"", "truncated"}});
  r.push_back({"a file cut inside the first tensor",
               truncated(data_start + 5),
               ErrorCode::kFormat,
               {"truncated"}});
  r.push_back({"a file missing its last byte",
               truncated(base.size() - 1),
               ErrorCode::kFormat,
               {"\"2.bias\"", "truncated"}});
  {
    Bytes b = base;
    const std::uint64_t past = b.size();  // 8 + past > size
    for (int i = 0; i < 8; ++i)
      b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(past >> (8 * i));
    r.push_back({"a header length past the file", b, ErrorCode::kFormat, {"past end of file"}});
  }
  r.push_back({"bad JSON in the header",
               with_header_edit("\"format\":", "\"format\";"),
               ErrorCode::kFormat,
               {"JSON"}});
  r.push_back({"an unknown dtype",
               with_header_edit("\"dtype\":\"F32\"", "\"dtype\":\"F128\""),
               ErrorCode::kFormat,
               {"unsupported dtype", "F128"}});
  r.push_back({"a shape that does not match the data offsets",
               with_header_edit("\"shape\":[4,3]", "\"shape\":[4,4]"),
               ErrorCode::kFormat,
               {"\"0.weight\"", "data_offsets"}});

  // Model-level errors (kModel).
  r.push_back({"a dtype the model does not support (F64)",
               with([](Safetensors& st) {
                 Tensor& t = tensor_named(st, "0.bias");
                 Bytes data;
                 for (std::size_t i = 0; i < t.data.size(); i += 4) {
                   float f;
                   std::memcpy(&f, t.data.data() + i, 4);
                   std::uint64_t u;
                   double d = f;
                   std::memcpy(&u, &d, 8);
                   for (int k = 0; k < 8; ++k)
                     data.push_back(static_cast<std::uint8_t>(u >> (8 * k)));
                 }
                 t.dtype = "F64";
                 t.data = data;
               }),
               ErrorCode::kModel,
               {"'0.bias'", "dtype F64", "expected F32"}});
  r.push_back({"no __metadata__",
               with([](Safetensors& st) { st.metadata.clear(); }),
               ErrorCode::kModel,
               {"not a backprop model", "'format'"}});
  r.push_back({"another format",
               set_meta("format", "pt"),
               ErrorCode::kModel,
               {"format is 'pt'", "backprop-mlp"}});
  r.push_back({"format_version 2",
               set_meta("format_version", "2"),
               ErrorCode::kModel,
               {"format_version is '2'"}});
  r.push_back(
      {"no format_version", drop_meta("format_version"), ErrorCode::kModel, {"'format_version'"}});
  r.push_back({"no layers", drop_meta("layers"), ErrorCode::kModel, {"'layers'"}});
  r.push_back({"layers that are not a JSON list",
               set_meta("layers", "3,4,2"),
               ErrorCode::kModel,
               {"'layers'", "not a JSON list"}});
  r.push_back({"layers wider than the tensors",
               set_meta("layers", "[3,5,2]"),
               ErrorCode::kModel,
               {"'0.weight'", "shape [4,3]", "expected [5,3]"}});
  r.push_back({"more layers than tensors",
               set_meta("layers", "[3,4,4,2]"),
               ErrorCode::kModel,
               {"'2.weight'", "shape [2,4]", "expected [4,4]"}});
  r.push_back({"a zero-width layer",
               set_meta("layers", "[3,0,2]"),
               ErrorCode::kModel,
               {"'layers'", "found 0"}});
  r.push_back({"an unknown hidden activation",
               set_meta("hidden_activation", "swish"),
               ErrorCode::kModel,
               {"architecture", "swish"}});
  r.push_back({"an unknown output activation",
               set_meta("output_activation", "tanh"),
               ErrorCode::kModel,
               {"architecture", "tanh"}});
  r.push_back(
      {"an unknown loss", set_meta("loss", "hinge"), ErrorCode::kModel, {"architecture", "hinge"}});
  r.push_back({"a leaky slope that is not a number",
               set_meta("leaky_relu_slope", "NaN"),
               ErrorCode::kModel,
               {"'leaky_relu_slope'", "expected a number"}});
  r.push_back({"a missing tensor",
               with([](Safetensors& st) {
                 std::erase_if(st.tensors, [](const Tensor& t) { return t.name == "2.weight"; });
               }),
               ErrorCode::kModel,
               {"'2.weight'", "missing"}});
  r.push_back({"a tensor under another name",
               with([](Safetensors& st) { tensor_named(st, "2.weight").name = "2.weights"; }),
               ErrorCode::kModel,
               {"'2.weight'", "missing"}});
  r.push_back({"an extra layer's tensor",
               with([](Safetensors& st) {
                 st.tensors.push_back({"4.weight", "F32", {2, 2}, Bytes(16, 0)});
               }),
               ErrorCode::kModel,
               {"unexpected tensor '4.weight'"}});
  r.push_back({"an extra tensor of any name",
               with([](Safetensors& st) {
                 st.tensors.push_back({"foo", "F32", {1}, Bytes(4, 0)});
               }),
               ErrorCode::kModel,
               {"unexpected tensor 'foo'"}});
  r.push_back({"a bias of rank 2",
               with([](Safetensors& st) {
                 tensor_named(st, "0.bias").shape = {4, 1};
               }),
               ErrorCode::kModel,
               {"'0.bias'", "shape [4,1]", "expected [4]"}});
  r.push_back({"a NaN weight",
               with([](Safetensors& st) {
                 put_float(tensor_named(st, "2.weight"), 5,
                           std::numeric_limits<float>::quiet_NaN());
               }),
               ErrorCode::kModel,
               {"'2.weight'", "non-finite", "element 5"}});
  r.push_back({"an infinite weight",
               with([](Safetensors& st) {
                 put_float(tensor_named(st, "0.weight"), 0,
                           -std::numeric_limits<float>::infinity());
               }),
               ErrorCode::kModel,
               {"'0.weight'", "non-finite", "element 0"}});
  r.push_back({"an infinite bias",
               with([](Safetensors& st) {
                 put_float(tensor_named(st, "2.bias"), 1, std::numeric_limits<float>::infinity());
               }),
               ErrorCode::kModel,
               {"'2.bias'", "non-finite", "element 1"}});
  r.push_back(
      {"an unknown task", set_meta("task", "cluster"), ErrorCode::kModel, {"task is 'cluster'"}});
  r.push_back({"more class names than outputs",
               set_meta("class_names", R"(["a","b","c"])"),
               ErrorCode::kModel,
               {"class_names has 3 entries for 2 outputs"}});
  r.push_back({"class names that are not strings",
               set_meta("class_names", "[0,1]"),
               ErrorCode::kModel,
               {"'class_names'", "strings"}});
  r.push_back({"a regression without a label column per output",
               with([](Safetensors& st) {
                 st.metadata["task"] = "regress";
                 st.metadata["label_columns"] = R"(["y"])";
               }),
               ErrorCode::kModel,
               {"label_columns has 1 entries for 2 regression outputs"}});
  r.push_back({"fewer feature names than inputs",
               set_meta("feature_names", R"(["a","b"])"),
               ErrorCode::kModel,
               {"feature_names has 2 entries for 3 inputs"}});
  r.push_back({"an input_shift of the wrong length",
               set_meta("input_shift", "[0,0]"),
               ErrorCode::kModel,
               {"input_shift", "2 entries for 3 inputs"}});
  r.push_back({"an input_scale without an input_shift",
               set_meta("input_shift", "[]"),
               ErrorCode::kModel,
               {"input_shift and input_scale differ in length"}});
  r.push_back({"an input_scale beyond float",
               set_meta("input_scale", "[1,1e39,1]"),
               ErrorCode::kModel,
               {"'input_scale'", "outside float's range"}});
  r.push_back({"a sample_shape of zero",
               set_meta("sample_shape", "[0]"),
               ErrorCode::kModel,
               {"'sample_shape'"}});
  r.push_back({"a sample_shape that does not multiply to the inputs",
               set_meta("sample_shape", "[2,2]"),
               ErrorCode::kModel,
               {"sample_shape [2,2] holds 4 values for 3 inputs"}});
  r.push_back({"a seed that is not a number",
               set_meta("seed", "abc"),
               ErrorCode::kModel,
               {"'seed' is 'abc', expected an integer"}});
  r.push_back({"a negative train_examples",
               set_meta("train_examples", "-1"),
               ErrorCode::kModel,
               {"'train_examples' is '-1'"}});
  r.push_back({"class names on a regression model",
               set_meta("task", "regress"),
               ErrorCode::kModel,
               {"label_columns has 0 entries for 2 regression outputs"}});

  // Not safetensors at all: say what it is, and never parse a pickle.
  // The first bytes of a PyTorch .pt (a ZIP's local file header), and Python's own
  // pickle.dumps({'w': [1.0]}, protocol) for protocols 2 and 4.
  const Bytes zip = {0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0x61, 0x72, 0x63,
                     0x68, 0x69, 0x76, 0x65, 0x2f, 0x64, 0x61, 0x74, 0x61, 0x2e, 0x70, 0x6b, 0x6c};
  const Bytes pickle2 = {0x80, 0x02, 0x7d, 0x71, 0x00, 0x58, 0x01, 0x00, 0x00, 0x00,
                         0x77, 0x71, 0x01, 0x5d, 0x71, 0x02, 0x47, 0x3f, 0xf0, 0x00,
                         0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x73, 0x2e};
  const Bytes pickle4 = {0x80, 0x04, 0x95, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                         0x7d, 0x94, 0x8c, 0x01, 0x77, 0x94, 0x5d, 0x94, 0x47, 0x3f, 0xf0,
                         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x73, 0x2e};
  r.push_back({"a ZIP archive (PyTorch .pt)", zip, ErrorCode::kModel, {"ZIP", "only safetensors"}});
  r.push_back({"a protocol-2 pickle", pickle2, ErrorCode::kModel, {"pickle", "only safetensors"}});
  r.push_back({"a protocol-4 pickle", pickle4, ErrorCode::kModel, {"pickle", "only safetensors"}});
  return r;
}

TEST(ParseModel, RejectsEachBrokenFileWithItsCodeAndAMessageNamingFileAndProblem) {
  for (const Rejection& r : rejections()) {
    SCOPED_TRACE(r.what);
    std::vector<std::string> says = r.says;
    says.insert(says.begin(), std::string(kName) + ": ");
    expect_error([&] { parse_model(r.bytes, kName, {}); }, r.code, says);
  }
}

TEST(ParseModel, AcceptsTheBaseFileThatEveryRejectionEdits) {
  ModelFile loaded = parse_model(base_file(), kName, {});
  EXPECT_EQ(loaded.model.spec(), base_spec());
  EXPECT_EQ(loaded.info.feature_names, base_info().feature_names);
  // Re-serialising the parsed container reproduces the file, so `with` edits only what it says.
  EXPECT_EQ(with([](Safetensors&) {}), base_file());
}

// B.2.3: every truncation and every append is rejected, by the container rules.
TEST(ParseModel, RejectsEveryTruncationAndAppend) {
  const Bytes base = base_file();
  for (std::size_t length = 0; length < base.size(); ++length) {
    Bytes b(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(length));
    try {
      parse_model(b, kName, {});
      ADD_FAILURE() << "accepted the file cut to " << length << " of " << base.size() << " bytes";
    } catch (const Error& e) {
      // A cut inside the 8-byte length may leave bytes that begin like a pickle (kModel).
      if (length >= 9) {
        EXPECT_EQ(e.code(), ErrorCode::kFormat) << length << ": " << e.what();
      }
      EXPECT_THAT(e.what(), HasSubstr(kName));
    }
  }
  for (std::size_t extra : {1, 2, 8, 64}) {
    Bytes b = base;
    b.insert(b.end(), extra, 0);
    expect_error([&] { parse_model(b, kName, {}); }, ErrorCode::kFormat,
                 {kName, "unexpected data at end of file"});
  }
}

TEST(ParseModel, RejectsAHeaderOverTheConfiguredLimit) {
  const Bytes base = base_file();
  ReadLimits limits;
  limits.max_header_bytes = read_le64(base) - 1;
  expect_error([&] { parse_model(base, kName, limits); }, ErrorCode::kLimit,
               {kName, "--max-header-bytes"});
}

// ---------------------------------------------------------------------------------------------
// Saving non-finite weights (B.4.6)

TEST(SerializeModel, RefusesNonFiniteParameters) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    Model in_weight = make_model(base_spec(), 1);
    in_weight.weight(1)(1, 3) = bad;
    const std::string kind = std::isnan(bad) ? "NaN" : "Inf";
    const std::string at = "element " + std::to_string(1 * in_weight.weight(1).cols + 3);
    expect_error([&] { serialize_model(in_weight, base_info()); }, ErrorCode::kNumeric,
                 {"refusing to save", "2.weight", "(layer 2)", kind, at});
    Model in_bias = make_model(base_spec(), 1);
    in_bias.bias(0)[2] = bad;
    expect_error([&] { serialize_model(in_bias, base_info()); }, ErrorCode::kNumeric,
                 {"refusing to save", "0.bias", "(layer 1)", kind, "element 2"});
  }
}

TEST(SaveModel, RefusesANanWeightAndLeavesTheExistingFileUntouched) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  Model good = make_model(base_spec(), 1);
  save_model(path, good, base_info());
  const Bytes before = read_bytes(path);
  ASSERT_FALSE(before.empty());

  Model diverged = make_model(base_spec(), 2);
  diverged.weight(0)(2, 1) = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { save_model(path, diverged, base_info()); }, ErrorCode::kNumeric,
               {"refusing to save", "0.weight", "NaN"});
  EXPECT_EQ(read_bytes(path), before);
  // Nothing else was left behind (no temporary file).
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.safetensors"});
  expect_same_parameters(load_model(path).model, good);
}

TEST(SaveModel, ReplacesAnExistingFile) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  save_model(path, make_model(base_spec(), 1), base_info());
  Model second = make_model(base_spec(), 2);
  save_model(path, second, base_info());
  expect_same_parameters(load_model(path).model, second);
}

// ---------------------------------------------------------------------------------------------
// I/O errors

TEST(LoadModel, ReportsAMissingFileAsAnIoErrorNamingIt) {
  TempDir dir;
  const std::string path = dir / "absent.safetensors";
  expect_error([&] { load_model(path); }, ErrorCode::kIo, {path});
}

TEST(LoadModel, ReportsADirectoryAsAnIoErrorNamingIt) {
  TempDir dir;
  expect_error([&] { load_model(dir.path()); }, ErrorCode::kIo, {dir.path()});
}

TEST(LoadModel, NamesThePathInFormatErrors) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  {
    std::ofstream f(path, std::ios::binary);
    f << "not a model";
  }
  expect_error([&] { load_model(path); }, ErrorCode::kFormat, {path + ": "});
}

}  // namespace
}  // namespace backprop
