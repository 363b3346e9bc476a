// test_reduce.cpp - the reductions of ops/reduce.h: sum, mean, var, max (along a dim and over
// everything) and argmax.
//
// The oracle groups the input's elements by output position with a plain loop written here
// (`groups`), then sums, averages, takes the variance or the maximum of each group in float64.
// Gradients are checked against the formulas and by float64 finite differences; the edge cases
// are PyTorch's (ties, NaN, N = 1, empty tensors, 0-d tensors); results must not depend on the
// thread count.
//
// Shape legend: x the input [3, 4, 5] unless said; dims the reduced dims; out x's shape without
// them (or with 1s in their place with keepdim).
#include <algorithm>
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
using test::draw;
using test::transposed_layout;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The reduction's oracle: the values of x (row-major) grouped by output element. dims may be
// negative or unsorted; an empty list means every dim (as the library's convention).
struct Groups {
  Shape out_shape;                         // with or without keepdim, as asked
  std::vector<std::vector<double>> values; // values[o]: x's elements that reduce into o, in order
};
Groups groups(const Tensor& x, const Shape& dims, bool keepdim) {
  std::vector<bool> reduced(size_t(x.dim()), dims.empty());
  for (int64_t d : dims) reduced[size_t(d < 0 ? d + x.dim() : d)] = true;
  Groups g;
  Shape kept_shape;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!reduced[size_t(d)]) kept_shape.push_back(x.size(d));
    if (!reduced[size_t(d)] || keepdim) g.out_shape.push_back(reduced[size_t(d)] ? 1 : x.size(d));
  }
  g.values.resize(size_t(numel_of(kept_shape)));
  for (int64_t e = 0; e < x.numel(); ++e) {
    const Shape idx = unravel(e, x.shape());
    int64_t o = 0;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (!reduced[size_t(d)]) o = o * x.size(d) + idx[size_t(d)];
    g.values[size_t(o)].push_back(test::at(x, e));
  }
  return g;
}

// Applies f to every group: the expected result as a float64 tensor.
Tensor reduce_ref(const Tensor& x, const Shape& dims, bool keepdim, const std::function<double(const std::vector<double>&)>& f) {
  const Groups g = groups(x, dims, keepdim);
  std::vector<double> out;
  for (const auto& v : g.values) out.push_back(f(v));
  return from_vector(out, g.out_shape);
}

double sum_of(const std::vector<double>& v) {
  double s = 0;
  for (double a : v) s += a;
  return s;
}
double mean_of(const std::vector<double>& v) { return sum_of(v) / double(v.size()); }
double var_of(const std::vector<double>& v, bool unbiased) {
  const double m = mean_of(v);
  double s = 0;
  for (double a : v) s += (a - m) * (a - m);
  return s / (double(v.size()) - (unbiased ? 1 : 0));
}

// Every way of choosing dims of a 3-d tensor, in several spellings.
const std::vector<Shape> kDimLists = {{0}, {1}, {2}, {-1}, {-3}, {0, 2}, {2, 0}, {-1, 0}, {1, 2}, {0, 1, 2}, {}};

// x in the layouts every reduction must read correctly.
std::vector<std::pair<const char*, Tensor>> layouts(const Tensor& x) {
  return {{"contiguous", x}, {"non-contiguous", test::noncontiguous(x)}, {"transposed layout", transposed_layout(x)}};
}

// Restores the thread count a test changed.
struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

}  // namespace

// ---------------------------------------------------------------- sum

