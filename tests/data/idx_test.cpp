// Tests for the IDX loaders (src/data/idx.cpp): round trips of every type and rank, raw and gzip,
// the Dataset built from an images/labels pair, and every bad file of RELIABILITY.md cases 1-30.
// Files are written here, big-endian, byte by byte, so the tests do not share code with the reader.
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

using namespace backprop::test;

void put_be(Bytes& out, std::uint64_t v, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k)
    out.push_back(static_cast<std::uint8_t>(v >> (8 * (n - 1 - k))));
}

Bytes idx_header(IdxType t, const std::vector<std::uint32_t>& dims) {
  Bytes out = {0, 0, static_cast<std::uint8_t>(t), static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) put_be(out, d, 4);
  return out;
}

// A whole IDX file: header, then `values` encoded as type t, big-endian.
Bytes idx_file(IdxType t, const std::vector<std::uint32_t>& dims,
               const std::vector<double>& values) {
  Bytes out = idx_header(t, dims);
  for (double v : values) {
    switch (t) {
      case IdxType::kU8:
        out.push_back(static_cast<std::uint8_t>(v));
        break;
      case IdxType::kI8:
        put_be(out, static_cast<std::uint8_t>(static_cast<std::int8_t>(v)), 1);
        break;
      case IdxType::kI16:
        put_be(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(v)), 2);
        break;
      case IdxType::kI32:
        put_be(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(v)), 4);
        break;
      case IdxType::kF32:
        put_be(out, std::bit_cast<std::uint32_t>(static_cast<float>(v)), 4);
        break;
      case IdxType::kF64:
        put_be(out, std::bit_cast<std::uint64_t>(v), 8);
        break;
    }
  }
  return out;
}

// Random values that type t holds exactly.
std::vector<double> random_values(IdxType t, std::size_t n, std::mt19937& rng) {
  std::vector<double> v(n);
  std::uniform_real_distribution<double> real(-1e6, 1e6);
  for (double& x : v) {
    switch (t) {
      case IdxType::kU8:
        x = static_cast<double>(rng() % 256);
        break;
      case IdxType::kI8:
        x = static_cast<double>(static_cast<int>(rng() % 256) - 128);
        break;
      case IdxType::kI16:
        x = static_cast<double>(static_cast<int>(rng() % 65536) - 32768);
        break;
      case IdxType::kI32:
        x = static_cast<double>(static_cast<std::int32_t>(rng()));
        break;
      case IdxType::kF32:
        x = static_cast<float>(real(rng));
        break;
      case IdxType::kF64:
        x = real(rng) / 3.0;
        break;
    }
  }
  return v;
}

// Rejections take microseconds; decoding or allocating what a lying header declares (64 MiB to
// 1 TiB) would take seconds, even in an optimised build. Generous for sanitizer builds.
constexpr double kFailFastSeconds = 0.5;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const IdxType kAllTypes[] = {IdxType::kU8,  IdxType::kI8,  IdxType::kI16,
                             IdxType::kI32, IdxType::kF32, IdxType::kF64};

void expect_values(const IdxArray& a, IdxType t, const std::vector<std::uint32_t>& dims,
                   const std::vector<double>& values) {
  EXPECT_EQ(a.type, t);
  EXPECT_EQ(a.dims, dims);
  EXPECT_EQ(a.count(), values.size());
  if (t == IdxType::kU8) {
    ASSERT_EQ(a.u8.size(), values.size());
    EXPECT_TRUE(a.values.empty());
    for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(a.u8[i], values[i]);
  } else {
    EXPECT_TRUE(a.u8.empty());
    EXPECT_EQ(a.values, values);  // exact: every IDX type converts to double without rounding
  }
}

