#include "backprop/batch.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "backprop/collective.hpp"
#include "backprop/rng.hpp"
#include "kernels/kernels.hpp"

namespace backprop {

Preprocess scale_preprocess(const Dataset& ds) {
  auto n = static_cast<std::size_t>(ds.n_features);
  Preprocess p;
  p.shift.assign(n, 0.0f);
  p.scale.assign(n, ds.value_scale);
  return p;
}

namespace {

double raw_value(const Dataset& ds, Index row, Index col) {
  auto at = static_cast<std::size_t>(row * ds.n_features + col);
  return ds.x_u8.empty() ? static_cast<double>(ds.x_f32[at]) : static_cast<double>(ds.x_u8[at]);
}

}  // namespace

namespace {

// Mean and population standard deviation per feature over `rows`, in double, two passes; with
// ranks, over every rank's rows (each pass's sums added over the ranks).
Preprocess standardize(const Dataset& ds, std::span<const Index> rows, Collective* ranks) {
  Preprocess p = scale_preprocess(ds);
  const auto nf = static_cast<std::size_t>(ds.n_features);
  std::vector<double> sums(nf + 1, 0.0);  // Σx per feature, then the row count
  for (std::size_t j = 0; j < nf; ++j) {
    for (Index r : rows) sums[j] += raw_value(ds, r, static_cast<Index>(j));
  }
  sums[nf] = static_cast<double>(rows.size());
  if (ranks != nullptr) ranks->sum(sums);
  const double n = sums[nf];
  if (n == 0) return p;
  std::vector<double> mean(nf), ss(nf, 0.0);
  for (std::size_t j = 0; j < nf; ++j) {
    mean[j] = sums[j] / n;
    for (Index r : rows) {
      double d = raw_value(ds, r, static_cast<Index>(j)) - mean[j];
      ss[j] += d * d;
    }
  }
  if (ranks != nullptr) ranks->sum(ss);
  for (std::size_t j = 0; j < nf; ++j) {
    double sd = std::sqrt(ss[j] / n);
    p.shift[j] = static_cast<float>(mean[j]);
    // A (numerically) constant feature carries no information: centre it, keep its scale.
    if (sd > 1e-6 * (std::abs(mean[j]) + 1e-30) && std::isfinite(1.0 / sd)) {
      p.scale[j] = static_cast<float>(1.0 / sd);
    }
  }
  return p;
}

}  // namespace

namespace {

// Per target: mean and population standard deviation over `rows` (with ranks: every rank's rows),
// in double, two passes, as for the features.
void standardize_targets(Preprocess& pre, const Dataset& ds, std::span<const Index> rows,
                         Collective* ranks) {
  BACKPROP_ASSERT(ds.task == Task::kRegress);
  const auto k = static_cast<std::size_t>(ds.n_targets());
  auto target = [&](Index r, std::size_t t) {
    return static_cast<double>(ds.targets[static_cast<std::size_t>(r) * k + t]);
  };
  std::vector<double> sums(k + 1, 0.0);  // Σy per target, then the row count
  for (std::size_t t = 0; t < k; ++t) {
    for (Index r : rows) sums[t] += target(r, t);
  }
  sums[k] = static_cast<double>(rows.size());
  if (ranks != nullptr) ranks->sum(sums);
  const double n = sums[k];
  pre.target_shift.assign(k, 0.0f);
  pre.target_scale.assign(k, 1.0f);
  if (n == 0) return;
  std::vector<double> mean(k), ss(k, 0.0);
  for (std::size_t t = 0; t < k; ++t) {
    mean[t] = sums[t] / n;
    for (Index r : rows) {
      const double d = target(r, t) - mean[t];
      ss[t] += d * d;
    }
  }
  if (ranks != nullptr) ranks->sum(ss);
  for (std::size_t t = 0; t < k; ++t) {
    const double sd = std::sqrt(ss[t] / n);
    pre.target_shift[t] = static_cast<float>(mean[t]);
    // A (numerically) constant target has no spread to divide by: centre it, keep its units.
    if (sd > 1e-6 * (std::abs(mean[t]) + 1e-30) && std::isfinite(1.0 / sd)) {
      pre.target_scale[t] = static_cast<float>(sd);
    }
  }
}

}  // namespace

void standardize_targets(Preprocess& pre, const Dataset& ds, std::span<const Index> rows) {
  standardize_targets(pre, ds, rows, nullptr);
}

void standardize_targets_sharded(Preprocess& pre, const Dataset& ds, std::span<const Index> rows,
                                 Collective& ranks) {
  standardize_targets(pre, ds, rows, &ranks);
}

void outputs_to_targets(const Preprocess& pre, MatrixView a) {
  if (!pre.standardizes_targets()) return;
  BACKPROP_ASSERT(static_cast<std::size_t>(a.cols) == pre.target_scale.size());
  for (Index i = 0; i < a.rows; ++i) {
    float* row = a.row(i);
    for (Index t = 0; t < a.cols; ++t) row[t] = output_to_target(pre, t, row[t]);
  }
}

Preprocess standardize_preprocess(const Dataset& ds, std::span<const Index> rows) {
  return standardize(ds, rows, nullptr);
}

Preprocess standardize_preprocess_sharded(const Dataset& ds, std::span<const Index> rows,
                                          Collective& ranks) {
  return standardize(ds, rows, &ranks);
}

void gather_batch(const Dataset& ds, std::span<const Index> rows, const Preprocess& pre,
                  MatrixView x, MatrixView y, float label_smoothing) {
  const auto b = static_cast<Index>(rows.size());
  BACKPROP_ASSERT(x.rows == b && x.cols == ds.n_features);
  BACKPROP_ASSERT(static_cast<Index>(pre.shift.size()) == ds.n_features &&
                  static_cast<Index>(pre.scale.size()) == ds.n_features);
  const float* shift = pre.shift.data();
  const float* scale = pre.scale.data();
  const Index nf = ds.n_features;
  const kernels::KernelTable& kt = kernels::active();
  for (Index i = 0; i < b; ++i) {
    const Index r = rows[static_cast<std::size_t>(i)];
    BACKPROP_DASSERT(r >= 0 && r < ds.n);
    if (!ds.x_u8.empty()) {
      kt.scale_u8(ds.x_u8.data() + r * nf, shift, scale, x.row(i), nf);
    } else {
      kt.scale_f32(ds.x_f32.data() + r * nf, shift, scale, x.row(i), nf);
    }
  }
  if (y.empty()) return;
  BACKPROP_ASSERT(y.rows == b && y.cols == ds.n_outputs() && ds.has_labels());
  BACKPROP_ASSERT(!pre.standardizes_targets() ||
                  (ds.task == Task::kRegress &&
                   static_cast<Index>(pre.target_scale.size()) == y.cols &&
                   pre.target_shift.size() == pre.target_scale.size()));
  for (Index i = 0; i < b; ++i) {
    const Index r = rows[static_cast<std::size_t>(i)];
    float* yi = y.row(i);
    if (ds.task == Task::kClassify) {
      const float off = label_smoothing / static_cast<float>(y.cols);
      std::fill(yi, yi + y.cols, off);
      yi[ds.labels[static_cast<std::size_t>(r)]] = 1.0f - label_smoothing + off;
    } else if (pre.standardizes_targets()) {
      const float* t = ds.targets.data() + r * y.cols;
      for (Index j = 0; j < y.cols; ++j) {
        const auto u = static_cast<std::size_t>(j);
        yi[j] = static_cast<float>(
            (static_cast<double>(t[j]) - static_cast<double>(pre.target_shift[u])) /
            static_cast<double>(pre.target_scale[u]));
      }
    } else {
      const float* t = ds.targets.data() + r * y.cols;
      std::copy(t, t + y.cols, yi);
    }
  }
}

void prefetch_rows(const Dataset& ds, std::span<const Index> rows) {
  const std::size_t row_bytes = static_cast<std::size_t>(ds.n_features) *
                                (ds.x_u8.empty() ? sizeof(float) : sizeof(std::uint8_t));
  // More than the L2 can hold would only evict what the current step is using.
  constexpr std::size_t kMaxBytes = std::size_t{256} << 10;
  if (row_bytes * rows.size() > kMaxBytes) return;
  for (Index r : rows) {
    const char* p = ds.x_u8.empty()
                        ? reinterpret_cast<const char*>(ds.x_f32.data() + r * ds.n_features)
                        : reinterpret_cast<const char*>(ds.x_u8.data() + r * ds.n_features);
    for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off);
  }
}

