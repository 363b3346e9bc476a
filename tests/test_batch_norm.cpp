// test_batch_norm.cpp - batch_norm (ops/batch_norm.h) against plain loops written here from
// PyTorch's definition, running-stat updates by hand, gradient checks, misuse.
//
// Shape legend: x [N, C, H, W] (or [N, C]); running_mean, running_var, weight, bias [C].
//
// Tolerances. float64 forward: the kernel and the loops sum the same values in different
// orders, a few ulp apart (1e-12). float32 forward: statistics are in double in both, the
// output is one float FMA (x * scale + shift, PyTorch's form), so within a few float ulp of
// values of size ~3 (atol 1e-5). float32 gradients are checked against the float64 op
// (itself checked by finite differences): float rounding of the inputs and of the
// per-element math, relative 1e-4. gradcheck: central differences with step 1e-6 on
// O(1) values, truncation error ~1e-10 and cancellation ~1e-10, so atol 1e-6 is ample.
#include <cmath>
#include <vector>

#include "ops/batch_norm.h"
#include "ops/threads.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

struct Reference {
  Tensor y;                        // x's shape
  std::vector<double> mean, var;   // biased batch statistics (training) or the running ones (eval)
  std::vector<double> running_mean, running_var;  // after the update
};

// The oracle, in double, straight from PyTorch's definition (ops/batch_norm.h).
Reference batch_norm_reference(const Tensor& x, const std::vector<double>& rm, const std::vector<double>& rv,
                               const Tensor& weight, const Tensor& bias, bool training, double momentum, double eps) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C), M = N * S;
  const std::vector<double> v = values(x);
  auto at_ = [&](int64_t n, int64_t c, int64_t s) { return v[size_t((n * C + c) * S + s)]; };
  Reference r;
  r.mean.resize(size_t(C)), r.var.resize(size_t(C));
  r.running_mean = rm, r.running_var = rv;
  std::vector<double> y(v.size());
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    if (training) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) mean += at_(n, c, s);
      mean /= double(M);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) var += (at_(n, c, s) - mean) * (at_(n, c, s) - mean);
      var /= double(M);
      if (!rm.empty()) {
        r.running_mean[size_t(c)] = (1 - momentum) * rm[size_t(c)] + momentum * mean;
        r.running_var[size_t(c)] = (1 - momentum) * rv[size_t(c)] + momentum * var * double(M) / double(M - 1);
      }
    } else {
      mean = rm[size_t(c)];
      var = rv[size_t(c)];
    }
    r.mean[size_t(c)] = mean, r.var[size_t(c)] = var;
    const double w = weight.defined() ? at(weight, c) : 1.0, b = bias.defined() ? at(bias, c) : 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s)
        y[size_t((n * C + c) * S + s)] = (at_(n, c, s) - mean) / std::sqrt(var + eps) * w + b;
  }
  r.y = from_vector(y, x.shape());
  return r;
}

double atol_of(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }

// The gradients of sum(out * w) (w a fixed random weight) for every input that requires grad.
std::vector<Tensor> grads_of(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& in) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in) leaves.push_back(t.defined() ? t.detach().clone().requires_grad_() : Tensor());
  const Tensor out = f(leaves);
  Generator gen(99);
  const Tensor w = rand(out.shape(), {DType::Float64}, &gen).to(out.dtype());
  sum(mul(out, w)).backward();
  std::vector<Tensor> g;
  for (const Tensor& t : leaves) g.push_back(t.defined() ? t.grad() : Tensor());
  return g;
}

}  // namespace

TEST_CASE("batch_norm: training forward and running stats against loops") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Shape& shape : {Shape{3, 5, 7, 9}, Shape{1, 4, 3, 5}, Shape{6, 4}, Shape{2, 3, 1, 1}}) {
      INFO("dtype " << dtype_name(dtype));
      CAPTURE(shape_str(shape));
      const int64_t C = shape[1];
      const Tensor x = uniform(shape, -2, 3, dtype);
      const Tensor w = uniform({C}, 0.5, 1.5, dtype), b = uniform({C}, -1, 1, dtype);
      const Tensor rm = uniform({C}, -1, 1, dtype), rv = uniform({C}, 0.5, 2, dtype);
      const Reference ref = batch_norm_reference(x, values(rm), values(rv), w, b, true, 0.1, 1e-5);
      const Tensor rm2 = rm.clone(), rv2 = rv.clone();
      check_close(batch_norm(x, rm2, rv2, w, b, true), ref.y, atol_of(dtype), 1e-6, "y");
      check_close(rm2, from_vector(ref.running_mean, {C}), atol_of(dtype) * 1e-1, 1e-6, "running_mean");
      check_close(rv2, from_vector(ref.running_var, {C}), atol_of(dtype) * 1e-1, 1e-6, "running_var");
      // No affine parameters, no running stats: normalization only.
      const Reference plain = batch_norm_reference(x, {}, {}, Tensor(), Tensor(), true, 0.1, 1e-5);
      check_close(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), plain.y, atol_of(dtype), 1e-6, "no affine");
    }
  }
}

