// test_autograd.cpp - the autograd engine: backward from a scalar or with a given
// gradient, accumulation and zero_grad, no_grad, detach, requires_grad rules, retain_graph,
// diamonds, broadcast gradients, gradient reversal, custom functions through
// autograd::record, memory released by backward, deep graphs, and thread-count invariance.
//
// Expected gradients are worked out by hand in the comments or come from finite
// differences (test::gradcheck, float64).
#include <pthread.h>

#include <cmath>
#include <thread>
#include <vector>

#include "ops/threads.h"
#include "tests/test_util.h"

using namespace mila;
using test::at;
using test::check_close;
using test::check_throws_with;
using test::gradcheck;
using test::uniform;
using test::values;
using V = std::vector<Tensor>;

namespace {

Tensor f64(std::vector<double> v, const Shape& shape) { return from_vector(v, shape); }

// A custom function, forward and backward side by side: cube(x) = x^3, d/dx = 3 x^2.
Tensor cube(const Tensor& x) {
  const Tensor xd = x.detach();
  return autograd::record("cube", mul(mul(xd, xd), xd), {x},
                          [saved = autograd::save(x)](const Tensor& dout, const std::vector<bool>&) {
                            return autograd::GradList{mul(dout, mul(mul(saved, saved), 3.0))};
                          });
}

// A two-input custom function a * b^2 that reports which gradients backward was asked for.
Tensor mul_square(const Tensor& a, const Tensor& b, std::vector<bool>* seen_needs) {
  const Tensor ad = a.detach(), bd = b.detach();
  return autograd::record("mul_square", mul(ad, mul(bd, bd)), {a, b},
                          [ad, bd, seen_needs](const Tensor& dout, const std::vector<bool>& needs) {
                            if (seen_needs) *seen_needs = needs;
                            autograd::GradList g(2);
                            if (needs[0]) g[0] = mul(dout, mul(bd, bd));
                            if (needs[1]) g[1] = mul(dout, mul(mul(ad, bd), 2.0));
                            return g;
                          });
}

// Runs f on a thread with a small stack (to show that deep graphs need no deep recursion).
void run_on_small_stack(void (*f)(void*), void* arg, size_t stack_bytes) {
  struct Call {
    void (*f)(void*);
    void* arg;
  } call{f, arg};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  pthread_t th;
  REQUIRE(pthread_create(
              &th, &attr,
              [](void* p) -> void* {
                auto* c = static_cast<Call*>(p);
                c->f(c->arg);
                return nullptr;
              },
              &call) == 0);
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
}

}  // namespace

// ---------------------------------------------------------------- backward basics
TEST_CASE("backward from a scalar root") {
  // L = sum(x^2 * w + 3x): dL/dx = 2 x w + 3.
  Tensor x = f64({1, -2, 0.5}, {3}).requires_grad_();
  const Tensor w = f64({2, 1, -4}, {3});
  const Tensor loss = sum(add(mul(mul(x, x), w), mul(x, 3.0)));
  CHECK(loss.dim() == 0);
  CHECK(loss.requires_grad());
  CHECK_FALSE(loss.is_leaf());
  loss.backward();
  CHECK(values(x.grad()) == std::vector<double>{2 * 1 * 2 + 3, 2 * -2 * 1 + 3, 2 * 0.5 * -4 + 3});
  CHECK(x.grad().shape() == x.shape());
  CHECK(x.grad().dtype() == DType::Float64);
  CHECK_FALSE(x.grad().requires_grad());
  CHECK(x.grad().grad_fn() == nullptr);
  CHECK_FALSE(w.grad().defined());  // a constant gets nothing

  SUBCASE("a one-element root of shape [1, 1] needs no gradient either") {
    Tensor y = f64({3}, {1}).requires_grad_();
    mul(y.reshape({1, 1}), y.reshape({1, 1})).backward();
    CHECK(at(y.grad(), 0) == 6);
  }
  SUBCASE("float32 leaves get float32 gradients, also through to(float64)") {
    Tensor f = tensor({1, 2}).requires_grad_();
    sum(mul(f.to(DType::Float64), 2.0)).backward();
    CHECK(f.grad().dtype() == DType::Float32);
    CHECK(values(f.grad()) == std::vector<double>{2, 2});
  }
  SUBCASE("backward of a leaf itself copies the gradient into .grad") {
    Tensor l = f64({1, 2}, {2}).requires_grad_();
    Tensor g = f64({5, 6}, {2});
    l.backward(g);
    CHECK(values(l.grad()) == std::vector<double>{5, 6});
    fill_(g, 0);  // .grad is a copy, not an alias of the given gradient
    CHECK(values(l.grad()) == std::vector<double>{5, 6});
  }
}

