// Checkpoint and resume through the command line, as a user meets them: a run killed with SIGKILL
// at random moments (some of them inside a checkpoint write) and resumed with --resume ends with a
// model file bitwise identical to the uninterrupted run's; a resume with other flags or other data
// is refused with the differences named; a corrupt newest checkpoint is reported and the previous
// one used; --init-from starts from a model file; the new flags refuse bad values with exit 2;
// the --log lines carry the schedule's rates and the per-layer health figures.
// (SIGINT/SIGTERM and faults inside the writer are tests/reliability's.)
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.hpp"
#include "reliability/child.hpp"

namespace backprop {
namespace {

namespace fs = std::filesystem;
using cli_test::read_text;
using cli_test::run_process;
using cli_test::RunResult;
using cli_test::write_text;
using reliability_test::Child;
using reliability_test::Ended;
using test::Bytes;
using test::read_bytes;
using test::TempDir;

class Resume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    fs::create_directories(root_->path() / "captures");
    write_text(root_->path() / "data.csv", cli_test::spirals_csv(5, 3000, 6));
    write_text(root_->path() / "other.csv", cli_test::spirals_csv(6, 3000, 6));
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }

  static std::string data() { return *root_ / "data.csv"; }
  static fs::path captures() { return root_->path() / "captures"; }

  // A fresh folder for one trial.
  static fs::path dir(const std::string& name) {
    const fs::path d = root_->path() / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }

  // Every flag that decides the weights, with checkpoints at each epoch's end and, through the
  // tiny --checkpoint-minutes, after nearly every batch as well.
  static std::vector<std::string> train_args(const fs::path& d,
                                             const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {"train",   "--train",
                                  data(),    "--hidden",
                                  "96,96",   "--activation",
                                  "relu",    "--optimizer",
                                  "adam",    "--lr",
                                  "0.003",   "--dropout",
                                  "0.2,0.1", "--clip-norm",
                                  "5",       "--label-smoothing",
                                  "0.05",    "--schedule",
                                  "cosine",  "--warmup",
                                  "1",       "--val-split",
                                  "0.2",     "--epochs",
                                  "5",       "--batch-size",
                                  "16",      "--seed",
                                  "11",      "--threads",
                                  "2",       "--checkpoint-minutes",
                                  "0.00005", "--keep",
                                  "2",       "--quiet",
                                  "--save",  (d / "model.safetensors").string()};
    // Each extra flag replaces the same flag above, or is added (CLI11 refuses a flag given twice).
    for (std::size_t i = 0; i < extra.size(); ++i) {
      const bool has_value = i + 1 < extra.size() && extra[i + 1].rfind("--", 0) != 0;
      auto at = std::find(a.begin(), a.end(), extra[i]);
      if (at == a.end()) {
        a.push_back(extra[i]);
        if (has_value) a.push_back(extra[i + 1]);
      } else if (has_value) {
        *(at + 1) = extra[i + 1];
      }
      if (has_value) ++i;
    }
    return a;
  }

  static RunResult cli(const std::vector<std::string>& args) {
    return run_process(BACKPROP_CLI, args, captures());
  }

  static TempDir* root_;
};
TempDir* Resume::root_ = nullptr;

bool has_checkpoint(const fs::path& d) {
  if (!fs::exists(d)) return false;
  for (const auto& e : fs::directory_iterator(d)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) == 0 && n.find(".tmp.") == std::string::npos) return true;
  }
  return false;
}