TEST_CASE("sum") {
  const Tensor x = draw({3, 4, 5});
  SUBCASE("over every choice of dims, keepdim or not, in every layout, float64 and float32") {
    for (const Shape& dims : kDimLists) {
      for (bool keep : {false, true}) {
        INFO("dims " << shape_str(dims) << " keepdim " << keep);
        const Tensor expect = reduce_ref(x, dims, keep, sum_of);
        for (const auto& [name, xl] : layouts(x)) check_close(sum(xl, dims, keep), expect, 1e-14, 1e-13, name);
        const Tensor x32 = x.to(DType::Float32);
        const Tensor s32 = sum(test::noncontiguous(x32), dims, keep);
        CHECK(s32.dtype() == DType::Float32);
        // Accumulated in double, rounded once: within an ulp of the exact sum of the float inputs.
        check_close(s32, reduce_ref(x32, dims, keep, sum_of), 1e-7, 1e-6, "float32");
      }
    }
    check_close(sum(x), reduce_ref(x, {}, false, sum_of), 1e-14, 1e-13, "sum(x)");
    CHECK(sum(x).dim() == 0);
  }
  SUBCASE("gradient: dout broadcast back over the reduced dims") {
    for (const Shape& dims : kDimLists) {
      for (bool keep : {false, true}) {
        INFO("dims " << shape_str(dims) << " keepdim " << keep);
        Tensor leaf = test::noncontiguous(x).detach().requires_grad_();
        const Tensor y = sum(leaf, dims, keep);
        const Tensor w = test::uniform(y.shape());
        y.backward(w);
        // d sum(w * y) / dx[i] = w at i's output position.
        const Tensor w_keep = w.reshape(reduce_ref(x, dims, true, sum_of).shape());
        check_close(leaf.grad(), add(zeros({3, 4, 5}, {DType::Float64}), w_keep), 0, 0);
        gradcheck([&](const std::vector<Tensor>& in) { return sum(in[0], dims, keep); }, {transposed_layout(x)});
      }
    }
    gradcheck([](const std::vector<Tensor>& in) { return sum(in[0], {1}); }, {draw({3, 1, 5})});
    gradcheck([](const std::vector<Tensor>& in) { return sum(in[0], {0}, true); }, {draw({1, 4})});
    gradcheck([](const std::vector<Tensor>& in) { return sum(in[0]); }, {draw({})});
  }
  SUBCASE("0-d and empty tensors") {
    CHECK(sum(scalar_tensor(2.5, {DType::Float64})).item<double>() == 2.5);
    CHECK(sum(scalar_tensor(2.5), {0}).item<double>() == 2.5);   // PyTorch allows dim 0 / -1 on a 0-d tensor
    CHECK(sum(scalar_tensor(2.5), {-1}, true).dim() == 0);
    CHECK(sum(zeros({0, 3})).item<double>() == 0.0);
    check_close(sum(zeros({0, 3}), {0}), zeros({3}), 0, 0);
    CHECK(sum(zeros({0, 3}), {1}).shape() == Shape{0});
    CHECK(sum(zeros({2, 0, 3}), {1}, true).shape() == Shape{2, 1, 3});
  }
  SUBCASE("integer sums are exact int64; uint8 masks sum in int64 without wrapping") {
    const int64_t big = (int64_t(1) << 60) + 1;  // not representable in float64
    const Tensor i = from_vector(std::vector<int64_t>{big, 1, -3, 5, 7, 11}, {2, 3});
    CHECK(sum(i).dtype() == DType::Int64);
    CHECK(sum(i).item<int64_t>() == big + 1 - 3 + 5 + 7 + 11);
    const Tensor rows = sum(i, {1});
    CHECK(rows.dtype() == DType::Int64);
    CHECK(rows.data<int64_t>()[0] == big + 1 - 3);
    CHECK(rows.data<int64_t>()[1] == 23);
    const Tensor mask = full({1000}, 255, {DType::UInt8});
    CHECK(sum(mask).dtype() == DType::Int64);
    CHECK(sum(mask).item<int64_t>() == 255000);
    CHECK(sum(test::noncontiguous(mask).reshape({10, 100}), {1}).data<int64_t>()[9] == 25500);
  }
  SUBCASE("float32 accumulates in double") {
    // In float, 1e8 + 1 rounds back to 1e8 and the sum would be 0.
    CHECK(sum(tensor({1e8, 1, -1e8}, {DType::Float32})).item<double>() == 1.0);
    const Tensor tenths = full({100000}, 0.1, {DType::Float32});
    CHECK(sum(tenths).item<double>() == doctest::Approx(100000 * double(0.1f)).epsilon(1e-7));
  }
  SUBCASE("misuse: dim out of range, repeated dim") {
    test::check_throws_with([&] { (void)sum(x, {3}); }, {"sum", "dim 3", "[3, 4, 5]"});
    test::check_throws_with([&] { (void)sum(x, {-4}); }, {"sum", "[3, 4, 5]"});
    CHECK_THROWS_AS((void)sum(x, {3}), std::out_of_range);
    test::check_throws_with([&] { (void)sum(x, {1, -2}); }, {"sum", "repeats", "[3, 4, 5]"});
    test::check_throws_with([&] { (void)sum(scalar_tensor(1), {1}); }, {"sum", "dim 1", "[]"});
  }
}

// ---------------------------------------------------------------- mean

TEST_CASE("mean") {
  const Tensor x = draw({3, 4, 5}, -1, 1, 8);
  SUBCASE("over every choice of dims, keepdim or not, float64 and float32") {
    for (const Shape& dims : kDimLists) {
      for (bool keep : {false, true}) {
        INFO("dims " << shape_str(dims) << " keepdim " << keep);
        const Tensor expect = reduce_ref(x, dims, keep, mean_of);
        for (const auto& [name, xl] : layouts(x)) check_close(mean(xl, dims, keep), expect, 1e-15, 1e-13, name);
        const Tensor x32 = x.to(DType::Float32);
        check_close(mean(x32, dims, keep), reduce_ref(x32, dims, keep, mean_of), 1e-7, 1e-6, "float32");
        gradcheck([&](const std::vector<Tensor>& in) { return mean(in[0], dims, keep); }, {test::noncontiguous(x)});
      }
    }
    check_close(mean(x), reduce_ref(x, {}, false, mean_of), 1e-15, 1e-13, "mean(x)");
    gradcheck([](const std::vector<Tensor>& in) { return mean(in[0]); }, {draw({})});
  }
  SUBCASE("the gradient is dout / count") {
    Tensor leaf = x.detach().requires_grad_();
    mean(leaf, {0, 2}).backward(ones({4}, {DType::Float64}));
    check_close(leaf.grad(), full({3, 4, 5}, 1.0 / 15, {DType::Float64}), 1e-16, 1e-15);
  }
  SUBCASE("an empty mean is nan (0 / 0), as PyTorch") {
    CHECK(std::isnan(mean(zeros({0, 3})).item<double>()));
    CHECK(std::isnan(test::at(mean(zeros({0, 3}), {0}), 2)));
  }
  SUBCASE("misuse: integer input, dim out of range") {
    test::check_throws_with([] { (void)mean(ones({2, 3}, {DType::Int64})); }, {"mean", "int64", "[2, 3]"});
    test::check_throws_with([] { (void)mean(ones({2}, {DType::UInt8})); }, {"mean", "uint8"});
    test::check_throws_with([&] { (void)mean(x, {5}); }, {"mean", "dim 5", "[3, 4, 5]"});
  }
}

