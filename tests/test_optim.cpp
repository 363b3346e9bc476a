// test_optim.cpp - optimizers against steps computed by hand, the fused updates
// (ops/optim_update.h) against the op chains they replace, state round trips, clipping, and
// learning-rate schedules at chosen steps; in the suite "cuda", the GPU updates against the
// CPU ones.
//
// Tolerances. The fused CPU update equals the op chain bit for bit (tolerance 0): both round
// every product and sum in the same order (Note [fused update order], Note [no contraction]).
// The GPU update may fuse a product and a sum into one FMA, which changes the last bit of
// that intermediate; Note [gpu tolerance] below bounds what that does over a few steps.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "nn/optim.h"
#include "nn/safetensors.h"
#include "ops/optim_update.h"
#include "tests/cuda_compare.h"
#include "tests/test_util.h"

using namespace mila;
using namespace mila::nn;

namespace {
Tensor param(double v) { return full({1}, v).requires_grad_(); }
void set_grad(Tensor& p, double g) { p.set_grad(full({1}, g)); }
double value(const Tensor& p) { return test::at(p, 0); }

// ---- the reference: the updates as op chains -------------------------------------------
// What nn/optim.cpp ran before the fused ops, one elementwise op (one rounded tensor) after
// another, each double scalar converted to the tensor's dtype by the op (ops/binary.h).

// buf: undefined before the first step with momentum (it becomes the decayed gradient).
void chain_sgd_step(const Tensor& p, const Tensor& grad, Tensor& buf, const SgdUpdateParams& o) {
  NoGradGuard no_grad;
  Tensor d = grad;
  if (o.weight_decay != 0) d = add(d, mul(p, o.weight_decay));
  if (o.momentum != 0) {
    if (!buf.defined()) {
      buf = d.clone();
    } else {
      copy_(buf, add(mul(buf, o.momentum), mul(d, 1 - o.dampening)));
    }
    d = o.nesterov ? add(d, mul(buf, o.momentum)) : buf;
  }
  copy_(p, sub(p, mul(d, o.lr)));
}

void chain_adam_step(const Tensor& p, Tensor g, const Tensor& m, const Tensor& v, const AdamUpdateParams& o) {
  NoGradGuard no_grad;
  const double bc1 = 1 - std::pow(o.beta1, double(o.step)), bc2 = 1 - std::pow(o.beta2, double(o.step));
  if (o.weight_decay != 0) {
    if (o.decoupled_weight_decay)
      copy_(p, mul(p, 1 - o.lr * o.weight_decay));
    else
      g = add(g, mul(p, o.weight_decay));
  }
  copy_(m, add(mul(m, o.beta1), mul(g, 1 - o.beta1)));
  copy_(v, add(mul(v, o.beta2), mul(mul(g, g), 1 - o.beta2)));
  const Tensor denom = add(div(sqrt(v), std::sqrt(bc2)), o.eps);
  copy_(p, sub(p, mul(div(m, denom), o.lr / bc1)));
}

// Every valid combination of SGD's options (nesterov needs momentum and no dampening).
std::vector<SGDOptions> sgd_cases() {
  std::vector<SGDOptions> cases;
  for (double momentum : {0.0, 0.9})
    for (double dampening : {0.0, 0.3})
      for (bool nesterov : {false, true})
        for (double weight_decay : {0.0, 0.01})
          if (!nesterov || (momentum > 0 && dampening == 0))
            cases.push_back({.lr = 0.05, .momentum = momentum, .dampening = dampening, .weight_decay = weight_decay,
                             .nesterov = nesterov});
  return cases;
}

std::vector<AdamOptions> adam_cases() {
  std::vector<AdamOptions> cases;
  for (bool decoupled : {false, true})
    for (double weight_decay : {0.0, 0.1})
      for (double beta2 : {0.999, 0.99})  // PyTorch's default, the paper's
        cases.push_back({.lr = 0.01, .beta1 = 0.9, .beta2 = beta2, .eps = 1e-8, .weight_decay = weight_decay,
                         .decoupled_weight_decay = decoupled});
  return cases;
}

std::string describe(const SGDOptions& o) {
  return "SGD momentum " + std::to_string(o.momentum) + " dampening " + std::to_string(o.dampening) + " nesterov " +
         std::to_string(o.nesterov) + " weight_decay " + std::to_string(o.weight_decay);
}
std::string describe(const AdamOptions& o) {
  return std::string(o.decoupled_weight_decay ? "AdamW" : "Adam") + " beta2 " + std::to_string(o.beta2) +
         " weight_decay " + std::to_string(o.weight_decay);
}

SgdUpdateParams update_params(const SGDOptions& o, bool first_step) {
  return {.lr = o.lr, .momentum = o.momentum, .dampening = o.dampening, .weight_decay = o.weight_decay,
          .nesterov = o.nesterov, .first_step = first_step};
}
AdamUpdateParams update_params(const AdamOptions& o, int64_t step) {
  return {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay,
          .decoupled_weight_decay = o.decoupled_weight_decay, .step = step};
}

// The gradient of step `step`: uniform in [-1, 1), with an exact zero and a tiny value up
// front (where v stays near 0 and eps decides Adam's denominator).
Tensor step_gradient(const Shape& shape, int step, DType dtype) {
  Tensor g = test::draw(shape, -1, 1, 100 + step).to(dtype);
  if (g.numel() > 1) test::set_at(g, 0, 0.0), test::set_at(g, 1, 1e-20);
  return g;
}

// The state tensor named `slot` ("momentum_buffer", "exp_avg", ...) of parameter 0.
Tensor state_slot(const Optimizer& opt, const std::string& slot) {
  for (const auto& [name, t] : opt.state_dict())
    if (name == "0.0." + slot) return t;
  return Tensor();
}
// Optimizers with state of every kind, made for one parameter.
using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(const Tensor&)>;
std::vector<std::pair<std::string, MakeOptimizer>> optimizer_kinds() {
  return {
      {"Adam", [](const Tensor& w) { return std::make_unique<Adam>(std::vector<Tensor>{w}, AdamOptions{.lr = 0.05}); }},
      {"AdamW", [](const Tensor& w) {
         return std::make_unique<Adam>(std::vector<Tensor>{w},
                                       AdamOptions{.lr = 0.05, .weight_decay = 0.1, .decoupled_weight_decay = true});
       }},
      {"SGD momentum", [](const Tensor& w) {
         return std::make_unique<SGD>(std::vector<Tensor>{w}, SGDOptions{.lr = 0.05, .momentum = 0.9});
       }},
      {"SGD nesterov, weight decay", [](const Tensor& w) {
         return std::make_unique<SGD>(std::vector<Tensor>{w},
                                      SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
       }},
      {"SGD dampening", [](const Tensor& w) {
         return std::make_unique<SGD>(std::vector<Tensor>{w}, SGDOptions{.lr = 0.05, .momentum = 0.5, .dampening = 0.5});
       }},
  };
}
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
  const auto kinds = optimizer_kinds();
  for (const auto& [what, make] : kinds) {
    INFO(what);
    manual_seed(3);
    Tensor w = randn({2, 3}).requires_grad_();
    Tensor w2 = w.detach().clone().requires_grad_();
    std::unique_ptr<Optimizer> o1 = make(w), o2 = make(w2);
    run(w, *o1, 3);
    safetensors::write(path, o1->state_dict());
    {
      NoGradGuard g;
      copy_(w2, w);
    }
    o2->load_state_dict(safetensors::read(path).tensors);
    run(w, *o1, 2);
    run(w2, *o2, 2);
    test::check_close(w2, w, 0, 0, what);
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

// ---- the fused updates against the op chains ---------------------------------------------

TEST_CASE("SGD and Adam: the fused update equals the op chain bit for bit, every option, several steps") {
  // Sizes: one element, a few (the vector loop's tail only), and more than one parallel chunk
  // (ops/cpu/parallel.h's kElementwiseGrain; the tests run with 2 threads).
  for (DType dtype : {DType::Float32, DType::Float64})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(40000)}) {
      const Shape shape{n};
      for (const SGDOptions& o : sgd_cases()) {
        INFO(describe(o) << ", " << dtype_name(dtype) << " [" << n << "]");
        Tensor w = test::draw(shape, -1, 1, 5).to(dtype).requires_grad_();
        Tensor ref = w.detach().clone(), ref_buf;
        SGD sgd({w}, o);
        for (int step = 0; step < 5; ++step) {
          if (step == 3) sgd.scale_lr(0.5);  // a schedule changes lr mid-way
          const Tensor g = step_gradient(shape, step, dtype);
          w.set_grad(g);
          sgd.step();
          SGDOptions now = o;
          now.lr = step >= 3 ? o.lr * 0.5 : o.lr;
          chain_sgd_step(ref, g, ref_buf, update_params(now, false));  // (the chain finds its first step itself)
          test::check_close(w, ref, 0, 0, "parameter after step " + std::to_string(step));
          if (o.momentum != 0) test::check_close(state_slot(sgd, "momentum_buffer"), ref_buf, 0, 0, "momentum buffer");
        }
      }
      for (const AdamOptions& o : adam_cases()) {
        INFO(describe(o) << ", " << dtype_name(dtype) << " [" << n << "]");
        Tensor w = test::draw(shape, -1, 1, 5).to(dtype).requires_grad_();
        Tensor ref = w.detach().clone(), m = zeros(shape, {dtype}), v = zeros(shape, {dtype});
        Adam adam({w}, o);
        for (int step = 1; step <= 5; ++step) {
          const Tensor g = step_gradient(shape, step, dtype);
          w.set_grad(g);
          adam.step();
          chain_adam_step(ref, g, m, v, update_params(o, step));
          test::check_close(w, ref, 0, 0, "parameter after step " + std::to_string(step));
          test::check_close(state_slot(adam, "exp_avg"), m, 0, 0, "exp_avg");
          test::check_close(state_slot(adam, "exp_avg_sq"), v, 0, 0, "exp_avg_sq");
        }
      }
    }
}

TEST_CASE("sgd_update and adam_update: a parameter that is a view, a strided gradient, state kept on the leaf") {
  // A leaf made from a transposed tensor: the update goes through a contiguous copy and back
  // (Note [updating views] in ops/optim_update.cpp) and must equal the update of a
  // contiguous parameter holding the same values.
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    const Tensor base = test::draw({5, 6}, -1, 1, 1).to(dtype);
    const Tensor grad = test::noncontiguous(test::draw({6, 5}, -1, 1, 2).to(dtype));
    REQUIRE_FALSE(grad.is_contiguous());

    Tensor view = base.clone().t(), dense = view.contiguous();
    REQUIRE_FALSE(view.is_contiguous());
    Tensor view_buf = empty({5, 6}, {dtype}).t(), dense_buf = empty({6, 5}, {dtype});
    const SgdUpdateParams sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true, .first_step = true};
    sgd_update_(view, grad, view_buf, sgd);
    sgd_update_(dense, grad, dense_buf, sgd);
    test::check_close(view, dense, 0, 0, "sgd: view parameter");
    test::check_close(view_buf, dense_buf, 0, 0, "sgd: momentum buffer");

