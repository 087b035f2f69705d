// F2 (RELIABILITY.md B.1): gzip-wrapped IDX through parse_idx, whose gzip path the CLI takes for
// any file that starts with 1F 8B (decoded output capped at 16 MiB), and the same bytes through
// the whole-stream decoder (detail::gzip_decode_all, capped at 1 MiB). Inputs that do not start
// with the gzip magic are left to F1.
#include <cstdint>

#include "backprop/data.hpp"
#include "data/gzip.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes bytes(data, size);
  if (!detail::is_gzip(bytes)) return 0;
  ReadLimits limits;
  limits.max_input_bytes = std::uint64_t{16} << 20;
  IdxArray a;
  if (accepts([&] { a = parse_idx(bytes, "fuzz.idx.gz", limits); })) {
    check(a.count() == (a.type == IdxType::kU8 ? a.u8.size() : a.values.size()),
          "element count differs from the product of the dimensions");
  }
  constexpr std::uint64_t kCap = std::uint64_t{1} << 20;
  std::vector<std::uint8_t> out;
  if (accepts([&] { out = detail::gzip_decode_all(bytes, "fuzz.gz", kCap); })) {
    check(out.size() <= kCap, "gzip_decode_all returned more than its cap");
  }
  return 0;
}
