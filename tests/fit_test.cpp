// fit(): the library path the CLI and the Python package share. It must give bitwise the model of
// the manual sequence (spec, split, preprocessing, init, train) and of `backprop train` with the
// same settings, take its defaults from the task, and refuse bad settings with messages that name
// the setting as the caller names it.
#include "backprop/fit.hpp"

#include <gtest/gtest.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "backprop/rng.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

// Three blobs in two features, in the units a CSV file might hold (not standardised).
Dataset blobs(Index n_per_class, std::uint64_t seed) {
  Dataset ds;
  ds.source = "blobs";
  ds.format = DataFormat::kCsv;
  ds.task = Task::kClassify;
  ds.n = 3 * n_per_class;
  ds.n_features = 2;
  ds.sample_shape = {2};
  ds.feature_names = {"a", "b"};
  ds.label_columns = {"label"};
  ds.labels_source = "blobs";
  ds.class_names = {"0", "1", "2"};
  Rng rng(seed);
  const double centre[3][2] = {{10, 200}, {14, 260}, {8, 300}};
  for (Index c = 0; c < 3; ++c) {
    for (Index i = 0; i < n_per_class; ++i) {
      ds.x_f32.push_back(static_cast<float>(centre[c][0] + 2 * rng.normal()));
      ds.x_f32.push_back(static_cast<float>(centre[c][1] + 30 * rng.normal()));
      ds.labels.push_back(static_cast<std::int32_t>(c));
    }
  }
  return ds;
}

FitConfig small_config() {
  FitConfig c;
  c.hidden = {8};
  c.activation = "tanh";
  c.train.epochs = 3;
  c.train.batch_size = 8;
  c.train.seed = 7;
  c.val_split = 0.2;
  return c;
}

// The shortest text that reads back to the same float.
std::string format_csv_float(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Fit, GivesTheBitsOfTheManualSequence) {
  const Dataset ds = blobs(40, 1);
  const FitConfig c = small_config();
  const FitResult r = fit(ds, c);

  // The same steps by hand, from the lower-level calls.
  ModelSpec spec{.layers = {2, 8, 3},
                 .hidden = Activation::kTanh,
                 .output = Activation::kSoftmax,
                 .loss = Loss::kCrossEntropy};
  Model m(spec);
  m.init(Init::kXavier, 7);
  const Split split = split_validation(ds, 0.2, 7);
  TrainData data;
  data.data = &ds;
  data.train_rows = split.train;
  data.val_rows = split.val;
  data.pre = standardize_preprocess(ds, split.train);
  Sgd sgd(0.1);
  const std::vector<EpochStats> history = train(m, sgd, data, c.train);

  EXPECT_EQ(r.model.spec(), spec);
  EXPECT_TRUE(same_bits(r.model.params(), m.params()));
  EXPECT_EQ(r.pre, data.pre);
  EXPECT_EQ(r.split.train, split.train);
  EXPECT_EQ(r.split.val, split.val);
  ASSERT_EQ(r.history.size(), history.size());
  EXPECT_EQ(r.history.back().val.loss, history.back().val.loss);
  EXPECT_EQ(r.info.task, Task::kClassify);
  EXPECT_EQ(r.info.class_names, ds.class_names);
  EXPECT_EQ(r.info.feature_names, ds.feature_names);
  EXPECT_EQ(r.info.init, "xavier");
  EXPECT_EQ(r.info.seed, 7u);
  EXPECT_EQ(r.info.preprocess, data.pre);
  EXPECT_EQ(r.info.data_hash, data_hash(ds));
  EXPECT_EQ(r.info.train_examples, static_cast<Index>(split.train.size()));
}

// The CLI goes through the same steps: the same data and settings give the same model file bits.
TEST(Fit, GivesTheBitsOfTheCli) {
  test::TempDir dir;
  const Dataset ds = blobs(30, 2);
  const std::string csv = (dir.path() / "blobs.csv").string();
  {
    std::ofstream out(csv);
    out << "a,b,label\n";
    for (Index i = 0; i < ds.n; ++i) {
      out << format_csv_float(ds.x_f32[static_cast<std::size_t>(2 * i)]) << ","
          << format_csv_float(ds.x_f32[static_cast<std::size_t>(2 * i + 1)]) << ","
          << ds.labels[static_cast<std::size_t>(i)] << "\n";
    }
  }
  const std::string model = (dir.path() / "m.safetensors").string();
  const std::string cmd = std::string(BACKPROP_CLI) + " train --train " + csv +
                          " --hidden 8 --activation tanh --epochs 3 --batch-size 8 --seed 7 "
                          "--val-split 0.2 --optimizer adam --quiet --save " +
                          model + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const ModelFile cli = load_model(model);

  const Dataset read = load_csv(csv, {}, {});
  FitConfig c = small_config();
  c.optimizer.kind = "adam";
  const FitResult r = fit(read, c);
  EXPECT_TRUE(same_bits(r.model.params(), cli.model.params()));
  EXPECT_EQ(serialize_model(r.model, r.info), serialize_model(cli.model, cli.info));
}

