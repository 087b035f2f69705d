// The safetensors container (io.hpp): a strict reader and a canonical writer.
//
// Reader. The checks run in this order, and everything allocated before step 5 is bounded by the
// header's size, never by a number read from the file:
//  1. Framing: at least 8 bytes; N (u64 little-endian, decoded byte by byte so the host's byte
//     order does not matter); 8 + N inside the file (checked add: N = 2^64-1 must not wrap),
//     kFormat; then N <= limits.max_header_bytes (kLimit) and N <= 100,000,000, the reference
//     loader's own cap, which holds even when a caller raises ours (kFormat).
//  2. Header text: valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF); no NUL
//     byte, because nlohmann's lexer takes NUL for end of input and would let "{...}\0junk"
//     through; '{' as the first byte after JSON whitespace, because nlohmann silently skips a
//     UTF-8 byte-order mark that the format (and serde_json) does not allow.
//  3. JSON: nlohmann::json::sax_parse (strict: only JSON whitespace may follow the closing brace)
//     drives HeaderHandler, a state machine that knows the schema. It builds the metadata map and
//     one Entry per tensor straight from the events and fails at the first event the schema does
//     not allow. No DOM is built: a DOM would cost a multiple of the header in memory, would keep
//     only the last of two duplicate keys, and would lose the header's key order. Duplicates are
//     found with a hash set. The parser is iterative and the schema allows no value deeper than 3
//     (root, entry, shape), so a header of a million '[' stops at the first bracket, without
//     recursion; kMaxJsonDepth is enforced as well, in case the schema ever grows.
//  4. Layout: tensors sorted by (begin, end), ties in header order, must tile the data section
//     exactly: the first begins at 0, each begins where the previous ended, the last ends at end
//     of file. A zero-size tensor (a 0 in its shape) has begin == end at the current position, as
//     in the reference loader, so several may share one offset.
//  5. Copy: only now are tensor bytes copied out, in data-section order.
//
// Writer. The header JSON is written as text here, not through nlohmann::json, whose objects sort
// their keys: "__metadata__" first when non-empty (its keys in std::map order), then the tensors
// in the given order, compact, with strings escaped as serde_json (the reference writer) escapes
// them. Padding with spaces makes 8 + N a multiple of 8. The input is validated first and bad
// input throws Error(kUsage): it is the caller's data at the public API, not an invariant of ours.
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/io.hpp"
#include "util/checked.hpp"

namespace backprop {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::uint64_t kFormatMaxHeader = 100'000'000;  // the reference loader's MAX_HEADER_SIZE
constexpr std::uint64_t kMaxShapeDim = std::uint64_t{1} << 53;  // exact in a double (JSON readers)
constexpr std::size_t kMaxNameBytes = 1024;
constexpr std::size_t kEchoBytes = 80;  // how much of a name or token an error message repeats

struct DtypeInfo {
  std::string_view name;
  std::size_t size;
};

// The byte-sized dtypes of the format. The format also defines C64, F8_E8M0 (added after the
// others) and the sub-byte F4, F6_E2M3, F6_E3M2; they are left out on purpose: sub-byte types have
// no whole byte size, and older reference readers reject the newer names, so accepting them would
// make our reader more lenient than the reference, never just stricter.
constexpr std::array<DtypeInfo, 15> kDtypes = {{
    {"BOOL", 1},
    {"U8", 1},
    {"I8", 1},
    {"F8_E5M2", 1},
    {"F8_E4M3", 1},
    {"I16", 2},
    {"U16", 2},
    {"F16", 2},
    {"BF16", 2},
    {"I32", 4},
    {"U32", 4},
    {"F32", 4},
    {"I64", 8},
    {"U64", 8},
    {"F64", 8},
}};

std::string dtype_list() {
  std::string out;
  for (const auto& d : kDtypes) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

// Text from a file, safe to put in a one-line message: every byte outside printable ASCII
// escaped as \xNN, cut after `max` bytes. With `quoted`, also the quote and backslash, in quotes.
std::string sanitize(std::string_view s, std::size_t max, bool quoted) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = quoted ? "\"" : "";
  std::size_t n = std::min(s.size(), max);
  for (std::size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && !(quoted && (c == '"' || c == '\\'))) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (quoted) out += '"';
  if (n < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string quote(std::string_view s) {
  return sanitize(s, kEchoBytes, true);
}

std::string to_dec(std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string bytes_text(std::uint64_t n) {
  return to_dec(n) + (n == 1 ? " byte" : " bytes");
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += to_dec(shape[i]);
  }
  return out + "]";
}

// Offset of the first byte that does not belong to well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing past U+10FFFF), or npos when the text is valid.
std::size_t utf8_error_at(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // past U+10FFFF
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xbf) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Why `name` cannot name a tensor, or nullptr when it can. UTF-8 validity is checked separately.
const char* name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameBytes) return "is longer than 1024 bytes";
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return "holds a control character";
  }
  return nullptr;
}