TEST(ParseIdx, RoundTripsEveryTypeAndRankRawAndGzip) {
  std::mt19937 rng(42);
  ReadLimits limits;
  for (IdxType t : kAllTypes) {
    for (std::size_t rank = 1; rank <= 4; ++rank) {
      for (int trial = 0; trial < 10; ++trial) {
        std::vector<std::uint32_t> dims(rank);
        std::size_t n = 1;
        for (auto& d : dims) {
          d = 1 + rng() % 5;
          n *= d;
        }
        SCOPED_TRACE(testing::Message() << "type " << int(t) << " rank " << rank);
        std::vector<double> values = random_values(t, n, rng);
        Bytes file = idx_file(t, dims, values);
        expect_values(parse_idx(file, "a.idx", limits), t, dims, values);
        expect_values(parse_idx(gzip_bytes(file), "a.idx.gz", limits), t, dims, values);
      }
    }
  }
}

TEST(ParseIdx, KeepsNonFiniteFloatsForTheCallerToJudge) {
  double nan = std::numeric_limits<double>::quiet_NaN();
  IdxArray a = parse_idx(idx_file(IdxType::kF64, {2}, {nan, -INFINITY}), "f.idx", {});
  EXPECT_TRUE(std::isnan(a.values[0]));
  EXPECT_EQ(a.values[1], -INFINITY);
}

TEST(ParseIdx, ReadsConcatenatedGzipMembers) {
  std::mt19937 rng(1);
  std::vector<double> values = random_values(IdxType::kI16, 6 * 7 * 8, rng);
  Bytes file = idx_file(IdxType::kI16, {6, 7, 8}, values);
  // Members split inside the header and inside the payload.
  Bytes gz = concat(concat(gzip_bytes(Bytes(file.begin(), file.begin() + 6)),
                           gzip_bytes(Bytes(file.begin() + 6, file.begin() + 100))),
                    gzip_bytes(Bytes(file.begin() + 100, file.end())));
  expect_values(parse_idx(gz, "m.gz", {}), IdxType::kI16, {6, 7, 8}, values);
}

TEST(ReadIdx, ReadsRawAndGzipFilesByContentNotName) {
  TempDir dir;
  std::mt19937 rng(2);
  std::vector<double> values = random_values(IdxType::kU8, 3 * 4 * 5, rng);
  Bytes file = idx_file(IdxType::kU8, {3, 4, 5}, values);
  // A gzip file without .gz and a raw file with .gz: content decides.
  expect_values(read_idx(dir.write("plain.gz", file), {}), IdxType::kU8, {3, 4, 5}, values);
  expect_values(read_idx(dir.write("packed.idx", gzip_bytes(file)), {}), IdxType::kU8, {3, 4, 5},
                values);
}

struct BadCase {
  std::string what;
  Bytes bytes;
  ErrorCode code;
  std::vector<std::string> parts;
};

