// test_concat_index.cpp - joining and splitting (ops/concat.h: concat, stack, split, chunk) and
// integer indexing (ops/index.h: gather, scatter_add, index_select, index_add).
//
// Forward values are checked against plain loops written here from the PyTorch definitions;
// gradients against the partner op (d gather = scatter_add, d index_select = index_add, and
// back) and by float64 finite differences. Repeated indices must accumulate; an index out of
// range must throw std::out_of_range naming the op. The CUDA kernels are compared with the CPU
// ones at the end (test suite "cuda", run as test_concat_index.cuda). Shape legend: x the
// input, index/idx the int64 indices, src the values scattered or added, dim the indexed dim.
#include <cmath>
#include <cstdint>

#include <cstring>

#include "ops/threads.h"
#include "ops/op_list.h"
#include "tests/cuda_compare.h"
#include "tests/test_util.h"

using namespace mila;
using test::check_close;
using test::gradcheck;
using test::unravel;
using test::ravel;
using test::draw;
using test::transposed_layout;

namespace {

Tensor indices(const std::vector<int64_t>& v, const Shape& shape) { return from_vector(v, shape); }

// Random int64 indices in [0, high) of `shape` (repeats are likely with small `high`).
Tensor random_indices(int64_t high, const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randint(0, high, shape, {DType::Int64}, &gen);
}

}  // namespace

// ---------------------------------------------------------------- concat

TEST_CASE("concat") {
  SUBCASE("along every dim (also negative), against a loop, any layout and dtype") {
    for (int64_t dim : {0, 1, 2, -1, -2}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      INFO("dim " << dim);
      Shape s0{2, 3, 4}, s1{2, 3, 4}, s2{2, 3, 4};
      s0[size_t(d)] = 2, s1[size_t(d)] = 1, s2[size_t(d)] = 3;
      const std::vector<Tensor> parts = {draw(s0, -1, 1, 1), draw(s1, -1, 1, 2), draw(s2, -1, 1, 3)};
      // Loop: output coordinate c along d comes from the part whose range holds c.
      Shape out_shape{2, 3, 4};
      out_shape[size_t(d)] = 6;
      std::vector<double> expect;
      for (int64_t e = 0; e < numel_of(out_shape); ++e) {
        Shape idx = unravel(e, out_shape);
        size_t p = 0;
        while (idx[size_t(d)] >= parts[p].size(d)) idx[size_t(d)] -= parts[p++].size(d);
        expect.push_back(test::at(parts[p], ravel(idx, parts[p].shape())));
      }
      const Tensor ref = from_vector(expect, out_shape);
      check_close(concat(parts, dim), ref, 0, 0, "contiguous");
      check_close(concat({test::noncontiguous(parts[0]), transposed_layout(parts[1]), parts[2]}, dim), ref, 0, 0, "layouts");
      for (DType dt : {DType::Float32, DType::Int64, DType::UInt8}) {
        INFO("dtype " << std::string(dtype_name(dt)));
        const Tensor c = concat({parts[0].to(dt), parts[1].to(dt), parts[2].to(dt)}, dim);
        CHECK(c.dtype() == dt);
        check_close(c, ref.to(dt), 0, 0);
      }
      gradcheck([&](const std::vector<Tensor>& in) { return concat({in[0], in[1], in[2]}, dim); },
                {test::noncontiguous(parts[0]), parts[1], transposed_layout(parts[2])});
    }
  }
  SUBCASE("one tensor, empty pieces, the same tensor twice") {
    const Tensor a = draw({2, 3});
    check_close(concat({a}, 1), a, 0, 0);
    check_close(concat({a, zeros({2, 0}, {DType::Float64}), a}, 1), concat({a, a}, 1), 0, 0);
    CHECK(concat({zeros({0, 3}), zeros({0, 3})}, 0).shape() == Shape{0, 3});
    // The same leaf twice: both slices of the gradient accumulate into it.
    Tensor leaf = a.detach().requires_grad_();
    concat({leaf, leaf}, 0).backward(concat({ones({2, 3}, {DType::Float64}), full({2, 3}, 2.0, {DType::Float64})}, 0));
    check_close(leaf.grad(), full({2, 3}, 3.0, {DType::Float64}), 0, 0);
    // Only the pieces that need a gradient get one.
    Tensor l1 = draw({1, 3}).requires_grad_();
    concat({a, l1}, 0).backward(ones({3, 3}, {DType::Float64}));
    check_close(l1.grad(), ones({1, 3}, {DType::Float64}), 0, 0);
  }
  SUBCASE("misuse: mismatched shapes, dtypes, ranks, dims; empty list; 0-d") {
    const Tensor a = ones({2, 3});
    test::check_throws_with([&] { (void)concat({a, ones({3, 3})}, 1); }, {"concat", "[3, 3]", "[2, 3]"});
    test::check_throws_with([&] { (void)concat({a, ones({2, 3}, {DType::Float64})}, 0); }, {"concat", "float64", "float32"});
    test::check_throws_with([&] { (void)concat({a, ones({2, 3, 1})}, 0); }, {"concat", "[2, 3, 1]", "[2, 3]"});
    test::check_throws_with([&] { (void)concat({a, a}, 2); }, {"concat", "dim 2", "[2, 3]"});
    CHECK_THROWS_AS((void)concat({a, a}, -3), std::out_of_range);
    test::check_throws_with([] { (void)concat({}, 0); }, {"concat"});
    test::check_throws_with([] { (void)concat({scalar_tensor(1), scalar_tensor(2)}, 0); }, {"concat", "zero-dim"});
  }
}

