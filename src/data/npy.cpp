// NumPy .npy loader and writer (data.hpp).
//
// The header is a Python dict literal, which NumPy itself reads with a restricted literal_eval. We
// parse the small grammar it needs, never evaluate anything, and check every key and value:
//
//   header := ws '{' ws [entry (ws ',' ws entry)* ws [',']] ws '}' ws
//   entry  := string ws ':' ws (string | 'True' | 'False' | tuple)
//   tuple  := '(' ws [int (ws ',' ws int)* ws [',']] ws ')'      int := digits ['L']
//   string := "'" chars "'" | '"' chars '"'       (no escapes; chars are printable ASCII)
//
// Sizes: count = product(shape) and count × item size are overflow-checked and must equal the
// bytes after the header exactly, before anything is allocated; the loaders then convert straight
// from the file's bytes, so a float32 array costs the file plus its floats.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "data/names.hpp"
#include "data/shard.hpp"
#include "util/checked.hpp"

namespace backprop {

namespace {

using detail::checked_mul;
using detail::hex_byte;
using detail::hex_bytes;

constexpr std::uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMagicBytes = sizeof kMagic;
// The 64-byte alignment np.save gives the start of the data.
constexpr std::size_t kNpyAlign = 64;

std::uint64_t type_size(NpyType t) {
  switch (t) {
    case NpyType::kBool:
    case NpyType::kI8:
    case NpyType::kU8:
      return 1;
    case NpyType::kI16:
    case NpyType::kU16:
      return 2;
    case NpyType::kI32:
    case NpyType::kU32:
    case NpyType::kF32:
      return 4;
    case NpyType::kI64:
    case NpyType::kU64:
    case NpyType::kF64:
      return 8;
  }
  return 0;
}

bool is_signed(NpyType t) {
  return t == NpyType::kI8 || t == NpyType::kI16 || t == NpyType::kI32 || t == NpyType::kI64;
}

bool is_float(NpyType t) {
  return t == NpyType::kF32 || t == NpyType::kF64;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// The header's text from `pos`, quoted, at most 24 bytes, non-printable bytes as \xNN.
std::string echo(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return "the end of the header";
  std::string out = "'";
  std::size_t end = std::min(text.size(), pos + 24);
  for (std::size_t i = pos; i < end; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out + (end < text.size() ? "...'" : "'");
}

struct NpyHeader {
  NpyType type = NpyType::kF32;
  bool big_endian = false;
  std::string descr;  // as written, for messages
  std::vector<std::uint64_t> shape;
  std::uint64_t count = 1;
  std::uint64_t data_offset = 0;  // where the elements start
  std::uint64_t data_bytes = 0;
};

// The dict parser. Positions in messages are byte offsets into the file.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::uint64_t base, const std::string& name)
      : text_(text), base_(base), name_(name) {}

  [[noreturn]] void fail(std::size_t pos, const std::string& what) const {
    throw Error(ErrorCode::kFormat,
                name_ + ": byte " + std::to_string(base_ + pos) + " (header): " + what);
  }
  [[noreturn]] void expected(std::size_t pos, const std::string& what) const {
    fail(pos, "expected " + what + ", found " + echo(text_, pos));
  }

  void parse(NpyHeader& h) {
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    std::size_t descr_pos = 0;
    skip_ws();
    if (!eat('{')) expected(pos_, "a Python dict literal starting with '{'");
    for (;;) {
      skip_ws();
      if (eat('}')) break;
      const std::size_t key_pos = pos_;
      if (peek() != '\'' && peek() != '"') expected(pos_, "a quoted key or '}'");
      const std::string key = string_literal();
      bool* seen = key == "descr"           ? &have_descr
                   : key == "fortran_order" ? &have_order
                   : key == "shape"         ? &have_shape
                                            : nullptr;
      if (seen == nullptr) {
        fail(key_pos, "unexpected key '" + key +
                          "': a .npy header holds exactly 'descr', 'fortran_order' and 'shape'");
      }
      if (*seen) fail(key_pos, "duplicate key '" + key + "'");
      *seen = true;
      skip_ws();
      if (!eat(':')) expected(pos_, "':' after the key '" + key + "'");
      skip_ws();
      const std::size_t value_pos = pos_;
      if (key == "descr") {
        if (peek() == '[') {
          fail(value_pos,
               "'descr' is a list: a structured (record) dtype, which is not supported; save a "
               "plain numeric array");
        }
        if (peek() != '\'' && peek() != '"') expected(pos_, "a dtype string such as '<f4'");
        descr_pos = pos_;
        h.descr = string_literal();
      } else if (key == "fortran_order") {
        if (eat_word("True")) {
          fortran = true;
        } else if (!eat_word("False")) {
          expected(pos_, "True or False for 'fortran_order'");
        }
      } else {
        h.shape = tuple(key);
      }
      skip_ws();
      if (eat(',')) continue;
      skip_ws();
      if (eat('}')) break;
      expected(pos_, "',' or '}'");
    }
    skip_ws();
    if (pos_ != text_.size()) expected(pos_, "only spaces after the dict");
    for (const auto& [have, key] :
         {std::pair{have_descr, "descr"}, std::pair{have_order, "fortran_order"},
          std::pair{have_shape, "shape"}}) {
      if (!have) fail(text_.size(), "no '" + std::string(key) + "' key in the header");
    }
    dtype(h, descr_pos);
    if (fortran) {
      throw Error(ErrorCode::kFormat,
                  name_ +
                      ": header: 'fortran_order' is True: Fortran-order (column-major) arrays "
                      "are not supported; save np.ascontiguousarray(a) instead");
    }
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  bool eat_word(std::string_view w) {
    if (text_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  void skip_ws() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  std::string string_literal() {
    const char quote = text_[pos_++];
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '\\') fail(pos_, "escape sequences are not supported in header strings");
      if (c < 0x20 || c >= 0x7F) expected(pos_, "printable ASCII inside a quoted string");
      ++pos_;
    }
    if (pos_ >= text_.size()) expected(pos_, std::string("a closing ") + quote);
    return std::string(text_.substr(start, pos_++ - start));
  }

  std::vector<std::uint64_t> tuple(const std::string& key) {
    std::vector<std::uint64_t> out;
    if (!eat('(')) expected(pos_, "a tuple of integers for '" + key + "', such as (60000, 784)");
    for (;;) {
      skip_ws();
      if (eat(')')) return out;
      if (peek() < '0' || peek() > '9') expected(pos_, "a non-negative integer or ')'");
      std::uint64_t v = 0;
      const std::size_t start = pos_;
      while (peek() >= '0' && peek() <= '9') {
        if (!checked_mul(v, 10, v) || v > std::numeric_limits<std::uint64_t>::max() - 9 ||
            v + static_cast<std::uint64_t>(peek() - '0') >
                static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          fail(start, "dimension " + echo(text_, start) + " is over 2^63 - 1");
        }
        v += static_cast<std::uint64_t>(peek() - '0');
        ++pos_;
      }
      eat('L');  // Python 2 wrote long integers with a suffix
      out.push_back(v);
      skip_ws();
      if (eat(',')) continue;
      skip_ws();
      if (eat(')')) return out;
      expected(pos_, "',' or ')' in the shape tuple");
    }
  }

  // descr: a byte order ('<', '>', '|'), a kind and a size in bytes.
  void dtype(NpyHeader& h, std::size_t at) const {
    const std::string& d = h.descr;
    const std::string quoted = "'" + d + "'";
    auto unsupported = [&](const std::string& why) { fail(at, "dtype " + quoted + " " + why); };
    if (d.size() < 2 || std::string_view("<>|=").find(d[0]) == std::string_view::npos) {
      expected(at, "a dtype string of byte order, kind and size, such as '<f4'");
    }
    const char order = d[0], kind = d[1];
    const std::string size_text = d.substr(2);
    int size = 0;
    for (char c : size_text) {
      if (c < '0' || c > '9' || size > 1000) {
        size = -1;
        break;
      }
      size = size * 10 + (c - '0');
    }
    if (kind == 'O') {
      unsupported(
          "is an object array, which only unpickling could read, and backprop never unpickles; "
          "save a numeric array (a.astype(np.float32))");
    }
    if (kind == 'U' || kind == 'S' || kind == 'a') {
      unsupported("holds strings, which are not supported; encode labels as integers");
    }
    if (kind == 'c') unsupported("is complex, which is not supported");
    if (kind == 'M' || kind == 'm') unsupported("is a date or time, which is not supported");
    if (kind == 'V') unsupported("is raw void data, which is not supported");
    if (kind == 'f' && size == 2) {
      unsupported("(float16) is not supported; save a.astype(np.float32)");
    }
    NpyType t = NpyType::kF32;
    bool known = true;
    switch (kind) {
      case 'b':
        known = size == 1;
        t = NpyType::kBool;
        break;
      case 'i':
        t = size == 1 ? NpyType::kI8 : size == 2 ? NpyType::kI16 : NpyType::kI32;
        if (size == 8) t = NpyType::kI64;
        known = size == 1 || size == 2 || size == 4 || size == 8;
        break;
      case 'u':
        t = size == 1 ? NpyType::kU8 : size == 2 ? NpyType::kU16 : NpyType::kU32;
        if (size == 8) t = NpyType::kU64;
        known = size == 1 || size == 2 || size == 4 || size == 8;
        break;
      case 'f':
        t = size == 8 ? NpyType::kF64 : NpyType::kF32;
        known = size == 4 || size == 8;
        break;
      default:
        known = false;
    }
    if (!known) {
      unsupported(
          "is not supported: expected bool, int8..int64, uint8..uint64, float32 or float64 "
          "('|b1', '<i8', '|u1', '<f4', '<f8', ...)");
    }
    if (size > 1 && order == '|') {
      unsupported("has byte order '|' (not applicable), but its items are " + size_text +
                  " bytes wide: expected '<' or '>'");
    }
    if (size > 1 && order == '=') {
      unsupported("has the native byte order '=', which a file cannot tell: expected '<' or '>'");
    }
    h.type = t;
    h.big_endian = order == '>';
  }

  std::string_view text_;
  std::uint64_t base_;
  const std::string& name_;
  std::size_t pos_ = 0;
};

// `bytes` is the whole file, or (reading a part of it) its first bytes, at least through the
// header, of a file of file_size bytes.
NpyHeader parse_header(std::span<const std::uint8_t> bytes, const std::string& name,
                       const ReadLimits& limits, std::uint64_t file_size) {
  auto at = [&name](std::uint64_t offset) { return name + ": byte " + std::to_string(offset); };
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0) {
    throw Error(ErrorCode::kFormat,
                at(0) +
                    ": expected a .npy file, found a ZIP archive (an .npz file?); save one "
                    "array with np.save");
  }
  if (bytes.size() < kMagicBytes || std::memcmp(bytes.data(), kMagic, kMagicBytes) != 0) {
    std::span<const std::uint8_t> head = bytes.first(std::min(bytes.size(), kMagicBytes));
    throw Error(ErrorCode::kFormat,
                at(0) + ": expected the .npy magic 93 4E 55 4D 50 59 " + "(\\x93NUMPY), found " +
                    (head.empty() ? std::string("an empty file") : hex_bytes(head)));
  }
  if (bytes.size() < kMagicBytes + 2) {
    throw Error(ErrorCode::kFormat, at(bytes.size()) +
                                        ": expected the format version (2 bytes), found the end of "
                                        "the file");
  }
  const std::uint8_t major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3 || minor != 0) {
    throw Error(ErrorCode::kFormat, at(6) +
                                        ": expected .npy format version 1.0, 2.0 or 3.0, found " +
                                        std::to_string(major) + "." + std::to_string(minor));
  }
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  const std::size_t preamble = kMagicBytes + 2 + len_bytes;
  if (bytes.size() < preamble) {
    throw Error(ErrorCode::kFormat, at(8) + ": expected the " + std::to_string(len_bytes) +
                                        "-byte header length, found the end of the file");
  }
  std::uint64_t header_len = 0;
  for (std::size_t i = 0; i < len_bytes; ++i) header_len |= std::uint64_t{bytes[8 + i]} << (8 * i);
  if (header_len > limits.max_header_bytes) {
    throw Error(ErrorCode::kLimit, at(8) + ": header length " + std::to_string(header_len) +
                                       " bytes is over the limit of " +
                                       std::to_string(limits.max_header_bytes) +
                                       " (max_header_bytes)");
  }
  if (header_len > file_size - preamble) {
    throw Error(ErrorCode::kFormat, at(8) + ": header length " + std::to_string(header_len) +
                                        " runs past the end of the file (" +
                                        std::to_string(file_size) + " bytes)");
  }
  BACKPROP_ASSERT(bytes.size() >= preamble + header_len);  // the caller read through the header
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + preamble),
                              static_cast<std::size_t>(header_len));
  NpyHeader h;
  HeaderParser(text, preamble, name).parse(h);

