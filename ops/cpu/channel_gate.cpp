// channel_gate.cpp - CPU kernels of the SE block's channel multiply (ops/channel_gate.h).
//
// Shape legend: x, out, dout, dx [P, S] contiguous (P = N * C planes, S = H * W values);
// gate, dgate [P].
//
// Threads split the planes. The backward reads dout and x once and writes dx once; dgate
// for a plane is a dot product accumulated in double in kLanes interleaved partial sums
// (vectorizable, fixed order), combined by a fixed tree, by the one thread owning the plane.
#include "ops/cpu/channel_gate.h"

#include <algorithm>

#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {

constexpr int kLanes = 16;

int64_t plane_grain(int64_t S) { return std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, S)); }

template <typename T>
void forward_kernel(const Tensor& out, const Tensor& x, const Tensor& gate) {
  const int64_t P = x.size(0), S = x.size(1);
  const T* xp = x.data<T>();
  const T* gatep = gate.data<T>();
  T* op = out.data<T>();
  parallel_for(P, plane_grain(S), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T s = gatep[p];
      const T* in = xp + p * S;
      T* o = op + p * S;
      for (int64_t i = 0; i < S; ++i) o[i] = in[i] * s;
    }
  });
}

template <typename T>
void backward_kernel(const Tensor& dx, const Tensor& dgate, const Tensor& dout, const Tensor& x, const Tensor& gate) {
  const int64_t P = x.size(0), S = x.size(1);
  const T* xp = x.data<T>();
  const T* gp = dout.data<T>();
  const T* gatep = gate.data<T>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  T* dgp = dgate.defined() ? dgate.data<T>() : nullptr;
  parallel_for(P, plane_grain(S), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const T* g = gp + p * S;
      if (dxp) {
        const T s = gatep[p];
        T* d = dxp + p * S;
        for (int64_t i = 0; i < S; ++i) d[i] = g[i] * s;
      }
      if (dgp) {  // the plane is still in L1/L2 from the dx loop: x is the only new read
        const T* in = xp + p * S;
        double acc[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= S; i += kLanes)
          for (int l = 0; l < kLanes; ++l) acc[l] += double(g[i + l]) * double(in[i + l]);
        for (int l = 0; i < S; ++i, ++l) acc[l] += double(g[i]) * double(in[i]);
        for (int width = kLanes / 2; width >= 1; width /= 2)  // fixed pairwise tree
          for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
        dgp[p] = T(acc[0]);
      }
    }
  });
}

}  // namespace

void channel_gate_forward(const Tensor& out, const Tensor& x, const Tensor& gate) {
  dispatch_floating(x.dtype(), "channel_gate", [&]<typename T>() { forward_kernel<T>(out, x, gate); });
}

void channel_gate_backward(const Tensor& dx, const Tensor& dgate, const Tensor& dout, const Tensor& x,
                           const Tensor& gate) {
  dispatch_floating(x.dtype(), "channel_gate_backward",
                    [&]<typename T>() { backward_kernel<T>(dx, dgate, dout, x, gate); });
}

}  // namespace mila::cpu
