// test_elementwise.cpp - the elementwise ops of ops/unary.h, ops/binary.h and ops/where.h
// (neg, exp, log, sqrt, abs, relu, sigmoid, tanh, clamp; add, sub, mul, div, pow, maximum,
// minimum; the comparisons; where).
//
// Every op is checked three ways: forward values against a plain loop over std:: functions
// written here (float64 tight, float32 to a few ulp); the backward against the derivative
// formula written here; and a float64 finite-difference gradcheck. Inputs cover odd shapes,
// broadcasting, non-contiguous and transposed layouts, size-1 dims and 0-d tensors.
//
// Shape legend: a, b operands; out their broadcast shape; w a random weight of out's shape,
// so that the backward computes d sum(w * f(a, b)) / da.
#include <cmath>
#include <cstdint>
#include <limits>

#include "ops/op_list.h"
#include "tests/cuda_compare.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::unravel;
using test::transposed_layout;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Row-major element number of t that the broadcast multi-index `idx` reads (t's size-1 and
// missing leading dims read index 0).
int64_t source_index(const Shape& t_shape, const Shape& idx) {
  int64_t e = 0;
  const size_t lead = idx.size() - t_shape.size();
  for (size_t d = 0; d < t_shape.size(); ++d) e = e * t_shape[d] + (t_shape[d] == 1 ? 0 : idx[lead + d]);
  return e;
}

// Values in [lo, hi) from a fixed seed, moved at least 0.05 away from every kink so that
// central differences never straddle a corner of the function.
Tensor draw(const Shape& shape, double lo, double hi, const std::vector<double>& kinks = {}, uint64_t seed = 7) {
  Generator gen(seed);
  std::vector<double> v = test::values(rand(shape, {DType::Float64}, &gen));
  for (double& x : v) {
    x = lo + (hi - lo) * x;
    for (double k : kinks)
      if (std::abs(x - k) < 0.05) x = k + (x < k ? -0.05 : 0.05);
  }
  return from_vector(v, shape);
}

// out[i] = f(x[i]) in float64, from x's values (whatever x's dtype).
Tensor reference_unary(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> out;
  for (double v : test::values(x)) out.push_back(f(v));
  return from_vector(out, x.shape());
}

// out[i] = f(a[i], b[i]) with broadcasting, in float64.
Tensor reference_binary(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "reference");
  std::vector<double> out;
  for (int64_t e = 0; e < numel_of(shape); ++e) {
    const Shape idx = unravel(e, shape);
    out.push_back(f(test::at(a, source_index(a.shape(), idx)), test::at(b, source_index(b.shape(), idx))));
  }
  return from_vector(out, shape);
}

// d sum(w * f(a, b)) / da and / db by hand: every output element adds w * (partial) to the
// operand element it read, so broadcast dims accumulate.
std::pair<Tensor, Tensor> reference_binary_grads(const Tensor& a, const Tensor& b, const Tensor& w,
                                                 const std::function<double(double, double)>& da,
                                                 const std::function<double(double, double)>& db) {
  std::vector<double> ga(size_t(a.numel()), 0.0), gb(size_t(b.numel()), 0.0);
  for (int64_t e = 0; e < w.numel(); ++e) {
    const Shape idx = unravel(e, w.shape());
    const int64_t ia = source_index(a.shape(), idx), ib = source_index(b.shape(), idx);
    const double x = test::at(a, ia), y = test::at(b, ib);
    ga[size_t(ia)] += test::at(w, e) * da(x, y);
    gb[size_t(ib)] += test::at(w, e) * db(x, y);
  }
  return {from_vector(ga, a.shape()), from_vector(gb, b.shape())};
}

// ---------------------------------------------------------------- unary ops

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> f;   // the function
  std::function<double(double)> df;   // its derivative (away from kinks)
  double lo, hi;                      // the domain sampled
  std::vector<double> kinks;          // points where df jumps
};

// Forward, backward against df, gradcheck and misuse for one unary op.
void check_unary(const UnaryCase& c) {
  INFO("op " << std::string(c.name));
  const Tensor x = draw({3, 5, 7}, c.lo, c.hi, c.kinks);
  const Tensor expect = reference_unary(x, c.f);

  SUBCASE("float64 forward: contiguous, non-contiguous, transposed, 0-d, size-1 dims, empty") {
    const Tensor y = c.op(x);
    CHECK(y.dtype() == DType::Float64);
    CHECK(y.is_contiguous());
    check_close(y, expect, 1e-15, 1e-13, "contiguous");
    check_close(c.op(test::noncontiguous(x)), expect, 1e-15, 1e-13, "non-contiguous");
    check_close(c.op(transposed_layout(x)), expect, 1e-15, 1e-13, "transposed layout");
    const Tensor xt = x.permute({2, 0, 1});
    check_close(c.op(xt), reference_unary(xt, c.f), 1e-15, 1e-13, "permuted view");
    const Tensor s = draw({}, c.lo, c.hi, c.kinks);
    check_close(c.op(s), reference_unary(s, c.f), 1e-15, 1e-13, "0-d");
    const Tensor ones_dims = draw({1, 4, 1}, c.lo, c.hi, c.kinks);
    check_close(c.op(ones_dims), reference_unary(ones_dims, c.f), 1e-15, 1e-13, "size-1 dims");
    CHECK(c.op(zeros({0, 3}, {DType::Float64})).shape() == Shape{0, 3});
  }
  SUBCASE("float32 forward within a few ulp of the float64 value of the float32 input") {
    const Tensor x32 = x.to(DType::Float32);
    const Tensor y32 = c.op(x32);
    CHECK(y32.dtype() == DType::Float32);
    check_close(y32, reference_unary(x32, c.f), 1e-7, 1e-6, "float32");
    check_close(c.op(test::noncontiguous(x32)), reference_unary(x32, c.f), 1e-7, 1e-6, "float32 non-contiguous");
  }
  SUBCASE("backward equals w * f'(x), with a non-contiguous upstream gradient") {
    Tensor leaf = test::noncontiguous(x).detach().requires_grad_();
    const Tensor w = test::uniform(x.shape());
    c.op(leaf).backward(test::noncontiguous(w));
    const Tensor d = reference_unary(x, c.df);
    check_close(leaf.grad(), mul(w, d), 1e-14, 1e-12);
  }
  SUBCASE("gradcheck: odd shape non-contiguous, transposed, size-1 dims, 0-d") {
    // Default tolerances: every sample is smooth (kinks avoided), so central differences
    // are accurate to O(eps^2) plus rounding of ~1e-10.
    auto f = [&](const std::vector<Tensor>& in) { return c.op(in[0]); };
    gradcheck(f, {test::noncontiguous(x)});
    gradcheck(f, {transposed_layout(draw({2, 3, 4}, c.lo, c.hi, c.kinks, 8))});
    gradcheck(f, {draw({1, 4, 1}, c.lo, c.hi, c.kinks, 9)});
    gradcheck(f, {draw({}, c.lo, c.hi, c.kinks, 10)});
  }
  SUBCASE("integer input throws, naming the op, the dtype and the shape") {
    test::check_throws_with([&] { (void)c.op(ones({2, 3}, {DType::Int64})); }, {c.name, "int64", "[2, 3]"});
    test::check_throws_with([&] { (void)c.op(ones({4}, {DType::UInt8})); }, {c.name, "uint8", "[4]"});
  }
}

