// interpolate.cpp - CPU bilinear resizing (align_corners = False), forward and backward.
//
// Shape legend: x, dx [P, H, W]; out, dout [P, OH, OW]; contiguous, P = N * C planes.
//
// Bilinear interpolation is separable: out = Rows * x * Cols^T, where row oh of Rows has the
// two weights (l0h, l1h) at columns (h0, h1), and likewise for Cols. Both kernels use that.
//
// Forward, per plane:
//   1. tmp[h, ow]  = l0w[ow] x[h, w0[ow]] + l1w[ow] x[h, w1[ow]]   for the rows h some output reads
//   2. out[oh, :]  = l0h[oh] tmp[h0[oh], :] + l1h[oh] tmp[h1[oh], :]
// This is PyTorch's order of operations (width inside, height outside), so results match
// it to float rounding. Step 1 is H x OW gathers (1/8 of the outputs for the model's x8
// upsampling), step 2 a vectorized blend of two cached rows per output row: the kernel
// writes each output once and reads x from cache, so DRAM sees x read once, out written once.
//
// Backward, per plane, the transpose in the reverse order:
//   1. tmp[h, :]   = sum over oh with h0[oh] = h of l0h[oh] dout[oh, :]
//                  + sum over oh with h1[oh] = h of l1h[oh] dout[oh, :]   (rows of dout, vectorized)
//   2. dx[h, w]    = sum over the outputs ow that read column w of weight(ow, w) * tmp[h, ow]
// Step 2 is a gather: the outputs reading input column w form a contiguous range of ow, listed
// once per call with their weights (transpose_taps), so every dx value is one sum in a fixed
// order and no two threads ever write the same value. Threads split the planes; a plane's result
// does not depend on which thread computed it, hence not on the thread count.
#include "ops/cpu/interpolate.h"

#include <algorithm>
#include <vector>

#include "ops/cpu/parallel.h"

namespace mila::cpu {
namespace {

// One axis of the resize: output o reads i0[o] with weight l0[o] and i1[o] with weight l1[o].
template <typename T>
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<T> l0, l1;
};

// PyTorch's area_pixel_compute_source_index + guard_index_and_lambda (align_corners = False,
// scale = in / out), computed in T as PyTorch computes it in the tensor's opmath type.
template <typename T>
Taps<T> make_taps(int64_t in, int64_t out) {
  Taps<T> t;
  t.i0.resize(size_t(out)), t.i1.resize(size_t(out)), t.l0.resize(size_t(out)), t.l1.resize(size_t(out));
  const T scale = T(in) / T(out);
  for (int64_t o = 0; o < out; ++o) {
    T src = scale * (T(o) + T(0.5)) - T(0.5);
    if (src < T(0)) src = T(0);
    const int64_t i = std::min<int64_t>(int64_t(src), in - 1);  // src >= 0: truncation is floor
    const T lambda = std::min(std::max(src - T(i), T(0)), T(1));
    t.i0[size_t(o)] = i;
    t.i1[size_t(o)] = i < in - 1 ? i + 1 : i;
    t.l1[size_t(o)] = lambda;
    t.l0[size_t(o)] = T(1) - lambda;
  }
  return t;
}

// The transpose of an axis's taps, by input index: input i is read by the outputs
// first[i] .. first[i] + count[i] - 1 (a contiguous range, since i0 and i1 never decrease),
// output first[i] + j with weight weight[offset[i] + j] (the sum of its l0 and l1 when it
// reads i twice, at the last input). count[i] = 0 for an input no output reads.
template <typename T>
struct Band {
  std::vector<int64_t> first, count, offset;
  std::vector<T> weight;
};

template <typename T>
Band<T> transpose_taps(const Taps<T>& t, int64_t in) {
  const int64_t out = int64_t(t.i0.size());
  Band<T> b;
  b.first.assign(size_t(in), 0), b.count.assign(size_t(in), 0), b.offset.assign(size_t(in), 0);
  std::vector<int64_t> last(size_t(in), -1);
  for (int64_t o = out - 1; o >= 0; --o)  // first: the smallest output reading i
    for (int64_t i : {t.i0[size_t(o)], t.i1[size_t(o)]}) b.first[size_t(i)] = o, last[size_t(i)] = std::max(last[size_t(i)], o);
  int64_t total = 0;
  for (int64_t i = 0; i < in; ++i) {
    b.count[size_t(i)] = last[size_t(i)] < 0 ? 0 : last[size_t(i)] - b.first[size_t(i)] + 1;
    b.offset[size_t(i)] = total;
    total += b.count[size_t(i)];
  }
  b.weight.assign(size_t(total), T(0));
  for (int64_t o = 0; o < out; ++o) {
    b.weight[size_t(b.offset[size_t(t.i0[size_t(o)])] + o - b.first[size_t(t.i0[size_t(o)])])] += t.l0[size_t(o)];
    b.weight[size_t(b.offset[size_t(t.i1[size_t(o)])] + o - b.first[size_t(t.i1[size_t(o)])])] += t.l1[size_t(o)];
  }
  return b;
}

// Planes per chunk: about kElementwiseGrain output values of work per chunk.
int64_t plane_grain(int64_t plane_work) { return std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, plane_work)); }