// ---------------------------------------------------------------- stack

TEST_CASE("stack") {
  const Tensor a = draw({2, 3}, -1, 1, 4), b = draw({2, 3}, -1, 1, 5), c = draw({2, 3}, -1, 1, 6);
  SUBCASE("a new dim at every position (0 .. ndim, also negative)") {
    for (int64_t dim : {0, 1, 2, -1, -3}) {
      INFO("dim " << dim);
      const int64_t d = dim < 0 ? dim + 3 : dim;
      const Tensor s = stack({a, test::noncontiguous(b), c}, dim);
      Shape expect_shape{2, 3};
      expect_shape.insert(expect_shape.begin() + d, 3);
      CHECK(s.shape() == expect_shape);
      check_close(s.select(d, 0), a, 0, 0);
      check_close(s.select(d, 1), b, 0, 0);
      check_close(s.select(d, 2), c, 0, 0);
      check_close(stack({a.to(DType::Float32), b.to(DType::Float32)}, dim).select(d, 1), b.to(DType::Float32), 0, 0);
      gradcheck([&](const std::vector<Tensor>& in) { return stack({in[0], in[1]}, dim); }, {a, transposed_layout(b)});
    }
    CHECK(stack({scalar_tensor(1), scalar_tensor(2)}, 0).shape() == Shape{2});  // 0-d parts stack into 1-d
  }
  SUBCASE("misuse: different shapes, dim out of range") {
    test::check_throws_with([&] { (void)stack({a, ones({2, 1}, {DType::Float64})}, 0); }, {"stack", "[2, 1]", "[2, 3]"});
    test::check_throws_with([&] { (void)stack({a, b}, 3); }, {"stack", "dim 3", "[2, 3]"});
    test::check_throws_with([] { (void)stack({}, 0); }, {"stack"});
  }
}

// ---------------------------------------------------------------- split, chunk

TEST_CASE("split") {
  const Tensor x = draw({3, 7, 2}, -1, 1, 8);
  SUBCASE("pieces of a size, the last smaller, as torch.split") {
    const std::vector<Tensor> parts = split(x, 3, 1);
    REQUIRE(parts.size() == 3);
    CHECK(parts[0].shape() == Shape{3, 3, 2});
    CHECK(parts[2].shape() == Shape{3, 1, 2});
    for (size_t p = 0; p < 3; ++p) check_close(parts[p], x.narrow(1, int64_t(p) * 3, parts[p].size(1)), 0, 0);
    check_close(concat(parts, 1), x, 0, 0);
    CHECK(split(x, 7, 1).size() == 1);
    CHECK(split(x, 100, -2).size() == 1);
    CHECK(split(zeros({0, 2}), 3, 0).size() == 1);  // an empty dim gives one empty piece
  }
  SUBCASE("pieces of given sizes; the pieces are views of x") {
    const std::vector<Tensor> parts = split(x, {2, 0, 5}, 1);
    REQUIRE(parts.size() == 3);
    CHECK(parts[1].shape() == Shape{3, 0, 2});
    check_close(parts[2], x.narrow(1, 2, 5), 0, 0);
    CHECK(parts[2].storage() == x.storage());  // no copy
    CHECK(split(x, {7}, 1).size() == 1);       // a braced list is sizes, not a piece size
  }
  SUBCASE("gradient: each piece's gradient lands in its slice, the rest is 0") {
    gradcheck([](const std::vector<Tensor>& in) { return mul(split(in[0], 3, 1)[1], 2.0); }, {test::noncontiguous(x)});
    gradcheck([](const std::vector<Tensor>& in) {
      const std::vector<Tensor> p = split(in[0], {1, 2}, 0);
      return concat({mul(p[1], 3.0), p[0]}, 0);
    }, {transposed_layout(x)});
  }
  SUBCASE("misuse: sizes that do not add up, negative sizes, size 0") {
    test::check_throws_with([&] { (void)split(x, {2, 2}, 1); }, {"split", "[2, 2]", "[3, 7, 2]"});
    test::check_throws_with([&] { (void)split(x, {8, -1}, 1); }, {"split", "negative"});
    test::check_throws_with([&] { (void)split(x, 0, 1); }, {"split", "positive"});
    test::check_throws_with([&] { (void)split(x, 2, 3); }, {"split", "dim 3", "[3, 7, 2]"});
  }
}

TEST_CASE("chunk") {
  // torch.chunk: pieces of ceil(n / chunks), possibly fewer than asked for.
  struct Case {
    int64_t n, chunks;
    Shape sizes;
  };
  for (const Case& c : std::vector<Case>{{7, 3, {3, 3, 1}}, {6, 4, {2, 2, 2}}, {5, 5, {1, 1, 1, 1, 1}},
                                         {3, 5, {1, 1, 1}}, {8, 1, {8}}, {6, 3, {2, 2, 2}}}) {
    INFO(c.n << " in " << c.chunks);
    const Tensor x = draw({2, c.n});
    const std::vector<Tensor> parts = chunk(x, c.chunks, -1);
    Shape sizes;
    for (const Tensor& p : parts) sizes.push_back(p.size(1));
    CHECK(sizes == c.sizes);
    check_close(concat(parts, 1), x, 0, 0);
  }
  gradcheck([](const std::vector<Tensor>& in) { return mul(chunk(in[0], 3, 0)[2], chunk(in[0], 3, 0)[0]); },
            {draw({6, 2})});
  test::check_throws_with([] { (void)chunk(ones({4}), 0, 0); }, {"chunk", "positive"});
  test::check_throws_with([] { (void)chunk(ones({4}), 2, 1); }, {"chunk", "dim 1", "[4]"});
}

