// BLIS's typed API, bli_sgemm, on the MLP shapes (bench/peers/common.hpp). BLIS takes a row and
// a column stride per operand, so the transposed forms are expressed as strides, as ours are.
// Threads through bli_thread_set_num_threads; the sub-configuration BLIS picked for this CPU
// (BLIS_ARCH_TYPE may force one) is reported as "arch".
#include <blis.h>

#include "common.hpp"

int main(int argc, char** argv) {
  bench::Options o = bench::parse_options(argc, argv);
  bli_thread_set_num_threads(o.threads);
  bench::print_info("blis",
                    "\"arch\": \"" + bench::json_escape(bli_arch_string(bli_arch_query_id())) +
                        "\", \"version\": \"" + bench::json_escape(bli_info_get_version_str()) +
                        "\", \"threads\": " + std::to_string(bli_thread_get_num_threads()));
  return bench::run_all("blis", o, [](const bench::Problem& p, bench::Operands& ops) {
    const dim_t m = p.m, n = p.n, k = p.k;
    float one = 1.0f, zero = 0.0f;
    switch (p.form) {
      case bench::Form::kForward:  // Z = X·Wᵀ: Wᵀ (K×N) has row stride 1, column stride K
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, ops.x.data(), k, 1,
                  ops.w.data(), 1, k, &zero, ops.out.data(), n, 1);
        break;
      case bench::Form::kBackwardData:  // dX = dZ·W
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, k, n, &one, ops.dz.data(), n, 1,
                  ops.w.data(), k, 1, &zero, ops.out.data(), k, 1);
        break;
      case bench::Form::kBackwardWeights:  // dW += dZᵀ·X: dZᵀ (N×M) has row stride 1, column N
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, n, k, m, &one, ops.dz.data(), 1, n,
                  ops.x.data(), k, 1, &one, ops.out.data(), k, 1);
        break;
    }
  });
}