double sign(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); }
double sigmoid_ref(double v) { return 1 / (1 + std::exp(-v)); }

// Gradient of sum(op(x)) at each of `points` (float64), computed by the library.
std::vector<double> grad_at(const std::function<Tensor(const Tensor&)>& op, const std::vector<double>& points) {
  Tensor x = from_vector(points, {int64_t(points.size())}).requires_grad_();
  sum(op(x)).backward();
  return test::values(x.grad());
}

}  // namespace

TEST_CASE("neg") {
  check_unary({"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, [](double) { return -1.0; },
               -2, 2, {}});
  CHECK(test::values(-tensor({1, -2}, {DType::Float64})) == std::vector<double>{-1, 2});  // operator-
}

TEST_CASE("exp") {
  check_unary({"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); },
               [](double v) { return std::exp(v); }, -3, 3, {}});
  SUBCASE("overflow and underflow follow IEEE") {
    const std::vector<double> v = test::values(exp(tensor({-200, 100, -kInf, kInf}, {DType::Float32})));
    CHECK(v[0] == 0.0);
    CHECK(std::isinf(v[1]));
    CHECK(v[2] == 0.0);
    CHECK(std::isinf(v[3]));
  }
}

TEST_CASE("log") {
  check_unary({"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); },
               [](double v) { return 1 / v; }, 0.1, 4, {}});
  SUBCASE("log(0) = -inf with gradient +inf; log of a negative number is nan") {
    const std::vector<double> v = test::values(log(tensor({0, -1}, {DType::Float64})));
    CHECK(v[0] == -kInf);
    CHECK(std::isnan(v[1]));
    CHECK(grad_at([](const Tensor& x) { return log(x); }, {0})[0] == kInf);
  }
}

TEST_CASE("sqrt") {
  check_unary({"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); },
               [](double v) { return 0.5 / std::sqrt(v); }, 0.1, 4, {}});
  SUBCASE("sqrt(0) = 0 with gradient +inf (as PyTorch); sqrt(-1) is nan") {
    CHECK(test::values(sqrt(tensor({0, -1}, {DType::Float64})))[0] == 0.0);
    CHECK(std::isnan(test::values(sqrt(tensor({0, -1}, {DType::Float64})))[1]));
    CHECK(grad_at([](const Tensor& x) { return sqrt(x); }, {0})[0] == kInf);
  }
}

TEST_CASE("abs") {
  check_unary({"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::abs(v); },
               [](double v) { return sign(v); }, -2, 2, {0.0}});
  SUBCASE("the subgradient at 0 is 0 (PyTorch's sign(0))") {
    CHECK(grad_at([](const Tensor& x) { return abs(x); }, {-0.0, 0.0, -3, 3}) == std::vector<double>{0, 0, -1, 1});
  }
}

TEST_CASE("relu") {
  check_unary({"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0.0; },
               [](double v) { return v > 0 ? 1.0 : 0.0; }, -2, 2, {0.0}});
  SUBCASE("the subgradient at 0 is 0; NaN passes through the forward") {
    CHECK(grad_at([](const Tensor& x) { return relu(x); }, {0.0, -1, 2}) == std::vector<double>{0, 0, 1});
    CHECK(grad_at([](const Tensor& x) { return relu(x); }, {kNaN})[0] == 1.0);  // as threshold_backward
    const std::vector<double> v = test::values(relu(tensor({kNaN, -kInf, kInf}, {DType::Float32})));
    CHECK(std::isnan(v[0]));
    CHECK(v[1] == 0.0);
    CHECK(v[2] == kInf);
  }
}

TEST_CASE("sigmoid") {
  check_unary({"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref,
               [](double v) { return sigmoid_ref(v) * (1 - sigmoid_ref(v)); }, -6, 6, {}});
  SUBCASE("saturates without nan for large |x| in float32") {
    const std::vector<double> v = test::values(sigmoid(tensor({-1000, 1000, -kInf, kInf}, {DType::Float32})));
    CHECK(v == std::vector<double>{0, 1, 0, 1});
    CHECK(grad_at([](const Tensor& x) { return sigmoid(x); }, {-1000, 1000}) == std::vector<double>{0, 0});
  }
}

TEST_CASE("tanh") {
  check_unary({"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); },
               [](double v) { return 1 - std::tanh(v) * std::tanh(v); }, -3, 3, {}});
  SUBCASE("saturates to +-1 with gradient 0") {
    CHECK(test::values(tanh(tensor({-50, 50}, {DType::Float32}))) == std::vector<double>{-1, 1});
    CHECK(grad_at([](const Tensor& x) { return tanh(x); }, {-50, 50}) == std::vector<double>{0, 0});
  }
}

TEST_CASE("clamp") {
  check_unary({"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
               [](double v) { return std::min(0.7, std::max(-0.5, v)); },
               [](double v) { return (v >= -0.5 && v <= 0.7) ? 1.0 : 0.0; }, -2, 2, {-0.5, 0.7}});
  SUBCASE("the gradient passes at the bounds themselves (inclusive, as PyTorch)") {
    CHECK(grad_at([](const Tensor& x) { return clamp(x, 0, 1); }, {-1, 0, 0.5, 1, 2}) ==
          std::vector<double>{0, 1, 1, 1, 0});
  }
  SUBCASE("one-sided bounds, NaN passes through, float32 bounds are rounded to float") {
    const Tensor x = tensor({-3, -1, 0, 2, kNaN}, {DType::Float64});
    const std::vector<double> lo_only = test::values(clamp(x, -1));
    CHECK(std::vector<double>(lo_only.begin(), lo_only.end() - 1) == std::vector<double>{-1, -1, 0, 2});
    CHECK(std::isnan(lo_only.back()));
    const std::vector<double> hi_only = test::values(clamp(x, -kInf, 1));
    CHECK(std::vector<double>(hi_only.begin(), hi_only.end() - 1) == std::vector<double>{-3, -1, 0, 1});
    CHECK(test::at(clamp(tensor({0.0}, {DType::Float32}), 0.1, 0.2), 0) == double(0.1f));
    CHECK(test::values(clamp(x.narrow(0, 0, 4), 0.5, 0.5)) == std::vector<double>{0.5, 0.5, 0.5, 0.5});
  }
  SUBCASE("lo > hi throws, naming clamp") {
    test::check_throws_with([] { (void)clamp(ones({2}), 1, 0); }, {"clamp"});
  }
}

// ---------------------------------------------------------------- binary arithmetic

