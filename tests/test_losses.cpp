// test_losses.cpp - the fused losses and normalize (ops/losses.h) against plain loops
// written here, gradient checks, ignored labels, empty masks, zero vectors, extreme logits,
// thread-count invariance, misuse.
//
// Shape legend: logits [N, K, H, W] or [N, K], target int64 [N, H, W] or [N]; normal_loss
// pred, target [N, 3, H, W], valid [N, H, W]; the other losses take two tensors of one shape.
//
// Tolerances. The loops compute in double. float64 results: the kernels sum in other
// orders, a few ulp apart (1e-12 relative). float32: the inputs are exact in both; the
// kernels' vectorized exp and log are within ~2 ulp (relative 2.4e-7) and the per-position
// terms are rounded to float before the double sum, so a mean of O(1) terms is within ~1e-6
// relative (checked at 1e-5); per-element gradients within a few float ulp of their size
// (atol 1e-6 on values <= 1 / count, rtol 1e-5). gradcheck: central differences, step 1e-6,
// on smooth functions of O(1) inputs: truncation and cancellation errors ~1e-9 (default
// atol 1e-6, rtol 1e-4); l1's kink at a = b is never within 1e-6 of uniform random inputs.
#include <cmath>
#include <limits>
#include <vector>

#include "ops/threads.h"
#include "ops/losses.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

// Labels in [0, k) with every `ignore_every`-th position set to 255.
Tensor labels(const Shape& shape, int64_t k, int64_t ignore_every, uint64_t seed) {
  Generator g(seed);
  Tensor t = randint(0, k, shape, {DType::Int64}, &g);
  for (int64_t e = 0; ignore_every > 0 && e < t.numel(); e += ignore_every) set_at(t, e, 255);
  return t;
}

// cross_entropy's value and its gradient for dout = 1, by loops (logits seen as [N, K, S]).
struct CrossEntropyRef {
  double loss;
  Tensor dlogits;
};
CrossEntropyRef cross_entropy_reference(const Tensor& x, const Tensor& t, int64_t ignore = 255) {
  const int64_t N = x.size(0), K = x.size(1), S = x.numel() / (N * K);
  auto logit = [&](int64_t n, int64_t k, int64_t s) { return at(x, (n * K + k) * S + s); };
  double total = 0;
  int64_t count = 0;
  std::vector<double> prob(size_t(x.numel()), 0.0);  // softmax - onehot at non-ignored positions
  for (int64_t n = 0; n < N; ++n)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t label = int64_t(at(t, n * S + s));
      if (label == ignore) continue;
      double m = -std::numeric_limits<double>::infinity(), z = 0;
      for (int64_t k = 0; k < K; ++k) m = std::max(m, logit(n, k, s));
      for (int64_t k = 0; k < K; ++k) z += std::exp(logit(n, k, s) - m);
      total += m + std::log(z) - logit(n, label, s);
      ++count;
      for (int64_t k = 0; k < K; ++k)
        prob[size_t((n * K + k) * S + s)] = std::exp(logit(n, k, s) - m) / z - (k == label ? 1.0 : 0.0);
    }
  for (double& p : prob) p /= double(count);
  return {count > 0 ? total / double(count) : std::nan(""), from_vector(prob, x.shape())};
}

double rel_of(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }

// The gradients of loss (a 0-d tensor) for every floating input, in input order.
std::vector<Tensor> grads_of(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& in) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in) leaves.push_back(is_floating(t.dtype()) ? t.detach().clone().requires_grad_() : t);
  f(leaves).backward();
  std::vector<Tensor> g;
  for (const Tensor& t : leaves) g.push_back(t.requires_grad() ? t.grad() : Tensor());
  return g;
}

template <typename F>
void check_thread_invariance(F&& run) {
  const int threads = num_threads();
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(threads);
  CHECK(one == two);  // bitwise
}

}  // namespace