    Tensor m_view = test::noncontiguous(zeros({6, 5}, {dtype})), v_view = test::transposed_layout(zeros({6, 5}, {dtype}));
    Tensor m = zeros({6, 5}, {dtype}), v = zeros({6, 5}, {dtype});
    const AdamUpdateParams adam{.lr = 0.01, .weight_decay = 0.1, .decoupled_weight_decay = true, .step = 1};
    adam_update_(view, grad, m_view, v_view, adam);
    adam_update_(dense, grad, m, v, adam);
    test::check_close(view, dense, 0, 0, "adam: view parameter");
    test::check_close(m_view, m, 0, 0, "adam: strided exp_avg");
    test::check_close(v_view, v, 0, 0, "adam: strided exp_avg_sq");

    // Through the optimizer: a leaf that is a view keeps its storage (updated in place).
    Tensor leaf = base.clone().t().requires_grad_(), twin = leaf.detach().contiguous().requires_grad_();
    const auto* storage = leaf.storage().get();
    SGD a({leaf}, {.lr = 0.1, .momentum = 0.9}), b({twin}, {.lr = 0.1, .momentum = 0.9});
    for (int step = 0; step < 3; ++step) {
      leaf.set_grad(grad);
      twin.set_grad(grad.contiguous());
      a.step();
      b.step();
    }
    CHECK(leaf.storage().get() == storage);
    test::check_close(leaf, twin, 0, 0, "optimizer on a view leaf");
  }
}

