// From a Dataset to the model's input: preprocessing (scaling or standardisation), a seeded
// validation split, and gathering rows into a float batch with one-hot or regression targets.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/matrix.hpp"

namespace backprop {

// Per feature j: x'_j = (x_raw_j − shift_j) · scale_j. Stored in the model file, so eval and
// predict apply exactly what training applied.
// Regression targets, per target t (empty: used as they are): the model is trained on
// y'_t = (y_t − target_shift_t) / target_scale_t, and its output a_t means
// a_t · target_scale_t + target_shift_t in the target's own units (output_to_target).
struct Preprocess {
  std::vector<float> shift, scale;                // n_features each
  std::vector<float> target_shift, target_scale;  // n_targets each, or empty
  bool standardizes_targets() const { return !target_scale.empty(); }
  bool operator==(const Preprocess&) const = default;
};

// Scales the data's natural range onto [0, 1]: shift 0, scale Dataset::value_scale.
Preprocess scale_preprocess(const Dataset& ds);
// Standardisation from the given rows: shift = mean, scale = 1 / standard deviation (population),
// in double; a constant feature gets scale = value_scale so it maps to 0 without dividing by 0.
Preprocess standardize_preprocess(const Dataset& ds, std::span<const Index> rows);
class Collective;
// The same over a data-parallel group whose ranks hold different parts of a data set (Shard):
// every rank passes its own rows and gets the figures of all the ranks' rows together. Every rank
// must call it.
Preprocess standardize_preprocess_sharded(const Dataset& ds, std::span<const Index> rows,
                                          Collective& ranks);

// Regression: pre.target_shift = the mean and pre.target_scale = the standard deviation
// (population, in double) of each target over the given rows; a (numerically) constant target
// gets scale 1, so it is only centred. The sharded form sums over every rank's rows (every rank
// must call it).
void standardize_targets(Preprocess& pre, const Dataset& ds, std::span<const Index> rows);
void standardize_targets_sharded(Preprocess& pre, const Dataset& ds, std::span<const Index> rows,
                                 Collective& ranks);

// Output t of a model as a value of target t in its own units: a · target_scale_t +
// target_shift_t, in float, rounded after the product and after the sum (as ONNX's Mul then Add
// and PyTorch compute it); a itself when the targets are not standardised. Every reader of
// regression outputs goes through it: evaluate (RMSE, MAE, R²), the training loop's running RMSE,
// predict and the report.
inline float output_to_target(const Preprocess& pre, Index t, float a) {
  if (pre.target_scale.empty()) return a;
  const auto u = static_cast<std::size_t>(t);
  const float scaled = a * pre.target_scale[u];
  return scaled + pre.target_shift[u];
}
// The same over every element of a (B × n_targets), in place.
void outputs_to_targets(const Preprocess& pre, MatrixView a);

// Rows `rows` of ds, preprocessed, into x (rows.size() × n_features). If y is not empty, the
// targets into y (rows.size() × n_outputs): one-hot for classification, or with label smoothing
// ε the smoothed targets (1 − ε)·one-hot + ε/K; for regression the targets, standardised when
// pre says so: (y − target_shift) / target_scale, in double, rounded once to float.
void gather_batch(const Dataset& ds, std::span<const Index> rows, const Preprocess& pre,
                  MatrixView x, MatrixView y, float label_smoothing = 0.0f);

// Asks the CPU to start loading rows `rows` of ds into cache (a hint; no effect on results). The
// training loop calls it for the next batch while the current one computes: shuffled rows of a
// dataset larger than the caches otherwise cost a memory round trip each.
void prefetch_rows(const Dataset& ds, std::span<const Index> rows);

// All rows 0..n-1.
std::vector<Index> all_rows(const Dataset& ds);

struct Split {
  std::vector<Index> train, val;
};
// Holds out round(fraction × n) rows, chosen with Rng::stream(seed, "split"); for classification
// the hold-out is stratified (each class contributes in proportion, rounded so the total is
// exact). fraction in [0, 1); 0 gives no validation rows. Both lists are sorted. A shard
// (Dataset::first_row > 0) holds out round(fraction × its own rows), from a stream of its own.
Split split_validation(const Dataset& ds, double fraction, std::uint64_t seed);

// "xxh3-128:<32 hex digits>" of the features, labels or targets, and class names: the identity
// of a training set, recorded in the model file.
std::string data_hash(const Dataset& ds);
// The identity of a data set held in parts (Shard), from the parts' data_hash values in part
// order: "xxh3-128:<32 hex digits>" of them together. Not the hash of the same data held whole.
std::string combined_data_hash(std::span<const std::string> parts);

}  // namespace backprop
