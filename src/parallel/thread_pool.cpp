// The persistent thread pool behind detail::parallel_for.
//
// A job is published by bumping `generation_`; workers hand out task indices from an atomic
// counter, so a thread that starts late simply takes fewer tasks, and which thread runs a task
// never changes what the task computes. Training issues thousands of small products a second, so
// between jobs a worker spins for a short while (kSpin) before it sleeps on the condition
// variable: a spinning worker joins a new job in well under a microsecond, a sleeping one takes
// tens. The caller returns only after every worker has acknowledged the job, so no worker can
// touch a job's context after parallel_for returns.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/parallel.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BACKPROP_CPU_RELAX() _mm_pause()
#else
#define BACKPROP_CPU_RELAX() static_cast<void>(0)
#endif

namespace backprop {

namespace {

using Clock = std::chrono::steady_clock;
// How long an idle worker spins before it sleeps: longer than the gap between the products of
// one training step, short enough that an idle program stops using the CPU at once.
constexpr auto kSpin = std::chrono::microseconds(200);

int available_cores() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

class ThreadPool {
 public:
  ~ThreadPool() { stop_workers(); }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    stop_workers();
    n_threads_ = n;
    stop_.store(false);
    acks_ = std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(n));
    for (int i = 0; i + 1 < n; ++i) acks_[static_cast<std::size_t>(i)].store(generation_.load());
    for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }

  int size() const { return n_threads_; }

  void run(int n_tasks, detail::TaskFn fn, void* ctx) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || n_threads_ <= 1) {
      for (int t = 0; t < n_tasks; ++t) fn(ctx, t);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    job_ = Job{fn, ctx, n_tasks};
    next_.store(0, std::memory_order_relaxed);
    const std::uint64_t gen = generation_.load(std::memory_order_relaxed) + 1;
    generation_.store(gen, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    work(job_);
    // Every worker acknowledges every job (having taken tasks or found none left).
    for (int w = 0; w + 1 < n_threads_; ++w) {
      auto& ack = acks_[static_cast<std::size_t>(w)];
      for (int spins = 0; ack.load(std::memory_order_acquire) != gen; ++spins) {
        if (spins < 4096) {
          BACKPROP_CPU_RELAX();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }

 private:
  struct Job {
    detail::TaskFn fn = nullptr;
    void* ctx = nullptr;
    int n_tasks = 0;
  };

  void work(const Job& job) {
    for (;;) {
      int t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= job.n_tasks) break;
      job.fn(job.ctx, t);
    }
  }

  // Waits until generation_ passes `seen` (or stop); returns the new generation.
  std::uint64_t wait_for_job(std::uint64_t seen) {
    auto until = Clock::now() + kSpin;
    for (int spins = 0;; ++spins) {
      std::uint64_t g = generation_.load(std::memory_order_acquire);
      if (g != seen || stop_.load(std::memory_order_relaxed)) return g;
      BACKPROP_CPU_RELAX();
      if ((spins & 255) == 255 && Clock::now() > until) break;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    wake_.wait(lock, [&] {
      return generation_.load(std::memory_order_seq_cst) != seen ||
             stop_.load(std::memory_order_relaxed);
    });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return generation_.load(std::memory_order_acquire);
  }

  void worker_loop(int w) {
    std::uint64_t seen = acks_[static_cast<std::size_t>(w)].load();
    for (;;) {
      std::uint64_t g = wait_for_job(seen);
      if (stop_.load(std::memory_order_relaxed)) return;
      // The caller does not touch job_ until every worker has acknowledged generation g.
      work(job_);
      seen = g;
      acks_[static_cast<std::size_t>(w)].store(g, std::memory_order_release);
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;      // sleeping and waking only
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  int n_threads_ = 1;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::unique_ptr<std::atomic<std::uint64_t>[]> acks_;
  Job job_;
  std::atomic<int> next_{0};
};

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

std::once_flag g_init;

void ensure_started() {
  std::call_once(g_init, [] { pool().resize(available_cores()); });
}

}  // namespace

void set_num_threads(int n) {
  BACKPROP_ASSERT(n >= 0);
  ensure_started();
  int want = n == 0 ? available_cores() : n;
  if (want != pool().size()) pool().resize(want);
}

int num_threads() {
  ensure_started();
  return pool().size();
}

namespace detail {

void parallel_for(int n_tasks, TaskFn fn, void* ctx) {
  ensure_started();
  pool().run(n_tasks, fn, ctx);
}

}  // namespace detail
}  // namespace backprop
