// Shards (data.hpp) and the library's sharded paths: Shard's parts, keep_shard, and the
// standardisation and evaluation summed over ranks that each hold one part, run here with ranks
// as threads of one process, so that they are tested without mpirun (tests/mpi runs the CLI).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backprop/batch.hpp"
#include "backprop/collective.hpp"
#include "backprop/data.hpp"
#include "backprop/model.hpp"
#include "backprop/optimizer.hpp"
#include "backprop/train.hpp"

namespace backprop {
namespace {

TEST(Shard, PartsAreContiguousBalancedAndCoverEveryRowOnce) {
  for (Index n = 0; n <= 40; ++n) {
    for (int count = 1; count <= 7; ++count) {
      Index next = 0;
      for (int k = 0; k < count; ++k) {
        const Shard s{k, count};
        EXPECT_EQ(s.begin(n), next) << n << " rows, part " << k << " of " << count;
        const Index size = s.end(n) - s.begin(n);
        // The first n % count parts hold one row more.
        EXPECT_EQ(size, n / count + (k < n % count ? 1 : 0));
        next = s.end(n);
      }
      EXPECT_EQ(next, n);
    }
  }
  EXPECT_TRUE(Shard{}.whole());
  EXPECT_EQ(Shard{}.begin(9), 0);
  EXPECT_EQ(Shard{}.end(9), 9);
}

Dataset regression_set(Index n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  Dataset ds;
  ds.source = "memory";
  ds.task = Task::kRegress;
  ds.n = n;
  ds.n_features = 3;
  ds.sample_shape = {3};
  ds.feature_names = {"a", "b", "c"};
  ds.label_columns = {"y0", "y1"};
  for (Index i = 0; i < n; ++i) {
    // Features of different scales and offsets, so that standardisation has work to do.
    ds.x_f32.insert(ds.x_f32.end(), {100 + 5 * g(rng), 0.01f * g(rng), g(rng) - 7});
    ds.targets.insert(ds.targets.end(), {g(rng), 2 * g(rng) + 1});
  }
  return ds;
}

Dataset classification_set(Index n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255), label(0, 3);
  Dataset ds;
  ds.source = "memory";
  ds.task = Task::kClassify;
  ds.n = n;
  ds.n_features = 4;
  ds.sample_shape = {4};
  ds.value_scale = 1.0f / 255.0f;
  ds.feature_names = {"x0", "x1", "x2", "x3"};
  ds.label_columns = {"label"};
  ds.class_names = {"0", "1", "2", "3"};
  for (Index i = 0; i < n * 4; ++i) ds.x_u8.push_back(static_cast<std::uint8_t>(byte(rng)));
  for (Index i = 0; i < n; ++i) ds.labels.push_back(label(rng));
  return ds;
}

TEST(KeepShard, KeepsItsRowsOfEveryArrayAndTheWholesNames) {
  const Dataset whole = regression_set(10, 1);
  Dataset part = whole;
  keep_shard(part, Shard{1, 3});  // rows 4-6 (parts of 4, 3, 3)
  EXPECT_EQ(part.n, 3);
  EXPECT_EQ(part.first_row, 4);
  EXPECT_EQ(part.total_rows, 10);
  EXPECT_EQ(part.whole_rows(), 10);
  EXPECT_EQ(part.feature_names, whole.feature_names);
  EXPECT_EQ(part.label_columns, whole.label_columns);
  EXPECT_EQ(part.x_f32, std::vector<float>(whole.x_f32.begin() + 12, whole.x_f32.begin() + 21));
  EXPECT_EQ(part.targets,
            std::vector<float>(whole.targets.begin() + 8, whole.targets.begin() + 14));

  const Dataset images = classification_set(5, 2);
  Dataset last = images;
  keep_shard(last, Shard{3, 4});  // parts of 2, 1, 1, 1: row 4
  EXPECT_EQ(last.n, 1);
  EXPECT_EQ(last.first_row, 4);
  EXPECT_EQ(last.x_u8, std::vector<std::uint8_t>(images.x_u8.begin() + 16, images.x_u8.end()));
  EXPECT_EQ(last.labels, std::vector<std::int32_t>{images.labels[4]});
  EXPECT_EQ(last.class_names, images.class_names);

  Dataset same = images;
  keep_shard(same, Shard{});
  EXPECT_EQ(same.x_u8, images.x_u8);
  EXPECT_EQ(same.total_rows, 0);
  EXPECT_EQ(same.whole_rows(), 5);
}

// `size` ranks as threads: every sum adds the ranks' vectors element by element in rank order and
// hands every rank the same result.
class ThreadRanks {
 public:
  explicit ThreadRanks(int size)
      : size_(size), barrier_(size), slots_(static_cast<std::size_t>(size)) {}