std::vector<BadCase> bad_raw_cases() {
  Bytes good = idx_file(IdxType::kU8, {2, 3}, {1, 2, 3, 4, 5, 6});
  std::vector<BadCase> c;
  c.push_back({"0-byte file", {}, ErrorCode::kFormat, {"bad.idx: byte 0", "empty file"}});
  c.push_back({"3-byte file",
               {0, 0, 8},
               ErrorCode::kFormat,
               {"bad.idx: byte 3", "4-byte IDX magic", "end of data after 3 bytes"}});
  c.push_back({"byte-swapped magic",
               {3, 8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 7},
               ErrorCode::kFormat,
               {"bad.idx: byte 0", "byte-swapped", "00 00 08 03", "found 03 08 00 00"}});
  c.push_back(
      {"byte-swapped f64 magic", {1, 0x0E, 0, 0}, ErrorCode::kFormat, {"bad.idx", "byte-swapped"}});
  c.push_back({"non-zero magic",
               {'P', 'K', 3, 4, 0, 0},
               ErrorCode::kFormat,
               {"bad.idx: byte 0", "expected 00 00", "found 50 4B"}});
  for (std::uint8_t type : {0x0A, 0x00, 0xFF}) {
    c.push_back({"type code",
                 {0, 0, type, 1, 0, 0, 0, 1, 0},
                 ErrorCode::kFormat,
                 {"bad.idx: byte 2", "expected an IDX element type",
                  type == 0x0A ? "found 0A"
                  : type == 0  ? "found 00"
                               : "found FF"}});
  }
  c.push_back(
      {"ndims 0", {0, 0, 8, 0}, ErrorCode::kFormat, {"bad.idx: byte 3", "at least 1", "found 0"}});
  c.push_back({"header truncated in dims",
               {0, 0, 8, 3, 0, 0, 0, 2, 0, 0},
               ErrorCode::kFormat,
               {"bad.idx: byte 10", "3 dimension sizes", "16-byte header", "truncated header"}});
  c.push_back({"zero dimension",
               idx_header(IdxType::kU8, {5, 0, 3}),
               ErrorCode::kFormat,
               {"bad.idx: byte 8", "dimension 2 of 3", "at least 1, found 0"}});
  c.push_back({"dims product overflows",
               idx_header(IdxType::kF64, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}),
               ErrorCode::kFormat,
               {"bad.idx", "4294967295 x 4294967295 x 4294967295", "overflows 64 bits"}});
  c.push_back({"bytes overflow",
               idx_header(IdxType::kF64, {0xFFFFFFFF, 0xFFFFFFFF}),
               ErrorCode::kFormat,
               {"bad.idx", "f64", "payload size does not fit in 63 bits"}});
  c.push_back({"payload larger than file",
               Bytes(good.begin(), good.end() - 1),
               ErrorCode::kFormat,
               {"bad.idx: byte 12", "2 x 3 u8 = 6 payload bytes", "holds 5", "truncated"}});
  c.push_back({"huge declared payload",
               idx_header(IdxType::kI32, {60000, 28, 28}),
               ErrorCode::kFormat,
               {"bad.idx: byte 16", "188160000 payload bytes", "holds 0"}});
  c.push_back({"trailing bytes",
               concat(good, {0, 0, 0}),
               ErrorCode::kFormat,
               {"bad.idx: byte 18", "expected end of file", "found 3 more bytes"}});
  return c;
}

TEST(ParseIdx, RejectsEveryBadRawFileWithItsPlace) {
  for (const BadCase& c : bad_raw_cases()) {
    SCOPED_TRACE(c.what);
    auto start = std::chrono::steady_clock::now();
    expect_error([&] { parse_idx(c.bytes, "bad.idx", {}); }, c.code, c.parts);
    EXPECT_LT(seconds_since(start), kFailFastSeconds);
  }
}

TEST(ParseIdx, ReportsIdxErrorsInsideGzipWithTheFileName) {
  for (const BadCase& c : bad_raw_cases()) {
    if (c.bytes.size() < 2) continue;
    SCOPED_TRACE(c.what);
    expect_error([&] { parse_idx(gzip_bytes(c.bytes), "bad.idx.gz", {}); }, c.code,
                 {"(inside bad.idx.gz)"});
  }
  expect_error(
      [] {
        parse_idx(gzip_bytes(Bytes{0, 0, 0x0A, 1}), "x.gz", {});
      },
      ErrorCode::kFormat, {"decoded byte 2", "found 0A", "(inside x.gz)"});
  expect_error(
      [] { parse_idx(gzip_bytes(gzip_bytes(idx_file(IdxType::kU8, {1}, {0}))), "x.gz", {}); },
      ErrorCode::kFormat, {"gzip data inside gzip", "(inside x.gz)"});
  Bytes good = idx_file(IdxType::kU8, {2, 3}, {1, 2, 3, 4, 5, 6});
  expect_error([&] { parse_idx(gzip_bytes(Bytes(good.begin(), good.end() - 2)), "x.gz", {}); },
               ErrorCode::kFormat, {"decoded byte 16", "ends after 4 of them", "(inside x.gz)"});
  expect_error([&] { parse_idx(gzip_bytes(concat(good, {9})), "x.gz", {}); }, ErrorCode::kFormat,
               {"decoded byte 18", "expected end of data", "(inside x.gz)"});
}

