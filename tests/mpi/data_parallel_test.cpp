// Data-parallel training under mpirun on this machine (docs/distributed.md): N = 2, 3 and 4 ranks
// agree with one process, a fixed N is bitwise reproducible, ranks that disagree about the
// configuration or fail to load their data end the job quickly with their message, a killed rank
// ends the job, and a job restarted from its checkpoint with the same N finishes with the model of
// an uninterrupted run. With --shard-data (each rank holds its part of the rows) the same, and
// full-batch training agrees with one process's; more ranks than rows works in both modes.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_util.hpp"
#include "reliability/child.hpp"

namespace backprop {
namespace {

namespace fs = std::filesystem;
using cli_test::read_text;
using cli_test::write_text;
using reliability_test::Child;
using reliability_test::Ended;
using test::Bytes;
using test::read_bytes;
using test::TempDir;

#ifndef BACKPROP_MPIRUN
TEST(DataParallel, NeedsMpi) {
  FAIL() << "this build found no MPI: run scripts/setup (it installs Open MPI) and reconfigure";
}
#else

// Open MPI refuses root without the first two (CI runs as root); the asan preset's leak checker
// is told that Open MPI's own allocations are kept until exit on purpose.
// (Open MPI's plug-ins stay loaded and allocations get whole stacks, which the suppressions need:
// system libraries have no frame pointers for the fast unwinder.)
const std::vector<std::string> kEnv = {
    "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
    "OMPI_MCA_rmaps_base_oversubscribe=1", "OMPI_MCA_mca_base_component_disable_dlclose=1",
    "LSAN_OPTIONS=suppressions=" BACKPROP_SOURCE_DIR
    "/tests/mpi/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"};

class DataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    fs::create_directories(root_->path() / "captures");
    write_text(root_->path() / "data.csv", cli_test::spirals_csv(3, 1200, 2));
    write_text(root_->path() / "bad.csv", "x,y,n1,n2,label\n0.1,0.2,0.3,zero,1\n");
    write_text(root_->path() / "test.csv", cli_test::spirals_csv(4, 400, 2));
    write_text(root_->path() / "tiny.csv", "x,y,label\n0.5,-1,0\n-0.25,2,1\n");
  }
  static void TearDownTestSuite() {
    delete root_;
    root_ = nullptr;
  }
  static fs::path path(const std::string& name) { return root_->path() / name; }

  // 960 training rows in batches of 32: 30 steps an epoch, 120 in all. Dropout is on, so the
  // masks' independence from the split is tested too.
  static std::vector<std::string> train_args(const std::string& save,
                                             const std::vector<std::string>& extra = {},
                                             const std::string& epochs = "4") {
    std::vector<std::string> a = {"train",     "--train",   path("data.csv").string(),
                                  "--hidden",  "32,32",     "--activation",
                                  "relu",      "--dropout", "0.1",
                                  "--epochs",  epochs,      "--batch-size",
                                  "32",        "--seed",    "3",
                                  "--threads", "1",         "--val-split",
                                  "0.2",       "--quiet",   "--save",
                                  save};
    // Adam unless the test picks another optimizer.
    if (std::find(extra.begin(), extra.end(), "--optimizer") == extra.end())
      a.insert(a.end(), {"--optimizer", "adam"});
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // mpirun -np n (oversubscribed, unbound) running `command` (argv); or `command` alone for n = 0.
  static std::vector<std::string> under_mpirun(int n, const std::vector<std::string>& command) {
    std::vector<std::string> a = {"-np", std::to_string(n), "--bind-to", "none"};
    a.insert(a.end(), command.begin(), command.end());
    return a;
  }

  static Ended run(int n, const std::vector<std::string>& args,
                   std::chrono::seconds timeout = std::chrono::seconds(120)) {
    std::vector<std::string> command = {BACKPROP_CLI};
    command.insert(command.end(), args.begin(), args.end());
    if (n == 0) {
      Child c(BACKPROP_CLI, args, {}, path("captures"));
      return c.wait(timeout);
    }
    std::vector<std::string> a = under_mpirun(n, command);
    Child c(BACKPROP_MPIRUN, a, kEnv, path("captures"));
    return c.wait(timeout);
  }

  // Trains 12 epochs on 2 ranks with checkpoints, kills rank 1 once a checkpoint exists, and
  // restarts with --resume: the model must be the uninterrupted run's.
  static void kill_and_resume(const fs::path& d, const std::vector<std::string>& extra);

  static TempDir* root_;
};
TempDir* DataParallel::root_ = nullptr;

// The float tensors of a model file, by name (safetensors: u64 header length, JSON, data).
std::vector<std::pair<std::string, std::vector<float> > > tensors_of(const fs::path& file) {
  const Bytes b = read_bytes(file);
  std::uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  const auto header =
      nlohmann::json::parse(std::string(b.begin() + 8, b.begin() + 8 + static_cast<long>(n)));
  std::vector<std::pair<std::string, std::vector<float> > > out;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    const auto lo = t.at("data_offsets")[0].get<std::size_t>(),
               hi = t.at("data_offsets")[1].get<std::size_t>();
    std::vector<float> v((hi - lo) / 4);
    std::memcpy(v.data(), b.data() + 8 + n + lo, hi - lo);
    out.emplace_back(name, v);
  }
  return out;
}

