// Threads. One persistent pool per process; kernels receive a task index and compute their slice.
// Work is split so that every output element is computed by exactly one task in a fixed order,
// which makes results bitwise identical for any thread count.
#pragma once

#include <cstddef>

namespace backprop {

// Threads used by the kernels: n >= 1, or 0 for every core this process may run on.
void set_num_threads(int n);
int num_threads();

namespace detail {

// Runs fn(ctx, task) for every task in [0, n_tasks), on up to num_threads() threads (the caller is
// one of them), and returns when all are done. n_tasks <= 1 runs inline. Not reentrant: a task
// must not call parallel_for.
using TaskFn = void (*)(void* ctx, int task);
void parallel_for(int n_tasks, TaskFn fn, void* ctx);

template <class F>
void parallel_for(int n_tasks, F&& f) {
  parallel_for(
      n_tasks, [](void* ctx, int task) { (*static_cast<F*>(ctx))(task); }, static_cast<void*>(&f));
}

}  // namespace detail
}  // namespace backprop
