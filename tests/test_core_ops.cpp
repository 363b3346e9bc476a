// test_core_ops.cpp - the CPU core ops of ops/: forward against plain loops written here,
// float64 gradient checks (odd shapes, broadcasting, non-contiguous inputs, size-1 dims),
// edge cases, thread-count invariance and misuse errors.
#include <cmath>
#include <limits>

#include "ops/threads.h"
#include "ops/op_list.h"
#include "tests/test_util.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::uniform;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Row-major multi-index of element e of `shape`.
Shape unravel(int64_t e, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = e % shape[d];
    e /= shape[d];
  }
  return idx;
}

// Element of t at the multi-index `idx` of a broadcast shape (t's size-1 and missing dims read index 0).
double at_broadcast(const Tensor& t, const Shape& idx) {
  int64_t e = 0;
  const size_t lead = idx.size() - size_t(t.dim());
  for (int64_t d = 0; d < t.dim(); ++d) e = e * t.size(d) + (t.size(d) == 1 ? 0 : idx[lead + size_t(d)]);
  return test::at(t, e);
}

// out[i] = f(a[i], b[i]) with broadcasting, computed by hand (float64).
Tensor reference_binary(const Tensor& a, const Tensor& b, const Shape& shape, double (*f)(double, double)) {
  std::vector<double> out;
  for (int64_t e = 0; e < numel_of(shape); ++e) {
    const Shape idx = unravel(e, shape);
    out.push_back(f(at_broadcast(a, idx), at_broadcast(b, idx)));
  }
  return from_vector(out, shape);
}

Tensor reference_unary(const Tensor& a, double (*f)(double)) {
  std::vector<double> out;
  for (double v : test::values(a)) out.push_back(f(v));
  return from_vector(out, a.shape());
}

}  // namespace

// ---------------------------------------------------------------- elementwise
TEST_CASE("unary ops: forward against std:: functions, float32 and float64, contiguous or not") {
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&);
    double (*ref)(double);
    double lo, hi;
  };
  const std::vector<Case> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, -2, 2},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }, -3, 3},
      {"log", [](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }, 0.1, 4},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }, 0.1, 4},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double v) { return std::abs(v); }, -2, 2},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double v) { return v > 0 ? v : 0.0; }, -2, 2},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); }, -6, 6},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }, -3, 3},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, [](double v) { return std::min(0.7, std::max(-0.5, v)); }, -2, 2},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const Tensor x64 = uniform({3, 5, 7}, c.lo, c.hi);
    check_close(c.op(x64), reference_unary(x64, c.ref), 1e-12, 1e-12, c.name);
    check_close(c.op(test::noncontiguous(x64)), reference_unary(x64, c.ref), 1e-12, 1e-12, c.name);
    check_close(c.op(x64.permute({2, 0, 1})), reference_unary(x64.permute({2, 0, 1}), c.ref), 1e-12, 1e-12, c.name);
    const Tensor x32 = x64.to(DType::Float32);
    check_close(c.op(x32), reference_unary(x32, c.ref), 1e-6, 1e-6, c.name);
    // Away from kinks (abs, relu, clamp at their corners), central differences are exact to O(eps^2).
    gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {test::noncontiguous(uniform({2, 1, 3}, c.lo, c.hi))});
    gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0]); }, {uniform({}, c.lo, c.hi)});
  }
}

TEST_CASE("unary edge cases: log(0), sqrt'(0), relu'(0), abs'(0), clamp bounds") {
  CHECK(std::isinf(test::at(log(zeros({1}, {DType::Float64})), 0)));
  Tensor z = zeros({1}, {DType::Float64}).requires_grad_();
  relu(z).backward();
  CHECK(test::at(z.grad(), 0) == 0.0);  // subgradient 0 at 0, as PyTorch
  z.zero_grad();
  abs(z).backward();
  CHECK(test::at(z.grad(), 0) == 0.0);
  z.zero_grad();
  sqrt(z).backward();
  CHECK(std::isinf(test::at(z.grad(), 0)));
  Tensor c = tensor({-1, 0.5, 2}, {DType::Float64}).requires_grad_();
  sum(clamp(c, 0, 1)).backward();
  CHECK(test::values(c.grad()) == std::vector<double>{0, 1, 0});
  test::check_throws_with([] { (void)clamp(ones({2}), 1, 0); }, {"clamp"});
  test::check_throws_with([] { (void)exp(ones({2}, {DType::Int64})); }, {"exp", "int64", "[2]"});
}

