// Fault injection on the save path and the process (RELIABILITY.md B.3), on the real CLI:
//  - SIGKILL at random moments of `backprop train --save` (B.3.1): the model file is always
//    absent or the old complete file, or the new complete one, byte for byte; a killed save may
//    leave a `*.tmp.*` file and nothing else. BACKPROP_FAULT_TRIALS sets the number of trials (20
//    by default; make test-long runs 200). Half the trials kill at a random time of the whole
//    run, half wait for the temporary file and kill inside the write (writes slowed by the shim).
//  - ENOSPC/EIO at write, fsync, close, rename and the directory fsync, through the LD_PRELOAD
//    shim fault_shim.cpp (B.3.2): exit 1, one line naming the path, the call and the errno, the
//    previous file intact (after the rename, the new one), no temporary left.
//  - SIGINT/SIGTERM during training (B.3.9): exit 130/143, the old model kept, no temporary.
//  - Checkpoints (--checkpoint-dir): SIGKILL at random moments and inside checkpoint writes
//    (every final-named checkpoint left reads back cleanly, --resume's find_checkpoint takes the
//    newest and never a temporary; BACKPROP_FAULT_TRIALS trials, 10 by default); ENOSPC/EIO at
//    write, fsync, close, rename and the folder's fsync of the second checkpoint (exit 1, the
//    call named, the first checkpoint intact, no temporary); SIGINT/SIGTERM during training and
//    during a checkpoint write (exit 130/143, the last checkpoint valid and named, no temporary;
//    BACKPROP_SIGNAL_TRIALS trials, 4 by default, make test-long runs 50).
//  - SIGPIPE from `train | head -1` (B.3.11).
//  - Short reads, EINTR and a file that shrinks while read (B.3.6, A.19).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backprop/checkpoint.hpp"
#include "backprop/model_file.hpp"
#include "reliability/child.hpp"

