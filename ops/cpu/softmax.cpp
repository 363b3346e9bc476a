// softmax.cpp - CPU softmax / log_softmax, one line along `dim` at a time.
// Lines are independent, so the result does not depend on the thread count. Sums over a
// line accumulate in double (float inputs) so long lines (e.g. 1000 classes) stay accurate.
#include "ops/cpu/softmax.h"

#include <cmath>
#include <limits>

#include "ops/cpu/loops.h"

namespace mila::cpu {

void softmax_forward(const Tensor& out, const Tensor& x, int64_t dim, bool log) {
  dispatch_floating(x.dtype(), "softmax", [&]<typename T>() {
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const int64_t xs = x.stride(dim), os = out.stride(dim), len = x.size(dim);
    for_each_line<2>(x.shape(), dim, {&x.strides(), &out.strides()}, [&](const auto& off) {
      const T* xl = xp + off[0];
      T* ol = op + off[1];
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < len; ++j) m = std::max(m, xl[j * xs]);
      if (std::isinf(m) && m < 0) m = 0;  // all -inf: avoid (-inf) - (-inf) = nan in the shift
      double total = 0;
      for (int64_t j = 0; j < len; ++j) {
        const T e = std::exp(xl[j * xs] - m);
        if (!log) ol[j * os] = e;
        total += double(e);
      }
      if (log) {
        // (x - m) - log(total), not x - (m + log(total)): with large logits m + log(total)
        // would round at the magnitude of m (an ulp of 1000 is 6e-5 in float32).
        const T lse = T(std::log(total));
        for (int64_t j = 0; j < len; ++j) ol[j * os] = (xl[j * xs] - m) - lse;
      } else {
        const T inv = T(1.0 / total);
        for (int64_t j = 0; j < len; ++j) ol[j * os] *= inv;
      }
    });
  });
}

void softmax_backward(const Tensor& dx, const Tensor& dout, const Tensor& y, int64_t dim, bool log) {
  dispatch_floating(y.dtype(), "softmax_backward", [&]<typename T>() {
    const T* gp = dout.data<T>();
    const T* yp = y.data<T>();
    T* dp = dx.data<T>();
    const int64_t gs = dout.stride(dim), ys = y.stride(dim), ds = dx.stride(dim), len = y.size(dim);
    for_each_line<3>(y.shape(), dim, {&dout.strides(), &y.strides(), &dx.strides()}, [&](const auto& off) {
      const T* g = gp + off[0];
      const T* yl = yp + off[1];
      T* d = dp + off[2];
      double dot = 0;
      if (log) {
        for (int64_t j = 0; j < len; ++j) dot += double(g[j * gs]);
        for (int64_t j = 0; j < len; ++j) d[j * ds] = g[j * gs] - std::exp(yl[j * ys]) * T(dot);
      } else {
        for (int64_t j = 0; j < len; ++j) dot += double(g[j * gs]) * double(yl[j * ys]);
        for (int64_t j = 0; j < len; ++j) d[j * ds] = yl[j * ys] * (g[j * gs] - T(dot));
      }
    });
  });
}

}  // namespace mila::cpu