TEST_CASE("backward with an explicit gradient") {
  // y = x * c (elementwise), dL/dy = v  =>  dL/dx = c * v.
  Tensor x = uniform({2, 3}).requires_grad_();
  const Tensor c = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor v = f64({0.5, -1, 2, 0, 1, 3}, {2, 3});
  mul(x, c).backward(v);
  CHECK(values(x.grad()) == std::vector<double>{0.5, -2, 6, 0, 5, 18});
  // The given gradient may be strided.
  x.zero_grad();
  const Tensor vt = f64({0.5, 0, -1, 1, 2, 3}, {3, 2}).t();  // the same values as v, transposed layout
  mul(x, c).backward(vt);
  CHECK(values(x.grad()) == std::vector<double>{0.5, -2, 6, 0, 5, 18});
}

TEST_CASE("backward misuse throws clear errors") {
  Tensor x = f64({1, 2, 3}, {3}).requires_grad_();
  check_throws_with([&] { mul(x, 2.0).backward(); }, {"backward", "gradient must be given", "[3]"});
  check_throws_with([&] { mul(x, 2.0).backward(ones({2}, {DType::Float64})); }, {"backward", "[2]", "[3]"});
  check_throws_with([&] { mul(x, 2.0).backward(ones({3}, {DType::Float32})); }, {"backward", "float32", "float64"});
  check_throws_with([] { sum(ones({3})).backward(); }, {"backward", "does not require grad"});
  {
    NoGradGuard g;
    const Tensor y = sum(x);
    check_throws_with([&] { y.backward(); }, {"backward", "does not require grad"});
  }
  CHECK_FALSE(x.grad().defined());  // nothing was accumulated by the failures
}

// ---------------------------------------------------------------- accumulation
TEST_CASE("gradients accumulate across backward calls until zero_grad") {
  Tensor x = f64({2, -1}, {2}).requires_grad_();
  auto loss = [&] { return sum(mul(mul(x, x), 3.0)); };  // d/dx = 6x
  loss().backward();
  CHECK(values(x.grad()) == std::vector<double>{12, -6});
  loss().backward();
  CHECK(values(x.grad()) == std::vector<double>{24, -12});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  loss().backward();
  CHECK(values(x.grad()) == std::vector<double>{12, -6});
  // set_grad replaces the gradient; the next backward adds to it.
  x.set_grad(f64({100, 100}, {2}));
  loss().backward();
  CHECK(values(x.grad()) == std::vector<double>{112, 94});
}

// ---------------------------------------------------------------- grad mode, detach, leaves
TEST_CASE("no_grad records nothing; the guard nests and restores") {
  Tensor x = ones({2}, {DType::Float64}).requires_grad_();
  CHECK(autograd::is_grad_enabled());
  {
    NoGradGuard g;
    CHECK_FALSE(autograd::is_grad_enabled());
    const Tensor y = exp(mul(x, 2.0));
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK(y.is_leaf());
    CHECK(x.reshape({2, 1}).grad_fn() == nullptr);  // views too
    {
      NoGradGuard inner;
      CHECK_FALSE(autograd::is_grad_enabled());
    }
    CHECK_FALSE(autograd::is_grad_enabled());  // the inner guard restores "off"
  }
  CHECK(autograd::is_grad_enabled());
  const Tensor y = mul(x, 2.0);
  CHECK(y.requires_grad());
  CHECK(y.grad_fn() != nullptr);
  CHECK(y.grad_fn()->name == "mul");
  CHECK(y.grad_fn()->inputs.size() == 2);
  // An op on tensors that need no gradient records nothing.
  CHECK(mul(ones({2}), 2.0).grad_fn() == nullptr);
  CHECK_FALSE(mul(ones({2}), 2.0).requires_grad());

  SUBCASE("grad mode is per thread") {
    NoGradGuard g;
    bool other_thread_enabled = false, other_thread_records = false;
    std::thread t([&] {
      other_thread_enabled = autograd::is_grad_enabled();
      other_thread_records = mul(x, 2.0).grad_fn() != nullptr;
    });
    t.join();
    CHECK(other_thread_enabled);
    CHECK(other_thread_records);
    CHECK_FALSE(autograd::is_grad_enabled());
  }
  SUBCASE("set_grad_enabled") {
    autograd::set_grad_enabled(false);
    CHECK(mul(x, 2.0).grad_fn() == nullptr);
    autograd::set_grad_enabled(true);
    CHECK(mul(x, 2.0).grad_fn() != nullptr);
  }
}