// ---------------------------------------------------------------- var

TEST_CASE("var") {
  const Tensor x = draw({3, 4, 5}, -1, 1, 9);
  SUBCASE("unbiased and biased, over every choice of dims, keepdim or not") {
    for (bool unbiased : {true, false}) {
      for (const Shape& dims : kDimLists) {
        for (bool keep : {false, true}) {
          INFO("dims " << shape_str(dims) << " keepdim " << keep << " unbiased " << unbiased);
          const auto f = [&](const std::vector<double>& v) { return var_of(v, unbiased); };
          const Tensor expect = reduce_ref(x, dims, keep, f);
          for (const auto& [name, xl] : layouts(x)) check_close(var(xl, dims, unbiased, keep), expect, 1e-15, 1e-12, name);
          const Tensor x32 = x.to(DType::Float32);
          // float32: the centered squares are formed in float, so a few ulp per term.
          check_close(var(x32, dims, unbiased, keep), reduce_ref(x32, dims, keep, f), 1e-6, 1e-5, "float32");
        }
      }
      check_close(var(x, unbiased), reduce_ref(x, {}, false, [&](const std::vector<double>& v) { return var_of(v, unbiased); }),
                  1e-15, 1e-12, "var(x)");
    }
  }
  SUBCASE("gradcheck: d var / dx = 2 (x - mean) / (N - unbiased)") {
    for (bool unbiased : {true, false}) {
      gradcheck([&](const std::vector<Tensor>& in) { return var(in[0], {1}, unbiased); }, {test::noncontiguous(x)});
      gradcheck([&](const std::vector<Tensor>& in) { return var(in[0], {0, 2}, unbiased, true); }, {transposed_layout(x)});
      gradcheck([&](const std::vector<Tensor>& in) { return var(in[0], unbiased); }, {draw({2, 3})});
    }
  }
  SUBCASE("var(x, {1}) reduces over dim 1 (the braced list is dims, not a bool)") {
    check_close(var(x, {1}), reduce_ref(x, {1}, false, [](const std::vector<double>& v) { return var_of(v, true); }),
                1e-15, 1e-12);
    check_close(var(x, {0}), var(x, Shape{0}, true, false), 0, 0);
    CHECK(var(x, true).dim() == 0);
  }
  SUBCASE("two passes: a large common offset does not destroy the variance") {
    const Tensor shifted = add(x, 1e6);
    check_close(var(shifted, {2}), var(x, {2}), 1e-9, 1e-7);
  }
  SUBCASE("N = 1: unbiased gives nan (0 / 0), biased gives 0, as PyTorch") {
    CHECK(std::isnan(var(tensor({3}, {DType::Float64})).item<double>()));
    CHECK(var(tensor({3}, {DType::Float64}), false).item<double>() == 0.0);
    const Tensor per_row = var(draw({4, 1}), {1});
    for (double v : test::values(per_row)) CHECK(std::isnan(v));
    CHECK(std::isnan(var(scalar_tensor(1.0, {DType::Float64})).item<double>()));
  }
  SUBCASE("misuse: integer input, dim out of range") {
    test::check_throws_with([] { (void)var(ones({2, 3}, {DType::Int64})); }, {"var", "int64", "[2, 3]"});
    test::check_throws_with([&] { (void)var(x, {3}); }, {"var", "dim 3", "[3, 4, 5]"});
  }
}

// ---------------------------------------------------------------- max along a dim, argmax

namespace {

// The first maximum of v and its index, NaN counting as larger than everything (PyTorch).
std::pair<double, int64_t> first_max(const std::vector<double>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (std::isnan(v[best])) break;
    if (std::isnan(v[i]) || v[i] > v[best]) best = i;
  }
  return {v[best], int64_t(best)};
}

}  // namespace