TEST_CASE("binary ops: broadcasting forward against loops and gradients") {
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&);
    double (*ref)(double, double);
    double lo, hi;
  };
  const std::vector<Case> cases = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double x, double y) { return x + y; }, -2, 2},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double x, double y) { return x - y; }, -2, 2},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double x, double y) { return x * y; }, -2, 2},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double x, double y) { return x / y; }, 0.5, 2},
      {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }, [](double x, double y) { return std::pow(x, y); }, 0.5, 2},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, [](double x, double y) { return std::max(x, y); }, -2, 2},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, [](double x, double y) { return std::min(x, y); }, -2, 2},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 5}, {3, 5}}, {{3, 1, 5}, {4, 1}}, {{1}, {2, 3}}, {{}, {3}}, {{1, 1, 1}, {1}}, {{2, 3, 1}, {1, 1, 4}}};
  for (const Case& c : cases) {
    for (const auto& entry : shapes) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
      const auto& sa = entry.first;
      const auto& sb = entry.second;
      INFO(c.name << " " << shape_str(sa) << " " << shape_str(sb));
      const Tensor a = uniform(sa, c.lo, c.hi), b = uniform(sb, c.lo, c.hi);
      const Shape out = broadcast_shapes(sa, sb, "test");
      check_close(c.op(a, b), reference_binary(a, b, out, c.ref), 1e-12, 1e-12);
      check_close(c.op(a.to(DType::Float32), b.to(DType::Float32)), reference_binary(a, b, out, c.ref), 1e-5, 1e-5);
      check_close(c.op(test::noncontiguous(a), test::noncontiguous(b)), reference_binary(a, b, out, c.ref), 1e-12, 1e-12);
      gradcheck([&](const std::vector<Tensor>& in) { return c.op(in[0], in[1]); },
                {test::noncontiguous(a), b});
    }
  }
}

TEST_CASE("binary ops with scalars, operators, integer arithmetic") {
  const Tensor a = tensor({1, 2, 3}, {DType::Float64});
  CHECK(test::values(a + 1.0) == std::vector<double>{2, 3, 4});
  CHECK(test::values(2.0 * a - 1.0) == std::vector<double>{1, 3, 5});
  CHECK(test::values(6.0 / a) == std::vector<double>{6, 3, 2});
  CHECK(test::values(1.0 - a) == std::vector<double>{0, -1, -2});
  CHECK(test::values(pow(a, 2.0)) == std::vector<double>{1, 4, 9});
  const Tensor i = tensor({7, -7, 4}, {DType::Int64});
  CHECK(test::values(add(i, i)) == std::vector<double>{14, -14, 8});
  CHECK(test::values(mul(i, 3.0)) == std::vector<double>{21, -21, 12});
  gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], 3.0); }, {uniform({4}, 0.5, 2)});
  gradcheck([](const std::vector<Tensor>& in) { return 2.0 / in[0] - 1.0; }, {uniform({4}, 0.5, 2)});
}

TEST_CASE("maximum/minimum ties split the gradient evenly (PyTorch)") {
  Tensor a = tensor({1, 2}, {DType::Float64}).requires_grad_(), b = tensor({1, 3}, {DType::Float64}).requires_grad_();
  sum(maximum(a, b)).backward();
  CHECK(test::values(a.grad()) == std::vector<double>{0.5, 0});
  CHECK(test::values(b.grad()) == std::vector<double>{0.5, 1});
}