  h.data_offset = preamble + header_len;
  for (std::uint64_t d : h.shape) {
    if (!checked_mul(h.count, d, h.count)) {
      throw Error(ErrorCode::kFormat,
                  name + ": header: shape " + shape_text(h.shape) + " holds more than 2^64 items");
    }
  }
  if (!checked_mul(h.count, type_size(h.type), h.data_bytes)) {
    throw Error(ErrorCode::kFormat, name + ": header: shape " + shape_text(h.shape) + " of " +
                                        h.descr + " needs more than 2^64 bytes");
  }
  const std::uint64_t have = file_size - h.data_offset;
  if (have != h.data_bytes) {
    throw Error(ErrorCode::kFormat,
                at(h.data_offset) + ": shape " + shape_text(h.shape) + " of " + h.descr +
                    " needs " + std::to_string(h.data_bytes) + " bytes of data, found " +
                    std::to_string(have) +
                    (have < h.data_bytes ? " (a truncated file?)" : " (trailing bytes)"));
  }
  return h;
}

// The raw bits of element i, as an unsigned integer in host order.
std::uint64_t element_bits(const NpyHeader& h, const std::uint8_t* data, std::uint64_t i) {
  const std::uint64_t size = type_size(h.type);
  const std::uint8_t* p = data + i * size;
  std::uint64_t v = 0;
  for (std::uint64_t b = 0; b < size; ++b) {
    const std::uint64_t shift = h.big_endian ? 8 * (size - 1 - b) : 8 * b;
    v |= std::uint64_t{p[b]} << shift;
  }
  return v;
}

