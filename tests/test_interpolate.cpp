// test_interpolate.cpp - interpolate_bilinear (ops/interpolate.h) against plain loops
// written here from PyTorch's align_corners=False definition, forward and backward;
// gradient checks; thread-count invariance of the backward; misuse.
//
// Shape legend: x [N, C, H, W] -> out [N, C, OH, OW].
//
// Tolerances. The reference computes source coordinates and weights in double; the kernel
// computes them in the tensor's dtype, as PyTorch does. float64: a few ulp (1e-12).
// float32: weights differ by ~1e-7 relative, values are in [-1, 1], the output is a convex
// combination (|out| <= 1) and a gradient sums at most (in / out + 2)^2 weighted terms of
// size <= 1: atol 1e-5 covers both. gradcheck: the op is linear, central differences are
// exact up to rounding.
#include <cmath>
#include <vector>

#include "ops/threads.h"
#include "ops/interpolate.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

// One axis: output o reads i0 with weight l0 and i1 with weight l1 (PyTorch, align_corners=False).
struct Tap {
  int64_t i0, i1;
  double l0, l1;
};
Tap tap(int64_t o, int64_t in, int64_t out) {
  const double src = std::max((double(o) + 0.5) * double(in) / double(out) - 0.5, 0.0);
  const int64_t i0 = std::min(int64_t(std::floor(src)), in - 1);
  const int64_t i1 = std::min(i0 + 1, in - 1);
  const double l1 = src - double(i0);
  return {i0, i1, 1 - l1, l1};
}

Tensor bilinear_reference(const Tensor& x, int64_t OH, int64_t OW) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> out;
  for (int64_t plane = 0; plane < N * C; ++plane)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Tap r = tap(oh, H, OH), c = tap(ow, W, OW);
        auto v = [&](int64_t h, int64_t w) { return at(x, (plane * H + h) * W + w); };
        out.push_back(r.l0 * (c.l0 * v(r.i0, c.i0) + c.l1 * v(r.i0, c.i1)) +
                      r.l1 * (c.l0 * v(r.i1, c.i0) + c.l1 * v(r.i1, c.i1)));
      }
  return from_vector(out, {N, C, OH, OW});
}

// The backward as the scatter it is: each output sends weight * dout to its four sources.
Tensor bilinear_backward_reference(const Tensor& dout, int64_t H, int64_t W) {
  const int64_t N = dout.size(0), C = dout.size(1), OH = dout.size(2), OW = dout.size(3);
  std::vector<double> dx(size_t(N * C * H * W), 0.0);
  for (int64_t plane = 0; plane < N * C; ++plane)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const Tap r = tap(oh, H, OH), c = tap(ow, W, OW);
        const double g = at(dout, (plane * OH + oh) * OW + ow);
        dx[size_t((plane * H + r.i0) * W + c.i0)] += r.l0 * c.l0 * g;
        dx[size_t((plane * H + r.i0) * W + c.i1)] += r.l0 * c.l1 * g;
        dx[size_t((plane * H + r.i1) * W + c.i0)] += r.l1 * c.l0 * g;
        dx[size_t((plane * H + r.i1) * W + c.i1)] += r.l1 * c.l1 * g;
      }
  return from_vector(dx, {N, C, H, W});
}

double atol_of(DType t) { return t == DType::Float32 ? 1e-5 : 1e-12; }

struct Resize {
  Shape in;
  int64_t OH, OW;
};
const std::vector<Resize> kResizes = {
    {{2, 3, 3, 4}, 24, 32},   // x8 up, as the heads' outputs
    {{1, 2, 13, 17}, 5, 6},   // down, batch 1
    {{2, 2, 5, 7}, 8, 11},    // non-integer scale
    {{1, 3, 1, 1}, 4, 5},     // 1x1 -> larger: a constant map
    {{2, 2, 7, 6}, 1, 1},     // larger -> 1x1: the centre
    {{1, 2, 6, 9}, 6, 9},     // same size: the identity
    {{1, 1, 4, 5}, 9, 3},     // up in one axis, down in the other
};

}  // namespace