TEST_CASE("cross_entropy against loops: NCHW and [N, K], ignored labels, both dtypes") {
  struct Case {
    Shape logits;
    int64_t ignore_every;
  };
  // 7 x 11 = 77 positions: one full block of 64 and a partial one; 13 classes as NYUv2.
  for (const Case& c : {Case{{2, 13, 7, 11}, 7}, Case{{1, 5, 3, 4}, 5}, Case{{6, 4}, 4}, Case{{1, 3, 1, 1}, 0},
                        Case{{2, 19, 9, 16}, 3}})
    for (DType dtype : {DType::Float32, DType::Float64}) {
      INFO("dtype " << dtype_name(dtype) << " logits " << shape_str(c.logits));
      Shape tshape = c.logits;
      tshape.erase(tshape.begin() + 1);
      const Tensor x = uniform(c.logits, -4, 4, dtype);
      const Tensor t = labels(tshape, c.logits[1], c.ignore_every, 1);
      const CrossEntropyRef ref = cross_entropy_reference(x, t);
      Tensor leaf = noncontiguous(x).detach().requires_grad_();
      const Tensor loss = cross_entropy(leaf, noncontiguous(t));
      CHECK(loss.dtype() == dtype);
      CHECK(loss.dim() == 0);
      CHECK(loss.item<double>() == doctest::Approx(ref.loss).epsilon(rel_of(dtype)));
      loss.backward();
      check_close(leaf.grad(), ref.dlogits, dtype == DType::Float32 ? 1e-7 : 1e-15, rel_of(dtype), "dlogits");
    }
}

TEST_CASE("cross_entropy: gradients, ignored positions, another ignore_index") {
  const Tensor x = uniform({2, 5, 3, 7}, -3, 3);
  const Tensor t = labels({2, 3, 7}, 5, 4, 2);
  gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t); }, {noncontiguous(x)});
  gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], tensor({2}, {DType::Int64})); }, {uniform({1, 4})});
  gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels({5}, 3, 0, 3)); }, {uniform({5, 3})});
  // Ignored positions get exactly zero gradient.
  Tensor leaf = x.detach().clone().requires_grad_();
  cross_entropy(leaf, t).backward();
  for (int64_t c = 0; c < 5; ++c) CHECK(at(leaf.grad(), c * 21) == 0.0);  // position 0 of image 0 is ignored
  // ignore_index = -100 (PyTorch's default): 255 is then an out-of-range label, -100 is skipped.
  Tensor t2 = labels({2, 3, 7}, 5, 0, 4);
  set_at(t2, 3, -100);
  Tensor t2_as_255 = t2.clone();
  set_at(t2_as_255, 3, 255);
  CHECK(cross_entropy(x, t2, -100).item<double>() == doctest::Approx(cross_entropy(x, t2_as_255).item<double>()).epsilon(1e-15));
}

TEST_CASE("cross_entropy: the gradient made by the forward, scaled by dout; no-grad mode") {
  // The forward writes the gradient for dout = 1 (Note [fused cross-entropy gradient]); any
  // other dout scales it, as a weighted loss does.
  const Tensor x = uniform({2, 4, 5, 3}, -2, 2), t = labels({2, 5, 3}, 4, 6, 7);
  const CrossEntropyRef ref = cross_entropy_reference(x, t);
  for (double g : {1.0, 0.25, -3.0}) {
    CAPTURE(g);
    Tensor leaf = x.detach().clone().requires_grad_();
    mul(cross_entropy(leaf, t), g).backward();
    check_close(leaf.grad(), mul(ref.dlogits, g), 1e-15, 1e-12, "scaled dlogits");
  }
  // Twice through a retained graph gives the same gradient twice.
  Tensor leaf = x.detach().clone().requires_grad_();
  const Tensor loss = cross_entropy(leaf, t);
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  check_close(leaf.grad(), mul(ref.dlogits, 2.0), 1e-15, 1e-12, "retained graph");
  // Without grad mode (evaluation) only the loss is computed.
  NoGradGuard no_grad;
  Tensor l = cross_entropy(leaf, t);
  CHECK(!l.requires_grad());
  CHECK(l.item<double>() == doctest::Approx(ref.loss).epsilon(1e-12));
}

