// test_tensor_core.cpp - tensors (factories, dtypes, views, copies, printing, memory) and
// the autograd engine (accumulation, no_grad, retain_graph, broadcasting, custom functions,
// gradient reversal, memory released after backward).
#include <cmath>
#include <cstdint>

#include "ops/threads.h"
#include "tests/test_util.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::uniform;

// ---------------------------------------------------------------- factories and dtypes
TEST_CASE("factories: values, shapes, dtypes") {
  CHECK(test::values(zeros({2, 2})) == std::vector<double>(4, 0.0));
  CHECK(test::values(ones({3}, {DType::Int64})) == std::vector<double>(3, 1.0));
  CHECK(test::values(full({2}, 2.5, {DType::Float64})) == std::vector<double>{2.5, 2.5});
  CHECK(test::values(arange(5)) == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(test::values(arange(1, 2, 0.25, {DType::Float64})) == std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(test::values(arange(3, 0, -1, {DType::Int64})) == std::vector<double>{3, 2, 1});
  CHECK(arange(0).numel() == 0);
  CHECK(scalar_tensor(4).dim() == 0);
  CHECK(scalar_tensor(4).item<double>() == 4);
  const std::vector<float> buf{1, 2, 3, 4, 5, 6};
  const Tensor fb = from_blob(buf.data(), {2, 3});
  CHECK(fb.dtype() == DType::Float32);
  CHECK(test::at(fb, 5) == 6);
  CHECK(test::values(tensor({1, 2}, {DType::UInt8})) == std::vector<double>{1, 2});
  CHECK(zeros_like(fb).shape() == fb.shape());
  CHECK(test::values(full_like(fb, 7)) == std::vector<double>(6, 7.0));
  test::check_throws_with([] { (void)empty({2, -1}); }, {"negative", "[2, -1]"});
  test::check_throws_with([] { (void)arange(0, 1, 0); }, {"arange"});
  test::check_throws_with([&] { (void)fb.data<double>(); }, {"float32", "float64"});
  test::check_throws_with([&] { (void)fb.item<double>(); }, {"item", "[2, 3]"});
}

TEST_CASE("random: reproducible by seed, independent generators, rough statistics") {
  manual_seed(11);
  const Tensor a = rand({1000});
  manual_seed(11);
  const Tensor b = rand({1000});
  CHECK(test::values(a) == test::values(b));
  Generator g1(1), g2(2);
  CHECK(test::values(rand({8}, {}, &g1)) != test::values(rand({8}, {}, &g2)));
  const std::vector<double> u = test::values(rand({20000}, {DType::Float64}));
  double mu = 0, mx = -1, mn = 2;
  for (double v : u) mu += v / double(u.size()), mx = std::max(mx, v), mn = std::min(mn, v);
  CHECK(mu == doctest::Approx(0.5).epsilon(0.02));
  CHECK(mn >= 0.0);
  CHECK(mx < 1.0);
  const std::vector<double> n = test::values(randn({20000}, {DType::Float64}));
  double m1 = 0, m2 = 0;
  for (double v : n) m1 += v / double(n.size()), m2 += v * v / double(n.size());
  CHECK(std::abs(m1) < 0.03);
  CHECK(m2 == doctest::Approx(1.0).epsilon(0.04));
  const std::vector<double> r = test::values(randint(-3, 4, {5000}));
  CHECK(*std::min_element(r.begin(), r.end()) == -3);
  CHECK(*std::max_element(r.begin(), r.end()) == 3);
}

TEST_CASE("dtype conversions and copies between dtypes") {
  const Tensor f = tensor({-1.7, 0.2, 2.9}, {DType::Float32});
  CHECK(test::values(f.to(DType::Int64)) == std::vector<double>{-1, 0, 2});  // C++ truncation, as PyTorch
  CHECK(f.to(DType::Float64).dtype() == DType::Float64);
  CHECK(test::values(tensor({3, 250}, {DType::UInt8}).to(DType::Float32)) == std::vector<double>{3, 250});
  Tensor dst = zeros({2, 3}, {DType::Float64});
  copy_(dst, f.to(DType::Float64));  // broadcast [3] -> [2, 3]
  CHECK(test::at(dst, 4) == doctest::Approx(0.2).epsilon(1e-6));
  fill_(dst.select(0, 1), 5);
  CHECK(test::values(dst.select(0, 1)) == std::vector<double>{5, 5, 5});
  test::check_throws_with([&] { copy_(dst, zeros({4})); }, {"copy_", "[4]", "[2, 3]"});
}

TEST_CASE("CPU-only builds refuse CUDA tensors clearly") {
  if (cuda_compiled()) return;
  CHECK(cuda_device_count() == 0);
  test::check_throws_with([] { (void)zeros({2}, {DType::Float32, Device::cuda()}); }, {"cuda:0", "CUDA"});
  CHECK(Device::parse("cuda:1") == Device::cuda(1));
  CHECK(Device::parse("cpu").is_cpu());
  test::check_throws_with([] { (void)Device::parse("gpu"); }, {"Device::parse", "gpu"});
}

// ---------------------------------------------------------------- views
TEST_CASE("views share storage and index correctly") {
  const Tensor x = arange(0, 24, 1, {DType::Float64}).reshape({2, 3, 4});
  CHECK(x.reshape({4, -1}).shape() == Shape{4, 6});
  const Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK_FALSE(p.is_contiguous());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) CHECK(test::at(p, (i * 2 + j) * 3 + k) == double(j * 12 + k * 4 + i));
  CHECK(test::values(x.transpose(0, 2).contiguous()) == test::values(x.permute({2, 1, 0}).contiguous()));
  CHECK(test::values(x.narrow(2, 1, 2).select(0, 1).select(0, 2)) == std::vector<double>{21, 22});
  CHECK(test::values(x.select(-1, -1).select(0, 0)) == std::vector<double>{3, 7, 11});
  const Tensor e = tensor({1, 2}, {DType::Float64}).unsqueeze(0).expand({3, -1});
  CHECK(e.stride(0) == 0);
  CHECK(test::values(e) == std::vector<double>{1, 2, 1, 2, 1, 2});
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3, 4});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(zeros({1, 3, 1}).squeeze().shape() == Shape{3});
  CHECK(zeros({1, 3, 1}).squeeze(2).shape() == Shape{1, 3});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.select(0, 0).t().shape() == Shape{4, 3});
  test::check_throws_with([&] { (void)x.t(); }, {"t", "[2, 3, 4]"});
  // Writing through a view changes the base; reshape of a non-contiguous tensor copies.
  Tensor base = zeros({2, 3});
  fill_(base.narrow(1, 1, 1), 9);
  CHECK(test::values(base) == std::vector<double>{0, 9, 0, 0, 9, 0});
  CHECK(base.view({3, 2}).storage() == base.storage());
  const Tensor pr = p.reshape({8, 3});
  CHECK(pr.storage() != p.storage());
  CHECK(test::values(pr) == test::values(p));
  test::check_throws_with([&] { (void)p.view({24}); }, {"view", "[4, 2, 3]"});
  test::check_throws_with([&] { (void)x.reshape({5, -1}); }, {"reshape", "[2, 3, 4]"});
  test::check_throws_with([&] { (void)x.permute({0, 0, 1}); }, {"permute", "[2, 3, 4]"});
  test::check_throws_with([&] { (void)x.narrow(1, 2, 2); }, {"narrow", "[2, 3, 4]"});
  test::check_throws_with([&] { (void)x.select(3, 0); }, {"select", "[2, 3, 4]"});
  test::check_throws_with([&] { (void)x.expand({2, 5, 4}); }, {"expand", "[2, 3, 4]"});
  test::check_throws_with([&] { (void)x.transpose(0, 5); }, {"transpose", "[2, 3, 4]"});
}