TEST_CASE("comparisons return uint8 and broadcast; where selects and routes gradients") {
  const Tensor a = tensor({1, 2, 3}, {DType::Float32}), b = tensor({2}, {DType::Float32});
  const Tensor lt_ = lt(a, b);
  CHECK(lt_.dtype() == DType::UInt8);
  CHECK(test::values(lt_) == std::vector<double>{1, 0, 0});
  CHECK(test::values(le(a, b)) == std::vector<double>{1, 1, 0});
  CHECK(test::values(gt(a, b)) == std::vector<double>{0, 0, 1});
  CHECK(test::values(ge(a, 2.0)) == std::vector<double>{0, 1, 1});
  CHECK(test::values(eq(a, 2.0)) == std::vector<double>{0, 1, 0});
  CHECK(test::values(ne(a, b)) == std::vector<double>{1, 0, 1});
  const Tensor nan = tensor({NAN}, {DType::Float32});
  CHECK(test::values(eq(nan, nan)) == std::vector<double>{0});
  CHECK(test::values(ne(nan, nan)) == std::vector<double>{1});

  const Tensor x = uniform({3, 4}), y = uniform({4});
  const Tensor cond = gt(x, 0.0);
  std::vector<double> expect;
  for (int64_t e = 0; e < 12; ++e) expect.push_back(test::at(cond, e) ? test::at(x, e) : test::at(y, e % 4));
  check_close(where(cond, x, y), from_vector(expect, {3, 4}), 0, 0);
  gradcheck([&](const std::vector<Tensor>& in) { return where(cond, in[0], in[1]); }, {test::noncontiguous(x), y});
  test::check_throws_with([&] { (void)where(x, x, y); }, {"where", "uint8"});
}

TEST_CASE("binary misuse: shape, dtype and device mismatches name the op and shapes") {
  test::check_throws_with([] { (void)add(ones({3, 4}), ones({5})); }, {"add", "[3, 4]", "[5]"});
  test::check_throws_with([] { (void)mul(ones({2}), ones({2}, {DType::Float64})); }, {"mul", "float32", "float64"});
  test::check_throws_with([] { (void)pow(ones({2}, {DType::Int64}), ones({2}, {DType::Int64})); }, {"pow"});
}

// ---------------------------------------------------------------- reductions
TEST_CASE("sum and mean over chosen dims, all dims, keepdim; integer sums are int64") {
  const Tensor x = uniform({3, 4, 5});
  for (const Shape& dims : std::vector<Shape>{{0}, {1}, {2}, {0, 2}, {-1, 0}, {0, 1, 2}}) {
    for (bool keep : {false, true}) {
      INFO(shape_str(dims) << " keepdim " << keep);
      Shape nd;
      for (int64_t d : dims) nd.push_back(d < 0 ? d + 3 : d);
      Shape out_shape;
      for (int64_t d = 0; d < 3; ++d) {
        const bool red = std::find(nd.begin(), nd.end(), d) != nd.end();
        if (!red) out_shape.push_back(x.size(d));
        else if (keep) out_shape.push_back(1);
      }
      std::vector<double> ref(size_t(numel_of(out_shape)), 0.0);
      for (int64_t e = 0; e < x.numel(); ++e) {
        const Shape idx = unravel(e, x.shape());
        int64_t o = 0, count = 1;
        for (int64_t d = 0; d < 3; ++d) {
          const bool red = std::find(nd.begin(), nd.end(), d) != nd.end();
          if (red) count *= x.size(d);
          if (!red) o = o * x.size(d) + idx[size_t(d)];
        }
        ref[size_t(o)] += test::at(x, e);
        (void)count;
      }
      const Tensor s = sum(x, dims, keep);
      check_close(s, from_vector(ref, out_shape), 1e-12, 1e-12);
      check_close(sum(test::noncontiguous(x), dims, keep), from_vector(ref, out_shape), 1e-12, 1e-12);
      int64_t count = 1;
      for (int64_t d : nd) count *= x.size(d);
      check_close(mean(x, dims, keep), div(from_vector(ref, out_shape), double(count)), 1e-12, 1e-12);
      gradcheck([&](const std::vector<Tensor>& in) { return sum(in[0], dims, keep); }, {x.permute({1, 0, 2})});
      gradcheck([&](const std::vector<Tensor>& in) { return mean(in[0], dims, keep); }, {test::noncontiguous(x)});
    }
  }
  CHECK(sum(x).dim() == 0);
  const Tensor i = tensor({1, 2, 3}, {DType::UInt8});
  CHECK(sum(i).dtype() == DType::Int64);
  CHECK(sum(i).item<int64_t>() == 6);
  test::check_throws_with([&] { (void)sum(x, {3}); }, {"sum", "[3, 4, 5]"});
  test::check_throws_with([&] { (void)sum(x, {1, -2}); }, {"sum", "repeats"});
  test::check_throws_with([&] { (void)mean(i); }, {"mean", "uint8"});
}

