// Model files between backprop and PyTorch (python/backprop_torch.py), both ways:
//   - our models, trained by the CLI with every hidden and output activation, open in PyTorch as
//     they are (load_state_dict on a plain nn.Sequential, and backprop_torch.load), give our
//     outputs on 1,000 test inputs, and save back to the same bytes;
//   - models built and trained in PyTorch and saved with backprop_torch.save give PyTorch's
//     outputs, loss and accuracy in `backprop eval` and `predict`, and `train --init-from` starts
//     from them: one full-batch SGD step here gives PyTorch's parameters;
//   - the module refuses what a backprop model cannot hold.
// tests/interop/torch_interop.py is PyTorch's side; it prints the measurements and these tests
// hold them to issue 5's bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backprop/data.hpp"
#include "backprop/model_file.hpp"
#include "interop/interop_util.hpp"

namespace backprop {
namespace {

using interop::json;
using interop::TempDir;

// Issue 5's bound on outputs, both ways. Both sides compute a float32 forward pass, summing in
// different orders and with different exp/tanh implementations: a few ulps of outputs of order 1
// (about 1e-7); a wrong activation, slope or preprocessing is off by 1e-2 or more.
constexpr double kMaxOutputDiff = 1e-5;
// The loss eval reports (double sums of float terms) against PyTorch's float32 mean.
constexpr double kMaxLossRel = 1e-5;
// --init-from: one full-batch SGD step here and in PyTorch, held as in torch_step_test.cpp: each
// parameter tensor within 1e-6 of PyTorch's, relative to the tensor's largest entry
// (max|ours − torch| / max|torch|).
constexpr double kMaxStepRel = 1e-6;

std::string s(const json& j) {
  return j.get<std::string>();
}

// What the CLI trains for the first test: one model per hidden activation, every output.
struct Trained {
  std::string name;
  std::vector<std::string> train_args;  // after `backprop train`
  std::string test_x;                   // .npy inputs to predict
};

TEST(TorchInterop, OurModelsOpenInPyTorchWithTheSameOutputs) {
  TempDir dir;
  const std::string d = dir.path().string();
  interop::python("torch_interop.py", {"data", d}, dir);
  const std::vector<Trained> models = {
      {"sigmoid_softmax",
       {"--train", d + "/cls_train_x.npy", "--labels", d + "/cls_train_y.npy", "--standardize",
        "--hidden", "16", "--activation", "sigmoid"},
       d + "/cls_test_x.npy"},
      {"tanh_sigmoid_quadratic",
       {"--train", d + "/cls_train_x.npy", "--labels", d + "/cls_train_y.npy", "--standardize",
        "--hidden", "10,8", "--activation", "tanh", "--output", "sigmoid", "--loss", "quadratic"},
       d + "/cls_test_x.npy"},
      {"relu_images",
       {"--train", d + "/img_train_x.npy", "--labels", d + "/img_train_y.npy", "--hidden", "20",
        "--activation", "relu"},
       d + "/img_test_x.npy"},
      {"leaky_relu_sigmoid_cross_entropy",
       {"--train", d + "/cls_train_x.npy", "--labels", d + "/cls_train_y.npy", "--standardize",
        "--hidden", "12", "--activation", "leaky-relu", "--leaky-slope", "0.2", "--output",
        "sigmoid"},
       d + "/cls_test_x.npy"},
      {"identity_regression",
       {"--train", d + "/reg_train_x.npy", "--labels", d + "/reg_train_y.npy", "--task", "regress",
        "--standardize", "--hidden", "9", "--activation", "identity", "--lr", "0.01"},
       d + "/reg_test_x.npy"},
      {"tanh_regression",
       {"--train", d + "/reg_train_x.npy", "--labels", d + "/reg_train_y.npy", "--task", "regress",
        "--hidden", "9", "--activation", "tanh", "--lr", "0.01"},
       d + "/reg_test_x.npy"},
  };
  json cases = json::array();
  for (const Trained& t : models) {
    const std::string model = d + "/" + t.name + ".safetensors";
    const std::string pred = d + "/" + t.name + "_pred.npy";
    std::vector<std::string> args = {"train"};
    args.insert(args.end(), t.train_args.begin(), t.train_args.end());
    for (const char* a : {"--epochs", "3", "--batch-size", "16", "--quiet", "--save"})
      args.push_back(a);
    args.push_back(model);
    interop::cli(args, dir);
    interop::cli(
        {"predict", "--model", model, "--input", t.test_x, "--format", "npy", "--output", pred},
        dir);
    cases.push_back({{"model", model}, {"x", t.test_x}, {"predictions", pred}});
  }
  interop::write_text(d + "/cases.json", cases.dump());
  json out = interop::python("torch_interop.py", {"ours", d, d + "/cases.json"}, dir);
  ASSERT_TRUE(out.contains("cases")) << out.dump();
  ASSERT_EQ(out["cases"].size(), models.size());
  double worst = 0;
  for (const json& r : out["cases"]) {
    SCOPED_TRACE(r.dump());
    EXPECT_EQ(r["examples"], 1000);
    EXPECT_TRUE(r["shape_ok"].get<bool>());
    EXPECT_LE(r["max_abs"].get<double>(), kMaxOutputDiff);
    EXPECT_LE(r["max_abs_with_preprocessing_module"].get<double>(), kMaxOutputDiff);
    EXPECT_TRUE(r["same_bytes"].get<bool>()) << "save(load(f)) must give f's bytes back";
    EXPECT_TRUE(r["state_dict_ok"].get<bool>()) << "load_state_dict must take the file as it is";
    worst = std::max(
        {worst, r["max_abs"].get<double>(), r["max_abs_with_preprocessing_module"].get<double>()});
  }
  // The activations the module built, in order, for two of the models.
  EXPECT_EQ(out["cases"][2]["modules"], json({"Linear", "ReLU", "Linear", "Softmax"}));
  EXPECT_EQ(out["cases"][3]["modules"], json({"Linear", "LeakyReLU", "Linear", "Sigmoid"}));
  // A regression model, its targets standardised in training: ToTargets gives the targets' units.
  EXPECT_EQ(out["cases"][4]["modules"],
            json({"Linear", "Identity", "Linear", "Identity", "ToTargets"}));
  interop::report("ours -> PyTorch: largest output difference (max abs, 6 models x 1000 inputs)",
                  worst);
}

TEST(TorchInterop, PyTorchModelsGiveTheSameOutputsAndAccuracyInEvalAndPredict) {
  TempDir dir;
  const std::string d = dir.path().string();
  json expected = interop::python("torch_interop.py", {"make", d}, dir);
  ASSERT_TRUE(expected.contains("words")) << expected.dump();

  // eval: the same accuracy and loss.
  for (const auto& [name, x] :
       {std::pair{"words", "/test_x.npy"}, std::pair{"sigmoid", "/test_x_standardized.npy"}}) {
    SCOPED_TRACE(name);
    interop::RunResult r =
        interop::cli({"eval", "--model", d + "/" + name + ".safetensors", "--test", d + x,
                      "--test-labels", d + "/test_y.npy", "--json"},
                     dir);
    json ev = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(ev.is_object()) << r.describe();
    EXPECT_EQ(ev["examples"], 1000);
    EXPECT_EQ(ev["accuracy"].get<double>(), expected[name]["accuracy"].get<double>());
    const double loss_rel =
        std::abs(ev["loss"].get<double>() - expected[name]["loss"].get<double>()) /
        expected[name]["loss"].get<double>();
    EXPECT_LE(loss_rel, kMaxLossRel) << ev.dump() << " vs " << expected[name].dump();
    interop::report(std::string("PyTorch -> ours: eval loss difference (relative), ") + name,
                    loss_rel);
    interop::report(std::string("PyTorch -> ours: eval accuracy ") + name + " (PyTorch's: " +
                        std::to_string(expected[name]["accuracy"].get<double>()) + ")",
                    ev["accuracy"].get<double>());
  }
  // The word class names came through.
  interop::RunResult r = interop::cli({"info", "--model", d + "/words.safetensors", "--json"}, dir);
  EXPECT_NE(r.out.find("\"cat\""), std::string::npos) << r.out;

  // predict: the same outputs.
  json cases = json::array();
  for (const auto& [name, x] :
       {std::pair{"words", "/test_x.npy"}, std::pair{"sigmoid", "/test_x_standardized.npy"},
        std::pair{"regress", "/test_x_standardized.npy"}}) {
    const std::string pred = d + "/" + name + "_pred.npy";
    interop::cli({"predict", "--model", d + "/" + name + ".safetensors", "--input", d + x,
                  "--format", "npy", "--output", pred},
                 dir);
    cases.push_back({{"predictions", pred}, {"expected", d + "/" + name + "_expected.npy"}});
  }
  interop::write_text(d + "/cases.json", cases.dump());
  json out = interop::python("torch_interop.py", {"compare", d + "/cases.json"}, dir);
  ASSERT_EQ(out["cases"].size(), 3u) << out.dump();
  double worst = 0;
  for (const json& c : out["cases"]) {
    SCOPED_TRACE(c.dump());
    EXPECT_TRUE(c["same_shape"].get<bool>());
    EXPECT_EQ(s(c["dtype"]), "float32");
    EXPECT_LE(c["max_abs"].get<double>(), kMaxOutputDiff);
    worst = std::max(worst, c["max_abs"].get<double>());
  }
  EXPECT_EQ(out["cases"][0]["argmax_differs"], 0);
  EXPECT_EQ(out["cases"][1]["argmax_differs"], 0);
  interop::report("PyTorch -> ours: largest predict output difference (max abs, 3 models x 1000)",
                  worst);

  // The CSV form names the word classes.
  r = interop::cli({"predict", "--model", d + "/words.safetensors", "--input", d + "/test_x.npy"},
                   dir);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), "predicted,p_cat,p_dog,p_bird");
  // The regression model keeps its target names.
  r = interop::cli({"info", "--model", d + "/regress.safetensors", "--json"}, dir);
  EXPECT_NE(r.out.find("\"second\""), std::string::npos) << r.out;
}