TEST_CASE("cross_entropy: many classes, [N, K] logits (a classifier)") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype_name(dtype));
    const Tensor x = uniform({3, 1000}, -5, 5, dtype), t = labels({3}, 1000, 0, 8);
    const CrossEntropyRef ref = cross_entropy_reference(x, t);
    Tensor leaf = x.detach().clone().requires_grad_();
    const Tensor loss = cross_entropy(leaf, t);
    CHECK(loss.item<double>() == doctest::Approx(ref.loss).epsilon(rel_of(dtype)));
    loss.backward();
    check_close(leaf.grad(), ref.dlogits, dtype == DType::Float32 ? 1e-9 : 1e-17, rel_of(dtype), "dlogits");
  }
}

TEST_CASE("cross_entropy: extreme logits stay finite (float32)") {
  Tensor x = uniform({2, 4, 5, 5}, -1, 1, DType::Float32);
  for (int64_t e = 0; e < x.numel(); e += 3) set_at(x, e, e % 2 ? 80.0 : -80.0);  // exp(80) overflows float
  const Tensor t = labels({2, 5, 5}, 4, 9, 5);
  const CrossEntropyRef ref = cross_entropy_reference(x, t);
  Tensor leaf = x.detach().clone().requires_grad_();
  const Tensor loss = cross_entropy(leaf, t);
  CHECK(loss.item<double>() == doctest::Approx(ref.loss).epsilon(1e-5));
  loss.backward();
  check_close(leaf.grad(), ref.dlogits, 1e-7, 1e-5, "dlogits");
}

TEST_CASE("cross_entropy: all ignored is NaN (PyTorch) with zero gradient; bad labels throw") {
  Tensor x = uniform({1, 3, 2, 2}).requires_grad_();
  const Tensor t = full({1, 2, 2}, 255, {DType::Int64});
  const Tensor loss = cross_entropy(x, t);
  CHECK(std::isnan(loss.item<double>()));
  loss.backward();
  CHECK(values(x.grad()) == std::vector<double>(12, 0.0));
  check_throws_with([&] { (void)cross_entropy(x, full({1, 2, 2}, 3, {DType::Int64})); },
                    {"cross_entropy", "target 3", "[1, 3, 2, 2]", "[1, 2, 2]"});
  check_throws_with([&] { (void)cross_entropy(x, full({1, 2, 2}, -1, {DType::Int64})); }, {"cross_entropy", "target -1"});
  check_throws_with([&] { (void)cross_entropy(x, full({1, 2, 3}, 0, {DType::Int64})); },
                    {"cross_entropy", "[1, 3, 2, 2]", "[1, 2, 3]"});
  check_throws_with([&] { (void)cross_entropy(x, full({1, 2, 2}, 0, {DType::Float64})); }, {"cross_entropy", "int64"});
  check_throws_with([&] { (void)cross_entropy(uniform({3}), full({}, 0, {DType::Int64})); }, {"cross_entropy", "[3]"});
}

TEST_CASE("cross_entropy does not depend on the thread count") {
  const Tensor x = uniform({2, 13, 64, 80}, -4, 4, DType::Float32);
  const Tensor t = labels({2, 64, 80}, 13, 11, 2);
  check_thread_invariance([&] {
    Tensor leaf = x.detach().clone().requires_grad_();
    const Tensor loss = cross_entropy(leaf, t);
    loss.backward();
    return std::make_pair(loss.item<double>(), values(leaf.grad()));
  });
}