TEST_CASE("view ops are differentiable (gradient checks, non-contiguous and size-1 dims)") {
  const Tensor x = uniform({2, 3, 4});
  using V = std::vector<Tensor>;
  gradcheck([](const V& in) { return mul(in[0].reshape({4, 6}), 2.0); }, {x});
  gradcheck([](const V& in) { return mul(in[0].reshape({-1}), 2.0); }, {test::noncontiguous(x)});
  gradcheck([](const V& in) { return in[0].permute({2, 0, 1}).contiguous(); }, {x});
  gradcheck([](const V& in) { return mul(in[0].transpose(0, 2), 1.0); }, {test::noncontiguous(x)});
  gradcheck([](const V& in) { return mul(in[0].narrow(2, 1, 2), 3.0); }, {x});
  gradcheck([](const V& in) { return mul(in[0].select(1, -1), 3.0); }, {x});
  gradcheck([](const V& in) { return mul(in[0].expand({3, 2, 5}), 1.5); }, {uniform({2, 1})});
  gradcheck([](const V& in) { return mul(in[0].unsqueeze(1).squeeze(1), 1.5); }, {uniform({1, 3})});
  gradcheck([](const V& in) { return mul(in[0].flatten(), 1.5); }, {uniform({1, 2, 1})});
  gradcheck([](const V& in) { return in[0].t().clone(); }, {uniform({3, 2})});
  gradcheck([](const V& in) { return in[0].to(DType::Float32).to(DType::Float64); }, {uniform({3})},
            {.eps = 1e-3, .atol = 1e-4, .rtol = 1e-3});  // a float32 round trip: step and tolerance sized for it
}

