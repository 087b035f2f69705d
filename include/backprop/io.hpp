// Files in and out: bounded whole-file reads, atomic writes, the safetensors container, and the
// model file built on it.
//
// safetensors (https://github.com/huggingface/safetensors): 8 bytes little-endian u64 N, then N
// bytes of UTF-8 JSON: an object mapping tensor names to {"dtype", "shape", "data_offsets":
// [begin, end]} plus an optional "__metadata__" object of string -> string; then the data section.
// Offsets are relative to the data section. The reader accepts exactly what the format allows and
// rejects, before allocating anything sized by the file: N past the file or over the cap, invalid
// UTF-8 or JSON, nesting deeper than kMaxJsonDepth, duplicate keys anywhere, missing or unknown
// keys in a tensor entry, unknown dtypes, shapes whose product overflows, offsets that do not match
// shape × dtype size, gaps, overlaps, a data section that does not end exactly at end of file, and
// tensor names that are empty, over 1 KiB or hold control characters.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace backprop {

// Caps on what one input may make us read or allocate. All sizes in bytes.
struct ReadLimits {
  std::uint64_t max_input_bytes = std::uint64_t{8} << 30;    // one decoded input file
  std::uint64_t max_line_bytes = std::uint64_t{16} << 20;    // one CSV line
  std::uint64_t max_header_bytes = std::uint64_t{16} << 20;  // one safetensors JSON header
  std::uint64_t max_classes = 65536;                         // distinct class labels
};

// The whole content of a regular file. Rejects directories, FIFOs and devices (which could be
// read forever), files over max_bytes, and short reads (a file that shrinks while read).
// Throws Error(kIo) naming the path, the syscall and errno; Error(kLimit) over the cap.
std::vector<std::uint8_t> read_file(const std::string& path, std::uint64_t max_bytes);

// Bytes [offset, offset + length) of a regular file (fewer when the file ends first), and the
// file's size: what a reader of part of a large file needs. The same rejections and errors as
// read_file, whose cap applies to the file's size.
struct FileSlice {
  std::uint64_t file_size = 0;
  std::vector<std::uint8_t> bytes;
};
FileSlice read_file_slice(const std::string& path, std::uint64_t offset, std::uint64_t length,
                          std::uint64_t max_bytes);
// Exactly bytes [offset, offset + length) of a file that is still file_size bytes long, as a reader
// that has checked its header against that size expects; a file that has changed since is
// Error(kIo) saying so.
std::vector<std::uint8_t> read_file_part(const std::string& path, std::uint64_t offset,
                                         std::uint64_t length, std::uint64_t file_size,
                                         std::uint64_t max_bytes);

// Writes `bytes` to `path` atomically: a temporary file in the same directory, write, fsync,
// close, rename over `path`, fsync of the directory. On any failure the temporary is removed, any
// previous file at `path` is left as it was, and Error(kIo) names the syscall and errno.
void write_file_atomic(const std::string& path, std::span<const std::uint8_t> bytes);

// ---------------------------------------------------------------------------------------------
// safetensors container

inline constexpr int kMaxJsonDepth = 8;  // the format needs 3 (root, entry, shape/offsets)

struct Tensor {
  std::string name;
  std::string dtype;                 // "F32", "F64", "I64", ... as the format spells it
  std::vector<std::uint64_t> shape;  // empty for a scalar
  std::vector<std::uint8_t> data;    // little-endian element bytes, as stored in the file
};

struct Safetensors {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<Tensor> tensors;                  // in data-section order
};

// Bytes per element of a safetensors dtype, or 0 for a name the format does not define.
std::size_t safetensors_dtype_size(const std::string& dtype);

// Parses and validates a whole file held in memory. `name` is used in messages.
// Throws Error(kFormat) (or kLimit for a header over limits.max_header_bytes).
Safetensors parse_safetensors(std::span<const std::uint8_t> bytes, const std::string& name,
                              const ReadLimits& limits);

// The canonical file: header JSON padded with spaces to a multiple of 8 bytes, tensors laid out
// contiguously in the given order. Deterministic: the same input gives the same bytes.
std::vector<std::uint8_t> serialize_safetensors(const Safetensors& st);

}  // namespace backprop