TEST_CASE("max along a dim") {
  // Small integers as values: many ties, so "the first index wins" is exercised everywhere.
  Generator gen(4);
  const Tensor x = randint(0, 4, {3, 4, 5}, {DType::Int64}, &gen).to(DType::Float64);
  SUBCASE("values and indices against a loop: every dim, keepdim, layouts, dtypes") {
    for (int64_t dim : {0, 1, 2, -1, -3}) {
      for (bool keep : {false, true}) {
        INFO("dim " << dim << " keepdim " << keep);
        const Tensor ev = reduce_ref(x, {dim}, keep, [](const std::vector<double>& v) { return first_max(v).first; });
        const Tensor ei = reduce_ref(x, {dim}, keep, [](const std::vector<double>& v) { return double(first_max(v).second); });
        for (DType dt : {DType::Float64, DType::Float32, DType::Int64}) {
          for (const auto& entry : layouts(x.to(dt))) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
            const auto& name = entry.first;
            const auto& xl = entry.second;
            INFO("layout " << std::string(name) << " " << std::string(dtype_name(dt)));
            const ValuesIndices m = max(xl, dim, keep);
            CHECK(m.values.dtype() == dt);
            CHECK(m.indices.dtype() == DType::Int64);
            check_close(m.values, ev, 0, 0, "values");
            check_close(m.indices, ei, 0, 0, "indices");
            check_close(argmax(xl, dim, keep), ei, 0, 0, "argmax");
          }
        }
      }
    }
  }
  SUBCASE("the gradient goes to the first maximal index only") {
    Tensor leaf = tensor({1, 3, 3, 2, 5, 5, 0, -1, 9}, {DType::Float64}).reshape({3, 3}).detach().requires_grad_();
    const ValuesIndices m = max(leaf, 1);
    CHECK(test::values(m.indices) == std::vector<double>{1, 1, 2});
    CHECK_FALSE(m.indices.requires_grad());
    m.values.backward(tensor({10, 20, 30}, {DType::Float64}));
    CHECK(test::values(leaf.grad()) == std::vector<double>{0, 10, 0, 0, 20, 0, 0, 0, 30});
    // Random values (no ties, no kinks within eps): finite differences agree.
    const Tensor r = draw({3, 4, 5}, -1, 1, 10);
    for (int64_t dim : {0, 1, 2}) {
      gradcheck([&](const std::vector<Tensor>& in) { return max(in[0], dim).values; }, {test::noncontiguous(r)});
      gradcheck([&](const std::vector<Tensor>& in) { return max(in[0], dim, true).values; }, {transposed_layout(r)});
    }
    gradcheck([](const std::vector<Tensor>& in) { return max(in[0], 0).values; }, {draw({1, 4})});
  }
  SUBCASE("NaN wins, at its first position, and takes the gradient") {
    const Tensor n = tensor({1, kNaN, 3, kNaN, 0, 7}, {DType::Float32}).reshape({2, 3});
    const ValuesIndices m = max(n, 1);
    CHECK(std::isnan(test::at(m.values, 0)));
    CHECK(test::at(m.indices, 0) == 1);
    CHECK(std::isnan(test::at(m.values, 1)));
    CHECK(test::at(m.indices, 1) == 0);
    CHECK(max(tensor({kNaN, 5}, {DType::Float64}), 0).indices.item<int64_t>() == 0);
    Tensor leaf = tensor({2, kNaN, kNaN}, {DType::Float64}).requires_grad_();
    max(leaf, 0).values.backward();
    CHECK(test::at(leaf.grad(), 0) == 0);
    CHECK(test::at(leaf.grad(), 1) == 1);
    CHECK(test::at(leaf.grad(), 2) == 0);
    CHECK(test::at(max(tensor({-kInf, -kInf}, {DType::Float64}), 0).indices, 0) == 0);
  }
  SUBCASE("size-1 and 0-d inputs") {
    const ValuesIndices one = max(draw({4, 1}), 1, true);
    CHECK(one.values.shape() == Shape{4, 1});
    CHECK(test::values(one.indices) == std::vector<double>{0, 0, 0, 0});
    const ValuesIndices s = max(scalar_tensor(3.5, {DType::Float64}), 0);  // PyTorch allows dim 0 / -1 on 0-d
    CHECK(s.values.dim() == 0);
    CHECK(s.values.item<double>() == 3.5);
    CHECK(s.indices.item<int64_t>() == 0);
    CHECK(argmax(scalar_tensor(3.5), -1).item<int64_t>() == 0);
  }
  SUBCASE("misuse: dim out of range, an empty dim, uint8") {
    test::check_throws_with([&] { (void)max(x, 3); }, {"max", "dim 3", "[3, 4, 5]"});
    CHECK_THROWS_AS((void)max(x, -4), std::out_of_range);
    test::check_throws_with([] { (void)max(zeros({2, 0}), 1); }, {"max", "[2, 0]"});
    test::check_throws_with([&] { (void)argmax(x, 7); }, {"max", "[3, 4, 5]"});
    test::check_throws_with([] { (void)max(scalar_tensor(1), 1); }, {"max", "dim 1", "[]"});
  }
}

TEST_CASE("max over all elements") {
  SUBCASE("value against a loop, every layout, float32 and int64") {
    const Tensor x = draw({3, 4, 5}, -1, 1, 11);
    const double expect = first_max(test::values(x)).first;
    for (const auto& entry : layouts(x)) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
      const auto& name = entry.first;
      const auto& xl = entry.second;
      INFO("layout " << std::string(name));
      CHECK(max(xl).dim() == 0);
      CHECK(max(xl).item<double>() == expect);
      CHECK(max(xl.to(DType::Float32)).item<double>() == double(float(expect)));
    }
    CHECK(max(from_vector(std::vector<int64_t>{-5, 9, 2}, {3})).item<int64_t>() == 9);
    CHECK(max(scalar_tensor(-2.0, {DType::Float64})).item<double>() == -2.0);
  }
  SUBCASE("ties split the gradient evenly (PyTorch's max())") {
    Tensor x = tensor({1, 4, 4, 2, 4, 0}, {DType::Float64}).reshape({2, 3}).detach().requires_grad_();
    const Tensor m = max(x);
    CHECK(m.item<double>() == 4);
    m.backward(scalar_tensor(6.0, {DType::Float64}));
    CHECK(test::values(x.grad()) == std::vector<double>{0, 2, 2, 0, 2, 0});
    gradcheck([](const std::vector<Tensor>& in) { return max(in[0]); }, {test::noncontiguous(draw({3, 4, 5}, -1, 1, 12))});
    gradcheck([](const std::vector<Tensor>& in) { return max(in[0]); }, {draw({})});
  }
  SUBCASE("NaN wins, and the NaN elements share the gradient (PyTorch)") {
    CHECK(std::isnan(max(tensor({1, kNaN, 3}, {DType::Float32})).item<double>()));
    Tensor x = tensor({1, kNaN, 3, kNaN}, {DType::Float64}).requires_grad_();
    max(x).backward();
    CHECK(test::values(x.grad()) == std::vector<double>{0, 0.5, 0, 0.5});
  }
  SUBCASE("an empty tensor has no maximum") {
    test::check_throws_with([] { (void)max(zeros({0, 3})); }, {"max", "[0, 3]"});
    test::check_throws_with([] { (void)argmax(zeros({0})); }, {"argmax", "[0]"});
  }
}

