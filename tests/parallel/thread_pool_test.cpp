// The thread pool: every task of every job runs exactly once, whatever the thread count, across
// thousands of back-to-back jobs (the pattern of a training step) and resizes.
#include <gtest/gtest.h>

#include <atomic>
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

}  // namespace
}  // namespace backprop
