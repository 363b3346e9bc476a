// batch_norm.cpp - CPU batch normalization: per-channel statistics, the normalization and
// the fused backward (formulas and Note [batch norm backward]: ops/batch_norm.h).
//
// Shape legend: x [N, C, S] contiguous (S = H * W; 1 for [N, C]); channel c's M = N * S
// values are N runs of S contiguous values, run n starting at x + (n * C + c) * S.
//
// Work is split over channels: one thread owns a channel from its statistics to its last
// output value. That gives
//   - results independent of the thread count: every sum of a channel runs in one fixed
//     order (image by image; inside a run, kLanes interleaved double accumulators, combined
//     by a fixed tree at the end), whichever thread runs it;
//   - one DRAM pass: a channel (N * S * 4 bytes: 27 KB at [4, 256, 36, 48], 432 KB at the
//     ResNet stem's [4, 64, 144, 192]) is still in the core's 1 MB L2 when the second and
//     third passes over it run, so DRAM sees x read once and y written once.
// Forward passes: (1) sum x -> mean, (2) sum (x - mean)^2 -> var (two passes rather than
// sum x^2 - mean^2, which cancels badly when |mean| >> std), (3) y = x * scale + shift.
// Backward passes: (1) sum g and sum g * (x - mean), (2) dx.
#include "ops/cpu/batch_norm.h"

#include <cmath>

#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {

// Interleaved double accumulators: acc[l] sums the terms i = l (mod kLanes). The loop over l
// maps onto vector registers (16 doubles = two AVX-512 registers) and the order of every
// addition is fixed by the sizes alone.
constexpr int kLanes = 16;

template <typename F>
inline void accumulate_lanes(double (&acc)[kLanes], int64_t n, F&& term) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += term(i + l);
  for (int l = 0; i < n; ++i, ++l) acc[l] += term(i);
}

inline double combine_lanes(const double (&acc)[kLanes]) {
  double v[kLanes];
  for (int l = 0; l < kLanes; ++l) v[l] = acc[l];
  for (int width = kLanes / 2; width >= 1; width /= 2)  // pairwise tree: (0+8, 1+9, ...), ...
    for (int l = 0; l < width; ++l) v[l] += v[l + width];
  return v[0];
}

template <typename T>
void forward_kernel(const Tensor& y, const Tensor& mean_t, const Tensor& invstd_t, const Tensor& x,
                    const Tensor& weight, const Tensor& bias, const Tensor& running_mean, const Tensor& running_var,
                    bool training, double momentum, double eps) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  const double M = double(N * S);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  double* mean_p = mean_t.data<double>();
  double* invstd_p = invstd_t.data<double>();
  const T* wp = weight.defined() ? weight.data<T>() : nullptr;
  const T* bp = bias.defined() ? bias.data<T>() : nullptr;
  T* rmp = running_mean.defined() ? running_mean.data<T>() : nullptr;  // views: index with the stride
  T* rvp = running_var.defined() ? running_var.data<T>() : nullptr;
  const int64_t rms = running_mean.defined() ? running_mean.stride(0) : 0;
  const int64_t rvs = running_var.defined() ? running_var.stride(0) : 0;

  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double mean, invstd;
      if (training) {
        double acc[kLanes] = {};
        for (int64_t n = 0; n < N; ++n) {
          const T* run = xp + (n * C + c) * S;
          accumulate_lanes(acc, S, [&](int64_t i) { return double(run[i]); });
        }
        mean = combine_lanes(acc) / M;
        double acc2[kLanes] = {};
        for (int64_t n = 0; n < N; ++n) {
          const T* run = xp + (n * C + c) * S;
          accumulate_lanes(acc2, S, [&](int64_t i) {
            const double d = double(run[i]) - mean;
            return d * d;
          });
        }
        const double var_sum = combine_lanes(acc2);
        invstd = 1.0 / std::sqrt(var_sum / M + eps);
        // PyTorch's update order (batch_norm_cpu_update_stats_template), in double.
        if (rmp) rmp[c * rms] = T(momentum * mean + (1 - momentum) * double(rmp[c * rms]));
        if (rvp) rvp[c * rvs] = T(momentum * (var_sum / (M - 1)) + (1 - momentum) * double(rvp[c * rvs]));
      } else {
        mean = double(rmp[c * rms]);
        invstd = 1.0 / std::sqrt(double(rvp[c * rvs]) + eps);
      }
      mean_p[c] = mean;
      invstd_p[c] = invstd;
      // y = (x - mean) * invstd * w + b, written as x * scale + shift with
      // scale = invstd * w, shift = b - mean * scale: PyTorch's CPU kernel does the same
      // (batch_norm_cpu_collect_linear_and_constant_terms), one FMA per value.
      const double w = wp ? double(wp[c]) : 1.0, b = bp ? double(bp[c]) : 0.0;
      const T scale = T(invstd * w), shift = T(b - mean * invstd * w);
      for (int64_t n = 0; n < N; ++n) {
        const T* in = xp + (n * C + c) * S;
        T* out = yp + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) out[i] = in[i] * scale + shift;
      }
    }
  });
}

