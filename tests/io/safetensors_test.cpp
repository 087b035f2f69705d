// Tests for the safetensors container (src/io/safetensors.cpp): golden bytes as the reference
// writer lays them out, random round trips, every rejection rule of the reader (table-driven, by
// error code and message), and mutation sweeps of a valid file (RELIABILITY.md B.2 items 1-3).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/io.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

using namespace backprop::test;

constexpr const char* kName = "t.safetensors";

// A file with the given header text and `data_size` bytes of data (a byte pattern, so that
// copies are checkable).
Bytes make_file(std::string_view header, std::size_t data_size) {
  Bytes out = le64(header.size());
  out.insert(out.end(), header.begin(), header.end());
  for (std::size_t i = 0; i < data_size; ++i) out.push_back(static_cast<std::uint8_t>(i * 7 + 1));
  return out;
}

Bytes bytes_of(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Safetensors parse(std::span<const std::uint8_t> b, const ReadLimits& limits = {}) {
  return parse_safetensors(b, kName, limits);
}

std::uint64_t product(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

void expect_same(const Safetensors& a, const Safetensors& b) {
  EXPECT_EQ(a.metadata, b.metadata);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    SCOPED_TRACE("tensor " + std::to_string(i));
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    EXPECT_EQ(a.tensors[i].data, b.tensors[i].data);
  }
}

// ---------------------------------------------------------------------------------------------
// dtypes

TEST(SafetensorsDtypeSize, KnowsEveryByteSizedDtype) {
  const std::vector<std::pair<std::string, std::size_t>> known = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  for (const auto& [name, size] : known) EXPECT_EQ(safetensors_dtype_size(name), size) << name;
}

TEST(SafetensorsDtypeSize, IsZeroForUnknownLowercaseAndUnsupportedNames) {
  for (const char* name :
       {"", "f32", "F128", "C64", "F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F32 ", "FLOAT", "I4"}) {
    EXPECT_EQ(safetensors_dtype_size(name), 0u) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Golden files: the exact bytes the reference writer produces for the same content (compact JSON,
// data_offsets in layout order, spaces padding 8 + N to a multiple of 8).

TEST(SerializeSafetensors, MatchesTheReferenceBytesForOneTensor) {
  // 60 bytes of JSON + 4 spaces: N = 64 = 0x40.
  static constexpr char kGolden[] =
      "\x40\x00\x00\x00\x00\x00\x00\x00"
      R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})"
      "    "
      "\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00";
  const Bytes golden(kGolden, kGolden + sizeof kGolden - 1);
  ASSERT_EQ(golden.size(), 8u + 64u + 16u);

  Safetensors st;
  st.tensors.push_back({"test", "I32", {2, 2}, {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0}});
  EXPECT_EQ(serialize_safetensors(st), golden);
  expect_same(parse(golden), st);
}

TEST(SerializeSafetensors, MatchesTheReferenceBytesWithMetadataScalarAndEscapes) {
  // Metadata first; a scalar (shape []); strings escaped as serde_json does: \" \\ \n, other
  // control characters as \u00xx with lowercase hex, non-ASCII UTF-8 (é = C3 A9) and DEL as they
  // are. 169 bytes of JSON + 7 spaces: N = 176 = 0xb0.
  static constexpr char kGolden[] =
      "\xb0\x00\x00\x00\x00\x00\x00\x00"
      "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"q\\\"b\\\\s\\nc\\u001fe\xc3\xa9x\x7f\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
      "\"b\xc3\xa9\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[4,7]}}"
      "       "
      "\x00\x00\x80\x3f"
      "\x07\x08\x09";
  const Bytes golden(kGolden, kGolden + sizeof kGolden - 1);
  ASSERT_EQ(golden.size(), 8u + 176u + 7u);

  Safetensors st;
  st.metadata = {{"note",
                  "q\"b\\s\nc\x1f"
                  "e\xc3\xa9x\x7f"},
                 {"format", "pt"}};
  st.tensors.push_back({"a", "F32", {}, {0x00, 0x00, 0x80, 0x3f}});
  st.tensors.push_back({"b\xc3\xa9", "U8", {3}, {7, 8, 9}});
  Bytes out = serialize_safetensors(st);
  EXPECT_EQ(std::string(out.begin(), out.end()), std::string(golden.begin(), golden.end()));
  expect_same(parse(golden), st);
}

TEST(SerializeSafetensors, WritesAnEmptySetAsAPaddedEmptyObject) {
  EXPECT_EQ(serialize_safetensors({}), bytes_of(std::string("\x08\0\0\0\0\0\0\0{}      ", 16)));
  EXPECT_TRUE(parse(serialize_safetensors({})).tensors.empty());
}

// ---------------------------------------------------------------------------------------------
// Random round trips (B.2 items 1 and 2)

const std::vector<std::string> kAllDtypes = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3",
                                             "I16",  "U16", "F16", "BF16",    "I32",
                                             "U32",  "F32", "I64", "U64",     "F64"};

std::string random_text(std::mt19937_64& rng, std::size_t max_len, bool allow_control) {
  static const std::vector<std::string> kPieces = {"a",
                                                   "Z",
                                                   "0",
                                                   ".",
                                                   " ",
                                                   "/",
                                                   "\"",
                                                   "\\",
                                                   "weight",
                                                   "\xc3\xa9",
                                                   "\xe2\x82\xac",
                                                   "\xf0\x9f\x98\x80",
                                                   "{",
                                                   "}",
                                                   ":",
                                                   ","};
  static const std::vector<std::string> kControl = {"\n", "\t",   "\r",   "\b",
                                                    "\f", "\x01", "\x1f", "\x7f"};
  std::string s;
  std::size_t len = rng() % (max_len + 1);
  for (std::size_t i = 0; i < len; ++i) {
    if (allow_control && rng() % 8 == 0) {
      s += kControl[rng() % kControl.size()];
    } else {
      s += kPieces[rng() % kPieces.size()];
    }
  }
  return s;
}

Safetensors random_safetensors(std::mt19937_64& rng) {
  Safetensors st;
  std::size_t n_meta = rng() % 4;
  for (std::size_t i = 0; i < n_meta; ++i) {
    st.metadata[random_text(rng, 6, true)] = random_text(rng, 12, true);
  }
  std::size_t n_tensors = rng() % 9;
  for (std::size_t i = 0; i < n_tensors; ++i) {
    Tensor t;
    // A unique, valid name: random text without control characters, then the index.
    t.name = random_text(rng, 5, false) + "#" + std::to_string(i);
    t.dtype = kAllDtypes[rng() % kAllDtypes.size()];
    std::size_t rank = rng() % 5;                                         // 0 is a scalar
    for (std::size_t r = 0; r < rank; ++r) t.shape.push_back(rng() % 6);  // 0 makes it zero-size
    t.data.resize(product(t.shape) * safetensors_dtype_size(t.dtype));
    for (auto& b : t.data) b = static_cast<std::uint8_t>(rng());
    st.tensors.push_back(std::move(t));
  }
  return st;
}

TEST(SafetensorsRoundTrip, RandomSetsComeBackBitwiseEqualInOrder) {
  std::mt19937_64 rng(20240601);
  int n_scalars = 0, n_zero_size = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    Safetensors st = random_safetensors(rng);
    for (const auto& t : st.tensors) {
      n_scalars += t.shape.empty();
      n_zero_size += t.data.empty();
    }
    Bytes file = serialize_safetensors(st);
    std::uint64_t n = read_le64(file);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(serialize_safetensors(st), file);  // deterministic
    Safetensors back = parse(file);
    expect_same(back, st);
    EXPECT_EQ(serialize_safetensors(back), file);
    if (HasFailure()) return;
  }
  // The generator really covered the edge cases.
  EXPECT_GT(n_scalars, 100);
  EXPECT_GT(n_zero_size, 100);
}