TEST_CASE("var: unbiased and biased, over dims, N = 1 gives nan like PyTorch") {
  const Tensor x = uniform({4, 6});
  for (bool unbiased : {true, false}) {
    std::vector<double> ref;
    for (int64_t r = 0; r < 4; ++r) {
      double m = 0, s = 0;
      for (int64_t c = 0; c < 6; ++c) m += test::at(x, r * 6 + c) / 6;
      for (int64_t c = 0; c < 6; ++c) s += std::pow(test::at(x, r * 6 + c) - m, 2);
      ref.push_back(s / (unbiased ? 5 : 6));
    }
    check_close(var(x, {1}, unbiased), from_vector(ref, {4}), 1e-12, 1e-12);
    gradcheck([&](const std::vector<Tensor>& in) { return var(in[0], {0}, unbiased, true); }, {test::noncontiguous(x)});
  }
  gradcheck([](const std::vector<Tensor>& in) { return var(in[0]); }, {uniform({3, 2})});
  CHECK(std::isnan(var(ones({1}, {DType::Float64})).item<double>()));
}

TEST_CASE("max(dim) and argmax: first index on ties, NaN wins, gradient to the winner") {
  const Tensor x = tensor({1, 3, 3, 2, 5, 5, 0, -1, 9}, {DType::Float64}).reshape({3, 3});
  const ValuesIndices m = max(x, 1);
  CHECK(test::values(m.values) == std::vector<double>{3, 5, 9});
  CHECK(test::values(m.indices) == std::vector<double>{1, 1, 2});
  CHECK(m.indices.dtype() == DType::Int64);
  CHECK(max(x, 0, true).values.shape() == Shape{1, 3});
  CHECK(test::values(argmax(x, 0)) == std::vector<double>{1, 1, 2});
  CHECK(argmax(x).item<int64_t>() == 8);
  Tensor leaf = x.detach().clone().requires_grad_();
  sum(max(leaf, 1).values).backward();
  CHECK(test::values(leaf.grad()) == std::vector<double>{0, 1, 0, 0, 1, 0, 0, 0, 1});
  const Tensor n = tensor({1, NAN, 3}, {DType::Float32});
  CHECK(std::isnan(max(n, 0).values.item<double>()));
  CHECK(max(n, 0).indices.item<int64_t>() == 1);
  // Reference loop on random data, non-contiguous, every dim.
  const Tensor r = uniform({4, 5, 3});
  for (int64_t d = 0; d < 3; ++d) {
    const ValuesIndices got = max(test::noncontiguous(r), d);
    for (int64_t e = 0; e < got.values.numel(); ++e) {
      Shape idx = unravel(e, got.values.shape());
      idx.insert(idx.begin() + d, 0);
      double best = -INFINITY;
      int64_t arg = 0;
      for (int64_t k = 0; k < r.size(d); ++k) {
        idx[size_t(d)] = k;
        const double v = at_broadcast(r, idx);
        if (v > best) best = v, arg = k;
      }
      CHECK(test::at(got.values, e) == best);
      CHECK(test::at(got.indices, e) == double(arg));
    }
    gradcheck([&](const std::vector<Tensor>& in) { return max(in[0], d).values; }, {r});
  }
}

TEST_CASE("max() over all elements splits the gradient between ties") {
  Tensor x = tensor({1, 4, 4, 2}, {DType::Float64}).requires_grad_();
  const Tensor m = max(x);
  CHECK(m.item<double>() == 4);
  m.backward();
  CHECK(test::values(x.grad()) == std::vector<double>{0, 0.5, 0.5, 0});
  gradcheck([](const std::vector<Tensor>& in) { return max(in[0]); }, {uniform({3, 4})});
  test::check_throws_with([] { (void)max(ones({0})); }, {"max", "[0]"});
}

