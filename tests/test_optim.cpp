// test_optim.cpp - optimizers against steps computed by hand, state round trips, clipping,
// and learning-rate schedules at chosen steps.
#include <cmath>
#include <filesystem>
#include <numbers>

#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tests/test_util.h"

using namespace mila;
using namespace mila::nn;

namespace {
Tensor param(double v) { return full({1}, v).requires_grad_(); }
void set_grad(Tensor& p, double g) { p.set_grad(full({1}, g)); }
double value(const Tensor& p) { return test::at(p, 0); }
}  // namespace

TEST_CASE("SGD: plain, momentum with weight decay, nesterov, dampening - by hand") {
  Tensor p = param(1.0);
  SGD plain({p}, {.lr = 0.1});
  set_grad(p, 0.5);
  plain.step();
  CHECK(value(p) == doctest::Approx(0.95));

  Tensor q = param(1.0);
  SGD mom({q}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  set_grad(q, 0.5);
  mom.step();  // d = 0.5 + 0.1 * 1 = 0.6, buf = 0.6, q = 1 - 0.06
  CHECK(value(q) == doctest::Approx(0.94));
  set_grad(q, 0.5);
  mom.step();  // d = 0.5 + 0.094 = 0.594, buf = 0.54 + 0.594 = 1.134, q = 0.94 - 0.1134
  CHECK(value(q) == doctest::Approx(0.8266));

  Tensor r = param(1.0);
  SGD nes({r}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  set_grad(r, 0.5);
  nes.step();  // buf = 0.5, d = 0.5 + 0.45 = 0.95
  CHECK(value(r) == doctest::Approx(0.905));

  Tensor s = param(1.0);
  SGD damp({s}, {.lr = 0.1, .momentum = 0.5, .dampening = 0.5});
  set_grad(s, 1.0);
  damp.step();  // first step: buf = g (no dampening), s = 0.9
  set_grad(s, 1.0);
  damp.step();  // buf = 0.5 * 1 + 0.5 * 1 = 1, s = 0.8
  CHECK(value(s) == doctest::Approx(0.8));

  test::check_throws_with([&] { SGD bad({param(0)}, {.lr = 0.1, .nesterov = true}); }, {"SGD", "nesterov"});
}

TEST_CASE("Adam and AdamW - by hand") {
  Tensor p = param(1.0);
  Adam adam({p}, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999});
  set_grad(p, 0.5);
  adam.step();  // m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25 -> step 0.1 * 0.5 / 0.5
  CHECK(value(p) == doctest::Approx(0.9).epsilon(1e-6));
  set_grad(p, -1.0);
  adam.step();  // m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975
  const double m_hat = -0.055 / 0.19, v_hat = 0.00124975 / (1 - 0.999 * 0.999);
  CHECK(value(p) == doctest::Approx(0.9 - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8)).epsilon(1e-6));

  Tensor q = param(1.0);
  Adam adam_l2({q}, {.lr = 0.1, .weight_decay = 0.5});
  set_grad(q, 0.5);
  adam_l2.step();  // g = 0.5 + 0.5 = 1; m_hat / sqrt(v_hat) = 1
  CHECK(value(q) == doctest::Approx(0.9).epsilon(1e-6));

  Tensor r = param(1.0);
  Adam adamw({r}, {.lr = 0.1, .weight_decay = 0.1, .decoupled_weight_decay = true});
  set_grad(r, 0.5);
  adamw.step();  // r = 1 * (1 - 0.01) = 0.99, then - 0.1
  CHECK(value(r) == doctest::Approx(0.89).epsilon(1e-6));
}

TEST_CASE("optimizers skip parameters without a gradient, and zero_grad clears") {
  Tensor a = param(1.0), b = param(2.0);
  Adam adam({a, b}, {.lr = 0.1});
  set_grad(a, 1.0);
  adam.step();
  CHECK(value(b) == 2.0);
  adam.zero_grad();
  CHECK(!a.grad().defined());
}