namespace {

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> f, da, db;  // the function and its partials
  double a_lo, a_hi, b_lo, b_hi;                     // domains sampled
};

// Operand shape pairs: equal, broadcast both ways, scalar-like, 0-d, size-1 dims.
const std::vector<std::pair<Shape, Shape>> kBinaryShapes = {
    {{3, 5, 7}, {3, 5, 7}}, {{3, 1, 5}, {4, 1}}, {{4, 1}, {3, 1, 5}}, {{1}, {2, 3}},       {{}, {3}},
    {{2, 3}, {}},           {{}, {}},            {{2, 3, 1}, {1, 1, 4}}, {{1, 1, 1}, {1}}, {{1, 4}, {1, 4}}};

void check_binary(const BinaryCase& c) {
  INFO("op " << std::string(c.name));
  // Each setting loops over every shape pair (a SUBCASE inside a loop would run only once).
  auto for_each_pair = [&](const std::function<void(const Tensor&, const Tensor&)>& body) {
    for (const auto& entry : kBinaryShapes) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
      const auto& sa = entry.first;
      const auto& sb = entry.second;
      INFO(shape_str(sa) << " with " << shape_str(sb));
      body(draw(sa, c.a_lo, c.a_hi, {}, 11), draw(sb, c.b_lo, c.b_hi, {}, 12));
    }
  };
  SUBCASE("forward float64: contiguous, non-contiguous, transposed layouts") {
    for_each_pair([&](const Tensor& a, const Tensor& b) {
      const Tensor expect = reference_binary(a, b, c.f);
      const Tensor y = c.op(a, b);
      CHECK(y.dtype() == DType::Float64);
      check_close(y, expect, 1e-15, 1e-13, "contiguous");
      check_close(c.op(test::noncontiguous(a), test::noncontiguous(b)), expect, 1e-15, 1e-13, "non-contiguous");
      check_close(c.op(transposed_layout(a), test::noncontiguous(b)), expect, 1e-15, 1e-13, "transposed");
    });
  }
  SUBCASE("forward float32") {
    for_each_pair([&](const Tensor& a, const Tensor& b) {
      const Tensor a32 = a.to(DType::Float32), b32 = b.to(DType::Float32);
      const Tensor y = c.op(a32, transposed_layout(b32));
      CHECK(y.dtype() == DType::Float32);
      check_close(y, reference_binary(a32, b32, c.f), 1e-7, 1e-6, "float32");
    });
  }
  SUBCASE("backward against the partial derivatives, summed over broadcast dims") {
    for_each_pair([&](const Tensor& a, const Tensor& b) {
      Tensor la = test::noncontiguous(a).detach().requires_grad_(), lb = b.detach().requires_grad_();
      const Tensor y = c.op(la, lb);
      const Tensor w = test::uniform(y.shape());
      y.backward(w);
      const auto [ga, gb] = reference_binary_grads(a, b, w, c.da, c.db);
      REQUIRE(la.grad().defined());
      REQUIRE(lb.grad().defined());
      check_close(la.grad(), ga, 1e-13, 1e-12, "d/da");
      check_close(lb.grad(), gb, 1e-13, 1e-12, "d/db");
    });
  }
  SUBCASE("gradcheck with non-contiguous and transposed inputs") {
    // Default tolerances: smooth functions, no ties (maximum/minimum) in these samples.
    for_each_pair([&](const Tensor& a, const Tensor& b) {
      gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); },
                {test::noncontiguous(a), transposed_layout(b)});
    });
  }
  SUBCASE("empty operands give an empty result") {
    CHECK(c.op(zeros({0, 3}, {DType::Float64}), ones({3}, {DType::Float64})).shape() == Shape{0, 3});
  }
}

}  // namespace

TEST_CASE("add") {
  check_binary({"add", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double x, double y) { return x + y; },
                [](double, double) { return 1.0; }, [](double, double) { return 1.0; }, -2, 2, -2, 2});
}

TEST_CASE("sub") {
  check_binary({"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double x, double y) { return x - y; },
                [](double, double) { return 1.0; }, [](double, double) { return -1.0; }, -2, 2, -2, 2});
}

TEST_CASE("mul") {
  check_binary({"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double x, double y) { return x * y; },
                [](double, double y) { return y; }, [](double x, double) { return x; }, -2, 2, -2, 2});
  SUBCASE("x * x: both gradient paths reach the same leaf") {
    Tensor x = tensor({3, -2}, {DType::Float64}).requires_grad_();
    sum(mul(x, x)).backward();
    CHECK(test::values(x.grad()) == std::vector<double>{6, -4});
  }
}

TEST_CASE("div") {
  check_binary({"div", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double x, double y) { return x / y; },
                [](double, double y) { return 1 / y; }, [](double x, double y) { return -x / (y * y); }, -2, 2, 0.5, 2});
  SUBCASE("floating division by zero follows IEEE") {
    const std::vector<double> v = test::values(div(tensor({1, -1, 0}, {DType::Float32}), 0.0));
    CHECK(v[0] == kInf);
    CHECK(v[1] == -kInf);
    CHECK(std::isnan(v[2]));
  }
}

TEST_CASE("pow") {
  check_binary({"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
                [](double x, double y) { return std::pow(x, y); },
                [](double x, double y) { return y * std::pow(x, y - 1); },
                [](double x, double y) { return std::pow(x, y) * std::log(x); }, 0.5, 2, -2, 2});
  SUBCASE("scalar exponents: forward and gradcheck") {
    const Tensor x = draw({3, 4}, 0.5, 2);
    check_close(pow(x, 3.0), reference_unary(x, [](double v) { return v * v * v; }), 1e-15, 1e-13);
    check_close(pow(x, -0.5), reference_unary(x, [](double v) { return 1 / std::sqrt(v); }), 1e-15, 1e-13);
    gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], 3.0); }, {test::noncontiguous(x)});
    gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], -1.5); }, {x.t()});
  }
  SUBCASE("edge cases at a zero base and a negative base, as PyTorch") {
    // d(x^0)/dx = 0 everywhere, also at x = 0 where b * x^(b-1) would be 0 * inf.
    CHECK(grad_at([](const Tensor& x) { return pow(x, 0.0); }, {0, 2}) == std::vector<double>{0, 0});
    CHECK(test::values(pow(tensor({0, 2}, {DType::Float64}), 0.0)) == std::vector<double>{1, 1});
    CHECK(grad_at([](const Tensor& x) { return pow(x, 2.0); }, {0}) == std::vector<double>{0});
    CHECK(grad_at([](const Tensor& x) { return pow(x, 0.5); }, {0}) == std::vector<double>{kInf});
    // Integer exponents of a negative base: value and d/da are finite; d/db = a^b log(a) is nan.
    Tensor a = tensor({-2}, {DType::Float64}).requires_grad_(), b = tensor({3}, {DType::Float64}).requires_grad_();
    const Tensor y = pow(a, b);
    CHECK(y.item<double>() == -8);
    y.backward(ones({1}, {DType::Float64}));
    CHECK(a.grad().item<double>() == 12);
    CHECK(std::isnan(b.grad().item<double>()));
    // d(0^b)/db is taken as 0 for b >= 0 (the limit of a^b log a), as PyTorch does.
    Tensor e = tensor({0, 1, 2.5}, {DType::Float64}).requires_grad_();
    sum(pow(zeros({3}, {DType::Float64}), e)).backward();
    CHECK(test::values(e.grad()) == std::vector<double>{0, 0, 0});
  }
  SUBCASE("integer tensors are refused") {
    test::check_throws_with([] { (void)pow(ones({2}, {DType::Int64}), ones({2}, {DType::Int64})); }, {"pow", "int64"});
    test::check_throws_with([] { (void)pow(ones({2}, {DType::Int64}), 2.0); }, {"pow", "int64"});
  }
}

