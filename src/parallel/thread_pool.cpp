// The persistent thread pool behind detail::parallel_for. Workers sleep on a condition variable
// between jobs; a job hands out task indices from an atomic counter, so threads that wake late
// simply take fewer tasks. Which thread runs a task never changes what the task computes.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "backprop/error.hpp"
#include "backprop/parallel.hpp"

namespace backprop {

namespace {

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
    stop_ = false;
    for (int i = 1; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  int size() const { return n_threads_; }

  void run(int n_tasks, detail::TaskFn fn, void* ctx) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || n_threads_ <= 1) {
      for (int t = 0; t < n_tasks; ++t) fn(ctx, t);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = Job{fn, ctx, n_tasks};
      next_.store(0, std::memory_order_relaxed);
      job_open_ = true;
      ++generation_;
    }
    wake_.notify_all();
    work(job_);
    // Close the job to late wakers, then wait for every worker that joined it to leave, so no
    // thread can touch this job's context after run() returns.
    std::unique_lock<std::mutex> lock(mutex_);
    job_open_ = false;
    finished_.wait(lock, [&] { return active_ == 0; });
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

  void worker_loop() {
    std::uint64_t seen = 0;
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (!job_open_) continue;
        job = job_;
        ++active_;
      }
      work(job);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--active_ == 0) finished_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> workers_;
  int n_threads_ = 1;
  bool stop_ = false;
  std::uint64_t generation_ = 0;
  Job job_;
  bool job_open_ = false;
  int active_ = 0;  // workers inside the current job
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