TEST_CASE("argmax over all elements: the index into the flattened tensor") {
  const Tensor x = tensor({1, 7, 3, 7, 0, -2}, {DType::Float64}).reshape({2, 3});
  CHECK(argmax(x).item<int64_t>() == 1);  // first of the tied maxima
  CHECK(argmax(x).dtype() == DType::Int64);
  CHECK(argmax(x).dim() == 0);
  // Row-major order of the logical tensor, whatever the layout.
  const Tensor y = tensor({1, 2, 3, 9, 0, -2}, {DType::Float64}).reshape({2, 3});
  CHECK(argmax(y).item<int64_t>() == 3);
  CHECK(argmax(y.t()).item<int64_t>() == 1);  // y.t() = [[1, 9], [2, 0], [3, -2]]
  CHECK(argmax(tensor({0, kNaN, 5}, {DType::Float32})).item<int64_t>() == 1);
  CHECK(argmax(scalar_tensor(4)).item<int64_t>() == 0);
  const Tensor r = draw({3, 4, 5}, -1, 1, 13);
  const std::vector<double> v = test::values(r);
  CHECK(argmax(test::noncontiguous(r)).item<int64_t>() == int64_t(std::max_element(v.begin(), v.end()) - v.begin()));
}

// ---------------------------------------------------------------- threads

TEST_CASE("reductions give the same bits on 1 and 2 threads") {
  ThreadCountGuard guard;
  Generator gen(21);
  const Tensor big = rand({300001}, {DType::Float32}, &gen);              // one long reduction, chunked
  const Tensor wide = rand({300, 1001}, {DType::Float32}, &gen);          // rows path (sum over dim 0)
  const Tensor tall = rand({1001, 300}, {DType::Float64}, &gen);          // many outputs, general path
  auto results = [&] {
    return std::vector<std::vector<double>>{test::values(sum(big)),
                                            test::values(sum(test::noncontiguous(big))),
                                            test::values(sum(wide, {0})),
                                            test::values(sum(wide, {1})),
                                            test::values(sum(tall.t(), {1})),
                                            test::values(mean(tall, {0, 1})),
                                            test::values(var(wide, {0})),
                                            test::values(max(wide, 0).values),
                                            test::values(max(wide, 1).indices)};
  };
  set_num_threads(1);
  const auto one = results();
  set_num_threads(2);
  const auto two = results();
  REQUIRE(one.size() == two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("result " << i);
    CHECK(one[i] == two[i]);  // bitwise: operator== on doubles converted exactly from float/double
  }
  // And the chunked long sum is still accurate.
  double ref = 0;
  for (double v : test::values(big)) ref += v;
  CHECK(one[0][0] == doctest::Approx(ref).epsilon(1e-7));
}

TEST_CASE("reductions have a CUDA slot that answers clearly") {
  for (Op op : {Op::sum, Op::max, Op::argmax}) {
    INFO("op " << std::string(op_name(op)));
    CHECK(supports(op, Device::cpu()));
    if (!supports(op, Device::cuda()))
      test::check_throws_with([&] { check_supported(op, Device::cuda()); }, {op_name(op), "CUDA"});
  }
}

// ---------------------------------------------------------------- cuda
//
// The CUDA kernels (ops/cuda/reduce.cu) against the CPU ones, through test::compare_devices
// (forward, and the gradient under the same upstream gradient). Tolerances:
//   sum    Both devices add in double and round once to the output type, in different orders
//          (the CPU row-major, the GPU a fixed tree: Note [deterministic reductions]). Each
//          double sum is within n * 2^-53 * sum|x| of the exact sum (the bound of recursive
//          summation, n the elements per output; a tree's is smaller), so the outputs differ by
//          at most 2 n * 2^-53 * sum|x| (atol, with sum|x| <= n max|x|) plus one rounding to
//          the output type (rtol: one float32 ulp, 2^-23; float64 has no second rounding, 2^-52
//          keeps the form). The gradient is dout expanded and copied: exact, well inside.
//   max    A selection: values and indices exact (atol = rtol = 0), ties and NaN included.
//   int64  Exact.