TEST_CASE("maximum") {
  check_binary({"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
                [](double x, double y) { return std::max(x, y); }, [](double x, double y) { return x > y ? 1.0 : 0.0; },
                [](double x, double y) { return y > x ? 1.0 : 0.0; }, -2, 2, -2, 2});
  SUBCASE("ties split the gradient evenly; NaN wins either side") {
    Tensor a = tensor({1, 2, 5}, {DType::Float64}).requires_grad_(), b = tensor({1, 3, 4}, {DType::Float64}).requires_grad_();
    sum(maximum(a, b)).backward();
    CHECK(test::values(a.grad()) == std::vector<double>{0.5, 0, 1});
    CHECK(test::values(b.grad()) == std::vector<double>{0.5, 1, 0});
    const std::vector<double> v = test::values(maximum(tensor({kNaN, 1}, {DType::Float32}), tensor({1, kNaN}, {DType::Float32})));
    CHECK(std::isnan(v[0]));
    CHECK(std::isnan(v[1]));
  }
}

TEST_CASE("minimum") {
  check_binary({"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
                [](double x, double y) { return std::min(x, y); }, [](double x, double y) { return x < y ? 1.0 : 0.0; },
                [](double x, double y) { return y < x ? 1.0 : 0.0; }, -2, 2, -2, 2});
  SUBCASE("ties split the gradient evenly; NaN wins either side") {
    Tensor a = tensor({1, 2}, {DType::Float64}).requires_grad_(), b = tensor({1, 3}, {DType::Float64}).requires_grad_();
    sum(minimum(a, b)).backward();
    CHECK(test::values(a.grad()) == std::vector<double>{0.5, 1});
    CHECK(test::values(b.grad()) == std::vector<double>{0.5, 0});
    const std::vector<double> v = test::values(minimum(tensor({kNaN, 1}, {DType::Float64}), tensor({1, kNaN}, {DType::Float64})));
    CHECK(std::isnan(v[0]));
    CHECK(std::isnan(v[1]));
  }
}

TEST_CASE("binary ops with a double scalar and the operators") {
  const Tensor a = tensor({1, 2, 4}, {DType::Float64});
  CHECK(test::values(a + 1.0) == std::vector<double>{2, 3, 5});
  CHECK(test::values(1.0 + a) == std::vector<double>{2, 3, 5});
  CHECK(test::values(a - 1.0) == std::vector<double>{0, 1, 3});
  CHECK(test::values(1.0 - a) == std::vector<double>{0, -1, -3});
  CHECK(test::values(a * 2.0) == std::vector<double>{2, 4, 8});
  CHECK(test::values(2.0 * a) == std::vector<double>{2, 4, 8});
  CHECK(test::values(a / 2.0) == std::vector<double>{0.5, 1, 2});
  CHECK(test::values(4.0 / a) == std::vector<double>{4, 2, 1});
  CHECK(test::values(pow(a, 2.0)) == std::vector<double>{1, 4, 16});
  // The scalar takes the tensor's dtype: float32 stays float32.
  const Tensor f = tensor({1.5}, {DType::Float32});
  CHECK((f * 0.1).dtype() == DType::Float32);
  CHECK(test::at(f * 0.1, 0) == double(1.5f * 0.1f));
  // Gradients through scalar forms, including the scalar-on-the-left operators.
  const Tensor x = draw({2, 3}, 0.5, 2);
  gradcheck([](const std::vector<Tensor>& in) { return 3.0 - in[0] * 2.0 + 1.0; }, {x});
  gradcheck([](const std::vector<Tensor>& in) { return 2.0 / in[0] - in[0] / 4.0; }, {test::noncontiguous(x)});
}

TEST_CASE("integer arithmetic in int64: exact, broadcast, scalar forms") {
  Generator gen(3);
  const Tensor a = randint(-50, 50, {3, 4}, {DType::Int64}, &gen);
  Tensor b = randint(1, 9, {4}, {DType::Int64}, &gen);
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&);
    int64_t (*f)(int64_t, int64_t);
  };
  const std::vector<Case> cases = {
      {"add", [](const Tensor& x, const Tensor& y) { return add(x, y); }, [](int64_t x, int64_t y) { return x + y; }},
      {"sub", [](const Tensor& x, const Tensor& y) { return sub(x, y); }, [](int64_t x, int64_t y) { return x - y; }},
      {"mul", [](const Tensor& x, const Tensor& y) { return mul(x, y); }, [](int64_t x, int64_t y) { return x * y; }},
      // Integer division truncates toward zero (torch.div(rounding_mode='trunc')).
      {"div", [](const Tensor& x, const Tensor& y) { return div(x, y); }, [](int64_t x, int64_t y) { return x / y; }},
      {"maximum", [](const Tensor& x, const Tensor& y) { return maximum(x, y); },
       [](int64_t x, int64_t y) { return std::max(x, y); }},
      {"minimum", [](const Tensor& x, const Tensor& y) { return minimum(x, y); },
       [](int64_t x, int64_t y) { return std::min(x, y); }},
  };
  const std::vector<int64_t> av = [&] {
    std::vector<int64_t> v;
    for (double d : test::values(a)) v.push_back(int64_t(d));
    return v;
  }();
  for (const Case& c : cases) {
    INFO("op " << std::string(c.name));
    const Tensor y = c.op(test::noncontiguous(a), b);
    CHECK(y.dtype() == DType::Int64);
    REQUIRE(y.shape() == Shape{3, 4});
    for (int64_t e = 0; e < 12; ++e) {
      const int64_t expect = c.f(av[size_t(e)], int64_t(test::at(b, e % 4)));
      CHECK(y.data<int64_t>()[e] == expect);
    }
  }
  // Values beyond float64's 53-bit mantissa stay exact.
  const int64_t big = (int64_t(1) << 60) + 1;
  const Tensor t = from_vector(std::vector<int64_t>{big}, {1});
  CHECK(add(t, t).data<int64_t>()[0] == 2 * big);
  CHECK(add(t, 1.0).data<int64_t>()[0] == big + 1);
  CHECK(mul(t, 2.0).data<int64_t>()[0] == 2 * big);
  SUBCASE("integer division by zero throws instead of trapping") {
    b = from_vector(std::vector<int64_t>{1, 0, 2, 3}, {4});
    test::check_throws_with([&] { (void)div(a, b); }, {"div", "zero", "[3, 4]", "[4]"});
    test::check_throws_with([&] { (void)div(a, 0.0); }, {"div", "zero"});
  }
}

