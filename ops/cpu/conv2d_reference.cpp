// conv2d_reference.cpp - conv2d and its two backward passes as plain loops, written from
// the formulas in ops/conv2d.h. Slow and obviously right: the oracle for the tests of the
// fast kernels in ops/cpu/conv2d.cpp. Sums run in double, in a fixed order, on one thread.
//
// Shape legend: x / dx [N, Cin, H, W], weight / dweight [Cout, Cg, kh, kw] with
// Cg = Cin / groups, out / dout [N, Cout, OH, OW]; Og = Cout / groups.
#include "ops/cpu/conv2d.h"

#include <vector>

namespace mila::cpu {
namespace {

// Calls f(c, i, j, cx, h, w) for every tap (c, i, j) of output channel o at output position
// (oh, ow) whose input position (h, w) is inside the map (taps in the padding read zero and
// are left out): c is the channel within o's group, cx = group * Cg + c the channel of x.
template <typename F>
void for_each_tap(const Conv2dGeometry& g, int64_t o, int64_t oh, int64_t ow, F&& f) {
  const int64_t Cg = g.cin_g(), group = o / g.cout_g();
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t h = oh * g.sh - g.ph + i * g.dh;
        const int64_t w = ow * g.sw - g.pw + j * g.dw;
        if (h < 0 || h >= g.H || w < 0 || w >= g.W) continue;  // zero padding
        f(c, i, j, group * Cg + c, h, w);
      }
}

}  // namespace

void conv2d_reference(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dGeometry& g) {
  dispatch_floating(x.dtype(), "conv2d_reference", [&]<typename T>() {
    const T* xp = x.data<T>();        // [N, Cin, H, W]
    const T* wp = weight.data<T>();   // [Cout, Cg, kh, kw]
    const T* bp = bias.defined() ? bias.data<T>() : nullptr;  // [Cout]
    T* op = out.data<T>();            // [N, Cout, OH, OW]
    const int64_t Cg = g.cin_g();
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.Cout; ++o)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            double acc = bp ? double(bp[o]) : 0.0;
            for_each_tap(g, o, oh, ow, [&](int64_t c, int64_t i, int64_t j, int64_t cx, int64_t h, int64_t w) {
              const double wv = wp[((o * Cg + c) * g.kh + i) * g.kw + j];
              acc += wv * double(xp[((n * g.Cin + cx) * g.H + h) * g.W + w]);
            });
            op[((n * g.Cout + o) * g.OH + oh) * g.OW + ow] = T(acc);
          }
  });
}

void conv2d_backward_input_reference(const Tensor& dx, const Tensor& dout, const Tensor& weight,
                                     const Conv2dGeometry& g) {
  dispatch_floating(dx.dtype(), "conv2d_backward_input_reference", [&]<typename T>() {
    const T* dop = dout.data<T>();   // [N, Cout, OH, OW]
    const T* wp = weight.data<T>();  // [Cout, Cg, kh, kw]
    T* dxp = dx.data<T>();           // [N, Cin, H, W]
    const int64_t Cg = g.cin_g();
    std::vector<double> acc(size_t(g.N * g.Cin * g.H * g.W), 0.0);
    // dx[n, cx, h, w] gathers weight * dout over every (o, tap) that read x[n, cx, h, w].
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.Cout; ++o)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            const double d = double(dop[((n * g.Cout + o) * g.OH + oh) * g.OW + ow]);
            for_each_tap(g, o, oh, ow, [&](int64_t c, int64_t i, int64_t j, int64_t cx, int64_t h, int64_t w) {
              const double wv = wp[((o * Cg + c) * g.kh + i) * g.kw + j];
              acc[size_t(((n * g.Cin + cx) * g.H + h) * g.W + w)] += wv * d;
            });
          }
    for (size_t e = 0; e < acc.size(); ++e) dxp[e] = T(acc[e]);
  });
}

void conv2d_backward_weight_reference(const Tensor& dweight, const Tensor& dout, const Tensor& x,
                                      const Conv2dGeometry& g) {
  dispatch_floating(dweight.dtype(), "conv2d_backward_weight_reference", [&]<typename T>() {
    const T* dop = dout.data<T>();  // [N, Cout, OH, OW]
    const T* xp = x.data<T>();      // [N, Cin, H, W]
    T* dwp = dweight.data<T>();     // [Cout, Cg, kh, kw]
    const int64_t Cg = g.cin_g();
    std::vector<double> acc(size_t(g.Cout * Cg * g.kh * g.kw), 0.0);
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.Cout; ++o)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            const double d = double(dop[((n * g.Cout + o) * g.OH + oh) * g.OW + ow]);
            for_each_tap(g, o, oh, ow, [&](int64_t c, int64_t i, int64_t j, int64_t cx, int64_t h, int64_t w) {
              const double xv = xp[((n * g.Cin + cx) * g.H + h) * g.W + w];
              acc[size_t(((o * Cg + c) * g.kh + i) * g.kw + j)] += d * xv;
            });
          }
    for (size_t e = 0; e < acc.size(); ++e) dwp[e] = T(acc[e]);
  });
}

}  // namespace mila::cpu