TEST(SafetensorsRoundTrip, EveryDataOffsetIsAlignedWhenWiderDtypesComeFirst) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Safetensors st = random_safetensors(rng);
    std::stable_sort(st.tensors.begin(), st.tensors.end(), [](const Tensor& a, const Tensor& b) {
      return safetensors_dtype_size(a.dtype) > safetensors_dtype_size(b.dtype);
    });
    Bytes file = serialize_safetensors(st);
    std::uint64_t offset = 8 + read_le64(file);
    EXPECT_EQ(offset % 8, 0u);
    for (const Tensor& t : st.tensors) {
      std::size_t size = safetensors_dtype_size(t.dtype);
      EXPECT_EQ(offset % size, 0u) << t.name << " " << t.dtype << " at " << offset;
      ASSERT_LE(offset + t.data.size(), file.size());
      EXPECT_TRUE(std::equal(t.data.begin(), t.data.end(), file.begin() + offset));
      offset += t.data.size();
    }
    EXPECT_EQ(offset, file.size());
  }
}

TEST(SafetensorsRoundTrip, SameModelTwiceGivesIdenticalBytes) {
  std::mt19937_64 a(99), b(99);
  for (int trial = 0; trial < 50; ++trial) {
    EXPECT_EQ(serialize_safetensors(random_safetensors(a)),
              serialize_safetensors(random_safetensors(b)));
  }
}

// ---------------------------------------------------------------------------------------------
// What the reader accepts