TEST_CASE("l1_loss against loops; gradients") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype_name(dtype));
    const Tensor a = uniform({2, 3, 5, 7}, -1, 1, dtype), b = uniform({2, 3, 5, 7}, -1, 1, dtype);
    double ref = 0;
    for (int64_t e = 0; e < a.numel(); ++e) ref += std::abs(at(a, e) - at(b, e));
    ref /= double(a.numel());
    CHECK(l1_loss(noncontiguous(a), b).item<double>() == doctest::Approx(ref).epsilon(rel_of(dtype)));
    const std::vector<Tensor> g = grads_of([](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1]); }, {a, b});
    for (int64_t e = 0; e < a.numel(); ++e) {
      const double d = at(a, e) - at(b, e), expect = (d > 0 ? 1.0 : -1.0) / double(a.numel());
      REQUIRE(at(g[0], e) == doctest::Approx(expect).epsilon(1e-6));
      REQUIRE(at(g[1], e) == doctest::Approx(-expect).epsilon(1e-6));
    }
  }
  gradcheck([](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1]); }, {noncontiguous(uniform({2, 1, 3, 5})), uniform({2, 1, 3, 5})});
  // Equal elements: sign(0) = 0, as PyTorch.
  Tensor a = ones({3}, {DType::Float64}).requires_grad_();
  l1_loss(a, ones({3}, {DType::Float64})).backward();
  CHECK(values(a.grad()) == std::vector<double>(3, 0.0));
  check_throws_with([] { (void)l1_loss(uniform({2, 3}), uniform({3, 2})); }, {"l1_loss", "[2, 3]", "[3, 2]"});
}

TEST_CASE("masked_l1_loss against loops; masks uint8, float and broadcast; empty mask is 0") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype_name(dtype));
    const Tensor p = uniform({2, 1, 13, 11}, -1, 1, dtype), t = uniform({2, 1, 13, 11}, -1, 1, dtype);
    const Tensor mask = gt(t, 0.0);  // the depth loss's mask: gt > 0
    double num = 0, count = 0;
    for (int64_t e = 0; e < p.numel(); ++e)
      if (at(t, e) > 0) num += std::abs(at(p, e) - at(t, e)), count += 1;
    CHECK(masked_l1_loss(noncontiguous(p), t, mask).item<double>() == doctest::Approx(num / count).epsilon(rel_of(dtype)));
    // A floating mask counts its non-zero entries as valid, whatever their value.
    const Tensor fmask = mul(mask.to(dtype), 0.25);
    CHECK(masked_l1_loss(p, t, fmask).item<double>() == doctest::Approx(num / count).epsilon(rel_of(dtype)));
  }
  const Tensor p = uniform({2, 3, 5, 7}), t = uniform({2, 3, 5, 7});
  const Tensor mask = gt(uniform({2, 1, 5, 7}), 0.0);
  gradcheck([&](const std::vector<Tensor>& in) { return masked_l1_loss(in[0], in[1], mask); }, {noncontiguous(p), t});
  // A broadcast mask [N, 1, H, W] counts once per channel.
  double num = 0, count = 0;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t q = 0; q < 35; ++q)
        if (at(mask, n * 35 + q) != 0) num += std::abs(at(p, (n * 3 + c) * 35 + q) - at(t, (n * 3 + c) * 35 + q)), count += 1;
  CHECK(masked_l1_loss(p, t, mask).item<double>() == doctest::Approx(num / count).epsilon(1e-12));
  // Empty mask: 0 with zero gradients (SPEC 4.4).
  Tensor pl = p.detach().clone().requires_grad_();
  const Tensor empty = masked_l1_loss(pl, t, zeros({2, 3, 5, 7}, {DType::UInt8}));
  CHECK(empty.item<double>() == 0.0);
  empty.backward();
  CHECK(values(pl.grad()) == std::vector<double>(size_t(p.numel()), 0.0));
  // A NaN where the mask is 0 does not leak into the loss or the gradient.
  Tensor pn = p.detach().clone();
  set_at(pn, 0, std::nan(""));
  Tensor m0 = ones({2, 3, 5, 7}, {DType::UInt8});
  set_at(m0, 0, 0);
  pn.requires_grad_();
  const Tensor l = masked_l1_loss(pn, t, m0);
  CHECK(std::isfinite(l.item<double>()));
  l.backward();
  CHECK(at(pn.grad(), 0) == 0.0);
  check_throws_with([&] { (void)masked_l1_loss(p, t, zeros({2, 2, 5, 7}, {DType::UInt8})); }, {"masked_l1_loss", "[2, 2, 5, 7]"});
  check_throws_with([&] { (void)masked_l1_loss(p, t, zeros({2, 3, 5, 7}, {DType::Int64})); }, {"masked_l1_loss", "int64"});
}

