// Data-parallel training's one view of the outside world: a fixed group of processes (ranks)
// that can sum vectors. train() takes one through TrainOptions::collective; the CLI's is MPI
// (cli/mpi.cpp), and the library itself depends on no transport.
//
// With a group of N ranks, every rank runs train() on the same data, model and options. Each
// global batch of B rows is cut into N contiguous slices (rank r takes rows [B·r/N, B·(r+1)/N)),
// each rank differentiates the loss over its slice scaled by (its rows)/B, and sum() of the
// gradients gives every rank the gradient of the whole batch's average loss, so every rank applies
// the same update. The running figures and the flags that stop training (a non-finite loss, a
// stop request) are summed too, so all ranks take every decision together.
#pragma once

#include <span>

namespace backprop {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;  // 0..size()-1
  virtual int size() const = 0;
  // Element-wise sum over the ranks, in place. Every rank must receive the same bits, and for a
  // fixed size the same bits run to run (a fixed reduction order).
  virtual void sum(std::span<float> values) = 0;
  virtual void sum(std::span<double> values) = 0;
  // The same sum, started now and completed by finish_sums(), which completes every sum started
  // since the last call: backward starts each layer's as soon as that layer is done, and the
  // transfer overlaps the layers below (as PyTorch DDP's buckets do). `values` must stay alive
  // and untouched until then. The defaults are blocking.
  virtual void start_sum(std::span<float> values) { sum(values); }
  virtual void finish_sums() {}
};

}  // namespace backprop
