// The persistent thread pool behind detail::parallel_for.
//
// Publishing a job: the caller writes the job under a seqlock (`seq_` odd while writing, even
// once published) and resets the ticket, a 64-bit word holding (job id, next task). A worker
// copies the job, checks the seqlock did not move, and then claims tasks one at a time by
// compare-and-swap on the ticket, which succeeds only while the ticket still names the job it
// copied. So a worker that wakes late, even after the caller has moved on, can never run a task
// of a job it did not copy, and the caller waits only for the tasks that were actually claimed,
// never for a worker that happens to be descheduled between jobs (a machine with other busy
// processes would otherwise stall every product for a time slice).
//
// Training issues thousands of small products a second, so between jobs a worker spins for a
// short while (kSpin) before it sleeps on the condition variable: a spinning worker joins a new
// job in well under a microsecond, a sleeping one takes tens. Which thread runs a task never
// changes what the task computes.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
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

// Spins on `done()`, then yields the CPU between checks: a descheduled thread we wait for then
// gets the core back instead of us burning it.
template <class Done>
void wait_until(Done&& done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < 2048) {
      BACKPROP_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

class ThreadPool {
 public:
  ~ThreadPool() { stop_workers(); }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    stop_workers();
    n_threads_ = n;
    stop_.store(false);
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
    const std::uint64_t id = ++job_id_;
    // Publish: seqlock odd, job fields, ticket and counter reset, seqlock even.
    const std::uint64_t seq = seq_.load(std::memory_order_relaxed);
    seq_.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    fn_.store(fn, std::memory_order_relaxed);
    ctx_.store(ctx, std::memory_order_relaxed);
    n_tasks_.store(n_tasks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    ticket_.store(id << 32, std::memory_order_relaxed);
    seq_.store(seq + 2, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    work(id, fn, ctx, n_tasks);
    wait_until([&] { return done_.load(std::memory_order_acquire) == n_tasks; });
  }

 private:
  // Claims and runs tasks of job `id` until none is left (or the ticket names another job).
  void work(std::uint64_t id, detail::TaskFn fn, void* ctx, int n_tasks) {
    for (;;) {
      std::uint64_t t = ticket_.load(std::memory_order_relaxed);
      for (;;) {
        if ((t >> 32) != id || static_cast<int>(t & 0xFFFFFFFFu) >= n_tasks) return;
        if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) break;
      }
      fn(ctx, static_cast<int>(t & 0xFFFFFFFFu));
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  // Waits until a job newer than `seen` is published (or stop); returns its sequence number.
  std::uint64_t wait_for_job(std::uint64_t seen) {
    auto published = [&] {
      std::uint64_t s = seq_.load(std::memory_order_acquire);
      return (s != seen && (s & 1) == 0) || stop_.load(std::memory_order_relaxed);
    };
    auto until = Clock::now() + kSpin;
    for (int spins = 0; !published(); ++spins) {
      BACKPROP_CPU_RELAX();
      if ((spins & 255) == 255 && Clock::now() > until) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, published);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
    }
    return seq_.load(std::memory_order_acquire);
  }

  void worker_loop() {
    std::uint64_t seen = seq_.load(std::memory_order_acquire);
    for (;;) {
      std::uint64_t s = wait_for_job(seen);
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = s;
      if (s & 1) continue;  // being rewritten: wait for the next publication
      detail::TaskFn fn = fn_.load(std::memory_order_relaxed);
      void* ctx = ctx_.load(std::memory_order_relaxed);
      int n_tasks = n_tasks_.load(std::memory_order_relaxed);
      std::uint64_t id = ticket_.load(std::memory_order_relaxed) >> 32;
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) != s) continue;  // torn copy: a newer job exists
      work(id, fn, ctx, n_tasks);
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
  std::uint64_t job_id_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<detail::TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int> n_tasks_{0};
  std::atomic<std::uint64_t> ticket_{0};  // (job id << 32) | next task
  std::atomic<int> done_{0};
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
