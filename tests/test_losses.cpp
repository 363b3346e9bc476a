// test_losses.cpp - losses and normalize against loops written here, gradient checks,
// ignored labels, empty masks, zero vectors, thread-count invariance, misuse.
#include <cmath>

#include "ops/cpu/parallel.h"
#include "ops/losses.h"
#include "tests/test_util.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::uniform;

namespace {
// Labels in [0, k) with every `ignore_every`-th position set to 255.
Tensor labels(const Shape& shape, int64_t k, int64_t ignore_every, uint64_t seed) {
  Generator g(seed);
  Tensor t = randint(0, k, shape, {DType::Int64}, &g);
  for (int64_t e = 0; ignore_every > 0 && e < t.numel(); e += ignore_every) test::set_at(t, e, 255);
  return t;
}

double reference_cross_entropy(const Tensor& x, const Tensor& t) {
  const int64_t n = x.size(0), k = x.size(1), s = x.numel() / (n * k);
  double total = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < s; ++p) {
      const int64_t label = int64_t(test::at(t, i * s + p));
      if (label == 255) continue;
      double lse = 0;
      for (int64_t j = 0; j < k; ++j) lse += std::exp(test::at(x, (i * k + j) * s + p));
      total += std::log(lse) - test::at(x, (i * k + label) * s + p);
      ++count;
    }
  return total / double(count);
}
}  // namespace

TEST_CASE("cross_entropy: NCHW and [N, K], ignored labels, loops, gradients") {
  const Tensor x = uniform({2, 5, 3, 4}, -3, 3);
  const Tensor t = labels({2, 3, 4}, 5, 7, 1);
  CHECK(cross_entropy(x, t).item<double>() == doctest::Approx(reference_cross_entropy(x, t)).epsilon(1e-12));
  CHECK(cross_entropy(x.to(DType::Float32), t).item<double>() ==
        doctest::Approx(reference_cross_entropy(x, t)).epsilon(1e-5));
  CHECK(cross_entropy(test::noncontiguous(x), test::noncontiguous(t)).item<double>() ==
        doctest::Approx(reference_cross_entropy(x, t)).epsilon(1e-12));
  gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); }, {test::noncontiguous(x)});
  const Tensor x2 = uniform({1, 4}), t2 = tensor({2}, {DType::Int64});
  CHECK(cross_entropy(x2, t2).item<double>() == doctest::Approx(reference_cross_entropy(x2.reshape({1, 4, 1}), t2.reshape({1, 1}))));
  gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t2); }, {x2});
  // Ignored positions get no gradient.
  Tensor leaf = x.detach().clone().requires_grad_();
  cross_entropy(leaf, t).backward();
  for (int64_t c = 0; c < 5; ++c) CHECK(test::at(leaf.grad(), c * 12) == 0.0);  // position 0 is ignored
}

TEST_CASE("cross_entropy: all ignored is NaN (PyTorch) with zero gradient; bad labels throw") {
  Tensor x = uniform({1, 3, 2, 2}).requires_grad_();
  const Tensor t = full({1, 2, 2}, 255, {DType::Int64});
  const Tensor loss = cross_entropy(x, t);
  CHECK(std::isnan(loss.item<double>()));
  loss.backward();
  CHECK(test::values(x.grad()) == std::vector<double>(12, 0.0));
  test::check_throws_with([&] { (void)cross_entropy(x, full({1, 2, 2}, 3, {DType::Int64})); }, {"cross_entropy", "target 3"});
  test::check_throws_with([&] { (void)cross_entropy(x, full({1, 2, 3}, 0, {DType::Int64})); }, {"cross_entropy", "[1, 3, 2, 2]", "[1, 2, 3]"});
}

TEST_CASE("cross_entropy does not depend on the thread count") {
  const Tensor x = uniform({2, 13, 64, 80}, -4, 4, DType::Float32);
  const Tensor t = labels({2, 64, 80}, 13, 11, 2);
  auto run = [&] {
    Tensor leaf = x.detach().clone().requires_grad_();
    const Tensor loss = cross_entropy(leaf, t);
    loss.backward();
    return std::make_pair(loss.item<double>(), test::values(leaf.grad()));
  };
  cpu::set_num_threads(1);
  const auto one = run();
  cpu::set_num_threads(2);
  const auto two = run();
  CHECK(one.first == two.first);
  CHECK(one.second == two.second);
}

TEST_CASE("l1 and masked l1: loops, empty mask is 0 with zero gradient") {
  const Tensor a = uniform({2, 1, 3, 5}), b = uniform({2, 1, 3, 5});
  double ref = 0;
  for (int64_t e = 0; e < a.numel(); ++e) ref += std::abs(test::at(a, e) - test::at(b, e)) / double(a.numel());
  CHECK(l1_loss(a, b).item<double>() == doctest::Approx(ref).epsilon(1e-12));
  gradcheck([](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1]); }, {test::noncontiguous(a), b});
  const Tensor mask = gt(b, 0.0);
  double num = 0, cnt = 0;
  for (int64_t e = 0; e < a.numel(); ++e)
    if (test::at(b, e) > 0) num += std::abs(test::at(a, e) - test::at(b, e)), cnt += 1;
  CHECK(masked_l1_loss(a, b, mask).item<double>() == doctest::Approx(num / cnt).epsilon(1e-12));
  gradcheck([&](const std::vector<Tensor>& in) { return masked_l1_loss(in[0], in[1], mask); }, {a, b});
  Tensor p = a.detach().clone().requires_grad_();
  const Tensor empty = masked_l1_loss(p, b, zeros({2, 1, 3, 5}, {DType::UInt8}));
  CHECK(empty.item<double>() == 0.0);
  empty.backward();
  CHECK(test::values(p.grad()) == std::vector<double>(30, 0.0));
}

