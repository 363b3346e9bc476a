// test_views.cpp - view ops (view, reshape, permute, transpose, t, narrow, select, expand,
// unsqueeze, squeeze, flatten), copy_ and fill_.
//
// Each view is checked three ways: its values against an index map written here (the
// source is arange, so a value names the source element it came from), storage sharing
// (a write through the view lands in the base at the mapped place), and its gradient
// (finite differences in float64, on contiguous and strided inputs and size-1 dims).
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "tests/test_util.h"

using namespace mila;
using test::at;
using test::check_throws_with;
using test::gradcheck;
using test::set_at;
using test::uniform;
using test::values;
using V = std::vector<Tensor>;
using Index = std::vector<int64_t>;

namespace {

Index unravel(int64_t e, const Shape& shape) {
  Index idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = e % shape[d];
    e /= shape[d];
  }
  return idx;
}

int64_t ravel(const Index& idx, const Shape& shape) {
  int64_t e = 0;
  for (size_t d = 0; d < shape.size(); ++d) e = e * shape[d] + idx[d];
  return e;
}

// 0, 1, 2, ... in float64 with the given shape (contiguous): the value of an element is
// its row-major position.
Tensor iota(const Shape& shape) { return arange(0, double(numel_of(shape)), 1, {DType::Float64}).reshape(shape); }

// Checks a view of `base` (an iota tensor or a view of one) element by element:
// out[idx] must be the base element at map(idx) (an index into base's shape), and writing
// through out must change exactly that base element.
void check_view(const Tensor& out, const Tensor& base, const Shape& expected_shape,
                const std::function<Index(const Index&)>& map) {
  REQUIRE(shape_str(out.shape()) == shape_str(expected_shape));
  CHECK(out.storage() == base.storage());
  for (int64_t e = 0; e < out.numel(); ++e) {
    const Index src = map(unravel(e, out.shape()));
    const int64_t b = ravel(src, base.shape());
    if (at(out, e) != at(base, b)) {
      FAIL_CHECK("element " << e << " of " << shape_str(out.shape()) << ": got " << at(out, e) << ", expected "
                            << at(base, b));
      return;
    }
  }
  // Storage sharing: write a marker through the view and find it in the base.
  if (out.numel() > 0) {
    const int64_t e = out.numel() / 2;
    const int64_t b = ravel(map(unravel(e, out.shape())), base.shape());
    const double old = at(base, b);
    set_at(out, e, -1000.0);
    CHECK(at(base, b) == -1000.0);
    set_at(base, b, old);
  }
}

}  // namespace

// ---------------------------------------------------------------- view and reshape
TEST_CASE("view: same row-major order, shared storage, -1 inferred") {
  const Tensor x = iota({2, 3, 4});
  for (const Shape& target : {Shape{24}, Shape{4, 6}, Shape{2, 12}, Shape{1, 24, 1}, Shape{2, 3, 2, 2}, Shape{-1},
                              Shape{3, -1}, Shape{-1, 2, 3}, Shape{2, 1, -1, 1}}) {
    CAPTURE(shape_str(target));
    Shape resolved = target;
    int64_t known = 1;
    for (int64_t d : target)
      if (d != -1) known *= d;
    for (int64_t& d : resolved)
      if (d == -1) d = 24 / known;
    const Tensor v = x.view(target);
    check_view(v, x, resolved, [&](const Index& i) { return unravel(ravel(i, resolved), x.shape()); });
    CHECK(v.is_contiguous());
    const Tensor r = x.reshape(target);
    CHECK(r.storage() == x.storage());
    CHECK(r.shape() == resolved);
  }
  // 0-d <-> one element.
  const Tensor s = scalar_tensor(5, {DType::Float64});
  CHECK(s.view({1, 1}).shape() == Shape{1, 1});
  CHECK(s.view({1, 1}).storage() == s.storage());
  CHECK(ones({1, 1}).view({}).dim() == 0);
  CHECK(ones({1}).reshape({}).item() == 1);
  // Empty tensors reshape among empty shapes.
  CHECK(zeros({0, 3}).view({3, 0}).shape() == Shape{3, 0});
  CHECK(zeros({0, 3}).reshape({-1, 3}).shape() == Shape{0, 3});
}