TEST_CASE("optimizer state round-trips through safetensors and training resumes identically") {
  const std::string path = (std::filesystem::temp_directory_path() / "mila_test_optim.safetensors").string();
  auto run = [](Tensor& w, Optimizer& opt, int steps) {
    for (int i = 0; i < steps; ++i) {
      opt.zero_grad();
      sum(mul(mul(w, w), arange(0, double(w.numel()), 1, {DType::Float32}).reshape(w.shape()))).backward();
      opt.step();
    }
  };
  for (int kind = 0; kind < 2; ++kind) {
    manual_seed(3);
    Tensor w = randn({2, 3}).requires_grad_();
    Tensor w2 = w.detach().clone().requires_grad_();
    std::unique_ptr<Optimizer> o1, o2;
    if (kind == 0) {
      o1 = std::make_unique<Adam>(std::vector<Tensor>{w}, AdamOptions{.lr = 0.05});
      o2 = std::make_unique<Adam>(std::vector<Tensor>{w2}, AdamOptions{.lr = 0.05});
    } else {
      o1 = std::make_unique<SGD>(std::vector<Tensor>{w}, SGDOptions{.lr = 0.05, .momentum = 0.9});
      o2 = std::make_unique<SGD>(std::vector<Tensor>{w2}, SGDOptions{.lr = 0.05, .momentum = 0.9});
    }
    run(w, *o1, 3);
    safetensors::write(path, o1->state_dict());
    {
      NoGradGuard g;
      copy_(w2, w);
    }
    o2->load_state_dict(safetensors::read(path).tensors);
    run(w, *o1, 2);
    run(w2, *o2, 2);
    test::check_close(w2, w, 0, 0, kind == 0 ? "Adam" : "SGD");
  }
}

TEST_CASE("clip_grad_norm scales to the limit and reports the norm before clipping") {
  Tensor a = zeros({2}).requires_grad_(), b = zeros({1}).requires_grad_();
  a.set_grad(tensor({3, 0}));
  b.set_grad(tensor({4}));
  CHECK(clip_grad_norm({a, b}, 1.0) == doctest::Approx(5.0));
  CHECK(test::at(a.grad(), 0) == doctest::Approx(0.6).epsilon(1e-5));
  CHECK(test::at(b.grad(), 0) == doctest::Approx(0.8).epsilon(1e-5));
  CHECK(clip_grad_norm({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // below the limit: untouched
  CHECK(test::at(b.grad(), 0) == doctest::Approx(0.8).epsilon(1e-5));
}

TEST_CASE("learning-rate schedules at chosen steps") {
  LrSchedule step{.kind = LrSchedule::Kind::step, .step_size = 10, .gamma = 0.5};
  CHECK(step.factor(0) == 1.0);
  CHECK(step.factor(9) == 1.0);
  CHECK(step.factor(10) == 0.5);
  CHECK(step.factor(25) == 0.25);
  LrSchedule cosine{.kind = LrSchedule::Kind::cosine, .total_steps = 100, .min_factor = 0.1};
  CHECK(cosine.factor(0) == doctest::Approx(1.0));
  CHECK(cosine.factor(50) == doctest::Approx(0.55));
  CHECK(cosine.factor(100) == doctest::Approx(0.1));
  CHECK(cosine.factor(150) == doctest::Approx(0.1));
  LrSchedule poly{.kind = LrSchedule::Kind::polynomial, .total_steps = 100, .power = 0.9};
  CHECK(poly.factor(50) == doctest::Approx(std::pow(0.5, 0.9)));
  CHECK(poly.factor(100) == 0.0);
  LrSchedule warm{.warmup_steps = 10, .warmup_start = 0.1};
  CHECK(warm.factor(0) == doctest::Approx(0.1));
  CHECK(warm.factor(5) == doctest::Approx(0.55));
  CHECK(warm.factor(10) == 1.0);
  Tensor p = param(1.0);
  SGD sgd({p}, {.lr = 0.2});
  sgd.scale_lr(step.factor(10));
  CHECK(sgd.groups()[0].lr == doctest::Approx(0.1));
}