// ---------------------------------------------------------------- comparisons

TEST_CASE("comparisons: uint8 results, broadcasting, every dtype, NaN, no gradient") {
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&);
    Tensor (*op_scalar)(const Tensor&, double);
    bool (*f)(double, double);
  };
  const std::vector<Case> cases = {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }, [](const Tensor& a, double b) { return eq(a, b); },
       [](double x, double y) { return x == y; }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }, [](const Tensor& a, double b) { return ne(a, b); },
       [](double x, double y) { return x != y; }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, [](const Tensor& a, double b) { return lt(a, b); },
       [](double x, double y) { return x < y; }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }, [](const Tensor& a, double b) { return le(a, b); },
       [](double x, double y) { return x <= y; }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, [](const Tensor& a, double b) { return gt(a, b); },
       [](double x, double y) { return x > y; }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }, [](const Tensor& a, double b) { return ge(a, b); },
       [](double x, double y) { return x >= y; }},
  };
  // Small integers (as any dtype) so that ties occur often.
  Generator gen(5);
  const Tensor ai = randint(0, 4, {3, 1, 5}, {DType::Int64}, &gen), bi = randint(0, 4, {4, 1}, {DType::Int64}, &gen);
  for (const Case& c : cases) {
    for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
      INFO("op " << std::string(c.name) << " " << std::string(dtype_name(dt)));
      const Tensor a = ai.to(dt), b = bi.to(dt);
      const Tensor y = c.op(test::noncontiguous(a), b);
      CHECK(y.dtype() == DType::UInt8);
      check_close(y, reference_binary(a, b, [&](double x, double z) { return double(c.f(x, z)); }), 0, 0);
      check_close(c.op_scalar(a, 2.0), reference_unary(a, [&](double x) { return double(c.f(x, 2.0)); }), 0, 0);
    }
    INFO("op " << std::string(c.name));
    // NaN compares unequal to everything, itself included.
    const Tensor n = tensor({kNaN, kNaN, 1}, {DType::Float64}), m = tensor({kNaN, 1, kNaN}, {DType::Float64});
    check_close(c.op(n, m), reference_binary(n, m, [&](double x, double z) { return double(c.f(x, z)); }), 0, 0);
    // A comparison is not differentiable: its result never requires grad.
    Tensor leaf = tensor({1, 2}, {DType::Float64}).requires_grad_();
    CHECK_FALSE(c.op(leaf, leaf).requires_grad());
    test::check_throws_with([&] { (void)c.op(ones({2, 3}), ones({4})); }, {c.name, "[2, 3]", "[4]"});
    test::check_throws_with([&] { (void)c.op(ones({2}), ones({2}, {DType::Int64})); }, {c.name, "float32", "int64"});
  }
}

// ---------------------------------------------------------------- where

TEST_CASE("where") {
  Generator gen(9);
  SUBCASE("forward against a loop, three-way broadcasting, every dtype") {
    const Tensor cond = randint(0, 2, {3, 1, 5}, {DType::UInt8}, &gen);
    const Tensor a = draw({4, 1}, -1, 1), b = draw({}, -1, 1, {}, 3);
    std::vector<double> expect;
    const Shape shape{3, 4, 5};
    for (int64_t e = 0; e < numel_of(shape); ++e) {
      const Shape idx = unravel(e, shape);
      const bool c = test::at(cond, source_index(cond.shape(), idx)) != 0;
      expect.push_back(c ? test::at(a, source_index(a.shape(), idx)) : test::at(b, 0));
    }
    check_close(where(cond, a, b), from_vector(expect, shape), 0, 0);
    check_close(where(test::noncontiguous(cond), test::noncontiguous(a), b), from_vector(expect, shape), 0, 0);
    check_close(where(cond, a.to(DType::Float32), b.to(DType::Float32)), from_vector(expect, shape), 1e-7, 1e-6);
    const Tensor ia = mul(a, 100.0).to(DType::Int64), ib = mul(b, 100.0).to(DType::Int64);
    CHECK(where(cond, ia, ib).dtype() == DType::Int64);
    check_close(where(cond, ia, ib), where(cond, ia.to(DType::Float64), ib.to(DType::Float64)), 0, 0);
    CHECK(where(scalar_tensor(1, {DType::UInt8}), scalar_tensor(2, {DType::Float64}), scalar_tensor(3, {DType::Float64}))
              .item<double>() == 2);
  }
  SUBCASE("the gradient goes to the selected side, summed over broadcast dims") {
    const Tensor cond = gt(draw({3, 1, 5}, -1, 1, {}, 4), 0.0);
    const Tensor a = draw({4, 1}, -1, 1, {}, 5), b = draw({3, 4, 5}, -1, 1, {}, 6);
    Tensor la = a.detach().requires_grad_(), lb = b.detach().requires_grad_();
    const Tensor w = test::uniform({3, 4, 5});
    where(cond, la, lb).backward(w);
    const auto [ga, gb] = reference_binary_grads(
        a, b, mul(w, cond.to(DType::Float64)), [](double, double) { return 1.0; }, [](double, double) { return 0.0; });
    check_close(la.grad(), ga, 1e-14, 1e-12, "d/da");
    check_close(lb.grad(), where(cond, zeros({}, {DType::Float64}), w), 0, 0, "d/db");
    gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); },
              {test::noncontiguous(a), transposed_layout(b)});
    gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {draw({}, -1, 1), draw({5}, -1, 1)});
  }
  SUBCASE("misuse: condition dtype, operand dtypes, shapes") {
    const Tensor x = ones({3, 4}), y = ones({4});
    test::check_throws_with([&] { (void)where(x, x, y); }, {"where", "uint8", "float32"});
    test::check_throws_with([&] { (void)where(gt(x, 0.0), x, y.to(DType::Float64)); }, {"where", "float32", "float64"});
    test::check_throws_with([&] { (void)where(gt(x, 0.0), x, ones({5})); }, {"where", "[3, 4]", "[5]"});
  }
}

// ---------------------------------------------------------------- misuse and devices