TEST_CASE("detach cuts the graph but shares the values") {
  Tensor x = f64({1, 2, 3}, {3}).requires_grad_();
  const Tensor h = mul(x, 2.0);
  const Tensor d = h.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  CHECK(d.is_leaf());
  CHECK(d.storage() == h.storage());
  CHECK(values(d) == values(h));
  // L = sum(x * detach(2x)): only the first factor is differentiated: dL/dx = 2x.
  sum(mul(x, mul(x, 2.0).detach())).backward();
  CHECK(values(x.grad()) == std::vector<double>{2, 4, 6});
}

TEST_CASE("requires_grad_: leaves only, floating only") {
  Tensor x = ones({2}, {DType::Float64});
  CHECK_FALSE(x.requires_grad());
  CHECK(&x.requires_grad_() == &x);
  CHECK(x.requires_grad());
  x.requires_grad_(false);
  CHECK_FALSE(x.requires_grad());
  x.requires_grad_();
  const Tensor y = mul(x, 2.0);
  check_throws_with([&] { (void)Tensor(y).requires_grad_(); }, {"requires_grad_", "leaf"});
  check_throws_with([&] { (void)Tensor(y).requires_grad_(false); }, {"requires_grad_", "leaf"});
  check_throws_with([] { (void)ones({2}, {DType::Int64}).requires_grad_(); }, {"requires_grad_", "int64"});
  check_throws_with([] { (void)ones({2}, {DType::UInt8}).requires_grad_(); }, {"requires_grad_", "uint8"});
  CHECK_NOTHROW((void)ones({2}, {DType::Int64}).requires_grad_(false));
  CHECK(tensor({1}, {DType::Float32}).requires_grad_().requires_grad());
}

// ---------------------------------------------------------------- retain_graph
TEST_CASE("retain_graph allows a second backward; without it the second one throws") {
  Tensor x = f64({0.5, -1}, {2}).requires_grad_();
  const Tensor y = sum(mul(exp(x), x));  // d/dx = e^x (1 + x)
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();  // frees the graph
  check_close(x.grad(), f64({3 * std::exp(0.5) * 1.5, 3 * std::exp(-1.0) * 0}, {2}), 1e-12, 1e-12);
  check_throws_with([&] { y.backward(); }, {"backward", "second time", "retain_graph"});
  // A graph built again works again.
  x.zero_grad();
  sum(mul(exp(x), x)).backward();
  check_close(x.grad(), f64({std::exp(0.5) * 1.5, 0}, {2}), 1e-12, 1e-12);
}

TEST_CASE("a shared subgraph: the second root's backward needs the first one's retain_graph") {
  Tensor x = f64({2}, {1}).requires_grad_();
  const Tensor h = exp(x);
  const Tensor a = sum(mul(h, 2.0)), b = sum(mul(h, 3.0));
  a.backward();
  check_throws_with([&] { b.backward(); }, {"second time", "exp"});
  x.zero_grad();
  const Tensor h2 = exp(x);
  const Tensor a2 = sum(mul(h2, 2.0)), b2 = sum(mul(h2, 3.0));
  a2.backward(Tensor(), true);
  b2.backward();
  check_close(x.grad(), f64({5 * std::exp(2.0)}, {1}), 1e-12, 1e-12);
}