// ---------------------------------------------------------------- softmax
TEST_CASE("softmax and log_softmax: loops, stability, -inf, gradients") {
  const Tensor x = uniform({3, 4, 5}, -3, 3);
  for (int64_t d = 0; d < 3; ++d) {
    std::vector<double> ref(size_t(x.numel())), lref(size_t(x.numel()));
    for (int64_t e = 0; e < x.numel(); ++e) {
      Shape idx = unravel(e, x.shape());
      double total = 0;
      for (int64_t k = 0; k < x.size(d); ++k) {
        Shape j = idx;
        j[size_t(d)] = k;
        total += std::exp(at_broadcast(x, j));
      }
      ref[size_t(e)] = std::exp(test::at(x, e)) / total;
      lref[size_t(e)] = test::at(x, e) - std::log(total);
    }
    check_close(softmax(test::noncontiguous(x), d), from_vector(ref, x.shape()), 1e-12, 1e-10);
    check_close(log_softmax(x, d - 3), from_vector(lref, x.shape()), 1e-12, 1e-10);
    check_close(softmax(x.to(DType::Float32), d), from_vector(ref, x.shape()), 1e-6, 1e-5);
    gradcheck([&](const std::vector<Tensor>& in) { return softmax(in[0], d); }, {test::noncontiguous(x)});
    gradcheck([&](const std::vector<Tensor>& in) { return log_softmax(in[0], d); }, {x.permute({2, 1, 0})});
  }
  // Large values do not overflow; -inf entries get probability 0.
  const Tensor big = tensor({1000, 1001, -INFINITY}, {DType::Float32});
  const std::vector<double> p = test::values(softmax(big, 0));
  CHECK(p[0] == doctest::Approx(1 / (1 + std::exp(1.0))));
  CHECK(p[2] == 0.0);
  CHECK(std::isinf(test::values(log_softmax(big, 0))[2]));
  gradcheck([](const std::vector<Tensor>& in) { return softmax(in[0], 0); }, {uniform({1})});
  test::check_throws_with([&] { (void)softmax(x, 3); }, {"softmax", "[3, 4, 5]"});
}

// ---------------------------------------------------------------- matmul
TEST_CASE("matmul: every rank case of torch.matmul against loops, float32 and float64") {
  struct Case {
    Shape a, b, out;
  };
  const std::vector<Case> cases = {
      {{5}, {5}, {}},           {{3, 5}, {5, 4}, {3, 4}},        {{5}, {5, 4}, {4}},
      {{3, 5}, {5}, {3}},       {{2, 3, 5}, {5, 4}, {2, 3, 4}},  {{5}, {2, 5, 4}, {2, 4}},
      {{2, 1, 3, 5}, {4, 5, 2}, {2, 4, 3, 2}}, {{1, 1}, {1, 1}, {1, 1}}, {{7, 1}, {1, 6}, {7, 6}}};
  for (const Case& c : cases) {
    INFO(shape_str(c.a) << " x " << shape_str(c.b));
    const Tensor a = uniform(c.a), b = uniform(c.b);
    // Reference: promote to [..., m, k] x [..., k, n] by hand.
    const Tensor a2 = c.a.size() == 1 ? a.reshape({1, c.a[0]}) : a;
    const Tensor b2 = c.b.size() == 1 ? b.reshape({c.b[0], 1}) : b;
    const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
    const Shape batch = broadcast_shapes(Shape(a2.shape().begin(), a2.shape().end() - 2),
                                         Shape(b2.shape().begin(), b2.shape().end() - 2), "test");
    std::vector<double> ref;
    for (int64_t bi = 0; bi < numel_of(batch); ++bi) {
      const Shape bidx = unravel(bi, batch);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t p = 0; p < k; ++p) {
            Shape ia = bidx, ib = bidx;
            ia.insert(ia.end(), {i, p});
            ib.insert(ib.end(), {p, j});
            s += at_broadcast(a2, ia) * at_broadcast(b2, ib);
          }
          ref.push_back(s);
        }
    }
    const Tensor expect = from_vector(ref, c.out);
    check_close(matmul(a, b), expect, 1e-12, 1e-12);
    check_close(matmul(a.to(DType::Float32), b.to(DType::Float32)), expect, 1e-5 * double(k), 1e-5);
    check_close(matmul(test::noncontiguous(a), test::noncontiguous(b)), expect, 1e-12, 1e-12);
    gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {test::noncontiguous(a), b});
  }
}

