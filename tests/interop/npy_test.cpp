// NumPy .npy arrays in and out (data.hpp's NumPy section, cli/common.cpp, `predict --format npy`):
// every file NumPy writes with an accepted dtype, byte order and format version reads back to its
// values; what the loader must refuse (Fortran order, object arrays, other dtypes, .npz, malformed
// headers and sizes) is refused with one line naming the file and the byte; arrays we write are
// byte for byte what np.save writes; and the CLI trains, evaluates and predicts from .npy files.
// Files are made by NumPy itself (tests/interop/npy_make.py) or byte by byte here.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/model_file.hpp"
#include "interop/interop_util.hpp"

namespace backprop {
namespace {

using interop::json;
using interop::TempDir;
using test::Bytes;
using test::expect_error;

// Element i of an array, as JSON: integers exact, floats as the double they convert to exactly.
json element(const NpyArray& a, std::size_t i) {
  auto le = [&](std::size_t size) {
    std::uint64_t v = 0;
    for (std::size_t b = 0; b < size; ++b) v |= std::uint64_t{a.data[i * size + b]} << (8 * b);
    return v;
  };
  switch (a.type) {
    case NpyType::kBool:
      return a.data[i] != 0;
    case NpyType::kI8:
      return static_cast<std::int8_t>(le(1));
    case NpyType::kU8:
      return le(1);
    case NpyType::kI16:
      return static_cast<std::int16_t>(le(2));
    case NpyType::kU16:
      return le(2);
    case NpyType::kI32:
      return static_cast<std::int32_t>(le(4));
    case NpyType::kU32:
      return le(4);
    case NpyType::kI64:
      return static_cast<std::int64_t>(le(8));
    case NpyType::kU64:
      return le(8);
    case NpyType::kF32:
      return static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(le(4))));
    case NpyType::kF64:
      return std::bit_cast<double>(le(8));
  }
  return nullptr;
}

