// Data-parallel training across processes with MPI (docs/distributed.md). Built in when CMake
// finds MPI (BACKPROP_HAVE_MPI); used only when the process was started by mpirun with two or
// more ranks, so a plain `backprop train` never initialises MPI and behaves as without it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backprop/collective.hpp"

namespace backprop::cli {

// The rank count and this process's rank as mpirun announced them in the environment (Open MPI's
// OMPI_COMM_WORLD_SIZE / _RANK / _LOCAL_SIZE, or PMI_SIZE / PMI_RANK); size 1 when not launched
// by mpirun.
struct Launch {
  int size = 1, rank = 0, local_size = 1;
};
Launch launched_by_mpirun();

class MpiGroup final : public Collective {
 public:
  // MPI_Init and the world communicator, when launched by mpirun with 2+ ranks; null otherwise.
  // Throws Error(kUsage) when launched with 2+ ranks by a build without MPI (each process would
  // train alone and all would write the same files).
  static std::unique_ptr<MpiGroup> start_if_launched();
  ~MpiGroup() override;  // MPI_Finalize
  MpiGroup(const MpiGroup&) = delete;
  MpiGroup& operator=(const MpiGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const { return local_size_; }
  // Reduce-scatter then all-gather: each element is summed once, in an order fixed by the rank
  // count, and the result copied to every rank, so all ranks hold the same bits.
  void sum(std::span<float> values) override;
  void sum(std::span<double> values) override;
  // Non-blocking: the reduce-scatter starts now (and the ones started before are given a chance
  // to progress); finish_sums() waits for each, runs its all-gather and copies the sums back.
  void start_sum(std::span<float> values) override;
  void finish_sums() override;
  // Every rank's value, in rank order (MPI_Allgather).
  std::vector<std::uint64_t> gather(std::uint64_t value);
  // Ends every rank of the job now with this exit code (MPI_Abort).
  [[noreturn]] void abort(int code);

 private:
  MpiGroup(int rank, int size, int local_size);
  int rank_, size_, local_size_;
  std::vector<float> stage_f_, block_f_;
  std::vector<double> stage_d_, block_d_;
  // The sums in flight, in the order they were started; buffers are kept for the next batch.
  struct Pending;
  std::vector<std::unique_ptr<Pending>> pending_;
  std::size_t in_flight_ = 0;
};

// FNV-1a, 64 bits: the configuration fingerprint ranks compare before their first sum.
std::uint64_t fingerprint(const std::string& text);

}  // namespace backprop::cli