  class Rank final : public Collective {
   public:
    Rank(ThreadRanks& group, int rank) : group_(group), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return group_.size_; }
    void sum(std::span<double> values) override { group_.sum(rank_, values); }
    void sum(std::span<float> values) override {
      std::vector<double> v(values.begin(), values.end());
      group_.sum(rank_, v);
      for (std::size_t i = 0; i < v.size(); ++i) values[i] = static_cast<float>(v[i]);
    }

   private:
    ThreadRanks& group_;
    int rank_;
  };

  // Runs body(rank) on every rank, each in its own thread.
  void run(const std::function<void(Collective&)>& body) {
    std::vector<std::thread> threads;
    for (int r = 0; r < size_; ++r) {
      threads.emplace_back([this, r, &body] {
        Rank rank(*this, r);
        body(rank);
      });
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  void sum(int rank, std::span<double> values) {
    slots_[static_cast<std::size_t>(rank)].assign(values.begin(), values.end());
    barrier_.arrive_and_wait();
    for (std::size_t i = 0; i < values.size(); ++i) {
      double s = 0;
      for (const auto& slot : slots_) s += slot.at(i);
      values[i] = s;
    }
    barrier_.arrive_and_wait();  // nobody refills a slot before every rank has read them all
  }

  int size_;
  std::barrier<> barrier_;
  std::vector<std::vector<double>> slots_;
};

// Each of `ranks` threads holds part k of `whole`, standardises and evaluates through the sharded
// functions; each must get what one process gets from the whole.
void expect_sharded_like_whole(const Dataset& whole, const ModelSpec& spec, int ranks) {
  SCOPED_TRACE(std::to_string(ranks) + " ranks");
  Model model(spec);
  model.init(Init::kXavier, 7);
  const std::vector<Index> all = all_rows(whole);
  // Regression: the targets standardised too (train's default), so evaluation un-scales outputs.
  Preprocess pre = standardize_preprocess(whole, all);
  if (whole.task == Task::kRegress) standardize_targets(pre, whole, all);
  const Evaluation ev = evaluate(model, whole, {}, pre);

  std::vector<Preprocess> pres(static_cast<std::size_t>(ranks));
  std::vector<Evaluation> evs(static_cast<std::size_t>(ranks));
  ThreadRanks group(ranks);
  group.run([&](Collective& c) {
    Dataset part = whole;
    keep_shard(part, Shard{c.rank(), c.size()});
    Model mine(spec);
    std::copy(model.params().begin(), model.params().end(), mine.params().begin());
    const std::vector<Index> rows = all_rows(part);
    const auto r = static_cast<std::size_t>(c.rank());
    pres[r] = standardize_preprocess_sharded(part, rows, c);
    if (part.task == Task::kRegress) standardize_targets_sharded(pres[r], part, rows, c);
    evs[r] = evaluate_sharded(mine, part, rows, pres[r], c);
  });
  for (int r = 0; r < ranks; ++r) {
    const Preprocess& p = pres[static_cast<std::size_t>(r)];
    const Evaluation& e = evs[static_cast<std::size_t>(r)];
    // Every rank holds the same bits; the whole's up to the order of the sums.
    EXPECT_EQ(p, pres[0]);
    EXPECT_EQ(e.metrics.loss, evs[0].metrics.loss);
    for (std::size_t j = 0; j < pre.shift.size(); ++j) {
      EXPECT_NEAR(p.shift[j], pre.shift[j], 1e-6 * std::fabs(pre.shift[j]) + 1e-12);
      EXPECT_NEAR(p.scale[j], pre.scale[j], 1e-6 * std::fabs(pre.scale[j]));
    }
    ASSERT_EQ(p.target_scale.size(), pre.target_scale.size());
    ASSERT_EQ(p.target_shift.size(), pre.target_shift.size());
    for (std::size_t t = 0; t < pre.target_scale.size(); ++t) {
      EXPECT_NEAR(p.target_shift[t], pre.target_shift[t],
                  1e-6 * std::fabs(pre.target_shift[t]) + 1e-12);
      EXPECT_NEAR(p.target_scale[t], pre.target_scale[t], 1e-6 * pre.target_scale[t]);
    }
    EXPECT_EQ(e.metrics.n, whole.n);
    EXPECT_NEAR(e.metrics.loss, ev.metrics.loss, 1e-6 * std::fabs(ev.metrics.loss));
    if (whole.task == Task::kClassify) {
      EXPECT_EQ(e.confusion, ev.confusion);
      EXPECT_EQ(e.metrics.accuracy, ev.metrics.accuracy);
    } else {
      EXPECT_NEAR(e.metrics.rmse, ev.metrics.rmse, 1e-6 * ev.metrics.rmse);
      EXPECT_NEAR(e.mae, ev.mae, 1e-6 * ev.mae);
      EXPECT_NEAR(e.r2, ev.r2, 1e-6);
    }
  }
}

TEST(Sharded, StandardisationAndEvaluationOverThePartsAreTheWholes) {
  ModelSpec regress{.layers = {3, 5, 2},
                    .hidden = Activation::kTanh,
                    .output = Activation::kIdentity,
                    .loss = Loss::kQuadratic};
  ModelSpec classify{.layers = {4, 6, 4}, .hidden = Activation::kSigmoid};
  for (int ranks : {2, 3, 5}) {
    expect_sharded_like_whole(regression_set(23, 3), regress, ranks);
    expect_sharded_like_whole(classification_set(31, 4), classify, ranks);
  }
  // More ranks than rows: the empty parts add nothing.
  expect_sharded_like_whole(regression_set(3, 5), regress, 5);
}

TEST(Sharded, ARankWithNoRowsToEvaluateAddsNothing) {
  // evaluate_sharded takes exactly the rows given: none is none, not all (as evaluate's empty
  // list means).
  const Dataset whole = classification_set(12, 6);
  ModelSpec spec{.layers = {4, 4}, .hidden = Activation::kSigmoid};
  Model model(spec);
  model.init(Init::kXavier, 1);
  const Preprocess pre = scale_preprocess(whole);
  std::vector<Index> rank0_rows = {1, 4, 9};
  const Evaluation want = evaluate(model, whole, rank0_rows, pre);
  std::vector<Evaluation> got(2);
  ThreadRanks group(2);
  group.run([&](Collective& c) {
    Model mine(spec);
    std::copy(model.params().begin(), model.params().end(), mine.params().begin());
    const std::vector<Index> rows = c.rank() == 0 ? rank0_rows : std::vector<Index>{};
    got[static_cast<std::size_t>(c.rank())] = evaluate_sharded(mine, whole, rows, pre, c);
  });
  for (const Evaluation& e : got) {
    EXPECT_EQ(e.metrics.n, 3);
    EXPECT_EQ(e.confusion, want.confusion);
    EXPECT_DOUBLE_EQ(e.metrics.loss, want.metrics.loss);
  }
}

// Trains `whole` alone, and split over `ranks` threads each holding a part; returns the alone
// model's parameters and every rank's, with every rank's history.
struct Trained {
  std::vector<float> alone;
  std::vector<std::vector<float>> ranks;
  std::vector<std::vector<EpochStats>> histories;
};

Trained train_both_ways(const Dataset& whole, const ModelSpec& spec, TrainOptions o, int ranks) {
  Trained out;
  const auto train_on = [&](const Dataset& ds, Collective* c) {
    Model model(spec);
    model.init(Init::kXavier, 3);
    std::unique_ptr<Optimizer> opt = make_optimizer({.kind = "momentum", .lr = 0.05});
    TrainData data;
    data.data = &ds;
    data.train_rows = all_rows(ds);
    data.sharded = c != nullptr;
    data.pre = c != nullptr ? standardize_preprocess_sharded(ds, data.train_rows, *c)
                            : standardize_preprocess(ds, data.train_rows);
    TrainOptions mine = o;
    mine.collective = c;
    std::vector<EpochStats> h = train(model, *opt, data, mine);
    return std::make_pair(std::vector<float>(model.params().begin(), model.params().end()), h);
  };
  out.alone = train_on(whole, nullptr).first;
  out.ranks.resize(static_cast<std::size_t>(ranks));
  out.histories.resize(static_cast<std::size_t>(ranks));
  ThreadRanks group(ranks);
  group.run([&](Collective& c) {
    Dataset part = whole;
    keep_shard(part, Shard{c.rank(), c.size()});
    auto [params, history] = train_on(part, &c);
    out.ranks[static_cast<std::size_t>(c.rank())] = params;
    out.histories[static_cast<std::size_t>(c.rank())] = history;
  });
  return out;
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(a[i])));
  }
  return diff / scale;
}