// A .npy file written byte by byte: magic, version, header length (u16 for 1.0, u32 otherwise),
// `dict` padded with spaces and '\n' to a multiple of 64 bytes, then `payload`.
Bytes npy_file(const std::string& dict, const Bytes& payload, std::uint8_t major = 1) {
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((8 + len_bytes + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', major, 0};
  for (std::size_t b = 0; b < len_bytes; ++b)
    out.push_back(static_cast<std::uint8_t>(header.size() >> (8 * b)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::string dict(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

Bytes floats(const std::vector<float>& v) {
  Bytes out;
  for (float f : v) {
    auto u = std::bit_cast<std::uint32_t>(f);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(u >> (8 * b)));
  }
  return out;
}

Bytes int64s(const std::vector<std::int64_t>& v) {
  Bytes out;
  for (std::int64_t x : v) {
    auto u = static_cast<std::uint64_t>(x);
    for (int b = 0; b < 8; ++b) out.push_back(static_cast<std::uint8_t>(u >> (8 * b)));
  }
  return out;
}

TEST(Npy, ReadsEveryAcceptedArrayNumPyWritesToItsValues) {
  TempDir dir;
  json made = interop::python("npy_make.py", {"make", dir.path().string()}, dir);
  ASSERT_TRUE(made.contains("valid")) << made.dump();
  for (const json& c : made["valid"]) {
    SCOPED_TRACE(c["file"].get<std::string>());
    NpyArray a = read_npy(c["file"], {});
    EXPECT_EQ(to_string(a.type), c["dtype"].get<std::string>());
    EXPECT_EQ(json(a.shape), c["shape"]);
    ASSERT_EQ(a.count(), c["values"].size());
    for (std::size_t i = 0; i < c["values"].size(); ++i)
      EXPECT_EQ(element(a, i), c["values"][i]) << "element " << i;
  }
  EXPECT_GE(made["valid"].size(), 26u);
}

TEST(Npy, RefusesFortranOrderObjectArraysAndOtherDtypesClearly) {
  TempDir dir;
  json made = interop::python("npy_make.py", {"make", dir.path().string()}, dir);
  ASSERT_TRUE(made.contains("invalid")) << made.dump();
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"fortran", {"fortran.npy", "'fortran_order' is True", "np.ascontiguousarray"}},
      {"object", {"object.npy", "(header)", "'|O'", "object array", "never unpickles"}},
      {"complex", {"complex.npy", "'<c8'", "complex"}},
      {"float16", {"float16.npy", "'<f2'", "float16", "astype(np.float32)"}},
      {"strings", {"strings.npy", "'<U3'", "strings"}},
      {"structured", {"structured.npy", "structured"}},
      {"datetime", {"datetime.npy", "'<M8[D]'"}},
      {"npz", {"archive.npz", "byte 0", "ZIP archive", ".npz"}},
  };
  for (const auto& [name, parts] : cases) {
    SCOPED_TRACE(name);
    expect_error([&] { read_npy(made["invalid"][name], {}); }, ErrorCode::kFormat, parts);
  }
}

TEST(Npy, RefusesMalformedFilesNamingTheByte) {
  const Bytes six_floats = floats({1, 2, 3, 4, 5, 6});
  struct Case {
    std::string what;
    Bytes bytes;
    std::vector<std::string> parts;
  };
  Bytes v9 = npy_file(dict("<f4", "(2, 3)"), six_floats);
  v9[6] = 4;
  Bytes long_header = npy_file(dict("<f4", "(2, 3)"), {});
  long_header[8] = 0xFF;
  long_header[9] = 0x7F;
  long_header.resize(100);
  const std::vector<Case> cases = {
      {"empty", {}, {"t.npy: byte 0", "found an empty file"}},
      {"not npy", {'G', 'I', 'F', '8', '9', 'a', 0, 0}, {"byte 0", "47 49 46 38 39 61"}},
      {"version", v9, {"byte 6", "version 1.0, 2.0 or 3.0, found 4.0"}},
      {"header past the end", long_header, {"byte 8", "header length 32767 runs past the end"}},
      {"no shape", npy_file("{'descr': '<f4', 'fortran_order': False}", {}), {"no 'shape' key"}},
      {"duplicate key",
       npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                floats({1})),
       {"byte 27 (header)", "duplicate key 'descr'"}},
      {"unknown key",
       npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", floats({1})),
       {"unexpected key 'extra'"}},
      {"expression",
       npy_file("{'descr': __import__('os'), 'fortran_order': False, 'shape': (1,)}", floats({1})),
       {"byte 20 (header)", "expected a dtype string", "found '__import__"}},
      {"negative dimension",
       npy_file(dict("<f4", "(-1, 3)"), {}),
       {"expected a non-negative integer or ')'", "found '-1"}},
      {"dimension too large",
       npy_file(dict("<f4", "(99999999999999999999,)"), {}),
       {"is over 2^63 - 1"}},
      {"shape overflow",
       npy_file(dict("<f4", "(4294967296, 4294967296, 4294967296)"), {}),
       {"shape (4294967296, 4294967296, 4294967296) holds more than 2^64 items"}},
      {"native order", npy_file(dict("=f4", "(2, 3)"), six_floats), {"'=f4'", "native byte order"}},
      {"escape", npy_file(dict("<f\\x34", "(2, 3)"), six_floats), {"escape sequences"}},
      {"not ascii", npy_file(dict("<f\xE9", "(2, 3)"), six_floats), {"printable ASCII", "\\xE9"}},
      {"text after the dict",
       npy_file(dict("<f4", "(2, 3)") + " x", six_floats),
       {"only spaces after the dict", "found 'x  "}},
      {"truncated",
       npy_file(dict("<f4", "(2, 3)"), floats({1, 2, 3, 4, 5})),
       {"byte 128: shape (2, 3) of <f4 needs 24 bytes of data, found 20 (a truncated file?)"}},
      {"trailing",
       npy_file(dict("<f4", "(2, 3)"), floats({1, 2, 3, 4, 5, 6, 7})),
       {"needs 24 bytes of data, found 28 (trailing bytes)"}},
      {"bad dtype", npy_file(dict("<x9", "(2, 3)"), six_floats), {"'<x9' is not supported"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    expect_error([&] { parse_npy(c.bytes, "t.npy", {}); }, ErrorCode::kFormat, c.parts);
  }
  ReadLimits small;
  small.max_header_bytes = 32;
  expect_error([&] { parse_npy(npy_file(dict("<f4", "(2, 3)"), six_floats), "t.npy", small); },
               ErrorCode::kLimit, {"t.npy: byte 8", "over the limit of 32 (max_header_bytes)"});
  // Version 2.0 (a 4-byte header length) and a header that Python 2 wrote ('L' suffixes).
  NpyArray v2 = parse_npy(npy_file(dict("<f4", "(2L, 3L)"), six_floats, 2), "t.npy", {});
  EXPECT_EQ(v2.shape, (std::vector<std::uint64_t>{2, 3}));
}

TEST(Npy, LoadsFeaturesAndLabelsAndNamesTheElementOfABadOne) {
  TempDir dir;
  auto file = [&](const std::string& name, const Bytes& b) { return dir.write(name, b); };
  const std::string x = file("x.npy", npy_file(dict("<f4", "(3, 2)"), floats({1, 2, 3, 4, 5, 6})));
  const std::string y = file("y.npy", npy_file(dict("<i8", "(3,)"), int64s({2, 0, 2})));
  Dataset ds = load_npy(x, y, Task::kClassify, {});
  EXPECT_EQ(ds.format, DataFormat::kNpy);
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.n_features, 2);
  EXPECT_EQ(ds.x_f32, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ds.labels, (std::vector<std::int32_t>{2, 0, 2}));
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"x0", "x1"}));
  EXPECT_EQ(ds.label_columns, (std::vector<std::string>{"label"}));
  EXPECT_EQ(ds.labels_source, y);

  // uint8 images are kept as bytes and scaled like IDX; float labels holding whole numbers are
  // classes; (n, 1) labels are a column.
  const std::string img =
      file("img.npy", npy_file(dict("|u1", "(2, 2, 2)"), {0, 1, 2, 3, 4, 5, 6, 255}));
  const std::string yf = file("yf.npy", npy_file(dict("<f4", "(2, 1)"), floats({1, 0})));
  ds = load_npy(img, yf, Task::kClassify, {});
  EXPECT_EQ(ds.x_u8, (Bytes{0, 1, 2, 3, 4, 5, 6, 255}));
  EXPECT_EQ(ds.value_scale, 1.0f / 255.0f);
  EXPECT_EQ(ds.sample_shape, (std::vector<Index>{2, 2}));
  EXPECT_EQ(ds.labels, (std::vector<std::int32_t>{1, 0}));

  // Regression: (n, k) targets.
  const std::string t = file("t.npy", npy_file(dict(">f8", "(3, 2)"), [] {
                               Bytes b;
                               for (double v : {1.5, -2.0, 3.0, 4.0, 5.0, 6.25}) {
                                 auto u = std::bit_cast<std::uint64_t>(v);
                                 for (int k = 7; k >= 0; --k)
                                   b.push_back(static_cast<std::uint8_t>(u >> (8 * k)));
                               }
                               return b;
                             }()));
  ds = load_npy(x, t, Task::kRegress, {});
  EXPECT_EQ(ds.targets, (std::vector<float>{1.5f, -2, 3, 4, 5, 6.25f}));
  EXPECT_EQ(ds.label_columns, (std::vector<std::string>{"y0", "y1"}));
  EXPECT_TRUE(ds.class_names.empty());

  struct Bad {
    std::string what, x, y;
    Task task;
    ErrorCode code;
    std::vector<std::string> parts;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Bad> bad = {
      {"int features",
       file("xi.npy", npy_file(dict("<i8", "(3, 1)"), int64s({1, 2, 3}))),
       y,
       Task::kClassify,
       ErrorCode::kData,
       {"xi.npy", "expected features of dtype float32, float64 or uint8, found int64 ('<i8')"}},
      {"0-d features",
       file("x0.npy", npy_file(dict("<f4", "()"), floats({1}))),
       y,
       Task::kClassify,
       ErrorCode::kData,
       {"x0.npy", "0-d array"}},
      {"nan feature",
       file("xn.npy", npy_file(dict("<f4", "(3, 2)"), floats({1, 2, nan, 4, 5, 6}))),
       y,
       Task::kClassify,
       ErrorCode::kData,
       {"xn.npy: byte 136 (example 1, value 0)", "expected a finite value", "found nan"}},
      {"count mismatch",
       x,
       file("y2.npy", npy_file(dict("<i8", "(2,)"), int64s({0, 1}))),
       Task::kClassify,
       ErrorCode::kData,
       {"y2.npy: holds 2 labels", "x.npy holds 3 examples"}},
      {"negative label",
       x,
       file("yn.npy", npy_file(dict("<i8", "(3,)"), int64s({0, 1, -1}))),
       Task::kClassify,
       ErrorCode::kData,
       {"yn.npy: byte 144 (label 2)", "expected a class index >= 0, found -1"}},
      {"fractional label",
       x,
       file("yh.npy", npy_file(dict("<f4", "(3,)"), floats({0, 0.5f, 1}))),
       Task::kClassify,
       ErrorCode::kData,
       {"yh.npy: byte 132 (label 1)", "0.5", "--task regress"}},
      {"one-hot labels",
       x,
       file("y1h.npy", npy_file(dict("<f4", "(3, 2)"), floats({1, 0, 0, 1, 1, 0}))),
       Task::kClassify,
       ErrorCode::kData,
       {"y1h.npy", "found (3, 2)", "y.argmax(1)"}},
      {"too many classes",
       x,
       file("yb.npy", npy_file(dict("<i8", "(3,)"), int64s({0, 70000, 1}))),
       Task::kClassify,
       ErrorCode::kLimit,
       {"yb.npy: byte 136 (label 1)", "over the limit of 65536"}},
      {"nan target",
       x,
       file("tn.npy", npy_file(dict("<f4", "(3, 2)"), floats({1, 2, 3, nan, 5, 6}))),
       Task::kRegress,
       ErrorCode::kData,
       {"tn.npy: byte 140 (example 1, target 1)", "found nan"}},
      {"3-d labels",
       x,
       file("y3.npy", npy_file(dict("<f4", "(3, 1, 1)"), floats({1, 2, 3}))),
       Task::kRegress,
       ErrorCode::kData,
       {"y3.npy: expected labels of shape (3,) or (3, k)"}},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.what);
    expect_error([&] { load_npy(b.x, b.y, b.task, {}); }, b.code, b.parts);
  }
}