// ---------------------------------------------------------------- gather, scatter_add

namespace {

// gather by its definition: out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (and likewise).
Tensor reference_gather(const Tensor& x, int64_t dim, const Tensor& index) {
  std::vector<double> out;
  for (int64_t e = 0; e < index.numel(); ++e) {
    Shape idx = unravel(e, index.shape());
    idx[size_t(dim)] = int64_t(test::at(index, e));
    out.push_back(test::at(x, ravel(idx, x.shape())));
  }
  return from_vector(out, index.shape());
}

// scatter_add by its definition: out = self; out[index[i][j][k]][j][k] += src[i][j][k] (dim 0).
Tensor reference_scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  std::vector<double> out = test::values(self);
  for (int64_t e = 0; e < index.numel(); ++e) {
    Shape idx = unravel(e, index.shape());
    const double v = test::at(src, ravel(idx, src.shape()));
    idx[size_t(dim)] = int64_t(test::at(index, e));
    out[size_t(ravel(idx, self.shape()))] += v;
  }
  return from_vector(out, self.shape());
}

}  // namespace

TEST_CASE("gather") {
  const Tensor x = draw({4, 5, 3}, -1, 1, 9);
  SUBCASE("every dim, index smaller than x in the other dims, repeated indices, layouts") {
    for (int64_t dim : {0, 1, 2}) {
      INFO("dim " << dim);
      Shape ishape{3, 4, 2};
      ishape[size_t(dim)] = 6;  // longer than x along dim: indices repeat
      const Tensor index = random_indices(x.size(dim), ishape, 10 + uint64_t(dim));
      const Tensor expect = reference_gather(x, dim, index);
      check_close(gather(x, dim, index), expect, 0, 0, "contiguous");
      check_close(gather(test::noncontiguous(x), dim - 3, test::noncontiguous(index)), expect, 0, 0, "layouts");
      check_close(gather(transposed_layout(x), dim, transposed_layout(index)), expect, 0, 0, "transposed");
      check_close(gather(x.to(DType::Float32), dim, index), expect.to(DType::Float32), 0, 0, "float32");
      check_close(gather(x.to(DType::Int64), dim, index), expect.to(DType::Int64), 0, 0, "int64");
    }
  }
  SUBCASE("gradient: scatter_add of dout; repeated indices accumulate") {
    const Tensor index = indices({0, 2, 2, 1, 3, 3, 3, 0}, {2, 4});
    Tensor leaf = draw({2, 5}).requires_grad_();
    const Tensor w = draw({2, 4}, -1, 1, 11);
    gather(leaf, 1, index).backward(w);
    check_close(leaf.grad(), reference_scatter_add(zeros({2, 5}, {DType::Float64}), 1, index, w), 1e-15, 0);
    CHECK(test::at(leaf.grad(), 2) == test::at(w, 1) + test::at(w, 2));
    for (int64_t dim : {0, 1, 2}) {
      Shape ishape{2, 3, 2};
      ishape[size_t(dim)] = 5;
      const Tensor index3 = random_indices(x.size(dim), ishape, 12 + uint64_t(dim));
      gradcheck([&](const std::vector<Tensor>& in) { return gather(in[0], dim, index3); }, {test::noncontiguous(x)});
    }
    gradcheck([](const std::vector<Tensor>& in) { return gather(in[0], 0, indices({0, 0, 0}, {3})); }, {draw({1})});
  }
  SUBCASE("an index out of range throws std::out_of_range naming gather") {
    test::check_throws_with([&] { (void)gather(x, 1, indices({5}, {1, 1, 1})); }, {"gather", "index 5", "size 5"});
    test::check_throws_with([&] { (void)gather(x, 0, indices({-1}, {1, 1, 1})); }, {"gather", "index -1"});
    CHECK_THROWS_AS((void)gather(x, 2, indices({0, 3}, {1, 1, 2})), std::out_of_range);
  }
  SUBCASE("misuse: index dtype, rank, size, dim") {
    test::check_throws_with([&] { (void)gather(x, 1, ones({1, 1, 1})); }, {"gather", "int64", "float32"});
    test::check_throws_with([&] { (void)gather(x, 1, indices({0}, {1})); }, {"gather", "[1]", "[4, 5, 3]"});
    test::check_throws_with([&] { (void)gather(x, 1, zeros({5, 1, 1}, {DType::Int64})); }, {"gather", "[5, 1, 1]", "[4, 5, 3]"});
    test::check_throws_with([&] { (void)gather(x, 3, zeros({1, 1, 1}, {DType::Int64})); }, {"gather", "dim 3"});
  }
}

