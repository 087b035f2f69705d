// Threads. One persistent pool per process; kernels receive a task index and compute their slice.
// Work is split so that every output element is computed by exactly one task in a fixed order,
// which makes results bitwise identical for any thread count.
//
// A product or an elementwise pass asks for as many threads as its work pays for
// (detail::threads_for), so the number set here is a ceiling: small work runs on the calling
// thread alone, and the pool wakes only the workers a job asks for. On a machine with several
// NUMA nodes the workers are pinned node by node, starting with the node the pool was started
// on, so a job that asks for no more threads than that node has stays on it (docs/gemm.md).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace backprop {

// Threads used by the kernels at most: n >= 1, or 0 for every core this process may run on
// (its CPU affinity mask). Each product then takes as many of them as its size pays for.
void set_num_threads(int n);
int num_threads();

namespace detail {

// Runs fn(ctx, task) for every task in [0, n_tasks), on up to min(max_threads, num_threads())
// threads (the caller is one of them; max_threads <= 0 means n_tasks), and returns when all are
// done. Only the workers asked for are woken; the others neither wake nor take tasks. n_tasks <= 1
// runs inline. Not reentrant: a task must not call parallel_for.
using TaskFn = void (*)(void* ctx, int task);
void parallel_for(int n_tasks, TaskFn fn, void* ctx, int max_threads = 0);

template <class F>
void parallel_for(int n_tasks, F&& f, int max_threads = 0) {
  parallel_for(
      n_tasks, [](void* ctx, int task) { (*static_cast<F*>(ctx))(task); }, static_cast<void*>(&f),
      max_threads);
}

// How many threads `work` pays for: one per `min_work_per_thread` of it (at least 1), at most
// `max_tasks` (the pieces the work can be cut into) and at most `available`. Non-decreasing in
// work; 1 for anything below 2·min_work_per_thread.
int threads_for(double work, double min_work_per_thread, std::ptrdiff_t max_tasks,
                int available) noexcept;
// The same with available = num_threads().
int threads_for(double work, double min_work_per_thread, std::ptrdiff_t max_tasks) noexcept;

// NUMA, from Linux's sysfs (no libnuma): the nodes under `root` (normally
// /sys/devices/system/node), each with the CPUs of its `cpulist`, in node order. Empty when the
// directory does not exist or lists no node.
struct NumaNode {
  int id;
  std::vector<int> cpus;
};
std::vector<NumaNode> read_numa_nodes(const std::string& root);
// "0-3,8,10-11" -> {0, 1, 2, 3, 8, 10, 11}; an empty or malformed list gives {}.
std::vector<int> parse_cpu_list(std::string_view list);
// Where each of n_threads pool threads may run (index 0 is the caller, left unpinned: {}): with
// one node (or none known) nothing is pinned (every entry {}); with several, thread i gets the
// CPUs of the node holding the i-th of the allowed CPUs ordered start node first, then the other
// nodes in order, so threads 0..k-1 share the start node while k fits in it.
std::vector<std::vector<int>> numa_thread_cpus(const std::vector<NumaNode>& nodes, int start_cpu,
                                               const std::vector<int>& allowed, int n_threads);

}  // namespace detail
}  // namespace backprop