TEST(Sharded, FullBatchTrainingOverThePartsIsOneProcesss) {
  // One batch of every row: the order of the rows does not matter, so the parts' training is one
  // process's up to the order of the sums.
  const Dataset whole = regression_set(37, 8);
  const ModelSpec spec{.layers = {3, 8, 2},
                       .hidden = Activation::kTanh,
                       .output = Activation::kIdentity,
                       .loss = Loss::kQuadratic};
  TrainOptions o;
  o.epochs = 25;
  o.batch_size = 1000;
  for (int ranks : {2, 3, 4}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const Trained t = train_both_ways(whole, spec, o, ranks);
    for (int r = 0; r < ranks; ++r) {
      EXPECT_EQ(t.ranks[static_cast<std::size_t>(r)], t.ranks[0]);  // every rank the same bits
      EXPECT_EQ(t.histories[static_cast<std::size_t>(r)].back().train.n, 37);
    }
    EXPECT_LT(relative_difference(t.alone, t.ranks[0]), 1e-5);
    EXPECT_NE(relative_difference(t.alone, t.ranks[0]), 0.0);  // the sums' order did change
  }
}

TEST(Sharded, MiniBatchesTakeEveryRowOnceAnEpochAndRanksStayTogether) {
  // 37 rows in parts of 13, 12, 12 and batches of 5: each batch takes a proportional share of
  // each part, and the epoch's running figures count every row once.
  const Dataset whole = classification_set(37, 9);
  const ModelSpec spec{.layers = {4, 6, 4}, .hidden = Activation::kSigmoid};
  TrainOptions o;
  o.epochs = 4;
  o.batch_size = 5;
  o.dropout = {0.2};
  const Trained t = train_both_ways(whole, spec, o, 3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(t.ranks[static_cast<std::size_t>(r)], t.ranks[0]);
    for (const EpochStats& e : t.histories[static_cast<std::size_t>(r)]) {
      EXPECT_EQ(e.train.n, 37) << "epoch " << e.epoch;
    }
  }
  // Another order of the rows than one process's: not its model.
  EXPECT_NE(t.alone, t.ranks[0]);
}

