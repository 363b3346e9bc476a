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
#include "tests/cuda_compare.h"
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

// ---------------------------------------------------------------- cuda
//
// The CUDA kernels (ops/cuda/softmax.cu) against the CPU ones, through test::compare_devices.
// Both do the same arithmetic (shift by the line's maximum, exponentials in the input's type,
// their total in double), so they differ by the exponential function (CUDA's expf is within
// 2 ulp, glibc's within 1; exp within 1 ulp on both) and the order of the double sums only.
// Tolerances, forward then gradient, with |upstream| <= 1 and lines of up to 1031 elements:
//   softmax float32      e * (1 / total): a few ulps of each factor: rtol 1e-6 (8 ulp); atol
//                        1e-30 for outputs below float32's normal range (1.2e-38), which lose
//                        relative precision.
//   log_softmax float32  (x - m) - log(total): log(total) is off by the total's few ulps plus
//                        its own rounding, absolute: atol 2e-6 (a few ulp of log 1031 ~ 7),
//                        then one rounding of the result (rtol 2^-22).
//   softmax backward     y * (g - sum g y): y's relative error and sum g y's absolute one
//                        (<= rtol * sum |g| y <= 1e-6): atol 3e-6, rtol 1e-6.
//   log_softmax backward g - exp(y) * sum g: exp(y)'s relative error (y's absolute error
//                        above, plus expf's) times |sum g| (~ sqrt(1031) for random g):
//                        atol 1e-5, rtol 1e-6.
//   float64              the same reasoning with 2^-52: rtol 1e-14, atol 1e-13.

namespace {

test::DeviceTolerance forward_tolerance(DType dt, bool log) {
  if (dt == DType::Float64) return {.atol = 1e-13, .rtol = 1e-14};
  return log ? test::DeviceTolerance{.atol = 2e-6, .rtol = 0x1p-22} : test::DeviceTolerance{.atol = 1e-30, .rtol = 1e-6};
}
test::DeviceTolerance backward_tolerance(DType dt, bool log) {
  if (dt == DType::Float64) return {.atol = 1e-13, .rtol = 1e-14};
  return log ? test::DeviceTolerance{.atol = 1e-5, .rtol = 1e-6} : test::DeviceTolerance{.atol = 3e-6, .rtol = 1e-6};
}

// Compares op(x, dim) on both devices: the forward alone at its tolerance, then forward and
// gradient at the gradient's.
void compare_softmax(const std::string& what, const Tensor& x, int64_t dim) {
  for (bool log : {false, true}) {
    const SoftmaxFn op = log ? log_softmax : softmax;
    const std::string name = std::string(log ? "log_softmax " : "softmax ") + what + " " + shape_str(x.shape()) +
                             " dim " + std::to_string(dim) + " " + dtype_name(x.dtype());
    const auto f = [&](const std::vector<Tensor>& in) { return op(in[0], dim); };
    test::compare_devices(name + " forward", f, {x}, forward_tolerance(x.dtype(), log), {0});
    test::compare_devices(name, f, {x}, backward_tolerance(x.dtype(), log));
  }
}

}  // namespace

TEST_CASE("softmax: cuda matches cpu over every dim, layout and dtype" * doctest::test_suite("cuda")) {
  // The 4-d shape's last dim (33) is longer than a warp: a block per line there, a thread
  // per line for the other dims.
  for (const Shape& shape : {Shape{3, 5, 7}, Shape{2, 3, 5, 33}}) {
    const Tensor x = draw(shape, -3, 3, 60);
    for (int64_t dim = -1; dim < int64_t(shape.size()); ++dim) {
      for (DType dt : {DType::Float32, DType::Float64}) {
        compare_softmax("contiguous", x.to(dt), dim);
        compare_softmax("non-contiguous", test::noncontiguous(x.to(dt)), dim);
        compare_softmax("transposed layout", transposed_layout(x.to(dt)), dim);
      }
    }
  }
}

