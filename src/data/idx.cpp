// IDX loaders (data.hpp): raw or gzip-wrapped IDX files into IdxArray and Dataset.
//
// Every size in a header is checked before anything sized by it is allocated: dims with checked
// arithmetic, then the payload against the real file size (raw) or, for gzip, against the input
// cap and against what the compressed size can possibly decode to. gzip output is taken in exactly
// the declared amount, followed by a one-byte probe, so a bomb never decodes past its own header's
// promise. u8 payloads are moved, not copied, into the result where the buffer allows, so a
// Fashion-MNIST training set costs its 47 MB once.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "data/gzip.hpp"
#include "data/idx.hpp"
#include "data/names.hpp"
#include "data/shard.hpp"
#include "util/checked.hpp"

namespace backprop {

namespace {

using detail::checked_add;
using detail::checked_mul;
using detail::hex_byte;
using detail::hex_bytes;

constexpr std::uint64_t kMagicBytes = 4;
constexpr std::uint64_t kDimBytes = 4;
// Decoded gzip payloads up to this size are allocated at once, after the header has passed every
// check; larger ones grow (doubling) as data really arrives, so a header that lies about a size
// just under the caps costs at most this much before the truth shows.
constexpr std::uint64_t kUpfrontBytes = std::uint64_t{256} << 20;

bool idx_type_known(std::uint8_t code) {
  switch (code) {
    case 0x08:
    case 0x09:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x0E:
      return true;
    default:
      return false;
  }
}

std::uint64_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::kU8:
    case IdxType::kI8:
      return 1;
    case IdxType::kI16:
      return 2;
    case IdxType::kI32:
    case IdxType::kF32:
      return 4;
    case IdxType::kF64:
      return 8;
  }
  return 0;
}

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::kU8:
      return "u8";
    case IdxType::kI8:
      return "i8";
    case IdxType::kI16:
      return "i16";
    case IdxType::kI32:
      return "i32";
    case IdxType::kF32:
      return "f32";
    case IdxType::kF64:
      return "f64";
  }
  return "?";
}

bool idx_type_integer(IdxType t) {
  return t == IdxType::kU8 || t == IdxType::kI8 || t == IdxType::kI16 || t == IdxType::kI32;
}