// The temporary files of unfinished checkpoint writes in `d` (a kill inside a write leaves one).
std::vector<std::string> temporaries(const fs::path& d) {
  std::vector<std::string> names;
  if (!fs::exists(d)) return names;
  for (const auto& e : fs::directory_iterator(d)) {
    const std::string n = e.path().filename().string();
    if (n.find(".tmp.") != std::string::npos) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_F(Resume, SigkillAtRandomMomentsThenResumeGivesTheUninterruptedModel) {
  // The uninterrupted run, with the same checkpointing (which must not change the result either).
  const fs::path ref_dir = dir("reference");
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult ref = cli(train_args(ref_dir, {"--checkpoint-dir", (ref_dir / "ckpt").string()}));
  const double whole = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(ref.exited && ref.exit_code == 0) << ref.describe();
  const Bytes expected = read_bytes(ref_dir / "model.safetensors");
  {  // and without checkpoints at all
    const fs::path plain = dir("plain");
    const RunResult r = cli(train_args(plain, {"--checkpoint-minutes", "0"}));
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    ASSERT_EQ(read_bytes(plain / "model.safetensors"), expected)
        << "checkpointing changed the trained model";
  }

  std::mt19937 rng(20261128);
  const int trials = 24;
  int kills = 0, kills_in_write = 0, resumes = 0, before_first_checkpoint = 0;
  for (int t = 0; t < trials; ++t) {
    SCOPED_TRACE("trial " + std::to_string(t));
    const fs::path d = dir("trial" + std::to_string(t));
    const fs::path ckpt = d / "ckpt";
    // Up to three kills per trial: the first run, then the resumed ones.
    const int kills_here = 1 + t % 3;
    bool finished = false;
    for (int attempt = 0; !finished && attempt < 8; ++attempt) {
      std::vector<std::string> args = train_args(d);
      const bool resume = has_checkpoint(ckpt);
      if (resume) {
        args.insert(args.end(), {"--resume", ckpt.string()});
        ++resumes;
      } else {
        if (attempt > 0) ++before_first_checkpoint;
        args.insert(args.end(), {"--checkpoint-dir", ckpt.string()});
      }
      std::vector<std::string> stale = temporaries(ckpt);  // left by earlier kills
      const auto writing = [&] { return temporaries(ckpt) != stale; };
      Child c(BACKPROP_CLI, args, {}, captures());
      if (attempt < kills_here) {
        std::uniform_real_distribution<double> when(0.0, t % 2 == 1 ? 0.5 * whole : whole);
        std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
        if (t % 2 == 1) {
          // Then inside the next write: as soon as a new temporary checkpoint appears.
          stale = temporaries(ckpt);
          const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
          while (!writing() && !c.done() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        const bool in_write = writing();
        c.signal(SIGKILL);
        const Ended e = c.wait();
        ASSERT_FALSE(e.timed_out);
        if (e.exited) {  // it finished before the kill
          ASSERT_EQ(e.exit_code, 0) << e.describe();
          finished = true;
        } else {
          ASSERT_EQ(e.term_signal, SIGKILL) << e.describe();
          ++kills;
          kills_in_write += in_write;
        }
      } else {
        const Ended e = c.wait();
        ASSERT_TRUE(e.exited && e.exit_code == 0) << e.describe();
        finished = true;
      }
    }
    ASSERT_TRUE(finished);
    EXPECT_EQ(read_bytes(d / "model.safetensors"), expected)
        << "the resumed run's model differs from the uninterrupted run's";
  }
  std::cout << "SIGKILL + --resume: " << trials << " trials, " << kills << " kills ("
            << kills_in_write << " with a checkpoint write in progress, " << before_first_checkpoint
            << " before the first checkpoint), " << resumes
            << " resumes, every final model identical to the uninterrupted run (" << whole
            << " s per run)\n";
  EXPECT_GE(kills, 20);
  EXPECT_GE(resumes, 20);
  EXPECT_GT(kills_in_write, 0) << "no kill landed inside a checkpoint write";
}

TEST_F(Resume, RefusesAnotherConfigurationNamingTheDifferences) {
  const fs::path d = dir("config");
  const RunResult first = cli(train_args(d, {"--checkpoint-dir", (d / "ckpt").string()}));
  ASSERT_TRUE(first.exited && first.exit_code == 0) << first.describe();
  const RunResult r =
      cli(train_args(d, {"--resume", (d / "ckpt").string(), "--lr", "0.01", "--dropout", "0.3",
                         "--save", (d / "other.safetensors").string()}));
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("another configuration"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("optimizer.lr: 0.003 in the checkpoint, 0.01 here"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("training.dropout"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(d / "other.safetensors"));

  // The thread count, the log and the output path change nothing in the weights: accepted.
  const RunResult ok = cli(train_args(d, {"--resume", (d / "ckpt").string(), "--threads", "1",
                                          "--save", (d / "again.safetensors").string()}));
  EXPECT_TRUE(ok.exited && ok.exit_code == 0) << ok.describe();
  EXPECT_EQ(read_bytes(d / "again.safetensors"), read_bytes(d / "model.safetensors"));
}

TEST_F(Resume, RefusesOtherData) {
  const fs::path d = dir("data");
  const RunResult first = cli(train_args(d, {"--checkpoint-dir", (d / "ckpt").string()}));
  ASSERT_TRUE(first.exited && first.exit_code == 0) << first.describe();
  std::vector<std::string> args = train_args(d, {"--resume", (d / "ckpt").string()});
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--train") args[i + 1] = *root_ / "other.csv";
  const Bytes before = read_bytes(d / "model.safetensors");
  const RunResult r = cli(args);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("was trained on other data"), std::string::npos) << r.err;
  EXPECT_EQ(read_bytes(d / "model.safetensors"), before);
}

TEST_F(Resume, ACorruptNewestCheckpointIsReportedAndThePreviousOneUsed) {
  const fs::path d = dir("corrupt");
  const fs::path ckpt = d / "ckpt";
  // Checkpoints at epoch ends only, all kept: the newest is the final epoch's.
  std::vector<std::string> a = train_args(
      d, {"--checkpoint-dir", ckpt.string(), "--checkpoint-minutes", "0", "--keep", "10"});
  const RunResult first = cli(a);
  ASSERT_TRUE(first.exited && first.exit_code == 0) << first.describe();
  const Bytes expected = read_bytes(d / "model.safetensors");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(ckpt)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names.size(), 5u);
  // Flip one byte in the middle of the newest and drop the last epoch's too, truncated.
  Bytes newest = read_bytes(ckpt / names[4]);
  newest[newest.size() / 2] ^= 0x40;
  test::write_bytes(ckpt / names[4], newest);
  Bytes previous = read_bytes(ckpt / names[3]);
  previous.resize(previous.size() - 100);
  test::write_bytes(ckpt / names[3], previous);

  const RunResult r =
      cli(train_args(d, {"--resume", ckpt.string(), "--checkpoint-minutes", "0", "--keep", "10",
                         "--save", (d / "resumed.safetensors").string()}));
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  EXPECT_NE(r.err.find(names[4]), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(names[3]), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("falling back to an older checkpoint"), std::string::npos) << r.err;
  // Resumed from epoch 3's end, it retrains epochs 4 and 5 to the same model.
  EXPECT_EQ(read_bytes(d / "resumed.safetensors"), expected);

  // With every checkpoint broken there is nothing to resume: one clear error.
  for (std::size_t i = 0; i < 3; ++i) test::write_bytes(ckpt / names[i], Bytes(10, 0));
  fs::remove(ckpt / names[3]);
  for (const auto& e : fs::directory_iterator(ckpt)) {
    if (e.path().filename().string().rfind("checkpoint-", 0) == 0 &&
        read_bytes(e.path()).size() > 10)
      test::write_bytes(e.path(), Bytes(10, 0));
  }
  const RunResult none =
      cli(train_args(d, {"--resume", ckpt.string(), "--save", (d / "none.safetensors").string()}));
  EXPECT_EQ(none.exit_code, 1) << none.describe();
  EXPECT_NE(none.err.find("no valid checkpoint"), std::string::npos) << none.err;
  EXPECT_FALSE(fs::exists(d / "none.safetensors"));
}

TEST_F(Resume, InitFromStartsFromTheModelFile) {
  const fs::path d = dir("init");
  const RunResult first = cli(train_args(d, {"--epochs", "3"}));
  ASSERT_TRUE(first.exited && first.exit_code == 0) << first.describe();
  const std::string start = (d / "model.safetensors").string();

  // Zero epochs is not allowed; one epoch at a tiny rate must keep the start's accuracy.
  const auto accuracy_of = [&](const std::string& model) {
    const RunResult e = cli({"eval", "--model", model, "--test", data()});
    EXPECT_TRUE(e.exited && e.exit_code == 0) << e.describe();
    const std::size_t at = e.out.find("accuracy");
    EXPECT_NE(at, std::string::npos) << e.out;
    return at == std::string::npos ? -1.0
                                   : std::stod(e.out.substr(e.out.find_first_of("0123456789", at)));
  };
  const double start_acc = accuracy_of(start);
  EXPECT_GT(start_acc, 60.0);

  const RunResult r =
      cli({"train", "--train", data(), "--init-from", start, "--optimizer", "sgd", "--lr", "1e-9",
           "--epochs", "1", "--quiet", "--save", (d / "continued.safetensors").string()});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  EXPECT_NEAR(accuracy_of((d / "continued.safetensors").string()), start_acc, 0.1);

  // A fresh start with the same flags is far worse after one epoch at that rate.
  const RunResult fresh = cli({"train", "--train", data(), "--hidden", "96,96", "--activation",
                               "relu", "--optimizer", "sgd", "--lr", "1e-9", "--epochs", "1",
                               "--quiet", "--save", (d / "fresh.safetensors").string()});
  ASSERT_TRUE(fresh.exited && fresh.exit_code == 0) << fresh.describe();
  EXPECT_LT(accuracy_of((d / "fresh.safetensors").string()), start_acc - 10.0);

  // The architecture comes from the file: --hidden beside it is refused.
  const RunResult clash = cli({"train", "--train", data(), "--init-from", start, "--hidden", "8",
                               "--save", (d / "clash.safetensors").string()});
  EXPECT_EQ(clash.exit_code, 2) << clash.describe();
  EXPECT_NE(clash.err.find("--init-from"), std::string::npos) << clash.err;
  EXPECT_FALSE(fs::exists(d / "clash.safetensors"));

  // A model whose inputs do not match the data is refused, naming both.
  const fs::path narrow = dir("narrow");
  write_text(narrow / "narrow.csv", "a,b,label\n0.1,0.2,0\n0.3,0.1,1\n0.5,0.9,2\n0.2,0.2,1\n");
  const RunResult wrong = cli({"train", "--train", (narrow / "narrow.csv").string(), "--init-from",
                               start, "--save", (narrow / "m.safetensors").string()});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.describe();
  EXPECT_NE(wrong.err.find(start), std::string::npos) << wrong.err;
  EXPECT_FALSE(fs::exists(narrow / "m.safetensors"));
}

TEST_F(Resume, TheLogHasTheRateAndTheHealthOfEveryLayerEachEpoch) {
  const fs::path d = dir("log");
  const RunResult r = cli({"train",    "--train",
                           data(),     "--hidden",
                           "16,8",     "--activation",
                           "tanh",     "--optimizer",
                           "momentum", "--lr",
                           "0.08",     "--schedule",
                           "step",     "--lr-step",
                           "2",        "--lr-gamma",
                           "0.5",      "--warmup",
                           "1",        "--val-split",
                           "0.2",      "--epochs",
                           "5",        "--quiet",
                           "--log",    (d / "run.jsonl").string(),
                           "--save",   (d / "m.safetensors").string()});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  const std::string text = read_text(d / "run.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(nlohmann::json::parse(text.substr(at, nl - at)));
  ASSERT_EQ(lines.size(), 5u) << text;
  // One warm-up epoch at η/2, then η halved every 2 epochs.
  std::vector<double> rates;
  for (const auto& j : lines) rates.push_back(j.at("learning_rate").get<double>());
  EXPECT_EQ(rates, (std::vector<double>{0.04, 0.08, 0.08, 0.04, 0.04}));
  for (const auto& j : lines) {
    for (const char* key : {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                            "seconds", "samples_per_second", "grad_norm"})
      EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump();
    ASSERT_EQ(j.at("layers").size(), 3u) << j.dump();
    for (std::size_t l = 0; l < 3; ++l) {
      const auto& h = j.at("layers")[l];
      EXPECT_EQ(h.at("layer").get<int>(), static_cast<int>(l + 1));
      EXPECT_GT(h.at("weight_norm").get<double>(), 0.0);
      EXPECT_GE(h.at("grad_norm").get<double>(), 0.0);
      if (l < 2) {  // tanh hidden layers: a saturation fraction, no dead-unit figure
        const double s = h.at("saturated").get<double>();
        EXPECT_TRUE(s >= 0 && s <= 1) << s;
        EXPECT_FALSE(h.contains("dead"));
      } else {
        EXPECT_FALSE(h.contains("saturated"));
      }
    }
  }
}

// A batch larger than the training rows is one batch of every row each epoch (as PyTorch's
// DataLoader does), not an error (RELIABILITY.md A.73 asks for one; docs/reliability.md says why
// not): a run on 6 rows with --batch-size 16 takes one full-batch step per epoch, the same steps
// as --batch-size 6.
TEST_F(Resume, ABatchLargerThanTheRowsIsOneBatchOfEveryRow) {
  const fs::path d = dir("bigbatch");
  write_text(d / "six.csv",
             "a,b,label\n0.1,0.2,0\n0.3,0.1,1\n0.5,0.9,2\n0.2,0.2,1\n0.9,0.4,0\n0.6,0.6,2\n");
  std::vector<std::string> base = {
      "train", "--train", (d / "six.csv").string(), "--hidden", "4", "--epochs", "3", "--quiet"};
  std::vector<std::string> big = base, exact = base;
  big.insert(big.end(), {"--batch-size", "16", "--save", (d / "big.safetensors").string(), "--log",
                         (d / "big.jsonl").string()});
  exact.insert(exact.end(), {"--batch-size", "6", "--save", (d / "exact.safetensors").string()});
  const RunResult rb = cli(big), re = cli(exact);
  ASSERT_TRUE(rb.exited && rb.exit_code == 0) << rb.describe();
  ASSERT_TRUE(re.exited && re.exit_code == 0) << re.describe();
  EXPECT_EQ(read_bytes(d / "big.safetensors"), read_bytes(d / "exact.safetensors"));
  const std::string log = read_text(d / "big.jsonl");
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 3);
}

struct BadFlag {
  std::vector<std::string> args;
  const char* message_part;
};

TEST_F(Resume, BadValuesOfTheTrainingFlagsExitTwo) {
  const fs::path d = dir("flags");
  const std::string out = (d / "m.safetensors").string();
  const std::vector<BadFlag> cases = {
      {{"--optimizer", "lbfgs"}, "--optimizer"},
      {{"--schedule", "linear"}, "--schedule"},
      {{"--dropout", "1.5"}, "--dropout"},
      {{"--dropout", "0.1,0.2,0.3"}, "--dropout"},
      {{"--clip-norm", "-1"}, "--clip-norm"},
      {{"--label-smoothing", "1"}, "--label-smoothing"},
      {{"--warmup", "-2"}, "--warmup"},
      {{"--patience", "x"}, "--patience"},
      {{"--momentum", "1.5"}, "--momentum"},
      {{"--beta2", "1"}, "--beta2"},
      {{"--eps", "0"}, "--eps"},
      {{"--weight-decay", "-0.1"}, "--weight-decay"},
      {{"--lr", "nan"}, "--lr"},
      {{"--on-nonfinite", "ignore"}, "--on-nonfinite"},
      {{"--keep", "0"}, "--keep"},
      {{"--checkpoint-every", "-1"}, "--checkpoint-every"},
      {{"--checkpoint-minutes", "-5"}, "--checkpoint-minutes"},
      {{"--resume", (d / "missing").string()}, "missing"},
  };
  for (const BadFlag& c : cases) {
    SCOPED_TRACE(c.args[0] + " " + c.args[1]);
    std::vector<std::string> args = {"train",    "--train", data(),   "--hidden", "4",
                                     "--epochs", "1",       "--save", out};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const RunResult r = cli(args);
    EXPECT_TRUE(r.exited) << r.describe();
    if (c.args[0] == "--resume") {
      EXPECT_NE(r.exit_code, 0) << r.describe();
    } else {
      EXPECT_EQ(r.exit_code, 2) << r.describe();
    }
    EXPECT_NE(r.err.find(c.message_part), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

}  // namespace
}  // namespace backprop