// max over tensors of max|a − b| / max|a|.
double relative_difference(const fs::path& a, const fs::path& b) {
  const auto ta = tensors_of(a), tb = tensors_of(b);
  EXPECT_EQ(ta.size(), tb.size());
  double worst = 0;
  for (std::size_t i = 0; i < ta.size() && i < tb.size(); ++i) {
    double diff = 0, scale = 1e-30;
    for (std::size_t j = 0; j < ta[i].second.size(); ++j) {
      diff = std::max(diff, static_cast<double>(std::fabs(ta[i].second[j] - tb[i].second[j])));
      scale = std::max(scale, static_cast<double>(std::fabs(ta[i].second[j])));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

std::string accuracy_line(const std::string& out, const std::string& what = "validation accuracy") {
  const std::size_t at = out.find(what);
  return at == std::string::npos ? "" : out.substr(at, out.find('\n', at) - at);
}

// The percentage of "validation accuracy 91.25% (...)", or -1.
double accuracy_of(const std::string& out) {
  const std::string line = accuracy_line(out);
  return line.empty() ? -1 : std::stod(line.substr(std::string("validation accuracy ").size()));
}

// A string of the model file's metadata.
std::string metadata_of(const fs::path& file, const std::string& key) {
  const Bytes b = read_bytes(file);
  std::uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  const auto header =
      nlohmann::json::parse(std::string(b.begin() + 8, b.begin() + 8 + static_cast<long>(n)));
  return header.at("__metadata__").value(key, std::string());
}

TEST_F(DataParallel, TwoAndThreeRanksAgreeWithOneProcessAndEachIsReproducible) {
  // Each rank differentiates its rows' loss divided by the global batch size, so Δ[L] is the
  // single process's, row for row; only the order of the sums over rows differs. Adam at its
  // default ε = 1e-8 turns round-off-sized gradients (of nearly dead units) into full-sized steps
  // and so magnifies that difference (2.3e-5 for 3 ranks on an earlier data set); at ε = 1e-6 it
  // does not.
  for (const std::vector<std::string>& optimizer :
       {std::vector<std::string>{"--optimizer", "momentum", "--lr", "0.05"},
        std::vector<std::string>{"--optimizer", "adam", "--eps", "1e-6"}}) {
    SCOPED_TRACE(optimizer[1]);
    const std::string one = path("one-" + optimizer[1] + ".safetensors").string();
    const Ended e1 = run(0, train_args(one, optimizer));
    ASSERT_TRUE(e1.exited && e1.exit_code == 0) << e1.describe();
    for (int n : {2, 3, 4}) {
      SCOPED_TRACE(std::to_string(n) + " ranks");
      const std::string a = path(optimizer[1] + std::to_string(n) + "a.safetensors").string();
      const Ended ea = run(n, train_args(a, optimizer));
      ASSERT_TRUE(ea.exited && ea.exit_code == 0) << ea.describe();
      const double rel = relative_difference(one, a);
      std::cout << optimizer[1] << ", " << n
                << " ranks vs one process after 120 steps: max relative difference " << rel << "\n";
      EXPECT_LT(rel, 1e-5);
      // Only rank 0 prints: one summary, with the same validation accuracy to 0.01 point.
      EXPECT_NE(accuracy_line(ea.out), "");
      EXPECT_EQ(accuracy_line(ea.out), accuracy_line(e1.out)) << ea.out;
      EXPECT_EQ(ea.out.find("validation accuracy"), ea.out.rfind("validation accuracy")) << ea.out;
    }
  }
  // A fixed N is bitwise reproducible.
  for (int n : {2, 3}) {
    const std::string a = path("rep" + std::to_string(n) + "a.safetensors").string();
    const std::string b = path("rep" + std::to_string(n) + "b.safetensors").string();
    const Ended ea = run(n, train_args(a));
    ASSERT_TRUE(ea.exited && ea.exit_code == 0) << ea.describe();
    const Ended eb = run(n, train_args(b));
    ASSERT_TRUE(eb.exited && eb.exit_code == 0) << eb.describe();
    EXPECT_EQ(read_bytes(a), read_bytes(b)) << n << " ranks: not bitwise reproducible";
  }
}

TEST_F(DataParallel, ARankWithBadDataEndsTheJobWithItsMessage) {
  // Rank 2 of 3 is given another file, which does not parse.
  const std::string script =
      "if [ \"$OMPI_COMM_WORLD_RANK\" = 2 ]; then f=" + path("bad.csv").string() +
      "; else f=" + path("data.csv").string() + "; fi; exec '" + std::string(BACKPROP_CLI) +
      "' train --train \"$f\" --hidden 8 --epochs 50 --save " + path("never.safetensors").string();
  const auto t0 = std::chrono::steady_clock::now();
  Child c(BACKPROP_MPIRUN, under_mpirun(3, {"/bin/sh", "-c", script}), kEnv, path("captures"));
  const Ended e = c.wait(std::chrono::seconds(60));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(e.timed_out);
  EXPECT_FALSE(e.exited && e.exit_code == 0) << e.describe();
  EXPECT_LT(seconds, 10.0);
  EXPECT_NE(e.err.find("rank 2 of 3"), std::string::npos) << e.err;
  EXPECT_NE(e.err.find("bad.csv"), std::string::npos) << e.err;
  EXPECT_FALSE(fs::exists(path("never.safetensors")));
}

TEST_F(DataParallel, RanksWithAnotherConfigurationAreRefusedBeforeTraining) {
  const std::string script =
      "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then lr=0.2; else lr=0.1; fi; "
      "exec '" +
      std::string(BACKPROP_CLI) + "' train --train " + path("data.csv").string() +
      " --hidden 8 --lr $lr --save " + path("never2.safetensors").string();
  Child c(BACKPROP_MPIRUN, under_mpirun(2, {"/bin/sh", "-c", script}), kEnv, path("captures"));
  const Ended e = c.wait(std::chrono::seconds(60));
  EXPECT_TRUE(e.exited && e.exit_code == 2) << e.describe();
  EXPECT_NE(e.err.find("rank 1 of 2 has another configuration"), std::string::npos) << e.err;
  EXPECT_FALSE(fs::exists(path("never2.safetensors")));
}

TEST_F(DataParallel, ShardedFullBatchTrainingAgreesWithOneProcess) {
  // With the whole training set in one batch the order of the rows does not matter, so ranks
  // holding a part each (their own shuffles, shares of each batch, standardisation and test
  // figures summed over the ranks) must give one process's model up to the order of the sums.
  const auto args = [&](const std::string& save, bool shard) {
    std::vector<std::string> a = {"train",
                                  "--train",
                                  path("data.csv").string(),
                                  "--test",
                                  path("test.csv").string(),
                                  "--hidden",
                                  "16",
                                  "--activation",
                                  "tanh",
                                  "--optimizer",
                                  "momentum",
                                  "--lr",
                                  "0.2",
                                  "--epochs",
                                  "40",
                                  "--batch-size",
                                  "100000",
                                  "--threads",
                                  "1",
                                  "--save",
                                  save};
    if (shard) a.push_back("--shard-data");
    return a;
  };
  const std::string one = path("full-one.safetensors").string();
  const Ended e1 = run(0, args(one, true));  // alone, --shard-data changes nothing
  ASSERT_TRUE(e1.exited && e1.exit_code == 0) << e1.describe();
  EXPECT_NE(e1.err.find("warning: --shard-data has no effect without mpirun"), std::string::npos)
      << e1.err;
  const std::string test_line = accuracy_line(e1.out, "test accuracy");
  ASSERT_NE(test_line, "") << e1.out;
  for (int n : {2, 3}) {
    SCOPED_TRACE(std::to_string(n) + " ranks");
    const std::string a = path("full-" + std::to_string(n) + ".safetensors").string();
    const Ended ea = run(n, args(a, true));
    ASSERT_TRUE(ea.exited && ea.exit_code == 0) << ea.describe();
    const double rel = relative_difference(one, a);
    std::cout << "sharded, " << n
              << " ranks vs one process after 40 full-batch steps: max relative "
              << "difference " << rel << "\n";
    EXPECT_LT(rel, 1e-5);
    // The test set is summed over the ranks' parts: all 400 examples, the same accuracy.
    const std::string line = accuracy_line(ea.out, "test accuracy");
    EXPECT_EQ(line.substr(0, line.find(',')), test_line.substr(0, test_line.find(',')));
    EXPECT_NE(line.find("(400 examples)"), std::string::npos) << line;
    EXPECT_NE(ea.out.find("1,200 examples (1,200 for training, 0 held out), test"),
              std::string::npos)
        << ea.out;
    EXPECT_NE(ea.out.find("sharded over " + std::to_string(n) + " ranks"), std::string::npos);
    EXPECT_EQ(metadata_of(a, "train_examples"), "1200");
  }
}

TEST_F(DataParallel, ShardedRanksTrainTogetherAndAreReproducible) {
  // Mini-batches: each rank shuffles its own part, so the run is not one process's, but it
  // learns the spirals as well, sees every training row once an epoch, and is bitwise
  // reproducible for a fixed N.
  const std::vector<std::string> lr = {"--lr", "0.01"};
  const Ended e1 = run(0, train_args(path("sh-one.safetensors").string(), lr, "20"));
  ASSERT_TRUE(e1.exited && e1.exit_code == 0) << e1.describe();
  std::cout << "one process, 20 epochs: validation accuracy " << accuracy_of(e1.out) << "%\n";
  for (int n : {2, 3}) {
    SCOPED_TRACE(std::to_string(n) + " ranks");
    const std::string a = path("sh" + std::to_string(n) + "a.safetensors").string();
    const std::string log = path("sh" + std::to_string(n) + ".jsonl").string();
    const Ended ea = run(n, train_args(a, {"--lr", "0.01", "--shard-data", "--log", log}, "20"));
    ASSERT_TRUE(ea.exited && ea.exit_code == 0) << ea.describe();
    std::cout << "sharded, " << n << " ranks, 20 epochs: validation accuracy "
              << accuracy_of(ea.out) << "%\n";
    EXPECT_GT(accuracy_of(ea.out), 85.0) << ea.out;
    EXPECT_GT(accuracy_of(ea.out), accuracy_of(e1.out) - 5.0) << ea.out;
    EXPECT_EQ(metadata_of(a, "train_examples"), "960");
    // The running training figures cover each epoch's rows: a logged loss every epoch.
    std::istringstream lines(read_text(log));
    int epochs = 0;
    for (std::string line; std::getline(lines, line); ++epochs) {
      EXPECT_TRUE(nlohmann::json::parse(line).contains("val_accuracy")) << line;
    }
    EXPECT_EQ(epochs, 20);
    if (n == 3) {
      const std::string b = path("sh3b.safetensors").string();
      const Ended eb = run(n, train_args(b, {"--lr", "0.01", "--shard-data"}, "20"));
      ASSERT_TRUE(eb.exited && eb.exit_code == 0) << eb.describe();
      EXPECT_EQ(read_bytes(a), read_bytes(b)) << "sharded, 3 ranks: not bitwise reproducible";
      // Sharded data is not the same data set as a whole one.
      EXPECT_NE(metadata_of(a, "data_hash"), metadata_of(path("sh-one.safetensors"), "data_hash"));
    }
  }
  // No rank holds the whole data a report needs.
  const Ended r = run(2, train_args(path("never-sh.safetensors").string(),
                                    {"--shard-data", "--report", path("r.html").string()}));
  EXPECT_TRUE(r.exited && r.exit_code == 2) << r.describe();
  EXPECT_NE(r.err.find("--report needs the whole data"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("r.html")));
}

TEST_F(DataParallel, MoreRanksThanTrainingRowsTrains) {
  // Catalogue A.80: 2 rows, 3 ranks. Unsharded, a rank whose slice of the batch is empty adds
  // zeros; sharded, rank 2 holds no rows at all. Either way the job trains and saves.
  for (bool shard : {false, true}) {
    SCOPED_TRACE(shard ? "sharded" : "unsharded");
    const std::string save = path(shard ? "tiny-sh.safetensors" : "tiny.safetensors").string();
    std::vector<std::string> a = {"train",    "--train",   path("tiny.csv").string(),
                                  "--hidden", "4",         "--epochs",
                                  "3",        "--threads", "1",
                                  "--quiet",  "--save",    save};
    if (shard) a.push_back("--shard-data");
    const Ended e = run(3, a);
    ASSERT_TRUE(e.exited && e.exit_code == 0) << e.describe();
    EXPECT_TRUE(fs::exists(save));
    EXPECT_EQ(metadata_of(save, "train_examples"), "2");
  }
}

TEST_F(DataParallel, AKilledRankEndsTheJobAndARestartFinishesTheSameModel) {
  kill_and_resume(path("kill"), {});
}

TEST_F(DataParallel, AKilledShardedRankEndsTheJobAndARestartFinishesTheSameModel) {
  // Each rank redraws its own order on resume; the checkpoint holds rank 0's state only.
  kill_and_resume(path("kill-sh"), {"--shard-data"});
}

void DataParallel::kill_and_resume(const fs::path& d, const std::vector<std::string>& extra) {
  fs::create_directories(d);
  const std::string ckpt = (d / "ckpt").string();
  std::vector<std::string> flags = {"--checkpoint-dir", ckpt};
  flags.insert(flags.end(), extra.begin(), extra.end());
  // Uninterrupted, 2 ranks, checkpoints after every epoch.
  std::vector<std::string> base = train_args((d / "straight.safetensors").string(), flags, "12");
  const Ended straight = run(2, base);
  ASSERT_TRUE(straight.exited && straight.exit_code == 0) << straight.describe();
  fs::remove_all(ckpt);

  // Each rank writes its pid, then the job trains; rank 1 is killed once a checkpoint exists.
  std::vector<std::string> args = train_args((d / "resumed.safetensors").string(), flags, "12");
  std::string command = "echo $$ > " + (d / "pid.").string() + "$OMPI_COMM_WORLD_RANK; exec '" +
                        std::string(BACKPROP_CLI) + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  Child c(BACKPROP_MPIRUN, under_mpirun(2, {"/bin/sh", "-c", command}), kEnv, path("captures"));
  const auto has_checkpoint = [&] {
    if (!fs::exists(ckpt)) return false;
    for (const auto& e : fs::directory_iterator(ckpt))
      if (e.path().filename().string().find(".tmp.") == std::string::npos) return true;
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!(has_checkpoint() && fs::exists(d / "pid.1")) && !c.done() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_FALSE(c.done()) << "the job ended before a checkpoint was written";
  ASSERT_TRUE(fs::exists(d / "pid.1"));
  const pid_t victim = std::stoi(read_text(d / "pid.1"));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const Ended e = c.wait(std::chrono::seconds(90));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(e.timed_out);
  EXPECT_FALSE(e.exited && e.exit_code == 0) << e.describe();
  EXPECT_LT(seconds, 60.0);
  std::cout << "a killed rank ended the job in " << seconds << " s\n";
  ASSERT_FALSE(fs::exists(d / "resumed.safetensors"));

  // Restart with the same N from the last checkpoint.
  std::vector<std::string> resume = args;
  resume.insert(resume.end(), {"--resume", ckpt});
  for (std::size_t i = 0; i + 1 < resume.size(); ++i) {
    if (resume[i] == "--checkpoint-dir") resume.erase(resume.begin() + i, resume.begin() + i + 2);
  }
  const Ended r = run(2, resume);
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  EXPECT_EQ(read_bytes(d / "resumed.safetensors"), read_bytes(d / "straight.safetensors"));
}

#endif

}  // namespace
}  // namespace backprop