TEST(Sharded, EveryRankResumesFromRankZerosCheckpointToTheUninterruptedBits) {
  // The CLI's checkpoints hold rank 0's TrainState only; every rank resumes from it and redraws
  // its own order. Stopped in the middle of an epoch, the resumed run must end where the
  // uninterrupted one does, bit for bit.
  const Dataset whole = classification_set(41, 10);
  const ModelSpec spec{.layers = {4, 6, 4}, .hidden = Activation::kTanh};
  constexpr int kRanks = 3;
  TrainOptions o;
  o.epochs = 3;
  o.batch_size = 4;
  o.dropout = {0.1};
  // One rank's run on its part: from the seed's weights, or from rank 0's checkpoint (params,
  // optimizer state, TrainState) when `from` is given; returns the final weights.
  struct Checkpoint {
    std::vector<float> params;
    OptimizerState optimizer;
    TrainState state;
  };
  const auto run_rank = [&](Collective& c, TrainOptions mine, const TrainCallbacks& cb,
                            const Checkpoint* from) {
    Dataset part = whole;
    keep_shard(part, Shard{c.rank(), c.size()});
    TrainData data;
    data.data = &part;
    data.train_rows = all_rows(part);
    data.sharded = true;
    data.pre = standardize_preprocess_sharded(part, data.train_rows, c);
    Model model(spec);
    model.init(Init::kXavier, 5);
    std::unique_ptr<Optimizer> opt = make_optimizer({.kind = "adam", .lr = 0.01});
    if (from != nullptr) {
      std::copy(from->params.begin(), from->params.end(), model.params().begin());
      opt->set_state(from->optimizer, model.params().size());
    }
    mine.collective = &c;
    train(model, *opt, data, mine, cb, from != nullptr ? &from->state : nullptr);
    return std::vector<float>(model.params().begin(), model.params().end());
  };

  std::vector<std::vector<float>> straight(kRanks), resumed(kRanks);
  ThreadRanks uninterrupted(kRanks);
  uninterrupted.run([&](Collective& c) {
    straight[static_cast<std::size_t>(c.rank())] = run_rank(c, o, {}, nullptr);
  });

  // Stopped after the 5th batch of epoch 2 (41 rows in batches of 4: 11 an epoch).
  std::atomic<bool> stop{false};
  Checkpoint rank0;
  ThreadRanks interrupted(kRanks);
  interrupted.run([&](Collective& c) {
    TrainOptions mine = o;
    mine.stop = &stop;
    mine.checkpoint_every_epochs = 0;
    TrainCallbacks cb;
    if (c.rank() == 0) {
      cb.on_batch = [&](const Progress& p) {
        if (p.epoch == 2 && p.done == 20) stop.store(true);
      };
      cb.checkpoint = [&](const Model& m, const Optimizer& op, const TrainState& st) {
        rank0 = {{m.params().begin(), m.params().end()}, op.state(), st};
        return std::string("memory");
      };
    }
    EXPECT_THROW(run_rank(c, mine, cb, nullptr), Error);
  });
  ASSERT_EQ(rank0.state.epoch, 1);
  ASSERT_EQ(rank0.state.batch, 6);  // the stop seen at batch 5 is acted on together at batch 6

  ThreadRanks again(kRanks);
  again.run([&](Collective& c) {
    resumed[static_cast<std::size_t>(c.rank())] = run_rank(c, o, {}, &rank0);
  });
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(resumed[static_cast<std::size_t>(r)], straight[0]) << "rank " << r;
  }
}