TEST_CASE("binary misuse: broadcast failure and dtype mismatch name the op and the shapes") {
  test::check_throws_with([] { (void)add(ones({3, 4}), ones({5})); }, {"add", "[3, 4]", "[5]"});
  test::check_throws_with([] { (void)sub(ones({2, 3, 4}), ones({3, 1, 4})); }, {"sub", "[2, 3, 4]", "[3, 1, 4]"});
  test::check_throws_with([] { (void)maximum(ones({2}), ones({3})); }, {"maximum", "[2]", "[3]"});
  test::check_throws_with([] { (void)mul(ones({2}), ones({2}, {DType::Float64})); }, {"mul", "float32", "float64", "[2]"});
  test::check_throws_with([] { (void)div(ones({2}, {DType::Int64}), ones({2})); }, {"div", "int64", "float32"});
  test::check_throws_with([] { (void)(ones({2, 2}) + ones({3})); }, {"add", "[2, 2]", "[3]"});
}

TEST_CASE("elementwise ops have a CUDA slot that answers clearly") {
  for (Op op : {Op::neg, Op::exp, Op::log, Op::sqrt, Op::abs, Op::relu, Op::sigmoid, Op::tanh, Op::clamp, Op::add,
                Op::sub, Op::mul, Op::div, Op::pow, Op::maximum, Op::minimum, Op::eq, Op::ne, Op::lt, Op::le, Op::gt,
                Op::ge, Op::where}) {
    INFO("op " << std::string(op_name(op)));
    CHECK(kOpHasCuda[size_t(op)]);  // every one has a kernel in ops/cuda/ (the cases in the suite "cuda" below)
    CHECK(supports(op, Device::cpu()));
    CHECK_NOTHROW(check_supported(op, Device::cpu()));
    CHECK(supports(op, Device::cuda()) == (cuda_compiled() && kOpHasCuda[size_t(op)]));
    if (!supports(op, Device::cuda()))
      test::check_throws_with([&] { check_supported(op, Device::cuda()); }, {op_name(op), "CUDA"});
  }
  if (!cuda_compiled()) {
    CHECK_FALSE(supports(Op::mul, Device::cuda()));
    test::check_throws_with([] { check_supported(Op::mul, Device::cuda()); }, {"mul", "cuda:0", "CUDA"});
  }
}

// ---------------------------------------------------------------- CUDA
// The CUDA kernels (ops/cuda/unary.cu, binary.cu, where.cu, all run by the loop of
// ops/cuda/elementwise.cuh) against the CPU ones, through test::compare_devices: forward
// values and the gradient of every floating input under one random upstream gradient.
//
// Tolerances. Exact (0, 0) for the ops both devices compute with the same IEEE operations:
// neg, sqrt, abs, relu, clamp, add, sub, mul, div, maximum, minimum, the comparisons and
// where (IEEE +, -, *, / and sqrt round alike; nvcc keeps -prec-div and -prec-sqrt). exp,
// log, tanh, sigmoid and pow go through the CUDA math library, which the CUDA C++
// Programming Guide bounds at 1 to 4 ulp from the correctly rounded value (expf, tanhf 2,
// logf 1, powf 4; exp, log, tanh 1, pow 2 in double) where glibc stays within 1: rtol 1e-6
// is 8 float ulps, 4e-15 about 18 double ulps. The gradients of sigmoid and tanh are formed
// from y as y (1 - y) and 1 - y^2, which cancel near |y| = 1, so an ulp of y becomes an
// absolute error of an ulp of 1 there: atol 1e-6 (float32) and 4e-15 (float64).
//
// Layouts: contiguous (the vectorized path), every other element of a buffer, transposed
// (the strided path), expanded (stride 0), 1x1, 0-d, empty, and the prime sizes 1031 (above
// 256 threads x 4 floats, with a vector tail of 3 floats or 1 double) and 131101 (above the
// emulator's grid cap of 128 blocks x 256 threads x 4 floats, so the grid-stride loops turn).
// The gradient of a broadcast input is summed back to its shape by the engine (sum_to,
// with the reduction kernels): the two devices add in different orders, both in double with
// one rounding to the dtype (tests/test_reduce.cpp), so such gradients get that tolerance
// on top: n terms of at most max_term differ by at most 2 n^2 2^-53 max_term in double,
// plus one ulp of the dtype.
namespace {

test::DeviceTolerance cuda_tolerance(bool exact, DType dtype) {
  if (exact) return {.atol = 0, .rtol = 0};
  return dtype == DType::Float32 ? test::DeviceTolerance{.atol = 1e-6, .rtol = 1e-6}
                                 : test::DeviceTolerance{.atol = 4e-15, .rtol = 4e-15};
}

// Enlarges `tol` for gradients summed over n broadcast elements with terms of at most
// max_term (see above).
test::DeviceTolerance with_broadcast_sum(test::DeviceTolerance tol, DType dtype, int64_t n, double max_term) {
  tol.atol = std::max(tol.atol, 2 * double(n) * double(n) * 0x1p-53 * max_term);
  tol.rtol = std::max(tol.rtol, dtype == DType::Float32 ? 0x1p-23 : 0x1p-52);
  return tol;
}

struct CudaUnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  double lo, hi;                 // the domain drawn
  std::vector<double> specials;  // values with rules of their own: 0, kinks, bounds, inf, NaN
  bool exact;
};

const std::vector<CudaUnaryCase>& cuda_unary_cases() {
  static const std::vector<CudaUnaryCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, -2, 2, {0.0, -0.0, kInf, kNaN}, true},
      {"exp", [](const Tensor& x) { return exp(x); }, -3, 3, {0.0, -200, 100, -kInf, kInf, kNaN}, false},
      {"log", [](const Tensor& x) { return log(x); }, 0.1, 4, {0.0, -0.0, -1, 1, kInf, kNaN}, false},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.1, 4, {0.0, -1, 1, 2, kInf, kNaN}, true},
      {"abs", [](const Tensor& x) { return abs(x); }, -2, 2, {0.0, -0.0, -kInf, kNaN}, true},
      {"relu", [](const Tensor& x) { return relu(x); }, -2, 2, {0.0, -0.0, -kInf, kInf, kNaN}, true},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -6, 6, {0.0, -1000, 1000, -kInf, kInf, kNaN}, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -3, 3, {0.0, -50, 50, kInf, kNaN}, false},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, -2, 2, {-0.5, 0.7, 0.0, -kInf, kNaN}, true},
      {"clamp (one-sided)", [](const Tensor& x) { return clamp(x, -kInf, 0.25); }, -2, 2, {0.25, kInf, kNaN}, true},
  };
  return cases;
}

struct CudaBinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  double lo_a, hi_a, lo_b, hi_b;
  bool exact;
  double max_partial;  // the largest |d out / d a| or |d out / d b| on the domain
};

const std::vector<CudaBinaryCase>& cuda_binary_cases() {
  static const std::vector<CudaBinaryCase> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, -2, 2, -2, 2, true, 1},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, -2, 2, -2, 2, true, 1},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, -2, 2, -2, 2, true, 2},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, -2, 2, 0.5, 2, true, 8},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, 0.5, 2, -2, 2, false, 16},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, -1, 1, -1, 1, true, 1},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, -1, 1, -1, 1, true, 1},
  };
  return cases;
}