// ---------------------------------------------------------------- graph shapes
TEST_CASE("diamonds and reuse: gradients from every path are summed") {
  SUBCASE("x used twice by one op") {
    Tensor x = f64({3, -1}, {2}).requires_grad_();
    sum(mul(x, x)).backward();  // 2x
    CHECK(values(x.grad()) == std::vector<double>{6, -2});
  }
  SUBCASE("two branches that meet again") {
    // a = 2x, b = x^2, c = a * b = 2x^3: dc/dx = 6x^2.
    Tensor x = f64({1, 2, -3}, {3}).requires_grad_();
    const Tensor a = mul(x, 2.0), b = mul(x, x);
    sum(mul(a, b)).backward();
    CHECK(values(x.grad()) == std::vector<double>{6, 24, 54});
  }
  SUBCASE("an intermediate with several consumers") {
    // y = e^x, z = y*y + y + 3y: dz/dx = (2y + 4) y.
    Tensor x = f64({0, 1}, {2}).requires_grad_();
    const Tensor y = exp(x);
    sum(add(add(mul(y, y), y), mul(y, 3.0))).backward();
    const double y1 = std::exp(1.0);
    check_close(x.grad(), f64({6, (2 * y1 + 4) * y1}, {2}), 1e-12, 1e-12);
  }
  SUBCASE("a deep diamond chain doubles the gradient at every level") {
    // h_{k+1} = h_k + h_k: h_n = 2^n x.
    Tensor x = f64({1}, {1}).requires_grad_();
    Tensor h = x;
    for (int k = 0; k < 20; ++k) h = add(h, h);
    sum(h).backward();
    CHECK(at(x.grad(), 0) == double(1 << 20));
  }
  SUBCASE("gradcheck of a graph with reuse") {
    gradcheck([](const V& v) { return mul(add(mul(v[0], v[1]), exp(v[0])), sub(v[0], v[1])); },
              {uniform({2, 3}), uniform({2, 3})});
  }
}

TEST_CASE("broadcast gradients are summed back to each input's shape") {
  // L = sum((a + b) * W) with a [3, 1], b [1, 4]: dL/da_i = sum_j W_ij, dL/db_j = sum_i W_ij.
  Tensor a = uniform({3, 1}).requires_grad_(), b = uniform({1, 4}).requires_grad_();
  const Tensor W = uniform({3, 4});
  sum(mul(add(a, b), W)).backward();
  REQUIRE(a.grad().shape() == Shape{3, 1});
  REQUIRE(b.grad().shape() == Shape{1, 4});
  for (int64_t i = 0; i < 3; ++i) {
    double s = 0;
    for (int64_t j = 0; j < 4; ++j) s += at(W, i * 4 + j);
    CHECK(at(a.grad(), i) == doctest::Approx(s).epsilon(1e-12));
  }
  for (int64_t j = 0; j < 4; ++j) {
    double s = 0;
    for (int64_t i = 0; i < 3; ++i) s += at(W, i * 4 + j);
    CHECK(at(b.grad(), j) == doctest::Approx(s).epsilon(1e-12));
  }

  SUBCASE("mul: dL/da_i = sum_j W_ij b_j") {
    a.zero_grad();
    b.zero_grad();
    sum(mul(mul(a, b), W)).backward();
    for (int64_t i = 0; i < 3; ++i) {
      double s = 0;
      for (int64_t j = 0; j < 4; ++j) s += at(W, i * 4 + j) * at(b, j);
      CHECK(at(a.grad(), i) == doctest::Approx(s).epsilon(1e-12));
    }
  }
  SUBCASE("new leading dims, 0-d and size-1 inputs") {
    Tensor v = uniform({4}).requires_grad_(), s = uniform({}).requires_grad_(), o = uniform({1, 1, 1}).requires_grad_();
    const Tensor big = uniform({2, 3, 4});
    sum(mul(add(add(big, v), mul(s, o)), 2.0)).backward();
    CHECK(v.grad().shape() == Shape{4});
    CHECK(values(v.grad()) == std::vector<double>(4, 12.0));  // 2 * (2*3 uses)
    CHECK(s.grad().dim() == 0);
    CHECK(at(s.grad(), 0) == doctest::Approx(48 * at(o, 0)).epsilon(1e-12));
    CHECK(o.grad().shape() == Shape{1, 1, 1});
    CHECK(at(o.grad(), 0) == doctest::Approx(48 * at(s, 0)).epsilon(1e-12));
  }
  SUBCASE("gradcheck of broadcasting ops") {
    gradcheck([](const V& v) { return mul(add(v[0], v[1]), v[2]); }, {uniform({3, 1}), uniform({1, 4}), uniform({4})});
    gradcheck([](const V& v) { return div(v[0], add(v[1], 2.0)); }, {uniform({2, 1, 3}), uniform({5, 1})});
  }
  SUBCASE("autograd::sum_to") {
    const Tensor g = ones({2, 3, 4}, {DType::Float64});
    CHECK(values(autograd::sum_to(g, {3, 1})) == std::vector<double>{8, 8, 8});
    CHECK(values(autograd::sum_to(g, {})) == std::vector<double>{24});
    CHECK(values(autograd::sum_to(g, {1, 1, 4})) == std::vector<double>{6, 6, 6, 6});
    CHECK(autograd::sum_to(g, {2, 3, 4}).is_same(g));
    check_throws_with([&] { (void)autograd::sum_to(ones({3}), {2, 3}); }, {"sum_to", "[3]", "[2, 3]"});
  }
}

