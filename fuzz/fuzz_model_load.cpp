// F5 (RELIABILITY.md B.1): a model file through parse_model, what load_model (and so eval,
// predict and info) runs on a file's bytes: the container, then format, version, architecture,
// tensor names, dtypes and shapes, finiteness and metadata. An accepted model must serialise and
// load back with the same weights, spec and information.
#include <cstdint>
#include <cstring>

#include "backprop/model_file.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ReadLimits limits;
  limits.max_header_bytes = std::uint64_t{1} << 20;
  ModelFile mf;
  if (!accepts([&] { mf = parse_model(Bytes(data, size), "fuzz.safetensors", limits); })) {
    return 0;
  }
  std::vector<std::uint8_t> again;
  if (!accepts([&] { again = serialize_model(mf.model, mf.info); })) {
    finding("serialize_model refused a model that parse_model accepted");
  }
  ModelFile back;
  if (!accepts([&] { back = parse_model(again, "rewritten.safetensors", limits); })) {
    finding("parse_model refused the rewrite of a model it accepted");
  }
  check(back.model.spec() == mf.model.spec(), "the rewrite has another architecture");
  const auto p = mf.model.params(), q = back.model.params();
  check(p.size() == q.size() && std::memcmp(p.data(), q.data(), p.size() * sizeof(float)) == 0,
        "the rewrite has other weights");
  ModelInfo info = back.info;
  info.version = mf.info.version;  // the writer records its own version
  check(info == mf.info, "the rewrite has other metadata");
  return 0;
}