namespace {

test::DeviceTolerance sum_tolerance(DType dtype, int64_t n, double max_abs = 1) {
  const double count = double(std::max<int64_t>(n, 1));
  return {.atol = 2 * count * 0x1p-53 * count * max_abs, .rtol = dtype == DType::Float32 ? 0x1p-23 : 0x1p-52};
}
constexpr test::DeviceTolerance kExact{.atol = 0, .rtol = 0};

// Every choice of dims of an nd-dim tensor: {} (every dim) and each non-empty subset.
std::vector<Shape> all_dim_sets(int64_t nd) {
  std::vector<Shape> sets{{}};
  for (int64_t mask = 1; mask < (int64_t(1) << nd); ++mask) {
    Shape dims;
    for (int64_t d = 0; d < nd; ++d)
      if (mask >> d & 1) dims.push_back(d);
    sets.push_back(dims);
  }
  return sets;
}

int64_t count_of(const Shape& shape, const Shape& dims) {
  if (dims.empty() || shape.empty()) return numel_of(shape);  // every dim; or a 0-d tensor (dim 0 reduces nothing)
  int64_t n = 1;
  for (int64_t d : dims) n *= shape[size_t(d < 0 ? d + int64_t(shape.size()) : d)];
  return n;
}

// Compares sum(x, dims, keep) on both devices, with sum_tolerance for x's values.
void compare_sum(const std::string& what, const Tensor& x, const Shape& dims, bool keep) {
  double max_abs = 0;
  for (double v : test::values(x)) max_abs = std::max(max_abs, std::abs(v));
  const std::string name = what + " dims " + shape_str(dims) + (keep ? " keepdim" : "") + " " + dtype_name(x.dtype());
  test::compare_devices(name, [&](const std::vector<Tensor>& in) { return sum(in[0], dims, keep); }, {x},
                        is_floating(x.dtype()) ? sum_tolerance(x.dtype(), count_of(x.shape(), dims), max_abs) : kExact);
}

// max's gradient scatters dout into zeros (ops/reduce.cpp), max()'s selects with where, eq
// and ne: the gradients are compared where those kernels run on the GPU too, the values always.
std::vector<size_t> constant_unless(std::initializer_list<Op> needed) {
  for (Op op : needed)
    if (!supports(op, test::cuda_device())) return {0};
  return {};
}

// Small integers as float values: many ties, so "the first index wins" is exercised.
Tensor tie_values(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randint(0, 4, shape, {DType::Int64}, &gen).to(DType::Float64);
}

void compare_max(const std::string& what, const Tensor& x, int64_t dim, bool keep) {
  const std::string name = what + " dim " + std::to_string(dim) + (keep ? " keepdim" : "") + " " + dtype_name(x.dtype());
  test::compare_devices(name + " values", [&](const std::vector<Tensor>& in) { return max(in[0], dim, keep).values; },
                        {x}, kExact, constant_unless({Op::scatter_add}));
  test::compare_devices(name + " indices", [&](const std::vector<Tensor>& in) { return max(in[0], dim, keep).indices; },
                        {x}, kExact);
  test::compare_devices(name + " argmax", [&](const std::vector<Tensor>& in) { return argmax(in[0], dim, keep); }, {x},
                        kExact);
}

}  // namespace

TEST_CASE("sum: cuda matches cpu over every choice of dims, keepdim, layout and dtype" * doctest::test_suite("cuda")) {
  // 3-d and 4-d odd shapes; the 4-d one's last dim (33) is longer than a warp, so sums over
  // it take the block-per-output kernel, the others the thread-per-output one.
  for (const Shape& shape : {Shape{3, 5, 7}, Shape{2, 3, 5, 33}}) {
    const Tensor x = draw(shape, -1, 1, 31);
    for (const Shape& dims : all_dim_sets(int64_t(shape.size()))) {
      for (bool keep : {false, true}) {
        for (DType dt : {DType::Float32, DType::Float64}) {
          for (const auto& entry : layouts(x.to(dt))) compare_sum(entry.first, entry.second, dims, keep);
        }
      }
    }
  }
  // Negative and unsorted spellings name the same dims.
  const Tensor x = draw({3, 5, 7}, -1, 1, 32).to(DType::Float32);
  for (const Shape& dims : {Shape{-1}, Shape{-1, 0}, Shape{2, 0}, Shape{-3, -2}}) compare_sum("spelling", x, dims, false);
}

TEST_CASE("sum: cuda matches cpu on edge shapes: size 1, empty, batch 1, expanded, transposed, primes"
          * doctest::test_suite("cuda")) {
  const std::vector<std::pair<Shape, std::vector<Shape>>> cases = {
      {{3, 1, 5}, {{1}, {0, 2}, {}}},         // a size-1 dim, reduced or kept
      {{1, 5, 7}, {{0}, {1, 2}, {}}},         // batch 1
      {{1, 1}, {{0}, {1}, {}}},
      {{3, 0, 5}, {{1}, {0}, {0, 2}, {}}},    // empty: a sum of nothing is 0; nothing to sum into
      {{3, 1031}, {{1}, {0}}},                // a prime above the block size: one block per row
      {{1031, 3}, {{0}, {1}}},                // a long column split in slices: two passes
      {{2, 3, 1, 5, 7}, {{0, 3}, {1, 4}}},
  };
  for (const auto& [shape, dim_sets] : cases) {
    const Tensor x = draw(shape, -1, 1, 33);
    for (const Shape& dims : dim_sets) {
      for (bool keep : {false, true}) {
        compare_sum("edge " + shape_str(shape), x.to(DType::Float32), dims, keep);
        compare_sum("edge non-contiguous " + shape_str(shape), test::noncontiguous(x), dims, keep);
      }
    }
  }
  compare_sum("0-d", draw({}), {}, false);
  compare_sum("0-d dim 0", draw({}), {0}, true);
  // Stride 0: every element of a kept or reduced dim is the same memory. (The view is made
  // inside f: compare_devices copies its inputs, and a copy cannot write an expanded view.)
  const Tensor small = draw({3, 1, 7}, -1, 1, 34);
  for (const Shape& dims : {Shape{1}, Shape{0, 2}, Shape{}, Shape{2}}) {
    test::compare_devices("expanded dims " + shape_str(dims),
                          [&](const std::vector<Tensor>& in) { return sum(in[0].expand({3, 5, 7}), dims); }, {small},
                          sum_tolerance(DType::Float64, count_of({3, 5, 7}, dims)));
  }
  const Tensor m = draw({37, 41}, -1, 1, 35).to(DType::Float32);
  for (const Shape& dims : {Shape{0}, Shape{1}, Shape{}}) compare_sum("transposed matrix", m.t(), dims, false);
}

