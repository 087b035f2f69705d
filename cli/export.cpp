// backprop export: a saved model in another format. Today: ONNX (opset 13), for ONNX Runtime and
// the other runtimes that read it; the graph is described in include/backprop/onnx.hpp.
#include "backprop/onnx.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace backprop::cli {

namespace {

struct ExportFlags {
  std::string model, format = "onnx", output;
  std::uint64_t max_input_bytes = ReadLimits{}.max_input_bytes;
};

int run_export(const ExportFlags& f) {
  check_output_path("--output", f.output, {f.model});
  ReadLimits limits;
  limits.max_input_bytes = f.max_input_bytes;
  ModelFile mf = load_model(f.model, limits);
  save_onnx(f.output, mf.model, mf.info);
  std::printf("exported %s (%s, %s) to %s (ONNX, opset %d, dynamic batch)\n", f.model.c_str(),
              format_layers(mf.model.spec().layers).c_str(),
              mf.info.task == Task::kClassify ? "classify" : "regress", f.output.c_str(),
              kOnnxOpset);
  return 0;
}

}  // namespace

Run add_export(CLI::App& app) {
  auto f = std::make_shared<ExportFlags>();
  CLI::App* cmd = app.add_subcommand("export", "write a saved model in another format (ONNX)");
  cmd->add_option("--model", f->model, "model file (safetensors)")->required();
  cmd->add_option("--format", f->format, "output format: onnx (default onnx)")
      ->check(CLI::IsMember({"onnx"}));
  cmd->add_option("--output", f->output, "file to write, e.g. model.onnx")->required();
  cmd->add_option("--max-input-bytes", f->max_input_bytes,
                  "refuse a model file larger than this many bytes")
      ->check(unsigned_range(1, std::uint64_t{1} << 50));
  return [f] { return run_export(*f); };
}

}  // namespace backprop::cli