template <typename T>
void forward_kernel(const Tensor& out, const Tensor& x) {
  const int64_t P = x.size(0), H = x.size(1), W = x.size(2), OH = out.size(1), OW = out.size(2);
  const Taps<T> rows = make_taps<T>(H, OH), cols = make_taps<T>(W, OW);
  std::vector<char> row_used(size_t(H), 0);  // rows of x that some output reads (all but a few when downsampling)
  for (int64_t oh = 0; oh < OH; ++oh) row_used[size_t(rows.i0[size_t(oh)])] = row_used[size_t(rows.i1[size_t(oh)])] = 1;
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  const int64_t* w0 = cols.i0.data();
  const int64_t* w1 = cols.i1.data();
  const T* l0w = cols.l0.data();
  const T* l1w = cols.l1.data();

  parallel_for(P, plane_grain(OH * OW), [&](int64_t p0, int64_t p1) {
    std::vector<T> tmp(size_t(H * OW));  // step 1's rows, [H, OW]
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* in = xp + pl * H * W;
      for (int64_t h = 0; h < H; ++h) {
        if (!row_used[size_t(h)]) continue;
        const T* src = in + h * W;
        T* t = tmp.data() + h * OW;
        for (int64_t ow = 0; ow < OW; ++ow) t[ow] = l0w[ow] * src[w0[ow]] + l1w[ow] * src[w1[ow]];
      }
      for (int64_t oh = 0; oh < OH; ++oh) {
        const T* a = tmp.data() + rows.i0[size_t(oh)] * OW;
        const T* b = tmp.data() + rows.i1[size_t(oh)] * OW;
        const T la = rows.l0[size_t(oh)], lb = rows.l1[size_t(oh)];
        T* o = op + (pl * OH + oh) * OW;
        for (int64_t ow = 0; ow < OW; ++ow) o[ow] = la * a[ow] + lb * b[ow];
      }
    }
  });
}

template <typename T>
void backward_kernel(const Tensor& dx, const Tensor& dout) {
  const int64_t P = dx.size(0), H = dx.size(1), W = dx.size(2), OH = dout.size(1), OW = dout.size(2);
  const Taps<T> rows = make_taps<T>(H, OH), cols = make_taps<T>(W, OW);
  const Band<T> by_col = transpose_taps(cols, W);
  const T* gp = dout.data<T>();
  T* dxp = dx.data<T>();
  constexpr int64_t kRows = 8;  // rows of step 2 computed together: independent sums share the weights

  parallel_for(P, plane_grain(OH * OW), [&](int64_t p0, int64_t p1) {
    std::vector<T> tmp(size_t(H * OW));  // step 1's rows, [H, OW]
    for (int64_t pl = p0; pl < p1; ++pl) {
      std::fill(tmp.begin(), tmp.end(), T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        const T* g = gp + (pl * OH + oh) * OW;
        T* a = tmp.data() + rows.i0[size_t(oh)] * OW;
        const T la = rows.l0[size_t(oh)];
        for (int64_t ow = 0; ow < OW; ++ow) a[ow] += la * g[ow];
        T* b = tmp.data() + rows.i1[size_t(oh)] * OW;
        const T lb = rows.l1[size_t(oh)];
        for (int64_t ow = 0; ow < OW; ++ow) b[ow] += lb * g[ow];
      }
      // Step 2: dx[h, w] = sum_j weight_w[j] tmp[h, first_w + j], kRows rows at a time so that
      // the kRows sums are independent chains (one chain would wait on each addition).
      T* d = dxp + pl * H * W;
      for (int64_t h0 = 0; h0 < H; h0 += kRows) {
        const int64_t rows_here = std::min(kRows, H - h0);
        for (int64_t w = 0; w < W; ++w) {
          const T* wt = by_col.weight.data() + by_col.offset[size_t(w)];
          const T* t = tmp.data() + h0 * OW + by_col.first[size_t(w)];
          const int64_t n = by_col.count[size_t(w)];
          T s[kRows] = {};
          if (rows_here == kRows) {
            for (int64_t j = 0; j < n; ++j)
              for (int64_t k = 0; k < kRows; ++k) s[k] += wt[j] * t[k * OW + j];
          } else {
            for (int64_t j = 0; j < n; ++j)
              for (int64_t k = 0; k < rows_here; ++k) s[k] += wt[j] * t[k * OW + j];
          }
          for (int64_t k = 0; k < rows_here; ++k) d[(h0 + k) * W + w] = s[k];
        }
      }
    }
  });
}

}  // namespace

void interpolate_bilinear_forward(const Tensor& out, const Tensor& x) {
  dispatch_floating(x.dtype(), "interpolate_bilinear", [&]<typename T>() { forward_kernel<T>(out, x); });
}

void interpolate_bilinear_backward(const Tensor& dx, const Tensor& dout) {
  dispatch_floating(dx.dtype(), "interpolate_bilinear_backward", [&]<typename T>() { backward_kernel<T>(dx, dout); });
}

}  // namespace mila::cpu
