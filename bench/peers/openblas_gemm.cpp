// OpenBLAS's cblas_sgemm on the MLP shapes (bench/peers/common.hpp). Threads through
// openblas_set_num_threads; the kernel OpenBLAS picked (OPENBLAS_CORETYPE may force one) is
// reported as "core".
#include <cblas.h>

#include "common.hpp"

int main(int argc, char** argv) {
  bench::Options o = bench::parse_options(argc, argv);
  openblas_set_num_threads(o.threads);
  bench::print_info("openblas",
                    "\"core\": \"" + bench::json_escape(openblas_get_corename()) +
                        "\", \"config\": \"" + bench::json_escape(openblas_get_config()) +
                        "\", \"threads\": " + std::to_string(openblas_get_num_threads()));
  return bench::run_all("openblas", o, [](const bench::Problem& p, bench::Operands& ops) {
    const blasint m = static_cast<blasint>(p.m), n = static_cast<blasint>(p.n),
                  k = static_cast<blasint>(p.k);
    switch (p.form) {
      case bench::Form::kForward:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, ops.x.data(), k,
                    ops.w.data(), k, 0.0f, ops.out.data(), n);
        break;
      case bench::Form::kBackwardData:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, ops.dz.data(), n,
                    ops.w.data(), k, 0.0f, ops.out.data(), k);
        break;
      case bench::Form::kBackwardWeights:
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, ops.dz.data(), n,
                    ops.x.data(), k, 1.0f, ops.out.data(), k);
        break;
    }
  });
}
