// F1 (RELIABILITY.md B.1): IDX bytes, raw or gzip, through the loader the CLI uses. The first byte
// picks what is run on the rest:
//   0: parse_idx (the array: header, sizes, payload, every element type)
//   1: detail::parse_idx_images (predict's images: role and finiteness checks)
//   2: detail::parse_idx_dataset (train/eval: images, then the labels' role checks), the rest
//      split at "LBLS" into the images file and the labels file.
#include <cmath>
#include <cstdint>

#include "backprop/data.hpp"
#include "data/idx.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0] % 3;
  const Bytes rest(data + 1, size - 1);
  ReadLimits limits;
  limits.max_input_bytes = std::uint64_t{16} << 20;
  limits.max_classes = 1000;

  if (mode == 0) {
    IdxArray a;
    if (!accepts([&] { a = parse_idx(rest, "fuzz.idx", limits); })) return 0;
    check(!a.dims.empty(), "an accepted IDX array without dimensions");
    const std::uint64_t n = a.count();
    check(n == (a.type == IdxType::kU8 ? a.u8.size() : a.values.size()),
          "element count differs from the product of the dimensions");
    return 0;
  }
  if (mode == 1) {
    Dataset ds;
    if (!accepts([&] { ds = detail::parse_idx_images(rest, "fuzz.idx", limits); })) return 0;
    const auto cells = static_cast<std::size_t>(ds.n * ds.n_features);
    check(ds.n >= 1 && ds.n_features >= 1, "accepted images with no samples or features");
    check(cells == ds.x_u8.size() + ds.x_f32.size(), "feature array size is not n x features");
    for (float v : ds.x_f32) check(std::isfinite(v), "a non-finite feature was accepted");
    check(!ds.has_labels(), "images-only data has labels");
    return 0;
  }
  const std::pair<Bytes, Bytes> files = split_at(rest, "LBLS");
  Dataset ds;
  if (!accepts([&] {
        ds = detail::parse_idx_dataset(files.first, "fuzz-images.idx", files.second,
                                       "fuzz-labels.idx", limits);
      })) {
    return 0;
  }
  check(ds.labels.size() == static_cast<std::size_t>(ds.n), "label count is not n");
  for (std::int32_t l : ds.labels) {
    check(l >= 0 && static_cast<std::size_t>(l) < ds.class_names.size(), "label out of range");
  }
  check(ds.class_names.size() <= limits.max_classes, "more classes than max_classes");
  return 0;
}
