// test_softmax.cpp - softmax and log_softmax (ops/softmax.h) against a plain loop written here,
// their backward against the formulas, float64 gradchecks, and the numerics PyTorch users rely
// on: large logits do not overflow, -inf logits get probability 0, an all -inf line is nan.
//
// Shape legend: x [3, 4, 5] unless said; softmax runs along `dim`; a "line" is the set of
// elements that differ only in their coordinate along dim.
#include <cmath>
#include <cstdint>
#include <limits>

#include "ops/threads.h"
#include "ops/op_list.h"
#include "tests/test_util.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::unravel;
using test::ravel;
using test::transposed_layout;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor draw(const Shape& shape, double lo = -3, double hi = 3, uint64_t seed = 7) {
  Generator gen(seed);
  return add(mul(rand(shape, {DType::Float64}, &gen), hi - lo), lo);
}

// The textbook definitions in float64 (inputs here are moderate, so no shift is needed):
// softmax(x)_i = exp(x_i) / sum_j exp(x_j), log_softmax(x)_i = x_i - log(sum_j exp(x_j)).
Tensor reference(const Tensor& x, int64_t dim, bool log) {
  if (dim < 0) dim += x.dim();
  const std::vector<double> v = test::values(x);
  // totals[line] = sum_j exp(x_j), a line named by its first element (coordinate 0 along dim).
  std::vector<double> totals(v.size(), 0.0);
  for (int64_t e = 0; e < x.numel(); ++e) {
    Shape idx = unravel(e, x.shape());
    idx[size_t(dim)] = 0;
    totals[size_t(ravel(idx, x.shape()))] += std::exp(v[size_t(e)]);
  }
  std::vector<double> out(v.size());
  for (int64_t e = 0; e < x.numel(); ++e) {
    Shape idx = unravel(e, x.shape());
    idx[size_t(dim)] = 0;
    const double total = totals[size_t(ravel(idx, x.shape()))];
    out[size_t(e)] = log ? v[size_t(e)] - std::log(total) : std::exp(v[size_t(e)]) / total;
  }
  return from_vector(out, x.shape());
}

// d sum(w * softmax(x)) / dx by the formula y * (w - sum_j w_j y_j) (or, for log_softmax,
// w - exp(y) * sum_j w_j), with y from the reference.
Tensor reference_grad(const Tensor& x, const Tensor& w, int64_t dim, bool log) {
  if (dim < 0) dim += x.dim();
  const Tensor y = reference(x, dim, log);
  std::vector<double> out(size_t(x.numel()));
  for (int64_t e = 0; e < x.numel(); ++e) {
    Shape idx = unravel(e, x.shape());
    double dot = 0;
    for (int64_t k = 0; k < x.size(dim); ++k) {
      idx[size_t(dim)] = k;
      const int64_t j = ravel(idx, x.shape());
      dot += log ? test::at(w, j) : test::at(w, j) * test::at(y, j);
    }
    out[size_t(e)] = log ? test::at(w, e) - std::exp(test::at(y, e)) * dot : test::at(y, e) * (test::at(w, e) - dot);
  }
  return from_vector(out, x.shape());
}

using SoftmaxFn = Tensor (*)(const Tensor&, int64_t);