// A signed element's bits (element_bits) sign-extended from its width.
std::int64_t element_signed(const NpyHeader& h, std::uint64_t bits) {
  switch (type_size(h.type)) {
    case 1:
      return static_cast<std::int8_t>(bits);
    case 2:
      return static_cast<std::int16_t>(bits);
    case 4:
      return static_cast<std::int32_t>(bits);
    default:
      return static_cast<std::int64_t>(bits);
  }
}

// Element i as a double: exact for every type except 64-bit integers past 2^53.
double element_double(const NpyHeader& h, const std::uint8_t* data, std::uint64_t i) {
  const std::uint64_t u = element_bits(h, data, i);
  switch (h.type) {
    case NpyType::kBool:
      return u != 0 ? 1.0 : 0.0;
    case NpyType::kU8:
    case NpyType::kU16:
    case NpyType::kU32:
    case NpyType::kU64:
      return static_cast<double>(u);
    case NpyType::kI8:
    case NpyType::kI16:
    case NpyType::kI32:
    case NpyType::kI64:
      return static_cast<double>(element_signed(h, u));
    case NpyType::kF32:
      return std::bit_cast<float>(static_cast<std::uint32_t>(u));
    case NpyType::kF64:
      return std::bit_cast<double>(u);
  }
  return 0;
}