struct GoodCase {
  const char* what;
  std::string header;
  std::size_t data_size;
  std::vector<std::string> names;  // expected, in data-section order
};

TEST(ParseSafetensors, AcceptsWhatTheFormatAllows) {
  const std::string t8 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<GoodCase> cases = {
      {"empty object", "{}", 0, {}},
      {"empty object, padded", "{}      ", 0, {}},
      {"leading and trailing JSON whitespace", " \t\r\n{\"a\":" + t8 + "}\n\r\t  ", 8, {"a"}},
      {"metadata after the tensors",
       R"({"a":)" + t8 + R"(,"__metadata__":{"k":"v","":""}})",
       8,
       {"a"}},
      {"empty metadata", R"({"__metadata__":{}})", 0, {}},
      {"scalar", R"({"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})", 8, {"s"}},
      {"zero-size tensor alone",
       R"({"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})",
       0,
       {"z"}},
      {"zero-size with a 2^53 dimension",
       R"({"z":{"dtype":"F64","shape":[9007199254740992,0],"data_offsets":[0,0]}})",
       0,
       {"z"}},
      {"zero-size tensors before, between and after others, in header order on ties",
       R"({"z3":{"dtype":"U8","shape":[0],"data_offsets":[8,8]},)"
       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]},)"
       R"("z2":{"dtype":"I64","shape":[0],"data_offsets":[4,4]},)"
       R"("z1":{"dtype":"F16","shape":[0],"data_offsets":[0,0]},)"
       R"("z0":{"dtype":"BOOL","shape":[0],"data_offsets":[0,0]},)"
       R"("a":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}})",
       8,
       {"z1", "z0", "a", "z2", "b", "z3"}},
      {"header order different from data order",
       R"({"second":{"dtype":"U16","shape":[1],"data_offsets":[4,6]},)"
       R"("first":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
       6,
       {"first", "second"}},
      {"names with escapes, unicode and 1024 bytes",
       R"({"q\"\\\/\u00e9":)" + t8 + ",\"" + std::string(1024, 'n') +
           R"(":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}})",
       9,
       {"q\"\\/\xc3\xa9", std::string(1024, 'n')}},
      {"every dtype name",
       [] {
         std::string h = "{";
         std::uint64_t at = 0;
         for (const auto& d : kAllDtypes) {
           std::uint64_t size = safetensors_dtype_size(d);
           if (h.size() > 1) h += ',';
           h += "\"" + d + "\":{\"dtype\":\"" + d + "\",\"shape\":[1],\"data_offsets\":[" +
                std::to_string(at) + "," + std::to_string(at + size) + "]}";
           at += size;
         }
         return h + "}";
       }(),
       1 + 1 + 1 + 1 + 1 + 2 + 2 + 2 + 2 + 4 + 4 + 4 + 8 + 8 + 8, kAllDtypes},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Bytes file = make_file(c.header, c.data_size);
    Safetensors st;
    ASSERT_NO_THROW(st = parse(file));
    std::vector<std::string> names;
    std::uint64_t at = 8 + c.header.size();
    for (const auto& t : st.tensors) {
      names.push_back(t.name);
      EXPECT_EQ(t.data.size(), product(t.shape) * safetensors_dtype_size(t.dtype));
      EXPECT_TRUE(std::equal(t.data.begin(), t.data.end(), file.begin() + at));
      at += t.data.size();
    }
    EXPECT_EQ(names, c.names);
    EXPECT_EQ(at, file.size());
  }
}

TEST(ParseSafetensors, KeepsMetadataAsStrings) {
  Bytes file = make_file(R"({"__metadata__":{"format":"pt","x":"a\nb\u0000c"}})", 0);
  Safetensors st = parse(file);
  std::map<std::string, std::string> expected = {{"format", "pt"},
                                                 {"x", std::string("a\nb\0c", 5)}};
  EXPECT_EQ(st.metadata, expected);
}

// ---------------------------------------------------------------------------------------------
// What the reader rejects (RELIABILITY.md cases 41-55, 60)

struct BadCase {
  const char* what;
  Bytes file;
  ErrorCode code;
  std::string message;  // a substring of the error message
  ReadLimits limits = {};
};

// A file whose single tensor "t" has the given entry body, with `data_size` data bytes.
Bytes one_tensor(std::string_view entry, std::size_t data_size) {
  return make_file("{\"t\":" + std::string(entry) + "}", data_size);
}

Bytes header_with_n(std::uint64_t n, std::size_t total) {
  Bytes out = le64(n);
  out.resize(total, ' ');
  return out;
}