std::string dims_text(const std::vector<std::uint32_t>& dims) {
  std::string out;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += " x ";
    out += std::to_string(dims[i]);
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Where an error is. A raw file: "NAME: byte 12: ...". Inside gzip the offsets are into the
// decoded data, and the message ends with "(inside NAME)".
struct Place {
  std::string name;
  bool gzip = false;

  std::string at(std::uint64_t offset) const {
    return (gzip ? "decoded byte " : name + ": byte ") + std::to_string(offset);
  }
  std::string file() const { return gzip ? std::string("IDX data") : name; }
  [[noreturn]] void fail(ErrorCode code, const std::string& text) const {
    throw Error(code, gzip ? text + " (inside " + name + ")" : text);
  }
};

std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::uint64_t load_be64(const std::uint8_t* p) {
  return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}

// Element i of a payload, converted exactly to double (every IDX type fits). Byte order is taken
// by value, so the result is the same on any host.
double idx_element(IdxType t, const std::uint8_t* payload, std::uint64_t i) {
  switch (t) {
    case IdxType::kU8:
      return payload[i];
    case IdxType::kI8:
      return static_cast<std::int8_t>(payload[i]);
    case IdxType::kI16: {
      const std::uint8_t* p = payload + 2 * i;
      return static_cast<std::int16_t>(static_cast<std::uint16_t>((p[0] << 8) | p[1]));
    }
    case IdxType::kI32:
      return static_cast<std::int32_t>(load_be32(payload + 4 * i));
    case IdxType::kF32:
      return std::bit_cast<float>(load_be32(payload + 4 * i));
    case IdxType::kF64:
      return std::bit_cast<double>(load_be64(payload + 8 * i));
  }
  return 0;
}

struct IdxHeader {
  IdxType type = IdxType::kU8;
  std::vector<std::uint32_t> dims;
  std::uint64_t count = 0;
  std::uint64_t header_bytes = 0;
  std::uint64_t payload_bytes = 0;
};

// The 4 magic bytes (fewer when the data ends early): 00 00 TT ND. Returns ND.
std::uint32_t parse_magic(std::span<const std::uint8_t> magic, const Place& place, IdxHeader& h) {
  if (magic.size() < kMagicBytes) {
    std::string found = magic.empty() ? (place.gzip ? "no data" : "an empty file (0 bytes)")
                                      : "end of data after " + std::to_string(magic.size()) +
                                            (magic.size() == 1 ? " byte" : " bytes");
    place.fail(
        ErrorCode::kFormat,
        place.at(magic.size()) + ": expected the 4-byte IDX magic 00 00 TT ND, found " + found);
  }
  std::uint8_t b0 = magic[0], b1 = magic[1], b2 = magic[2], b3 = magic[3];
  if (b0 != 0 || b1 != 0) {
    if (b2 == 0 && b3 == 0 && idx_type_known(b1) && b0 != 0) {
      place.fail(ErrorCode::kFormat,
                 place.at(0) + ": expected the IDX magic 00 00 " + hex_byte(b1) + " " +
                     hex_byte(b0) + ", found " + hex_bytes(magic) +
                     ": the magic is byte-swapped (written little-endian); IDX is big-endian");
    }
    if (place.gzip && detail::is_gzip(magic)) {
      place.fail(ErrorCode::kFormat,
                 place.at(0) +
                     ": expected the IDX magic 00 00 TT ND, found 1F 8B: gzip data inside "
                     "gzip (compressed twice?)");
    }
    place.fail(ErrorCode::kFormat, place.at(0) +
                                       ": expected 00 00 (the start of the IDX magic), found " +
                                       hex_bytes(magic.first(2)));
  }
  if (!idx_type_known(b2)) {
    place.fail(ErrorCode::kFormat, place.at(2) +
                                       ": expected an IDX element type (08 u8, 09 i8, 0B i16, "
                                       "0C i32, 0D f32, 0E f64), found " +
                                       hex_byte(b2));
  }
  if (b3 == 0) {
    place.fail(ErrorCode::kFormat,
               place.at(3) + ": expected a number of dimensions of at least 1, found 0");
  }
  h.type = static_cast<IdxType>(b2);
  return b3;
}

// The ndims big-endian sizes that follow the magic (fewer bytes when the data ends early), and
// the sizes they imply, all overflow-checked.
void parse_dims(std::span<const std::uint8_t> dim_bytes, std::uint32_t ndims, const Place& place,
                IdxHeader& h) {
  h.header_bytes = kMagicBytes + kDimBytes * ndims;
  if (dim_bytes.size() < kDimBytes * ndims) {
    place.fail(ErrorCode::kFormat, place.at(kMagicBytes + dim_bytes.size()) + ": expected " +
                                       std::to_string(ndims) + " dimension sizes (a " +
                                       std::to_string(h.header_bytes) +
                                       "-byte header), found end of data (truncated header)");
  }
  h.dims.resize(ndims);
  for (std::uint32_t i = 0; i < ndims; ++i) {
    h.dims[i] = load_be32(dim_bytes.data() + kDimBytes * i);
    if (h.dims[i] == 0) {
      place.fail(ErrorCode::kFormat, place.at(kMagicBytes + kDimBytes * i) + " (dimension " +
                                         std::to_string(i + 1) + " of " + std::to_string(ndims) +
                                         "): expected a size of at least 1, found 0");
    }
  }
  std::uint64_t count = 1;
  for (std::uint32_t d : h.dims) {
    if (!checked_mul(count, d, count)) {
      place.fail(ErrorCode::kFormat, place.file() + ": dimensions " + dims_text(h.dims) +
                                         ": the element count overflows 64 bits");
    }
  }
  std::uint64_t esize = idx_type_size(h.type);
  std::uint64_t total = 0;
  if (!checked_mul(count, esize, h.payload_bytes) ||
      !checked_add(h.payload_bytes, h.header_bytes, total) ||
      total > static_cast<std::uint64_t>(std::numeric_limits<Index>::max())) {
    place.fail(ErrorCode::kFormat, place.file() + ": dimensions " + dims_text(h.dims) + " of " +
                                       idx_type_name(h.type) +
                                       ": the payload size does not fit in 63 bits");
  }
  h.count = count;
}

std::string declared(const IdxHeader& h) {
  return dims_text(h.dims) + " " + idx_type_name(h.type) + " = " + std::to_string(h.payload_bytes) +
         " payload bytes";
}

// A validated IDX file: its header, and its payload bytes held in `storage` (or, when parsing a
// caller's span, pointing into it). When only a shard's images were read, the header's first
// dimension and sizes are the shard's, and first_row is the shard's first image in the file.
struct DecodedIdx {
  IdxHeader header;
  Place place;
  std::vector<std::uint8_t> storage;
  std::span<const std::uint8_t> payload;
  std::uint64_t first_row = 0;
  std::uint64_t file_rows = 0;  // the file's first dimension (0: header.dims[0])
};

void check_raw_size(const DecodedIdx& d, std::uint64_t file_bytes, const ReadLimits& limits) {
  const IdxHeader& h = d.header;
  if (file_bytes > limits.max_input_bytes) {
    throw Error(ErrorCode::kLimit, d.place.name + ": file is " + std::to_string(file_bytes) +
                                       " bytes, over the limit of " +
                                       std::to_string(limits.max_input_bytes) +
                                       " (--max-input-bytes)");
  }
  std::uint64_t after_header = file_bytes - h.header_bytes;
  if (h.payload_bytes > after_header) {
    d.place.fail(ErrorCode::kFormat, d.place.at(h.header_bytes) + ": header declares " +
                                         declared(h) + ", but the file holds " +
                                         std::to_string(after_header) +
                                         " after the header (truncated file)");
  }
  if (h.payload_bytes < after_header) {
    d.place.fail(ErrorCode::kFormat,
                 d.place.at(h.header_bytes + h.payload_bytes) +
                     ": expected end of file after the payload (" + declared(h) + "), found " +
                     std::to_string(after_header - h.payload_bytes) + " more bytes");
  }
}

// The magic and dimensions from the first bytes of raw IDX data (all of it, or a prefix).
void parse_raw_header(std::span<const std::uint8_t> head, DecodedIdx& d) {
  std::uint32_t ndims =
      parse_magic(head.first(std::min<std::size_t>(kMagicBytes, head.size())), d.place, d.header);
  std::size_t dim_avail = std::min<std::size_t>(
      kDimBytes * ndims, head.size() - std::min<std::size_t>(kMagicBytes, head.size()));
  parse_dims(head.subspan(std::min<std::size_t>(kMagicBytes, head.size()), dim_avail), ndims,
             d.place, d.header);
}

DecodedIdx decode_raw(std::span<const std::uint8_t> bytes, std::vector<std::uint8_t>* owned,
                      const std::string& name, const ReadLimits& limits) {
  DecodedIdx d;
  d.place = {name, false};
  if (bytes.size() > limits.max_input_bytes) check_raw_size(d, bytes.size(), limits);
  parse_raw_header(bytes, d);
  check_raw_size(d, bytes.size(), limits);
  d.payload = bytes.subspan(static_cast<std::size_t>(d.header.header_bytes));
  if (owned != nullptr) d.storage = std::move(*owned);  // the span stays valid: same buffer
  return d;
}

DecodedIdx decode_gzip(std::span<const std::uint8_t> bytes, const std::string& name,
                       const ReadLimits& limits) {
  DecodedIdx d;
  d.place = {name, true};
  IdxHeader& h = d.header;
  detail::GzipDecoder dec(bytes, name);

  std::uint8_t magic[kMagicBytes];
  std::size_t got = dec.read(magic);
  std::uint32_t ndims = parse_magic(std::span<const std::uint8_t>(magic, got), d.place, h);
  std::vector<std::uint8_t> dim_bytes(kDimBytes * ndims);
  got = dec.read(dim_bytes);
  parse_dims(std::span<const std::uint8_t>(dim_bytes.data(), got), ndims, d.place, h);

  std::uint64_t total = h.header_bytes + h.payload_bytes;  // checked in parse_dims
  if (total > limits.max_input_bytes) {
    d.place.fail(ErrorCode::kLimit,
                 "IDX header: declares " + declared(h) + " (" + std::to_string(total) +
                     " decoded bytes), over the limit of " +
                     std::to_string(limits.max_input_bytes) + " (--max-input-bytes)");
  }
  std::uint64_t bound = detail::gzip_max_decoded_bytes(bytes.size());
  if (total > bound) {
    d.place.fail(ErrorCode::kFormat,
                 "IDX header: declares " + declared(h) + " (" + std::to_string(total) +
                     " decoded bytes), but " + std::to_string(bytes.size()) +
                     " bytes of gzip can decode to at most " + std::to_string(bound) +
                     " (deflate's ratio is at most about 1032:1)");
  }

  std::vector<std::uint8_t>& payload = d.storage;
  std::uint64_t have = 0;
  while (have < h.payload_bytes) {
    std::uint64_t target = h.payload_bytes <= kUpfrontBytes
                               ? h.payload_bytes
                               : std::min(h.payload_bytes, std::max(kUpfrontBytes, 2 * have));
    // reserve first: resize alone may round the capacity up past what the header declared.
    payload.reserve(static_cast<std::size_t>(target));
    payload.resize(static_cast<std::size_t>(target));
    std::uint64_t want = target - have;
    std::uint64_t n = dec.read(std::span(payload).subspan(static_cast<std::size_t>(have)));
    have += n;
    if (n < want) {
      d.place.fail(ErrorCode::kFormat, d.place.at(h.header_bytes + have) + ": header declares " +
                                           declared(h) + ", but the data ends after " +
                                           std::to_string(have) + " of them (truncated file)");
    }
  }
  // One byte more than declared is enough to know there is more; never decode further.
  std::uint8_t extra = 0;
  if (dec.read(std::span(&extra, 1)) != 0) {
    d.place.fail(ErrorCode::kFormat, d.place.at(total) +
                                         ": expected end of data after the payload (" +
                                         declared(h) + "), found more data");
  }
  d.payload = payload;
  return d;
}

DecodedIdx decode_idx(std::span<const std::uint8_t> bytes, std::vector<std::uint8_t>* owned,
                      const std::string& name, const ReadLimits& limits) {
  if (detail::is_gzip(bytes)) return decode_gzip(bytes, name, limits);
  return decode_raw(bytes, owned, name, limits);
}

DecodedIdx read_decoded(const std::string& path, const ReadLimits& limits) {
  std::vector<std::uint8_t> file = read_file(path, limits.max_input_bytes);
  return decode_idx(file, &file, path, limits);
}

// The u8 payload as its own vector: moved out of the storage when it owns the bytes (after
// sliding them over the header), copied otherwise.
std::vector<std::uint8_t> take_u8(DecodedIdx& d) {
  const std::uint8_t* base = d.storage.data();
  if (!d.storage.empty() && d.payload.data() >= base &&
      d.payload.data() + d.payload.size() <= base + d.storage.size()) {
    std::size_t offset = static_cast<std::size_t>(d.payload.data() - base);
    std::size_t size = d.payload.size();
    if (offset != 0) std::memmove(d.storage.data(), d.storage.data() + offset, size);
    d.storage.resize(size);
    d.payload = {};
    return std::move(d.storage);
  }
  return {d.payload.begin(), d.payload.end()};
}

IdxArray to_array(DecodedIdx& d) {
  IdxArray a;
  a.type = d.header.type;
  a.dims = d.header.dims;
  if (a.type == IdxType::kU8) {
    a.u8 = take_u8(d);
  } else {
    a.values.resize(static_cast<std::size_t>(d.header.count));
    for (std::uint64_t i = 0; i < d.header.count; ++i) {
      a.values[i] = idx_element(a.type, d.payload.data(), i);
    }
  }
  return a;
}

float value_scale_of(IdxType t) {
  switch (t) {
    case IdxType::kU8:
      return 1.0f / 255.0f;
    case IdxType::kI8:
      return 1.0f / 127.0f;
    case IdxType::kI16:
      return 1.0f / 32767.0f;
    case IdxType::kI32:
      return static_cast<float>(1.0 / 2147483647.0);
    case IdxType::kF32:
    case IdxType::kF64:
      return 1.0f;
  }
  return 1.0f;
}

void require_images(const DecodedIdx& img) {
  const IdxHeader& h = img.header;
  if (h.dims.size() < 2) {
    img.place.fail(ErrorCode::kData, img.place.file() +
                                         ": expected an images file with at least 2 dimensions "
                                         "(count x sample shape), found 1 dimension (" +
                                         dims_text(h.dims) + ")");
  }
}

// The shard's images of an IDX file. Uncompressed: the header and the file's size are checked as
// for a whole read, then only the shard's rows are read. gzip (null returned): the caller reads
// the whole file and keeps the shard.
std::optional<DecodedIdx> read_decoded_shard(const std::string& path, const ReadLimits& limits,
                                             Shard shard) {
  constexpr std::uint64_t kMaxHeader = kMagicBytes + kDimBytes * 255;
  FileSlice head = read_file_slice(path, 0, kMaxHeader, limits.max_input_bytes);
  if (detail::is_gzip(head.bytes)) return std::nullopt;
  DecodedIdx d;
  d.place = {path, false};
  parse_raw_header(head.bytes, d);
  check_raw_size(d, head.file_size, limits);
  IdxHeader& h = d.header;
  require_images(d);
  const std::uint64_t rows = h.dims[0], per_row = h.payload_bytes / rows;
  const auto begin = static_cast<std::uint64_t>(shard.begin(static_cast<Index>(rows)));
  const auto end = static_cast<std::uint64_t>(shard.end(static_cast<Index>(rows)));
  d.storage = read_file_part(path, h.header_bytes + begin * per_row, (end - begin) * per_row,
                             head.file_size, limits.max_input_bytes);
  d.file_rows = rows;
  d.first_row = begin;
  h.dims[0] = static_cast<std::uint32_t>(end - begin);
  h.count = (end - begin) * (h.count / rows);
  h.payload_bytes = (end - begin) * per_row;
  d.payload = d.storage;
  return d;
}

// Images: n x d1 x ... becomes n rows of d1*... features.
Dataset images_dataset(DecodedIdx& img) {
  require_images(img);
  const IdxHeader& h = img.header;
  Dataset ds;
  ds.source = img.place.name;
  ds.format = DataFormat::kIdx;
  ds.task = Task::kClassify;
  ds.n = static_cast<Index>(h.dims[0]);
  std::uint64_t features = 1;
  for (std::size_t i = 1; i < h.dims.size(); ++i) features *= h.dims[i];  // <= count: no overflow
  ds.n_features = static_cast<Index>(features);
  if (img.file_rows > 0) {  // a shard
    ds.total_rows = static_cast<Index>(img.file_rows);
    ds.first_row = static_cast<Index>(img.first_row);
  }
  for (std::size_t i = 1; i < h.dims.size(); ++i) ds.sample_shape.push_back(h.dims[i]);
  ds.value_scale = value_scale_of(h.type);
  if (h.type == IdxType::kU8) {
    ds.x_u8 = take_u8(img);
  } else {
    ds.x_f32.resize(static_cast<std::size_t>(h.count));
    std::uint64_t esize = idx_type_size(h.type);
    constexpr double kFloatMax = std::numeric_limits<float>::max();
    for (std::uint64_t i = 0; i < h.count; ++i) {
      double v = idx_element(h.type, img.payload.data(), i);
      if (!std::isfinite(v) || std::fabs(v) > kFloatMax) {
        img.place.fail(ErrorCode::kData,
                       img.place.at(h.header_bytes + (img.first_row * features + i) * esize) +
                           " (image " + std::to_string(img.first_row + i / features) + ", value " +
                           std::to_string(i % static_cast<std::uint64_t>(ds.n_features)) +
                           "): expected a finite value within float range, found " +
                           format_value(v));
      }
      ds.x_f32[i] = static_cast<float>(v);
    }
  }
  ds.feature_names.reserve(static_cast<std::size_t>(ds.n_features));
  for (Index j = 0; j < ds.n_features; ++j) {
    ds.feature_names.push_back(detail::default_feature_name(static_cast<std::size_t>(j)));
  }
  return ds;
}

// An images file that has passed require_images, and its labels: the role checks, then the
// conversion.
Dataset images_labels_dataset(DecodedIdx& img, DecodedIdx& lab, const ReadLimits& limits) {
  const IdxHeader& lh = lab.header;
  // The role checks come before any conversion, so a swapped pair of paths fails at once.
  if (lh.dims.size() != 1) {
    lab.place.fail(ErrorCode::kData, lab.place.file() +
                                         ": expected a labels file with exactly 1 dimension, "
                                         "found " +
                                         std::to_string(lh.dims.size()) + " (" +
                                         dims_text(lh.dims) + ")");
  }
  if (!idx_type_integer(lh.type)) {
    lab.place.fail(ErrorCode::kData, lab.place.file() +
                                         ": expected an integer element type for labels (u8, "
                                         "i8, i16 or i32), found " +
                                         idx_type_name(lh.type));
  }
  const std::uint64_t images = img.file_rows > 0 ? img.file_rows : img.header.dims[0];
  if (lh.dims[0] != images) {
    throw Error(ErrorCode::kData, lab.place.name + ": holds " + std::to_string(lh.dims[0]) +
                                      " labels, but " + img.place.name + " holds " +
                                      std::to_string(images) + " images");
  }
  Dataset ds = images_dataset(img);

  std::uint64_t esize = idx_type_size(lh.type);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(lh.count));
  std::int64_t max_label = 0;
  for (std::uint64_t i = 0; i < lh.count; ++i) {
    // Every integer IDX type fits int64 exactly.
    auto v = static_cast<std::int64_t>(idx_element(lh.type, lab.payload.data(), i));
    if (v < 0) {
      lab.place.fail(ErrorCode::kData,
                     lab.place.at(lh.header_bytes + i * esize) + " (label " + std::to_string(i) +
                         "): expected a class index >= 0, found " + std::to_string(v));
    }
    if (static_cast<std::uint64_t>(v) >= limits.max_classes) {
      lab.place.fail(ErrorCode::kLimit, lab.place.at(lh.header_bytes + i * esize) + " (label " +
                                            std::to_string(i) + "): label " + std::to_string(v) +
                                            " implies " + std::to_string(v + 1) +
                                            " classes, over the limit of " +
                                            std::to_string(limits.max_classes) + " (max_classes)");
    }
    max_label = std::max(max_label, v);
    labels[i] = static_cast<std::int32_t>(v);
  }
  ds.labels = std::move(labels);
  if (img.file_rows > 0) detail::cut_labels_to_shard(ds);  // a shard of the images: its labels
  ds.class_names.reserve(static_cast<std::size_t>(max_label + 1));
  for (std::int64_t c = 0; c <= max_label; ++c) ds.class_names.push_back(std::to_string(c));
  ds.label_columns = {"label"};
  ds.labels_source = lab.place.name;
  return ds;
}

}  // namespace