TEST_CASE("batch_norm: running stats by hand") {
  // Channel 0 sees 1, 3 (mean 2, biased var 1, unbiased 2); channel 1 sees 2, 6 (mean 4, var 4, unbiased 8).
  const Tensor x = from_vector(std::vector<double>{1, 2, 3, 6}, {2, 2});
  Tensor rm = zeros({2}, {DType::Float64}), rv = ones({2}, {DType::Float64});
  const Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, 1e-5);
  CHECK(at(rm, 0) == doctest::Approx(0.2).epsilon(1e-15));  // 0.9 * 0 + 0.1 * 2
  CHECK(at(rm, 1) == doctest::Approx(0.4).epsilon(1e-15));
  CHECK(at(rv, 0) == doctest::Approx(1.1).epsilon(1e-15));  // 0.9 * 1 + 0.1 * 2
  CHECK(at(rv, 1) == doctest::Approx(1.7).epsilon(1e-15));  // 0.9 * 1 + 0.1 * 8
  CHECK(at(y, 0) == doctest::Approx(-1 / std::sqrt(1 + 1e-5)).epsilon(1e-14));
  CHECK(at(y, 3) == doctest::Approx(2 / std::sqrt(4 + 1e-5)).epsilon(1e-14));
  // A second step from the updated values, momentum 0.5.
  batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.5, 1e-5);
  CHECK(at(rm, 0) == doctest::Approx(0.5 * 0.2 + 0.5 * 2).epsilon(1e-15));
  CHECK(at(rv, 1) == doctest::Approx(0.5 * 1.7 + 0.5 * 8).epsilon(1e-15));
  // A strided running-stat view is updated in place through its strides.
  Tensor buffer = zeros({2, 2}, {DType::Float64});
  Tensor rm_view = buffer.select(1, 1), rv_view = ones({2, 3}, {DType::Float64}).select(1, 2);
  batch_norm(x, rm_view, rv_view, Tensor(), Tensor(), true, 0.1, 1e-5);
  CHECK(values(buffer) == std::vector<double>{0, 0.2, 0, 0.4});
  CHECK(at(rv_view, 1) == doctest::Approx(1.7).epsilon(1e-15));
}

TEST_CASE("batch_norm: eval mode uses and keeps the running stats") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO("dtype " << dtype_name(dtype));
    const Tensor x = uniform({2, 5, 3, 7}, -2, 2, dtype);
    const Tensor w = uniform({5}, 0.5, 1.5, dtype), b = uniform({5}, -1, 1, dtype);
    const Tensor rm = uniform({5}, -1, 1, dtype), rv = uniform({5}, 0.5, 2, dtype);
    const std::vector<double> rm0 = values(rm), rv0 = values(rv);
    const Reference ref = batch_norm_reference(x, rm0, rv0, w, b, false, 0.1, 1e-5);
    check_close(batch_norm(x, rm, rv, w, b, false), ref.y, atol_of(dtype), 1e-6, "eval y");
    CHECK(values(rm) == rm0);
    CHECK(values(rv) == rv0);
    // One value per channel is fine in eval.
    const Tensor one = uniform({1, 5, 1, 1}, -1, 1, dtype);
    check_close(batch_norm(one, rm, rv, w, b, false), batch_norm_reference(one, rm0, rv0, w, b, false, 0.1, 1e-5).y,
                atol_of(dtype), 1e-6, "eval 1x1");
  }
}

TEST_CASE("batch_norm: a channel far from zero keeps its precision (two-pass variance)") {
  // x = 1000 + u, u in [-1, 1): sum x^2 - M mean^2 would lose ~6 digits in float; the
  // two-pass double statistics do not.
  const Tensor u = uniform({4, 3, 5, 5}, -1, 1, DType::Float64);
  const Tensor x = add(u, 1000.0).to(DType::Float32);
  const Reference ref = batch_norm_reference(x, {}, {}, Tensor(), Tensor(), true, 0.1, 1e-5);
  check_close(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true), ref.y, 2e-4, 1e-4, "offset");
}

