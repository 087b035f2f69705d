// Bounded, streaming gzip decoding for the IDX loader (gzip.hpp).
//
// inflate() is given the whole compressed input (in pieces of at most 1 GiB, since zlib counts in
// 32-bit units) and exactly as much output room as the caller asked for. zlib itself parses each
// member's header and verifies its CRC-32 and length at the end; this file turns every way that
// can fail into a one-line Error, and makes sure that running out of input is an error rather than
// a loop that waits for bytes which will never come.
#include "data/gzip.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "backprop/error.hpp"
#include "data/names.hpp"
#include "util/checked.hpp"

namespace backprop::detail {

namespace {

constexpr std::uint8_t kGzipId1 = 0x1F;
constexpr std::uint8_t kGzipId2 = 0x8B;
// zlib's avail_in/avail_out are 32-bit; larger spans are fed in pieces of this size.
constexpr std::uint64_t kMaxZlibChunk = std::uint64_t{1} << 30;
constexpr std::uint64_t kMaxRatio = 1100;
constexpr std::uint64_t kRatioSlackBytes = std::uint64_t{1} << 20;

}  // namespace

bool is_gzip(std::span<const std::uint8_t> bytes) {
  return bytes.size() >= 2 && bytes[0] == kGzipId1 && bytes[1] == kGzipId2;
}

std::uint64_t gzip_max_decoded_bytes(std::uint64_t compressed_bytes) {
  std::uint64_t bound = 0;
  if (!checked_mul(compressed_bytes, kMaxRatio, bound) ||
      !checked_add(bound, kRatioSlackBytes, bound)) {
    return UINT64_MAX;
  }
  return bound;
}

GzipDecoder::GzipDecoder(std::span<const std::uint8_t> compressed, std::string name)
    : in_(compressed), name_(std::move(name)) {
  if (!is_gzip(in_)) {
    std::string found = in_.empty() ? std::string("an empty file")
                                    : hex_bytes(in_.first(std::min<std::size_t>(2, in_.size())));
    fail("bytes 0-1: expected the gzip magic 1F 8B, found " + found);
  }
  // 16 + MAX_WBITS: gzip wrapper only (no zlib or raw deflate), with the largest window.
  int rc = inflateInit2(&zs_, 16 + MAX_WBITS);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  BACKPROP_ASSERT(rc == Z_OK);
  zs_.next_in = const_cast<Bytef*>(in_.data());  // zlib's API is not const-correct
  zs_.avail_in = 0;
}

GzipDecoder::~GzipDecoder() {
  inflateEnd(&zs_);
}

void GzipDecoder::fail(const std::string& what) const {
  throw Error(ErrorCode::kFormat, name_ + ": gzip: " + what);
}

std::uint64_t GzipDecoder::consumed() const {
  return static_cast<std::uint64_t>(zs_.next_in - in_.data());
}

void GzipDecoder::refill_input() {
  if (zs_.avail_in != 0) return;
  std::uint64_t left = in_.size() - consumed();
  zs_.avail_in = static_cast<uInt>(std::min(left, kMaxZlibChunk));
}

// After a member's trailer verified: the input must end here or start another member.
void GzipDecoder::end_member() {
  std::uint64_t at = consumed();
  std::uint64_t left = in_.size() - at;
  if (left == 0) {
    done_ = true;
    return;
  }
  auto rest = in_.subspan(static_cast<std::size_t>(at));
  if (is_gzip(rest) || (left == 1 && rest[0] == kGzipId1)) {
    // A lone 1F at the very end is the first byte of a member cut short; inflate reports it as
    // truncated once it runs out of input.
    int rc = inflateReset(&zs_);
    BACKPROP_ASSERT(rc == Z_OK);
    ++member_;
    return;
  }
  fail("trailing garbage after gzip data: byte " + std::to_string(at) + " (after member " +
       std::to_string(member_) + "): expected end of file or another member (1F 8B), found " +
       hex_bytes(rest.first(std::min<std::size_t>(4, rest.size()))) + (left > 4 ? " ..." : "") +
       " (" + std::to_string(left) + " bytes)");
}

std::size_t GzipDecoder::read(std::span<std::uint8_t> dst) {
  std::size_t out = 0;
  while (out < dst.size() && !done_) {
    refill_input();
    std::uint64_t room = std::min<std::uint64_t>(dst.size() - out, kMaxZlibChunk);
    zs_.next_out = dst.data() + out;
    zs_.avail_out = static_cast<uInt>(room);
    std::uint64_t in_before = consumed();
    int rc = inflate(&zs_, Z_NO_FLUSH);
    std::size_t produced = static_cast<std::size_t>(room - zs_.avail_out);
    out += produced;
    decoded_ += produced;
    bool input_exhausted = zs_.avail_in == 0 && consumed() == in_.size();
    switch (rc) {
      case Z_STREAM_END:
        end_member();
        break;
      case Z_OK:
      case Z_BUF_ERROR:
        // inflate returns with output room left only when it needs input. With all the input
        // already given, that means the stream was cut short. Z_BUF_ERROR (no progress possible)
        // must never be retried: that is how decoders hang on truncated files.
        if (input_exhausted && zs_.avail_out > 0) {
          fail("truncated gzip data: the input ends at byte " + std::to_string(in_.size()) +
               " inside member " + std::to_string(member_) + " (after " + std::to_string(decoded_) +
               " decoded bytes)");
        }
        if (rc == Z_BUF_ERROR && produced == 0 && consumed() == in_before) {
          fail("the decoder made no progress at byte " + std::to_string(consumed()) + " (member " +
               std::to_string(member_) + ")");
        }
        break;
      case Z_NEED_DICT:
        fail("member " + std::to_string(member_) +
             " asks for a preset dictionary, which gzip does not allow (corrupt data)");
      case Z_DATA_ERROR: {
        std::string msg = zs_.msg != nullptr ? zs_.msg : "unknown error";
        std::string where =
            "member " + std::to_string(member_) + ", near byte " + std::to_string(consumed());
        if (msg == "incorrect data check") {
          fail("CRC-32 mismatch in the trailer of " + where +
               ": the decoded data is corrupt (zlib: " + msg + ")");
        }
        if (msg == "incorrect length check") {
          fail("length (ISIZE) mismatch in the trailer of " + where + " (zlib: " + msg + ")");
        }
        if (msg == "incorrect header check" || msg == "unknown compression method" ||
            msg == "unknown header flags set" || msg == "header crc mismatch") {
          fail("bad gzip header in " + where + " (zlib: " + msg + ")");
        }
        fail("corrupt deflate data in " + where + " (zlib: " + msg + ")");
      }
      case Z_MEM_ERROR:
        throw std::bad_alloc();
      default:
        // Z_STREAM_ERROR: our own misuse of the z_stream.
        BACKPROP_ASSERT(rc == Z_OK);
    }
  }
  return out;
}

std::vector<std::uint8_t> gzip_decode_all(std::span<const std::uint8_t> compressed,
                                          const std::string& name, std::uint64_t max_output) {
  GzipDecoder dec(compressed, name);
  std::vector<std::uint8_t> out;
  constexpr std::uint64_t kStep = std::uint64_t{1} << 20;
  for (;;) {
    std::size_t have = out.size();
    // One byte past the cap is enough to know it is over; never decode further than that.
    std::uint64_t left = max_output - have;
    std::size_t step = static_cast<std::size_t>(left < kStep ? left + 1 : kStep);
    out.resize(have + step);
    std::size_t got = dec.read(std::span(out).subspan(have));
    out.resize(have + got);
    if (out.size() > max_output) {
      throw Error(ErrorCode::kLimit, name + ": gzip data decodes to more than " +
                                         std::to_string(max_output) +
                                         " bytes, over the limit (--max-input-bytes)");
    }
    if (got < step) return out;
  }
}

}  // namespace backprop::detail