std::uint64_t IdxArray::count() const {
  std::uint64_t n = 1;
  for (std::uint32_t d : dims) {
    if (!checked_mul(n, d, n)) {
      throw Error(ErrorCode::kFormat,
                  "IDX dimensions " + dims_text(dims) + ": the element count overflows 64 bits");
    }
  }
  return n;
}

IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name,
                   const ReadLimits& limits) {
  DecodedIdx d = decode_idx(bytes, nullptr, name, limits);
  return to_array(d);
}

IdxArray read_idx(const std::string& path, const ReadLimits& limits) {
  DecodedIdx d = read_decoded(path, limits);
  return to_array(d);
}

Dataset load_idx_images(const std::string& images_path, const ReadLimits& limits) {
  DecodedIdx img = read_decoded(images_path, limits);
  return images_dataset(img);
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path,
                 const ReadLimits& limits, Shard shard) {
  std::optional<DecodedIdx> part;
  if (!shard.whole()) part = read_decoded_shard(images_path, limits, shard);
  DecodedIdx img = part ? std::move(*part) : read_decoded(images_path, limits);
  require_images(img);  // before the labels are read: a swapped pair of paths fails at once
  DecodedIdx lab = read_decoded(labels_path, limits);
  Dataset ds = images_labels_dataset(img, lab, limits);
  if (!part) keep_shard(ds, shard);  // gzip: decoded whole
  return ds;
}

namespace detail {

Dataset parse_idx_images(std::span<const std::uint8_t> images, const std::string& name,
                         const ReadLimits& limits) {
  DecodedIdx img = decode_idx(images, nullptr, name, limits);
  return images_dataset(img);
}

Dataset parse_idx_dataset(std::span<const std::uint8_t> images, const std::string& images_name,
                          std::span<const std::uint8_t> labels, const std::string& labels_name,
                          const ReadLimits& limits) {
  DecodedIdx img = decode_idx(images, nullptr, images_name, limits);
  require_images(img);
  DecodedIdx lab = decode_idx(labels, nullptr, labels_name, limits);
  return images_labels_dataset(img, lab, limits);
}

}  // namespace detail

}  // namespace backprop