TEST_CASE("sum: cuda full sums take two passes, and give the same bits every run" * doctest::test_suite("cuda")) {
  // 100003 (prime) elements: more than one block's slice, so block partials go through the
  // workspace and a second kernel combines them in order.
  const Tensor v = draw({100003}, -1, 1, 36);
  for (DType dt : {DType::Float32, DType::Float64}) {
    compare_sum("long vector", v.to(dt), {}, false);
    compare_sum("long vector non-contiguous", test::noncontiguous(v.to(dt)), {0}, true);
  }
  // A long column of few outputs: slices of rows per block, then partials combined in order.
  const Tensor tall = draw({20011, 3}, -1, 1, 37).to(DType::Float32);
  compare_sum("tall matrix", tall, {0}, false);
  compare_sum("tall matrix transposed", tall.t(), {1}, false);

  // Determinism: the same input, summed twice, gives identical bits.
  const Tensor on_gpu = v.to(DType::Float32).to(test::cuda_device());
  const Tensor tall_gpu = tall.to(test::cuda_device());
  auto results = [&] {
    return std::vector<std::vector<double>>{test::values(sum(on_gpu).to(Device::cpu())),
                                            test::values(sum(tall_gpu, {0}).to(Device::cpu())),
                                            test::values(sum(on_gpu.narrow(0, 0, 100000).reshape({4, 25000}), {1}).to(Device::cpu()))};
  };
  const auto first = results(), second = results();
  for (size_t i = 0; i < first.size(); ++i) {
    INFO("result " << i);
    CHECK(first[i] == second[i]);  // bitwise: float -> double is exact
  }
}

TEST_CASE("sum: cuda float32 accumulates in double, integers exactly" * doctest::test_suite("cuda")) {
  const Device gpu = test::cuda_device();
  // In float, 1e8 + 1 rounds back to 1e8 and the sum would be 0 (ops/reduce.h's contract).
  CHECK(sum(tensor({1e8, 1, -1e8}, {DType::Float32}).to(gpu)).item<double>() == 1.0);
  const int64_t big = (int64_t(1) << 60) + 1;  // not representable in float64
  const Tensor i = from_vector(std::vector<int64_t>{big, 1, -3, 5, 7, 11}, {2, 3});
  for (const Shape& dims : {Shape{}, Shape{0}, Shape{1}}) compare_sum("int64", i, dims, false);
  Generator gen(38);
  const Tensor labels = randint(-1000, 1000, {33, 65}, {DType::Int64}, &gen);
  for (const Shape& dims : {Shape{}, Shape{0}, Shape{1}}) compare_sum("int64 labels", labels, dims, true);
  // uint8 masks sum in int64 without wrapping (converted on the device).
  const Tensor mask = full({1000}, 255, {DType::UInt8});
  CHECK(sum(mask.to(gpu)).dtype() == DType::Int64);
  CHECK(sum(mask.to(gpu)).item<int64_t>() == 255000);
  compare_sum("uint8", test::noncontiguous(mask).reshape({10, 100}), {1}, false);
}

TEST_CASE("mean and var: cuda matches cpu through their composites" * doctest::test_suite("cuda")) {
  // mean = sum / n and var = sum((x - mean)^2) / (n - unbiased) run sub, mul and div too.
  for (Op op : {Op::sub, Op::mul, Op::div}) {
    if (!supports(op, test::cuda_device())) {
      MESSAGE("SKIPPED mean and var on the GPU: " << std::string(op_name(op)) << " has no CUDA kernel in this build yet");
      return;
    }
  }
  // float64: the sum's bound above, with a division (and for var a few products) on top.
  // float32: the sum's bound plus the float32 roundings of the centered values and their
  // squares, a few ulps of values of size 1.
  const Tensor x = draw({3, 5, 7}, -1, 1, 39);
  for (const Shape& dims : all_dim_sets(3)) {
    for (bool keep : {false, true}) {
      for (DType dt : {DType::Float32, DType::Float64}) {
        const std::string what = "dims " + shape_str(dims) + (keep ? " keepdim " : " ") + dtype_name(dt);
        const test::DeviceTolerance tol = dt == DType::Float32 ? test::DeviceTolerance{.atol = 1e-6, .rtol = 1e-6}
                                                               : test::DeviceTolerance{.atol = 1e-14, .rtol = 1e-13};
        const Tensor xl = test::noncontiguous(x.to(dt));
        test::compare_devices("mean " + what, [&](const std::vector<Tensor>& in) { return mean(in[0], dims, keep); },
                              {xl}, tol);
        for (bool unbiased : {true, false})
          test::compare_devices("var " + what, [&](const std::vector<Tensor>& in) { return var(in[0], dims, unbiased, keep); },
                                {xl}, tol);
      }
    }
  }
}