// One tensor entry as the header declares it.
struct Entry {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;
  std::uint64_t n_bytes = 0;  // product(shape) × dtype size, set once the entry is complete
  bool has_dtype = false, has_shape = false, has_offsets = false;
};

// nlohmann SAX handler: the header schema as a state machine. Each callback returns false with
// `error` set at the first event the schema does not allow; sax_parse then stops at once.
class HeaderHandler {
 public:
  std::string error;
  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;  // in header order

  bool null() { return unexpected("null"); }
  bool boolean(bool v) { return unexpected(v ? "true" : "false"); }
  bool number_integer(Json::number_integer_t v) {
    // nlohmann reports non-negative integers through number_unsigned, so v is negative here.
    return unexpected("number " + std::to_string(v));
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (where_ == Where::kShape) {
      if (v > kMaxShapeDim) {
        return fail(tensor() + ": shape: dimension " + to_dec(v) + " is over 2^53");
      }
      entries.back().shape.push_back(v);
      return true;
    }
    if (where_ == Where::kOffsets) {
      if (n_offsets_ == 2) {
        return fail(tensor() + ": data_offsets: expected [begin, end], found more than 2 entries");
      }
      (n_offsets_++ == 0 ? entries.back().begin : entries.back().end) = v;
      return true;
    }
    return unexpected("number " + to_dec(v));
  }
  bool number_float(Json::number_float_t, const Json::string_t& text) {
    return unexpected("number " + quote(text));
  }
  bool string(Json::string_t& s) {
    if (where_ == Where::kMetadata) {
      metadata.emplace(key_, std::move(s));
      return true;
    }
    if (where_ == Where::kEntry && key_ == "dtype") {
      if (safetensors_dtype_size(s) == 0) {
        return fail(tensor() + ": unsupported dtype " + quote(s) + " (expected one of " +
                    dtype_list() + ")");
      }
      entries.back().dtype = s;
      return true;
    }
    return unexpected("string " + quote(s));
  }
  bool binary(Json::binary_t&) { return unexpected("binary data"); }

  bool start_object(std::size_t) {
    if (!deeper()) return false;
    if (where_ == Where::kTop) {
      where_ = Where::kRoot;
      return true;
    }
    if (where_ == Where::kRoot) {
      if (key_ == kMetadataKey) {
        where_ = Where::kMetadata;
      } else {
        entries.push_back(Entry{});
        entries.back().name = key_;
        where_ = Where::kEntry;
      }
      return true;
    }
    return unexpected("an object");
  }

  bool key(Json::string_t& k) {
    if (where_ == Where::kRoot) {
      if (!root_keys_.insert(k).second) return fail("duplicate key " + quote(k) + " in the header");
      if (k != kMetadataKey) {
        if (const char* why = name_problem(k)) return fail("tensor name " + quote(k) + " " + why);
      }
    } else if (where_ == Where::kMetadata) {
      if (metadata.count(k)) return fail("__metadata__: duplicate key " + quote(k));
    } else {  // kEntry: the only other place the schema has objects
      Entry& e = entries.back();
      bool* seen = k == "dtype"          ? &e.has_dtype
                   : k == "shape"        ? &e.has_shape
                   : k == "data_offsets" ? &e.has_offsets
                                         : nullptr;
      if (!seen) {
        return fail(tensor() + ": unknown key " + quote(k) +
                    " (expected exactly dtype, shape, data_offsets)");
      }
      if (*seen) return fail(tensor() + ": duplicate key " + quote(k));
      *seen = true;
    }
    key_ = k;
    return true;
  }

  bool end_object() {
    --depth_;
    if (where_ == Where::kMetadata) {
      where_ = Where::kRoot;
    } else if (where_ == Where::kEntry) {
      if (!finish_entry()) return false;
      where_ = Where::kRoot;
    } else {
      where_ = Where::kDone;
    }
    return true;
  }

