// Checkpoints: everything a training run needs to continue exactly where it stopped, in one
// safetensors file written atomically (temp, fsync, rename, fsync of the directory).
//
// Tensors: "model" (U8: the complete model file, so loading it runs every model-file check),
// "optimizer.<name>" (F32, one per optimizer state vector), "state.order" (I64: the epoch's
// shuffled rows), "state.best_params" (F32, early stopping's best weights, when there are some).
// __metadata__: format "backprop-checkpoint", format_version "1", the run's configuration (JSON,
// compared on resume), data_hash, optimizer (its name), optimizer_counters and state (JSON: the
// epoch and batch, both RNG states, running sums, schedule and early-stopping state, every
// finished epoch's figures), and checksum: XXH3-128 of every tensor (name, dtype, shape, bytes)
// and every other metadata entry, so a single flipped bit anywhere is detected.
//
// Files are DIR/checkpoint-EEEEEE-BBBBBBBBB.safetensors (epoch and batch, zero-padded so names
// sort in time order); temporaries (*.tmp.*) are never read.
#pragma once

#include <string>
#include <vector>

#include "backprop/io.hpp"
#include "backprop/model_file.hpp"
#include "backprop/optimizer.hpp"
#include "backprop/train.hpp"

namespace backprop {

struct Checkpoint {
  ModelFile model;
  std::string optimizer;  // Optimizer::name() of the optimizer that wrote it
  OptimizerState optimizer_state;
  TrainState state;
  std::string config;  // as given to CheckpointWriter
  std::string data_hash;
  std::string path;  // where it was read from
};

class CheckpointWriter {
 public:
  // keep >= 1: the newest `keep` checkpoints of dir are kept, older ones removed after each
  // write. info is the model file's ModelInfo (preprocessing, classes, provenance).
  CheckpointWriter(std::string dir, int keep, std::string config, std::string data_hash,
                   ModelInfo info);
  // Writes a checkpoint of this moment and returns its path. Throws Error(kIo) naming the
  // syscall (the previous checkpoints are left as they were), Error(kNumeric) if a weight is not
  // finite (so a diverged run never replaces a good checkpoint).
  std::string write(const Model& model, const Optimizer& optimizer, const TrainState& state);

 private:
  std::string dir_;
  int keep_;
  std::string config_, data_hash_;
  ModelInfo info_;
};

// The bytes of a checkpoint, and their reading back with every check (format and version, the
// checksum, the embedded model file, the state's consistency). Throws Error(kFormat, kModel or
// kData) naming the file and what is wrong.
std::vector<std::uint8_t> serialize_checkpoint(const Model& model, const ModelInfo& info,
                                               const Optimizer& optimizer, const TrainState& state,
                                               const std::string& config,
                                               const std::string& data_hash);
Checkpoint parse_checkpoint(std::span<const std::uint8_t> bytes, const std::string& name,
                            const ReadLimits& limits);
Checkpoint read_checkpoint(const std::string& path, const ReadLimits& limits = {});

// The newest checkpoint of dir that reads back cleanly. Each newer one that does not (truncated,
// corrupt) is described in `skipped` ("checkpoint-...: <why>"), so the caller can say it fell
// back. Throws Error(kData) when dir holds no valid checkpoint, naming what was tried.
Checkpoint find_checkpoint(const std::string& dir, const ReadLimits& limits,
                           std::vector<std::string>* skipped);

// The checkpoint files of dir, oldest first (no temporaries).
std::vector<std::string> list_checkpoints(const std::string& dir);

// The checksum a checkpoint's __metadata__ "checksum" holds: "xxh3-128:<32 hex>" over every
// tensor (name, dtype, shape, bytes) and every other metadata entry, each field length-prefixed.
// Exposed so that tests and fuzz targets can change a checkpoint and seal it again.
std::string checkpoint_checksum(const Safetensors& st);

}  // namespace backprop