TEST_CASE("view of strided tensors: allowed when dims merge or split within contiguous runs") {
  const Tensor x = iota({4, 6, 5});
  SUBCASE("a leading narrow can flatten its trailing dims") {
    const Tensor n = x.narrow(0, 1, 2);  // [2, 6, 5], offset 30
    const Tensor v = n.view({2, 30});
    check_view(v, x, {2, 30}, [](const Index& i) { return Index{1 + i[0], i[1] / 5, i[1] % 5}; });
  }
  SUBCASE("a narrow in the middle keeps the dims around it separate") {
    const Tensor n = x.narrow(1, 2, 3);  // [4, 3, 5]: rows of 5 stay contiguous, dims 0 and 1 don't merge
    const Tensor v = n.view({4, 3, 5, 1});
    check_view(v, x, {4, 3, 5, 1}, [](const Index& i) { return Index{i[0], 2 + i[1], i[2]}; });
    const Tensor split = n.view({2, 2, 3, 5});  // splitting dim 0 is fine
    check_view(split, x, {2, 2, 3, 5}, [](const Index& i) { return Index{i[0] * 2 + i[1], 2 + i[2], i[3]}; });
    check_throws_with([&] { (void)n.view({60}); }, {"view", "[4, 3, 5]", "reshape"});
    check_throws_with([&] { (void)n.view({12, 5}); }, {"view", "[4, 3, 5]"});
  }
  SUBCASE("a transposed tensor can split or keep dims but not merge them") {
    const Tensor t = x.transpose(0, 2);  // [5, 6, 4]
    const Tensor v = t.view({5, 2, 3, 4});
    check_view(v, x, {5, 2, 3, 4}, [](const Index& i) { return Index{i[3], i[1] * 3 + i[2], i[0]}; });
    check_throws_with([&] { (void)t.view({30, 4}); }, {"view", "[5, 6, 4]", "use reshape"});
    check_throws_with([&] { (void)t.view({-1}); }, {"view", "[5, 6, 4]"});
  }
  SUBCASE("expanded dims cannot be flattened by a view") {
    const Tensor e = tensor({1, 2, 3}, {DType::Float64}).expand({2, 3});
    check_throws_with([&] { (void)e.view({6}); }, {"view", "[2, 3]"});
    const Tensor r = e.reshape({6});  // reshape copies instead
    CHECK(values(r) == std::vector<double>{1, 2, 3, 1, 2, 3});
    CHECK(r.storage() != e.storage());
    CHECK(e.view({2, 1, 3}).shape() == Shape{2, 1, 3});  // adding a size-1 dim is fine
  }
}

