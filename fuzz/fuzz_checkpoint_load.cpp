// F6 (RELIABILITY.md B.1): a checkpoint through parse_checkpoint, what find_checkpoint and so
// `train --resume` run on a file's bytes (read_checkpoint is read_file + parse_checkpoint): the
// container, format and version, the XXH3-128 checksum, the embedded model file, the optimizer
// counters and the training state (epoch, batch, RNG states, running sums, history).
//
// A random mutation almost never keeps the checksum right, so each input is tried twice: as it
// is, and resealed (when it is a safetensors file at all: its checksum recomputed by
// checkpoint_reseal.hpp and written back), so that mutations of the state, the counters and the
// tensors reach the checks behind the checksum. If the library ever says "checksum mismatch" on a
// resealed input, that copy of the checksum has drifted from the library's: a finding too.
//
// An accepted checkpoint then goes through what --resume does next: the optimizer it names is
// made and given the state (make_optimizer, Optimizer::set_state, which check every vector
// against the model's parameters and Adam's step against its moments). If that accepts too, the
// checkpoint must be written again (serialize_checkpoint refuses nothing the reader accepted),
// read back, and written a second time to the same bytes.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "backprop/checkpoint.hpp"
#include "backprop/io.hpp"
#include "backprop/optimizer.hpp"
#include "checkpoint_reseal.hpp"
#include "fuzz_util.hpp"

using namespace backprop;
using namespace backprop::fuzz;

namespace {

ReadLimits limits() {
  ReadLimits l;
  l.max_header_bytes = std::uint64_t{1} << 20;
  return l;
}

// What --resume does with an accepted checkpoint, then the writer's round trip.
void resume_checks(const Checkpoint& c) {
  std::unique_ptr<Optimizer> opt;
  OptimizerConfig oc;
  oc.kind = c.optimizer;
  const std::size_t arena = c.model.model.params().size();
  if (!accepts([&] {
        opt = make_optimizer(oc);
        opt->set_state(c.optimizer_state, arena);
      })) {
    return;  // an unknown optimizer or a state that does not fit: --resume refuses it
  }
  check(opt->state() == c.optimizer_state, "set_state did not keep the state it accepted");
  std::vector<std::uint8_t> once;
  if (!accepts([&] {
        once =
            serialize_checkpoint(c.model.model, c.model.info, *opt, c.state, c.config, c.data_hash);
      })) {
    finding("serialize_checkpoint refused a checkpoint that parse_checkpoint accepted");
  }
  Checkpoint back;
  if (!accepts([&] { back = parse_checkpoint(once, "rewritten.safetensors", limits()); })) {
    finding("parse_checkpoint refused the rewrite of a checkpoint it accepted");
  }
  check(back.optimizer == c.optimizer && back.config == c.config && back.data_hash == c.data_hash &&
            back.optimizer_state == c.optimizer_state,
        "the rewrite has another optimizer, configuration or data hash");
  check(back.model.model.spec() == c.model.model.spec(), "the rewrite has another architecture");
  const std::span<const float> p = c.model.model.params(), q = back.model.model.params();
  check(p.size() == q.size() &&
            std::equal(p.begin(), p.end(), q.begin(),
                       [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }),
        "the rewrite has other weights");
  check(back.state.epoch == c.state.epoch && back.state.batch == c.state.batch &&
            back.state.order == c.state.order && back.state.shuffle_rng == c.state.shuffle_rng &&
            back.state.dropout_rng == c.state.dropout_rng &&
            back.state.history.size() == c.state.history.size(),
        "the rewrite has another training state");
  std::vector<std::uint8_t> twice;
  if (!accepts([&] {
        twice = serialize_checkpoint(back.model.model, back.model.info, *opt, back.state,
                                     back.config, back.data_hash);
      })) {
    finding("serialize_checkpoint refused its own rewrite");
  }
  check(once == twice, "writing a checkpoint read back from the writer gives other bytes");
}

void try_checkpoint(Bytes bytes, const char* name, bool resealed) {
  Checkpoint c;
  bool ok = false;
  try {
    c = parse_checkpoint(bytes, name, limits());
    ok = true;
  } catch (const Error& e) {
    check_message(e);
    if (resealed && std::string(e.what()).find("checksum mismatch") != std::string::npos) {
      finding(
          "a resealed input fails the checksum: fuzz_checkpoint_load's copy of the checksum "
          "differs from src/io/checkpoint.cpp's");
    }
  }
  if (ok) resume_checks(c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes bytes(data, size);
  try_checkpoint(bytes, "fuzz.safetensors", false);
  Safetensors st;
  if (!accepts([&] { st = parse_safetensors(bytes, "fuzz.safetensors", limits()); })) return 0;
  std::vector<std::uint8_t> sealed;
  if (!accepts([&] { sealed = reseal_checkpoint(st); })) {
    finding("the writer refused a file the reader accepted");
  }
  try_checkpoint(sealed, "resealed.safetensors", true);
  return 0;
}