TEST(Fit, TakesItsDefaultsFromTheTask) {
  FitConfig c;
  EXPECT_EQ(fit_loss_name(c, Task::kClassify), "cross-entropy");
  EXPECT_EQ(fit_output_name(c, Task::kClassify), "softmax");
  EXPECT_EQ(fit_loss_name(c, Task::kRegress), "quadratic");
  EXPECT_EQ(fit_output_name(c, Task::kRegress), "identity");
  c.loss = "quadratic";
  EXPECT_EQ(fit_output_name(c, Task::kClassify), "sigmoid");
  EXPECT_EQ(fit_init(c, Activation::kRelu), Init::kHe);
  EXPECT_EQ(fit_init(c, Activation::kSigmoid), Init::kXavier);

  const Dataset ds = blobs(5, 3);
  EXPECT_EQ(fit_spec(c, ds).layers, (std::vector<Index>{2, 100, 3}));
  c.layers = {2, 4, 5, 3};
  EXPECT_EQ(fit_spec(c, ds).layers, c.layers);

  // Features: CSV standardised by default, other formats scaled, either forced by `standardize`.
  Dataset memory = ds;
  memory.format = DataFormat::kMemory;
  EXPECT_TRUE(fit_standardizes(c, ds));
  EXPECT_FALSE(fit_standardizes(c, memory));
  c.standardize = 0;
  EXPECT_FALSE(fit_standardizes(c, ds));
  EXPECT_EQ(fit_preprocess(c, ds, all_rows(ds)), scale_preprocess(ds));
  c.standardize = 1;
  EXPECT_TRUE(fit_standardizes(c, memory));
}

TEST(Fit, RefusesBadSettingsNamingThem) {
  const Dataset ds = blobs(5, 4);
  auto fails = [&](void (*change)(FitConfig&), ErrorCode code,
                   const std::vector<std::string>& parts) {
    FitConfig c = small_config();
    change(c);
    test::expect_error([&] { fit(ds, c); }, code, parts);
  };
  fails([](FitConfig& c) { c.activation = "softmax"; }, ErrorCode::kUsage,
        {"activation: 'softmax'", "output activation"});
  fails([](FitConfig& c) { c.activation = "foo"; }, ErrorCode::kUsage, {"activation: ", "'foo'"});
  fails([](FitConfig& c) { c.output = "tanh"; }, ErrorCode::kUsage,
        {"output: 'tanh'", "not an output activation"});
  fails(
      [](FitConfig& c) {
        c.loss = "cross-entropy";
        c.output = "identity";
      },
      ErrorCode::kUsage, {"loss cross-entropy needs probabilities", "output identity"});
  fails([](FitConfig& c) { c.init = "zeros"; }, ErrorCode::kUsage, {"init: ", "'zeros'"});
  fails([](FitConfig& c) { c.optimizer.kind = "lbfgs"; }, ErrorCode::kUsage,
        {"optimizer: ", "lbfgs"});
  fails([](FitConfig& c) { c.layers = {2}; }, ErrorCode::kUsage, {"layers needs at least"});
  fails(
      [](FitConfig& c) {
        c.layers = {3, 4, 3};
      },
      ErrorCode::kData, {"layers starts with 3", "blobs has 2 features"});
  fails(
      [](FitConfig& c) {
        c.layers = {2, 4, 2};
      },
      ErrorCode::kData, {"layers ends with 2", "blobs has 3 classes"});
  fails([](FitConfig& c) { c.hidden = {0}; }, ErrorCode::kUsage, {"width"});
  fails([](FitConfig& c) { c.val_split = 1.5; }, ErrorCode::kUsage, {"val_split 1.5", "[0, 1)"});
  fails([](FitConfig& c) { c.val_split = 0.99; }, ErrorCode::kData,
        {"val_split leaves no training rows"});

  // A caller's own names for the settings.
  FitConfig c = small_config();
  c.activation = "foo";
  c.names.activation = "--activation";
  test::expect_error([&] { fit(ds, c); }, ErrorCode::kUsage, {"--activation: ", "'foo'"});
}

}  // namespace
}  // namespace backprop