TEST_CASE("interpolate_bilinear forward against loops") {
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const Resize& r : kResizes) {
      INFO("dtype " << dtype_name(dtype));
      CAPTURE(shape_str(r.in));
      CAPTURE(r.OH);
      CAPTURE(r.OW);
      const Tensor x = uniform(r.in, -1, 1, dtype);
      const Tensor out = interpolate_bilinear(x, r.OH, r.OW);
      check_close(out, bilinear_reference(x, r.OH, r.OW), atol_of(dtype), 1e-6);
      check_close(interpolate_bilinear(noncontiguous(x), r.OH, r.OW), out, 0, 0, "non-contiguous");
    }
  // Same size is exactly the input; 1x1 input is a constant map; an odd map's 1x1 is its centre.
  const Tensor x = uniform({1, 2, 6, 9}, -1, 1, DType::Float32);
  check_close(interpolate_bilinear(x, 6, 9), x, 0, 0, "identity");
  const Tensor one = uniform({1, 1, 1, 1}, -1, 1, DType::Float32);
  check_close(interpolate_bilinear(one, 3, 4), one.expand({1, 1, 3, 4}), 0, 0, "constant");
  const Tensor odd = uniform({1, 1, 7, 5});
  CHECK(at(interpolate_bilinear(odd, 1, 1), 0) == at(odd, 3 * 5 + 2));
}

TEST_CASE("interpolate_bilinear backward against loops") {
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const Resize& r : kResizes) {
      INFO("dtype " << dtype_name(dtype));
      CAPTURE(shape_str(r.in));
      CAPTURE(r.OH);
      CAPTURE(r.OW);
      Tensor x = uniform(r.in, -1, 1, dtype).requires_grad_();
      const Tensor dout = uniform({r.in[0], r.in[1], r.OH, r.OW}, -1, 1, dtype);
      interpolate_bilinear(x, r.OH, r.OW).backward(noncontiguous(dout));
      check_close(x.grad(), bilinear_backward_reference(dout, r.in[2], r.in[3]), atol_of(dtype), 1e-6);
    }
}

TEST_CASE("interpolate_bilinear gradients") {
  for (const Resize& r : kResizes) {
    CAPTURE(shape_str(r.in));
    CAPTURE(r.OH);
    CAPTURE(r.OW);
    gradcheck([&](const std::vector<Tensor>& in) { return interpolate_bilinear(in[0], r.OH, r.OW); },
              {noncontiguous(uniform(r.in))});
  }
}

TEST_CASE("interpolate_bilinear backward does not depend on the thread count") {
  const Tensor x = uniform({2, 9, 11, 13}, -1, 1, DType::Float32);
  const Tensor dout = uniform({2, 9, 88, 104}, -1, 1, DType::Float32);
  auto run = [&] {
    Tensor leaf = x.detach().clone().requires_grad_();
    const Tensor out = interpolate_bilinear(leaf, 88, 104);
    out.backward(dout);
    return std::make_pair(values(out), values(leaf.grad()));
  };
  const int threads = num_threads();
  set_num_threads(1);
  const auto one = run();
  set_num_threads(2);
  const auto two = run();
  set_num_threads(threads);
  CHECK(one.first == two.first);
  CHECK(one.second == two.second);  // bitwise
}

TEST_CASE("interpolate_bilinear misuse names the op and the shapes") {
  check_throws_with([] { (void)interpolate_bilinear(uniform({3, 4, 5}), 8, 8); }, {"interpolate_bilinear", "[3, 4, 5]"});
  check_throws_with([] { (void)interpolate_bilinear(uniform({1, 3, 4, 5}), 0, 8); },
                    {"interpolate_bilinear", "[1, 3, 4, 5]", "0x8"});
  check_throws_with([] { (void)interpolate_bilinear(zeros({1, 1, 2, 2}, {DType::UInt8}), 4, 4); },
                    {"interpolate_bilinear", "uint8"});
  check_throws_with([] { (void)interpolate_bilinear(uniform({1, 1, 0, 2}), 4, 4); }, {"interpolate_bilinear", "[1, 1, 0, 2]"});
}