void check_softmax(const char* name, SoftmaxFn op, bool log) {
  INFO("op " << std::string(name));
  const Tensor x = draw({3, 4, 5});
  SUBCASE("forward against the loop: every dim (also negative), every layout, float64 and float32") {
    for (int64_t dim : {0, 1, 2, -1, -3}) {
      INFO("dim " << dim);
      const Tensor expect = reference(x, dim, log);
      const Tensor y = op(x, dim);
      CHECK(y.dtype() == DType::Float64);
      check_close(y, expect, 1e-15, 1e-13, "contiguous");
      check_close(op(test::noncontiguous(x), dim), expect, 1e-15, 1e-13, "non-contiguous");
      check_close(op(transposed_layout(x), dim), expect, 1e-15, 1e-13, "transposed layout");
      const Tensor xp = x.permute({2, 0, 1});
      check_close(op(xp, dim), reference(xp, dim, log), 1e-15, 1e-13, "permuted view");
      const Tensor x32 = x.to(DType::Float32);
      const Tensor y32 = op(x32, dim);
      CHECK(y32.dtype() == DType::Float32);
      check_close(y32, reference(x32, dim, log), 1e-7, 1e-6, "float32");
    }
  }
  SUBCASE("backward against the formula, with a non-contiguous upstream gradient") {
    for (int64_t dim : {0, 1, 2}) {
      INFO("dim " << dim);
      Tensor leaf = transposed_layout(x).detach().requires_grad_();
      const Tensor w = draw({3, 4, 5}, -1, 1, 20 + uint64_t(dim));
      op(leaf, dim).backward(test::noncontiguous(w));
      check_close(leaf.grad(), reference_grad(x, w, dim, log), 1e-14, 1e-12);
    }
  }
  SUBCASE("gradcheck: odd shape, layouts, size-1 dims, batch 1, 0-d") {
    // Default tolerances: smooth everywhere, inputs of moderate size.
    for (int64_t dim : {0, 1, 2}) {
      gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], dim); }, {test::noncontiguous(x)});
      gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], dim); }, {x.permute({1, 2, 0})});
    }
    gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], 1); }, {draw({1, 6})});
    gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], 0); }, {draw({1, 6})});
    gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], -1); }, {draw({})});
  }
  SUBCASE("shifting a line by a constant changes nothing, even by +-1000 (stability)") {
    const Tensor big = add(x, 1000.0);
    check_close(op(big, 1), op(x, 1), 1e-12, 1e-9, "float64");
    // float32: compare with the loop on the float32 inputs themselves, shifted back exactly in
    // double (exp(1000) would overflow the loop), so input rounding does not count as error.
    for (double shift : {1000.0, -1000.0}) {
      INFO("shift " << shift);
      const Tensor x32 = add(x, shift).to(DType::Float32);
      check_close(op(x32, 1), reference(sub(x32.to(DType::Float64), shift), 1, log), 1e-7, 1e-5, "float32");
    }
    gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], 1); }, {add(draw({2, 3}), 1000.0)});
  }
  SUBCASE("size-1 line: softmax 1, log_softmax 0, gradient 0") {
    Tensor leaf = draw({4, 1}).requires_grad_();
    const Tensor y = op(leaf, 1);
    for (double v : test::values(y)) CHECK(v == (log ? 0.0 : 1.0));
    y.backward(draw({4, 1}, -1, 1, 3));
    for (double v : test::values(leaf.grad())) CHECK(v == 0.0);
    CHECK(op(scalar_tensor(5.0, {DType::Float64}), 0).item<double>() == (log ? 0.0 : 1.0));
    CHECK(op(scalar_tensor(5.0), -1).dim() == 0);
  }
  SUBCASE("empty tensors") {
    CHECK(op(zeros({0, 5}), 1).shape() == Shape{0, 5});
    CHECK(op(zeros({3, 0}), 1).shape() == Shape{3, 0});
  }
  SUBCASE("misuse: integer input, dim out of range") {
    test::check_throws_with([&] { (void)op(ones({2, 3}, {DType::Int64}), 1); }, {name, "int64", "[2, 3]"});
    test::check_throws_with([&] { (void)op(x, 3); }, {name, "dim 3", "[3, 4, 5]"});
    test::check_throws_with([&] { (void)op(x, -4); }, {name, "[3, 4, 5]"});
    CHECK_THROWS_AS((void)op(x, 3), std::out_of_range);
    test::check_throws_with([&] { (void)op(scalar_tensor(1), 1); }, {name, "[]"});
  }
}

}  // namespace

