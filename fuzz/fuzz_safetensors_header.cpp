// F4 (RELIABILITY.md B.1): a safetensors file through parse_safetensors, the container reader
// under every model load (header cap 1 MiB). An accepted file must survive the canonical writer
// and read back to the same tensors and metadata.
#include <cstdint>

#include "backprop/io.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

namespace {

bool same(const Safetensors& x, const Safetensors& y) {
  if (x.metadata != y.metadata || x.tensors.size() != y.tensors.size()) return false;
  for (std::size_t i = 0; i < x.tensors.size(); ++i) {
    const Tensor &s = x.tensors[i], &t = y.tensors[i];
    if (s.name != t.name || s.dtype != t.dtype || s.shape != t.shape || s.data != t.data) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ReadLimits limits;
  limits.max_header_bytes = std::uint64_t{1} << 20;
  Safetensors st;
  if (!accepts([&] { st = parse_safetensors(Bytes(data, size), "fuzz.safetensors", limits); })) {
    return 0;
  }
  std::vector<std::uint8_t> again;
  if (!accepts([&] { again = serialize_safetensors(st); })) {
    finding("the writer refused a file the reader accepted");
  }
  Safetensors back;
  if (!accepts([&] { back = parse_safetensors(again, "rewritten.safetensors", limits); })) {
    finding("the reader refused the canonical rewrite of a file it accepted");
  }
  check(same(st, back), "the canonical rewrite reads back different tensors or metadata");
  return 0;
}
