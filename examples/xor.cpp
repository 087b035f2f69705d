// Trains a 2-4-1 network on XOR with plain SGD and prints its four predictions.
#include <backprop/backprop.hpp>

#include <cstdio>

int main() {
  using namespace backprop;
  Matrix x({{0, 0}, {0, 1}, {1, 0}, {1, 1}});
  Matrix y({{0}, {1}, {1}, {0}});

  Model model({.layers = {2, 4, 1},
               .hidden = Activation::kTanh,
               .output = Activation::kSigmoid,
               .loss = Loss::kCrossEntropy});
  model.init(Init::kXavier, /*seed=*/1);
  Sgd sgd(/*lr=*/1.0);

  double loss = 0;
  for (int step = 0; step < 2000; ++step) loss = train_step(model, x, y, sgd);

  ConstMatrixView out = model.forward(x);
  int correct = 0;
  for (Index i = 0; i < 4; ++i) {
    bool predicted = out(i, 0) > 0.5f;
    correct += predicted == (y(i, 0) > 0.5f);
    std::printf("%g xor %g -> %.4f\n", x(i, 0), x(i, 1), out(i, 0));
  }
  std::printf("loss %.6f, %d/4 correct\n", loss, correct);
  return correct == 4 ? 0 : 1;
}
