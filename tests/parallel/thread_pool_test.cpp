// The thread pool: every task of every job runs exactly once, whatever the thread count, across
// thousands of back-to-back jobs (the pattern of a training step) and resizes; a job runs on no
// more threads than it asks for; the thread choice by work; the NUMA placement from a fake sysfs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"

namespace backprop {
namespace {

TEST(ThreadPool, RunsEveryTaskOfEveryJobExactlyOnce) {
  Rng rng(7);
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    for (int job = 0; job < 5000; ++job) {
      const int n_tasks = 1 + static_cast<int>(rng.below(9));
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n_tasks));
      detail::parallel_for(n_tasks, [&](int t) {
        hits[static_cast<std::size_t>(t)].fetch_add(1, std::memory_order_relaxed);
      });
      for (int t = 0; t < n_tasks; ++t) {
        ASSERT_EQ(hits[static_cast<std::size_t>(t)].load(), 1)
            << "job " << job << ", task " << t << " of " << n_tasks << ", " << threads
            << " threads";
      }
    }
  }
  set_num_threads(0);
}

TEST(ThreadPool, ReturnsOnlyWhenTheJobsWorkIsDone) {
  set_num_threads(2);
  for (int job = 0; job < 200; ++job) {
    std::vector<int> out(4, 0);  // plain ints: parallel_for's return must order the writes
    detail::parallel_for(4, [&](int t) {
      if (t % 2 == 1) std::this_thread::yield();
      out[static_cast<std::size_t>(t)] = t + 1;
    });
    ASSERT_EQ(out, (std::vector<int>{1, 2, 3, 4}));
  }
  set_num_threads(0);
}