TEST(ParseIdx, RejectsBrokenGzipStreams) {
  std::mt19937 rng(3);
  Bytes file = idx_file(IdxType::kU8, {100, 10, 10}, random_values(IdxType::kU8, 10000, rng));
  Bytes gz = gzip_bytes(file);
  expect_error([&] { parse_idx(Bytes(gz.begin(), gz.end() - 10), "t.gz", {}); }, ErrorCode::kFormat,
               {"t.gz: gzip: truncated gzip data"});
  expect_error([&] { parse_idx(Bytes(gz.begin(), gz.begin() + gz.size() / 2), "t.gz", {}); },
               ErrorCode::kFormat, {"t.gz: gzip: truncated gzip data"});
  {
    Bytes b = gz;
    b[10] = 0xFF;
    expect_error([&] { parse_idx(b, "t.gz", {}); }, ErrorCode::kFormat,
                 {"t.gz: gzip: corrupt deflate data", "invalid block type"});
  }
  {
    Bytes b = gz;
    for (std::size_t k = b.size() / 3; k < b.size() / 3 + 8; ++k) b[k] ^= 0x5A;
    expect_error([&] { parse_idx(b, "t.gz", {}); }, ErrorCode::kFormat, {"t.gz: gzip: "});
  }
  {
    Bytes b = gz;
    b[b.size() - 6] ^= 0xFF;
    expect_error([&] { parse_idx(b, "t.gz", {}); }, ErrorCode::kFormat,
                 {"t.gz: gzip: CRC-32 mismatch"});
  }
  expect_error(
      [&] {
        parse_idx(concat(gz, {'G', 'A', 'R', 'B'}), "t.gz", {});
      },
      ErrorCode::kFormat, {"t.gz: gzip: trailing garbage after gzip data"});
}

TEST(ParseIdx, RejectsEveryTruncationOfRawAndGzipFiles) {
  std::mt19937 rng(4);
  Bytes file = idx_file(IdxType::kF32, {4, 3, 2}, random_values(IdxType::kF32, 24, rng));
  Bytes gz = gzip_bytes(file);
  for (const Bytes* whole : {&file, &gz}) {
    for (std::size_t len = 0; len < whole->size(); ++len) {
      SCOPED_TRACE(len);
      Bytes cut(whole->begin(), whole->begin() + static_cast<std::ptrdiff_t>(len));
      expect_error([&] { parse_idx(cut, "cut.idx", {}); }, ErrorCode::kFormat, {"cut.idx"});
    }
  }
}

TEST(ParseIdx, FailsFastOnATinyGzipDeclaringHugeDims) {
  // 2^40 u8 elements declared, a few bytes of payload: the header must be refused before any
  // allocation, by the cap or by what so few compressed bytes can hold.
  Bytes gz = gzip_bytes(concat(idx_header(IdxType::kU8, {1u << 20, 1u << 20}), Bytes(100, 1)));
  auto start = std::chrono::steady_clock::now();
  expect_error(
      [&] { parse_idx(gz, "huge.gz", {}); }, ErrorCode::kLimit,
      {"IDX header", "1048576 x 1048576 u8", "over the limit of 8589934592", "(inside huge.gz)"});
  ReadLimits unlimited;
  unlimited.max_input_bytes = UINT64_MAX;
  expect_error([&] { parse_idx(gz, "huge.gz", unlimited); }, ErrorCode::kFormat,
               {"IDX header", "can decode to at most", "(inside huge.gz)"});
  EXPECT_LT(seconds_since(start), kFailFastSeconds);
}

