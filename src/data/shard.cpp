// Shards: contiguous, balanced parts of a data set's rows, one per rank (data.hpp).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/error.hpp"
#include "data/shard.hpp"

namespace backprop {

namespace {

// Rows before part k of n rows in `count` parts: the first n % count parts hold one row more.
Index rows_before(Index n, int count, int k) {
  const Index q = n / count, r = n % count;
  return q * k + std::min<Index>(k, r);
}

template <class T>
void keep_range(std::vector<T>& v, Index per_row, Index begin, Index end) {
  if (v.empty()) return;
  std::vector<T> kept(v.begin() + static_cast<std::ptrdiff_t>(begin * per_row),
                      v.begin() + static_cast<std::ptrdiff_t>(end * per_row));
  v.swap(kept);  // frees the whole data set's storage
}

}  // namespace

Index Shard::begin(Index n) const {
  BACKPROP_ASSERT(count >= 1 && index >= 0 && index < count && n >= 0);
  return rows_before(n, count, index);
}

Index Shard::end(Index n) const {
  BACKPROP_ASSERT(count >= 1 && index >= 0 && index < count && n >= 0);
  return rows_before(n, count, index + 1);
}

void keep_shard(Dataset& ds, Shard shard) {
  if (shard.whole()) return;
  BACKPROP_ASSERT(ds.total_rows == 0 && ds.first_row == 0);  // a whole data set
  const Index begin = shard.begin(ds.n), end = shard.end(ds.n);
  keep_range(ds.x_u8, ds.n_features, begin, end);
  keep_range(ds.x_f32, ds.n_features, begin, end);
  ds.total_rows = ds.n;
  ds.first_row = begin;
  ds.n = end - begin;
  detail::cut_labels_to_shard(ds);
}

namespace detail {

void cut_labels_to_shard(Dataset& ds) {
  const Index begin = ds.first_row, end = ds.first_row + ds.n;
  BACKPROP_ASSERT(end <= ds.whole_rows());
  keep_range(ds.labels, 1, begin, end);
  keep_range(ds.targets, ds.n_targets(), begin, end);
}

}  // namespace detail

}  // namespace backprop