  bool start_array(std::size_t) {
    if (!deeper()) return false;
    if (where_ == Where::kEntry && key_ == "shape") {
      where_ = Where::kShape;
      return true;
    }
    if (where_ == Where::kEntry && key_ == "data_offsets") {
      where_ = Where::kOffsets;
      n_offsets_ = 0;
      return true;
    }
    return unexpected("an array");
  }

  bool end_array() {
    --depth_;
    if (where_ == Where::kOffsets) {
      const Entry& e = entries.back();
      if (n_offsets_ != 2) {
        return fail(tensor() + ": data_offsets: expected [begin, end], found " +
                    std::to_string(n_offsets_) + " entries");
      }
      if (e.end < e.begin) {
        return fail(tensor() + ": data_offsets [" + to_dec(e.begin) + ", " + to_dec(e.end) +
                    "]: end is before begin");
      }
    }
    where_ = Where::kEntry;  // only shape and data_offsets arrays get this far
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const Json::exception& ex) {
    // what() reads "[json.exception.parse_error.101] parse error at line 1, column 7: syntax
    // error ..."; keep the part after the position, which we give as a file offset instead.
    std::string_view what = ex.what();
    if (auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    if (what.starts_with("parse error")) {
      if (auto p = what.find(": "); p != std::string_view::npos) what.remove_prefix(p + 2);
    }
    return fail("invalid JSON near file byte " + to_dec(8 + std::uint64_t{position}) + ": " +
                sanitize(what, 200, false));
  }

 private:
  enum class Where { kTop, kRoot, kMetadata, kEntry, kShape, kOffsets, kDone };

  Where where_ = Where::kTop;
  int depth_ = 0;
  std::string key_;  // the last key read in the current object
  int n_offsets_ = 0;
  std::unordered_set<std::string> root_keys_;

  bool fail(std::string message) {
    error = std::move(message);
    return false;
  }

  std::string tensor() const { return "tensor " + quote(entries.back().name); }

  bool deeper() {
    if (++depth_ > kMaxJsonDepth) {
      return fail("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    return true;
  }

  // A value the schema does not allow where it stands; `found` describes it.
  bool unexpected(const std::string& found) {
    switch (where_) {
      case Where::kTop:
        return fail("header: expected a JSON object, found " + found);
      case Where::kRoot:
        if (key_ == kMetadataKey) {
          return fail("__metadata__: expected an object of string values, found " + found);
        }
        return fail("tensor " + quote(key_) +
                    ": expected an object {dtype, shape, data_offsets}, found " + found);
      case Where::kMetadata: {
        std::string msg =
            "__metadata__ " + quote(key_) + ": expected a string value, found " + found;
        if (key_ == "dtype" || key_ == "shape" || key_ == "data_offsets") {
          msg += " (a tensor may not be named __metadata__)";
        }
        return fail(msg);
      }
      case Where::kEntry:
        if (key_ == "dtype") return fail(tensor() + ": dtype: expected a string, found " + found);
        return fail(tensor() + ": " + key_ +
                    ": expected an array of non-negative integers, found " + found);
      case Where::kShape:
        return fail(tensor() + ": shape: expected non-negative integers, found " + found);
      case Where::kOffsets:
        return fail(tensor() + ": data_offsets: expected non-negative integers, found " + found);
      case Where::kDone:
        break;
    }
    return fail("unexpected " + found + " after the header object");
  }

  bool finish_entry() {
    Entry& e = entries.back();
    for (auto [seen, field] : {std::pair{e.has_dtype, "dtype"}, std::pair{e.has_shape, "shape"},
                               std::pair{e.has_offsets, "data_offsets"}}) {
      if (!seen) {
        return fail(tensor() + ": missing key \"" + field +
                    "\" (expected exactly dtype, shape, data_offsets)");
      }
    }
    std::uint64_t n = 1;
    for (std::uint64_t d : e.shape) {
      if (!detail::checked_mul(n, d, n)) {
        return fail(tensor() + ": element count of shape " + shape_text(e.shape) +
                    " overflows 64 bits");
      }
    }
    std::size_t size = safetensors_dtype_size(e.dtype);
    if (!detail::checked_mul(n, size, e.n_bytes)) {
      return fail(tensor() + ": byte size of shape " + shape_text(e.shape) + " × " + e.dtype +
                  " overflows 64 bits");
    }
    if (e.end - e.begin != e.n_bytes) {
      return fail(tensor() + ": data_offsets [" + to_dec(e.begin) + ", " + to_dec(e.end) +
                  "] span " + to_dec(e.end - e.begin) + " bytes, expected " + to_dec(e.n_bytes) +
                  " (shape " + shape_text(e.shape) + " × " + std::to_string(size) + "-byte " +
                  e.dtype + ")");
    }
    return true;
  }
};

[[noreturn]] void bad(const std::string& name, const std::string& message,
                      ErrorCode code = ErrorCode::kFormat) {
  throw Error(code, name + ": " + message);
}

[[noreturn]] void bad_input(const std::string& message) {
  throw Error(ErrorCode::kUsage, "serialize_safetensors: " + message);
}

// JSON string literal, escaped as serde_json escapes: the two-character forms for \b \t \n \f \r,
// \u00xx (lowercase hex) for other control characters, everything else (UTF-8, DEL) as is.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace

std::size_t safetensors_dtype_size(const std::string& dtype) {
  for (const auto& d : kDtypes) {
    if (d.name == dtype) return d.size;
  }
  return 0;
}

Safetensors parse_safetensors(std::span<const std::uint8_t> bytes, const std::string& name,
                              const ReadLimits& limits) {
  // 1. Framing.
  const std::uint64_t size = bytes.size();
  if (size < 8) {
    bad(name, "file is " + to_dec(size) + " bytes, too short for the 8-byte header length");
  }
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
  std::uint64_t data_start = 0;
  if (!detail::checked_add(8, n, data_start) || data_start > size) {
    bad(name, "header length " + to_dec(n) + " past end of file (size " + to_dec(size) + ")");
  }
  if (n > limits.max_header_bytes) {
    bad(name,
        "header length " + to_dec(n) + " over the limit of " + to_dec(limits.max_header_bytes) +
            " bytes (--max-header-bytes)",
        ErrorCode::kLimit);
  }
  if (n > kFormatMaxHeader) {
    bad(name, "header length " + to_dec(n) + " over the format's maximum of " +
                  to_dec(kFormatMaxHeader) + " bytes");
  }

  // 2. Header text.
  std::string_view header(reinterpret_cast<const char*>(bytes.data()) + 8,
                          static_cast<std::size_t>(n));
  if (auto at = utf8_error_at(header); at != std::string_view::npos) {
    bad(name, "header is not valid UTF-8 at file byte " + to_dec(8 + std::uint64_t{at}));
  }
  if (auto at = header.find('\0'); at != std::string_view::npos) {
    bad(name, "header holds a NUL byte at file byte " + to_dec(8 + std::uint64_t{at}));
  }
  auto first = header.find_first_not_of(" \t\n\r");
  if (first == std::string_view::npos || header[first] != '{') {
    bad(name, "header is not a JSON object: expected '{', found " +
                  (first == std::string_view::npos ? std::string("only whitespace")
                                                   : quote(header.substr(first, 1))));
  }

  // 3. JSON, against the schema.
  HeaderHandler handler;
  bool ok = false;
  try {
    ok = Json::sax_parse(header.begin(), header.end(), &handler, Json::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    bad(name, "invalid JSON: " + sanitize(e.what(), 200, false));
  }
  if (!ok) bad(name, handler.error.empty() ? "invalid JSON header" : handler.error);

  // 4. Layout: sort by (begin, end), ties in header order, and walk the data section.
  std::vector<Entry>& entries = handler.entries;
  const std::uint64_t data_size = size - data_start;
  std::vector<std::size_t> order(entries.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::pair(entries[a].begin, entries[a].end) <
           std::pair(entries[b].begin, entries[b].end);
  });
  std::uint64_t cursor = 0;
  const Entry* prev = nullptr;
  for (std::size_t i : order) {
    const Entry& e = entries[i];
    auto where = [&] {
      return "tensor " + quote(e.name) + " data_offsets [" + to_dec(e.begin) + ", " +
             to_dec(e.end) + "]";
    };
    if (e.begin != cursor) {
      std::string after = prev ? "after tensor " + quote(prev->name) + ", " : "";
      bad(name, where() + ": expected to begin at " + to_dec(cursor) + " (" + after +
                    (e.begin > cursor ? "a gap of " + bytes_text(e.begin - cursor) + ")"
                                      : "an overlap of " + bytes_text(cursor - e.begin) + ")"));
    }
    if (e.end > data_size) {
      bad(name, where() + ": past the end of the data section (" + to_dec(data_size) +
                    " bytes): file truncated");
    }
    cursor = e.end;
    prev = &e;
  }
  if (cursor != data_size) {
    bad(name, "data section is " + to_dec(data_size) + " bytes, tensors end at " + to_dec(cursor) +
                  ": " + bytes_text(data_size - cursor) + " of unexpected data at end of file");
  }

  // 5. Copy, now that every size is known to lie inside the file.
  Safetensors st;
  st.metadata = std::move(handler.metadata);
  st.tensors.reserve(entries.size());
  const std::uint8_t* data = bytes.data() + data_start;
  for (std::size_t i : order) {
    Entry& e = entries[i];
    Tensor t;
    t.name = std::move(e.name);
    t.dtype = std::move(e.dtype);
    t.shape = std::move(e.shape);
    t.data.assign(data + e.begin, data + e.end);
    st.tensors.push_back(std::move(t));
  }
  return st;
}

std::vector<std::uint8_t> serialize_safetensors(const Safetensors& st) {
  // Validate first: the writer must never produce a file our reader rejects.
  for (const auto& [k, v] : st.metadata) {
    if (utf8_error_at(k) != std::string_view::npos) {
      bad_input("__metadata__ key " + quote(k) + " is not valid UTF-8");
    }
    if (utf8_error_at(v) != std::string_view::npos) {
      bad_input("__metadata__ " + quote(k) + ": value is not valid UTF-8");
    }
  }
  std::unordered_set<std::string_view> names;
  for (const Tensor& t : st.tensors) {
    std::string what = "tensor " + quote(t.name);
    if (const char* why = name_problem(t.name)) {
      bad_input("tensor name " + quote(t.name) + " " + why);
    }
    if (utf8_error_at(t.name) != std::string_view::npos) bad_input(what + ": name is not UTF-8");
    if (t.name == kMetadataKey) bad_input(what + ": the name is reserved for metadata");
    if (!names.insert(t.name).second) bad_input("duplicate tensor name " + quote(t.name));
    std::size_t size = safetensors_dtype_size(t.dtype);
    if (size == 0) {
      bad_input(what + ": unsupported dtype " + quote(t.dtype) + " (expected one of " +
                dtype_list() + ")");
    }
    std::uint64_t n = 1;
    for (std::uint64_t d : t.shape) {
      if (d > kMaxShapeDim) bad_input(what + ": shape dimension " + to_dec(d) + " is over 2^53");
      if (!detail::checked_mul(n, d, n)) bad_input(what + ": element count overflows");
    }
    if (!detail::checked_mul(n, size, n)) bad_input(what + ": byte size overflows");
    if (n != t.data.size()) {
      bad_input(what + ": data is " + to_dec(t.data.size()) + " bytes, shape " +
                shape_text(t.shape) + " of " + t.dtype + " needs " + to_dec(n));
    }
  }

  std::string header = "{";
  if (!st.metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : st.metadata) {
      if (!first) header += ',';
      first = false;
      append_json_string(header, k);
      header += ':';
      append_json_string(header, v);
    }
    header += '}';
  }
  std::uint64_t offset = 0;
  for (const Tensor& t : st.tensors) {
    if (header.size() > 1) header += ',';
    append_json_string(header, t.name);
    header += ":{\"dtype\":";
    append_json_string(header, t.dtype);
    header += ",\"shape\":" + shape_text(t.shape) + ",\"data_offsets\":[" + to_dec(offset) + ",";
    offset += t.data.size();  // cannot wrap: every byte counted here is held in memory
    header += to_dec(offset) + "]}";
  }
  header += '}';
  // Spaces are JSON whitespace, so every reader skips them; 8 + N a multiple of 8 keeps each
  // tensor as aligned as its offset within the data section.
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kFormatMaxHeader) {
    bad_input("header would be " + to_dec(header.size()) + " bytes, over the format's maximum of " +
              to_dec(kFormatMaxHeader));
  }

  std::vector<std::uint8_t> out;
  out.reserve(8 + header.size() + static_cast<std::size_t>(offset));
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const Tensor& t : st.tensors) out.insert(out.end(), t.data.begin(), t.data.end());
  return out;
}

}  // namespace backprop
