// Trains 784-100-10 (sigmoid hidden, softmax output, cross-entropy) on Fashion-MNIST through the
// library, the same run as `backprop train`, and reports the test accuracy after each epoch.
//   example_fashion_mnist [DIR]    (default /usr/share/datasets/fashion-mnist)
#include <backprop/backprop.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  using namespace backprop;
  std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  try {
    Dataset train_set = load_idx(dir + "/train-images-idx3-ubyte.gz",
                                 dir + "/train-labels-idx1-ubyte.gz", ReadLimits{});
    Dataset test_set = load_idx(dir + "/t10k-images-idx3-ubyte.gz",
                                dir + "/t10k-labels-idx1-ubyte.gz", ReadLimits{});

    Model model({.layers = {train_set.n_features, 100, train_set.n_outputs()}});
    model.init(Init::kXavier, /*seed=*/1);
    Sgd sgd(/*lr=*/0.1);

    TrainData data;
    data.data = &train_set;
    data.train_rows = all_rows(train_set);
    data.test = &test_set;
    data.pre = scale_preprocess(train_set);  // pixels to [0, 1]
    TrainCallbacks callbacks;
    callbacks.on_epoch = [](const EpochStats& s) {
      std::printf("epoch %2d  train loss %.4f  test accuracy %.2f%%  (%.1f s)\n", s.epoch,
                  s.train.loss, 100 * s.test.accuracy, s.seconds);
    };
    train(model, sgd, data,
          {.epochs = 20, .batch_size = 16, .seed = 1, .eval_test_each_epoch = true}, callbacks);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
