// Checkpoints: round trip, every truncation and every single-bit flip rejected (RELIABILITY
// B.2.4), the fallback past a corrupt newest file, pruning to the newest K, temporaries ignored.
#include "backprop/checkpoint.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "backprop/rng.hpp"
#include "test_util.hpp"

namespace backprop {
namespace {

struct Fixture {
  Model model{ModelSpec{.layers = {3, 5, 2}}};
  ModelInfo info;
  std::unique_ptr<Optimizer> optimizer = make_optimizer({.kind = "adam"});
  TrainState state;

  explicit Fixture(int epoch = 2, Index batch = 3) {
    model.init(Init::kXavier, 4);
    info.class_names = {"no", "yes"};
    info.feature_names = {"a", "b", "c"};
    // Two optimizer steps so the state is not trivial.
    Rng rng(1);
    // The gradient lives in a model-shaped arena so its alignment padding stays zero, as a
    // real gradient's does.
    Model grad = model;
    for (int s = 0; s < 2; ++s) {
      for (Index l = 0; l < grad.n_layers(); ++l) {
        auto w = grad.weight(l);
        for (Index r = 0; r < w.rows; ++r)
          for (Index c = 0; c < w.cols; ++c) w(r, c) = static_cast<float>(rng.normal());
        for (float& v : grad.bias(l)) v = static_cast<float>(rng.normal());
      }
      optimizer->step(model.params(), grad.params());
    }
    state.epoch = epoch;
    state.batch = batch;
    state.order = {4, 1, 3, 0, 2};
    state.shuffle_rng = Rng(5).state();
    state.dropout_rng = Rng(6).state();
    state.seen = 21;
    state.correct = 17;
    state.loss_sum = 12.5;
    state.best_val_loss = 0.25;
    state.best_epoch = 1;
    state.best_params.assign(model.params().begin(), model.params().end());
    for (int e = 1; e <= epoch; ++e) {
      EpochStats s;
      s.epoch = e;
      s.train = {21, 0.5 / e, 0.8, kNoValue};
      s.learning_rate = 0.01;
      s.layers = {LayerHealth{1.0, 0.5, 0.1, kNoValue}, LayerHealth{2.0, 0.25, kNoValue, kNoValue}};
      s.best = e == 1;
      state.history.push_back(s);
    }
  }