std::vector<Index> all_rows(const Dataset& ds) {
  std::vector<Index> rows(static_cast<std::size_t>(ds.n));
  std::iota(rows.begin(), rows.end(), Index{0});
  return rows;
}

Split split_validation(const Dataset& ds, double fraction, std::uint64_t seed) {
  BACKPROP_ASSERT(fraction >= 0.0 && fraction < 1.0);
  Split s;
  const auto want = static_cast<Index>(std::llround(fraction * static_cast<double>(ds.n)));
  if (want == 0) {
    s.train = all_rows(ds);
    return s;
  }
  // A shard draws from its own stream (a whole data set's is "split"), so that shards of equal
  // size do not hold out the same positions.
  Rng rng = Rng::stream(seed, ds.first_row == 0 ? std::string("split")
                                                : "split from row " + std::to_string(ds.first_row));
  std::vector<char> held(static_cast<std::size_t>(ds.n), 0);
  if (ds.task == Task::kClassify && !ds.labels.empty()) {
    // Stratified: each class gives floor(share) rows; the remainders go to the classes with the
    // largest fractional parts (ties to the lower class), so the total is exactly `want`.
    std::size_t k = ds.class_names.size();
    std::vector<std::vector<Index>> by_class(k);
    for (Index r = 0; r < ds.n; ++r) {
      by_class[static_cast<std::size_t>(ds.labels[static_cast<std::size_t>(r)])].push_back(r);
    }
    std::vector<Index> take(k);
    std::vector<std::pair<double, std::size_t>> remainder;
    Index taken = 0;
    for (std::size_t c = 0; c < k; ++c) {
      double share = fraction * static_cast<double>(by_class[c].size());
      take[c] = static_cast<Index>(std::floor(share));
      taken += take[c];
      remainder.emplace_back(share - std::floor(share), c);
    }
    std::stable_sort(remainder.begin(), remainder.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::size_t i = 0; taken < want && i < remainder.size(); ++i) {
      std::size_t c = remainder[i].second;
      if (take[c] < static_cast<Index>(by_class[c].size())) {
        ++take[c];
        ++taken;
      }
    }
    for (std::size_t c = 0; c < k; ++c) {
      rng.shuffle(by_class[c].begin(), by_class[c].end());
      for (Index i = 0; i < take[c]; ++i)
        held[static_cast<std::size_t>(by_class[c][static_cast<std::size_t>(i)])] = 1;
    }
  } else {
    std::vector<Index> rows = all_rows(ds);
    rng.shuffle(rows.begin(), rows.end());
    for (Index i = 0; i < want; ++i)
      held[static_cast<std::size_t>(rows[static_cast<std::size_t>(i)])] = 1;
  }
  for (Index r = 0; r < ds.n; ++r)
    (held[static_cast<std::size_t>(r)] ? s.val : s.train).push_back(r);
  return s;
}