TEST_CASE("softmax") {
  check_softmax("softmax", softmax, false);
  SUBCASE("every line sums to 1, also for 1000 classes in float32") {
    const Tensor x = draw({7, 1000}, -20, 20, 5).to(DType::Float32);
    const Tensor p = softmax(x, 1);
    const Tensor totals = sum(p.to(DType::Float64), {1});
    for (double t : test::values(totals)) CHECK(t == doctest::Approx(1.0).epsilon(1e-5));
    check_close(p, reference(x, 1, false), 1e-9, 1e-5);
  }
  SUBCASE("-inf logits get probability 0 and gradient 0; large logits do not overflow") {
    const Tensor x = tensor({1000, 1001, -kInf, 999}, {DType::Float32});
    const std::vector<double> p = test::values(softmax(x, 0));
    const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
    CHECK(p[0] == doctest::Approx(std::exp(-1.0) / z).epsilon(1e-6));
    CHECK(p[1] == doctest::Approx(1 / z).epsilon(1e-6));
    CHECK(p[2] == 0.0);
    CHECK(p[3] == doctest::Approx(std::exp(-2.0) / z).epsilon(1e-6));
    Tensor leaf = tensor({0.5, -kInf, 1.5}, {DType::Float64}).requires_grad_();
    softmax(leaf, 0).backward(tensor({1, 2, 3}, {DType::Float64}));
    const std::vector<double> g = test::values(leaf.grad());
    CHECK(g[1] == 0.0);
    CHECK(std::isfinite(g[0]));
    CHECK(g[0] + g[2] == doctest::Approx(0.0));  // gradients of a softmax line sum to 0
  }
  SUBCASE("a NaN poisons its own line only") {
    const Tensor x = tensor({1, std::nan(""), 0, 2}, {DType::Float32}).reshape({2, 2});
    const std::vector<double> p = test::values(softmax(x, 1));
    CHECK(std::isnan(p[0]));
    CHECK(std::isnan(p[1]));
    CHECK(p[2] + p[3] == doctest::Approx(1.0));
    CHECK(std::isnan(test::values(log_softmax(x, 1))[0]));
  }
  SUBCASE("a line of only -inf is nan, as PyTorch (0 / 0)") {
    const Tensor x = tensor({-kInf, -kInf, 0, 1}, {DType::Float32}).reshape({2, 2});
    const std::vector<double> p = test::values(softmax(x, 1));
    CHECK(std::isnan(p[0]));
    CHECK(std::isnan(p[1]));
    CHECK(std::isfinite(p[2]));
  }
}

TEST_CASE("log_softmax") {
  check_softmax("log_softmax", log_softmax, true);
  SUBCASE("exp(log_softmax) is softmax; no -inf from underflow where softmax would round to 0") {
    const Tensor x = draw({3, 4, 5}, -3, 3, 6);
    check_close(exp(log_softmax(x, 2)), softmax(x, 2), 1e-16, 1e-13);
    // softmax([0, -200]) underflows to 0 in float32; its log is still exactly -200 here.
    const std::vector<double> l = test::values(log_softmax(tensor({0, -200}, {DType::Float32}), 0));
    CHECK(l[1] == doctest::Approx(-200).epsilon(1e-6));
    CHECK(l[0] == doctest::Approx(0).epsilon(1e-6));
  }
  SUBCASE("-inf logits give -inf and pass the upstream gradient straight through") {
    Tensor leaf = tensor({0.5, -kInf, 1.5}, {DType::Float64}).requires_grad_();
    const Tensor y = log_softmax(leaf, 0);
    CHECK(test::at(y, 1) == -kInf);
    CHECK(std::isfinite(test::at(y, 0)));
    y.backward(tensor({1, 2, 3}, {DType::Float64}));
    // d/dx_i = w_i - exp(y_i) * sum(w); exp(-inf) = 0 there.
    CHECK(test::at(leaf.grad(), 1) == 2.0);
    const std::vector<double> ln = test::values(log_softmax(tensor({-kInf, -kInf}, {DType::Float64}), 0));
    CHECK(std::isnan(ln[0]));  // all -inf: nan, as PyTorch
  }
}

TEST_CASE("softmax gives the same bits on 1 and 2 threads") {
  const int saved = num_threads();
  const Tensor x = draw({64, 3, 700}, -5, 5, 8).to(DType::Float32);
  auto run = [&] {
    Tensor leaf = x.detach().requires_grad_();
    const Tensor y = softmax(leaf, 1);
    y.backward(draw({64, 3, 700}, -1, 1, 9).to(DType::Float32));
    return std::vector<std::vector<double>>{test::values(y), test::values(log_softmax(x, 2)), test::values(leaf.grad())};
  };
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
}

TEST_CASE("softmax has a CUDA slot that answers clearly") {
  for (Op op : {Op::softmax, Op::log_softmax}) {
    INFO("op " << std::string(op_name(op)));
    CHECK(supports(op, Device::cpu()));
    if (!supports(op, Device::cuda()))
      test::check_throws_with([&] { check_supported(op, Device::cuda()); }, {op_name(op), "CUDA"});
  }
}