TEST_CASE("reshape of a non-viewable tensor copies, in row-major order of the input") {
  const Tensor x = iota({3, 4, 5});
  for (const Shape& perm : {Shape{2, 0, 1}, Shape{1, 0, 2}, Shape{0, 2, 1}, Shape{2, 1, 0}}) {
    CAPTURE(shape_str(perm));
    const Tensor p = x.permute(perm);
    const Tensor r = p.reshape({-1});
    CHECK(r.storage() != x.storage());
    CHECK(r.is_contiguous());
    CHECK(values(r) == values(p));  // test::values walks p through its strides
    const Tensor r2 = p.reshape({6, 10});
    CHECK(values(r2) == values(p));
    // The copy is independent of the base.
    set_at(r, 0, -5);
    CHECK(at(x, 0) == 0);
  }
  const Tensor nc = test::noncontiguous(iota({2, 3}));
  CHECK(values(nc.reshape({3, 2})) == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK(values(nc.flatten()) == std::vector<double>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("view and reshape errors name the op and the shapes") {
  const Tensor x = iota({2, 3, 4});
  check_throws_with([&] { (void)x.view({5, 5}); }, {"view", "[5, 5]", "[2, 3, 4]"});
  check_throws_with([&] { (void)x.reshape({5, -1}); }, {"reshape", "[2, 3, 4]"});
  check_throws_with([&] { (void)x.reshape({-1, -1}); }, {"reshape", "only one dimension can be -1"});
  check_throws_with([&] { (void)x.view({-2, 12}); }, {"view", "[-2, 12]"});
  check_throws_with([&] { (void)x.reshape({0, -1}); }, {"reshape", "[0, -1]"});
  check_throws_with([&] { (void)x.reshape({25}); }, {"reshape", "[25]", "24 elements"});
}

// ---------------------------------------------------------------- permute, transpose, t
TEST_CASE("permute: values follow the index map, negative dims, errors") {
  const Tensor x = iota({2, 3, 4, 5});
  const Shape xs = x.shape();
  for (Shape perm : {Shape{0, 1, 2, 3}, Shape{3, 2, 1, 0}, Shape{1, 3, 0, 2}, Shape{2, 0, 3, 1}, Shape{-1, 0, -2, 1}}) {
    CAPTURE(shape_str(perm));
    Shape p = perm;
    for (int64_t& d : p)
      if (d < 0) d += 4;
    const Tensor y = x.permute(perm);
    const Shape expected{xs[p[0]], xs[p[1]], xs[p[2]], xs[p[3]]};
    check_view(y, x, expected, [&](const Index& i) {
      Index src(4);
      for (size_t k = 0; k < 4; ++k) src[p[k]] = i[k];
      return src;
    });
    for (size_t k = 0; k < 4; ++k) CHECK(y.stride(int64_t(k)) == x.stride(p[k]));
    // The inverse permutation gives back the original layout.
    Shape inv(4);
    for (size_t k = 0; k < 4; ++k) inv[p[k]] = int64_t(k);
    CHECK(y.permute(inv).strides() == x.strides());
  }
  CHECK(scalar_tensor(1).permute({}).dim() == 0);
  check_throws_with([&] { (void)x.permute({0, 1, 2}); }, {"permute", "[0, 1, 2]", "[2, 3, 4, 5]"});
  check_throws_with([&] { (void)x.permute({0, 1, 1, 3}); }, {"permute", "repeated", "[2, 3, 4, 5]"});
  check_throws_with([&] { (void)x.permute({0, 1, 2, 4}); }, {"permute", "dim 4", "[2, 3, 4, 5]"});
  check_throws_with([&] { (void)x.permute({0, 1, 2, -5}); }, {"permute", "dim -5", "[2, 3, 4, 5]"});
}

TEST_CASE("transpose and t") {
  const Tensor x = iota({3, 4, 2});
  check_view(x.transpose(0, 2), x, {2, 4, 3}, [](const Index& i) { return Index{i[2], i[1], i[0]}; });
  check_view(x.transpose(-1, 1), x, {3, 2, 4}, [](const Index& i) { return Index{i[0], i[2], i[1]}; });
  check_view(x.transpose(1, 1), x, {3, 4, 2}, [](const Index& i) { return i; });
  const Tensor m = iota({3, 5});
  check_view(m.t(), m, {5, 3}, [](const Index& i) { return Index{i[1], i[0]}; });
  CHECK(m.t().t().strides() == m.strides());
  // As torch.t: 1-d and 0-d tensors come back as they are.
  const Tensor v = iota({4});
  check_view(v.t(), v, {4}, [](const Index& i) { return i; });
  CHECK(scalar_tensor(2).t().dim() == 0);
  check_throws_with([&] { (void)x.t(); }, {"t:", "[3, 4, 2]"});
  check_throws_with([&] { (void)x.transpose(0, 3); }, {"transpose", "dim 3", "[3, 4, 2]"});
  check_throws_with([&] { (void)x.transpose(-4, 0); }, {"transpose", "dim -4", "[3, 4, 2]"});
}

// ---------------------------------------------------------------- narrow, select
TEST_CASE("narrow: a slice along one dim, negative start, empty slices, errors") {
  const Tensor x = iota({4, 5, 3});
  check_view(x.narrow(1, 1, 3), x, {4, 3, 3}, [](const Index& i) { return Index{i[0], 1 + i[1], i[2]}; });
  check_view(x.narrow(0, 2, 2), x, {2, 5, 3}, [](const Index& i) { return Index{2 + i[0], i[1], i[2]}; });
  check_view(x.narrow(-1, 2, 1), x, {4, 5, 1}, [](const Index& i) { return Index{i[0], i[1], 2}; });
  check_view(x.narrow(1, -2, 2), x, {4, 2, 3}, [](const Index& i) { return Index{i[0], 3 + i[1], i[2]}; });
  CHECK(x.narrow(1, 5, 0).numel() == 0);
  CHECK(x.narrow(1, 5, 0).shape() == Shape{4, 0, 3});
  // Narrow of a narrow of a transpose: offsets and strides compose.
  const Tensor t = x.transpose(0, 2).narrow(0, 1, 2).narrow(2, 1, 2);  // [2, 5, 2]
  check_view(t, x, {2, 5, 2}, [](const Index& i) { return Index{1 + i[2], i[1], 1 + i[0]}; });
  check_throws_with([&] { (void)x.narrow(1, 3, 3); }, {"narrow", "[4, 5, 3]"});
  check_throws_with([&] { (void)x.narrow(1, -6, 1); }, {"narrow", "[4, 5, 3]"});
  check_throws_with([&] { (void)x.narrow(0, 0, -1); }, {"narrow", "[4, 5, 3]"});
  check_throws_with([&] { (void)x.narrow(3, 0, 1); }, {"narrow", "dim 3", "[4, 5, 3]"});
}

TEST_CASE("select: drops a dim, negative index, 0-d results, errors") {
  const Tensor x = iota({3, 4, 2});
  check_view(x.select(0, 1), x, {4, 2}, [](const Index& i) { return Index{1, i[0], i[1]}; });
  check_view(x.select(1, -1), x, {3, 2}, [](const Index& i) { return Index{i[0], 3, i[1]}; });
  check_view(x.select(-1, 0), x, {3, 4}, [](const Index& i) { return Index{i[0], i[1], 0}; });
  check_view(x.select(2, 1).select(0, 2), x, {4}, [](const Index& i) { return Index{2, i[0], 1}; });
  const Tensor s = x.select(0, 2).select(0, 3).select(0, -2);
  CHECK(s.dim() == 0);
  CHECK(s.item() == 2 * 8 + 3 * 2 + 0);
  check_throws_with([&] { (void)x.select(1, 4); }, {"select", "index 4", "[3, 4, 2]"});
  check_throws_with([&] { (void)x.select(1, -5); }, {"select", "index -5", "[3, 4, 2]"});
  check_throws_with([&] { (void)x.select(3, 0); }, {"select", "dim 3", "[3, 4, 2]"});
  check_throws_with([] { (void)scalar_tensor(1).select(0, 0); }, {"select", "[]"});
}

// ---------------------------------------------------------------- expand
TEST_CASE("expand: size-1 dims repeat with stride 0, -1 keeps a dim, new leading dims") {
  const Tensor c = iota({3, 1});
  const Tensor e = c.expand({3, 4});
  check_view(e, c, {3, 4}, [](const Index& i) { return Index{i[0], 0}; });
  CHECK(e.stride(1) == 0);
  CHECK(e.stride(0) == c.stride(0));
  check_view(c.expand({-1, 5}), c, {3, 5}, [](const Index& i) { return Index{i[0], 0}; });
  const Tensor lead = c.expand({2, 2, 3, 2});
  check_view(lead, c, {2, 2, 3, 2}, [](const Index& i) { return Index{i[2], 0}; });
  CHECK(lead.stride(0) == 0);
  CHECK(lead.stride(1) == 0);
  const Tensor s = scalar_tensor(7, {DType::Float64}).expand({2, 3});
  CHECK(s.strides() == Shape{0, 0});
  CHECK(values(s) == std::vector<double>(6, 7));
  CHECK(c.expand({3, 0}).numel() == 0);
  // Writing the base shows through every repeated element.
  set_at(c, 1, 42);
  for (int64_t j = 0; j < 4; ++j) CHECK(at(e, 4 + j) == 42);
  check_throws_with([&] { (void)c.expand({4, 4}); }, {"expand", "[3, 1]", "[4, 4]"});
  check_throws_with([&] { (void)c.expand({4}); }, {"expand", "[3, 1]", "[4]"});
  check_throws_with([&] { (void)c.expand({-1, 3, 4}); }, {"expand", "[-1, 3, 4]"});
  check_throws_with([&] { (void)c.expand({3, -2}); }, {"expand", "[3, -2]"});
}

// ---------------------------------------------------------------- unsqueeze, squeeze, flatten
TEST_CASE("unsqueeze and squeeze") {
  const Tensor x = iota({2, 3});
  check_view(x.unsqueeze(0), x, {1, 2, 3}, [](const Index& i) { return Index{i[1], i[2]}; });
  check_view(x.unsqueeze(1), x, {2, 1, 3}, [](const Index& i) { return Index{i[0], i[2]}; });
  check_view(x.unsqueeze(2), x, {2, 3, 1}, [](const Index& i) { return Index{i[0], i[1]}; });
  check_view(x.unsqueeze(-1), x, {2, 3, 1}, [](const Index& i) { return Index{i[0], i[1]}; });
  check_view(x.unsqueeze(-3), x, {1, 2, 3}, [](const Index& i) { return Index{i[1], i[2]}; });
  CHECK(x.unsqueeze(1).is_contiguous());
  CHECK(x.t().unsqueeze(0).squeeze(0).strides() == x.t().strides());
  CHECK(scalar_tensor(1).unsqueeze(0).shape() == Shape{1});
  check_throws_with([&] { (void)x.unsqueeze(3); }, {"unsqueeze", "dim 3", "[2, 3]"});
  check_throws_with([&] { (void)x.unsqueeze(-4); }, {"unsqueeze", "dim -4", "[2, 3]"});

  const Tensor y = iota({1, 3, 1, 2});
  check_view(y.squeeze(), y, {3, 2}, [](const Index& i) { return Index{0, i[0], 0, i[1]}; });
  check_view(y.squeeze(0), y, {3, 1, 2}, [](const Index& i) { return Index{0, i[0], i[1], i[2]}; });
  check_view(y.squeeze(-2), y, {1, 3, 2}, [](const Index& i) { return Index{i[0], i[1], 0, i[2]}; });
  check_view(y.squeeze(1), y, {1, 3, 1, 2}, [](const Index& i) { return i; });  // not size 1: unchanged
  CHECK(ones({1, 1}).squeeze().dim() == 0);
  check_throws_with([&] { (void)y.squeeze(4); }, {"squeeze", "dim 4", "[1, 3, 1, 2]"});
}

TEST_CASE("flatten") {
  const Tensor x = iota({2, 3, 4, 5});
  check_view(x.flatten(), x, {120}, [&](const Index& i) { return unravel(i[0], x.shape()); });
  check_view(x.flatten(1), x, {2, 60}, [&](const Index& i) {
    const Index r = unravel(i[1], {3, 4, 5});
    return Index{i[0], r[0], r[1], r[2]};
  });
  check_view(x.flatten(1, 2), x, {2, 12, 5}, [](const Index& i) { return Index{i[0], i[1] / 4, i[1] % 4, i[2]}; });
  check_view(x.flatten(-2, -1), x, {2, 3, 20}, [](const Index& i) { return Index{i[0], i[1], i[2] / 5, i[2] % 5}; });
  check_view(x.flatten(2, 2), x, {2, 3, 4, 5}, [](const Index& i) { return i; });
  CHECK(scalar_tensor(3).flatten().shape() == Shape{1});
  // A strided input is copied in row-major order of its view.
  const Tensor p = x.permute({3, 1, 0, 2});
  const Tensor f = p.flatten();
  CHECK(f.storage() != x.storage());
  CHECK(values(f) == values(p));
  check_throws_with([&] { (void)x.flatten(2, 1); }, {"flatten", "start_dim"});
  check_throws_with([&] { (void)x.flatten(0, 4); }, {"flatten", "dim 4", "[2, 3, 4, 5]"});
  check_throws_with([&] { (void)x.flatten(-5); }, {"flatten", "dim -5", "[2, 3, 4, 5]"});
}

TEST_CASE("views of views keep the storage and compose offsets") {
  const Tensor x = iota({4, 6, 5});
  const Tensor v = x.permute({2, 0, 1}).narrow(1, 1, 3).select(2, 4).unsqueeze(0).expand({2, 5, 3}).transpose(1, 2);
  // v[a, b, c] = x[1 + b, 4, c]
  check_view(v, x, {2, 3, 5}, [](const Index& i) { return Index{1 + i[1], 4, i[2]}; });
  const Tensor d = x.detach();
  CHECK(d.storage() == x.storage());
  CHECK(d.strides() == x.strides());
  CHECK_FALSE(d.is_same(x));
}

// ---------------------------------------------------------------- gradients of views
TEST_CASE("every view op passes a gradient check, on contiguous and strided inputs") {
  const Tensor x = uniform({2, 3, 4});
  const Tensor xs = test::noncontiguous(x);  // same values, strided
  const Tensor xt = uniform({4, 3, 2}).permute({2, 1, 0});  // [2, 3, 4] transposed layout
  for (const Tensor& in : {x, xs, xt}) {
    CAPTURE(shape_str(in.strides()));
    gradcheck([](const V& v) { return v[0].reshape({4, 6}); }, {in});
    gradcheck([](const V& v) { return v[0].reshape({-1}); }, {in});
    gradcheck([](const V& v) { return v[0].permute({2, 0, 1}); }, {in});
    gradcheck([](const V& v) { return v[0].transpose(0, 2); }, {in});
    gradcheck([](const V& v) { return v[0].narrow(2, 1, 2); }, {in});
    gradcheck([](const V& v) { return v[0].narrow(0, -1, 1); }, {in});
    gradcheck([](const V& v) { return v[0].select(1, -1); }, {in});
    gradcheck([](const V& v) { return v[0].select(0, 0); }, {in});
    gradcheck([](const V& v) { return v[0].unsqueeze(1); }, {in});
    gradcheck([](const V& v) { return v[0].flatten(1); }, {in});
    gradcheck([](const V& v) { return v[0].flatten(); }, {in});
    gradcheck([](const V& v) { return v[0].select(2, 3).t(); }, {in});
    gradcheck([](const V& v) { return v[0].narrow(1, 1, 1).expand({5, 2, 3, 4}); }, {in});
    gradcheck([](const V& v) { return v[0].contiguous(); }, {in});
    gradcheck([](const V& v) { return v[0].clone(); }, {in});
  }
  gradcheck([](const V& v) { return v[0].view({6, 4}); }, {x});
  gradcheck([](const V& v) { return v[0].view({2, 3, 2, 2}); }, {xs});  // a split is a view of strided input
}

TEST_CASE("view gradients with size-1 dims, batch 1, 0-d and 1-d inputs") {
  gradcheck([](const V& v) { return v[0].squeeze(); }, {uniform({1, 3, 1})});
  gradcheck([](const V& v) { return v[0].squeeze(0); }, {uniform({1, 4})});
  gradcheck([](const V& v) { return v[0].squeeze(1); }, {uniform({1, 4})});  // no-op squeeze
  gradcheck([](const V& v) { return v[0].unsqueeze(0).unsqueeze(-1); }, {uniform({3})});
  gradcheck([](const V& v) { return v[0].expand({3, 2, 5}); }, {uniform({2, 1})});
  gradcheck([](const V& v) { return v[0].expand({4, -1}); }, {uniform({1, 3})});
  gradcheck([](const V& v) { return v[0].expand({2, 3}); }, {uniform({})});
  gradcheck([](const V& v) { return v[0].expand({2, 1, 3}); }, {test::noncontiguous(uniform({1, 3}))});
  gradcheck([](const V& v) { return v[0].reshape({1, 1}); }, {uniform({})});
  gradcheck([](const V& v) { return v[0].reshape({}); }, {uniform({1, 1})});
  gradcheck([](const V& v) { return v[0].flatten(); }, {uniform({})});
  gradcheck([](const V& v) { return v[0].t(); }, {uniform({5})});
  gradcheck([](const V& v) { return v[0].t(); }, {uniform({1, 5})});
  gradcheck([](const V& v) { return v[0].permute({1, 0, 2}); }, {uniform({1, 1, 3})});
  gradcheck([](const V& v) { return v[0].select(0, 0).flatten(); }, {uniform({1, 2, 2})});  // batch 1
  gradcheck([](const V& v) { return v[0].narrow(0, 0, 1).view({3}); }, {uniform({1, 3})});
  gradcheck([](const V& v) { return v[0].select(0, 0); }, {uniform({1})});
}

TEST_CASE("overlapping views of one input: gradients add up") {
  // f = x[0:2] + 2 * x[1:3] + x.t().t(): element 1 gets 1 + 2 + 1.
  gradcheck(
      [](const V& v) {
        return add(add(v[0].narrow(0, 0, 2), mul(v[0].narrow(0, 1, 2), 2.0)), v[0].t().t().narrow(0, 1, 2));
      },
      {uniform({3, 2})});
  Tensor x = zeros({3}, {DType::Float64}).requires_grad_();
  sum(add(add(x.narrow(0, 0, 2), mul(x.narrow(0, 1, 2), 2.0)), x.select(0, 1).expand({2}))).backward();
  CHECK(values(x.grad()) == std::vector<double>{1, 1 + 2 + 2, 2});
  Tensor y = zeros({2, 1}, {DType::Float64}).requires_grad_();
  sum(y.expand({2, 3}).unsqueeze(0).expand({4, 2, 3})).backward();
  CHECK(y.grad().shape() == Shape{2, 1});
  CHECK(values(y.grad()) == std::vector<double>{12, 12});
}

// ---------------------------------------------------------------- copy_ and fill_
TEST_CASE("copy_: broadcasting, strided destinations and sources, dtype conversion") {
  SUBCASE("broadcast sources") {
    const Tensor row = tensor({1, 2, 3}, {DType::Float64});
    const Tensor col = from_vector(std::vector<double>{10, 20}, {2, 1});
    Tensor d = zeros({2, 3}, {DType::Float64});
    copy_(d, row);
    CHECK(values(d) == std::vector<double>{1, 2, 3, 1, 2, 3});
    copy_(d, col);
    CHECK(values(d) == std::vector<double>{10, 10, 10, 20, 20, 20});
    copy_(d, scalar_tensor(-1, {DType::Float64}));
    CHECK(values(d) == std::vector<double>(6, -1));
    Tensor d3 = zeros({4, 2, 3}, {DType::Float64});
    copy_(d3, col);
    for (int64_t e = 0; e < 24; ++e) CHECK(at(d3, e) == (e % 6 < 3 ? 10 : 20));
  }
  SUBCASE("into a strided view: only the view's elements change") {
    Tensor base = iota({4, 5});
    const Tensor dst = base.t().narrow(0, 1, 3);  // [3, 4]: columns 1..3 of base
    copy_(dst, from_vector(std::vector<double>{-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12}, {3, 4}));
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t c = 0; c < 5; ++c) {
        const double expected = (c >= 1 && c <= 3) ? -double((c - 1) * 4 + r + 1) : double(r * 5 + c);
        CHECK(at(base, r * 5 + c) == expected);
      }
  }
  SUBCASE("from a strided source, large enough for the parallel path") {
    const Tensor src = uniform({300, 401}).permute({1, 0});  // [401, 300], strided
    Tensor dst = empty({401, 300}, {DType::Float64});
    copy_(dst, src);
    CHECK(values(dst) == values(src));
    Tensor dst2 = zeros({300, 401}, {DType::Float64}).t();  // strided destination too
    copy_(dst2, src);
    CHECK(values(dst2) == values(src));
  }
  SUBCASE("dtype conversion on the way") {
    Tensor i = zeros({4}, {DType::Int64});
    copy_(i, tensor({-2.5, -0.5, 0.9, 7.99}, {DType::Float64}));
    CHECK(values(i) == std::vector<double>{-2, 0, 0, 7});
    Tensor f = zeros({2, 2});
    copy_(f, from_vector(std::vector<uint8_t>{1, 255}, {2}));
    CHECK(values(f) == std::vector<double>{1, 255, 1, 255});
    Tensor u = zeros({3}, {DType::UInt8});
    copy_(u, tensor({-1, 256, 513}, {DType::Int64}));
    CHECK(values(u) == std::vector<double>{255, 0, 1});
    Tensor h = zeros({2}, {DType::Float32});
    copy_(h, tensor({0.1, 1e-50}, {DType::Float64}));
    CHECK(at(h, 0) == double(0.1f));
    CHECK(at(h, 1) == 0.0);
  }
  SUBCASE("0-d and empty") {
    Tensor s = scalar_tensor(0, {DType::Float64});
    copy_(s, ones({1, 1}, {DType::Float64}).reshape({}));
    CHECK(s.item() == 1);
    Tensor e = zeros({0, 3});
    copy_(e, ones({3}));
    CHECK(e.numel() == 0);
  }
  SUBCASE("errors") {
    Tensor d = zeros({2, 3});
    check_throws_with([&] { copy_(d, zeros({4})); }, {"copy_", "[4]", "[2, 3]"});
    check_throws_with([&] { copy_(d, zeros({2, 2, 3})); }, {"copy_", "[2, 2, 3]", "[2, 3]"});
    check_throws_with([&] { copy_(d.narrow(1, 0, 1), zeros({2, 3})); }, {"copy_", "[2, 3]", "[2, 1]"});
    // An expanded destination names one element many times: refused, as in PyTorch.
    check_throws_with([&] { copy_(zeros({1, 3}).expand({4, 3}), ones({4, 3})); }, {"copy_", "[4, 3]", "expanded"});
  }
}

TEST_CASE("copy_ does not record gradients; clone and to() do") {
  Tensor x = uniform({2, 3}).requires_grad_();
  Tensor d = zeros({2, 3}, {DType::Float64});
  copy_(d, x);
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  CHECK(values(d) == values(x));
  CHECK(x.clone().grad_fn() != nullptr);
  CHECK(x.to(DType::Float32).grad_fn() != nullptr);
}

TEST_CASE("fill_: every element of any view, converted to the dtype") {
  Tensor base = iota({3, 4});
  fill_(base.narrow(1, 1, 2), 9);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c) CHECK(at(base, r * 4 + c) == ((c == 1 || c == 2) ? 9 : double(r * 4 + c)));
  fill_(base.t().select(0, 3), -1);  // column 3
  for (int64_t r = 0; r < 3; ++r) CHECK(at(base, r * 4 + 3) == -1);
  CHECK(at(base, 0) == 0);
  Tensor s = scalar_tensor(0);
  fill_(s, 2.5);
  CHECK(s.item() == 2.5);
  Tensor i = zeros({5}, {DType::Int64});
  fill_(i, -3.7);
  CHECK(values(i) == std::vector<double>(5, -3));
  Tensor u = zeros({2}, {DType::UInt8});
  fill_(u, -1);
  CHECK(values(u) == std::vector<double>(2, 255));
  Tensor big = zeros({400, 300}, {DType::Float64});
  fill_(big.narrow(0, 50, 200).t(), 4);  // 60000 elements: the parallel path, strided
  const std::vector<double> bv = values(big);
  int64_t bad = 0;
  for (int64_t e = 0; e < 120000; ++e) bad += bv[size_t(e)] != ((e / 300 >= 50 && e / 300 < 250) ? 4.0 : 0.0);
  CHECK(bad == 0);
  fill_(zeros({0}), 1);  // nothing to do, no error
  check_throws_with([] { fill_(zeros({3, 1}).expand({3, 2}), 1); }, {"fill_", "[3, 2]", "expanded"});
}