TEST(TorchInterop, TrainingWithInitFromStartsFromThePyTorchModel) {
  TempDir dir;
  const std::string d = dir.path().string();
  json expected = interop::python("torch_interop.py", {"make", d}, dir);
  ASSERT_TRUE(expected.contains("init")) << expected.dump();

  interop::RunResult help = interop::run(interop::kCli, {"train", "--help"}, dir);
  ASSERT_NE(help.out.find("--init-from"), std::string::npos)
      << "backprop train has no --init-from yet (issue 5 needs it)";

  // One full-batch SGD step (64 examples, batch 64, one epoch): PyTorch's parameters after its
  // own step from the same file.
  const std::string after = d + "/after.safetensors";
  interop::cli({"train", "--init-from", d + "/init.safetensors", "--train", d + "/step_x.npy",
                "--labels", d + "/step_y.npy", "--batch-size", "64", "--epochs", "1", "--lr", "0.1",
                "--quiet", "--save", after},
               dir);
  ModelFile init = load_model(d + "/init.safetensors");
  ModelFile ours = load_model(after);
  ModelFile torch = load_model(d + "/init_after_step.safetensors");
  EXPECT_EQ(ours.model.spec(), init.model.spec());
  EXPECT_EQ(ours.info.class_names, init.info.class_names);
  EXPECT_EQ(ours.info.preprocess, init.info.preprocess);
  ASSERT_EQ(ours.model.spec(), torch.model.spec());
  // max|a − b| / max|b| over one tensor.
  auto norm_rel = [](const float* a, const float* b, std::size_t n) {
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < n; ++i) {
      diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
      scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return diff / scale;
  };
  double worst = 0, moved = 0;
  for (Index l = 0; l < ours.model.n_layers(); ++l) {
    ConstMatrixView w = ours.model.weight(l), wt = torch.model.weight(l), w0 = init.model.weight(l);
    const auto n = static_cast<std::size_t>(w.size());
    worst = std::max(worst, norm_rel(w.data, wt.data, n));
    for (std::size_t i = 0; i < n; ++i)
      moved = std::max(moved, std::abs(static_cast<double>(wt.data[i]) - w0.data[i]));
    auto b = ours.model.bias(l), bt = torch.model.bias(l);
    worst = std::max(worst, norm_rel(b.data(), bt.data(), b.size()));
  }
  EXPECT_GT(moved, 1e-4) << "the step did not change the weights";
  EXPECT_LE(worst, kMaxStepRel);
  interop::report(
      "PyTorch -> ours: --init-from, one SGD step, largest parameter difference "
      "(tensor max-norm relative)",
      worst);

  // The model trained here and PyTorch's after its step: the same outputs on the 1,000 test
  // inputs, the same accuracy.
  double worst_output = 0;
  std::vector<json> evals;
  for (const std::string& model : {after, d + "/init_after_step.safetensors"}) {
    const std::string pred = model + ".pred.npy";
    interop::cli({"predict", "--model", model, "--input", d + "/test_x.npy", "--format", "npy",
                  "--output", pred},
                 dir);
    interop::RunResult r = interop::cli({"eval", "--model", model, "--test", d + "/test_x.npy",
                                         "--test-labels", d + "/test_y.npy", "--json"},
                                        dir);
    evals.push_back(json::parse(r.out, nullptr, false));
  }
  NpyArray p_ours = read_npy(after + ".pred.npy", {});
  NpyArray p_torch = read_npy(d + "/init_after_step.safetensors.pred.npy", {});
  ASSERT_EQ(p_ours.shape, (std::vector<std::uint64_t>{1000, 3}));
  ASSERT_EQ(p_ours.shape, p_torch.shape);
  for (std::size_t i = 0; i < p_ours.data.size(); i += 4) {
    float a, b;
    std::memcpy(&a, &p_ours.data[i], 4);  // little-endian float32, as on this host
    std::memcpy(&b, &p_torch.data[i], 4);
    worst_output = std::max(worst_output, std::abs(static_cast<double>(a) - b));
  }
  EXPECT_LE(worst_output, kMaxOutputDiff);
  ASSERT_TRUE(evals[0].is_object() && evals[1].is_object());
  EXPECT_EQ(evals[0]["accuracy"], evals[1]["accuracy"]);
  interop::report("PyTorch -> ours: --init-from, outputs after the step (max abs, 1000 inputs)",
                  worst_output);
}

TEST(TorchInterop, ModuleRefusesWhatABackpropModelCannotHold) {
  TempDir dir;
  json out = interop::python("torch_interop.py", {"errors", dir.path().string()}, dir);
  const std::vector<std::pair<std::string, std::string>> expect = {
      {"gelu", "GELU"},
      {"mixed_hidden", "different activations"},
      {"softmax_hidden", "output activation only"},
      {"tanh_output", "output activation is tanh"},
      {"log_softmax_output", "LogSoftmax"},
      {"slope_out_of_range", "outside (0, 1)"},
      {"widths_do_not_chain", "takes 4 inputs"},
      {"class_names_count", "2 class_names for 3 outputs"},
      {"cross_entropy_on_identity", "needs probabilities"},
      {"nan_weight", "NaN"},
      {"load_not_a_model", "not a backprop model file"},
  };
  for (const auto& [name, part] : expect) {
    ASSERT_TRUE(out.contains(name)) << out.dump();
    EXPECT_NE(s(out[name]).find(part), std::string::npos) << name << ": " << s(out[name]);
  }
  EXPECT_TRUE(out["nothing_written"].get<bool>());
}

}  // namespace
}  // namespace backprop
