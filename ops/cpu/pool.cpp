// pool.cpp - CPU max / average / adaptive average pooling, forward and backward.
//
// Shape legend: x, dx [P, H, W] and out, dout, indices [P, OH, OW], contiguous, P = N * C
// planes. Window rules: ops/pool.h.
//
// Threads split the planes. A plane's backward is a scatter (several outputs may add into
// one input when windows overlap); since one thread owns the whole plane and walks the
// outputs in row-major order, the additions happen in a fixed order: results do not depend
// on the thread count, and no atomics are needed. Pooling is not on this project's hot
// path (a ResNet runs one max-pool; the SE block's squeeze is a 1x1 adaptive pool), so
// the kernels are written as plain loops over each window.
#include "ops/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {

// Planes per chunk so that a chunk has about kElementwiseGrain values of work.
int64_t plane_grain(int64_t plane_work) { return std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, plane_work)); }

// The in-map part [begin, end) of one output's window along one axis, for a window of
// `k` taps `d` apart starting at o * s - p (PyTorch's cpu_max_pool): begin is moved up to
// the first tap inside the map, so begin + j * d for begin + j * d < end are the taps.
struct Taps {
  int64_t begin, end;
};
Taps max_taps(int64_t o, int64_t k, int64_t s, int64_t p, int64_t d, int64_t size) {
  int64_t begin = o * s - p;
  const int64_t end = std::min(begin + (k - 1) * d + 1, size);
  while (begin < 0) begin += d;
  return {begin, end};
}

// avg_pool2d's window along one axis: the in-map range and the size of the window clipped
// to the padded map (the count_include_pad divisor), as PyTorch's cpu_avg_pool.
struct AvgWindow {
  int64_t begin, end, padded_size;
};
AvgWindow avg_window(int64_t o, int64_t k, int64_t s, int64_t p, int64_t size) {
  const int64_t begin = o * s - p;
  const int64_t end = std::min(begin + k, size + p);
  return {std::max<int64_t>(begin, 0), std::min(end, size), end - begin};
}

// adaptive_avg_pool2d's bin o of `out` bins over `in` values: [floor(o in / out), ceil((o + 1) in / out)),
// PyTorch's start_index / end_index (written to avoid overflow of o * in).
int64_t bin_start(int64_t o, int64_t out, int64_t in) { return (o / out) * in + ((o % out) * in) / out; }
int64_t bin_end(int64_t o, int64_t out, int64_t in) { return 1 + ((o + 1) * in - 1) / out; }

template <typename T>
void max_forward(const Tensor& out, const Tensor& indices, const Tensor& x, const Pool2dParams& p) {
  const int64_t P = x.size(0), H = x.size(1), W = x.size(2), OH = out.size(1), OW = out.size(2);
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  int64_t* ip = indices.data<int64_t>();
  parallel_for(P, plane_grain(OH * OW * p.kh * p.kw), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* in = xp + pl * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const Taps rows = max_taps(oh, p.kh, p.sh, p.ph, p.dh, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Taps cols = max_taps(ow, p.kw, p.sw, p.pw, p.dw, W);
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_at = -1;  // stays -1 only for a window with no in-map tap
          for (int64_t ih = rows.begin; ih < rows.end; ih += p.dh)
            for (int64_t iw = cols.begin; iw < cols.end; iw += p.dw) {
              const T v = in[ih * W + iw];
              if (v > best || std::isnan(v) || best_at < 0) {  // first max wins ties; NaN propagates
                best = v;
                best_at = ih * W + iw;
              }
            }
          const int64_t o = (pl * OH + oh) * OW + ow;
          op[o] = best;
          ip[o] = best_at;
        }
      }
    }
  });
}

template <typename T>
void max_backward(const Tensor& dx, const Tensor& dout, const Tensor& indices) {
  const int64_t P = dx.size(0), HW = dx.size(1) * dx.size(2), OHW = dout.size(1) * dout.size(2);
  T* dxp = dx.data<T>();
  const T* gp = dout.data<T>();
  const int64_t* ip = indices.data<int64_t>();
  parallel_for(P, plane_grain(HW + OHW), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* d = dxp + pl * HW;
      std::fill(d, d + HW, T(0));
      for (int64_t o = pl * OHW; o < (pl + 1) * OHW; ++o)
        if (ip[o] >= 0) d[ip[o]] += gp[o];
    }
  });
}