TEST_CASE("max and argmax: cuda matches cpu: every dim, keepdim, layouts, dtypes, ties" * doctest::test_suite("cuda")) {
  for (const Shape& shape : {Shape{3, 5, 7}, Shape{2, 3, 5, 33}}) {
    const Tensor x = tie_values(shape, 40);
    for (int64_t dim = -1; dim < int64_t(shape.size()); ++dim) {
      for (bool keep : {false, true}) {
        for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
          for (const auto& entry : layouts(x.to(dt))) compare_max(entry.first, entry.second, dim, keep);
        }
      }
    }
  }
  // Ties across the threads of a block (rows), across slices (two passes), and along long
  // columns (one thread per output, slices combined in order).
  compare_max("prime rows", tie_values({3, 1031}, 41), 1, false);
  compare_max("prime columns", tie_values({1031, 3}, 42).to(DType::Float32), 0, true);
  compare_max("long vector", tie_values({100003}, 43).to(DType::Float32), 0, false);
  // Unique values too, where the winner is not simply the first element of its value.
  compare_max("distinct", draw({5, 77}, -1, 1, 44).to(DType::Float32), 1, false);
  // Size-1 dims, batch 1, 0-d, expanded.
  compare_max("size-1 dim", draw({4, 1, 3}, -1, 1, 45), 1, true);
  compare_max("batch 1", tie_values({1, 9, 4}, 46), 0, false);
  compare_max("batch 1 row", tie_values({1, 9, 4}, 46), 1, false);
  compare_max("0-d", draw({}), 0, false);
  test::compare_devices("max expanded", [](const std::vector<Tensor>& in) { return max(in[0].expand({3, 6, 40}), 1).values; },
                        {draw({3, 1, 40}, -1, 1, 47)}, kExact, constant_unless({Op::scatter_add}));
  test::compare_devices("argmax expanded", [](const std::vector<Tensor>& in) { return argmax(in[0].expand({3, 40, 6}), 2); },
                        {draw({3, 40, 1}, -1, 1, 47)}, kExact);
  compare_max("empty kept dim", zeros({0, 5}), 1, false);
}

TEST_CASE("max and argmax: cuda picks the first NaN, then the first maximum, like the cpu" * doctest::test_suite("cuda")) {
  constexpr double kNaNv = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInfv = std::numeric_limits<double>::infinity();
  for (const Shape& shape : {Shape{3, 1031}, Shape{3, 17}}) {
    Tensor x = tie_values(shape, 48);
    const int64_t len = shape[1];
    test::set_at(x, len - 3, kNaNv);               // row 0: two NaNs, in different threads' shares
    test::set_at(x, len / 2, kNaNv);
    test::set_at(x, len + 5, kNaNv);               // row 1: one NaN
    for (int64_t j = 0; j < len; ++j) test::set_at(x, 2 * len + j, -1e30);  // row 2: all equal
    for (DType dt : {DType::Float32, DType::Float64}) {
      compare_max("NaN rows " + shape_str(shape), x.to(dt), 1, false);
      compare_max("NaN columns " + shape_str(shape), x.t().to(dt), 0, false);  // the same lines, strided
    }
  }
  // A line of only -inf: the first index (checked directly: check_close's |a - e| is NaN for
  // two infinities).
  for (int64_t len : {17, 1031}) {
    const ValuesIndices m = max(full({2, len}, -kInfv, {DType::Float32}).to(test::cuda_device()), 1);
    CHECK(test::values(m.values.to(Device::cpu())) == std::vector<double>{-kInfv, -kInfv});
    CHECK(test::values(m.indices.to(Device::cpu())) == std::vector<double>{0, 0});
  }
}

TEST_CASE("max and argmax over all elements: cuda matches cpu" * doctest::test_suite("cuda")) {
  const std::vector<size_t> constant = constant_unless({Op::where, Op::eq, Op::ne, Op::mul, Op::div});
  for (const Tensor& x : {tie_values({3, 5, 7}, 49), draw({3, 5, 7}, -1, 1, 50), tie_values({100003}, 51)}) {
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor xl = test::noncontiguous(x.to(dt));
      test::compare_devices("max() " + shape_str(x.shape()), [](const std::vector<Tensor>& in) { return max(in[0]); },
                            {xl}, kExact, constant);
      test::compare_devices("argmax() " + shape_str(x.shape()),
                            [](const std::vector<Tensor>& in) { return argmax(in[0]); }, {xl}, kExact);
      test::compare_devices("argmax() transposed " + shape_str(x.shape()),
                            [](const std::vector<Tensor>& in) { return argmax(in[0]); }, {transposed_layout(x.to(dt))},
                            kExact);
    }
  }
  const Device gpu = test::cuda_device();
  test::check_throws_with([&] { (void)max(zeros({2, 0}).to(gpu), 1); }, {"max", "[2, 0]"});
  test::check_throws_with([&] { (void)argmax(zeros({0}).to(gpu)); }, {"argmax", "[0]"});
}