TEST(Npy, ArraysWeWriteAreWhatNpSaveWrites) {
  TempDir dir;
  json cases = json::array();
  const std::vector<std::vector<std::uint64_t>> shapes = {{1000, 10}, {7, 1}, {5}, {2, 3, 4}, {}};
  int i = 0;
  for (const auto& shape : shapes) {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> v(n);
    for (std::uint64_t k = 0; k < n; ++k) v[k] = static_cast<float>(k) * 0.37f - 11.5f;
    const std::string path = dir / ("w" + std::to_string(i++) + ".npy");
    test::write_bytes(path, serialize_npy(v, shape));
    cases.push_back({{"file", path}, {"shape", shape}, {"values", v}});
  }
  interop::write_text(dir / "cases.json", cases.dump());
  json out = interop::python("npy_make.py", {"load", dir / "cases.json"}, dir);
  ASSERT_EQ(out["cases"].size(), shapes.size()) << out.dump();
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    const json& c = out["cases"][k];
    SCOPED_TRACE(c.dump());
    EXPECT_EQ(c["dtype"], "<f4");
    EXPECT_EQ(c["shape"], json(shapes[k]));
    EXPECT_TRUE(c["equal"].get<bool>());
    EXPECT_FALSE(c["fortran"].get<bool>());
    EXPECT_TRUE(c["same_bytes_as_np_save"].get<bool>());
  }
}