TEST_CASE("scatter_add") {
  const Tensor self = draw({4, 5, 3}, -1, 1, 13);
  SUBCASE("every dim, repeated indices, src larger than index, layouts; self unchanged") {
    for (int64_t dim : {0, 1, 2}) {
      INFO("dim " << dim);
      Shape ishape{3, 4, 2};
      ishape[size_t(dim)] = 6;
      const Tensor index = random_indices(self.size(dim), ishape, 14 + uint64_t(dim));
      const Tensor src = draw({6, 6, 6}, -1, 1, 15);  // >= index in every dim
      const Tensor expect = reference_scatter_add(self, dim, index, src);
      const std::vector<double> before = test::values(self);
      check_close(scatter_add(self, dim, index, src), expect, 1e-15, 1e-15, "contiguous");
      CHECK(test::values(self) == before);  // out-of-place
      check_close(scatter_add(test::noncontiguous(self), dim, transposed_layout(index), test::noncontiguous(src)), expect,
                  1e-15, 1e-15, "layouts");
      check_close(scatter_add(self.to(DType::Float32), dim, index, src.to(DType::Float32)),
                  reference_scatter_add(self.to(DType::Float32), dim, index, src.to(DType::Float32)), 1e-6, 1e-6,
                  "float32");
      check_close(scatter_add(zeros({4, 5, 3}, {DType::Int64}), dim, index, ones({6, 6, 6}, {DType::Int64})),
                  reference_scatter_add(zeros({4, 5, 3}, {DType::Int64}), dim, index, ones({6, 6, 6}, {DType::Int64})), 0, 0,
                  "int64 counts");
    }
  }
  SUBCASE("gradients: d self = dout, d src = gather of dout (0 where src is not read)") {
    const Tensor index = indices({0, 2, 2, 1, 3, 3}, {2, 3});
    Tensor ls = draw({2, 5}).requires_grad_(), lsrc = draw({3, 4}, -1, 1, 16).requires_grad_();
    const Tensor w = draw({2, 5}, -1, 1, 17);
    scatter_add(ls, 1, index, lsrc).backward(w);
    check_close(ls.grad(), w, 0, 0);
    std::vector<double> dsrc(12, 0.0);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t j = 0; j < 3; ++j) dsrc[size_t(r * 4 + j)] = test::at(w, r * 5 + int64_t(test::at(index, r * 3 + j)));
    check_close(lsrc.grad(), from_vector(dsrc, {3, 4}), 0, 0);
    for (int64_t dim : {0, 1, 2}) {
      Shape ishape{2, 3, 2};
      ishape[size_t(dim)] = 5;
      const Tensor index3 = random_indices(self.size(dim), ishape, 18 + uint64_t(dim));
      gradcheck([&](const std::vector<Tensor>& in) { return scatter_add(in[0], dim, index3, in[1]); },
                {test::noncontiguous(self), transposed_layout(draw({5, 5, 5}, -1, 1, 19))});
    }
  }
  SUBCASE("an index out of range throws std::out_of_range naming scatter_add") {
    test::check_throws_with([&] { (void)scatter_add(self, 0, indices({4}, {1, 1, 1}), draw({1, 1, 1})); },
                            {"scatter_add", "index 4", "size 4"});
    CHECK_THROWS_AS((void)scatter_add(self, 2, indices({-2}, {1, 1, 1}), draw({1, 1, 1})), std::out_of_range);
  }
  SUBCASE("misuse: src dtype, index larger than src") {
    test::check_throws_with([&] { (void)scatter_add(self, 0, zeros({1, 1, 1}, {DType::Int64}), ones({1, 1, 1})); },
                            {"scatter_add", "float64", "float32"});
    test::check_throws_with([&] { (void)scatter_add(self, 0, zeros({2, 1, 1}, {DType::Int64}), draw({1, 1, 1})); },
                            {"scatter_add", "[2, 1, 1]", "[1, 1, 1]"});
    test::check_throws_with([&] { (void)scatter_add(self, 0, zeros({1, 6, 1}, {DType::Int64}), draw({1, 6, 1})); },
                            {"scatter_add", "[1, 6, 1]", "[4, 5, 3]"});
  }
}

// ---------------------------------------------------------------- index_select, index_add

TEST_CASE("index_select") {
  const Tensor x = draw({4, 3, 5}, -1, 1, 20);
  SUBCASE("every dim against a loop; repeated, empty and strided indices") {
    for (int64_t dim : {0, 1, 2, -1}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      INFO("dim " << dim);
      const Tensor idx = random_indices(x.size(d), {7}, 21 + uint64_t(d));
      Shape out_shape = x.shape();
      out_shape[size_t(d)] = 7;
      std::vector<double> expect;
      for (int64_t e = 0; e < numel_of(out_shape); ++e) {
        Shape i = unravel(e, out_shape);
        i[size_t(d)] = int64_t(test::at(idx, i[size_t(d)]));
        expect.push_back(test::at(x, ravel(i, x.shape())));
      }
      const Tensor ref = from_vector(expect, out_shape);
      check_close(index_select(x, dim, idx), ref, 0, 0, "contiguous");
      check_close(index_select(transposed_layout(x), dim, test::noncontiguous(idx)), ref, 0, 0, "layouts");
      check_close(index_select(x.to(DType::Float32), dim, idx), ref.to(DType::Float32), 0, 0, "float32");
      check_close(index_select(x.to(DType::UInt8), dim, idx), ref.to(DType::UInt8), 0, 0, "uint8");
    }
    CHECK(index_select(x, 1, zeros({0}, {DType::Int64})).shape() == Shape{4, 0, 5});
  }
  SUBCASE("gradient: index_add of dout; repeated indices accumulate") {
    const Tensor idx = indices({2, 0, 2, 2}, {4});
    Tensor leaf = draw({3, 2}).requires_grad_();
    const Tensor w = draw({4, 2}, -1, 1, 22);
    index_select(leaf, 0, idx).backward(w);
    const std::vector<double> g = test::values(leaf.grad());
    CHECK(g[4] == doctest::Approx(test::at(w, 0) + test::at(w, 4) + test::at(w, 6)));
    CHECK(g[0] == test::at(w, 2));
    CHECK(g[2] == 0.0);
    for (int64_t dim : {0, 1, 2})
      gradcheck([&](const std::vector<Tensor>& in) { return index_select(in[0], dim, random_indices(x.size(dim), {5}, 23)); },
                {test::noncontiguous(x)});
  }
  SUBCASE("an index out of range throws std::out_of_range naming index_select") {
    test::check_throws_with([&] { (void)index_select(x, 0, indices({1, 4}, {2})); }, {"index_select", "index 4", "size 4"});
    test::check_throws_with([&] { (void)index_select(x, 2, indices({-1}, {1})); }, {"index_select", "index -1"});
    CHECK_THROWS_AS((void)index_select(x, 1, indices({3}, {1})), std::out_of_range);
  }
  SUBCASE("misuse: 2-d or float index") {
    test::check_throws_with([&] { (void)index_select(x, 0, indices({0, 1}, {1, 2})); }, {"index_select", "1-d", "[1, 2]"});
    test::check_throws_with([&] { (void)index_select(x, 0, ones({2})); }, {"index_select", "int64", "float32"});
  }
}

