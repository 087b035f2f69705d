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
// A job names how many workers it wants (`helpers_`, published with it): workers 1..helpers take
// tasks, the others let it pass. Each worker sleeps on its own condition variable, so the caller
// wakes exactly the sleeping workers it asked for, never the whole pool.
//
// Training issues thousands of small products a second, so after the last job it worked on a
// worker spins for a short while (kSpin) before it sleeps: a spinning worker joins a new job in
// well under a microsecond, a sleeping one takes tens. A worker that jobs stop asking for falls
// asleep after kSpin even while other jobs keep coming. Which thread runs a task never changes
// what the task computes.
//
// NUMA (detail::numa_thread_cpus): with several nodes, each worker pins itself to the CPUs of
// one node, the start node's first; with one node nothing is pinned.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
constexpr const char* kNumaRoot = "/sys/devices/system/node";

// The CPUs this process may run on (its affinity mask), in increasing order.
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  return cpus;
}

int available_cores() {
  std::size_t n = allowed_cpus().size();
  if (n == 0) n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void pin_this_thread(const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
  }
  // A refusal (a container that forbids it) leaves the thread where the scheduler puts it.
  (void)sched_setaffinity(0, sizeof set, &set);
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
    std::vector<std::vector<int>> cpus = detail::numa_thread_cpus(
        detail::read_numa_nodes(kNumaRoot), sched_getcpu(), allowed_cpus(), n);
    slots_.clear();
    for (int i = 0; i < n; ++i) slots_.push_back(std::make_unique<Slot>());
    for (int i = 1; i < n; ++i) {
      workers_.emplace_back([this, i, pin = cpus[static_cast<std::size_t>(i)]] {
        pin_this_thread(pin);
        worker_loop(i);
      });
    }
  }

  int size() const { return n_threads_; }

  void run(int n_tasks, detail::TaskFn fn, void* ctx, int max_threads) {
    if (n_tasks <= 0) return;
    if (max_threads <= 0) max_threads = n_tasks;
    const int helpers = std::min({max_threads, n_tasks, n_threads_}) - 1;
    if (helpers <= 0) {
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
    helpers_.store(helpers, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    ticket_.store(id << 32, std::memory_order_relaxed);
    seq_.store(seq + 2, std::memory_order_seq_cst);
    // Wake the sleepers among the workers asked for (the others stay asleep). A worker that sets
    // its flag after our load sees the new seq_ before it sleeps (both seq_cst).
    for (int i = 1; i <= helpers; ++i) {
      Slot& s = *slots_[static_cast<std::size_t>(i)];
      if (s.sleeping.load(std::memory_order_seq_cst)) {
        std::lock_guard<std::mutex> lock(s.mutex);
        s.wake.notify_one();
      }
    }
    work(id, fn, ctx, n_tasks);
    wait_until([&] { return done_.load(std::memory_order_acquire) == n_tasks; });
  }

 private:
  // One worker's bed, on its own cache lines.
  struct alignas(64) Slot {
    std::mutex mutex;
    std::condition_variable wake;
    std::atomic<bool> sleeping{false};
  };

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

  // Waits until a job newer than `seen` that asks for worker `me` is published (or stop), spinning
  // until `spin_until` and sleeping after; returns the sequence number it saw.
  std::uint64_t wait_for_job(int me, std::uint64_t seen, Clock::time_point spin_until) {
    // helpers_ may be read mid-publication here: a wrong answer only costs a wasted look (the
    // worker checks the job it copies) or a later wake (the caller then wakes it, or runs the
    // tasks itself).
    auto published = [&] {
      std::uint64_t s = seq_.load(std::memory_order_acquire);
      return (s != seen && (s & 1) == 0 && helpers_.load(std::memory_order_relaxed) >= me) ||
             stop_.load(std::memory_order_relaxed);
    };
    for (int spins = 0; !published(); ++spins) {
      BACKPROP_CPU_RELAX();
      if ((spins & 255) == 255 && Clock::now() > spin_until) {
        Slot& s = *slots_[static_cast<std::size_t>(me)];
        std::unique_lock<std::mutex> lock(s.mutex);
        s.sleeping.store(true, std::memory_order_seq_cst);
        s.wake.wait(lock, published);
        s.sleeping.store(false, std::memory_order_relaxed);
        break;
      }
    }
    return seq_.load(std::memory_order_acquire);
  }

  void worker_loop(int me) {
    std::uint64_t seen = seq_.load(std::memory_order_acquire);
    Clock::time_point spin_until = Clock::now() + kSpin;
    for (;;) {
      std::uint64_t s = wait_for_job(me, seen, spin_until);
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = s;
      if (s & 1) continue;  // being rewritten: wait for the next publication
      detail::TaskFn fn = fn_.load(std::memory_order_relaxed);
      void* ctx = ctx_.load(std::memory_order_relaxed);
      int n_tasks = n_tasks_.load(std::memory_order_relaxed);
      int helpers = helpers_.load(std::memory_order_relaxed);
      std::uint64_t id = ticket_.load(std::memory_order_relaxed) >> 32;
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) != s) continue;  // torn copy: a newer job exists
      if (helpers < me) continue;  // not asked for: leave the tasks to the threads that were
      work(id, fn, ctx, n_tasks);
      spin_until = Clock::now() + kSpin;
    }
  }

  void stop_workers() {
    stop_.store(true, std::memory_order_seq_cst);
    for (auto& s : slots_) {
      std::lock_guard<std::mutex> lock(s->mutex);
      s->wake.notify_all();
    }
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex run_mutex_;                      // one job at a time
  std::vector<std::unique_ptr<Slot>> slots_;  // index = worker (0, the caller, unused)
  std::vector<std::thread> workers_;
  int n_threads_ = 1;
  std::uint64_t job_id_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<detail::TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int> n_tasks_{0};
  std::atomic<int> helpers_{0};
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

void parallel_for(int n_tasks, TaskFn fn, void* ctx, int max_threads) {
  ensure_started();
  pool().run(n_tasks, fn, ctx, max_threads);
}

int threads_for(double work, double min_work_per_thread, std::ptrdiff_t max_tasks,
                int available) noexcept {
  double by_work = min_work_per_thread > 0 ? std::floor(work / min_work_per_thread) : 1e18;
  double cap = static_cast<double>(std::min<std::ptrdiff_t>(max_tasks, available));
  double t = std::min(by_work, cap);
  return t < 1 ? 1 : static_cast<int>(t);
}

int threads_for(double work, double min_work_per_thread, std::ptrdiff_t max_tasks) noexcept {
  return threads_for(work, min_work_per_thread, max_tasks, num_threads());
}

std::vector<int> parse_cpu_list(std::string_view list) {
  std::vector<int> cpus;
  while (!list.empty() && (list.back() == '\n' || list.back() == ' ')) list.remove_suffix(1);
  if (list.empty()) return cpus;
  auto number = [](std::string_view s, int& out) {
    if (s.empty() || s.size() > 7) return false;
    out = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    return true;
  };
  while (true) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    std::size_t dash = item.find('-');
    int lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (!number(item, lo)) return {};
      hi = lo;
    } else if (!number(item.substr(0, dash), lo) || !number(item.substr(dash + 1), hi) || hi < lo) {
      return {};
    }
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::vector<NumaNode> read_numa_nodes(const std::string& root) {
  std::vector<NumaNode> nodes;
  std::error_code ec;
  std::filesystem::directory_iterator it(root, ec), end;
  if (ec) return nodes;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (name.size() < 5 || name.compare(0, 4, "node") != 0) continue;
    int id = 0;
    bool digits = true;
    for (std::size_t i = 4; i < name.size(); ++i) {
      if (name[i] < '0' || name[i] > '9' || i > 10) {
        digits = false;
        break;
      }
      id = id * 10 + (name[i] - '0');
    }
    if (!digits) continue;
    std::ifstream f(it->path() / "cpulist");
    std::string line;
    if (!f || !std::getline(f, line)) continue;
    std::vector<int> cpus = parse_cpu_list(line);
    if (!cpus.empty()) nodes.push_back({id, std::move(cpus)});
  }
  std::sort(nodes.begin(), nodes.end(),
            [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  return nodes;
}

std::vector<std::vector<int>> numa_thread_cpus(const std::vector<NumaNode>& nodes, int start_cpu,
                                               const std::vector<int>& allowed, int n_threads) {
  std::vector<std::vector<int>> out(static_cast<std::size_t>(std::max(n_threads, 0)));
  auto is_allowed = [&](int c) { return std::binary_search(allowed.begin(), allowed.end(), c); };
  // Each node's allowed CPUs; nodes with none are not ours to use.
  std::vector<std::vector<int>> mine;
  std::size_t start = 0;
  for (const NumaNode& n : nodes) {
    std::vector<int> cpus;
    for (int c : n.cpus) {
      if (is_allowed(c)) cpus.push_back(c);
    }
    if (cpus.empty()) continue;
    if (std::find(n.cpus.begin(), n.cpus.end(), start_cpu) != n.cpus.end()) start = mine.size();
    mine.push_back(std::move(cpus));
  }
  if (mine.size() < 2) return out;  // one node: the scheduler's placement is as good as any
  std::rotate(mine.begin(), mine.begin() + static_cast<std::ptrdiff_t>(start),
              mine.begin() + static_cast<std::ptrdiff_t>(start) + 1);
  // Thread i on the node of the i-th CPU in that order; past the last CPU, round the nodes again.
  std::size_t total = 0;
  for (const auto& m : mine) total += m.size();
  for (std::size_t i = 1; i < out.size(); ++i) {
    std::size_t k = i % total;
    for (const auto& m : mine) {
      if (k < m.size()) {
        out[i] = m;
        break;
      }
      k -= m.size();
    }
  }
  return out;
}

}  // namespace detail
}  // namespace backprop