// The same images as IDX and as a uint8 array train to the same model file, byte for byte.
TEST(Npy, CliTrainsEvaluatesAndPredictsFromNpyAsFromIdx) {
  TempDir dir;
  const std::string d = dir.path().string();
  cli_test::Gaussian g(17);
  const std::uint32_t n = 120, side = 5;
  Bytes pixels, labels;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint8_t label = static_cast<std::uint8_t>(i % 3);
    labels.push_back(label);
    for (std::uint32_t p = 0; p < side * side; ++p) {
      const bool lit = p % 3 == label;
      pixels.push_back(static_cast<std::uint8_t>((lit ? 150 : 0) + g.bits() % 100));
    }
  }
  dir.write("images.idx", cli_test::idx_bytes(0x08, {n, side, side}, pixels));
  dir.write("labels.idx", cli_test::idx_bytes(0x08, {n}, labels));
  dir.write("images.npy", npy_file(dict("|u1", "(120, 5, 5)"), pixels));
  dir.write("labels.npy", npy_file(dict("|u1", "(120,)"), labels));
  for (const char* kind : {"idx", "npy"}) {
    interop::cli(
        {"train", "--train", d + "/images." + kind, "--labels", d + "/labels." + kind, "--hidden",
         "8", "--epochs", "3", "--seed", "4", "--quiet", "--save", d + "/" + kind + ".safetensors"},
        dir);
  }
  EXPECT_EQ(test::read_bytes(d + "/idx.safetensors"), test::read_bytes(d + "/npy.safetensors"));

  // eval with .npy test data and labels: the same figures as with IDX.
  interop::RunResult from_idx =
      interop::cli({"eval", "--model", d + "/npy.safetensors", "--test", d + "/images.idx",
                    "--test-labels", d + "/labels.idx", "--json"},
                   dir);
  interop::RunResult from_npy =
      interop::cli({"eval", "--model", d + "/npy.safetensors", "--test", d + "/images.npy",
                    "--test-labels", d + "/labels.npy", "--json"},
                   dir);
  EXPECT_EQ(from_idx.out, from_npy.out);

  // predict: CSV and .npy hold the same probabilities.
  interop::cli({"predict", "--model", d + "/npy.safetensors", "--input", d + "/images.npy",
                "--format", "npy", "--output", d + "/p.npy"},
               dir);
  interop::RunResult csv = interop::cli(
      {"predict", "--model", d + "/npy.safetensors", "--input", d + "/images.npy"}, dir);
  NpyArray p = read_npy(d + "/p.npy", {});
  ASSERT_EQ(p.shape, (std::vector<std::uint64_t>{120, 3}));
  std::vector<std::string> lines;
  for (std::size_t start = 0; start < csv.out.size();) {
    std::size_t end = csv.out.find('\n', start);
    lines.push_back(csv.out.substr(start, end - start));
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 121u);
  for (std::size_t i = 0; i < 120; ++i) {
    std::vector<std::string> fields;
    for (std::size_t start = 0;;) {
      std::size_t comma = lines[i + 1].find(',', start);
      fields.push_back(lines[i + 1].substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    ASSERT_EQ(fields.size(), 4u) << lines[i + 1];
    for (std::size_t k = 0; k < 3; ++k)
      EXPECT_EQ(std::stof(fields[k + 1]), element(p, i * 3 + k).get<double>()) << i << "," << k;
  }

  // Errors: labels the model does not know, a missing labels file, an unknown format.
  dir.write("labels9.npy", npy_file(dict("|u1", "(120,)"), Bytes(120, 9)));
  interop::RunResult r = interop::run(interop::kCli,
                                      {"eval", "--model", d + "/npy.safetensors", "--test",
                                       d + "/images.npy", "--test-labels", d + "/labels9.npy"},
                                      dir);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("labels9.npy: label 0 (0-based) is class index 9, but the model has 3"),
            std::string::npos)
      << r.err;
  // Fortran order and object arrays, as training data, labels or test data: exit 1, one line
  // naming the file.
  dir.write("fortran.npy",
            npy_file("{'descr': '|u1', 'fortran_order': True, 'shape': (120, 25), }", pixels));
  dir.write("object.npy", npy_file(dict("|O", "(120,)"), Bytes(120 * 8, 0)));
  const std::vector<std::pair<std::vector<std::string>, std::string>> refused = {
      {{"train", "--train", d + "/fortran.npy", "--labels", d + "/labels.npy", "--no-save"},
       "fortran.npy: header: 'fortran_order' is True"},
      {{"train", "--train", d + "/images.npy", "--labels", d + "/object.npy", "--no-save"},
       "object.npy: byte 20 (header): dtype '|O' is an object array"},
      {{"eval", "--model", d + "/npy.safetensors", "--test", d + "/fortran.npy", "--test-labels",
        d + "/labels.npy"},
       "fortran.npy: header: 'fortran_order' is True"},
      {{"predict", "--model", d + "/npy.safetensors", "--input", d + "/fortran.npy"},
       "fortran.npy: header: 'fortran_order' is True"},
  };
  for (const auto& [args, message] : refused) {
    interop::RunResult bad = interop::run(interop::kCli, args, dir);
    EXPECT_EQ(bad.exit_code, 1) << bad.describe();
    EXPECT_NE(bad.err.find(message), std::string::npos) << bad.describe();
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.describe();
  }

  r = interop::run(interop::kCli, {"train", "--train", d + "/images.npy", "--no-save"}, dir);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("is a NumPy array: give its labels with --labels FILE"), std::string::npos)
      << r.err;
  r = interop::run(interop::kCli,
                   {"predict", "--model", d + "/npy.safetensors", "--input", d + "/images.npy",
                    "--format", "parquet"},
                   dir);
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST(NpyShard, ReadsOnlyItsRowsOfTheFeaturesAndTheWholeLabels) {
  // 5 examples of 2 float32 features; NaN in every row but shard 1 of 2's (rows 3-4, parts of 3
  // and 2): a reader of only its rows never meets them.
  TempDir dir;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::string x = dir.write(
      "x.npy", npy_file(dict("<f4", "(5, 2)"), floats({nan, 1, 2, nan, nan, 3, 6, 7, 8, 9})));
  const std::string y = dir.write("y.npy", npy_file(dict("<i8", "(5,)"), int64s({4, 0, 1, 3, 2})));
  Dataset part = load_npy(x, y, Task::kClassify, {}, Shard{1, 2});
  EXPECT_EQ(part.n, 2);
  EXPECT_EQ(part.first_row, 3);
  EXPECT_EQ(part.total_rows, 5);
  EXPECT_EQ(part.x_f32, (std::vector<float>{6, 7, 8, 9}));
  EXPECT_EQ(part.labels, (std::vector<std::int32_t>{3, 2}));
  EXPECT_EQ(part.class_names.size(), 5u);  // the whole labels file's classes
  // Shard 0 meets the NaN of its row 0, named by its place in the file.
  expect_error(
      [&] {
        load_npy(x, y, Task::kClassify, {}, Shard{0, 2});
      },
      ErrorCode::kData, {"x.npy: byte 128", "(example 0, value 0)", "finite"});
  // A whole read does too.
  expect_error([&] { load_npy(x, y, Task::kClassify, {}); }, ErrorCode::kData, {"example 0"});

  // Regression targets are cut to the part as well; a long header (over the first 4 KiB read)
  // and format 2.0 are found all the same.
  std::string long_dict = dict("<f4", "(4, 1)");
  long_dict.insert(long_dict.size() - 1, std::string(5000, ' '));
  const std::string x2 = dir.write("x2.npy", npy_file(long_dict, floats({10, 11, 12, 13}), 2));
  const std::string t =
      dir.write("t.npy", npy_file(dict("<f4", "(4, 2)"), floats({0, 1, 2, 3, 4, 5, 6, 7})));
  Dataset r = load_npy(x2, t, Task::kRegress, {}, Shard{2, 3});  // parts of 2, 1, 1: row 3
  EXPECT_EQ(r.n, 1);
  EXPECT_EQ(r.first_row, 3);
  EXPECT_EQ(r.x_f32, (std::vector<float>{13}));
  EXPECT_EQ(r.targets, (std::vector<float>{6, 7}));
  // The size is checked as for a whole read.
  Bytes cut = npy_file(dict("<f4", "(4, 1)"), floats({10, 11, 12, 13}));
  cut.pop_back();
  const std::string x3 = dir.write("x3.npy", cut);
  expect_error(
      [&] {
        load_npy(x3, t, Task::kRegress, {}, Shard{0, 3});
      },
      ErrorCode::kFormat, {"x3.npy", "a truncated file"});
}

}  // namespace
}  // namespace backprop