TEST_CASE("index_add") {
  const Tensor self = draw({4, 3, 5}, -1, 1, 24);
  SUBCASE("every dim against a loop; repeated indices accumulate; self unchanged") {
    for (int64_t dim : {0, 1, 2}) {
      INFO("dim " << dim);
      const Tensor idx = random_indices(self.size(dim), {6}, 25 + uint64_t(dim));
      Shape src_shape = self.shape();
      src_shape[size_t(dim)] = 6;
      const Tensor src = draw(src_shape, -1, 1, 26);
      std::vector<double> expect = test::values(self);
      for (int64_t e = 0; e < src.numel(); ++e) {
        Shape i = unravel(e, src_shape);
        i[size_t(dim)] = int64_t(test::at(idx, i[size_t(dim)]));
        expect[size_t(ravel(i, self.shape()))] += test::at(src, e);
      }
      const Tensor ref = from_vector(expect, self.shape());
      const std::vector<double> before = test::values(self);
      check_close(index_add(self, dim, idx, src), ref, 1e-15, 1e-15, "contiguous");
      CHECK(test::values(self) == before);
      check_close(index_add(test::noncontiguous(self), dim, test::noncontiguous(idx), transposed_layout(src)), ref, 1e-15,
                  1e-15, "layouts");
      check_close(index_add(self.to(DType::Float32), dim, idx, src.to(DType::Float32)), ref, 1e-6, 1e-5, "float32");
    }
  }
  SUBCASE("gradients: d self = dout, d src = index_select of dout") {
    const Tensor idx = indices({1, 1, 0}, {3});
    Tensor ls = draw({2, 3}).requires_grad_(), lsrc = draw({3, 3}, -1, 1, 27).requires_grad_();
    const Tensor w = draw({2, 3}, -1, 1, 28);
    index_add(ls, 0, idx, lsrc).backward(w);
    check_close(ls.grad(), w, 0, 0);
    check_close(lsrc.grad(), stack({w.select(0, 1), w.select(0, 1), w.select(0, 0)}, 0), 0, 0);
    for (int64_t dim : {0, 1, 2}) {
      Shape src_shape = self.shape();
      src_shape[size_t(dim)] = 4;
      const Tensor idx4 = random_indices(self.size(dim), {4}, 29 + uint64_t(dim));
      gradcheck([&](const std::vector<Tensor>& in) { return index_add(in[0], dim, idx4, in[1]); },
                {transposed_layout(self), test::noncontiguous(draw(src_shape, -1, 1, 30))});
    }
  }
  SUBCASE("an index out of range throws std::out_of_range naming index_add") {
    test::check_throws_with([&] { (void)index_add(self, 1, indices({3}, {1}), draw({4, 1, 5})); },
                            {"index_add", "index 3", "size 3"});
    CHECK_THROWS_AS((void)index_add(self, 0, indices({-1}, {1}), draw({1, 3, 5})), std::out_of_range);
  }
  SUBCASE("misuse: src shape, src dtype, index rank") {
    test::check_throws_with([&] { (void)index_add(self, 0, indices({0, 1}, {2}), draw({3, 3, 5})); },
                            {"index_add", "[2, 3, 5]", "[3, 3, 5]"});
    test::check_throws_with([&] { (void)index_add(self, 0, indices({0}, {1}), ones({1, 3, 5})); },
                            {"index_add", "float64", "float32"});
    test::check_throws_with([&] { (void)index_add(self, 0, indices({0}, {1, 1}), draw({1, 3, 5})); }, {"index_add", "1-d"});
  }
}

TEST_CASE("index ops give the same bits on 1 and 2 threads") {
  const int saved = num_threads();
  const Tensor x = draw({200, 300}, -1, 1, 31).to(DType::Float32);
  const Tensor index = random_indices(300, {200, 500}, 32);
  const Tensor idx = random_indices(200, {400}, 33);
  const Tensor src = draw({200, 500}, -1, 1, 34).to(DType::Float32);
  auto run = [&] {
    return std::vector<std::vector<double>>{test::values(gather(x, 1, index)),
                                            test::values(scatter_add(x, 1, index, src)),
                                            test::values(index_add(x, 0, idx, draw({400, 300}, -1, 1, 35).to(DType::Float32))),
                                            test::values(concat({x, x.t().contiguous().t()}, 1))};
  };
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
}

TEST_CASE("concat and index ops have a CUDA slot that answers clearly") {
  for (Op op : {Op::concat, Op::gather, Op::scatter_add, Op::index_select, Op::index_add}) {
    INFO("op " << std::string(op_name(op)));
    CHECK(supports(op, Device::cpu()));
    if (!supports(op, Device::cuda()))
      test::check_throws_with([&] { check_supported(op, Device::cuda()); }, {op_name(op), "CUDA"});
  }
}

