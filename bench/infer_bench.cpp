// Inference speed of a saved model: the forward pass (D1–D2 for every layer, softmax included)
// over a batch of test images, timed alone (no file loading, no preprocessing), through the
// public API. Prints one JSON line.
//   infer_bench --model M --images IDX --labels IDX [--batch 1000] [--threads T] [--reps R]
//               [--min-seconds S]
#include <backprop/backprop.hpp>
#include <backprop/model_file.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "peers/common.hpp"

int main(int argc, char** argv) {
  std::string model_path, images, labels;
  backprop::Index batch = 1000;
  bench::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "infer_bench: %s needs a value\n", a.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--model") {
      model_path = v;
    } else if (a == "--images") {
      images = v;
    } else if (a == "--labels") {
      labels = v;
    } else if (a == "--batch") {
      batch = std::atol(v.c_str());
    } else if (a == "--threads") {
      o.threads = std::atoi(v.c_str());
    } else if (a == "--reps") {
      o.reps = std::atoi(v.c_str());
    } else if (a == "--min-seconds") {
      o.min_seconds = std::atof(v.c_str());
    } else {
      std::fprintf(stderr, "infer_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (model_path.empty() || images.empty() || labels.empty() || batch < 1 || o.threads < 1 ||
      o.reps < 1 || o.min_seconds <= 0) {
    std::fprintf(stderr,
                 "usage: infer_bench --model M --images IDX --labels IDX [--batch B >= 1] "
                 "[--threads T >= 1] [--reps R] [--min-seconds S]\n");
    return 2;
  }
  try {
    backprop::set_num_threads(o.threads);
    backprop::ModelFile mf = backprop::load_model(model_path);
    backprop::Dataset test = backprop::load_idx(images, labels, backprop::ReadLimits{});
    if (test.n < batch) {
      std::fprintf(stderr, "infer_bench: %s holds %lld examples, fewer than the batch\n",
                   images.c_str(), static_cast<long long>(test.n));
      return 1;
    }
    std::vector<backprop::Index> rows(static_cast<std::size_t>(batch));
    for (backprop::Index i = 0; i < batch; ++i) rows[static_cast<std::size_t>(i)] = i;
    backprop::Matrix x(batch, test.n_features);
    backprop::gather_batch(test, rows, mf.info.preprocess, x.view(), backprop::MatrixView{});
    backprop::Model& model = mf.model;
    bench::Timing t = bench::time_calls([&] { model.forward(x.view()); }, o);
    const auto& layers = model.spec().layers;
    double flops = 0;
    for (std::size_t l = 0; l + 1 < layers.size(); ++l) {
      flops += 2.0 * static_cast<double>(layers[l]) * static_cast<double>(layers[l + 1]);
    }
    flops *= static_cast<double>(batch);
    std::printf(
        "{\"kind\": \"infer\", \"lib\": \"backprop\", \"threads\": %d, \"batch\": %lld, "
        "\"samples_per_second\": %.1f, \"samples_per_second_median\": %.1f, \"gflops\": %.3f, "
        "\"seconds_per_call\": %.9g, \"calls\": %ld, \"reps\": %d}\n",
        backprop::num_threads(), static_cast<long long>(batch), static_cast<double>(batch) / t.best,
        static_cast<double>(batch) / t.median, flops / t.best * 1e-9, t.best, t.calls, o.reps);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infer_bench: %s\n", e.what());
    return 1;
  }
}