TEST_CASE("normalize: loops, zero vectors, gradients") {
  Tensor x = uniform({2, 3, 2, 2});
  for (int64_t e = 0; e < 3; ++e) test::set_at(x, e * 4, 0.0);  // pixel (0, 0) of image 0 is the zero vector
  const Tensor y = normalize(x, 1);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t p = 0; p < 4; ++p) {
      double norm = 0;
      for (int64_t c = 0; c < 3; ++c) norm += std::pow(test::at(x, (n * 3 + c) * 4 + p), 2);
      norm = std::max(std::sqrt(norm), 1e-12);
      for (int64_t c = 0; c < 3; ++c)
        CHECK(test::at(y, (n * 3 + c) * 4 + p) == doctest::Approx(test::at(x, (n * 3 + c) * 4 + p) / norm));
    }
  gradcheck([](const std::vector<Tensor>& in) { return normalize(in[0], 1); }, {test::noncontiguous(uniform({2, 3, 2, 3}))});
  gradcheck([](const std::vector<Tensor>& in) { return normalize(in[0], -1); }, {uniform({4, 5})});
  Tensor z = zeros({1, 3, 1, 1}, {DType::Float64}).requires_grad_();
  sum(normalize(z)).backward();
  for (double g : test::values(z.grad())) CHECK(std::isfinite(g));
}

TEST_CASE("normal_loss: 1 - mean cosine over valid pixels; zero prediction; empty is 0") {
  const Tensor p = uniform({2, 3, 3, 4}), t = uniform({2, 3, 3, 4});
  Tensor valid = ones({2, 3, 4}, {DType::UInt8});
  test::set_at(valid, 5, 0);
  double total = 0, count = 0;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t q = 0; q < 12; ++q) {
      if (test::at(valid, n * 12 + q) == 0) continue;
      double dot = 0, np = 0, nt = 0;
      for (int64_t c = 0; c < 3; ++c) {
        const double a = test::at(p, (n * 3 + c) * 12 + q), b = test::at(t, (n * 3 + c) * 12 + q);
        dot += a * b, np += a * a, nt += b * b;
      }
      total += dot / (std::sqrt(np) * std::sqrt(nt));
      count += 1;
    }
  CHECK(normal_loss(p, t, valid).item<double>() == doctest::Approx(1 - total / count).epsilon(1e-12));
  gradcheck([&](const std::vector<Tensor>& in) { return normal_loss(in[0], in[1], valid); }, {test::noncontiguous(p), t});
  Tensor zp = zeros({1, 3, 1, 2}, {DType::Float64}).requires_grad_();
  const Tensor l = normal_loss(zp, uniform({1, 3, 1, 2}), ones({1, 1, 2}, {DType::UInt8}));
  CHECK(l.item<double>() == doctest::Approx(1.0));
  l.backward();
  for (double g : test::values(zp.grad())) CHECK(std::isfinite(g));
  CHECK(normal_loss(p, t, zeros({2, 3, 4}, {DType::UInt8})).item<double>() == 0.0);
  test::check_throws_with([&] { (void)normal_loss(p, t, valid.narrow(1, 0, 2)); }, {"normal_loss", "[2, 2, 4]"});
}

TEST_CASE("bce_with_logits: stable for large |x|, exact gradient at 0") {
  const Tensor x = tensor({-800, -1, 0, 2, 800}, {DType::Float64}), t = tensor({0, 1, 1, 0, 1}, {DType::Float64});
  double ref = 0;
  for (int64_t e = 0; e < 5; ++e) {
    const double v = test::at(x, e), y = test::at(t, e);
    ref += (std::max(v, 0.0) - v * y + std::log1p(std::exp(-std::abs(v)))) / 5;
  }
  CHECK(bce_with_logits(x, t).item<double>() == doctest::Approx(ref).epsilon(1e-12));
  CHECK(std::isfinite(bce_with_logits(x.to(DType::Float32), t.to(DType::Float32)).item<double>()));
  Tensor leaf = x.detach().clone().requires_grad_();
  bce_with_logits(leaf, t).backward();
  CHECK(test::at(leaf.grad(), 2) == doctest::Approx((0.5 - 1) / 5));  // (sigmoid(0) - 1) / n
  gradcheck([](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1]); },
            {uniform({2, 3}, -4, 4), uniform({2, 3}, 0, 1)});
  test::check_throws_with([&] { (void)bce_with_logits(x, uniform({4})); }, {"bce_with_logits", "[5]", "[4]"});
}