// ---------------------------------------------------------------- on the GPU
//
// The device kernels against the CPU ones (tests/cuda_compare.h), forward and gradient, with
// the index tensors as constant inputs. Every tolerance is 0: gather, index_select and concat
// only move values, and scatter_add / index_add add the same values in the same order as the
// CPU kernels (ascending position along dim, Note [deterministic scatter] in
// ops/cuda/index.cu), so the results are the same bits. Shapes are odd (3 x 5 x 7), indices
// longer than the indexed dim so that they repeat.

namespace {

constexpr test::DeviceTolerance kExact{.atol = 0, .rtol = 0};

// The layouts each case runs in: as made, and non-contiguous (every other element of a
// larger buffer) or reversed in memory.
enum class Layout { contiguous, strided, transposed };
Tensor in_layout(const Tensor& t, Layout layout) {
  switch (layout) {
    case Layout::contiguous: return t;
    case Layout::strided: return test::noncontiguous(t);
    case Layout::transposed: return transposed_layout(t);
  }
  return t;
}
constexpr Layout kLayouts[] = {Layout::contiguous, Layout::strided, Layout::transposed};

// The values and bits of a tensor, on the host, for an exact comparison.
std::vector<unsigned char> bytes_of(const Tensor& t) {
  const Tensor host = t.to(Device::cpu()).contiguous();
  std::vector<unsigned char> b(host.nbytes());
  if (!b.empty()) std::memcpy(b.data(), host.raw_data(), b.size());
  return b;
}

}  // namespace

TEST_CASE("gather: cuda matches cpu" * doctest::test_suite("cuda")) {
  auto f = [](int64_t dim) {
    return [dim](const std::vector<Tensor>& in) { return gather(in[0], dim, in[1]); };
  };
  SUBCASE("every dim, repeated indices, index smaller than x, every layout, float32 and float64") {
    const Tensor x = draw({3, 5, 7}, -1, 1, 40);
    for (int64_t dim : {0, 1, 2}) {
      Shape ishape{2, 4, 6};
      ishape[size_t(dim)] = 9;  // longer than x along dim: indices repeat
      const Tensor index = random_indices(x.size(dim), ishape, 41 + uint64_t(dim));
      for (Layout lx : kLayouts)
        for (Layout li : kLayouts) {
          INFO("dim " << dim << ", layouts " << int(lx) << " " << int(li));
          test::compare_devices("gather", f(dim), {in_layout(x, lx), in_layout(index, li)}, kExact, {1});
        }
      test::compare_devices("gather float32", f(dim), {x.to(DType::Float32), index}, kExact, {1});
      test::compare_devices("gather int64", f(dim), {mul(x, 10.0).to(DType::Int64), index}, kExact, {1});
      test::compare_devices("gather uint8", f(dim), {mul(add(x, 1.0), 100.0).to(DType::UInt8), index}, kExact, {1});
    }
  }
  SUBCASE("size-1 dims, batch 1, empty index") {
    const Tensor x = draw({1, 5, 1}, -1, 1, 42);
    test::compare_devices("size-1 dims", f(1), {x, random_indices(5, {1, 8, 1}, 43)}, kExact, {1});
    test::compare_devices("batch 1", f(2), {draw({1, 3, 7}), random_indices(7, {1, 3, 11}, 44)}, kExact, {1});
    test::compare_devices("empty along dim", f(1), {x, zeros({1, 0, 1}, {DType::Int64})}, kExact, {1});
    test::compare_devices("empty elsewhere", f(0), {draw({3, 5, 7}), zeros({2, 0, 3}, {DType::Int64})}, kExact, {1});
  }
}

TEST_CASE("scatter_add: cuda matches cpu" * doctest::test_suite("cuda")) {
  auto f = [](int64_t dim) {
    return [dim](const std::vector<Tensor>& in) { return scatter_add(in[0], dim, in[1], in[2]); };
  };
  SUBCASE("every dim, repeated indices, src larger than index, every layout, float32 and float64, int64") {
    const Tensor self = draw({3, 5, 7}, -1, 1, 45);
    for (int64_t dim : {0, 1, 2}) {
      Shape ishape{2, 4, 6};
      ishape[size_t(dim)] = 9;
      const Tensor index = random_indices(self.size(dim), ishape, 46 + uint64_t(dim));
      Shape src_shape = ishape;
      for (int64_t& s : src_shape) ++s;  // larger than index: the unread part gets gradient 0
      const Tensor src = draw(src_shape, -1, 1, 47);
      for (Layout l : kLayouts)
        for (Layout li : kLayouts) {
          INFO("dim " << dim << ", layouts " << int(l) << " " << int(li));
          test::compare_devices("scatter_add", f(dim), {in_layout(self, l), in_layout(index, li), in_layout(src, l)},
                                kExact, {1});
        }
      test::compare_devices("scatter_add float32", f(dim), {self.to(DType::Float32), index, src.to(DType::Float32)},
                            kExact, {1});
      test::compare_devices("scatter_add int64", f(dim),
                            {zeros({3, 5, 7}, {DType::Int64}), index, ones(src_shape, {DType::Int64})}, kExact, {1});
    }
  }
  SUBCASE("size-1 dims, batch 1, empty index") {
    test::compare_devices("size-1 dims", f(1), {draw({1, 5, 1}), random_indices(5, {1, 9, 1}, 48), draw({1, 9, 1})},
                          kExact, {1});
    test::compare_devices("batch 1", f(0), {draw({1, 3, 7}), zeros({4, 3, 7}, {DType::Int64}), draw({4, 3, 7})}, kExact,
                          {1});
    test::compare_devices("empty along dim", f(2), {draw({3, 5, 7}), zeros({3, 5, 0}, {DType::Int64}), draw({3, 5, 2})},
                          kExact, {1});
    test::compare_devices("empty elsewhere", f(1), {draw({3, 5, 7}), zeros({0, 4, 7}, {DType::Int64}), draw({1, 4, 7})},
                          kExact, {1});
  }
}