// ---------------------------------------------------------------- gradient reversal
TEST_CASE("gradient_reversal: identity forward, -beta * gradient backward") {
  for (double beta : {1.0, 0.5, 2.0, 0.0}) {
    CAPTURE(beta);
    Tensor x = uniform({2, 3}).requires_grad_();
    const Tensor r = gradient_reversal(x, beta);
    check_close(r, x, 0, 0);  // identity, bit for bit
    CHECK(r.shape() == x.shape());
    CHECK(r.grad_fn() != nullptr);
    CHECK(r.grad_fn()->name == "gradient_reversal");
    CHECK_FALSE(r.is_same(x));
    CHECK(x.is_leaf());  // x is not turned into a non-leaf

    // Central differences of L = sum(r * w) through the forward give w (the identity);
    // the analytic gradient must be -beta times that.
    Generator g(11);
    const Tensor w = rand({2, 3}, {DType::Float64}, &g);
    sum(mul(r, w)).backward();
    const double eps = 1e-6;
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double orig = at(x, e);
      auto loss = [&] {
        NoGradGuard ng;
        return sum(mul(gradient_reversal(x, beta), w)).item<double>();
      };
      test::set_at(x, e, orig + eps);
      const double up = loss();
      test::set_at(x, e, orig - eps);
      const double down = loss();
      test::set_at(x, e, orig);
      const double numeric = (up - down) / (2 * eps);
      CHECK(numeric == doctest::Approx(at(w, e)).epsilon(1e-6));
      CHECK(at(x.grad(), e) == doctest::Approx(-beta * numeric).epsilon(1e-6).scale(1e-9));
    }
  }
  SUBCASE("in the middle of a chain the reversal applies to everything before it") {
    // L = sum(3 * GRL(exp(x))): dL/dx = -beta * 3 * e^x.
    Tensor x = f64({0, 1}, {2}).requires_grad_();
    sum(mul(gradient_reversal(exp(x), 0.25), 3.0)).backward();
    check_close(x.grad(), f64({-0.75, -0.75 * std::exp(1.0)}, {2}), 1e-12, 1e-12);
  }
  SUBCASE("no graph when nothing requires grad") {
    CHECK(gradient_reversal(ones({2})).grad_fn() == nullptr);
  }
}

