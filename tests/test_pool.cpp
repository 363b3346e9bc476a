// test_pool.cpp - max_pool2d, avg_pool2d, adaptive_avg_pool2d (ops/pool.h) against plain
// loops written here from PyTorch's definitions, edge cases, gradient checks, misuse.
//
// Shape legend: x [N, C, H, W], out [N, C, OH, OW].
//
// Tolerances. Max pooling copies values: exact. Averages sum in double in the kernel and
// in the loops: float64 within a few ulp (1e-12), float32 within one rounding of the
// result (rtol 1e-6). gradcheck: max pooling is piecewise linear (uniform random inputs
// have no ties closer than the 1e-6 step, so no kink is crossed), averages are linear:
// central differences are exact up to rounding, atol 1e-6 is ample.
#include <cmath>
#include <limits>
#include <vector>

#include "ops/pool.h"
#include "test_util.h"

using namespace mila;
using namespace mila::test;

namespace {

struct Geometry {
  int64_t k, s, p, d = 1;
  bool ceil_mode = false;
};

// Output size along one axis, from PyTorch's documentation of MaxPool2d / AvgPool2d:
// floor or ceil of (in + 2p - d (k - 1) - 1) / s, plus 1; in ceil mode a window that would
// start in the right padding is dropped.
int64_t out_size(int64_t in, const Geometry& g) {
  const double span = double(in + 2 * g.p - g.d * (g.k - 1) - 1) / double(g.s);
  int64_t out = int64_t(g.ceil_mode ? std::ceil(span) : std::floor(span)) + 1;
  if (g.ceil_mode && (out - 1) * g.s >= in + g.p) --out;
  return out;
}

// max over the in-map taps of each window (padding is -inf); the first maximum on ties.
Tensor max_pool_reference(const Tensor& x, const Geometry& g) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out_size(H, g), OW = out_size(W, g);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double best = -std::numeric_limits<double>::infinity();
          for (int64_t i = 0; i < g.k; ++i)
            for (int64_t j = 0; j < g.k; ++j) {
              const int64_t h = oh * g.s - g.p + i * g.d, w = ow * g.s - g.p + j * g.d;
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              best = std::max(best, at(x, ((n * C + c) * H + h) * W + w));
            }
          out.push_back(best);
        }
  return from_vector(out, {N, C, OH, OW});
}

// PyTorch's avg_pool2d: the sum of the in-map values over the divisor, which with
// count_include_pad is the window's size clipped to the padded map, else the in-map count.
Tensor avg_pool_reference(const Tensor& x, const Geometry& g, bool count_include_pad) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out_size(H, g), OW = out_size(W, g);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double total = 0;
          int64_t inside = 0, padded = 0;
          for (int64_t i = 0; i < g.k; ++i)
            for (int64_t j = 0; j < g.k; ++j) {
              const int64_t h = oh * g.s - g.p + i, w = ow * g.s - g.p + j;
              if (h < H + g.p && w < W + g.p) ++padded;  // h, w >= -p always holds
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              total += at(x, ((n * C + c) * H + h) * W + w);
              ++inside;
            }
          out.push_back(inside == 0 ? 0.0 : total / double(count_include_pad ? padded : inside));
        }
  return from_vector(out, {N, C, OH, OW});
}

// Bin i of `out` bins over `in` values: [floor(i in / out), ceil((i + 1) in / out)).
Tensor adaptive_reference(const Tensor& x, int64_t OH, int64_t OW) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t h0 = int64_t(std::floor(double(oh * H) / double(OH))), h1 = int64_t(std::ceil(double((oh + 1) * H) / double(OH)));
          const int64_t w0 = int64_t(std::floor(double(ow * W) / double(OW))), w1 = int64_t(std::ceil(double((ow + 1) * W) / double(OW)));
          double total = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) total += at(x, ((n * C + c) * H + h) * W + w);
          out.push_back(total / double((h1 - h0) * (w1 - w0)));
        }
  return from_vector(out, {N, C, OH, OW});
}

double atol_of(DType t) { return t == DType::Float32 ? 1e-6 : 1e-12; }

}  // namespace