template <typename T>
void avg_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) {
  const int64_t P = x.size(0), H = x.size(1), W = x.size(2), OH = out.size(1), OW = out.size(2);
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  parallel_for(P, plane_grain(OH * OW * p.kh * p.kw), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* in = xp + pl * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const AvgWindow rows = avg_window(oh, p.kh, p.sh, p.ph, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const AvgWindow cols = avg_window(ow, p.kw, p.sw, p.pw, W);
          T& o = op[(pl * OH + oh) * OW + ow];
          if (rows.begin >= rows.end || cols.begin >= cols.end) {  // only padding: PyTorch writes 0
            o = T(0);
            continue;
          }
          double sum = 0;
          for (int64_t ih = rows.begin; ih < rows.end; ++ih)
            for (int64_t iw = cols.begin; iw < cols.end; ++iw) sum += double(in[ih * W + iw]);
          const int64_t divisor = p.count_include_pad ? rows.padded_size * cols.padded_size
                                                      : (rows.end - rows.begin) * (cols.end - cols.begin);
          o = T(sum / double(divisor));
        }
      }
    }
  });
}

template <typename T>
void avg_backward(const Tensor& dx, const Tensor& dout, const Pool2dParams& p) {
  const int64_t P = dx.size(0), H = dx.size(1), W = dx.size(2), OH = dout.size(1), OW = dout.size(2);
  T* dxp = dx.data<T>();
  const T* gp = dout.data<T>();
  parallel_for(P, plane_grain(OH * OW * p.kh * p.kw), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* d = dxp + pl * H * W;
      std::fill(d, d + H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        const AvgWindow rows = avg_window(oh, p.kh, p.sh, p.ph, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const AvgWindow cols = avg_window(ow, p.kw, p.sw, p.pw, W);
          if (rows.begin >= rows.end || cols.begin >= cols.end) continue;
          const int64_t divisor = p.count_include_pad ? rows.padded_size * cols.padded_size
                                                      : (rows.end - rows.begin) * (cols.end - cols.begin);
          const T g = gp[(pl * OH + oh) * OW + ow] / T(divisor);
          for (int64_t ih = rows.begin; ih < rows.end; ++ih)
            for (int64_t iw = cols.begin; iw < cols.end; ++iw) d[ih * W + iw] += g;
        }
      }
    }
  });
}

template <typename T>
void adaptive_forward(const Tensor& out, const Tensor& x) {
  const int64_t P = x.size(0), H = x.size(1), W = x.size(2), OH = out.size(1), OW = out.size(2);
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  parallel_for(P, plane_grain(H * W + OH * OW), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* in = xp + pl * H * W;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = bin_start(oh, OH, H), h1 = bin_end(oh, OH, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = bin_start(ow, OW, W), w1 = bin_end(ow, OW, W);
          double sum = 0;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) sum += double(in[ih * W + iw]);
          op[(pl * OH + oh) * OW + ow] = T(sum / double((h1 - h0) * (w1 - w0)));
        }
      }
    }
  });
}

template <typename T>
void adaptive_backward(const Tensor& dx, const Tensor& dout) {
  const int64_t P = dx.size(0), H = dx.size(1), W = dx.size(2), OH = dout.size(1), OW = dout.size(2);
  T* dxp = dx.data<T>();
  const T* gp = dout.data<T>();
  parallel_for(P, plane_grain(H * W + OH * OW), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* d = dxp + pl * H * W;
      std::fill(d, d + H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = bin_start(oh, OH, H), h1 = bin_end(oh, OH, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = bin_start(ow, OW, W), w1 = bin_end(ow, OW, W);
          const T g = gp[(pl * OH + oh) * OW + ow] / T((h1 - h0) * (w1 - w0));
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) d[ih * W + iw] += g;
        }
      }
    }
  });
}

}  // namespace

void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x, const Pool2dParams& p) {
  dispatch_floating(x.dtype(), "max_pool2d", [&]<typename T>() { max_forward<T>(out, indices, x, p); });
}
void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& indices) {
  dispatch_floating(dx.dtype(), "max_pool2d_backward", [&]<typename T>() { max_backward<T>(dx, dout, indices); });
}
void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p) {
  dispatch_floating(x.dtype(), "avg_pool2d", [&]<typename T>() { avg_forward<T>(out, x, p); });
}
void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const Pool2dParams& p) {
  dispatch_floating(dx.dtype(), "avg_pool2d_backward", [&]<typename T>() { avg_backward<T>(dx, dout, p); });
}
void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x) {
  dispatch_floating(x.dtype(), "adaptive_avg_pool2d", [&]<typename T>() { adaptive_forward<T>(out, x); });
}
void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout) {
  dispatch_floating(dx.dtype(), "adaptive_avg_pool2d_backward", [&]<typename T>() { adaptive_backward<T>(dx, dout); });
}

}  // namespace mila::cpu