// ---------------------------------------------------------------- custom functions
TEST_CASE("custom functions via autograd::record") {
  SUBCASE("cube: forward and backward in one place, checked by finite differences") {
    const Tensor x = uniform({2, 3});
    check_close(cube(x), mul(mul(x, x), x), 0, 0);
    gradcheck([](const V& v) { return cube(v[0]); }, {x});
    gradcheck([](const V& v) { return cube(v[0]); }, {test::noncontiguous(x)});
    gradcheck([](const V& v) { return exp(cube(mul(v[0], 0.5))); }, {x});  // inside a chain
    Tensor y = f64({2}, {1}).requires_grad_();
    cube(y).backward();
    CHECK(at(y.grad(), 0) == 12);
    CHECK(cube(y).grad_fn()->name == "cube");
  }
  SUBCASE("backward is told which inputs need a gradient") {
    std::vector<bool> needs;
    Tensor a = f64({2}, {1}), b = f64({3}, {1}).requires_grad_();
    mul_square(a, b, &needs).backward();
    CHECK(needs == std::vector<bool>{false, true});
    CHECK_FALSE(a.grad().defined());
    CHECK(at(b.grad(), 0) == 12);  // 2ab
    a.requires_grad_();
    b.requires_grad_(false);
    mul_square(a, b, &needs).backward();
    CHECK(needs == std::vector<bool>{true, false});
    CHECK(at(a.grad(), 0) == 9);  // b^2
    gradcheck([](const V& v) { return mul_square(v[0], v[1], nullptr); }, {uniform({3}), uniform({3})});
    gradcheck([](const V& v) { return mul_square(v[0], v[1], nullptr); }, {uniform({2, 3}), uniform({3})});  // broadcast
  }
  SUBCASE("a leaf that is gone needs no gradient") {
    std::vector<bool> needs;
    Tensor y;
    Tensor b = f64({3}, {1}).requires_grad_();
    {
      Tensor a = f64({2}, {1}).requires_grad_();
      y = mul_square(a, b, &needs);
    }
    y.backward();
    CHECK(needs == std::vector<bool>{false, true});
    CHECK(at(b.grad(), 0) == 12);
  }
  SUBCASE("a backward that breaks the rules is reported with the node's name") {
    Tensor x = f64({1, 2}, {2}).requires_grad_();
    const Tensor wrong_count = autograd::record("two_grads", x.detach(), {x}, [](const Tensor& d, const std::vector<bool>&) {
      return autograd::GradList{d, d};
    });
    check_throws_with([&] { sum(wrong_count).backward(); }, {"two_grads", "returned 2 gradients for 1 inputs"});
    const Tensor wrong_dtype = autograd::record("float32_grad", x.detach(), {x}, [](const Tensor& d, const std::vector<bool>&) {
      return autograd::GradList{d.to(DType::Float32)};
    });
    check_throws_with([&] { sum(wrong_dtype).backward(); }, {"float32_grad", "float32", "float64"});
    check_throws_with([&] { (void)autograd::record("self", x, {x}, nullptr); }, {"record(self)", "detach"});
    CHECK(x.is_leaf());
  }
  SUBCASE("record without inputs that need grad attaches nothing") {
    const Tensor x = ones({2});
    const Tensor y = autograd::record("nothing", x.detach(), {x, Tensor()}, nullptr);
    CHECK(y.grad_fn() == nullptr);
    CHECK_FALSE(autograd::any_requires_grad({x, Tensor()}));
    CHECK(autograd::any_requires_grad({x, ones({1}).requires_grad_()}));
    NoGradGuard g;
    CHECK_FALSE(autograd::any_requires_grad({ones({1}).requires_grad_()}));
  }
}

// ---------------------------------------------------------------- memory
TEST_CASE("memory: forward + backward of an MLP leaves nothing behind") {
  const int64_t baseline = memory_stats().bytes_in_use;
  {
    Generator g(3);
    const Tensor x = randn({64, 16}, {}, &g);
    Tensor w1 = mul(randn({16, 32}, {}, &g), 0.2).requires_grad_(), b1 = zeros({32}).requires_grad_();
    Tensor w2 = mul(randn({32, 8}, {}, &g), 0.2).requires_grad_(), b2 = zeros({8}).requires_grad_();
    const V params{w1, b1, w2, b2};
    const int64_t with_params = memory_stats().bytes_in_use;
    int64_t grad_bytes = 0;
    for (const Tensor& p : params) grad_bytes += int64_t(p.nbytes());

    // The graph's only handle is the loss: every intermediate lives in the graph.
    auto forward = [&] { return sum(relu(add(matmul(relu(add(matmul(x, w1), b1)), w2), b2))); };
    for (int step = 0; step < 3; ++step) {
      CAPTURE(step);
      {
        const Tensor loss = forward();
        CHECK(memory_stats().bytes_in_use > with_params + 64 * 32 * 4);  // saved activations are alive
        loss.backward();
        for (const Tensor& p : params) CHECK(p.grad().shape() == p.shape());
        // Saved tensors were released: what is left is the gradients and the 0-d loss.
        CHECK(memory_stats().bytes_in_use == with_params + grad_bytes + int64_t(loss.nbytes()));
      }
      CHECK(memory_stats().bytes_in_use == with_params + grad_bytes);
      for (Tensor p : params) p.zero_grad();
      CHECK(memory_stats().bytes_in_use == with_params);
    }
  }
  CHECK(memory_stats().bytes_in_use == baseline);
}

