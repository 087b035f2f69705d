// oneDNN's dnnl_sgemm (row-major, like CBLAS) on the MLP shapes (bench/peers/common.hpp).
// oneDNN runs on OpenMP here, so threads are set with omp_set_num_threads; the widest ISA oneDNN
// may dispatch to is reported as "isa".
#include <dnnl.h>
#include <omp.h>

#include "common.hpp"

namespace {

const char* isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_all:
      return "all";
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o = bench::parse_options(argc, argv);
  omp_set_num_threads(o.threads);
  const dnnl_version_t* v = dnnl_version();
  bench::print_info("onednn", "\"version\": \"" + std::to_string(v->major) + "." +
                                  std::to_string(v->minor) + "." + std::to_string(v->patch) +
                                  "\", \"isa\": \"" + isa_name(dnnl_get_effective_cpu_isa()) +
                                  "\", \"threads\": " + std::to_string(omp_get_max_threads()));
  return bench::run_all("onednn", o, [](const bench::Problem& p, bench::Operands& ops) {
    const dnnl_dim_t m = p.m, n = p.n, k = p.k;
    switch (p.form) {
      case bench::Form::kForward:
        dnnl_sgemm('N', 'T', m, n, k, 1.0f, ops.x.data(), k, ops.w.data(), k, 0.0f, ops.out.data(),
                   n);
        break;
      case bench::Form::kBackwardData:
        dnnl_sgemm('N', 'N', m, k, n, 1.0f, ops.dz.data(), n, ops.w.data(), k, 0.0f, ops.out.data(),
                   k);
        break;
      case bench::Form::kBackwardWeights:
        dnnl_sgemm('T', 'N', n, k, m, 1.0f, ops.dz.data(), n, ops.x.data(), k, 1.0f, ops.out.data(),
                   k);
        break;
    }
  });
}
