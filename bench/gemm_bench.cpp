// backprop's GEMM on the MLP shapes, through the internal kernel interface (src/kernels), in the
// three forms training needs. Prints one JSON line per measurement (bench/peers/common.hpp);
// bench/run.py compares them with the peers'. BACKPROP_ISA=scalar|avx2|avx512 picks the table.
//   gemm_bench --threads T [--reps R] [--min-seconds S] [--only NAME]
#include "backprop/parallel.hpp"
#include "kernels/kernels.hpp"
#include "peers/common.hpp"

namespace kernels = backprop::kernels;
using backprop::Index;

int main(int argc, char** argv) {
  bench::Options o = bench::parse_options(argc, argv);
  backprop::set_num_threads(o.threads);
  const kernels::KernelTable& t = kernels::active();
  bench::print_info("backprop",
                    "\"isa\": \"" + std::string(t.name) + "\", \"mr\": " + std::to_string(t.mr) +
                        ", \"nr\": " + std::to_string(t.nr) + ", \"kc\": " + std::to_string(t.kc) +
                        ", \"mc\": " + std::to_string(t.mc) + ", \"nc\": " + std::to_string(t.nc) +
                        ", \"threads\": " + std::to_string(backprop::num_threads()));
  return bench::run_all("backprop", o, [&](const bench::Problem& p, bench::Operands& ops) {
    const Index m = p.m, n = p.n, k = p.k;
    switch (p.form) {
      case bench::Form::kForward:  // Z[M×N] = X·Wᵀ
        kernels::gemm_nt(t, m, n, k, ops.x.data(), k, ops.w.data(), k, ops.out.data(), n,
                         kernels::Epilogue{});
        break;
      case bench::Form::kBackwardData:  // dX[M×K] = dZ·W
        kernels::gemm(t, m, k, n, {ops.dz.data(), n, 1}, {ops.w.data(), k, 1}, ops.out.data(), k,
                      false, kernels::Epilogue{});
        break;
      case bench::Form::kBackwardWeights:  // dW[N×K] += dZᵀ·X
        kernels::gemm(t, n, k, m, {ops.dz.data(), 1, n}, {ops.x.data(), k, 1}, ops.out.data(), k,
                      true, kernels::Epilogue{});
        break;
    }
  });
}