// ---------------------------------------------------------------- printing and memory
TEST_CASE("printing: values, abbreviation, metadata") {
  const std::string s = tensor({1.5, -2}, {DType::Float32}).str();
  CHECK(s.find("1.5000") != std::string::npos);
  CHECK(s.find("-2.0000") != std::string::npos);
  CHECK(s.find("shape=[2]") != std::string::npos);
  CHECK(s.find("dtype=float32") != std::string::npos);
  CHECK(s.find("device=cpu") != std::string::npos);
  const std::string big = arange(0, 5000, 1, {DType::Int64}).reshape({50, 100}).str();
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.find("4999") != std::string::npos);
  CHECK(big.find("2500") == std::string::npos);  // the middle is elided
  CHECK(big.size() < 2000);
  CHECK(scalar_tensor(3).str().find("tensor(3.0000") == 0);
  CHECK(zeros({0, 3}).str().find("[]") != std::string::npos);
  CHECK(ones({1}).requires_grad_().str().find("requires_grad=true") != std::string::npos);
  CHECK(Tensor().str() == "tensor(undefined)");
}

TEST_CASE("allocator: 64-byte alignment, bytes in use and peak") {
  const int64_t before = memory_stats().bytes_in_use;
  {
    const Tensor a = empty({1000}), b = empty({3}, {DType::UInt8});
    CHECK(reinterpret_cast<uintptr_t>(a.raw_data()) % 64 == 0);
    CHECK(reinterpret_cast<uintptr_t>(b.raw_data()) % 64 == 0);
    CHECK(memory_stats().bytes_in_use >= before + 4003);
    reset_peak_memory();
    { const Tensor c = empty({10000}); }
    CHECK(memory_stats().peak_bytes >= memory_stats().bytes_in_use + 40000);
  }
  CHECK(memory_stats().bytes_in_use == before);
}

// ---------------------------------------------------------------- autograd
TEST_CASE("backward: scalar root, explicit gradient, errors") {
  Tensor x = tensor({1, 2, 3}, {DType::Float64}).requires_grad_();
  sum(mul(x, x)).backward();
  CHECK(test::values(x.grad()) == std::vector<double>{2, 4, 6});
  x.zero_grad();
  mul(x, 3.0).backward(tensor({1, 0, 2}, {DType::Float64}));
  CHECK(test::values(x.grad()) == std::vector<double>{3, 0, 6});
  test::check_throws_with([&] { mul(x, 2.0).backward(); }, {"backward", "[3]"});
  test::check_throws_with([&] { mul(x, 2.0).backward(ones({2}, {DType::Float64})); }, {"backward", "[2]", "[3]"});
  test::check_throws_with([&] { (void)mul(x, 2.0).requires_grad_(); }, {"requires_grad_", "leaf"});
  test::check_throws_with([] { (void)ones({2}, {DType::Int64}).requires_grad_(); }, {"requires_grad_", "int64"});
}

TEST_CASE("gradients accumulate across backward calls until zero_grad; diamonds sum") {
  Tensor x = tensor({2}, {DType::Float64}).requires_grad_();
  sum(mul(x, 3.0)).backward();
  sum(mul(x, 3.0)).backward();
  CHECK(test::at(x.grad(), 0) == 6);
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  const Tensor y = mul(x, x);     // dy/dx = 2x = 4
  sum(add(y, mul(y, x))).backward();  // d(y + yx)/dx = 2x + 3x^2 = 4 + 12
  CHECK(test::at(x.grad(), 0) == 16);
}

