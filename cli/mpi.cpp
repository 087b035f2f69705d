// Data-parallel training across processes: the MPI group (see mpi.hpp).
#include "mpi.hpp"

#include <cstdlib>
#include <string>

#include "backprop/error.hpp"

#ifdef BACKPROP_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>
#endif

namespace backprop::cli {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > (1 << 24)) return fallback;
  return static_cast<int>(x);
}

#ifdef BACKPROP_HAVE_MPI
// The reduce-scatter + all-gather sum of mpi.hpp over a buffer padded to a multiple of the rank
// count.
template <class T>
void sum_everywhere(std::span<T> values, MPI_Datatype type, int size, std::vector<T>& stage,
                    std::vector<T>& block) {
  const std::size_t n = static_cast<std::size_t>(size);
  const std::size_t per = (values.size() + n - 1) / n;
  if (per == 0) return;
  stage.assign(per * n, T(0));
  std::copy(values.begin(), values.end(), stage.begin());
  block.resize(per);
  MPI_Reduce_scatter_block(stage.data(), block.data(), static_cast<int>(per), type, MPI_SUM,
                           MPI_COMM_WORLD);
  MPI_Allgather(block.data(), static_cast<int>(per), type, stage.data(), static_cast<int>(per),
                type, MPI_COMM_WORLD);
  std::copy(stage.begin(), stage.begin() + static_cast<std::ptrdiff_t>(values.size()),
            values.begin());
}
#endif

}  // namespace

Launch launched_by_mpirun() {
  Launch l;
  l.size = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1));
  l.rank = env_int("OMPI_COMM_WORLD_RANK", env_int("PMI_RANK", 0));
  l.local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", l.size);
  if (l.size < 1 || l.rank >= l.size) l = Launch{};
  return l;
}

std::uint64_t fingerprint(const std::string& text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

#ifdef BACKPROP_HAVE_MPI

struct MpiGroup::Pending {
  std::span<float> values;
  std::vector<float> stage, block;
  MPI_Request request = MPI_REQUEST_NULL;
};

MpiGroup::MpiGroup(int rank, int size, int local_size)
    : rank_(rank), size_(size), local_size_(local_size) {}

std::unique_ptr<MpiGroup> MpiGroup::start_if_launched() {
  const Launch l = launched_by_mpirun();
  if (l.size < 2) return nullptr;
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<MpiGroup>(new MpiGroup(rank, size, std::max(1, l.local_size)));
}

MpiGroup::~MpiGroup() {
  MPI_Finalize();
}

void MpiGroup::sum(std::span<float> values) {
  sum_everywhere(values, MPI_FLOAT, size_, stage_f_, block_f_);
}

void MpiGroup::sum(std::span<double> values) {
  sum_everywhere(values, MPI_DOUBLE, size_, stage_d_, block_d_);
}

void MpiGroup::start_sum(std::span<float> values) {
  const std::size_t n = static_cast<std::size_t>(size_);
  const std::size_t per = (values.size() + n - 1) / n;
  if (per == 0) return;
  if (in_flight_ == pending_.size()) pending_.push_back(std::make_unique<Pending>());
  Pending& p = *pending_[in_flight_++];
  p.values = values;
  p.stage.assign(per * n, 0.0f);
  std::copy(values.begin(), values.end(), p.stage.begin());
  p.block.resize(per);
  MPI_Ireduce_scatter_block(p.stage.data(), p.block.data(), static_cast<int>(per), MPI_FLOAT,
                            MPI_SUM, MPI_COMM_WORLD, &p.request);
  // Open MPI moves non-blocking collectives forward only inside MPI calls: give the earlier ones
  // a turn now, between layers.
  for (std::size_t i = 0; i + 1 < in_flight_; ++i) {
    int done = 0;
    MPI_Test(&pending_[i]->request, &done, MPI_STATUS_IGNORE);
  }
}

void MpiGroup::finish_sums() {
  for (std::size_t i = 0; i < in_flight_; ++i) {
    Pending& p = *pending_[i];
    MPI_Wait(&p.request, MPI_STATUS_IGNORE);
    const int per = static_cast<int>(p.block.size());
    MPI_Iallgather(p.block.data(), per, MPI_FLOAT, p.stage.data(), per, MPI_FLOAT, MPI_COMM_WORLD,
                   &p.request);
  }
  for (std::size_t i = 0; i < in_flight_; ++i) {
    Pending& p = *pending_[i];
    MPI_Wait(&p.request, MPI_STATUS_IGNORE);
    std::copy(p.stage.begin(), p.stage.begin() + static_cast<std::ptrdiff_t>(p.values.size()),
              p.values.begin());
  }
  in_flight_ = 0;
}

std::vector<std::uint64_t> MpiGroup::gather(std::uint64_t value) {
  std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
  MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  return all;
}

void MpiGroup::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
}

#else  // built without MPI

struct MpiGroup::Pending {};
MpiGroup::MpiGroup(int rank, int size, int local_size)
    : rank_(rank), size_(size), local_size_(local_size) {}

std::unique_ptr<MpiGroup> MpiGroup::start_if_launched() {
  const Launch l = launched_by_mpirun();
  if (l.size < 2) return nullptr;
  throw Error(ErrorCode::kUsage,
              "started by mpirun with " + std::to_string(l.size) +
                  " ranks, but this backprop was built without MPI (install libopenmpi-dev and "
                  "rebuild); each rank would train alone and write the same files");
}

MpiGroup::~MpiGroup() = default;
void MpiGroup::sum(std::span<float>) {}
void MpiGroup::sum(std::span<double>) {}
void MpiGroup::start_sum(std::span<float>) {}
void MpiGroup::finish_sums() {}
std::vector<std::uint64_t> MpiGroup::gather(std::uint64_t value) {
  return {value};
}
void MpiGroup::abort(int code) {
  std::_Exit(code);
}

#endif

}  // namespace backprop::cli