std::vector<BadCase> bad_cases() {
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  auto entry = [](std::string_view dtype, std::string_view shape, std::string_view offsets) {
    return "{\"dtype\":" + std::string(dtype) + ",\"shape\":" + std::string(shape) +
           ",\"data_offsets\":" + std::string(offsets) + "}";
  };
  const auto F = ErrorCode::kFormat;
  ReadLimits small;
  small.max_header_bytes = 16;
  std::vector<BadCase> c = {
      // 41, 42: framing
      {"empty file", {}, F, "file is 0 bytes, too short"},
      {"7 bytes", Bytes(7, 0), F, "file is 7 bytes, too short"},
      {"N = 2^64-1", header_with_n(~std::uint64_t{0}, 16), F,
       "header length 18446744073709551615 past end of file (size 16)"},
      {"N = 2^64-8 (8 + N wraps to 0)", header_with_n(~std::uint64_t{0} - 7, 16), F,
       "past end of file"},
      {"N one past the end", header_with_n(9, 16), F, "header length 9 past end of file (size 16)"},
      {"N over the configured cap", make_file("{}" + std::string(22, ' '), 0), ErrorCode::kLimit,
       "header length 24 over the limit of 16 bytes", small},
      // 43: UTF-8
      {"invalid UTF-8 byte", make_file("{\"\xff\":{}}", 0), F, "not valid UTF-8 at file byte 10"},
      {"overlong UTF-8", make_file("{\"\xc0\xaf\":{}}", 0), F, "not valid UTF-8"},
      {"UTF-8 surrogate", make_file("{\"\xed\xa0\x80\":{}}", 0), F, "not valid UTF-8"},
      {"UTF-8 past U+10FFFF", make_file("{\"\xf4\x90\x80\x80\":{}}", 0), F, "not valid UTF-8"},
      {"truncated UTF-8 sequence", make_file("{}    \xe2\x82", 0), F, "not valid UTF-8"},
      // 44: not a JSON object, bad JSON
      {"empty header", make_file("", 0), F,
       "not a JSON object: expected '{', found only whitespace"},
      {"only whitespace", make_file("        ", 0), F, "found only whitespace"},
      {"array", make_file("[]", 0), F, "not a JSON object: expected '{', found \"[\""},
      {"number", make_file("42", 0), F, "not a JSON object"},
      {"string", make_file("\"{}\"", 0), F, "not a JSON object"},
      {"byte-order mark", make_file("\xef\xbb\xbf{}", 0), F, "not a JSON object"},
      {"NUL after the object", make_file(std::string("{}\0junk", 7), 0), F,
       "NUL byte at file byte 10"},
      {"garbage after the object", make_file("{} x", 0), F, "invalid JSON near file byte"},
      {"second object", make_file("{}{}", 0), F, "invalid JSON"},
      {"comment", make_file("{} // c", 0), F, "invalid JSON"},
      {"truncated JSON", make_file(R"({"t":{"dtype":"F32")", 0), F, "invalid JSON"},
      {"trailing comma", make_file(R"({"t":)" + f32x2 + ",}", 8), F, "invalid JSON"},
      {"single quotes", make_file("{'t':1}", 0), F, "invalid JSON"},
      {"lone surrogate escape", make_file(R"({"\ud800":{}})", 0), F, "invalid JSON"},
      {"raw control character in a string", make_file("{\"a\x01\":{}}", 0), F, "invalid JSON"},
      {"number overflow", one_tensor(entry("\"F32\"", "[1e400]", "[0,0]"), 0), F, "JSON"},
      // 45: metadata
      {"metadata number value", make_file(R"({"__metadata__":{"a":1}})", 0), F,
       "__metadata__ \"a\": expected a string value, found number 1"},
      {"metadata null value", make_file(R"({"__metadata__":{"a":null}})", 0), F,
       "expected a string value, found null"},
      {"metadata nested object", make_file(R"({"__metadata__":{"a":{}}})", 0), F,
       "expected a string value, found an object"},
      {"metadata null", make_file(R"({"__metadata__":null})", 0), F,
       "__metadata__: expected an object of string values, found null"},
      {"metadata array", make_file(R"({"__metadata__":["a"]})", 0), F,
       "expected an object of string values, found an array"},
      {"metadata string", make_file(R"({"__metadata__":"a"})", 0), F,
       "expected an object of string values, found string \"a\""},
      // 55: a tensor named __metadata__
      {"tensor named __metadata__", make_file(R"({"__metadata__":)" + f32x2 + "}", 8), F,
       "a tensor may not be named __metadata__"},
      // 46: duplicates anywhere
      {"duplicate tensor", make_file(R"({"a":)" + f32x2 + R"(,"a":)" + f32x2 + "}", 8), F,
       "duplicate key \"a\" in the header"},
      {"duplicate __metadata__", make_file(R"({"__metadata__":{},"__metadata__":{}})", 0), F,
       "duplicate key \"__metadata__\""},
      {"duplicate metadata key", make_file(R"({"__metadata__":{"k":"1","k":"1"}})", 0), F,
       "__metadata__: duplicate key \"k\""},
      {"duplicate dtype",
       one_tensor(R"({"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), F,
       "tensor \"t\": duplicate key \"dtype\""},
      {"duplicate data_offsets",
       one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"data_offsets":[0,8]})", 8), F,
       "duplicate key \"data_offsets\""},
      // 47: missing or unknown keys
      {"empty entry", one_tensor("{}", 0), F, "tensor \"t\": missing key \"dtype\""},
      {"missing dtype", one_tensor(R"({"shape":[2],"data_offsets":[0,8]})", 8), F,
       "missing key \"dtype\""},
      {"missing shape", one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})", 8), F,
       "missing key \"shape\""},
      {"missing data_offsets", one_tensor(R"({"dtype":"F32","shape":[2]})", 8), F,
       "missing key \"data_offsets\""},
      {"unknown key", one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"foo":1})", 8),
       F, "tensor \"t\": unknown key \"foo\""},
      {"key in the wrong case",
       one_tensor(R"({"Dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), F,
       "unknown key \"Dtype\""},
      {"entry is a number", one_tensor("5", 0), F,
       "tensor \"t\": expected an object {dtype, shape, data_offsets}, found number 5"},
      {"entry is an array", one_tensor("[]", 0), F, "found an array"},
      // 48: dtypes
      {"lowercase dtype", one_tensor(entry("\"f32\"", "[2]", "[0,8]"), 8), F,
       "tensor \"t\": unsupported dtype \"f32\" (expected one of BOOL, U8"},
      {"F128", one_tensor(entry("\"F128\"", "[2]", "[0,8]"), 8), F, "unsupported dtype \"F128\""},
      {"C64", one_tensor(entry("\"C64\"", "[1]", "[0,8]"), 8), F, "unsupported dtype \"C64\""},
      {"F4", one_tensor(entry("\"F4\"", "[2]", "[0,1]"), 1), F, "unsupported dtype \"F4\""},
      {"dtype a number", one_tensor(entry("4", "[2]", "[0,8]"), 8), F,
       "dtype: expected a string, found number 4"},
      // 49: shapes
      {"negative dimension", one_tensor(entry("\"F32\"", "[-1]", "[0,0]"), 0), F,
       "shape: expected non-negative integers, found number -1"},
      {"fractional dimension", one_tensor(entry("\"F32\"", "[2.0]", "[0,8]"), 8), F,
       "found number \"2.0\""},
      {"exponent dimension", one_tensor(entry("\"F32\"", "[2e0]", "[0,8]"), 8), F,
       "found number \"2e0\""},
      {"minus zero dimension", one_tensor(entry("\"F32\"", "[-0]", "[0,0]"), 0), F, "found number"},
      {"dimension over 2^53", one_tensor(entry("\"U8\"", "[9007199254740993,0]", "[0,0]"), 0), F,
       "dimension 9007199254740993 is over 2^53"},
      {"dimension over 2^64", one_tensor(entry("\"U8\"", "[18446744073709551616]", "[0,0]"), 0), F,
       "found number"},
      {"element count overflow", one_tensor(entry("\"U8\"", "[4294967296,4294967296]", "[0,0]"), 0),
       F, "element count of shape [4294967296,4294967296] overflows"},
      {"byte size overflow", one_tensor(entry("\"F32\"", "[9007199254740992,1024]", "[0,0]"), 0), F,
       "byte size of shape [9007199254740992,1024] × F32 overflows"},
      {"shape a string", one_tensor(entry("\"F32\"", "\"2\"", "[0,8]"), 8), F,
       "shape: expected an array of non-negative integers, found string \"2\""},
      {"shape an object", one_tensor(entry("\"F32\"", "{}", "[0,8]"), 8), F,
       "shape: expected an array of non-negative integers, found an object"},
      {"nested shape", one_tensor(entry("\"F32\"", "[[2]]", "[0,8]"), 8), F,
       "shape: expected non-negative integers, found an array"},
      {"null in shape", one_tensor(entry("\"F32\"", "[null]", "[0,8]"), 8), F, "found null"},
      {"boolean in shape", one_tensor(entry("\"F32\"", "[true]", "[0,8]"), 8), F, "found true"},
      // 50: data_offsets
      {"offsets a number", one_tensor(entry("\"F32\"", "[2]", "8"), 8), F,
       "data_offsets: expected an array of non-negative integers, found number 8"},
      {"one offset", one_tensor(entry("\"F32\"", "[2]", "[8]"), 8), F,
       "data_offsets: expected [begin, end], found 1 entries"},
      {"no offsets", one_tensor(entry("\"F32\"", "[2]", "[]"), 8), F, "found 0 entries"},
      {"three offsets", one_tensor(entry("\"F32\"", "[2]", "[0,8,8]"), 8), F,
       "found more than 2 entries"},
      {"end before begin", one_tensor(entry("\"F32\"", "[0]", "[8,0]"), 8), F,
       "data_offsets [8, 0]: end is before begin"},
      {"fractional offset", one_tensor(entry("\"F32\"", "[2]", "[0,8.0]"), 8), F,
       "data_offsets: expected non-negative integers, found number \"8.0\""},
      {"negative offset", one_tensor(entry("\"F32\"", "[2]", "[-8,0]"), 8), F, "found number -8"},
      {"offset a string", one_tensor(entry("\"F32\"", "[2]", "[\"0\",8]"), 8), F,
       "found string \"0\""},
      // 53: size mismatch
      {"offsets span too little", one_tensor(entry("\"F32\"", "[2]", "[0,4]"), 4), F,
       "data_offsets [0, 4] span 4 bytes, expected 8 (shape [2] × 4-byte F32)"},
      {"offsets span too much", one_tensor(entry("\"F32\"", "[2]", "[0,12]"), 12), F,
       "span 12 bytes, expected 8"},
      {"zero-size tensor with bytes", one_tensor(entry("\"F32\"", "[0]", "[0,4]"), 4), F,
       "span 4 bytes, expected 0"},
      // 51, 52: overlaps and gaps
      {"overlap",
       make_file(R"({"a":)" + entry("\"F32\"", "[2]", "[0,8]") + R"(,"b":)" +
                     entry("\"F32\"", "[2]", "[4,12]") + "}",
                 12),
       F,
       "tensor \"b\" data_offsets [4, 12]: expected to begin at 8 (after tensor \"a\", an "
       "overlap of 4 bytes)"},
      {"two names on the same bytes", make_file(R"({"a":)" + f32x2 + R"(,"b":)" + f32x2 + "}", 8),
       F, "an overlap of 8 bytes"},
      {"gap",
       make_file(R"({"a":)" + entry("\"F32\"", "[2]", "[0,8]") + R"(,"b":)" +
                     entry("\"F32\"", "[2]", "[12,20]") + "}",
                 20),
       F, "expected to begin at 8 (after tensor \"a\", a gap of 4 bytes)"},
      {"first tensor not at 0", one_tensor(entry("\"F32\"", "[2]", "[4,12]"), 12), F,
       "tensor \"t\" data_offsets [4, 12]: expected to begin at 0 (a gap of 4 bytes)"},
      {"zero-size tensor inside another",
       make_file(R"({"a":)" + f32x2 + R"(,"z":)" + entry("\"F32\"", "[0]", "[4,4]") + "}", 8), F,
       "tensor \"z\" data_offsets [4, 4]: expected to begin at 8"},
      {"zero-size tensor past the end",
       make_file(R"({"a":)" + f32x2 + R"(,"z":)" + entry("\"F32\"", "[0]", "[12,12]") + "}", 8), F,
       "a gap of 4 bytes"},
      // 54: data section must end exactly at end of file
      {"truncated data", one_tensor(f32x2, 4), F,
       "data_offsets [0, 8]: past the end of the data section (4 bytes): file truncated"},
      {"no data", one_tensor(f32x2, 0), F, "file truncated"},
      {"appended data", one_tensor(f32x2, 12), F,
       "data section is 12 bytes, tensors end at 8: 4 bytes of unexpected data at end of file"},
      {"data but no tensors", make_file("{}", 1), F, "1 byte of unexpected data at end of file"},
      // 60: names
      {"empty name", make_file(R"({"":)" + f32x2 + "}", 8), F, "tensor name \"\" is empty"},
      {"name over 1 KiB", make_file("{\"" + std::string(1025, 'n') + "\":" + f32x2 + "}", 8), F,
       "is longer than 1024 bytes"},
      {"escaped NUL in a name", make_file(R"({"a\u0000b":)" + f32x2 + "}", 8), F,
       "tensor name \"a\\x00b\" holds a control character"},
      {"newline in a name", make_file(R"({"a\nb":)" + f32x2 + "}", 8), F,
       "tensor name \"a\\x0ab\" holds a control character"},
      {"DEL in a name", make_file("{\"a\x7f\":" + f32x2 + "}", 8), F, "holds a control character"},
  };
  return c;
}