TEST(ShardSchedule, EveryBatchHasItsSizeAndEveryPartIsUsedUpEvenly) {
  for (const std::vector<Index>& parts :
       {std::vector<Index>{13, 12, 12}, std::vector<Index>{5, 5}, std::vector<Index>{1, 1, 0, 0},
        std::vector<Index>{7, 0, 3}, std::vector<Index>{100, 1}, std::vector<Index>{2, 2, 2, 2}}) {
    Index n = 0;
    for (Index p : parts) n += p;
    for (Index bs : {Index{1}, Index{2}, Index{3}, Index{5}, n}) {
      ShardSchedule s(parts);
      std::vector<Index> last(parts.size(), 0);
      for (Index start = 0; start < n; start += bs) {
        const Index end = std::min(n, start + bs);
        const std::vector<Index> now = s.before(end);
        Index total = 0;
        for (std::size_t r = 0; r < parts.size(); ++r) {
          EXPECT_GE(now[r], last[r]);  // never goes back
          total += now[r] - last[r];
          // within a row of the proportional share of the prefix
          const double due =
              static_cast<double>(parts[r]) * static_cast<double>(end) / static_cast<double>(n);
          EXPECT_LT(std::fabs(static_cast<double>(now[r]) - due), 1.0);
        }
        EXPECT_EQ(total, end - start) << "batch from " << start;
        last = now;
      }
      EXPECT_EQ(last, parts);
      // Each rank's slice of each batch (one schedule per rank, as each rank keeps its own):
      // the slices follow each other in rank order and fill the batch.
      std::vector<ShardSchedule> per_rank(parts.size(), ShardSchedule(parts));
      for (Index start = 0; start < n; start += bs) {
        const Index end = std::min(n, start + bs);
        Index offset = 0;
        for (std::size_t r = 0; r < parts.size(); ++r) {
          const ShardSchedule::Slice sl = per_rank[r].slice(start, end, static_cast<int>(r));
          EXPECT_EQ(sl.offset, offset);
          offset += sl.hi - sl.lo;
        }
        EXPECT_EQ(offset, end - start);
      }
      // Asking for an earlier position starts the epoch over; a resumed epoch fast-forwards.
      EXPECT_EQ(s.before(0), std::vector<Index>(parts.size(), 0));
      ShardSchedule fresh(parts);
      EXPECT_EQ(fresh.before(n), parts);
    }
  }
}

}  // namespace
}  // namespace backprop