std::string dtype_text(const NpyHeader& h) {
  return std::string(to_string(h.type)) + " ('" + h.descr + "')";
}

// A file's header and its data: all of it, or (a shard of a features file) only rows
// [first_row, first_row + rows) of the header's shape[0].
struct NpyFile {
  std::string name;
  std::vector<std::uint8_t> bytes;
  NpyHeader header;
  std::uint64_t data_start = 0;           // where bytes' data begins
  std::uint64_t first_row = 0, rows = 0;  // rows 0: every row
  bool part() const { return rows > 0 || first_row > 0; }
  const std::uint8_t* data() const { return bytes.data() + data_start; }
  // The place in the file of element i of data().
  std::string at(std::uint64_t element) const {
    const std::uint64_t before = header.shape.empty() || header.shape[0] == 0
                                     ? 0
                                     : first_row * (header.count / header.shape[0]);
    return name + ": byte " +
           std::to_string(header.data_offset + (before + element) * type_size(header.type));
  }
};

NpyFile read_npy_file(const std::string& path, const ReadLimits& limits) {
  NpyFile f;
  f.name = path;
  f.bytes = read_file(path, limits.max_input_bytes);
  f.header = parse_header(f.bytes, path, limits, f.bytes.size());
  f.data_start = f.header.data_offset;
  return f;
}

