// backprop info: what a model file holds: architecture, parameter count, provenance.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace backprop::cli {

namespace {

struct InfoFlags {
  std::string model;
  bool json = false;
  std::uint64_t max_input_bytes = ReadLimits{}.max_input_bytes;
};

int run_info(const InfoFlags& f) {
  ReadLimits limits;
  limits.max_input_bytes = f.max_input_bytes;
  ModelFile mf = load_model(f.model, limits);
  const ModelSpec& spec = mf.model.spec();
  const ModelInfo& info = mf.info;
  const bool classify = info.task == Task::kClassify;
  const bool standardized = [&] {
    for (float s : info.preprocess.shift) {
      if (s != 0.0f) return true;
    }
    return false;
  }();
  if (f.json) {
    nlohmann::json j{{"layers", spec.layers},
                     {"hidden_activation", to_string(spec.hidden)},
                     {"output_activation", to_string(spec.output)},
                     {"loss", to_string(spec.loss)},
                     {"parameters", spec.n_params()},
                     {"task", classify ? "classify" : "regress"},
                     {"class_names", info.class_names},
                     {"label_columns", info.label_columns},
                     {"n_features", info.feature_names.size()},
                     {"sample_shape", info.sample_shape},
                     {"standardized", standardized},
                     {"backprop_version", info.version},
                     {"seed", info.seed},
                     {"init", info.init},
                     {"data_hash", info.data_hash},
                     {"train_examples", info.train_examples}};
    if (spec.hidden == Activation::kLeakyRelu) j["leaky_relu_slope"] = spec.leaky_slope;
    if (!classify) j["standardized_targets"] = info.preprocess.standardizes_targets();
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::string arch = format_layers(spec.layers);
  std::printf("model        %s\n", f.model.c_str());
  std::printf("layers       %s\n", arch.c_str());
  std::printf("activations  %s hidden, %s output\n", std::string(to_string(spec.hidden)).c_str(),
              std::string(to_string(spec.output)).c_str());
  std::printf("loss         %s\n", std::string(to_string(spec.loss)).c_str());
  std::printf("parameters   %s\n", format_thousands(static_cast<double>(spec.n_params())).c_str());
  for (Index l = 0; l < spec.n_layers(); ++l) {
    auto u = static_cast<std::size_t>(l);
    std::printf("  %lld.weight %lldx%lld, %lld.bias %lld\n", static_cast<long long>(2 * l),
                static_cast<long long>(spec.layers[u + 1]), static_cast<long long>(spec.layers[u]),
                static_cast<long long>(2 * l), static_cast<long long>(spec.layers[u + 1]));
  }
  std::printf("task         %s", classify ? "classify" : "regress");
  if (classify) {
    std::printf(" (%zu classes:", info.class_names.size());
    for (std::size_t i = 0; i < info.class_names.size() && i < 20; ++i) {
      std::printf(" %s", info.class_names[i].c_str());
    }
    std::printf("%s)", info.class_names.size() > 20 ? " ..." : "");
  }
  if (!classify) {
    std::printf(" (%zu targets%s)", info.label_columns.size(),
                info.preprocess.standardizes_targets() ? ", trained standardised" : "");
  }
  std::printf("\ninputs       %zu features%s\n", info.feature_names.size(),
              standardized ? ", standardised" : "");
  std::printf("trained by   backprop %s, seed %llu, init %s, %s examples\n", info.version.c_str(),
              static_cast<unsigned long long>(info.seed), info.init.c_str(),
              format_thousands(static_cast<double>(info.train_examples)).c_str());
  std::printf("data hash    %s\n", info.data_hash.c_str());
  return 0;
}

}  // namespace

Run add_info(CLI::App& app) {
  auto f = std::make_shared<InfoFlags>();
  CLI::App* cmd = app.add_subcommand("info", "describe a model file");
  cmd->add_option("--model", f->model, "model file (safetensors)")->required();
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->add_option("--max-input-bytes", f->max_input_bytes, "refuse larger files")
      ->check(unsigned_range(1, std::uint64_t{1} << 50));
  return [f] { return run_info(*f); };
}

}  // namespace backprop::cli