TEST_CASE("max_pool2d against loops") {
  const std::vector<std::pair<Shape, Geometry>> cases = {
      {{2, 3, 9, 11}, {3, 2, 1}},                  // the ResNet stem's pool
      {{1, 2, 8, 7}, {2, 2, 0}},                   // batch 1, non-overlapping
      {{2, 2, 6, 7}, {3, 2, 0, 1, true}},          // ceil_mode: a partial last window
      {{1, 1, 5, 5}, {2, 2, 1, 1, true}},          // ceil_mode drops a window starting in the padding
      {{2, 3, 10, 9}, {3, 1, 1, 2}},               // dilation 2
      {{1, 2, 2, 3}, {5, 2, 2}},                   // window larger than the map, with padding
      {{1, 1, 1, 1}, {1, 1, 0}},
  };
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const auto& entry : cases) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
      const auto& shape = entry.first;
      const auto& g = entry.second;
      INFO("dtype " << dtype_name(dtype));
      CAPTURE(shape_str(shape));
      CAPTURE(g.k);
      const Tensor x = uniform(shape, -1, 1, dtype);
      const Tensor out = max_pool2d(x, g.k, g.s, g.p, g.d, g.ceil_mode);
      check_close(out, max_pool_reference(x, g), 0, 0);
      check_close(max_pool2d(noncontiguous(x), g.k, g.s, g.p, g.d, g.ceil_mode), out, 0, 0, "non-contiguous");
    }
  // The ceil_mode drop rule: 5 + 2 * 1 padding, kernel 2, stride 2 gives 3 windows, not 4.
  CHECK(max_pool2d(uniform({1, 1, 5, 5}), 2, 2, 1, 1, true).size(2) == 3);
  // A 3-d input is one image; rectangular kernels.
  const Tensor x3 = uniform({3, 6, 8});
  check_close(max_pool2d(x3, {2, 3}, {2, 3}), max_pool2d(x3.unsqueeze(0), {2, 3}, {2, 3}).squeeze(0), 0, 0, "3-d");
  // NaN propagates (PyTorch: val > max || isnan(val)).
  Tensor xn = uniform({1, 1, 4, 4});
  set_at(xn, 5, std::nan(""));
  const Tensor yn = max_pool2d(xn, 2, 2);
  CHECK(std::isnan(at(yn, 0)));
  CHECK(!std::isnan(at(yn, 1)));
}

TEST_CASE("max_pool2d gradients") {
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 2, 1); }, {noncontiguous(uniform({2, 3, 7, 9}))});
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 1, 1, 2, true); }, {uniform({1, 2, 7, 6})});
  gradcheck([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 5, 2, 2); }, {uniform({1, 1, 2, 3})});
  // Overlapping windows that pick one input twice add its gradients.
  Tensor x = from_vector(std::vector<double>{0, 0, 0, 0, 9, 0, 0, 0, 0}, {1, 1, 3, 3}).requires_grad_();
  max_pool2d(x, 2, 1).backward(ones({1, 1, 2, 2}, {DType::Float64}));
  CHECK(at(x.grad(), 4) == 4.0);
  CHECK(sum(x.grad()).item<double>() == 4.0);
}

TEST_CASE("avg_pool2d against loops") {
  const std::vector<std::pair<Shape, Geometry>> cases = {
      {{2, 3, 9, 11}, {3, 2, 1}},
      {{1, 2, 8, 7}, {2, 2, 0}},
      {{2, 2, 6, 7}, {3, 2, 1, 1, true}},   // ceil_mode: the last window hangs past the padding
      {{1, 1, 5, 5}, {2, 2, 1, 1, true}},
      {{1, 2, 2, 3}, {5, 2, 2}},            // window larger than the map, with padding
      {{1, 2, 2, 3}, {5, 3, 2, 1, true}},
  };
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const auto& entry : cases)  // not a structured binding: clang 14 cannot capture one in INFO's lambda
      for (bool include_pad : {true, false}) {
        const auto& shape = entry.first;
        const auto& g = entry.second;
        INFO("dtype " << dtype_name(dtype));
        CAPTURE(shape_str(shape));
        CAPTURE(g.k);
        CAPTURE(include_pad);
        const Tensor x = uniform(shape, -1, 1, dtype);
        const Tensor out = avg_pool2d(noncontiguous(x), g.k, g.s, g.p, g.ceil_mode, include_pad);
        check_close(out, avg_pool_reference(x, g, include_pad), atol_of(dtype), 1e-6);
      }
}