TEST_CASE("sgd_update and adam_update: not differentiable, in place, whatever the grad mode") {
  Tensor w = test::draw({4}, -1, 1, 3).to(DType::Float32).requires_grad_();
  const void* data = w.raw_data();
  const Tensor g = test::draw({4}, -1, 1, 4).to(DType::Float32);
  REQUIRE(autograd::is_grad_enabled());
  sgd_update_(w, g, Tensor(), {.lr = 0.1});
  Tensor m = zeros({4}), v = zeros({4});
  adam_update_(w, g, m, v, {.lr = 0.1});
  CHECK(w.is_leaf());
  CHECK(w.requires_grad());
  CHECK(w.raw_data() == data);
  CHECK(autograd::is_grad_enabled());
  CHECK_FALSE(m.requires_grad());
}

TEST_CASE("sgd_update and adam_update: misuse names the op and the shapes") {
  const Tensor w = zeros({2, 3}), g = zeros({2, 3});
  Tensor m = zeros({2, 3}), v = zeros({2, 3});
  test::check_throws_with([&] { sgd_update_(w, zeros({3, 2}), Tensor(), {}); },
                          {"sgd_update", "grad", "[3, 2]", "[2, 3]"});
  test::check_throws_with([&] { sgd_update_(w, g.to(DType::Float64), Tensor(), {}); },
                          {"sgd_update", "grad", "float64", "float32"});
  test::check_throws_with([&] { sgd_update_(w, g, Tensor(), {.momentum = 0.9}); },
                          {"sgd_update", "needs a momentum_buffer", "[2, 3]"});
  test::check_throws_with([&] { sgd_update_(w, g, zeros({2, 3}), {}); }, {"sgd_update", "takes no momentum_buffer"});
  test::check_throws_with([&] { sgd_update_(w, g, zeros({3}), {.momentum = 0.9}); },
                          {"sgd_update", "momentum_buffer", "[3]", "[2, 3]"});
  test::check_throws_with([&] { sgd_update_(w, g, zeros({2, 3}), {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
                          {"sgd_update", "nesterov"});
  test::check_throws_with([&] { sgd_update_(zeros({2, 3}, {DType::Int64}), zeros({2, 3}, {DType::Int64}), Tensor(), {}); },
                          {"sgd_update", "float32 or float64", "int64"});
  test::check_throws_with([&] { sgd_update_(zeros({1, 3}).expand({2, 3}), g, Tensor(), {}); },
                          {"sgd_update", "expanded", "[2, 3]"});
  test::check_throws_with([&] { adam_update_(w, g, m, zeros({2}), {}); }, {"adam_update", "exp_avg_sq", "[2]", "[2, 3]"});
  test::check_throws_with([&] { adam_update_(w, g, m, Tensor(), {}); }, {"adam_update", "exp_avg_sq", "undefined"});
  test::check_throws_with([&] { adam_update_(w, g, m, v, {.step = 0}); }, {"adam_update", "step", "0"});
  // Nothing was written by the refused calls.
  CHECK(test::values(w) == std::vector<double>(6, 0.0));
}

// ---- the GPU against the CPU (suite "cuda") ----------------------------------------------
//
// Note [gpu tolerance]. Per element and step, nvcc may fuse each product-sum pair of Note
// [fused update order] into one FMA (four in SGD, five in Adam), each changing the last bit
// of one intermediate, and over a few steps those bits flow through the momentum buffer, the
// moments and the parameter. So the GPU result is compared in ulps (of the dtype) of each
// tensor's largest magnitude, as a sum's rounding error scales with its terms and not with a
// result that cancels: |gpu - cpu| <= 8 ulp * (max|cpu| + |cpu|). A wrong formula, a
// skipped element or a lost state is off by orders of magnitude more.
namespace {

void check_gpu(const Tensor& got, const Tensor& want, const std::string& what) {
  CHECK_MESSAGE(got.device().is_cuda(), what << ": the result left the GPU");
  const double ulp = want.dtype() == DType::Float32 ? 0x1p-23 : 0x1p-52;  // the spacing of the dtype's values at 1
  double scale = 0;
  for (double x : test::values(want)) scale = std::max(scale, std::abs(x));
  test::check_close(got, want, 8 * ulp * scale, 8 * ulp, what);
}

// Where a parameter of the step-by-step test lives.
enum class Layout {
  aligned,  // its own allocation: float32 takes the float4 kernel
  offset,   // contiguous, one element into a larger buffer: not 16-byte aligned, the element kernel
  strided,  // every other element of a buffer: updated through a contiguous copy (Note [updating views])
};

Tensor place(const Tensor& values, Device device, Layout layout) {
  const int64_t n = values.numel();
  switch (layout) {
    case Layout::aligned: {
      Tensor t = empty({n}, {values.dtype(), device});
      copy_(t, values);
      return t;
    }
    case Layout::offset: {
      Tensor t = empty({n + 1}, {values.dtype(), device}).narrow(0, 1, n);
      copy_(t, values);
      return t;
    }
    case Layout::strided: return test::noncontiguous(values.to(device));
  }
  return Tensor();
}

const char* layout_name(Layout layout) {
  return layout == Layout::aligned ? "aligned" : layout == Layout::offset ? "offset by one" : "strided";
}

}  // namespace

TEST_CASE("sgd_update and adam_update: cuda matches cpu step by step" * doctest::test_suite("cuda")) {
  const Device gpu = test::cuda_device();
  // 1: one element (the float4 kernel's tail only); 7: one vector and a tail of 3;
  // 1031 = 4 * 257 + 3: more than one block of vectors and a tail.
  for (DType dtype : {DType::Float32, DType::Float64})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1031)})
      for (Layout layout : {Layout::aligned, Layout::offset, Layout::strided}) {
        const std::string where = std::string(dtype_name(dtype)) + " [" + std::to_string(n) + "] " + layout_name(layout);
        const Tensor start = test::draw({n}, -1, 1, 5).to(dtype);
        if (dtype == DType::Float32 && layout != Layout::strided) {
          const auto address = reinterpret_cast<uintptr_t>(place(start, gpu, layout).raw_data());
          CHECK_MESSAGE((address % 16 == 0) == (layout == Layout::aligned), where << ": the layout misses its kernel");
        }
        for (const SGDOptions& o : sgd_cases()) {
          INFO(describe(o) << ", " << where);
          const Tensor pc = place(start, Device::cpu(), layout), pg = place(start, gpu, layout);
          const Tensor bc = o.momentum != 0 ? place(zeros({n}, {dtype}), Device::cpu(), layout) : Tensor();
          const Tensor bg = o.momentum != 0 ? place(zeros({n}, {dtype}), gpu, layout) : Tensor();
          for (int step = 0; step < 4; ++step) {
            const Tensor g = step_gradient({n}, step, dtype);
            sgd_update_(pc, g, bc, update_params(o, step == 0));
            sgd_update_(pg, g.to(gpu), bg, update_params(o, step == 0));
            check_gpu(pg, pc, "parameter after step " + std::to_string(step));
            if (bc.defined()) check_gpu(bg, bc, "momentum buffer after step " + std::to_string(step));
          }
        }
        for (const AdamOptions& o : adam_cases()) {
          INFO(describe(o) << ", " << where);
          const Tensor pc = place(start, Device::cpu(), layout), pg = place(start, gpu, layout);
          const Tensor zero = zeros({n}, {dtype});
          const Tensor mc = place(zero, Device::cpu(), layout), vc = place(zero, Device::cpu(), layout);
          const Tensor mg = place(zero, gpu, layout), vg = place(zero, gpu, layout);
          for (int step = 1; step <= 4; ++step) {
            const Tensor g = step_gradient({n}, step, dtype);
            adam_update_(pc, g, mc, vc, update_params(o, step));
            adam_update_(pg, g.to(gpu), mg, vg, update_params(o, step));
            const std::string after = " after step " + std::to_string(step);
            check_gpu(pg, pc, "parameter" + after);
            check_gpu(mg, mc, "exp_avg" + after);
            check_gpu(vg, vc, "exp_avg_sq" + after);
          }
        }
      }
}