TEST(ParseSafetensors, RejectsEveryBadCaseWithItsCodeAndMessage) {
  for (const auto& c : bad_cases()) {
    SCOPED_TRACE(c.what);
    try {
      parse(c.file, c.limits);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(e.code(), c.code) << msg;
      EXPECT_NE(msg.find(c.message), std::string::npos)
          << "message: " << msg << "\nexpected to contain: " << c.message;
      EXPECT_EQ(msg.rfind(std::string(kName) + ": ", 0), 0u) << msg;  // names the file
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;            // one line
    }
  }
}

TEST(ParseSafetensors, RejectsAHeaderOverTheFormatMaximumEvenWithARaisedCap) {
  // The reference loader's 100,000,000-byte cap holds even when --max-header-bytes is raised.
  Bytes file = le64(100'000'001);
  file.resize(8 + 100'000'001, ' ');
  ReadLimits raised;
  raised.max_header_bytes = 200'000'000;
  expect_error([&] { parse(file, raised); }, ErrorCode::kFormat,
               {"over the format's maximum of 100000000"});
  // With the default cap the same file is refused by the configured limit first.
  expect_error([&] { parse(file); }, ErrorCode::kLimit, {});
}

TEST(ParseSafetensors, EchoesHostileNamesSanitisedAndShort) {
  // An ANSI escape sequence in a name (valid JSON: \u001b) and a 5000-byte name.
  for (const std::string& json_name : {std::string(R"(\u001b[31mred)"), std::string(5000, 'x')}) {
    Bytes file = make_file("{\"" + json_name + "\":{\"dtype\":\"f32\"}}", 0);
    try {
      parse(file);
      FAIL() << "accepted";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.find('\x1b'), std::string::npos) << msg;
      EXPECT_LT(msg.size(), 300u) << msg;
    }
  }
}