TEST_CASE("normal_loss: 1 - mean cosine over valid pixels, inputs normalized inside") {
  auto reference = [](const Tensor& p, const Tensor& t, const Tensor& valid) {
    const int64_t N = p.size(0), C = p.size(1), S = p.size(2) * p.size(3);
    double total = 0, count = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t q = 0; q < S; ++q) {
        if (at(valid, n * S + q) == 0) continue;
        double dot = 0, np = 0, nt = 0;
        for (int64_t c = 0; c < C; ++c) {
          const double a = at(p, (n * C + c) * S + q), b = at(t, (n * C + c) * S + q);
          dot += a * b, np += a * a, nt += b * b;
        }
        total += dot / (std::max(std::sqrt(np), 1e-12) * std::max(std::sqrt(nt), 1e-12));
        count += 1;
      }
    return 1 - total / count;
  };
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype_name(dtype));
    // 9 x 13 = 117 pixels: a full block of 64 and a partial one.
    const Tensor p = uniform({2, 3, 9, 13}, -1, 1, dtype), t = uniform({2, 3, 9, 13}, -1, 1, dtype);
    Tensor valid = gt(uniform({2, 9, 13}), -0.6);
    CHECK(normal_loss(noncontiguous(p), t, valid).item<double>() == doctest::Approx(reference(p, t, valid)).epsilon(rel_of(dtype)));
    CHECK(normal_loss(p, t, valid.to(dtype)).item<double>() == doctest::Approx(reference(p, t, valid)).epsilon(rel_of(dtype)));
  }
  const Tensor p = uniform({2, 3, 3, 5}), t = uniform({2, 3, 3, 5});
  Tensor valid = ones({2, 3, 5}, {DType::UInt8});
  set_at(valid, 5, 0);
  gradcheck([&](const std::vector<Tensor>& in) { return normal_loss(in[0], in[1], valid); }, {noncontiguous(p), t});
  gradcheck([&](const std::vector<Tensor>& in) { return normal_loss(in[0], in[1], ones({1, 1, 1}, {DType::UInt8})); },
            {uniform({1, 3, 1, 1}), uniform({1, 3, 1, 1})});
  // The same as the composition with normalize (SPEC 4.4's formula).
  const Tensor composed = sub(scalar_tensor(1, {DType::Float64}),
                              div(sum(mul(sum(mul(normalize(p), normalize(t)), {1}), valid.to(DType::Float64))),
                                  sum(valid.to(DType::Float64))));
  CHECK(normal_loss(p, t, valid).item<double>() == doctest::Approx(composed.item<double>()).epsilon(1e-12));
}