TEST_CASE("SGD and Adam on the GPU: state on the device, the cpu's trajectory, identical reruns and resumes" *
          doctest::test_suite("cuda")) {
  const Device gpu = test::cuda_device();
  const Shape shape{37, 29};  // 1073 elements: float4 vectors and a tail of 1
  auto grad_of_step = [&](int step) { return test::draw(shape, -1, 1, 200 + step).to(DType::Float32); };
  for (const auto& [what, make] : optimizer_kinds()) {
    INFO(what);
    const Tensor start = test::draw(shape, -1, 1, 9).to(DType::Float32);
    Tensor wc = start.clone().requires_grad_(), wg = start.to(gpu).requires_grad_();
    REQUIRE(wg.device() == gpu);
    std::unique_ptr<Optimizer> oc = make(wc), og = make(wg);
    auto step_both = [&](Tensor& w1, Optimizer& o1, Tensor& w2, Optimizer& o2, int step) {
      const Tensor g = grad_of_step(step);
      w1.set_grad(g.to(w1.device()));
      w2.set_grad(g.to(w2.device()));
      o1.step();
      o2.step();
    };
    for (int step = 0; step < 3; ++step) {
      step_both(wc, *oc, wg, *og, step);
      check_gpu(wg, wc, "parameter after step " + std::to_string(step));
    }
    // The state lives on the parameter's device and follows the cpu's.
    const NamedTensors cpu_state = oc->state_dict(), gpu_state = og->state_dict();
    REQUIRE(cpu_state.size() == gpu_state.size());
    for (size_t i = 0; i < gpu_state.size(); ++i) {
      const auto& [name, t] = gpu_state[i];
      INFO("state " << name);
      REQUIRE(cpu_state[i].first == name);
      if (name == "step") continue;  // a host scalar
      CHECK(t.device() == gpu);
      check_gpu(t, cpu_state[i].second, name);
    }

    // Resumed from that state: on the GPU, bit for bit the same steps (the same kernel on
    // the same inputs); on the cpu, the cpu's steps within Note [gpu tolerance].
    Tensor wr = wg.detach().clone().requires_grad_(), wx = wg.detach().to(Device::cpu()).requires_grad_();
    std::unique_ptr<Optimizer> orr = make(wr), ox = make(wx);
    orr->load_state_dict(og->state_dict());
    ox->load_state_dict(og->state_dict());
    for (const auto& [name, t] : orr->state_dict())
      if (name != "step") CHECK(t.device() == gpu);
    for (int step = 3; step < 5; ++step) {
      step_both(wg, *og, wr, *orr, step);
      const Tensor g = grad_of_step(step);
      wx.set_grad(g);
      ox->step();
      test::check_close(wr, wg, 0, 0, "resumed on the GPU, step " + std::to_string(step));
      check_gpu(wg, wx, "resumed on the cpu, step " + std::to_string(step));
    }
  }
}