TEST(ThreadPool, SleepingWorkersWakeForANewJob) {
  set_num_threads(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the spin: workers sleep
  std::atomic<int> ran{0};
  detail::parallel_for(16, [&](int) { ran.fetch_add(1); });
  EXPECT_EQ(ran.load(), 16);
  set_num_threads(0);
}

TEST(ThreadPool, RunsAJobOnNoMoreThreadsThanItAsksFor) {
  for (int threads : {3, 7}) {
    set_num_threads(threads);
    for (int asked : {1, 2, 3}) {
      for (int job = 0; job < 50; ++job) {
        std::mutex m;
        std::set<std::thread::id> ran_on;
        std::atomic<int> ran{0};
        // Tasks long enough that every woken worker would get some if it took them.
        detail::parallel_for(
            4 * threads,
            [&](int) {
              std::this_thread::sleep_for(std::chrono::microseconds(50));
              ran.fetch_add(1);
              std::lock_guard<std::mutex> lock(m);
              ran_on.insert(std::this_thread::get_id());
            },
            asked);
        ASSERT_EQ(ran.load(), 4 * threads);
        ASSERT_LE(static_cast<int>(ran_on.size()), asked)
            << threads << " threads in the pool, " << asked << " asked for, job " << job;
      }
    }
  }
  set_num_threads(0);
}

TEST(ThreadsFor, IsOneForTinyWorkAndGrowsWithTheWork) {
  constexpr double kMin = 1000;
  EXPECT_EQ(detail::threads_for(0, kMin, 64, 16), 1);
  EXPECT_EQ(detail::threads_for(1999, kMin, 64, 16), 1);
  EXPECT_EQ(detail::threads_for(2000, kMin, 64, 16), 2);
  EXPECT_EQ(detail::threads_for(1e9, kMin, 64, 16), 16);  // at most what is available
  EXPECT_EQ(detail::threads_for(1e9, kMin, 5, 16), 5);    // at most one per piece
  EXPECT_EQ(detail::threads_for(1e9, kMin, 0, 16), 1);
  int last = 1;
  for (double work = 1; work < 1e8; work *= 1.3) {
    int t = detail::threads_for(work, kMin, 64, 16);
    EXPECT_GE(t, last) << "work " << work;
    last = t;
  }
  EXPECT_EQ(last, 16);
}

TEST(Numa, ParsesCpuLists) {
  EXPECT_EQ(detail::parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(detail::parse_cpu_list("5"), (std::vector<int>{5}));
  EXPECT_TRUE(detail::parse_cpu_list("").empty());
  EXPECT_TRUE(detail::parse_cpu_list("\n").empty());
  EXPECT_TRUE(detail::parse_cpu_list("3-1").empty());
  EXPECT_TRUE(detail::parse_cpu_list("a-b").empty());
  EXPECT_TRUE(detail::parse_cpu_list("1,,2").empty());
}

// A sysfs node directory as Linux lays it out: node<N>/cpulist, and files that are not nodes.
class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("backprop_numa_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    write("possible", "0-1\n");
    write("online", "0-1\n");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void node(int id, const std::string& cpulist) {
    std::filesystem::create_directories(root_ / ("node" + std::to_string(id)));
    write("node" + std::to_string(id) + "/cpulist", cpulist);
  }
  void write(const std::string& rel, const std::string& text) {
    std::ofstream(root_ / rel) << text;
  }
  std::filesystem::path root_;
};

TEST_F(FakeSysfs, ReadsEveryNodeWithItsCpusInNodeOrder) {
  node(1, "4-7\n");
  node(0, "0-3\n");
  std::filesystem::create_directories(root_ / "power");
  std::vector<detail::NumaNode> nodes = detail::read_numa_nodes(root_.string());
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].id, 0);
  EXPECT_EQ(nodes[0].cpus, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(nodes[1].id, 1);
  EXPECT_EQ(nodes[1].cpus, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_TRUE(detail::read_numa_nodes((root_ / "missing").string()).empty());
}

TEST_F(FakeSysfs, OneNodePinsNothing) {
  node(0, "0-1\n");
  auto cpus = detail::numa_thread_cpus(detail::read_numa_nodes(root_.string()), 1, {0, 1}, 2);
  ASSERT_EQ(cpus.size(), 2u);
  for (const auto& c : cpus) EXPECT_TRUE(c.empty());
}

TEST_F(FakeSysfs, TwoNodesFillTheStartNodeFirst) {
  node(0, "0-3\n");
  node(1, "4-7\n");
  const std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7};
  // Started on CPU 5 (node 1): threads 1..3 on node 1, 4..7 on node 0; the caller unpinned.
  auto cpus = detail::numa_thread_cpus(detail::read_numa_nodes(root_.string()), 5, all, 8);
  ASSERT_EQ(cpus.size(), 8u);
  EXPECT_TRUE(cpus[0].empty());
  for (int i = 1; i < 4; ++i) EXPECT_EQ(cpus[i], (std::vector<int>{4, 5, 6, 7})) << i;
  for (int i = 4; i < 8; ++i) EXPECT_EQ(cpus[i], (std::vector<int>{0, 1, 2, 3})) << i;
  // A process allowed only CPUs 2, 3 and 6: node 0 offers two, node 1 one.
  cpus = detail::numa_thread_cpus(detail::read_numa_nodes(root_.string()), 2, {2, 3, 6}, 3);
  EXPECT_EQ(cpus[1], (std::vector<int>{2, 3}));
  EXPECT_EQ(cpus[2], (std::vector<int>{6}));
  // Allowed CPUs all on one node: that is one node for us, so nothing is pinned.
  cpus = detail::numa_thread_cpus(detail::read_numa_nodes(root_.string()), 0, {0, 1, 2, 3}, 4);
  for (const auto& c : cpus) EXPECT_TRUE(c.empty());
}

TEST(Numa, IsANoOpOnAOneNodeMachine) {
  std::vector<detail::NumaNode> nodes = detail::read_numa_nodes("/sys/devices/system/node");
  if (nodes.size() > 1) GTEST_SKIP() << "this machine has " << nodes.size() << " NUMA nodes";
  for (const auto& c : detail::numa_thread_cpus(nodes, 0, {0, 1, 2, 3}, 4)) {
    EXPECT_TRUE(c.empty());
  }
}

}  // namespace
}  // namespace backprop