namespace {

std::string hex_digest(XXH128_hash_t h) {
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string("xxh3-128:") + hex;
}

}  // namespace

std::string data_hash(const Dataset& ds) {
  XXH3_state_t* state = XXH3_createState();
  BACKPROP_ASSERT(state != nullptr);
  XXH3_128bits_reset(state);
  auto add = [&](const void* p, std::size_t bytes) {
    if (bytes > 0) XXH3_128bits_update(state, p, bytes);
  };
  std::int64_t shape[3] = {ds.n, ds.n_features, ds.task == Task::kClassify ? 0 : 1};
  add(shape, sizeof shape);
  add(ds.x_u8.data(), ds.x_u8.size());
  add(ds.x_f32.data(), ds.x_f32.size() * sizeof(float));
  add(ds.labels.data(), ds.labels.size() * sizeof(std::int32_t));
  add(ds.targets.data(), ds.targets.size() * sizeof(float));
  for (const auto& c : ds.class_names) add(c.c_str(), c.size() + 1);
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return hex_digest(h);
}

std::string combined_data_hash(std::span<const std::string> parts) {
  std::string all = "parts " + std::to_string(parts.size());
  for (const std::string& p : parts) all += "\n" + p;
  return hex_digest(XXH3_128bits(all.data(), all.size()));
}

}  // namespace backprop