TEST_CASE("matmul: transposed operands, a larger float32 product, thread-count invariance") {
  const Tensor a = uniform({67, 130}, -1, 1, DType::Float32), b = uniform({90, 130}, -1, 1, DType::Float32);
  const Tensor got = matmul(a, b.t());
  const Tensor expect = matmul(a.to(DType::Float64), b.to(DType::Float64).t());
  check_close(got, expect, 1e-4, 1e-4);
  set_num_threads(1);
  const Tensor one = matmul(a, b.t());
  const Tensor big1 = sum(uniform({300000}, -1, 1, DType::Float32));
  set_num_threads(2);
  const Tensor two = matmul(a, b.t());
  CHECK(test::values(one) == test::values(two));
  Generator g1(5), g2(5);
  const Tensor v1 = rand({300000}, {}, &g1), v2 = rand({300000}, {}, &g2);
  set_num_threads(1);
  const double s1 = sum(v1).item<double>();
  set_num_threads(2);
  const double s2 = sum(v2).item<double>();
  CHECK(s1 == s2);
  (void)big1;
}

TEST_CASE("linear: with and without bias, gradients, misuse") {
  const Tensor x = uniform({2, 3, 4}), w = uniform({5, 4}), b = uniform({5});
  const Tensor expect = add(matmul(x, w.t()), b);
  check_close(linear(x, w, b), expect, 1e-12, 1e-12);
  check_close(linear(x, w), matmul(x, w.t()), 1e-12, 1e-12);
  gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  test::check_throws_with([&] { (void)linear(x, uniform({5, 3})); }, {"linear", "[2, 3, 4]", "[5, 3]"});
  test::check_throws_with([&] { (void)matmul(uniform({3, 4}), uniform({5, 2})); }, {"matmul", "[3, 4]", "[5, 2]"});
  test::check_throws_with([&] { (void)matmul(ones({2}, {DType::Int64}), ones({2}, {DType::Int64})); }, {"matmul"});
}

// ---------------------------------------------------------------- concat / split / index
TEST_CASE("concat, stack, split, chunk: values and gradients") {
  const Tensor a = uniform({2, 3}), b = uniform({2, 1}), c = uniform({2, 4});
  const Tensor cat = concat({a, test::noncontiguous(b), c}, 1);
  CHECK(cat.shape() == Shape{2, 8});
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t j = 0; j < 3; ++j) CHECK(test::at(cat, r * 8 + j) == test::at(a, r * 3 + j));
    CHECK(test::at(cat, r * 8 + 3) == test::at(b, r));
    for (int64_t j = 0; j < 4; ++j) CHECK(test::at(cat, r * 8 + 4 + j) == test::at(c, r * 4 + j));
  }
  gradcheck([](const std::vector<Tensor>& in) { return concat({in[0], in[1], in[2]}, -1); }, {a, b, c});
  gradcheck([](const std::vector<Tensor>& in) { return concat({in[0], in[1]}, 0); }, {a, test::noncontiguous(uniform({1, 3}))});
  const Tensor s = stack({a, a, a}, 1);
  CHECK(s.shape() == Shape{2, 3, 3});
  check_close(s.select(1, 2), a, 0, 0);
  gradcheck([](const std::vector<Tensor>& in) { return stack({in[0], in[1]}, 2); }, {a, uniform({2, 3})});
  const std::vector<Tensor> parts = split(c, 3, 1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[1].shape() == Shape{2, 1});
  check_close(concat(parts, 1), c, 0, 0);
  CHECK(split(c, {1, 3}, 1)[1].shape() == Shape{2, 3});
  CHECK(chunk(uniform({7}), 3, 0).size() == 3);
  CHECK(chunk(uniform({7}), 3, 0)[2].numel() == 1);
  gradcheck([](const std::vector<Tensor>& in) { return mul(split(in[0], 2, 1)[1], 2.0); }, {c});
  test::check_throws_with([&] { (void)concat({a, uniform({3, 3})}, 1); }, {"concat", "[3, 3]", "[2, 3]"});
  test::check_throws_with([&] { (void)stack({a, b}, 0); }, {"stack", "[2, 1]"});
  test::check_throws_with([&] { (void)split(c, {1, 2}, 1); }, {"split", "[1, 2]"});
}

