// Tests for the bounded gzip decoder behind the IDX loader (src/data/gzip.hpp): round trips,
// concatenated members, and every way a stream can be broken (RELIABILITY.md cases 20-29).
#include "data/gzip.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backprop/error.hpp"
#include "test_util.hpp"

namespace backprop::detail {
namespace {

using namespace backprop::test;

Bytes random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  // Small alphabet: compressible, yet with real Huffman and match content.
  for (auto& x : b) x = static_cast<std::uint8_t>('a' + rng() % 7);
  return b;
}

TEST(GzipDecoder, RoundTripsOneMember) {
  Bytes data = random_bytes(100000, 1);
  EXPECT_EQ(gzip_decode_all(gzip_bytes(data), "x.gz", 1 << 20), data);
}

TEST(GzipDecoder, RoundTripsAnEmptyMember) {
  EXPECT_TRUE(gzip_decode_all(gzip_bytes({}), "x.gz", 1 << 20).empty());
}

TEST(GzipDecoder, ReadsInSmallPiecesWithTheSameResult) {
  Bytes data = random_bytes(50000, 2);
  Bytes gz = gzip_bytes(data);
  GzipDecoder dec(gz, "x.gz");
  Bytes out;
  std::uint8_t piece[7];
  for (;;) {
    std::size_t got = dec.read(piece);
    out.insert(out.end(), piece, piece + got);
    if (got < sizeof piece) break;
  }
  EXPECT_EQ(out, data);
  EXPECT_EQ(dec.decoded_bytes(), data.size());
  EXPECT_EQ(dec.read(piece), 0u);  // stays at the end
}

TEST(GzipDecoder, DecodesConcatenatedMembersInOrder) {
  Bytes a = random_bytes(3000, 3), b = random_bytes(5000, 4), c = random_bytes(1, 5);
  Bytes gz =
      concat(concat(concat(gzip_bytes(a), gzip_bytes({})), gzip_bytes(b, 1)), gzip_bytes(c, 9));
  EXPECT_EQ(gzip_decode_all(gz, "multi.gz", 1 << 20), concat(concat(a, b), c));
}

// Both reads below stop after at most 1 MiB of output: milliseconds. The bound catches a decoder
// that spins or inflates everything first; decoded_bytes() proves where it stopped.
constexpr double kFailFastSeconds = 1.0;

TEST(GzipDecoder, StopsAtTheCapWithoutDecodingTheRest) {
  // 64 MiB of zeros compress to about 64 KiB: a bomb at roughly 1000:1.
  Bytes zeros(std::size_t{64} << 20, 0);
  Bytes gz = gzip_bytes(zeros, 9);
  zeros = {};
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { gzip_decode_all(gz, "bomb.gz", 1 << 20); }, ErrorCode::kLimit,
               {"bomb.gz", "more than 1048576 bytes"});
  GzipDecoder dec(gz, "bomb.gz");
  Bytes piece(1000);
  EXPECT_EQ(dec.read(piece), 1000u);
  EXPECT_EQ(dec.decoded_bytes(), 1000u);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, kFailFastSeconds);
}

TEST(GzipDecoder, BoundsTheDecodedSizeByTheCompressedSize) {
  EXPECT_EQ(gzip_max_decoded_bytes(0), std::uint64_t{1} << 20);
  EXPECT_EQ(gzip_max_decoded_bytes(1000), 1100000u + (1u << 20));
  EXPECT_EQ(gzip_max_decoded_bytes(UINT64_MAX / 2), UINT64_MAX);  // saturates, never wraps
  // The real ratio of zlib at its best stays under the bound.
  Bytes zeros(std::size_t{16} << 20, 0);
  EXPECT_LE(zeros.size(), gzip_max_decoded_bytes(gzip_bytes(zeros, 9).size()));
}

struct BadCase {
  std::string what;
  Bytes bytes;
  ErrorCode code;
  std::vector<std::string> parts;
};