TEST_CASE("normal_loss: zero vectors, invalid pixels, empty mask") {
  // A zero prediction at a valid pixel: cosine 0, finite gradient (t / |t| / eps, as the
  // composition x / max(|x|, eps) gives).
  Tensor zp = zeros({1, 3, 1, 2}, {DType::Float64}).requires_grad_();
  const Tensor t = uniform({1, 3, 1, 2});
  const Tensor l = normal_loss(zp, t, ones({1, 1, 2}, {DType::UInt8}));
  CHECK(l.item<double>() == doctest::Approx(1.0));
  l.backward();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t q = 0; q < 2; ++q) {
      double nt = 0;
      for (int64_t k = 0; k < 3; ++k) nt += std::pow(at(t, k * 2 + q), 2);
      const double expect = -0.5 * at(t, c * 2 + q) / std::sqrt(nt) / 1e-12;  // -1/count * t / |t| / eps
      CHECK(at(zp.grad(), c * 2 + q) == doctest::Approx(expect).epsilon(1e-9));
    }
  // A zero (invalid) ground-truth normal with valid = 0 is skipped; NaN there does not leak.
  Tensor p = uniform({1, 3, 2, 2}), gt_normal = uniform({1, 3, 2, 2});
  for (int64_t c = 0; c < 3; ++c) set_at(gt_normal, c * 4, 0.0), set_at(p, c * 4, std::nan(""));
  Tensor valid = ones({1, 2, 2}, {DType::UInt8});
  set_at(valid, 0, 0);
  p.requires_grad_();
  const Tensor l2 = normal_loss(p, gt_normal, valid);
  CHECK(std::isfinite(l2.item<double>()));
  l2.backward();
  CHECK(at(p.grad(), 0) == 0.0);
  // No valid pixel: 0 with zero gradients.
  Tensor pe = uniform({2, 3, 3, 4}).requires_grad_();
  const Tensor empty = normal_loss(pe, uniform({2, 3, 3, 4}), zeros({2, 3, 4}, {DType::UInt8}));
  CHECK(empty.item<double>() == 0.0);
  empty.backward();
  CHECK(values(pe.grad()) == std::vector<double>(72, 0.0));
  check_throws_with([&] { (void)normal_loss(pe, pe, valid); }, {"normal_loss", "[1, 2, 2]", "[2, 3, 3, 4]"});
  check_throws_with([&] { (void)normal_loss(uniform({3, 4}), uniform({3, 4}), valid); }, {"normal_loss", "[3, 4]"});
}

TEST_CASE("bce_with_logits against loops: stable for large |x|, exact gradient at 0") {
  auto reference = [](const Tensor& x, const Tensor& t) {
    double total = 0;
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double v = at(x, e), y = at(t, e);
      total += std::max(v, 0.0) - v * y + std::log1p(std::exp(-std::abs(v)));
    }
    return total / double(x.numel());
  };
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype_name(dtype));
    // 1000 values: 62 whole vectors of 16 floats and a partial one; logits over a wide range.
    const Tensor x = uniform({10, 100}, -30, 30, dtype), t = uniform({10, 100}, 0, 1, dtype);
    CHECK(bce_with_logits(noncontiguous(x), t).item<double>() == doctest::Approx(reference(x, t)).epsilon(rel_of(dtype)));
    const std::vector<Tensor> g =
        grads_of([](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1]); }, {x, t});
    std::vector<double> dx_ref, dt_ref;
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double v = at(x, e), sig = 1 / (1 + std::exp(-v));
      dx_ref.push_back((sig - at(t, e)) / 1000);
      dt_ref.push_back(-v / 1000);
    }
    // float32: sigmoid within ~2 ulp of values <= 1, then divided by n: atol 1e-10.
    check_close(g[0], from_vector(dx_ref, x.shape()), dtype == DType::Float32 ? 1e-10 : 1e-17, rel_of(dtype), "dlogits");
    check_close(g[1], from_vector(dt_ref, x.shape()), 0, rel_of(dtype), "dtargets");
    // Tiny terms keep their precision: x = 40, t = 1 gives log1p(exp(-40)) = 4.2e-18.
    const Tensor big = full({4}, 40.0, {dtype}), one = ones({4}, {dtype});
    CHECK(bce_with_logits(big, one).item<double>() == doctest::Approx(std::log1p(std::exp(-40.0))).epsilon(1e-5));
  }
  const Tensor x = tensor({-800, -1, 0, 2, 800}, {DType::Float64}), t = tensor({0, 1, 1, 0, 1}, {DType::Float64});
  CHECK(bce_with_logits(x, t).item<double>() == doctest::Approx(reference(x, t)).epsilon(1e-12));
  CHECK(bce_with_logits(x.to(DType::Float32), t.to(DType::Float32)).item<double>() == doctest::Approx(reference(x, t)).epsilon(1e-6));
  Tensor leaf = x.detach().clone().requires_grad_();
  bce_with_logits(leaf, t).backward();
  CHECK(at(leaf.grad(), 2) == doctest::Approx((0.5 - 1) / 5));  // (sigmoid(0) - 1) / n
  for (double g : values(leaf.grad())) CHECK(std::isfinite(g));
  gradcheck([](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1]); },
            {noncontiguous(uniform({3, 7}, -4, 4)), uniform({3, 7}, 0, 1)});
  check_throws_with([&] { (void)bce_with_logits(x, uniform({4})); }, {"bce_with_logits", "[5]", "[4]"});
}