namespace backprop::reliability_test {
namespace {

namespace fs = std::filesystem;
using cli_test::Bytes;
using cli_test::read_bytes;
using cli_test::TempDir;
using cli_test::write_bytes;
using cli_test::write_text;

constexpr const char* kModel = "m.safetensors";

int trials_from_env(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

class Rig {
 public:
  static Rig& get() {
    static Rig s;
    return s;
  }
  fs::path dir() const { return root_.path(); }
  std::string data() const { return (root_.path() / "blobs.csv").string(); }
  fs::path captures() const { return root_.path() / "captures"; }

  // train on blobs.csv with a 1 MB model (so that a save takes several write calls), one thread,
  // a fixed seed: the same bytes every run.
  std::vector<std::string> train_args(const std::string& save, const std::string& seed = "1",
                                      const std::string& epochs = "1") const {
    return {"train",     "--train", data(),   "--hidden", "512,512", "--epochs", epochs,
            "--threads", "1",       "--seed", seed,       "--quiet", "--save",   save};
  }

  // A fresh, empty folder for one trial.
  fs::path trial_dir(const std::string& name) const {
    fs::path p = root_.path() / "trials" / name;
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
  }

  Ended run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) const {
    Child c(BACKPROP_CLI, args, env, captures());
    return c.wait();
  }

  Bytes old_model;  // what --save finds already there
  Bytes new_model;  // what an uninterrupted run writes

 private:
  Rig() {
    fs::create_directories(captures());
    std::string text = "a,b,color\n";
    for (int i = 0; i < 60; ++i) {
      text += std::to_string(i % 7) + "," + std::to_string((i * 5) % 11) + "," +
              "xyz"[static_cast<std::size_t>(i % 3)] + "\n";
    }
    write_text(data(), text);
    for (const auto& [seed, out] :
         {std::pair<std::string, Bytes*>{"2", &old_model}, {"1", &new_model}}) {
      const std::string path = (root_.path() / ("ref" + seed + ".safetensors")).string();
      const Ended e = run(train_args(path, seed));
      if (!e.exited || e.exit_code != 0) throw std::runtime_error("reference: " + e.describe());
      *out = read_bytes(path);
      load_model(path);  // complete and valid, or this throws
    }
  }
  TempDir root_;
};

std::vector<std::string> entries(const fs::path& dir) {
  return cli_test::list_dir(dir);
}

bool is_temporary_of_model(const std::string& name) {
  return name.rfind(std::string(kModel) + ".tmp.", 0) == 0;
}

// What a trial left: the model is absent, the old file or the new file (never anything else),
// and the only other entries are temporaries of the model.
struct Outcome {
  bool absent = false, old_file = false, new_file = false;
  int temporaries = 0;
  std::string problem;
};

Outcome inspect(const fs::path& dir) {
  const Rig& s = Rig::get();
  Outcome o;
  for (const std::string& name : entries(dir)) {
    if (name == kModel) continue;
    if (is_temporary_of_model(name)) {
      ++o.temporaries;
    } else {
      o.problem += "stray entry '" + name + "'; ";
    }
  }
  const fs::path model = dir / kModel;
  if (!fs::exists(model)) {
    o.absent = true;
  } else {
    const Bytes b = read_bytes(model);
    o.old_file = b == s.old_model;
    o.new_file = b == s.new_model;
    if (!o.old_file && !o.new_file) {
      o.problem += "the model is neither the old file nor the new one (" +
                   std::to_string(b.size()) + " bytes)";
    }
  }
  return o;
}

TEST(Sigkill, DuringTrainSaveLeavesTheOldOrTheNewCompleteModel) {
  Rig& s = Rig::get();
  const int trials = trials_from_env("BACKPROP_FAULT_TRIALS", 20);
  // Slow writes (64 KiB per call, 2 ms each) stretch the 1 MB save to about 35 ms.
  const std::vector<std::string> slow = {"LD_PRELOAD=" + std::string(BACKPROP_FAULT_SHIM),
                                         "BACKPROP_FAULT_SLOW_WRITE=2000"};
  // How long a whole slow run takes here (sanitizer builds are slower), for the random kills.
  double whole = 0;
  {
    const fs::path dir = s.trial_dir("timing");
    Child c(BACKPROP_CLI, s.train_args((dir / kModel).string()), slow, s.captures());
    const Ended e = c.wait();
    whole = c.seconds();
    ASSERT_TRUE(e.exited && e.exit_code == 0) << e.describe();
    ASSERT_EQ(read_bytes(dir / kModel), s.new_model) << "slow writes changed the bytes";
  }

  std::mt19937 rng(20240611);
  int old_kept = 0, new_written = 0, absent = 0, killed_in_write = 0, finished = 0;
  for (int t = 0; t < trials; ++t) {
    SCOPED_TRACE("trial " + std::to_string(t));
    const fs::path dir = s.trial_dir("t" + std::to_string(t));
    const bool with_old = t % 4 != 3;
    if (with_old) write_bytes(dir / kModel, s.old_model);
    Child c(BACKPROP_CLI, s.train_args((dir / kModel).string()), slow, s.captures());
    if (t % 2 == 0) {
      // Anywhere in the run, including before the save and after it.
      std::uniform_real_distribution<double> when(0.0, 1.1 * whole);
      std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
    } else {
      // Inside the write: as soon as the temporary exists, then up to ~50 ms more.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      bool seen = false;
      while (!seen && !c.done() && std::chrono::steady_clock::now() < deadline) {
        for (const std::string& n : entries(dir)) seen = seen || is_temporary_of_model(n);
        if (!seen) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      std::uniform_int_distribution<int> ms(0, 50);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
    }
    c.signal(SIGKILL);
    const Ended e = c.wait();
    ASSERT_FALSE(e.timed_out);
    if (e.exited) {
      EXPECT_EQ(e.exit_code, 0) << e.describe();
      ++finished;
    }
    const Outcome o = inspect(dir);
    EXPECT_EQ(o.problem, "");
    if (!with_old) {
      EXPECT_FALSE(o.old_file);
    }
    old_kept += o.old_file;
    new_written += o.new_file;
    absent += o.absent;
    killed_in_write += o.temporaries > 0;
  }
  std::cout << "SIGKILL trials: " << trials << " (whole run " << whole << " s): old file kept "
            << old_kept << ", new file complete " << new_written << ", no file (none before) "
            << absent << ", killed inside the write (temporary left) " << killed_in_write
            << ", finished before the kill " << finished << "\n";
  if (trials >= 8) {
    EXPECT_GT(killed_in_write, 0) << "no kill landed inside a save: the test proved nothing";
    EXPECT_GT(old_kept, 0);
  }
  EXPECT_EQ(old_kept + new_written + absent, trials);
}

TEST(Sigkill, AStaleTemporaryDoesNotStopTheNextSave) {
  Rig& s = Rig::get();
  const fs::path dir = s.trial_dir("stale");
  write_bytes(dir / kModel, s.old_model);
  write_bytes(dir / (std::string(kModel) + ".tmp.AbC123"), Bytes(1000, 7));
  const Ended e = s.run(s.train_args((dir / kModel).string()));
  ASSERT_TRUE(e.exited && e.exit_code == 0) << e.describe();
  EXPECT_EQ(read_bytes(dir / kModel), s.new_model);
}

struct IoFault {
  const char* call;  // as the shim names it
  const char* errno_name;
  int nth;
  const char* says;   // the call as the error message names it
  bool after_rename;  // the new file is already in place when this call fails
};

void PrintTo(const IoFault& f, std::ostream* os) {
  *os << f.call << ":" << f.errno_name << ":" << f.nth;
}

class IoErrors : public testing::TestWithParam<IoFault> {};

TEST_P(IoErrors, NameTheCallKeepTheOldFileAndLeaveNoTemporary) {
  const IoFault& f = GetParam();
  Rig& s = Rig::get();
  const fs::path dir =
      s.trial_dir(std::string(f.call) + "_" + f.errno_name + "_" + std::to_string(f.nth));
  write_bytes(dir / kModel, s.old_model);
  // Slow writes make the 1 MB file take 17 write calls, so the N-th can fail mid-file.
  const Ended e = s.run(
      s.train_args((dir / kModel).string()),
      {"LD_PRELOAD=" + std::string(BACKPROP_FAULT_SHIM), "BACKPROP_FAULT_SLOW_WRITE=1",
       "BACKPROP_FAULT=" + std::string(f.call) + ":" + f.errno_name + ":" + std::to_string(f.nth)});
  SCOPED_TRACE(e.describe());
  ASSERT_TRUE(e.exited);
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << "one line on stderr";
  EXPECT_EQ(e.err.rfind("backprop train: error: ", 0), 0u);
  const int err = std::string(f.errno_name) == "ENOSPC" ? ENOSPC : EIO;
  // "PATH: CALL failed: STRERROR (errno N)"; the folder's fsync names the folder too.
  const std::string call = std::string(f.says) == "fsync of directory"
                               ? "fsync of directory " + dir.string() + " failed: "
                               : std::string(f.says) + " failed: ";
  for (const std::string& part : {call, std::string(std::strerror(err)),
                                  "(errno " + std::to_string(err) + ")", (dir / kModel).string()}) {
    EXPECT_NE(e.err.find(part), std::string::npos) << "stderr lacks: " << part;
  }
  EXPECT_EQ(entries(dir), std::vector<std::string>{kModel}) << "a temporary was left";
  EXPECT_EQ(read_bytes(dir / kModel), f.after_rename ? s.new_model : s.old_model);
}

INSTANTIATE_TEST_SUITE_P(
    SavePath, IoErrors,
    testing::Values(
        IoFault{"write", "ENOSPC", 1, "write", false}, IoFault{"write", "EIO", 1, "write", false},
        IoFault{"write", "ENOSPC", 9, "write", false}, IoFault{"write", "EIO", 17, "write", false},
        IoFault{"fsync", "EIO", 1, "fsync", false}, IoFault{"fsync", "ENOSPC", 1, "fsync", false},
        IoFault{"close", "EIO", 1, "close", false}, IoFault{"rename", "EIO", 1, "rename", false},
        IoFault{"rename", "ENOSPC", 1, "rename", false},
        IoFault{"fsync_dir", "EIO", 1, "fsync of directory", true}),
    [](const testing::TestParamInfo<IoFault>& p) {
      return std::string(p.param.call) + "_" + p.param.errno_name + "_" +
             std::to_string(p.param.nth);
    });

// Waits (up to 60 s) until `ready` holds or the child has ended; false if it never held.
template <class F>
bool wait_until(Child& c, F&& ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!c.done() && std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return ready();
}

TEST(Signals, SigintAndSigtermDuringTrainingExit130Or143AndLeaveTheOldModel) {
  // B.3.9 without --checkpoint-dir: the signal stops training after the current batch, nothing is
  // saved (the old model stays as it was, no temporary), exit 128 + the signal.
  Rig& s = Rig::get();
  const int trials = trials_from_env("BACKPROP_SIGNAL_TRIALS", 4);
  std::mt19937 rng(7);
  for (int t = 0; t < trials; ++t) {
    const int sig = t % 2 == 0 ? SIGINT : SIGTERM;
    SCOPED_TRACE("trial " + std::to_string(t) + ", signal " + std::to_string(sig));
    const fs::path dir = s.trial_dir("sig" + std::to_string(t));
    write_bytes(dir / kModel, s.old_model);
    std::vector<std::string> args = s.train_args((dir / kModel).string(), "1", "100000");
    args.erase(std::find(args.begin(), args.end(), "--quiet"));  // epoch rows show it started
    Child c(BACKPROP_CLI, args, {}, s.captures());
    // Once the first epoch's row is out, the handlers are in place.
    ASSERT_TRUE(wait_until(c, [&] {
      return c.out_so_far().find("\n    1  ") != std::string::npos;
    })) << "no epoch finished";
    std::uniform_int_distribution<int> ms(0, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
    c.signal(sig);
    const Ended e = c.wait(std::chrono::seconds(20));
    ASSERT_FALSE(e.timed_out) << "still running 20 s after the signal";
    ASSERT_TRUE(e.exited) << e.describe();
    EXPECT_EQ(e.exit_code, 128 + sig) << e.describe();
    EXPECT_NE(e.err.find(sig == SIGINT ? "by SIGINT" : "by SIGTERM"), std::string::npos) << e.err;
    EXPECT_NE(e.err.find("no checkpoint (no --checkpoint-dir)"), std::string::npos) << e.err;
    EXPECT_EQ(entries(dir), std::vector<std::string>{kModel});
    EXPECT_EQ(read_bytes(dir / kModel), s.old_model);
  }
}

TEST(Sigpipe, TrainIntoHeadOneExitsNormallyAndSaves) {
  // 3000 epoch lines (over 64 KiB, a pipe's buffer) after head has gone: writes meet EPIPE.
  Rig& s = Rig::get();
  const fs::path dir = s.trial_dir("sigpipe");
  std::string command = "'" + std::string(BACKPROP_CLI) + "' train --train '" + s.data() +
                        "' --hidden 8 --epochs 3000 --threads 1 --save '" +
                        (dir / kModel).string() + "' | head -1; exit ${PIPESTATUS[0]}";
  Child c("/bin/bash", {"-c", command}, {}, s.captures());
  const Ended e = c.wait();
  ASSERT_TRUE(e.exited) << "killed by signal " << e.term_signal;
  EXPECT_EQ(e.exit_code, 0) << e.describe();
  EXPECT_EQ(std::count(e.out.begin(), e.out.end(), '\n'), 1) << e.out;
  load_model((dir / kModel).string());
}

TEST(ShortReads, AFileThatShrinksWhileReadIsAnErrorAndSlowReadsChangeNothing) {
  Rig& s = Rig::get();
  const std::string shim = "LD_PRELOAD=" + std::string(BACKPROP_FAULT_SHIM);
  // Reads of at most 7 bytes, every 5th interrupted (EINTR): the same model, byte for byte.
  {
    const fs::path dir = s.trial_dir("short_reads");
    const Ended e =
        s.run(s.train_args((dir / kModel).string()), {shim, "BACKPROP_FAULT_READ=short"});
    ASSERT_TRUE(e.exited && e.exit_code == 0) << e.describe();
    EXPECT_EQ(read_bytes(dir / kModel), s.new_model);
    const Ended info =
        s.run({"info", "--model", (dir / kModel).string()}, {shim, "BACKPROP_FAULT_READ=short"});
    EXPECT_TRUE(info.exited && info.exit_code == 0) << info.describe();
  }
  // End of file after 50 bytes of a larger file.
  {
    const fs::path dir = s.trial_dir("shrink");
    const Ended e =
        s.run(s.train_args((dir / kModel).string()), {shim, "BACKPROP_FAULT_READ=shrink:50"});
    ASSERT_TRUE(e.exited) << e.describe();
    EXPECT_EQ(e.exit_code, 1) << e.describe();
    EXPECT_NE(e.err.find("blobs.csv: file shrank while being read"), std::string::npos) << e.err;
    EXPECT_TRUE(entries(dir).empty());
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (--checkpoint-dir): SIGKILL during writes (B.3.1), ENOSPC/EIO inside the writer
// (B.3.2), SIGINT/SIGTERM during training and during a write (B.3.9). The checkpoints of the
// 1 MB model above are 1 MB each, written after every epoch.

bool is_checkpoint_name(const std::string& n) {
  return n.rfind("checkpoint-", 0) == 0 && n.size() > 12 &&
         n.compare(n.size() - 12, 12, ".safetensors") == 0 && n.find(".tmp.") == std::string::npos;
}

bool is_checkpoint_temporary(const std::string& n) {
  return n.rfind("checkpoint-", 0) == 0 && n.find(".safetensors.tmp.") != std::string::npos;
}

std::vector<std::string> checkpoint_args(const fs::path& dir, const std::string& epochs) {
  const Rig& s = Rig::get();
  return {"train",    "--train",   s.data(),           "--hidden",  "512,512",
          "--epochs", epochs,      "--seed",           "1",         "--threads",
          "1",        "--quiet",   "--keep",           "3",         "--checkpoint-every",
          "1",        "--no-save", "--checkpoint-dir", dir.string()};
}

// What a folder of checkpoints holds: every final-named file must read back cleanly (format,
// checksum, model, state), anything else must be a temporary of one.
struct CheckpointFolder {
  int valid = 0, temporaries = 0;
  int newest_epoch = -1;
  std::string newest, problem;
};

CheckpointFolder inspect_checkpoints(const fs::path& dir) {
  CheckpointFolder f;
  for (const std::string& name : entries(dir)) {
    if (is_checkpoint_temporary(name)) {
      ++f.temporaries;
    } else if (is_checkpoint_name(name)) {
      try {
        const Checkpoint c = read_checkpoint((dir / name).string());
        ++f.valid;
        if (name > f.newest) {
          f.newest = name;
          f.newest_epoch = c.state.epoch;
        }
      } catch (const Error& e) {
        f.problem += "a final-named checkpoint does not read back: " + std::string(e.what()) + "; ";
      }
    } else {
      f.problem += "stray entry '" + name + "'; ";
    }
  }
  return f;
}

TEST(Sigkill, DuringCheckpointWritesEveryFinalNamedCheckpointIsComplete) {
  Rig& s = Rig::get();
  const int trials = trials_from_env("BACKPROP_FAULT_TRIALS", 10);
  const std::vector<std::string> slow = {"LD_PRELOAD=" + std::string(BACKPROP_FAULT_SHIM),
                                         "BACKPROP_FAULT_SLOW_WRITE=2000"};
  const std::string epochs = "6";
  double whole = 0;
  {
    const fs::path dir = s.trial_dir("ckpt_timing");
    Child c(BACKPROP_CLI, checkpoint_args(dir, epochs), slow, s.captures());
    const Ended e = c.wait();
    whole = c.seconds();
    ASSERT_TRUE(e.exited && e.exit_code == 0) << e.describe();
    const CheckpointFolder f = inspect_checkpoints(dir);
    ASSERT_EQ(f.problem, "");
    ASSERT_EQ(f.valid, 3);  // --keep 3
    ASSERT_EQ(f.newest_epoch, 6);
  }

  std::mt19937 rng(20261205);
  int in_write = 0, none_yet = 0, finished = 0, valid_total = 0;
  for (int t = 0; t < trials; ++t) {
    SCOPED_TRACE("trial " + std::to_string(t));
    const fs::path dir = s.trial_dir("ckpt_kill" + std::to_string(t));
    Child c(BACKPROP_CLI, checkpoint_args(dir, epochs), slow, s.captures());
    if (t % 2 == 0) {
      std::uniform_real_distribution<double> when(0.0, 1.05 * whole);
      std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
    } else {
      // Inside a write: after a random share of the run, as soon as a temporary exists, then up
      // to 30 ms more (a write takes about 35 ms).
      std::uniform_real_distribution<double> after(0.0, 0.7 * whole);
      std::this_thread::sleep_for(std::chrono::duration<double>(after(rng)));
      wait_until(c, [&] {
        for (const std::string& n : entries(dir)) {
          if (is_checkpoint_temporary(n)) return true;
        }
        return false;
      });
      std::uniform_int_distribution<int> ms(0, 30);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
    }
    c.signal(SIGKILL);
    const Ended e = c.wait();
    ASSERT_FALSE(e.timed_out);
    if (e.exited) {
      EXPECT_EQ(e.exit_code, 0) << e.describe();
      ++finished;
    }
    const CheckpointFolder f = inspect_checkpoints(dir);
    EXPECT_EQ(f.problem, "");
    EXPECT_LE(f.valid, 4) << "more than --keep 3 (+1 between a rename and the pruning)";
    in_write += f.temporaries > 0;
    valid_total += f.valid;
    // What --resume reads: the newest complete checkpoint, temporaries never considered.
    if (f.valid > 0) {
      const Checkpoint c2 = find_checkpoint(dir.string(), {}, nullptr);
      EXPECT_EQ(c2.path, (dir / f.newest).string());
      EXPECT_EQ(c2.state.epoch, f.newest_epoch);
      EXPECT_EQ(list_checkpoints(dir.string()).size(), static_cast<std::size_t>(f.valid));
    } else {
      ++none_yet;
      try {
        find_checkpoint(dir.string(), {}, nullptr);
        ADD_FAILURE() << "find_checkpoint found a checkpoint in a folder without one";
      } catch (const Error& err) {
        EXPECT_NE(std::string(err.what()).find("no valid checkpoint"), std::string::npos);
      }
    }
  }
  std::cout << "SIGKILL during checkpoint writes: " << trials << " trials (whole run " << whole
            << " s), killed inside a write (temporary left) " << in_write
            << ", before the first checkpoint " << none_yet << ", finished before the kill "
            << finished << "; " << valid_total
            << " final-named checkpoints, every one complete and valid\n";
  if (trials >= 8) {
    EXPECT_GT(in_write, 0) << "no kill landed inside a checkpoint write: the test proved nothing";
  }
}

struct CheckpointFault {
  const char* call;
  const char* errno_name;
  int nth;            // 0 for write: the first write of the second checkpoint; -1: its middle
  bool after_rename;  // the second checkpoint is already in place when this call fails
};

void PrintTo(const CheckpointFault& f, std::ostream* os) {
  *os << f.call << ":" << f.errno_name << ":" << f.nth;
}

class CheckpointIoErrors : public testing::TestWithParam<CheckpointFault> {};

TEST_P(CheckpointIoErrors, NameTheCallKeepThePreviousCheckpointAndLeaveNoTemporary) {
  const CheckpointFault& f = GetParam();
  Rig& s = Rig::get();
  // How many 64 KiB writes the first checkpoint takes, from a clean one-epoch run.
  static const int writes_per_checkpoint = [&] {
    const fs::path dir = s.trial_dir("ckpt_size");
    const Ended e = s.run(checkpoint_args(dir, "1"));
    if (!e.exited || e.exit_code != 0) throw std::runtime_error("ckpt_size: " + e.describe());
    const std::vector<std::string> files = entries(dir);
    if (files.size() != 1) throw std::runtime_error("ckpt_size: not one checkpoint");
    const auto size = static_cast<int>(fs::file_size(dir / files[0]));
    return (size + 65535) / 65536;
  }();
  const int nth = f.nth == 0    ? writes_per_checkpoint + 1
                  : f.nth == -1 ? writes_per_checkpoint + writes_per_checkpoint / 2
                                : f.nth;
  const std::string name = std::string(f.call) + "_" + f.errno_name + "_" + std::to_string(nth);
  const fs::path dir = s.trial_dir("ckpt_" + name);
  const Ended e = s.run(
      checkpoint_args(dir, "3"),
      {"LD_PRELOAD=" + std::string(BACKPROP_FAULT_SHIM), "BACKPROP_FAULT_SLOW_WRITE=1",
       "BACKPROP_FAULT=" + std::string(f.call) + ":" + f.errno_name + ":" + std::to_string(nth)});
  SCOPED_TRACE(e.describe());
  ASSERT_TRUE(e.exited);
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << "one line on stderr";
  EXPECT_EQ(e.err.rfind("backprop train: error: ", 0), 0u);
  const int err = std::string(f.errno_name) == "ENOSPC" ? ENOSPC : EIO;
  const std::string call = std::string(f.call) == "fsync_dir"
                               ? "fsync of directory " + dir.string() + " failed: "
                               : std::string(f.call) + " failed: ";
  for (const std::string& part :
       {(dir / "checkpoint-000002-").string(), call, std::string(std::strerror(err)),
        "(errno " + std::to_string(err) + ")"}) {
    EXPECT_NE(e.err.find(part), std::string::npos) << "stderr lacks: " << part;
  }
  const CheckpointFolder folder = inspect_checkpoints(dir);
  EXPECT_EQ(folder.problem, "");
  EXPECT_EQ(folder.temporaries, 0) << "a temporary was left";
  EXPECT_EQ(folder.valid, f.after_rename ? 2 : 1);
  EXPECT_EQ(folder.newest_epoch, f.after_rename ? 2 : 1) << "the previous checkpoint is gone";
  EXPECT_EQ(find_checkpoint(dir.string(), {}, nullptr).state.epoch, f.after_rename ? 2 : 1);
}

INSTANTIATE_TEST_SUITE_P(Writer, CheckpointIoErrors,
                         testing::Values(CheckpointFault{"write", "ENOSPC", 0, false},
                                         CheckpointFault{"write", "EIO", -1, false},
                                         CheckpointFault{"fsync", "EIO", 2, false},
                                         CheckpointFault{"fsync", "ENOSPC", 2, false},
                                         CheckpointFault{"close", "EIO", 2, false},
                                         CheckpointFault{"rename", "ENOSPC", 2, false},
                                         CheckpointFault{"fsync_dir", "EIO", 2, true}),
                         [](const testing::TestParamInfo<CheckpointFault>& p) {
                           return std::string(p.param.call) + "_" + p.param.errno_name + "_" +
                                  (p.param.nth == 0    ? "first"
                                   : p.param.nth == -1 ? "middle"
                                                       : "second");
                         });

TEST(Signals, SigintAndSigtermLeaveAValidLastCheckpointAndExit130Or143) {
  // B.3.9 with --checkpoint-dir: half the signals arrive while a checkpoint is being written
  // (slowed by the shim). The handler only raises a flag: the write in progress completes, the
  // loop stops after the current batch, writes a last checkpoint and exits 128 + the signal.
  Rig& s = Rig::get();
  const int trials = trials_from_env("BACKPROP_SIGNAL_TRIALS", 4);
  const std::vector<std::string> slow = {"LD_PRELOAD=" + std::string(BACKPROP_FAULT_SHIM),
                                         "BACKPROP_FAULT_SLOW_WRITE=2000"};
  std::mt19937 rng(11);
  int during_write = 0;
  for (int t = 0; t < trials; ++t) {
    const int sig = (t / 2) % 2 == 0 ? SIGINT : SIGTERM;
    const bool in_write = t % 2 == 1;
    SCOPED_TRACE("trial " + std::to_string(t) + ", signal " + std::to_string(sig) +
                 (in_write ? ", during a checkpoint write" : ""));
    const fs::path dir = s.trial_dir("ckpt_sig" + std::to_string(t));
    Child c(BACKPROP_CLI, checkpoint_args(dir, "100000"), slow, s.captures());
    auto has = [&](bool temporary) {
      for (const std::string& n : entries(dir)) {
        if (temporary ? is_checkpoint_temporary(n) : is_checkpoint_name(n)) return true;
      }
      return false;
    };
    // A committed checkpoint: training is under way and the handlers are in place.
    ASSERT_TRUE(wait_until(c, [&] { return has(false); })) << "no checkpoint was written";
    if (in_write) {
      ASSERT_TRUE(wait_until(c, [&] { return has(true); })) << "no checkpoint write seen";
      std::uniform_int_distribution<int> ms(0, 20);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
      during_write += has(true);
    } else {
      std::uniform_int_distribution<int> ms(0, 150);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
    }
    c.signal(sig);
    const Ended e = c.wait(std::chrono::seconds(30));
    ASSERT_FALSE(e.timed_out) << "still running 30 s after the signal";
    ASSERT_TRUE(e.exited) << e.describe();
    EXPECT_EQ(e.exit_code, 128 + sig) << e.describe();
    const CheckpointFolder f = inspect_checkpoints(dir);
    EXPECT_EQ(f.problem, "");
    EXPECT_EQ(f.temporaries, 0) << "a temporary was left";
    ASSERT_GE(f.valid, 1);
    // The message names the last checkpoint, the one --resume takes.
    EXPECT_NE(e.err.find(sig == SIGINT ? "by SIGINT" : "by SIGTERM"), std::string::npos) << e.err;
    EXPECT_NE(e.err.find("checkpoint " + (dir / f.newest).string()), std::string::npos) << e.err;
    EXPECT_NE(e.err.find("--resume " + dir.string()), std::string::npos) << e.err;
    EXPECT_EQ(find_checkpoint(dir.string(), {}, nullptr).path, (dir / f.newest).string());
  }
  std::cout << "SIGINT/SIGTERM with checkpoints: " << trials << " trials, " << during_write
            << " during a checkpoint write; every one exited 128 + signal with a valid last "
               "checkpoint and no temporary\n";
}

}  // namespace
}  // namespace backprop::reliability_test