TEST_CASE("avg_pool2d gradients") {
  for (bool include_pad : {true, false}) {
    CAPTURE(include_pad);
    gradcheck([&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, 2, 1, false, include_pad); },
              {noncontiguous(uniform({2, 3, 7, 9}))});
    gradcheck([&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 3, 2, 1, true, include_pad); },
              {uniform({1, 2, 6, 7})});
    gradcheck([&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], 5, 2, 2, true, include_pad); },
              {uniform({1, 1, 2, 3})});
  }
}

TEST_CASE("adaptive_avg_pool2d against loops") {
  const std::vector<std::pair<Shape, std::pair<int64_t, int64_t>>> cases = {
      {{2, 5, 7, 9}, {1, 1}},   // global average: the SE block's squeeze
      {{2, 3, 7, 9}, {3, 4}},   // overlapping, unequal bins
      {{1, 2, 6, 8}, {3, 4}},   // even division
      {{1, 2, 3, 4}, {5, 7}},   // more outputs than inputs: bins of one value, repeated
      {{1, 1, 1, 1}, {1, 1}},
  };
  for (DType dtype : {DType::Float32, DType::Float64})
    for (const auto& entry : cases) {  // not a structured binding: clang 14 cannot capture one in INFO's lambda
      const auto& shape = entry.first;
      const auto& size = entry.second;
      INFO("dtype " << dtype_name(dtype));
      CAPTURE(shape_str(shape));
      const Tensor x = uniform(shape, -1, 1, dtype);
      check_close(adaptive_avg_pool2d(noncontiguous(x), size.first, size.second),
                  adaptive_reference(x, size.first, size.second), atol_of(dtype), 1e-6);
    }
  // The 1x1 case is the mean over H, W.
  const Tensor x = uniform({2, 4, 5, 6});
  check_close(adaptive_avg_pool2d(x, 1, 1), mean(x, {2, 3}, true), 1e-14, 1e-14, "global mean");
}

TEST_CASE("adaptive_avg_pool2d gradients") {
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 1, 1); }, {noncontiguous(uniform({2, 3, 5, 7}))});
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 3, 4); }, {uniform({1, 2, 7, 9})});
  gradcheck([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 5, 3); }, {uniform({1, 1, 3, 2})});
}

TEST_CASE("pooling misuse names the op and the shapes") {
  const Tensor x = uniform({1, 2, 6, 6});
  check_throws_with([&] { (void)max_pool2d(x, 3, 2, 2); },
                    {"max_pool2d", "pad should be smaller than or equal to half of kernel size", "[1, 2, 6, 6]"});
  check_throws_with([&] { (void)avg_pool2d(x, 2, 2, 2); }, {"avg_pool2d", "half of kernel size", "[1, 2, 6, 6]"});
  check_throws_with([&] { (void)max_pool2d(x, 7, 1); }, {"max_pool2d", "too small", "[1, 2, 6, 6]"});
  check_throws_with([&] { (void)max_pool2d(x, 3, 0); }, {"max_pool2d", "stride", "[1, 2, 6, 6]"});
  check_throws_with([&] { (void)max_pool2d(uniform({6, 6}), 2, 2); }, {"max_pool2d", "[6, 6]"});
  check_throws_with([&] { (void)adaptive_avg_pool2d(x, 0, 2); }, {"adaptive_avg_pool2d", "[1, 2, 6, 6]"});
  check_throws_with([&] { (void)avg_pool2d(zeros({1, 1, 4, 4}, {DType::Int64}), 2, 2); }, {"avg_pool2d", "int64"});
}