TEST(ParseSafetensors, RejectsAMillionOpeningBracketsQuicklyWithoutRecursing) {
  const std::string deep_array(1'000'000, '[');
  const std::string deep_object = [] {
    std::string s;
    for (int i = 0; i < 200'000; ++i) s += "{\"a\":";
    return s;
  }();
  const std::vector<std::string> headers = {
      deep_array,
      "{\"t\":" + deep_array,
      "{\"__metadata__\":" + deep_array,
      "{\"__metadata__\":{\"k\":" + deep_array,
      "{\"t\":{\"shape\":" + deep_array,
      "{\"t\":{\"data_offsets\":" + deep_array,
      "{\"t\":" + deep_object,
      deep_object,
  };
  for (const auto& h : headers) {
    Bytes file = make_file(h, 0);
    auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(parse(file), Error);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 1.0) << h.substr(0, 40);  // the UTF-8 scan of 1 MB is the only O(N) work
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations of a valid file (B.2 item 3)

Safetensors mutation_model() {
  std::mt19937_64 rng(42);
  Safetensors st;
  st.metadata = {{"format", "backprop"}, {"activations", "relu,softmax"}, {"seed", "42"}};
  auto add = [&](std::string name, std::vector<std::uint64_t> shape) {
    Tensor t{std::move(name), "F32", std::move(shape), {}};
    t.data.resize(product(t.shape) * 4);
    for (auto& b : t.data) b = static_cast<std::uint8_t>(rng());
    st.tensors.push_back(std::move(t));
  };
  add("0.weight", {64, 64});
  add("0.bias", {64});
  add("2.weight", {10, 64});
  add("2.bias", {10});
  add("empty", {0, 10});
  return st;
}

// A successful parse must describe a well-formed container: sizes consistent, the data section
// fully covered, and a fixed point of serialize -> parse.
void expect_consistent(const Safetensors& st, std::size_t data_size) {
  std::uint64_t total = 0;
  for (const auto& t : st.tensors) {
    ASSERT_NE(safetensors_dtype_size(t.dtype), 0u);
    ASSERT_EQ(t.data.size(), product(t.shape) * safetensors_dtype_size(t.dtype));
    total += t.data.size();
  }
  ASSERT_EQ(total, data_size);
  expect_same(parse(serialize_safetensors(st)), st);
}

TEST(SafetensorsMutation, EveryTruncationIsRejected) {
  const Bytes file = serialize_safetensors(mutation_model());
  ASSERT_GT(file.size(), 10'000u);
  for (std::size_t len = 0; len < file.size(); ++len) {
    try {
      parse(std::span(file.data(), len));
      ADD_FAILURE() << "truncation to " << len << " bytes accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << len << ": " << e.what();
    }
  }
}

TEST(SafetensorsMutation, EveryAppendIsRejected) {
  const Bytes file = serialize_safetensors(mutation_model());
  for (std::size_t k : {1, 2, 8, 64}) {
    for (std::uint8_t fill : {0x00, 0x20, 0x7b, 0xff}) {
      Bytes longer = file;
      longer.resize(file.size() + k, fill);
      SCOPED_TRACE(testing::Message() << "append of " << k << " bytes of " << int{fill});
      expect_error([&] { parse(longer); }, ErrorCode::kFormat,
                   {"of unexpected data at end of file"});
    }
  }
}

TEST(SafetensorsMutation, EverySingleByteChangeInTheHeaderIsRejectedOrConsistent) {
  const Safetensors original = mutation_model();
  const Bytes file = serialize_safetensors(original);
  const std::size_t header_end = 8 + read_le64(file);
  const std::size_t data_size = file.size() - header_end;
  Bytes mutant = file;
  std::size_t accepted = 0, rejected = 0;
  for (std::size_t at = 0; at < header_end; ++at) {
    for (int v = 0; v < 256; ++v) {
      if (v == file[at]) continue;
      mutant[at] = static_cast<std::uint8_t>(v);
      try {
        Safetensors st = parse(mutant);
        ++accepted;
        expect_consistent(st, data_size);
      } catch (const Error& e) {
        ++rejected;
        ASSERT_TRUE(e.code() == ErrorCode::kFormat || e.code() == ErrorCode::kLimit)
            << at << "=" << v << ": " << e.what();
      }
      if (HasFailure()) {
        ADD_FAILURE() << "at byte " << at << " value " << v;
        return;
      }
    }
    mutant[at] = file[at];
  }
  // Some changes are harmless (a padding space turned into a tab, a letter of a metadata value
  // or of a name), most are not; both paths ran.
  EXPECT_GT(accepted, 1000u);
  EXPECT_GT(rejected, accepted);
  RecordProperty("accepted", static_cast<int>(accepted));
  RecordProperty("rejected", static_cast<int>(rejected));
}

TEST(SafetensorsMutation, ADataByteChangeChangesOnlyThatByteOfOneTensor) {
  const Safetensors original = mutation_model();
  const Bytes file = serialize_safetensors(original);
  const std::size_t header_end = 8 + read_le64(file);
  for (std::size_t at = header_end; at < file.size(); at += 37) {
    Bytes mutant = file;
    mutant[at] ^= 0x5a;
    Safetensors st = parse(mutant);
    ASSERT_EQ(st.tensors.size(), original.tensors.size());
    std::size_t differing = 0;
    for (std::size_t i = 0; i < st.tensors.size(); ++i) {
      EXPECT_EQ(st.tensors[i].name, original.tensors[i].name);
      for (std::size_t b = 0; b < st.tensors[i].data.size(); ++b) {
        differing += st.tensors[i].data[b] != original.tensors[i].data[b];
      }
    }
    EXPECT_EQ(differing, 1u) << "at " << at;
  }
}

// ---------------------------------------------------------------------------------------------
// What the writer refuses

TEST(SerializeSafetensors, RefusesInputItCouldNotReadBack) {
  auto tensor = [](std::string name, std::string dtype, std::vector<std::uint64_t> shape,
                   std::size_t bytes) {
    return Tensor{std::move(name), std::move(dtype), std::move(shape), Bytes(bytes)};
  };
  struct Case {
    const char* what;
    Safetensors st;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"unknown dtype", {{}, {tensor("a", "f32", {1}, 4)}}, "unsupported dtype \"f32\""},
      {"data too short",
       {{}, {tensor("a", "F32", {2}, 7)}},
       "data is 7 bytes, shape [2] of F32 needs 8"},
      {"data too long", {{}, {tensor("a", "U8", {}, 2)}}, "needs 1"},
      {"duplicate names",
       {{}, {tensor("a", "U8", {1}, 1), tensor("a", "U8", {1}, 1)}},
       "duplicate tensor name \"a\""},
      {"empty name", {{}, {tensor("", "U8", {1}, 1)}}, "is empty"},
      {"long name", {{}, {tensor(std::string(1025, 'a'), "U8", {1}, 1)}}, "longer than 1024"},
      {"control character", {{}, {tensor("a\tb", "U8", {1}, 1)}}, "control character"},
      {"reserved name", {{}, {tensor("__metadata__", "U8", {1}, 1)}}, "reserved"},
      {"invalid UTF-8 name", {{}, {tensor("a\xff", "U8", {1}, 1)}}, "not UTF-8"},
      {"invalid UTF-8 metadata", {{{"k", "\xc0\x80"}}, {}}, "not valid UTF-8"},
      {"dimension over 2^53",
       {{}, {tensor("a", "U8", {(std::uint64_t{1} << 53) + 1, 0}, 0)}},
       "over 2^53"},
      {"element count overflow",
       {{}, {tensor("a", "U8", {1ull << 40, 1ull << 40}, 0)}},
       "overflows"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    expect_error([&] { serialize_safetensors(c.st); }, ErrorCode::kUsage, {c.message});
  }
}

}  // namespace
}  // namespace backprop