// Operand pairs that exercise every path of the binary launcher, with the most output
// elements that one element of a broadcast operand reaches (1: no broadcast).
struct OperandPair {
  const char* layout;
  Tensor a, b;
  int64_t summed;
};

std::vector<OperandPair> operand_pairs(const CudaBinaryCase& c, DType dtype) {
  auto a = [&](const Shape& s, uint64_t seed = 7) { return draw(s, c.lo_a, c.hi_a, {}, seed).to(dtype); };
  auto b = [&](const Shape& s, uint64_t seed = 8) { return draw(s, c.lo_b, c.hi_b, {}, seed).to(dtype); };
  return {
      {"same shape, contiguous", a({3, 5, 7}), b({3, 5, 7}), 1},
      {"prime size 1031", a({1031}), b({1031}), 1},
      {"1x1", a({1, 1}), b({1, 1}), 1},
      {"0-d", a({}), b({}), 1},
      {"non-contiguous and transposed", test::noncontiguous(a({3, 5, 7})), transposed_layout(b({3, 5, 7})), 1},
      {"a.t() and an expanded b", a({7, 5}).t(), b({5, 1}).expand({5, 7}), 1},
      {"broadcast both ways", a({3, 1, 7}), b({5, 1}), 21},
      {"tensor and scalar", a({1031}), b({}), 1031},
      {"scalar and tensor", a({}), b({2, 3}), 6},
      {"size-1 dims against full ones", a({1, 4, 1}), b({3, 1, 5}), 15},
      {"empty", a({0, 3}), b({1, 3}), 1},
  };
}

}  // namespace

TEST_CASE("unary ops: cuda matches cpu, forward and backward, every layout" * doctest::test_suite("cuda")) {
  for (const CudaUnaryCase& c : cuda_unary_cases()) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      INFO(c.name << " " << dtype_name(dtype));
      const test::DeviceTolerance tol = cuda_tolerance(c.exact, dtype);
      auto f = [&](const std::vector<Tensor>& in) { return c.op(in[0]); };
      auto x = [&](const Shape& s, uint64_t seed = 7) { return draw(s, c.lo, c.hi, {}, seed).to(dtype); };
      test::compare_devices("contiguous 3x5x7", f, {x({3, 5, 7})}, tol);
      test::compare_devices("prime size 1031", f, {x({1031})}, tol);
      test::compare_devices("non-contiguous", f, {test::noncontiguous(x({3, 5, 7}))}, tol);
      test::compare_devices("transposed layout", f, {transposed_layout(x({4, 6, 5}))}, tol);
      test::compare_devices("expanded", f, {x({1, 7}).expand({4, 7})}, tol);
      test::compare_devices("1x1", f, {x({1, 1})}, tol);
      test::compare_devices("0-d", f, {x({})}, tol);
      test::compare_devices("empty", f, {x({0, 3})}, tol);
      test::compare_devices("special values", f,
                            {from_vector(c.specials, {int64_t(c.specials.size())}, {DType::Float64}).to(dtype)}, tol);
    }
  }
}

TEST_CASE("unary ops: cuda over more elements than one grid pass, both paths" * doctest::test_suite("cuda")) {
  // 131101 floats are more packs (32776) and more elements than the 128 x 256 threads that
  // the emulator's grid holds: each thread's grid-stride loop turns twice or more.
  for (const char* name : {"relu", "exp"}) {
    const CudaUnaryCase& c = *std::find_if(cuda_unary_cases().begin(), cuda_unary_cases().end(),
                                           [&](const CudaUnaryCase& k) { return std::string(k.name) == name; });
    INFO(c.name);
    const Tensor x = draw({131101}, c.lo, c.hi).to(DType::Float32);
    auto f = [&](const std::vector<Tensor>& in) { return c.op(in[0]); };
    test::compare_devices("vectorized", f, {x}, cuda_tolerance(c.exact, DType::Float32));
    test::compare_devices("strided", f, {test::noncontiguous(x)}, cuda_tolerance(c.exact, DType::Float32));
  }
}

TEST_CASE("binary ops: cuda matches cpu, forward and backward, broadcasting and layouts" *
          doctest::test_suite("cuda")) {
  for (const CudaBinaryCase& c : cuda_binary_cases()) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      INFO(c.name << " " << dtype_name(dtype));
      auto f = [&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); };
      for (const OperandPair& p : operand_pairs(c, dtype))
        test::compare_devices(p.layout, f, {p.a, p.b},
                              with_broadcast_sum(cuda_tolerance(c.exact, dtype), dtype, p.summed, c.max_partial));
    }
  }
}

TEST_CASE("binary ops: cuda special values (NaN, infinities, zeros, ties)" * doctest::test_suite("cuda")) {
  // Every pair of these values, as two 9x9 grids: NaN wins maximum/minimum, ties split
  // their gradient, 0^0 = 1 and 0^-1 = inf for pow, x/0 = +-inf and 0/0 = NaN for div.
  const std::vector<double> v = {0.0, -0.0, 1.0, -1.5, 2.0, kInf, -kInf, kNaN, 0.5};
  std::vector<double> av, bv;
  for (double x : v)
    for (double y : v) av.push_back(x), bv.push_back(y);
  for (const CudaBinaryCase& c : cuda_binary_cases()) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      INFO(c.name << " " << dtype_name(dtype));
      const Tensor a = from_vector(av, {9, 9}).to(dtype), b = from_vector(bv, {9, 9}).to(dtype);
      test::compare_devices("special values", [&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); },
                            {a, b}, cuda_tolerance(c.exact, dtype));
    }
  }
}

TEST_CASE("binary ops: cuda int64 arithmetic is exact; integer division by zero throws" *
          doctest::test_suite("cuda")) {
  const Device gpu = Device::cuda();
  const Tensor a = tensor({7, -7, 9, -9, 0, 5}, {DType::Int64}), b = tensor({2, 2, -4, -4, 3, 1}, {DType::Int64});
  for (const CudaBinaryCase& c : cuda_binary_cases()) {
    if (std::string(c.name) == "pow") continue;  // floating only
    INFO(c.name);
    test::compare_devices("int64", [&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); }, {a, b},
                          {.atol = 0, .rtol = 0});
    test::compare_devices("int64, broadcast", [&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); },
                          {a.reshape({2, 1, 3}), b.narrow(0, 0, 3)}, {.atol = 0, .rtol = 0});
  }
  CHECK(test::values(div(a.to(gpu), b.to(gpu)).to(Device::cpu())) == std::vector<double>{3, -3, -2, 2, 0, 5});
  test::check_throws_with([&] { (void)div(a.to(gpu), tensor({1, 0, 2, 3, 4, 5}, {DType::Int64}).to(gpu)); },
                          {"div", "division by zero"});
}