TEST(ParseIdx, StopsABombAtTheDeclaredPayload) {
  // 64 MiB of zeros behind a header that declares 1 KiB: decoding stops one byte past 1 KiB.
  Bytes bomb = concat(idx_header(IdxType::kU8, {1024}), Bytes(std::size_t{64} << 20, 0));
  Bytes gz = gzip_bytes(bomb, 9);
  bomb = {};
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { parse_idx(gz, "bomb.gz", {}); }, ErrorCode::kFormat,
               {"decoded byte 1032", "expected end of data", "(inside bomb.gz)"});
  EXPECT_LT(seconds_since(start), kFailFastSeconds);
}

TEST(ParseIdx, AppliesTheInputCapToTheDecodedSize) {
  Bytes big = concat(idx_header(IdxType::kU8, {64, 1024, 1024}), Bytes(std::size_t{64} << 20, 7));
  Bytes gz = gzip_bytes(big, 9);
  ReadLimits small;
  small.max_input_bytes = 1 << 20;
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { parse_idx(gz, "cap.gz", small); }, ErrorCode::kLimit,
               {"67108880 decoded bytes", "over the limit of 1048576", "(inside cap.gz)"});
  EXPECT_LT(seconds_since(start), kFailFastSeconds);
  expect_error([&] { parse_idx(big, "cap.idx", small); }, ErrorCode::kLimit,
               {"cap.idx", "over the limit of 1048576"});
  // Within the default cap the same file decodes, at about 1000:1.
  IdxArray a = parse_idx(gz, "cap.gz", {});
  EXPECT_EQ(a.u8.size(), std::size_t{64} << 20);
  EXPECT_EQ(a.u8.front(), 7);
}

TEST(ReadIdx, RejectsDirectoriesMissingFilesAndFilesOverTheCap) {
  TempDir dir;
  expect_error([&] { read_idx(dir.path(), {}); }, ErrorCode::kIo, {dir.path(), "directory"});
  expect_error([&] { read_idx(dir / "missing.idx", {}); }, ErrorCode::kIo, {"missing.idx", "open"});
  std::string p = dir.write("big.idx", idx_file(IdxType::kU8, {100}, std::vector<double>(100, 1)));
  ReadLimits small;
  small.max_input_bytes = 50;
  expect_error([&] { read_idx(p, small); }, ErrorCode::kLimit, {"big.idx", "limit"});
}

TEST(LoadIdx, BuildsADatasetFromU8ImagesAndLabels) {
  TempDir dir;
  std::mt19937 rng(5);
  std::vector<double> pixels = random_values(IdxType::kU8, 6 * 4 * 3, rng);
  std::string images = dir.write("img.idx", idx_file(IdxType::kU8, {6, 4, 3}, pixels));
  std::string labels =
      dir.write("lab.idx.gz", gzip_bytes(idx_file(IdxType::kU8, {6}, {0, 3, 1, 3, 0, 2})));
  Dataset ds = load_idx(images, labels, {});
  EXPECT_EQ(ds.source, images);
  EXPECT_EQ(ds.task, Task::kClassify);
  EXPECT_EQ(ds.n, 6);
  EXPECT_EQ(ds.n_features, 12);
  EXPECT_EQ(ds.sample_shape, (std::vector<Index>{4, 3}));
  ASSERT_EQ(ds.x_u8.size(), pixels.size());
  for (std::size_t i = 0; i < pixels.size(); ++i) EXPECT_EQ(ds.x_u8[i], pixels[i]);
  // Kept as bytes, with no slack: one byte per pixel.
  EXPECT_LE(ds.x_u8.capacity(), pixels.size() + 16);
  EXPECT_TRUE(ds.x_f32.empty());
  EXPECT_FLOAT_EQ(ds.value_scale, 1.0f / 255.0f);
  EXPECT_EQ(ds.labels, (std::vector<std::int32_t>{0, 3, 1, 3, 0, 2}));
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(ds.label_columns, (std::vector<std::string>{"label"}));
  ASSERT_EQ(ds.feature_names.size(), 12u);
  EXPECT_EQ(ds.feature_names.front(), "x0");
  EXPECT_EQ(ds.feature_names.back(), "x11");
  EXPECT_TRUE(ds.has_labels());
  EXPECT_EQ(ds.n_outputs(), 4);
}