std::vector<BadCase> bad_cases() {
  Bytes data = random_bytes(20000, 6);
  Bytes gz = gzip_bytes(data);
  std::vector<BadCase> cases;
  cases.push_back({"cut last 10 bytes",
                   Bytes(gz.begin(), gz.end() - 10),
                   ErrorCode::kFormat,
                   {"bad.gz", "truncated gzip data", "member 1"}});
  cases.push_back({"cut in the middle",
                   Bytes(gz.begin(), gz.begin() + gz.size() / 2),
                   ErrorCode::kFormat,
                   {"bad.gz", "truncated gzip data"}});
  cases.push_back({"only the magic",
                   Bytes(gz.begin(), gz.begin() + 2),
                   ErrorCode::kFormat,
                   {"bad.gz", "truncated gzip data"}});
  {
    Bytes b = gz;
    b[10] = 0xFF;  // first deflate byte: final block of the reserved type 3
    cases.push_back({"invalid block type",
                     b,
                     ErrorCode::kFormat,
                     {"bad.gz", "corrupt deflate data", "member 1", "invalid block type"}});
  }
  {
    Bytes b = gz;
    b[b.size() - 8] ^= 0x01;  // CRC-32, first byte of the trailer
    cases.push_back({"CRC mismatch", b, ErrorCode::kFormat, {"bad.gz", "CRC-32 mismatch"}});
  }
  {
    Bytes b = gz;
    b[b.size() - 1] ^= 0x01;  // ISIZE
    cases.push_back({"ISIZE mismatch", b, ErrorCode::kFormat, {"bad.gz", "ISIZE"}});
  }
  {
    Bytes b = gz;
    b[2] = 7;  // compression method other than deflate
    cases.push_back({"bad method",
                     b,
                     ErrorCode::kFormat,
                     {"bad.gz", "bad gzip header", "unknown compression method"}});
  }
  cases.push_back({"trailing garbage",
                   concat(gz, {'x', 'y', 'z'}),
                   ErrorCode::kFormat,
                   {"bad.gz", "trailing garbage after gzip data", "78 79 7A",
                    "byte " + std::to_string(gz.size())}});
  cases.push_back({"trailing zeros",
                   concat(gz, Bytes(16, 0)),
                   ErrorCode::kFormat,
                   {"bad.gz", "trailing garbage"}});
  cases.push_back({"trailing lone 1F",
                   concat(gz, {0x1F}),
                   ErrorCode::kFormat,
                   {"bad.gz", "truncated gzip data", "member 2"}});
  cases.push_back({"second member truncated",
                   concat(gz, Bytes(gz.begin(), gz.end() - 3)),
                   ErrorCode::kFormat,
                   {"bad.gz", "truncated gzip data", "member 2"}});
  // FLG.FNAME set and a name that never ends: zlib must report truncation, not read past.
  cases.push_back({"unterminated FNAME",
                   concat({0x1F, 0x8B, 8, 0x08, 0, 0, 0, 0, 0, 3}, Bytes(100, 'n')),
                   ErrorCode::kFormat,
                   {"bad.gz", "truncated gzip data"}});
  cases.push_back({"not gzip",
                   {'h', 'e', 'l', 'l', 'o'},
                   ErrorCode::kFormat,
                   {"bad.gz", "expected the gzip magic 1F 8B", "68 65"}});
  cases.push_back({"empty", {}, ErrorCode::kFormat, {"bad.gz", "empty file"}});
  return cases;
}

TEST(GzipDecoder, RejectsEveryBrokenStreamWithOneLineNamingTheCheck) {
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.what);
    expect_error([&] { gzip_decode_all(c.bytes, "bad.gz", 1 << 30); }, c.code, c.parts);
  }
}

TEST(GzipDecoder, RejectsFlippedBytesAnywhereInTheBody) {
  Bytes data = random_bytes(20000, 7);
  Bytes gz = gzip_bytes(data);
  std::mt19937 rng(8);
  int rejected = 0;
  for (int trial = 0; trial < 200; ++trial) {
    Bytes b = gz;
    std::size_t at = 10 + rng() % (b.size() - 18);  // inside the deflate body
    b[at] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    try {
      Bytes out = gzip_decode_all(b, "flip.gz", 1 << 30);
      // A flip that deflate cannot see must still be caught by the CRC: never accept wrong data.
      EXPECT_EQ(out, data) << "flip at " << at;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat);
      EXPECT_NE(std::string(e.what()).find("flip.gz: gzip: "), std::string::npos) << e.what();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 190);
}

TEST(GzipDecoder, RejectsEveryTruncationWithoutHanging) {
  Bytes gz = concat(gzip_bytes(random_bytes(3000, 9)), gzip_bytes(random_bytes(100, 10)));
  for (std::size_t len = 0; len < gz.size(); ++len) {
    SCOPED_TRACE(len);
    Bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(len));
    try {
      gzip_decode_all(cut, "cut.gz", 1 << 30);
      // Cutting exactly between members leaves a valid one-member file.
      EXPECT_EQ(len, gzip_bytes(random_bytes(3000, 9)).size());
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
    }
  }
}

}  // namespace
}  // namespace backprop::detail
