// Helpers that several test files share: a temporary directory that cleans up after itself,
// whole-file reads and writes, gzip members made by zlib's own deflate, little-endian u64 framing,
// expect_error (code, message parts, one line), and a scalar reference for the elementwise
// activations. Nothing here uses the library's readers or writers, so a test cannot agree with a
// bug by sharing code with it. Helpers that do not run inside a test body report trouble by
// throwing std::runtime_error, which gtest turns into a failure of the test that called them.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "backprop/activation.hpp"
#include "backprop/error.hpp"

namespace backprop {
namespace test {

using Bytes = std::vector<std::uint8_t>;

// "kFormat" rather than 2 in failure messages.
inline const char* code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage:
      return "kUsage";
    case ErrorCode::kIo:
      return "kIo";
    case ErrorCode::kFormat:
      return "kFormat";
    case ErrorCode::kData:
      return "kData";
    case ErrorCode::kModel:
      return "kModel";
    case ErrorCode::kLimit:
      return "kLimit";
    case ErrorCode::kNumeric:
      return "kNumeric";
    case ErrorCode::kInterrupted:
      return "kInterrupted";
  }
  return "ErrorCode(?)";
}

}  // namespace test

// gtest finds this by argument-dependent lookup, so it must live in ErrorCode's namespace.
inline void PrintTo(ErrorCode code, std::ostream* os) {
  *os << test::code_name(code);
}

namespace test {

// ---------------------------------------------------------------------------------------------
// Files

inline Bytes read_bytes(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path.string());
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Creates or truncates `path` and writes `bytes` to it.
inline void write_bytes(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

// Names of the entries of a directory (not recursive), sorted.
inline std::vector<std::string> list_dir(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A fresh directory of its own (mkdtemp) under the system temporary directory, removed with
// everything in it when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "backprop_test.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp " + tmpl + " failed: " + std::strerror(errno));
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const { return path_; }
  // The path of `name` inside the directory (which need not exist).
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Writes `bytes` to the file `name` inside the directory; returns its path.
  std::string write(const std::string& name, std::span<const std::uint8_t> bytes) const {
    std::string p = *this / name;
    write_bytes(p, bytes);
    return p;
  }
  // Every entry in the directory, by name, sorted.
  std::vector<std::string> entries() const { return list_dir(path_); }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------------------------
// Bytes

inline Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// One gzip member holding `data`, written by zlib's own deflate.
inline Bytes gzip_bytes(std::span<const std::uint8_t> data, int level = Z_DEFAULT_COMPRESSION) {
  if (data.size() > UINT32_MAX) throw std::runtime_error("gzip_bytes: input over 4 GiB");
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
  Bytes out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64);
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed: " + std::to_string(rc));
  return out;
}

// The 8-byte little-endian encoding of n (the safetensors header length).
inline Bytes le64(std::uint64_t n) {
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  return out;
}

// The little-endian u64 in the first 8 bytes of b.
inline std::uint64_t read_le64(std::span<const std::uint8_t> b) {
  if (b.size() < 8) throw std::runtime_error("read_le64: fewer than 8 bytes");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<std::size_t>(i)];
  return n;
}

// ---------------------------------------------------------------------------------------------
// Errors

// Runs f, which must throw Error with `code` and a one-line message holding every one of `parts`.
template <class F>
void expect_error(F&& f, ErrorCode code, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an Error with code " << code_name(code);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.code(), code) << msg;
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << msg << "\n  lacks: " << p;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message must be one line: " << msg;
  }
}

// ---------------------------------------------------------------------------------------------
// Activations

// g(z) for one element, written from the formulas, for checking the library's kernels. Softmax is
// not elementwise: callers compute it over the row themselves.
inline double activation_reference(Activation f, double z, double slope) {
  switch (f) {
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-z));
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kRelu:
      return z > 0 ? z : 0;
    case Activation::kLeakyRelu:
      return z > 0 ? z : slope * z;
    case Activation::kIdentity:
    case Activation::kSoftmax:
      break;
  }
  BACKPROP_ASSERT(f == Activation::kIdentity);
  return z;
}

}  // namespace test
}  // namespace backprop