TEST_CASE("memory: backward frees the saved tensors unless retain_graph") {
  Generator g(5);
  const Tensor x = randn({128, 64}, {}, &g);
  Tensor w = mul(randn({64, 64}, {}, &g), 0.1).requires_grad_();
  const int64_t start = memory_stats().bytes_in_use;
  const int64_t hidden_bytes = 128 * 64 * 4;
  auto forward = [&] { return sum(relu(matmul(relu(matmul(x, w)), w))); };

  const Tensor freed = forward();
  const int64_t after_forward = memory_stats().bytes_in_use;
  CHECK(after_forward >= start + 2 * hidden_bytes);  // at least the two hidden layers are saved
  freed.backward();
  const int64_t after_backward = memory_stats().bytes_in_use;
  CHECK(after_backward == start + int64_t(w.nbytes()) + int64_t(freed.nbytes()));  // the grad and the loss
  w.zero_grad();

  const Tensor kept = forward();
  kept.backward(Tensor(), /*retain_graph=*/true);
  const int64_t after_retained = memory_stats().bytes_in_use;
  // The retained graph still holds what the freed one let go (and the freed loss is still alive).
  CHECK(after_retained >= after_backward + 2 * hidden_bytes);
  kept.backward();  // the second pass frees it
  CHECK(memory_stats().bytes_in_use == start + int64_t(w.nbytes()) + int64_t(freed.nbytes()) + int64_t(kept.nbytes()));
}

// ---------------------------------------------------------------- deep graphs
TEST_CASE("a deep chain of nodes is differentiated and destroyed without deep recursion") {
  constexpr int kDepth = 100000;
  struct Chain {
    Tensor x, y;
  } chain;
  chain.x = f64({1}, {1}).requires_grad_();
  chain.y = chain.x;
  for (int k = 0; k < kDepth; ++k) chain.y = add(chain.y, 1.0);  // y = x + kDepth, dy/dx = 1
  // Backward orders the graph with an explicit stack; destroying the graph must not recurse
  // once per node either. 256 KiB of stack holds neither when done recursively.
  run_on_small_stack(
      [](void* p) {
        auto* c = static_cast<Chain*>(p);
        c->y.backward();
        c->y = Tensor();  // the last handle on the chain: the whole graph is freed here
      },
      &chain, 256 << 10);
  REQUIRE(chain.x.grad().defined());  // the gradient went all the way down
  CHECK(at(chain.x.grad(), 0) == 1);
  CHECK_FALSE(chain.y.defined());
}

// ---------------------------------------------------------------- threads
TEST_CASE("sums and gradients are bitwise the same with 1 or 2 threads") {
  const int saved = num_threads();
  Generator g(9);
  const Tensor big = rand({200003}, {}, &g);         // one long reduction, split in fixed chunks
  const Tensor m = rand({3, 70001}, {}, &g);         // a few long rows
  const Tensor n = rand({600, 301}, {DType::Float64}, &g);  // many short rows, strided below
  const Tensor x = randn({256, 96}, {}, &g);
  const Tensor w0 = mul(randn({96, 64}, {}, &g), 0.1);

  struct Result {
    double total;
    std::vector<double> rows, cols, strided, mean_all, grad;
  };
  auto run = [&](int threads) {
    set_num_threads(threads);
    REQUIRE(num_threads() == threads);
    Result r;
    r.total = sum(big).item<double>();
    r.rows = values(sum(m, {1}));
    r.cols = values(sum(n, {0}));
    r.strided = values(sum(n.t(), {1}));
    r.mean_all = values(mean(m));
    Tensor w = w0.detach().clone().requires_grad_();
    sum(relu(matmul(x, w))).backward();
    r.grad = values(w.grad());
    return r;
  };
  const Result one = run(1), two = run(2);
  set_num_threads(saved);
  CHECK(one.total == two.total);  // bitwise: == on doubles read from float32
  CHECK(one.rows == two.rows);
  CHECK(one.cols == two.cols);
  CHECK(one.strided == two.strided);
  CHECK(one.mean_all == two.mean_all);
  CHECK(one.grad == two.grad);
  // And the sums are right: compare with a float64 loop.
  double ref = 0;
  for (int64_t i = 0; i < big.numel(); ++i) ref += double(big.data<float>()[i]);
  CHECK(one.total == doctest::Approx(ref).epsilon(1e-6));
  for (int64_t j = 0; j < 301; j += 50) {
    double c = 0;
    for (int64_t i = 0; i < 600; ++i) c += n.data<double>()[i * 301 + j];
    CHECK(one.cols[size_t(j)] == doctest::Approx(c).epsilon(1e-12));
  }
}
