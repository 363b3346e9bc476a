// demo_fit - the library in one page: fit a small network on generated data and watch the
// loss fall. Tensors, broadcasting, matmul, autograd and a hand-written SGD step; the nn/
// modules and optimizers wrap exactly these pieces.
//
//   ./build/demo_fit [--steps 400] [--lr 0.05] [--seed 0]
//
// Data: 512 points x in [-2, 2)^2, target y = tanh(2 x0) + 0.5 x1^2 - 0.5 (a surface the
// network has to bend to). Model: 2 -> 64 -> 64 -> 1 with tanh, mean squared error, plain
// gradient descent on the full batch.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "examples/flag_checks.h"
#include "ops/ops.h"

using namespace mila;

// A weight drawn from N(0, 1/fan_in), marked as a leaf that wants a gradient.
Tensor param(const Shape& shape, int64_t fan_in) {
  return mul(randn(shape), 1.0 / std::sqrt(double(fan_in))).requires_grad_();
}

int main(int argc, char** argv) {
  int steps = 400;
  double lr = 0.05;
  uint64_t seed = 0;
  CLI::App app{"Fit a small MLP on generated data with MILA-cpp's tensors and autograd"};
  app.add_option("--steps", steps, "gradient steps")->check(within(integers(1, 100'000'000)));
  app.add_option("--lr", lr, "learning rate")->check(within(positive_numbers()));
  app.add_option("--seed", seed, "random seed")->check(within(mila::train_ranges::seed));
  CLI11_PARSE(app, argc, argv);
  manual_seed(seed);

  const Tensor x = sub(mul(rand({512, 2}), 4.0), 2.0);
  const Tensor x0 = x.narrow(1, 0, 1), x1 = x.narrow(1, 1, 1);
  const Tensor y = sub(add(tanh(mul(x0, 2.0)), mul(mul(x1, x1), 0.5)), 0.5);  // [512, 1]

  std::vector<Tensor> params = {param({64, 2}, 2), zeros({64}).requires_grad_(),   // layer 1
                                param({64, 64}, 64), zeros({64}).requires_grad_(), // layer 2
                                param({1, 64}, 64), zeros({1}).requires_grad_()};  // output
  auto model = [&](const Tensor& in) {
    Tensor h = tanh(linear(in, params[0], params[1]));
    h = tanh(linear(h, params[2], params[3]));
    return linear(h, params[4], params[5]);
  };

  std::printf("fitting y = tanh(2 x0) + 0.5 x1^2 - 0.5 with a 2-64-64-1 MLP, %d steps, lr %g\n", steps, lr);
  const auto start = std::chrono::steady_clock::now();
  double first = 0, last = 0;
  for (int step = 0; step <= steps; ++step) {
    const Tensor err = sub(model(x), y);
    const Tensor loss = mean(mul(err, err));
    last = loss.item<double>();
    if (step == 0) first = last;
    if (step % (steps / 10 > 0 ? steps / 10 : 1) == 0) std::printf("step %4d  mse %.6f\n", step, last);
    if (step == steps) break;
    loss.backward();
    NoGradGuard no_grad;  // the update itself is not part of the graph
    for (Tensor& p : params) {
      copy_(p, sub(p, mul(p.grad(), lr)));
      p.zero_grad();
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("mse %.6f -> %.6f (%.1fx lower) in %.2f s\n", first, last, first / last, seconds);
  return last < first ? 0 : 1;
}