TEST_CASE("bce_with_logits does not depend on the thread count") {
  const Tensor x = uniform({4, 1, 300, 300}, -5, 5, DType::Float32), t = uniform({4, 1, 300, 300}, 0, 1, DType::Float32);
  check_thread_invariance([&] { return bce_with_logits(x, t).item<double>(); });
}

TEST_CASE("normalize against loops; zero vectors; gradients") {
  auto reference = [](const Tensor& x) {  // over dim 1 of [N, C, S]
    const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
    std::vector<double> y(size_t(x.numel()));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        double norm = 0;
        for (int64_t c = 0; c < C; ++c) norm += std::pow(at(x, (n * C + c) * S + s), 2);
        norm = std::max(std::sqrt(norm), 1e-12);
        for (int64_t c = 0; c < C; ++c) y[size_t((n * C + c) * S + s)] = at(x, (n * C + c) * S + s) / norm;
      }
    return from_vector(y, x.shape());
  };
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const Shape& shape : {Shape{2, 3, 9, 13}, Shape{1, 64, 5, 7}, Shape{3, 5}}) {
      INFO("dtype " << dtype_name(dtype) << " shape " << shape_str(shape));
      Tensor x = uniform(shape, -1, 1, dtype);
      for (int64_t c = 0; c < shape[1]; ++c) set_at(x, c * (x.numel() / (shape[0] * shape[1])), 0.0);  // a zero vector
      check_close(normalize(noncontiguous(x)), reference(x), dtype == DType::Float32 ? 1e-7 : 1e-15, rel_of(dtype) / 10);
    }
  // Other dims: the last one, and dim 0.
  const Tensor x = uniform({4, 5});
  check_close(normalize(x, -1), reference(x.unsqueeze(2)).reshape({4, 5}), 1e-15, 1e-14, "dim -1");
  check_close(normalize(x, -1).t(), normalize(x.t(), 0), 1e-15, 1e-15, "dim 0 vs transposed dim -1");
  gradcheck([](const std::vector<Tensor>& in) { return normalize(in[0], 1); }, {noncontiguous(uniform({2, 3, 5, 3}))});
  gradcheck([](const std::vector<Tensor>& in) { return normalize(in[0], -1); }, {uniform({4, 5})});
  gradcheck([](const std::vector<Tensor>& in) { return normalize(in[0], 0); }, {uniform({3, 2, 2})});
  // A zero vector: output 0, gradient dout / eps (PyTorch's clamp_min passes nothing there).
  Tensor z = zeros({1, 3, 1, 1}, {DType::Float64}).requires_grad_();
  const Tensor y = normalize(z);
  CHECK(values(y) == std::vector<double>(3, 0.0));
  y.backward(full({1, 3, 1, 1}, 2.0, {DType::Float64}));
  for (double g : values(z.grad())) CHECK(g == doctest::Approx(2.0 / 1e-12));
  // float32 gradients agree with float64's.
  const Tensor xs = uniform({2, 3, 7, 9});
  auto f = [](const std::vector<Tensor>& in) { return sum(mul(normalize(in[0]), in[1])); };
  const Tensor w = uniform({2, 3, 7, 9});
  check_close(grads_of(f, {xs.to(DType::Float32), w.to(DType::Float32)})[0], grads_of(f, {xs, w})[0], 1e-5, 1e-4, "float32 dx");
  check_throws_with([] { (void)normalize(uniform({2, 3}), 2); }, {"normalize", "[2, 3]"});
}