TEST_CASE("no_grad, detach, requires_grad propagation") {
  Tensor x = ones({2}).requires_grad_();
  {
    NoGradGuard g;
    const Tensor y = mul(x, 2.0);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(autograd::is_grad_enabled());
  const Tensor y = mul(x, 2.0);
  CHECK(y.requires_grad());
  CHECK(y.grad_fn() != nullptr);
  CHECK(y.grad_fn()->name == "mul");
  const Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.storage() == y.storage());
  CHECK_FALSE(mul(ones({2}), 2.0).requires_grad());
}

TEST_CASE("retain_graph allows a second backward; without it the graph is freed") {
  Tensor x = tensor({3}, {DType::Float64}).requires_grad_();
  const Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(test::at(x.grad(), 0) == doctest::Approx(2 * std::exp(3.0)));
  test::check_throws_with([&] { y.backward(); }, {"backward", "second time"});
}

TEST_CASE("broadcast inputs get gradients summed back to their shape") {
  Tensor a = uniform({3, 1}).requires_grad_(), b = uniform({1, 4}).requires_grad_();
  sum(add(a, b)).backward();
  CHECK(a.grad().shape() == Shape{3, 1});
  CHECK(test::values(a.grad()) == std::vector<double>(3, 4.0));
  CHECK(test::values(b.grad()) == std::vector<double>(4, 3.0));
  Tensor s = uniform({}).requires_grad_();
  sum(mul(uniform({2, 3}), s)).backward();
  CHECK(s.grad().dim() == 0);
}

namespace {
// A custom function, forward and backward side by side: cube(x) = x^3, d/dx = 3x^2.
Tensor cube(const Tensor& x) {
  const Tensor out = mul(mul(x.detach(), x.detach()), x.detach());
  return autograd::record("cube", out, {x}, [saved = autograd::save(x)](const Tensor& dout, const std::vector<bool>&) {
    return autograd::GradList{mul(dout, mul(mul(saved, saved), 3.0))};
  });
}
}  // namespace

TEST_CASE("custom functions and the gradient-reversal layer") {
  gradcheck([](const std::vector<Tensor>& in) { return cube(in[0]); }, {uniform({2, 3})});
  Tensor x = uniform({4}).requires_grad_();
  const Tensor r = gradient_reversal(x, 0.5);
  check_close(r, x, 0, 0);  // identity forward
  sum(mul(r, 2.0)).backward();
  CHECK(test::values(x.grad()) == std::vector<double>(4, -1.0));  // 2 * (-0.5)
  CHECK(r.grad_fn()->name == "gradient_reversal");
}

TEST_CASE("memory returns to its earlier level after forward + backward; backward frees the graph") {
  const int64_t baseline = memory_stats().bytes_in_use;
  {
    Tensor w1 = mul(randn({64, 32}), 0.1).requires_grad_(), w2 = mul(randn({1, 64}), 0.1).requires_grad_();
    const Tensor x = randn({128, 32});
    const int64_t with_params = memory_stats().bytes_in_use;
    {
      const Tensor loss = mean(relu(linear(relu(linear(x, w1)), w2)));
      const int64_t after_forward = memory_stats().bytes_in_use;
      CHECK(after_forward > with_params);  // saved activations are alive
      loss.backward();
      // The graph's saved tensors are freed by backward; only the grads (and loss) remain.
      CHECK(memory_stats().bytes_in_use <= with_params + int64_t(w1.nbytes() + w2.nbytes()) + 64);
    }
    w1.zero_grad();
    w2.zero_grad();
    CHECK(memory_stats().bytes_in_use == with_params);
  }
  CHECK(memory_stats().bytes_in_use == baseline);
}

TEST_CASE("results do not depend on the thread count (elementwise, reductions, softmax)") {
  Generator g(9);
  const Tensor x = rand({3, 70000}, {}, &g);
  set_num_threads(1);
  const std::vector<double> s1 = test::values(sum(x, {1})), e1 = test::values(exp(x)), m1 = test::values(softmax(x, 1));
  const double t1 = sum(x).item<double>();
  set_num_threads(2);
  CHECK(test::values(sum(x, {1})) == s1);
  CHECK(test::values(exp(x)) == e1);
  CHECK(test::values(softmax(x, 1)) == m1);
  CHECK(sum(x).item<double>() == t1);
}