// Only the shard's rows of a features file: the header and the file's size are checked as for a
// whole read, then only those rows are read.
NpyFile read_npy_part(const std::string& path, const ReadLimits& limits, Shard shard) {
  NpyFile f;
  f.name = path;
  constexpr std::uint64_t kFirst = 4096;
  FileSlice head = read_file_slice(path, 0, kFirst, limits.max_input_bytes);
  // The header may be longer than the first read: its length is at byte 8 (2 or 4 bytes).
  if (head.bytes.size() == kFirst && std::memcmp(head.bytes.data(), kMagic, kMagicBytes) == 0) {
    const std::size_t len_bytes = head.bytes[6] == 1 ? 2 : 4;
    std::uint64_t header_len = 0;
    for (std::size_t i = 0; i < len_bytes; ++i)
      header_len |= std::uint64_t{head.bytes[8 + i]} << (8 * i);
    const std::uint64_t through = kMagicBytes + 2 + len_bytes + header_len;
    if (through > kFirst && header_len <= limits.max_header_bytes && through <= head.file_size) {
      head = read_file_slice(path, 0, through, limits.max_input_bytes);
    }
  }
  f.header = parse_header(head.bytes, path, limits, head.file_size);
  const NpyHeader& h = f.header;
  if (h.shape.empty() || h.count == 0) {  // not features: reported as for a whole file
    f.bytes = std::move(head.bytes);
    f.data_start = h.data_offset;
    return f;
  }
  const std::uint64_t n = h.shape[0], per_row = h.data_bytes / n;
  const auto begin = static_cast<std::uint64_t>(shard.begin(static_cast<Index>(n)));
  const auto end = static_cast<std::uint64_t>(shard.end(static_cast<Index>(n)));
  f.bytes = read_file_part(path, h.data_offset + begin * per_row, (end - begin) * per_row,
                           head.file_size, limits.max_input_bytes);
  f.first_row = begin;
  f.rows = end - begin;
  return f;
}

// The feature role: at least one dimension, a feature dtype, no empty dimension.
void require_features(const NpyFile& f) {
  const NpyHeader& h = f.header;
  if (h.shape.empty()) {
    throw Error(ErrorCode::kData, f.name +
                                      ": expected features of shape (examples, ...), found a 0-d "
                                      "array (a single number)");
  }
  if (h.type != NpyType::kU8 && h.type != NpyType::kF32 && h.type != NpyType::kF64) {
    throw Error(ErrorCode::kData, f.name +
                                      ": expected features of dtype float32, float64 or uint8, "
                                      "found " +
                                      dtype_text(h) + "; convert with a.astype(np.float32)");
  }
  if (h.count == 0) {
    throw Error(ErrorCode::kData, f.name + ": shape " + shape_text(h.shape) +
                                      " holds no values: expected at least "
                                      "one example of at least one feature");
  }
}

Dataset features_dataset(const NpyFile& f) {
  require_features(f);
  const NpyHeader& h = f.header;
  Dataset ds;
  ds.source = f.name;
  ds.format = DataFormat::kNpy;
  ds.task = Task::kClassify;
  const std::uint64_t width = h.count / h.shape[0];
  const std::uint64_t rows = f.part() ? f.rows : h.shape[0], count64 = rows * width;
  ds.n = static_cast<Index>(rows);
  ds.n_features = static_cast<Index>(width);
  if (f.part()) {
    ds.first_row = static_cast<Index>(f.first_row);
    ds.total_rows = static_cast<Index>(h.shape[0]);
  }
  if (h.shape.size() == 1) {
    ds.sample_shape = {1};
  } else {
    for (std::size_t i = 1; i < h.shape.size(); ++i)
      ds.sample_shape.push_back(static_cast<Index>(h.shape[i]));
  }
  const auto count = static_cast<std::size_t>(count64);
  if (h.type == NpyType::kU8) {
    ds.x_u8.assign(f.data(), f.data() + count);
    ds.value_scale = 1.0f / 255.0f;
  } else {
    ds.x_f32.resize(count);
    constexpr double kFloatMax = std::numeric_limits<float>::max();
    for (std::uint64_t i = 0; i < count64; ++i) {
      const double v = element_double(h, f.data(), i);
      if (!std::isfinite(v) || std::fabs(v) > kFloatMax) {
        throw Error(ErrorCode::kData,
                    f.at(i) + " (example " + std::to_string(f.first_row + i / width) + ", value " +
                        std::to_string(i % width) +
                        "): expected a finite value within float range, found " + format_value(v));
      }
      ds.x_f32[static_cast<std::size_t>(i)] = static_cast<float>(v);
    }
  }
  ds.feature_names.reserve(static_cast<std::size_t>(ds.n_features));
  for (Index j = 0; j < ds.n_features; ++j) {
    ds.feature_names.push_back(detail::default_feature_name(static_cast<std::size_t>(j)));
  }
  return ds;
}