  test::Bytes bytes() const {
    return serialize_checkpoint(model, info, *optimizer, state, R"({"lr":0.1})", "xxh3-128:ab");
  }
};

TEST(Checkpoint, RoundTripsEverything) {
  Fixture f;
  Checkpoint c = parse_checkpoint(f.bytes(), "c.safetensors", {});
  EXPECT_EQ(0, std::memcmp(c.model.model.params().data(), f.model.params().data(),
                           f.model.params().size_bytes()));
  EXPECT_EQ(c.optimizer, "adam");
  EXPECT_EQ(c.optimizer_state, f.optimizer->state());
  EXPECT_EQ(c.config, R"({"lr":0.1})");
  EXPECT_EQ(c.data_hash, "xxh3-128:ab");
  EXPECT_EQ(c.state.epoch, 2);
  EXPECT_EQ(c.state.batch, 3);
  EXPECT_EQ(c.state.order, f.state.order);
  EXPECT_EQ(c.state.shuffle_rng, f.state.shuffle_rng);
  EXPECT_EQ(c.state.dropout_rng, f.state.dropout_rng);
  EXPECT_EQ(c.state.loss_sum, 12.5);
  EXPECT_EQ(c.state.best_params, f.state.best_params);
  EXPECT_EQ(c.state.plateau_best, f.state.plateau_best);  // +inf survives
  ASSERT_EQ(c.state.history.size(), 2u);
  EXPECT_EQ(c.state.history[1].train.loss, 0.25);
  EXPECT_TRUE(std::isnan(c.state.history[0].train.rmse));
  EXPECT_TRUE(c.state.history[0].best);
  EXPECT_EQ(c.state.history[0].layers[0].saturated, 0.1);
  EXPECT_EQ(c.model.info.class_names, f.info.class_names);
  // Deterministic bytes.
  EXPECT_EQ(f.bytes(), f.bytes());
}

TEST(Checkpoint, RejectsEveryTruncationAndEverySingleBitFlip) {
  Fixture f;
  const test::Bytes good = f.bytes();
  for (std::size_t len = 0; len < good.size(); ++len) {
    test::Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    ASSERT_THROW(parse_checkpoint(cut, "c", {}), Error) << "truncated to " << len;
  }
  std::size_t rejected = 0, total = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      test::Bytes b = good;
      b[i] ^= static_cast<std::uint8_t>(1u << bit);
      ++total;
      try {
        parse_checkpoint(b, "c", {});
        ADD_FAILURE() << "a flip of bit " << bit << " at byte " << i << " of " << good.size()
                      << " was accepted";
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_EQ(rejected, total);
}

TEST(Checkpoint, RefusesForeignFiles) {
  Fixture f;
  test::expect_error([&] { parse_checkpoint(serialize_model(f.model, f.info), "m", {}); },
                     ErrorCode::kFormat, {"m: ", "not a backprop checkpoint"});
}

void write_at(const std::string& dir, int epoch) {
  Fixture f(epoch, 0);
  CheckpointWriter w(dir, 3, "{}", "h", f.info);
  w.write(f.model, *f.optimizer, f.state);
}

TEST(FindCheckpoint, FallsBackPastACorruptNewestAndSaysSo) {
  test::TempDir dir;
  CheckpointWriter w(dir.path(), 3, "{}", "h", Fixture().info);
  for (int e = 1; e <= 3; ++e) {
    Fixture f(e, 0);
    w.write(f.model, *f.optimizer, f.state);
  }
  std::vector<std::string> files = list_checkpoints(dir.path());
  ASSERT_EQ(files.size(), 3u);
  // Flip one byte in the newest one's data.
  test::Bytes b = test::read_bytes(files.back());
  b[b.size() - 10] ^= 0x40;
  test::write_bytes(files.back(), b);
  std::vector<std::string> skipped;
  Checkpoint c = find_checkpoint(dir.path(), {}, &skipped);
  EXPECT_EQ(c.state.epoch, 2);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find(files.back()), std::string::npos);
  EXPECT_NE(skipped[0].find("checksum mismatch"), std::string::npos) << skipped[0];
  // A temporary left by a crash is never considered.
  test::write_bytes(dir / "checkpoint-000009-000000000.safetensors.tmp.ab12cd",
                    test::Bytes{1, 2, 3});
  EXPECT_EQ(list_checkpoints(dir.path()).size(), 3u);
  // With every checkpoint corrupt: an error naming what was tried.
  for (const std::string& file : files) test::write_bytes(file, test::Bytes{0, 1});
  test::expect_error([&] { find_checkpoint(dir.path(), {}, nullptr); }, ErrorCode::kData,
                     {dir.path().string(), "no valid checkpoint"});
}

TEST(CheckpointWriter, KeepsTheNewestK) {
  test::TempDir dir;
  for (int e = 1; e <= 5; ++e) write_at(dir.path(), e);
  std::vector<std::string> files = list_checkpoints(dir.path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_NE(files.front().find("checkpoint-000003-"), std::string::npos);
  EXPECT_NE(files.back().find("checkpoint-000005-"), std::string::npos);
  EXPECT_EQ(dir.entries().size(), 3u);  // no temporaries left
}

TEST(CheckpointWriter, RefusesANonFiniteModelAndKeepsThePrevious) {
  test::TempDir dir;
  write_at(dir.path(), 1);
  Fixture f(2, 0);
  f.model.weight(0)(0, 0) = NAN;
  CheckpointWriter w(dir.path(), 3, "{}", "h", f.info);
  EXPECT_THROW(w.write(f.model, *f.optimizer, f.state), Error);
  EXPECT_EQ(find_checkpoint(dir.path(), {}, nullptr).state.epoch, 1);
  EXPECT_EQ(dir.entries().size(), 1u);
}

}  // namespace
}  // namespace backprop