TEST(LoadIdx, ConvertsOtherTypesToFloatWithTheirScale) {
  TempDir dir;
  std::string labels = dir.write("lab.idx", idx_file(IdxType::kI32, {2}, {1, 0}));
  struct Case {
    IdxType type;
    std::vector<double> values;
    float scale;
  };
  const Case cases[] = {
      {IdxType::kI8, {-128, 127, 0, 5}, 1.0f / 127.0f},
      {IdxType::kI16, {-32768, 32767, 1, -1}, 1.0f / 32767.0f},
      {IdxType::kI32, {-2147483648.0, 2147483647.0, 3, 16777217}, float(1.0 / 2147483647.0)},
      {IdxType::kF32, {0.5, -1.25, 3e38, 1e-40}, 1.0f},
      {IdxType::kF64, {0.1, -2.5, 1e-300, 3.4e38}, 1.0f},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(int(c.type));
    std::string images = dir.write("img.idx", idx_file(c.type, {2, 2}, c.values));
    Dataset ds = load_idx(images, labels, {});
    EXPECT_TRUE(ds.x_u8.empty());
    ASSERT_EQ(ds.x_f32.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(ds.x_f32[i], static_cast<float>(c.values[i]));
    EXPECT_EQ(ds.value_scale, c.scale);
    EXPECT_EQ(ds.labels, (std::vector<std::int32_t>{1, 0}));
  }
}

TEST(LoadIdxImages, ReturnsImagesWithoutLabels) {
  TempDir dir;
  std::string images =
      dir.write("img.gz", gzip_bytes(idx_file(IdxType::kU8, {2, 1, 2}, {1, 2, 3, 4})));
  Dataset ds = load_idx_images(images, {});
  EXPECT_EQ(ds.n, 2);
  EXPECT_EQ(ds.n_features, 2);
  EXPECT_EQ(ds.x_u8, (Bytes{1, 2, 3, 4}));
  EXPECT_FALSE(ds.has_labels());
  EXPECT_TRUE(ds.class_names.empty());
  EXPECT_TRUE(ds.label_columns.empty());
}

TEST(LoadIdx, RejectsFilesThatDoNotFitTheirRole) {
  TempDir dir;
  std::string images = dir.write("img.idx", idx_file(IdxType::kU8, {3, 2}, {1, 2, 3, 4, 5, 6}));
  std::string labels = dir.write("lab.idx", idx_file(IdxType::kU8, {3}, {0, 1, 2}));
  std::string vec = dir.write("vec.idx", idx_file(IdxType::kU8, {6}, {1, 2, 3, 4, 5, 6}));
  std::string f32_labels = dir.write("flab.idx", idx_file(IdxType::kF32, {3}, {0, 1, 2}));
  std::string short_labels = dir.write("short.idx", idx_file(IdxType::kU8, {2}, {0, 1}));
  std::string neg_labels = dir.write("neg.idx", idx_file(IdxType::kI8, {3}, {0, -1, 2}));
  std::string big_labels = dir.write("big.idx", idx_file(IdxType::kI32, {3}, {0, 70000, 2}));
  std::string nan_images =
      dir.write("nan.idx", idx_file(IdxType::kF32, {3, 2}, {1, 2, 3, std::nan(""), 5, 6}));
  std::string inf_images = dir.write(
      "inf.idx.gz", gzip_bytes(idx_file(IdxType::kF64, {3, 2}, {1, 2, 3, 4, 5, INFINITY})));
  std::string wide_images =
      dir.write("wide.idx", idx_file(IdxType::kF64, {3, 2}, {1, 2, 3, 4, 1e300, 6}));

  expect_error([&] { load_idx(vec, labels, {}); }, ErrorCode::kData,
               {"vec.idx", "at least 2 dimensions", "found 1"});
  expect_error([&] { load_idx(images, images, {}); }, ErrorCode::kData,
               {"img.idx", "exactly 1 dimension", "found 2 (3 x 2)"});
  expect_error([&] { load_idx(images, f32_labels, {}); }, ErrorCode::kData,
               {"flab.idx", "integer element type", "found f32"});
  expect_error([&] { load_idx(images, short_labels, {}); }, ErrorCode::kData,
               {"short.idx", "holds 2 labels", "img.idx", "holds 3 images"});
  expect_error([&] { load_idx(images, neg_labels, {}); }, ErrorCode::kData,
               {"neg.idx: byte 9", "label 1", ">= 0, found -1"});
  expect_error([&] { load_idx(images, big_labels, {}); }, ErrorCode::kLimit,
               {"big.idx: byte 12", "70001 classes", "limit of 65536"});
  ReadLimits few;
  few.max_classes = 2;
  expect_error([&] { load_idx(images, labels, few); }, ErrorCode::kLimit,
               {"lab.idx: byte 10", "label 2", "3 classes", "limit of 2"});
  expect_error([&] { load_idx(nan_images, labels, {}); }, ErrorCode::kData,
               {"nan.idx: byte 24", "image 1, value 1", "found nan"});
  expect_error([&] { load_idx_images(inf_images, {}); }, ErrorCode::kData,
               {"decoded byte 52", "image 2, value 1", "found inf", "(inside " + inf_images + ")"});
  expect_error([&] { load_idx(wide_images, labels, {}); }, ErrorCode::kData,
               {"wide.idx: byte 44", "within float range", "found 1e+300"});
}

// ---------------------------------------------------------------------------------------------
// Shards (train --shard-data): a rank reads only its rows of an uncompressed images file.

TEST(LoadIdxShard, ReadsOnlyItsRowsOfARawFileAndTheWholeOfAGzipFile) {
  TempDir dir;
  // 7 images of 2 x 3 f32 values; rows 0-2 and 5-6 hold NaN. Shard 1 of 3 is rows 3-4 (parts of
  // 3, 2, 2 rows): a reader of only those rows never sees a NaN.
  const Index rows = 7, features = 6;
  std::vector<double> clean(static_cast<std::size_t>(rows * features)), poisoned;
  for (std::size_t i = 0; i < clean.size(); ++i) clean[i] = 0.5 * static_cast<double>(i) - 3;
  poisoned = clean;
  for (Index r : {0, 1, 2, 5, 6}) poisoned[static_cast<std::size_t>(r * features + 1)] = NAN;
  const std::vector<double> labels = {0, 1, 2, 3, 1, 0, 4};
  const std::string lab = dir.write("lab.idx", idx_file(IdxType::kU8, {7}, labels));
  const std::string raw = dir.write("raw.idx", idx_file(IdxType::kF32, {7, 2, 3}, poisoned));
  const std::string gz =
      dir.write("clean.idx.gz", gzip_bytes(idx_file(IdxType::kF32, {7, 2, 3}, clean)));
  const Shard shard{1, 3};
  EXPECT_EQ(shard.begin(rows), 3);
  EXPECT_EQ(shard.end(rows), 5);

  Dataset part = load_idx(raw, lab, {}, shard);
  EXPECT_EQ(part.n, 2);
  EXPECT_EQ(part.first_row, 3);
  EXPECT_EQ(part.total_rows, 7);
  EXPECT_EQ(part.whole_rows(), 7);
  EXPECT_EQ(part.n_features, features);
  EXPECT_EQ(part.sample_shape, (std::vector<Index>{2, 3}));
  // The classes are the whole labels file's (0..4), though this part holds only 3 and 1.
  EXPECT_EQ(part.class_names.size(), 5u);
  EXPECT_EQ(part.labels, (std::vector<std::int32_t>{3, 1}));
  for (Index i = 0; i < part.n * features; ++i) {
    EXPECT_EQ(part.x_f32[static_cast<std::size_t>(i)],
              static_cast<float>(clean[static_cast<std::size_t>(3 * features + i)]));
  }
  // A whole read of the same file fails on the first NaN (image 0).
  expect_error([&] { load_idx(raw, lab, {}); }, ErrorCode::kData, {"raw.idx", "image 0"});
  // gzip cannot be read in part: the whole file is decoded and the same rows kept.
  Dataset from_gz = load_idx(gz, lab, {}, shard);
  EXPECT_EQ(from_gz.x_f32, part.x_f32);
  EXPECT_EQ(from_gz.labels, part.labels);
  EXPECT_EQ(from_gz.first_row, 3);
  EXPECT_EQ(from_gz.total_rows, 7);
}

TEST(LoadIdxShard, ABadValueInItsRowsIsReportedAtItsPlaceInTheFile) {
  TempDir dir;
  std::vector<double> values(5 * 4, 1.0);
  values[3 * 4 + 2] = INFINITY;  // image 3, value 2: shard 1 of 2 holds rows 3-4
  const std::string raw = dir.write("inf.idx", idx_file(IdxType::kF32, {5, 4}, values));
  const std::string lab = dir.write("lab.idx", idx_file(IdxType::kU8, {5}, {0, 1, 0, 1, 0}));
  EXPECT_EQ(load_idx(raw, lab, {}, Shard{0, 2}).n, 3);                     // rows 0-2 are fine
  const std::string offset = std::to_string(4 + 2 * 4 + (3 * 4 + 2) * 4);  // header, then f32s
  expect_error(
      [&] {
        load_idx(raw, lab, {}, Shard{1, 2});
      },
      ErrorCode::kData, {"inf.idx: byte " + offset, "(image 3, value 2)", "finite"});
}

TEST(LoadIdxShard, TheHeaderAndSizeAreCheckedAsForAWholeRead) {
  TempDir dir;
  const std::string lab = dir.write("lab.idx", idx_file(IdxType::kU8, {4}, {0, 1, 0, 1}));
  Bytes truncated = idx_file(IdxType::kU8, {4, 3}, std::vector<double>(12, 7));
  truncated.pop_back();
  const std::string t = dir.write("short.idx", truncated);
  expect_error(
      [&] {
        load_idx(t, lab, {}, Shard{0, 2});
      },
      ErrorCode::kFormat, {"short.idx", "truncated file"});
  Bytes longer = idx_file(IdxType::kU8, {4, 3}, std::vector<double>(12, 7));
  longer.push_back(0);
  const std::string l = dir.write("long.idx", longer);
  expect_error(
      [&] {
        load_idx(l, lab, {}, Shard{1, 2});
      },
      ErrorCode::kFormat, {"long.idx", "expected end of file"});
  const std::string vec = dir.write("vec.idx", idx_file(IdxType::kU8, {4}, {1, 2, 3, 4}));
  expect_error(
      [&] {
        load_idx(vec, lab, {}, Shard{1, 2});
      },
      ErrorCode::kData, {"vec.idx", "at least 2 dimensions"});
  const std::string lab5 = dir.write("lab5.idx", idx_file(IdxType::kU8, {5}, {0, 1, 0, 1, 1}));
  const std::string ok =
      dir.write("ok.idx", idx_file(IdxType::kU8, {4, 3}, std::vector<double>(12, 7)));
  expect_error(
      [&] {
        load_idx(ok, lab5, {}, Shard{1, 2});
      },
      ErrorCode::kData, {"lab5.idx", "holds 5 labels", "holds 4 images"});
  // More parts than rows: the last parts are empty, and still know the whole.
  Dataset none = load_idx(ok, lab, {}, Shard{5, 6});
  EXPECT_EQ(none.n, 0);
  EXPECT_EQ(none.total_rows, 4);
  EXPECT_EQ(none.n_features, 3);
  EXPECT_EQ(none.class_names.size(), 2u);
}

}  // namespace
}  // namespace backprop