TEST_CASE("index_select: cuda matches cpu" * doctest::test_suite("cuda")) {
  auto f = [](int64_t dim) {
    return [dim](const std::vector<Tensor>& in) { return index_select(in[0], dim, in[1]); };
  };
  const Tensor x = draw({3, 5, 7}, -1, 1, 49);
  SUBCASE("every dim, repeated indices, every layout, dtypes") {
    for (int64_t dim : {0, 1, 2, -1}) {
      const Tensor idx = random_indices(x.size(dim), {9}, 50 + uint64_t(dim + 1));
      for (Layout lx : kLayouts)
        for (Layout li : {Layout::contiguous, Layout::strided}) {
          INFO("dim " << dim << ", layouts " << int(lx) << " " << int(li));
          test::compare_devices("index_select", f(dim), {in_layout(x, lx), in_layout(idx, li)}, kExact, {1});
        }
      test::compare_devices("index_select float32", f(dim), {x.to(DType::Float32), idx}, kExact, {1});
      test::compare_devices("index_select uint8", f(dim), {mul(add(x, 1.0), 100.0).to(DType::UInt8), idx}, kExact, {1});
    }
  }
  SUBCASE("size-1 dims, batch 1, empty index") {
    test::compare_devices("size-1 dims", f(0), {draw({1, 1, 7}), zeros({5}, {DType::Int64})}, kExact, {1});
    test::compare_devices("batch 1", f(1), {draw({1, 5, 7}), random_indices(5, {3}, 51)}, kExact, {1});
    test::compare_devices("empty index", f(1), {x, zeros({0}, {DType::Int64})}, kExact, {1});
  }
}

TEST_CASE("index_add: cuda matches cpu" * doctest::test_suite("cuda")) {
  auto f = [](int64_t dim) {
    return [dim](const std::vector<Tensor>& in) { return index_add(in[0], dim, in[1], in[2]); };
  };
  const Tensor self = draw({3, 5, 7}, -1, 1, 52);
  SUBCASE("every dim, repeated indices, every layout, float32, int64") {
    for (int64_t dim : {0, 1, 2}) {
      const Tensor idx = random_indices(self.size(dim), {9}, 53 + uint64_t(dim));
      Shape src_shape = self.shape();
      src_shape[size_t(dim)] = 9;
      const Tensor src = draw(src_shape, -1, 1, 54);
      for (Layout l : kLayouts)
        for (Layout li : {Layout::contiguous, Layout::strided}) {
          INFO("dim " << dim << ", layouts " << int(l) << " " << int(li));
          test::compare_devices("index_add", f(dim), {in_layout(self, l), in_layout(idx, li), in_layout(src, l)}, kExact,
                                {1});
        }
      test::compare_devices("index_add float32", f(dim), {self.to(DType::Float32), idx, src.to(DType::Float32)}, kExact,
                            {1});
      test::compare_devices("index_add int64", f(dim),
                            {zeros({3, 5, 7}, {DType::Int64}), idx, ones(src_shape, {DType::Int64})}, kExact, {1});
    }
  }
  SUBCASE("size-1 dims, batch 1, empty index") {
    test::compare_devices("size-1 dims", f(2), {draw({1, 5, 1}), zeros({6}, {DType::Int64}), draw({1, 5, 6})}, kExact, {1});
    test::compare_devices("batch 1", f(0), {draw({1, 5, 7}), zeros({4}, {DType::Int64}), draw({4, 5, 7})}, kExact, {1});
    test::compare_devices("empty index", f(1), {self, zeros({0}, {DType::Int64}), draw({3, 0, 7})}, kExact, {1});
  }
}

TEST_CASE("index ops on cuda: an index out of range throws std::out_of_range naming the op, the dim and its size" *
          doctest::test_suite("cuda")) {
  const Device gpu = test::cuda_device();
  const Tensor x = draw({3, 5, 7}).to(gpu);
  auto idx = [&](const std::vector<int64_t>& v, const Shape& shape) { return indices(v, shape).to(gpu); };
  test::check_throws_with([&] { (void)gather(x, 1, idx({0, 5, 1}, {1, 3, 1})); },
                          {"gather", "index 5", "dim 1", "size 5"});
  test::check_throws_with([&] { (void)gather(x, 2, idx({-1}, {1, 1, 1})); }, {"gather", "index -1", "dim 2", "size 7"});
  test::check_throws_with([&] { (void)scatter_add(x, 0, idx({3}, {1, 1, 1}), draw({1, 1, 1}).to(gpu)); },
                          {"scatter_add", "index 3", "dim 0", "size 3"});
  test::check_throws_with([&] { (void)index_select(x, 2, idx({0, 6, 7, -2}, {4})); },
                          {"index_select", "index 7", "dim 2", "size 7"});  // the first bad value in order
  test::check_throws_with([&] { (void)index_add(x, 1, idx({-5}, {1}), draw({3, 1, 7}).to(gpu)); },
                          {"index_add", "index -5", "dim 1", "size 5"});
  // A strided index: the check reads it through its strides (the 9s are the gaps between).
  const Tensor strided = idx({0, 9, 4, 9, 5, 9}, {3, 2}).select(1, 0);
  test::check_throws_with([&] { (void)index_select(x, 1, strided); }, {"index_select", "index 5", "size 5"});
  CHECK_THROWS_AS((void)gather(x, 0, idx({7}, {1, 1, 1})), std::out_of_range);
  CHECK_THROWS_AS((void)index_add(x, 0, idx({-1}, {1}), draw({1, 5, 7}).to(gpu)), std::out_of_range);
  // The error word is reset by the next check: a good call after a bad one succeeds.
  test::check_close(index_select(x, 1, idx({4, 0}, {2})), index_select(x.to(Device::cpu()), 1, indices({4, 0}, {2})), 0,
                    0, "after an error");
}