TEST_CASE("softmax: cuda matches cpu on long and length-1 lines, batch 1, large logits, -inf"
          * doctest::test_suite("cuda")) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    // 1031 (prime) classes: a block of 128 threads per line, or a thread per strided line.
    compare_softmax("long rows", draw({3, 1031}, -5, 5, 61).to(dt), 1);
    compare_softmax("long columns", draw({1031, 3}, -5, 5, 62).to(dt), 0);
    compare_softmax("long middle dim", draw({2, 1031, 3}, -5, 5, 63).to(dt), 1);
    compare_softmax("one long line", draw({1031}, -5, 5, 64).to(dt), 0);
    // Lines of one element: softmax 1, log_softmax 0, gradient 0.
    compare_softmax("length-1 lines", draw({4, 1, 3}, -3, 3, 65).to(dt), 1);
    compare_softmax("length-1 rows", draw({5, 1}, -3, 3, 66).to(dt), 1);
    compare_softmax("0-d", draw({}, -3, 3, 67).to(dt), 0);
    compare_softmax("batch 1", draw({1, 7, 5}, -3, 3, 68).to(dt), 0);
    compare_softmax("batch 1", draw({1, 7, 5}, -3, 3, 68).to(dt), 2);
    // Logits of size 1e4: exp(x) overflows float32 at 89; the shift by the maximum keeps
    // every exponential in (0, 1].
    compare_softmax("large logits", draw({5, 77}, -1e4, 1e4, 69).to(dt), 1);
    compare_softmax("large logits", draw({5, 77}, -1e4, 1e4, 69).to(dt), 0);
    compare_softmax("large close logits", add(draw({5, 77}, -3, 3, 70), 1e4).to(dt), 1);
    compare_softmax("empty lines", zeros({3, 0}, {dt}), 1);
    compare_softmax("no lines", zeros({0, 5}, {dt}), 1);
  }
  // -inf logits (probability 0), a line of only -inf (nan, as PyTorch), a NaN (its line nan).
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  Tensor special = draw({4, 40}, -3, 3, 71);
  for (int64_t j = 0; j < 40; j += 3) test::set_at(special, j, -kInf);
  for (int64_t j = 0; j < 40; ++j) test::set_at(special, 40 + j, -kInf);
  test::set_at(special, 2 * 40 + 17, kNaN);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t dim : {0, 1}) {
      const Tensor x = (dim == 1 ? special : special.t().contiguous()).to(dt);
      const std::string what = "-inf and NaN lines dim " + std::to_string(dim) + " " + dtype_name(dt);
      const auto f = [&](const std::vector<Tensor>& in) { return softmax(in[0], dim); };
      test::compare_devices("softmax " + what, f, {x}, backward_tolerance(dt, false));
      // log_softmax(-inf) = -inf, which check_close cannot compare (|a - e| is NaN for two
      // infinities): the same -inf positions, then the rest at the tolerances above.
      Tensor on_cpu = x.detach().requires_grad_(), on_gpu = x.to(test::cuda_device()).requires_grad_();
      const Tensor yc = log_softmax(on_cpu, dim), yg = log_softmax(on_gpu, dim);
      const Tensor yg_back = yg.to(Device::cpu());
      const Tensor yc_inf = eq(yc.detach(), -kInf), yg_inf = eq(yg_back, -kInf);
      CHECK(test::values(yg_inf) == test::values(yc_inf));
      check_close(where(yg_inf, zeros_like(yg_back), yg_back), where(yc_inf, zeros_like(yc.detach()), yc.detach()),
                  forward_tolerance(dt, true).atol, forward_tolerance(dt, true).rtol, "log_softmax " + what);
      const Tensor upstream = draw(x.shape(), -1, 1, 75).to(dt);
      yc.backward(upstream);
      yg.backward(upstream.to(test::cuda_device()));
      check_close(on_gpu.grad().to(Device::cpu()), on_cpu.grad(), backward_tolerance(dt, true).atol,
                  backward_tolerance(dt, true).rtol, "log_softmax gradient " + what);
    }
  }
}

TEST_CASE("softmax: cuda backward takes strided and expanded upstream gradients" * doctest::test_suite("cuda")) {
  const Tensor x = draw({6, 45}, -3, 3, 72).to(DType::Float32);
  for (bool log : {false, true}) {
    const SoftmaxFn op = log ? log_softmax : softmax;
    const test::DeviceTolerance tol = backward_tolerance(DType::Float32, log);
    // The transpose's backward hands the kernel a transposed dout.
    test::compare_devices("transposed dout", [&](const std::vector<Tensor>& in) { return op(in[0], 1).t(); }, {x}, tol);
    // sum's backward hands it a dout expanded along the line (stride 0).
    test::compare_devices("expanded dout", [&](const std::vector<Tensor>& in) { return sum(op(in[0], 1), {1}); }, {x},
                          tol);
    test::compare_devices("expanded dout, dim 0", [&](const std::vector<Tensor>& in) { return sum(op(in[0], 0), {0}); },
                          {x}, tol);
  }
}

TEST_CASE("softmax: cuda gives the same bits every run" * doctest::test_suite("cuda")) {
  const Tensor x = draw({7, 1031}, -5, 5, 73).to(DType::Float32).to(test::cuda_device());
  const Tensor upstream = draw({7, 1031}, -1, 1, 74).to(DType::Float32).to(test::cuda_device());
  auto run = [&] {
    std::vector<std::vector<double>> results;
    for (SoftmaxFn op : {softmax, log_softmax}) {
      for (int64_t dim : {0, 1}) {
        Tensor leaf = x.detach().requires_grad_();
        const Tensor y = op(leaf, dim);
        y.backward(upstream);
        results.push_back(test::values(y.to(Device::cpu())));
        results.push_back(test::values(leaf.grad().to(Device::cpu())));
      }
    }
    return results;
  };
  const auto first = run(), second = run();
  for (size_t i = 0; i < first.size(); ++i) {
    INFO("result " << i);
    CHECK(first[i] == second[i]);  // bitwise: float -> double is exact
  }
}
