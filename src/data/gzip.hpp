// Private helper of the IDX loader: bounded, streaming gzip (RFC 1952) decoding with zlib's
// inflate.
//
// The decoder hands out decoded bytes in caller-sized pieces, so the caller decides how much it is
// willing to take (the IDX header first, then exactly the declared payload) and never has to size
// a buffer from the gzip trailer (ISIZE is the length mod 2^32 and may lie). Concatenated members
// are decoded in order. Every member's CRC-32 and length are verified by zlib at its end; a
// truncated stream, corrupt deflate data, a bad header, a CRC or length mismatch, and anything
// after the last member that does not start another member ("trailing garbage") throw
// Error(kFormat) naming the file and the check that failed.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace backprop::detail {

// True when `bytes` starts with the gzip magic 1F 8B. Content decides, never the file name.
bool is_gzip(std::span<const std::uint8_t> bytes);

// The most `compressed_bytes` of gzip can honestly decode to. Deflate's best ratio is about
// 1032:1 (a 258-byte match in a 1-bit code, twice per byte at the limit); 1100:1 plus 1 MiB of
// slack for headers and tiny files leaves room for any real encoder. A decoded header that
// declares more than this is lying, and is rejected before anything is allocated for it.
std::uint64_t gzip_max_decoded_bytes(std::uint64_t compressed_bytes);

class GzipDecoder {
 public:
  // `compressed` must outlive the decoder; `name` names the file in messages. Throws
  // Error(kFormat) when the data does not start with the gzip magic.
  GzipDecoder(std::span<const std::uint8_t> compressed, std::string name);
  ~GzipDecoder();
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  // Decodes into dst and returns how many bytes were written. Fewer than dst.size() means the
  // data has ended: every member's trailer has been verified and nothing follows the last one.
  // Decoding stops as soon as dst is full, so a bomb costs no more than the caller asked for.
  std::size_t read(std::span<std::uint8_t> dst);

  // Decoded bytes handed out so far.
  std::uint64_t decoded_bytes() const { return decoded_; }

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::uint64_t consumed() const;
  void refill_input();
  void end_member();

  std::span<const std::uint8_t> in_;
  std::string name_;
  z_stream zs_{};
  std::uint64_t decoded_ = 0;
  std::uint64_t member_ = 1;  // 1-based, for messages
  bool done_ = false;
};

// Decodes all of `compressed`; more than max_output decoded bytes is Error(kLimit).
std::vector<std::uint8_t> gzip_decode_all(std::span<const std::uint8_t> compressed,
                                          const std::string& name, std::uint64_t max_output);

}  // namespace backprop::detail