TEST_CASE("concat: cuda matches cpu" * doctest::test_suite("cuda")) {
  const int64_t part_sizes[] = {2, 1, 4, 3};  // along dim; odd shapes around it
  SUBCASE("1 to 4 inputs of different sizes along every dim, every layout, dtypes") {
    for (int64_t dim : {0, 1, 2, -1}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      for (size_t count = 1; count <= 4; ++count) {
        std::vector<Tensor> parts;
        for (size_t i = 0; i < count; ++i) {
          Shape s{3, 5, 7};
          s[size_t(d)] = part_sizes[i];
          parts.push_back(draw(s, -1, 1, 60 + i));
        }
        auto f = [dim](const std::vector<Tensor>& in) { return concat(in, dim); };
        for (Layout l : kLayouts) {
          INFO("dim " << dim << ", " << count << " inputs, layout " << int(l));
          std::vector<Tensor> laid;
          for (size_t i = 0; i < count; ++i) laid.push_back(i % 2 ? in_layout(parts[i], l) : parts[i]);
          test::compare_devices("concat", f, laid, kExact);
        }
        std::vector<Tensor> f32, i64, u8;
        for (const Tensor& p : parts) {
          f32.push_back(p.to(DType::Float32));
          i64.push_back(mul(p, 100.0).to(DType::Int64));
          u8.push_back(mul(add(p, 1.0), 100.0).to(DType::UInt8));
        }
        test::compare_devices("concat float32", f, f32, kExact);
        test::compare_devices("concat int64", f, i64, kExact);
        test::compare_devices("concat uint8", f, u8, kExact);
      }
    }
  }
  SUBCASE("empty inputs, an expanded input, size-1 dims, batch 1, many inputs") {
    auto cat = [](int64_t dim) { return [dim](const std::vector<Tensor>& in) { return concat(in, dim); }; };
    test::compare_devices("empty input between", cat(1), {draw({3, 2, 7}), zeros({3, 0, 7}, {DType::Float64}), draw({3, 5, 7})},
                          kExact);
    test::compare_devices("all empty along dim", cat(0), {zeros({0, 5}, {DType::Float64}), zeros({0, 5}, {DType::Float64})},
                          kExact);
    test::compare_devices("empty elsewhere", cat(1), {zeros({0, 2}, {DType::Float64}), zeros({0, 3}, {DType::Float64})},
                          kExact);
    // Stride 0 along dim 0, made on each device. Held constant: its gradient is expand's (a
    // sum), not concat's.
    test::compare_devices("expanded input",
                          [](const std::vector<Tensor>& in) { return concat({in[0].expand({4, 7}), in[1]}, 0); },
                          {draw({1, 7}), draw({2, 7})}, kExact, {0});
    test::compare_devices("size-1 dims", cat(1), {draw({1, 1, 1}), draw({1, 3, 1}), draw({1, 1, 1})}, kExact);
    test::compare_devices("batch 1", cat(0), {draw({1, 5, 7}), draw({1, 5, 7}, -1, 1, 61)}, kExact);
    // More inputs than one launch takes (ops/cuda/concat.cu does them in batches).
    std::vector<Tensor> many;
    for (int i = 0; i < 37; ++i) many.push_back(draw({3, 1 + i % 3, 5}, -1, 1, 70 + uint64_t(i)));
    many[5] = transposed_layout(many[5]);
    many[20] = zeros({3, 0, 5}, {DType::Float64});
    test::compare_devices("37 inputs", cat(1), many, kExact);
  }
}

TEST_CASE("scatter_add and index_add on cuda give the same bits on every run" * doctest::test_suite("cuda")) {
  // Float32 sums of 300 values into each of 8 slots: any change in the order of the
  // additions would show in the last bits.
  const Device gpu = test::cuda_device();
  const Tensor self = draw({8, 129}, -1, 1, 80).to(DType::Float32);
  const Tensor index = random_indices(8, {300, 129}, 81);
  const Tensor src = draw({300, 129}, -1, 1, 82).to(DType::Float32);
  const Tensor idx = random_indices(8, {300}, 83);
  const Tensor self_g = self.to(gpu), index_g = index.to(gpu), src_g = src.to(gpu), idx_g = idx.to(gpu);
  const auto scatter1 = bytes_of(scatter_add(self_g, 0, index_g, src_g));
  const auto scatter2 = bytes_of(scatter_add(self_g, 0, index_g, src_g));
  CHECK(scatter1 == scatter2);
  CHECK(scatter1 == bytes_of(scatter_add(self, 0, index, src)));  // and the CPU's order
  const auto add1 = bytes_of(index_add(self_g, 0, idx_g, src_g));
  const auto add2 = bytes_of(index_add(self_g, 0, idx_g, src_g));
  CHECK(add1 == add2);
  CHECK(add1 == bytes_of(index_add(self, 0, idx, src)));
}