TEST_CASE("batch_norm: gradients") {
  const double eps = 1e-5;
  SUBCASE("training, affine, odd sizes, non-contiguous") {
    const Tensor x = noncontiguous(uniform({3, 4, 5, 3}, -2, 2)), w = uniform({4}, 0.5, 1.5), b = uniform({4});
    gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, eps); },
              {x, w, b});
  }
  SUBCASE("training, batch 1, running stats present, no affine") {
    const Tensor x = uniform({1, 3, 3, 5}, -2, 2);
    Tensor rm = zeros({3}, {DType::Float64}), rv = ones({3}, {DType::Float64});
    gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], rm, rv, Tensor(), Tensor(), true, 0.1, eps); }, {x});
  }
  SUBCASE("training, [N, C] and only two values per channel") {
    gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true, 0.1, eps); },
              {uniform({5, 3}), uniform({3}, 0.5, 1.5), uniform({3})});
    gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], Tensor(), true, 0.1, eps); },
              {uniform({2, 3}), uniform({3}, 0.5, 1.5)});
  }
  SUBCASE("eval, affine, non-contiguous weight") {
    const Tensor rm = uniform({4}), rv = uniform({4}, 0.5, 2);
    gradcheck([&](const std::vector<Tensor>& in) { return batch_norm(in[0], rm, rv, in[1], in[2], false, 0.1, eps); },
              {uniform({2, 4, 3, 3}), noncontiguous(uniform({4}, 0.5, 1.5)), uniform({4})});
  }
  SUBCASE("float32 gradients agree with float64") {
    for (bool training : {true, false}) {
      CAPTURE(training);
      const Tensor x = uniform({3, 6, 7, 5}, -2, 2), w = uniform({6}, 0.5, 1.5), b = uniform({6});
      const Tensor rm = uniform({6}), rv = uniform({6}, 0.5, 2);
      auto f = [&](const std::vector<Tensor>& in) {
        return batch_norm(in[0], rm.to(in[0].dtype()).clone(), rv.to(in[0].dtype()).clone(), in[1], in[2], training);
      };
      const std::vector<Tensor> g64 = grads_of(f, {x, w, b});
      const std::vector<Tensor> g32 = grads_of(f, {x.to(DType::Float32), w.to(DType::Float32), b.to(DType::Float32)});
      for (size_t i = 0; i < 3; ++i) check_close(g32[i], g64[i], 1e-4, 1e-4, "gradient " + std::to_string(i));
    }
  }
  SUBCASE("only the gradients asked for") {
    const Tensor x = uniform({2, 3, 4, 4});  // x does not require grad
    Tensor w = uniform({3}, 0.5, 1.5).requires_grad_();
    sum(batch_norm(x, Tensor(), Tensor(), w, Tensor(), true)).backward();
    // sum over a channel of xhat is 0, so d sum(y) / d w = 0
    for (double g : values(w.grad())) CHECK(std::abs(g) < 1e-10);
  }
}

TEST_CASE("batch_norm: one value per channel in training throws as PyTorch") {
  check_throws_with([] { (void)batch_norm(uniform({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm", "Expected more than 1 value per channel when training", "[1, 3, 1, 1]"});
  check_throws_with([] { (void)batch_norm(uniform({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"Expected more than 1 value per channel when training", "[1, 3]"});
}

TEST_CASE("batch_norm: statistics and gradients do not depend on the thread count") {
  const Tensor x = uniform({4, 8, 33, 47}, -3, 3, DType::Float32);
  const Tensor w = uniform({8}, 0.5, 1.5, DType::Float32), b = uniform({8}, -1, 1, DType::Float32);
  const Tensor dout = uniform({4, 8, 33, 47}, -1, 1, DType::Float32);
  auto run = [&] {
    Tensor rm = zeros({8}), rv = ones({8});
    Tensor xl = x.detach().clone().requires_grad_(), wl = w.detach().clone().requires_grad_(),
           bl = b.detach().clone().requires_grad_();
    const Tensor y = batch_norm(xl, rm, rv, wl, bl, true);
    y.backward(dout);
    return std::vector<std::vector<double>>{values(y), values(rm), values(rv), values(xl.grad()), values(wl.grad()),
                                            values(bl.grad())};
  };
  const int threads = num_threads();
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) {
    CAPTURE(i);
    CHECK(one[i] == two[i]);  // bitwise
  }
}

TEST_CASE("batch_norm: misuse names the op and the shapes") {
  const Tensor x = uniform({2, 3, 4, 4});
  check_throws_with([&] { (void)batch_norm(x, Tensor(), Tensor(), uniform({5}), Tensor(), true); },
                    {"batch_norm", "weight", "[5]", "[2, 3, 4, 4]"});
  check_throws_with([&] { (void)batch_norm(x, uniform({3}), uniform({3}), Tensor(), uniform({3}, 0, 1, DType::Float32), true); },
                    {"batch_norm", "bias", "float32", "[2, 3, 4, 4]"});
  check_throws_with([&] { (void)batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
                    {"batch_norm", "eval", "[2, 3, 4, 4]"});
  check_throws_with([&] { (void)batch_norm(x, uniform({3}), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm", "running_var", "[2, 3, 4, 4]"});
  check_throws_with([&] { (void)batch_norm(uniform({4}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm", "[4]"});
  check_throws_with([&] { (void)batch_norm(zeros({2, 3}, {DType::Int64}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm", "int64", "[2, 3]"});
}