template <typename T>
void backward_kernel(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                     const Tensor& x, const Tensor& weight, const Tensor& mean_t, const Tensor& invstd_t,
                     bool training) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  const double M = double(N * S);
  const T* xp = x.data<T>();
  const T* gp = dout.data<T>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  T* dwp = dweight.defined() ? dweight.data<T>() : nullptr;
  T* dbp = dbias.defined() ? dbias.data<T>() : nullptr;
  const T* wp = weight.defined() ? weight.data<T>() : nullptr;
  const double* mean_p = mean_t.data<double>();
  const double* invstd_p = invstd_t.data<double>();
  // The sums are needed for dweight, dbias, and for dx in training (batch statistics).
  const bool need_sums = dwp || dbp || (dxp && training);

  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mean = mean_p[c], invstd = invstd_p[c], w = wp ? double(wp[c]) : 1.0;
      double sum_g = 0, sum_g_xc = 0;  // sum g, sum g * (x - mean)
      if (need_sums) {
        double acc_g[kLanes] = {}, acc_gx[kLanes] = {};
        for (int64_t n = 0; n < N; ++n) {
          const T* xr = xp + (n * C + c) * S;
          const T* gr = gp + (n * C + c) * S;
          accumulate_lanes(acc_g, S, [&](int64_t i) { return double(gr[i]); });
          accumulate_lanes(acc_gx, S, [&](int64_t i) { return double(gr[i]) * (double(xr[i]) - mean); });
        }
        sum_g = combine_lanes(acc_g);
        sum_g_xc = combine_lanes(acc_gx);
      }
      if (dbp) dbp[c] = T(sum_g);
      if (dwp) dwp[c] = T(sum_g_xc * invstd);  // sum g * xhat
      if (!dxp) continue;
      if (training) {
        // dx = (g - sum g / M - (x - mean) * k) * invstd * w,  k = sum(g (x - mean)) invstd^2 / M
        // (Note [batch norm backward]; PyTorch's CPU kernel uses this form).
        const T k = T(sum_g_xc * invstd * invstd / M), g_mean = T(sum_g / M), mean_T = T(mean);
        const T scale = T(invstd * w);
        for (int64_t n = 0; n < N; ++n) {
          const T* xr = xp + (n * C + c) * S;
          const T* gr = gp + (n * C + c) * S;
          T* d = dxp + (n * C + c) * S;
          for (int64_t i = 0; i < S; ++i) d[i] = (gr[i] - g_mean - (xr[i] - mean_T) * k) * scale;
        }
      } else {
        const T scale = T(invstd * w);
        for (int64_t n = 0; n < N; ++n) {
          const T* gr = gp + (n * C + c) * S;
          T* d = dxp + (n * C + c) * S;
          for (int64_t i = 0; i < S; ++i) d[i] = gr[i] * scale;
        }
      }
    }
  });
}

}  // namespace

void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, const BatchNormParams& p) {
  dispatch_floating(x.dtype(), "batch_norm", [&]<typename T>() {
    forward_kernel<T>(y, mean, invstd, x, weight, bias, running_mean, running_var, p.training, p.momentum, p.eps);
  });
}

void batch_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                         const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& invstd,
                         const BatchNormParams& p) {
  dispatch_floating(x.dtype(), "batch_norm_backward", [&]<typename T>() {
    backward_kernel<T>(dx, dweight, dbias, dout, x, weight, mean, invstd, p.training);
  });
}

}  // namespace mila::cpu