TEST_CASE("comparisons: cuda matches cpu for every dtype, NaN, broadcasting" * doctest::test_suite("cuda")) {
  const std::vector<double> v = {0.0, -0.0, 1.0, -1.5, 2.0, kInf, -kInf, kNaN, 0.5};
  std::vector<double> av, bv;
  for (double x : v)
    for (double y : v) av.push_back(x), bv.push_back(y);
  const std::vector<std::pair<const char*, Tensor (*)(const Tensor&, const Tensor&)>> ops = {
      {"eq", eq}, {"ne", ne}, {"lt", lt}, {"le", le}, {"gt", gt}, {"ge", ge}};
  for (const auto& [name, op] : ops) {
    auto f = [op = op](const std::vector<Tensor>& in) { return op(in[0], in[1]); };
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
      const std::string what = std::string(name) + " " + dtype_name(dtype);
      INFO(what);
      // uint8 and int64 see the values converted (NaN -> INT64_MIN, -1.5 -> -1 or 255).
      const Tensor a = from_vector(av, {9, 9}).to(dtype), b = from_vector(bv, {9, 9}).to(dtype);
      const std::vector<size_t> all = {0, 1};  // comparisons have no gradient
      test::compare_devices("grid of special values", f, {a, b}, {.atol = 0, .rtol = 0}, all);
      test::compare_devices("prime size 1031, contiguous", f, {draw({1031}, -2, 2).to(dtype),
                            draw({1031}, -2, 2, {}, 8).to(dtype)}, {.atol = 0, .rtol = 0}, all);
      test::compare_devices("broadcast both ways", f, {draw({3, 1, 7}, -2, 2).to(dtype),
                            draw({5, 1}, -2, 2, {}, 8).to(dtype)}, {.atol = 0, .rtol = 0}, all);
      test::compare_devices("non-contiguous", f, {test::noncontiguous(a), transposed_layout(b)},
                            {.atol = 0, .rtol = 0}, all);
      test::compare_devices("empty", f, {draw({0, 3}, -2, 2).to(dtype), draw({3}, -2, 2).to(dtype)},
                            {.atol = 0, .rtol = 0}, all);
    }
  }
}

TEST_CASE("where: cuda matches cpu, forward and backward, broadcasting both ways" * doctest::test_suite("cuda")) {
  const test::DeviceTolerance exact = {.atol = 0, .rtol = 0};  // a selection
  auto f = [](const std::vector<Tensor>& in) { return where(in[0], in[1], in[2]); };
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    auto x = [&](const Shape& s, uint64_t seed) { return draw(s, -1, 1, {}, seed).to(dtype); };
    const Tensor cond = gt(draw({3, 5, 7}, -1, 1, {}, 4), 0.0);
    test::compare_devices("same shapes", f, {cond, x({3, 5, 7}, 5), x({3, 5, 7}, 6)}, exact, {0});
    test::compare_devices("prime size 1031", f, {gt(draw({1031}, -1, 1, {}, 4), 0.0), x({1031}, 5), x({1031}, 6)},
                          exact, {0});
    test::compare_devices("non-contiguous", f,
                          {test::noncontiguous(cond), transposed_layout(x({3, 5, 7}, 5)), test::noncontiguous(x({3, 5, 7}, 6))},
                          exact, {0});
    test::compare_devices("broadcast both ways", f, {gt(draw({3, 1, 5}, -1, 1, {}, 4), 0.0), x({4, 1}, 5), x({3, 4, 5}, 6)},
                          with_broadcast_sum(exact, dtype, 15, 1));
    test::compare_devices("scalar operands", f, {cond, x({}, 5), x({7}, 6)}, with_broadcast_sum(exact, dtype, 105, 1));
    test::compare_devices("empty", f, {gt(draw({0, 3}, -1, 1), 0.0), x({0, 3}, 5), x({3}, 6)}, exact);
  }
  SUBCASE("integer operands") {
    const Tensor cond = tensor({1, 0, 1}, {DType::UInt8});
    for (DType dtype : {DType::Int64, DType::UInt8})
      test::compare_devices(dtype_name(dtype), f,
                            {cond, tensor({1, 2, 3}, {dtype}), tensor({250, 5, 6}, {dtype}).reshape({3, 1})}, exact);
  }
}

TEST_CASE("elementwise: cuda vectorized and strided paths agree bit for bit, run after run" *
          doctest::test_suite("cuda")) {
  // The launcher (ops/cuda/elementwise.cuh) takes the vectorized path when every operand is
  // a dense, 16-byte aligned block of the output's shape, the strided path otherwise: a
  // narrow() that starts one element in is dense but misaligned. The same values through
  // both must give the same bits, on every run.
  const Device gpu = Device::cuda();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    INFO(dtype_name(dtype));
    const int64_t n = 1031;
    const Tensor host_a = draw({n}, 0.5, 2).to(dtype), host_b = draw({n}, -2, 2, {}, 8).to(dtype);
    const Tensor dense_a = host_a.to(gpu), dense_b = host_b.to(gpu);
    auto misaligned = [&](const Tensor& host) {
      Tensor buf = empty({n + 1}, {dtype, gpu});
      Tensor view = buf.narrow(0, 1, n);
      copy_(view, host);
      return view;
    };
    const Tensor shifted_a = misaligned(host_a), shifted_b = misaligned(host_b);
    const Tensor every_other_a = test::noncontiguous(dense_a);  // strided on the device
    REQUIRE_FALSE(every_other_a.is_contiguous());
    for (const CudaUnaryCase& c : cuda_unary_cases()) {
      INFO(c.name);
      const Tensor vectorized = c.op(dense_a);
      check_close(vectorized, c.op(shifted_a), 0, 0, "misaligned (strided path)");
      check_close(vectorized, c.op(every_other_a), 0, 0, "every other element (strided path)");
      check_close(vectorized, c.op(dense_a), 0, 0, "a second run");
      check_close(vectorized, c.op(host_a), cuda_tolerance(c.exact, dtype).atol, cuda_tolerance(c.exact, dtype).rtol,
                  "against the cpu");
    }
    for (const CudaBinaryCase& c : cuda_binary_cases()) {
      INFO(c.name);
      const Tensor vectorized = c.op(dense_a, dense_b);
      check_close(vectorized, c.op(shifted_a, dense_b), 0, 0, "a misaligned");
      check_close(vectorized, c.op(dense_a, shifted_b), 0, 0, "b misaligned");
      check_close(vectorized, c.op(every_other_a, dense_b), 0, 0, "a strided");
      check_close(vectorized, c.op(dense_a, dense_b), 0, 0, "a second run");
      check_close(vectorized, c.op(host_a, host_b), cuda_tolerance(c.exact, dtype).atol,
                  cuda_tolerance(c.exact, dtype).rtol, "against the cpu");
    }
    const Tensor mask = gt(dense_b, 0.0);
    check_close(where(mask, dense_a, dense_b), where(gt(shifted_b, 0.0), shifted_a, dense_b), 0, 0, "where");
    check_close(lt(dense_a, dense_b), lt(shifted_a, shifted_b), 0, 0, "lt");
  }
}
