// backprop gradcheck: the analytic gradient of every weight and bias against central finite
// differences, in double precision, on a random network and batch (gradcheck.hpp).
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"
#include "kernels/kernels.hpp"

namespace backprop::cli {

namespace {

struct GradcheckFlags {
  std::string layers;
  std::string activation = "sigmoid", output = "softmax", loss = "cross-entropy";
  double leaky_slope = 0.01;
  Index batch = 7;
  std::uint64_t seed = 1;
  std::string precision = "double";
};

int run_gradcheck(const GradcheckFlags& f) {
  ModelSpec spec;
  spec.layers = parse_width_list("--layers", f.layers);
  parse_spec_flags(spec, f.activation, f.output, f.loss);
  spec.leaky_slope = f.leaky_slope;
  spec.validate();
  GradcheckOptions options;
  options.batch = f.batch;
  options.seed = f.seed;
  options.precision = f.precision == "float" ? Precision::kFloat : Precision::kDouble;
  GradcheckReport report = gradcheck(spec, options);
  const double rel_tol = f.precision == "float" ? kFloatRelTol : options.rel_tol;
  const double abs_floor = f.precision == "float" ? kFloatAbsFloor : options.abs_floor;

  std::printf(
      "gradcheck %s: %s hidden, %s output, %s loss; batch %lld, seed %llu, %lld parameters\n",
      f.layers.c_str(), std::string(to_string(spec.hidden)).c_str(),
      std::string(to_string(spec.output)).c_str(), std::string(to_string(spec.loss)).c_str(),
      static_cast<long long>(f.batch), static_cast<unsigned long long>(f.seed),
      static_cast<long long>(spec.n_params()));
  if (options.precision == Precision::kFloat) {
    std::printf("analytic gradient in float on the %s kernels, against double differences\n",
                kernels::active().name);
  }
  std::printf("%5s  %-6s  %7s  %11s  %11s  %11s  %6s\n", "layer", "tensor", "size", "max|grad|",
              "max abs err", "max rel err", "failed");
  for (const GradcheckTensor& t : report.tensors) {
    std::printf("%5lld  %-6s  %7lld  %11.3e  %11.3e  %11.3e  %6lld\n",
                static_cast<long long>(t.layer + 1), t.is_bias ? "bias" : "weight",
                static_cast<long long>(t.size), t.max_abs_grad, t.max_abs_err, t.max_rel_err,
                static_cast<long long>(t.n_failed));
  }
  if (report.passed()) {
    std::printf("PASSED: every element within %g relative (absolute floor %g%s)\n", rel_tol,
                abs_floor, f.precision == "float" ? ", or 1% of its tensor's largest" : "");
    return 0;
  }
  std::printf("FAILED: elements above %g relative error (absolute floor %g)\n", rel_tol, abs_floor);
  return 1;
}

}  // namespace

Run add_gradcheck(CLI::App& app) {
  auto f = std::make_shared<GradcheckFlags>();
  CLI::App* cmd = app.add_subcommand(
      "gradcheck", "check the analytic gradients against finite differences (double precision)");
  cmd->add_option("--layers", f->layers, "all widths, inputs to outputs: 5,7,3")->required();
  cmd->add_option("--activation", f->activation, "hidden activation (default sigmoid)");
  cmd->add_option("--output", f->output, "output activation (default softmax)");
  cmd->add_option("--loss", f->loss, "quadratic or cross-entropy (default cross-entropy)");
  cmd->add_option("--leaky-slope", f->leaky_slope, "leaky ReLU slope (default 0.01)")
      ->check(number_range(1e-6, 0.999999));
  cmd->add_option("--batch-size", f->batch, "examples in the random batch (default 7)")
      ->check(integer_range(1, 4096));
  cmd->add_option("--precision", f->precision,
                  "double: the reference path, held to 1e-6; float: the path training takes (the "
                  "active SIMD kernels), held to 1e-4 (default double)")
      ->check(CLI::IsMember({"double", "float"}));
  cmd->add_option("--seed", f->seed, "seed of the random network and data (default 1)")
      ->check(unsigned_range(0, UINT64_MAX));
  return [f] { return run_gradcheck(*f); };
}

}  // namespace backprop::cli