// The whole file's labels or targets: one per example of the whole features file, also when ds
// holds only a shard of its rows (see cut_labels_to_shard).
void add_labels(Dataset& ds, const NpyFile& f, Task task, const ReadLimits& limits) {
  const NpyHeader& h = f.header;
  const std::uint64_t n = static_cast<std::uint64_t>(ds.whole_rows());
  if (h.shape.empty() || h.shape.size() > 2) {
    throw Error(ErrorCode::kData, f.name + ": expected labels of shape (" + std::to_string(n) +
                                      ",) or (" + std::to_string(n) + ", k), found " +
                                      shape_text(h.shape));
  }
  if (h.shape[0] != n) {
    throw Error(ErrorCode::kData, f.name + ": holds " + std::to_string(h.shape[0]) +
                                      " labels (shape " + shape_text(h.shape) + "), but " +
                                      ds.source + " holds " + std::to_string(n) + " examples");
  }
  const std::uint64_t k = h.shape.size() == 2 ? h.shape[1] : 1;
  ds.task = task;
  ds.labels_source = f.name;
  if (task == Task::kRegress) {
    if (k == 0)
      throw Error(ErrorCode::kData,
                  f.name + ": shape " + shape_text(h.shape) + " holds no targets");
    if (k > (std::uint64_t{1} << 24)) {
      throw Error(ErrorCode::kData, f.name + ": " + std::to_string(k) +
                                        " targets per example, over the limit of 16777216");
    }
    constexpr double kFloatMax = std::numeric_limits<float>::max();
    ds.targets.resize(static_cast<std::size_t>(h.count));
    for (std::uint64_t i = 0; i < h.count; ++i) {
      const double v = element_double(h, f.data(), i);
      if (!std::isfinite(v) || std::fabs(v) > kFloatMax) {
        throw Error(ErrorCode::kData, f.at(i) + " (example " + std::to_string(i / k) + ", target " +
                                          std::to_string(i % k) +
                                          "): expected a finite target within float range, "
                                          "found " +
                                          format_value(v));
      }
      ds.targets[static_cast<std::size_t>(i)] = static_cast<float>(v);
    }
    for (std::uint64_t j = 0; j < k; ++j) ds.label_columns.push_back(detail::numbered_name("y", j));
    return;
  }

  if (k != 1) {
    throw Error(ErrorCode::kData,
                f.name + ": classification takes one class label per example: expected shape (" +
                    std::to_string(n) + ",) or (" + std::to_string(n) + ", 1), found " +
                    shape_text(h.shape) +
                    " (one-hot rows? pass y.argmax(1); several targets? use --task regress)");
  }
  ds.labels.resize(static_cast<std::size_t>(n));
  std::uint64_t max_label = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t bits = element_bits(h, f.data(), i);
    // The label as a non-negative integer, or the reason it is not one.
    std::uint64_t v = 0;
    std::string bad;
    if (is_float(h.type)) {
      const double d = element_double(h, f.data(), i);
      if (!std::isfinite(d) || d != std::floor(d) || d < 0) {
        bad = format_value(d) + (std::isfinite(d) && d >= 0 ? " (not a whole number; regression "
                                                              "targets need --task regress)"
                                                            : "");
      } else {
        v = d < 1.8e19 ? static_cast<std::uint64_t>(d) : std::numeric_limits<std::uint64_t>::max();
      }
    } else if (is_signed(h.type)) {
      const std::int64_t exact = element_signed(h, bits);
      if (exact < 0) {
        bad = std::to_string(exact);
      } else {
        v = static_cast<std::uint64_t>(exact);
      }
    } else {
      v = h.type == NpyType::kBool ? (bits != 0 ? 1 : 0) : bits;
    }
    if (!bad.empty()) {
      throw Error(ErrorCode::kData, f.at(i) + " (label " + std::to_string(i) +
                                        "): expected a class index >= 0, found " + bad);
    }
    if (v >= limits.max_classes) {
      throw Error(
          ErrorCode::kLimit,
          f.at(i) + " (label " + std::to_string(i) + "): label " + std::to_string(v) + " implies " +
              (v == std::numeric_limits<std::uint64_t>::max() ? std::string("more than 2^64")
                                                              : std::to_string(v + 1)) +
              " classes, over the limit of " + std::to_string(limits.max_classes) +
              " (max_classes)");
    }
    max_label = std::max(max_label, v);
    ds.labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(v);
  }
  ds.class_names.reserve(static_cast<std::size_t>(max_label + 1));
  for (std::uint64_t c = 0; c <= max_label; ++c) ds.class_names.push_back(std::to_string(c));
  ds.label_columns = {"label"};
}

}  // namespace