TEST_CASE("gather and scatter_add: loops, repeated indices, gradients, out of range") {
  const Tensor x = uniform({3, 4});
  const Tensor idx = tensor({0, 2, 2, 1, 3, 3}, {DType::Int64}).reshape({3, 2});
  const Tensor g = gather(x, 1, idx);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t j = 0; j < 2; ++j) CHECK(test::at(g, r * 2 + j) == test::at(x, r * 4 + int64_t(test::at(idx, r * 2 + j))));
  gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], 1, idx); }, {test::noncontiguous(x)});
  const Tensor idx0 = tensor({2, 0, 1, 2}, {DType::Int64}).reshape({1, 4});
  gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], 0, idx0); }, {x});

  const Tensor self = uniform({3, 4}), src = uniform({3, 2});
  const Tensor out = scatter_add(self, 1, idx, src);
  std::vector<double> ref = test::values(self);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t j = 0; j < 2; ++j) ref[size_t(r * 4 + int64_t(test::at(idx, r * 2 + j)))] += test::at(src, r * 2 + j);
  check_close(out, from_vector(ref, {3, 4}), 1e-12, 1e-12);
  gradcheck([&](const std::vector<Tensor>& in) { return scatter_add(in[0], 1, idx, in[1]); }, {self, src});
  test::check_throws_with([&] { (void)gather(x, 1, tensor({4}, {DType::Int64}).reshape({1, 1})); }, {"gather", "index 4"});
  test::check_throws_with([&] { (void)gather(x, 1, tensor({1}, {DType::Float32}).reshape({1, 1})); }, {"gather", "int64"});
}

TEST_CASE("index_select and index_add: loops, repeated indices, gradients") {
  const Tensor x = uniform({4, 3, 2});
  const Tensor idx = tensor({3, 0, 3}, {DType::Int64});
  const Tensor sel = index_select(x, 0, idx);
  CHECK(sel.shape() == Shape{3, 3, 2});
  check_close(sel.select(0, 0), x.select(0, 3), 0, 0);
  check_close(sel.select(0, 2), x.select(0, 3), 0, 0);
  gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], 1, tensor({2, 2, 0}, {DType::Int64})); },
            {test::noncontiguous(x)});
  const Tensor src = uniform({3, 3, 2});
  const Tensor added = index_add(x, 0, idx, src);
  check_close(added.select(0, 3), add(add(x.select(0, 3), src.select(0, 0)), src.select(0, 2)), 1e-12, 1e-12);
  check_close(added.select(0, 1), x.select(0, 1), 0, 0);
  gradcheck([&](const std::vector<Tensor>& in) { return index_add(in[0], 0, idx, in[1]); }, {x, src});
  test::check_throws_with([&] { (void)index_select(x, 0, tensor({-1}, {DType::Int64})); }, {"index_select", "index -1"});
}

TEST_CASE("every op has a CUDA slot that says so clearly") {
  CHECK(supports(Op::mul, Device::cpu()));
  if (!cuda_compiled()) {
    CHECK_FALSE(supports(Op::mul, Device::cuda()));
    test::check_throws_with([] { check_supported(Op::matmul, Device::cuda()); }, {"matmul", "cuda:0", "CUDA"});
  } else {
    CHECK(supports(Op::matmul, Device::cuda()));
    CHECK_FALSE(supports(Op::conv2d, Device::cuda()));  // the vision ops have no CUDA kernel yet
    test::check_throws_with([] { check_supported(Op::conv2d, Device::cuda()); }, {"conv2d", "no CUDA kernel yet"});
  }
}