std::string_view to_string(NpyType type) {
  switch (type) {
    case NpyType::kBool:
      return "bool";
    case NpyType::kI8:
      return "int8";
    case NpyType::kU8:
      return "uint8";
    case NpyType::kI16:
      return "int16";
    case NpyType::kU16:
      return "uint16";
    case NpyType::kI32:
      return "int32";
    case NpyType::kU32:
      return "uint32";
    case NpyType::kI64:
      return "int64";
    case NpyType::kU64:
      return "uint64";
    case NpyType::kF32:
      return "float32";
    case NpyType::kF64:
      return "float64";
  }
  return "?";
}

std::uint64_t NpyArray::count() const {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) {
    if (!checked_mul(n, d, n)) {
      throw Error(ErrorCode::kFormat, "npy array: shape holds more than 2^64 items");
    }
  }
  return n;
}

NpyArray parse_npy(std::span<const std::uint8_t> bytes, const std::string& name,
                   const ReadLimits& limits) {
  const NpyHeader h = parse_header(bytes, name, limits, bytes.size());
  NpyArray a;
  a.type = h.type;
  a.shape = h.shape;
  // Sized by the header only after parse_header matched it against the bytes really there.
  a.data.resize(static_cast<std::size_t>(h.data_bytes));
  const std::uint8_t* src = bytes.data() + h.data_offset;
  const std::uint64_t size = type_size(h.type);
  if (!h.big_endian || size == 1) {
    std::copy(src, src + h.data_bytes, a.data.begin());
  } else {
    for (std::uint64_t i = 0; i < h.count; ++i) {
      for (std::uint64_t b = 0; b < size; ++b)
        a.data[static_cast<std::size_t>(i * size + b)] = src[i * size + size - 1 - b];
    }
  }
  return a;
}

NpyArray read_npy(const std::string& path, const ReadLimits& limits) {
  std::vector<std::uint8_t> bytes = read_file(path, limits.max_input_bytes);
  return parse_npy(bytes, path, limits);
}

Dataset load_npy(const std::string& features_path, const std::string& labels_path, Task task,
                 const ReadLimits& limits, Shard shard) {
  NpyFile x = shard.whole() ? read_npy_file(features_path, limits)
                            : read_npy_part(features_path, limits, shard);
  require_features(x);  // before the labels are read: a swapped pair of paths fails at once
  NpyFile y = read_npy_file(labels_path, limits);
  Dataset ds = features_dataset(x);
  x.bytes = {};
  // The labels are read and checked whole (they decide the classes), then cut to the part.
  add_labels(ds, y, task, limits);
  if (x.part()) detail::cut_labels_to_shard(ds);
  return ds;
}

Dataset load_npy_features(const std::string& path, const ReadLimits& limits) {
  return features_dataset(read_npy_file(path, limits));
}

std::vector<std::uint8_t> serialize_npy(std::span<const float> values,
                                        const std::vector<std::uint64_t>& shape) {
  std::uint64_t count = 1;
  for (std::uint64_t d : shape) BACKPROP_ASSERT(checked_mul(count, d, count));
  BACKPROP_ASSERT(count == values.size());
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  // Spaces, then '\n', up to the next multiple of 64 for the data's start.
  const std::size_t preamble = kMagicBytes + 2 + 2;
  const std::size_t used = preamble + header.size() + 1;
  header.append((kNpyAlign - used % kNpyAlign) % kNpyAlign, ' ');
  header += '\n';
  BACKPROP_ASSERT(header.size() <= 0xFFFF);
  std::vector<std::uint8_t> out(kMagic, kMagic + kMagicBytes);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<std::uint8_t>(header.size() & 0xFF));
  out.push_back(static_cast<std::uint8_t>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  out.reserve(out.size() + values.size() * 4);
  for (float v : values) {
    const auto u = std::bit_cast<std::uint32_t>(v);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(u >> (8 * b)));
  }
  return out;
}

}  // namespace backprop
