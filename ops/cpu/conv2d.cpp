// conv2d.cpp - the CPU conv2d launchers, and version 1 of the kernels: im2col + GEMM.
//
// Kernel versions (each adds one idea; the launchers at the end of this file pick one):
//   1. im2col + GEMM (this file): any floating dtype, any build, every shape. Lowers the
//      convolution to the project's GEMM (ops/cpu/gemm.h) as described below.
//   2. direct (ops/cpu/conv2d_direct.cpp): float32 on AVX-512 builds. The GEMM's register
//      tile reads the input itself instead of an im2col matrix (no matrix written, packed
//      and read back; taps in the padding rows skipped). 10-30% faster than version 1 on the
//      backbone's shapes (bench/RESULTS.md, "conv2d").
//
// Shape legend (per image n and group g; Cg = Cin / groups, Og = Cout / groups):
//   x_ng    [Cg, H, W]      the group's input channels of image n
//   w_g     [Og, K]         the group's filters, K = Cg * kh * kw (weight rows are contiguous)
//   cols    [K, OH * OW]    im2col matrix: row r = (c, i, j), column p = (oh, ow)
//   out_ng  [Og, OH * OW]
//
// Note [conv2d as a matrix product]
// ---------------------------------
// Write row r = (c * kh + i) * kw + j and column p = oh * OW + ow of the im2col matrix as
//   cols[r, p] = x_ng[c, oh sh - ph + i dh, ow sw - pw + j dw]    (0 in the padding).
// Then the convolution of ops/conv2d.h is one matrix product per image and group,
//   out_ng = w_g cols                        [Og, K] x [K, OHW]
// and its derivatives are the two other products of the same three matrices:
//   dcols  = w_g^T dout_ng                   [K, Og] x [Og, OHW], then dx_ng = col2im(dcols):
//            every dcols[r, p] is added back to the x position that cols[r, p] was read from
//   dw_g  += dout_ng cols^T                  [Og, OHW] x [OHW, K], summed over the images
// A 1x1 kernel with stride 1 and no padding needs no im2col: cols is x_ng itself, a
// [Cg, H W] matrix with row stride H W, and dx_ng = w_g^T dout_ng directly.
//
// Work split and determinism (version 1)
// --------------------------------------
// Each output element is produced by exactly one GEMM call (or one col2im sum), and
// gemm_f32 gives the same bits whatever its thread count. The ways work is cut below
// (column blocks, the order of the accumulation into dweight) depend on the shapes only,
// never on the thread count, so every result is bitwise independent of it. Two schedules:
//   - many independent tasks (images x groups x column blocks): one task per thread at a
//     time, each running im2col and a single-threaded GEMM on its own buffer;
//   - few tasks (e.g. batch 1): tasks in order, each using all threads (im2col split
//     over channels, the GEMM's own threads).
// The im2col matrix lives in a per-thread buffer that is reused across calls.
#include "ops/cpu/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "ops/cpu/gemm.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/scratch.h"

namespace mila::cpu {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The im2col matrix (cols, or dcols in the input backward): a per-thread buffer kept
// between calls (ops/cpu/scratch.h); a large layer's is tens of MB.
enum Conv2dScratch { kColumns };

// ---------------------------------------------------------------------------------------
// GEMM on either dtype: C[m, n] = A[m, k] B[k, n] + beta C, operands given by strides.
// ---------------------------------------------------------------------------------------
template <typename T>
void gemm(int64_t m, int64_t n, int64_t k, const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t b_rs,
          int64_t b_cs, T beta, T* c, int64_t c_rs) {
  if constexpr (std::is_same_v<T, float>)
    gemm_f32({m, n, k, 1.f, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, c_rs});
  else
    gemm_f64({m, n, k, 1.0, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, c_rs});
}

// ---------------------------------------------------------------------------------------
// im2col and col2im
// ---------------------------------------------------------------------------------------
// The output positions o in [0, n_out) whose tap o * stride + offset lies in [0, size).
struct Range {
  int64_t lo, hi;
};
Range valid_range(int64_t n_out, int64_t stride, int64_t offset, int64_t size) {
  const int64_t lo = std::min(n_out, offset >= 0 ? 0 : ceil_div(-offset, stride));
  const int64_t hi = size - offset > 0 ? (size - 1 - offset) / stride + 1 : 0;
  return {lo, std::clamp(hi, lo, n_out)};
}

// cols[r, p - p0] = x[c, oh sh - ph + i dh, ow sw - pw + j dw] (0 in the padding) for the rows
// r = (c * kh + i) * kw + j of channels c in [c0, c1) and the columns p = oh * OW + ow in
// [p0, p1). x is [Cg, H, W]; cols has row stride ld.
template <typename T>
void im2col(const T* x, const Conv2dGeometry& g, int64_t c0, int64_t c1, int64_t p0, int64_t p1, T* cols,
            int64_t ld) {
  for (int64_t c = c0; c < c1; ++c) {
    const T* xc = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = cols + ((c * g.kh + i) * g.kw + j) * ld;
        const int64_t w_off = j * g.dw - g.pw;
        const Range in_w = valid_range(g.OW, g.sw, w_off, g.W);
        // Walk [p0, p1) one output row (oh) segment at a time.
        for (int64_t p = p0; p < p1;) {
          const int64_t oh = p / g.OW, ow0 = p % g.OW, ow1 = std::min(g.OW, ow0 + (p1 - p));
          T* d = row + (p - p0) - ow0;  // d[ow] is column oh * OW + ow  (d + ow0 is in the row)
          const int64_t h = oh * g.sh - g.ph + i * g.dh;
          if (h < 0 || h >= g.H) {
            for (int64_t ow = ow0; ow < ow1; ++ow) d[ow] = T(0);
          } else {
            const T* xr = xc + h * g.W;
            const int64_t lo = std::clamp(in_w.lo, ow0, ow1), hi = std::clamp(in_w.hi, lo, ow1);
            for (int64_t ow = ow0; ow < lo; ++ow) d[ow] = T(0);
            if (g.sw == 1)
              for (int64_t ow = lo; ow < hi; ++ow) d[ow] = xr[ow + w_off];
            else
              for (int64_t ow = lo; ow < hi; ++ow) d[ow] = xr[ow * g.sw + w_off];
            for (int64_t ow = hi; ow < ow1; ++ow) d[ow] = T(0);
          }
          p += ow1 - ow0;
        }
      }
  }
}

// dx[c] = sum of the dcols entries that im2col read from channel c, for c in [c0, c1):
// the adjoint of im2col over all OH * OW columns. Channels are independent, and each is
// summed in a fixed order (rows r, then columns).
template <typename T>
void col2im(const T* dcols, const Conv2dGeometry& g, int64_t c0, int64_t c1, T* dx) {
  const int64_t ohw = g.ohw();
  for (int64_t c = c0; c < c1; ++c) {
    T* dxc = dx + c * g.H * g.W;
    std::fill(dxc, dxc + g.H * g.W, T(0));
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* row = dcols + ((c * g.kh + i) * g.kw + j) * ohw;
        const int64_t w_off = j * g.dw - g.pw;
        const Range in_w = valid_range(g.OW, g.sw, w_off, g.W);
        const Range in_h = valid_range(g.OH, g.sh, i * g.dh - g.ph, g.H);
        for (int64_t oh = in_h.lo; oh < in_h.hi; ++oh) {
          T* dr = dxc + (oh * g.sh - g.ph + i * g.dh) * g.W;
          const T* s = row + oh * g.OW;
          if (g.sw == 1)
            for (int64_t ow = in_w.lo; ow < in_w.hi; ++ow) dr[ow + w_off] += s[ow];
          else
            for (int64_t ow = in_w.lo; ow < in_w.hi; ++ow) dr[ow * g.sw + w_off] += s[ow];
        }
      }
  }
}

// ---------------------------------------------------------------------------------------
// Column blocks: the OH * OW columns of one image are cut into near-equal blocks of whole
// 32-column GEMM panels, about kBlockColumns wide, so one task's im2col block stays in
// cache and the images of a small batch still give the threads several tasks each.
// ---------------------------------------------------------------------------------------
constexpr int64_t kPanel = 32;
constexpr int64_t kBlockColumns = 512;

struct ColumnBlocks {
  int64_t ohw, count;
  int64_t begin(int64_t b) const {
    const int64_t panels = ceil_div(ohw, kPanel);
    return std::min(ohw, panels * b / count * kPanel);
  }
};
ColumnBlocks column_blocks(const Conv2dGeometry& g) {
  const int64_t panels = ceil_div(g.ohw(), kPanel);
  const int64_t count = std::clamp<int64_t>((g.ohw() + kBlockColumns / 2) / kBlockColumns, 1, panels);
  return {g.ohw(), count};
}

// Runs task(t, inner_parallel) for t in [0, tasks): in parallel, one task per thread at a
// time, when there are enough tasks to keep the threads busy; otherwise in order, each
// task using every thread itself. Either way a task computes the same bits.
template <typename Task>
void run_tasks(int64_t tasks, Task&& task) {
  const int threads = num_threads();
  if (threads > 1 && tasks >= 2 * int64_t(threads)) {
#pragma omp parallel num_threads(threads)
    {
      omp_set_num_threads(1);  // this thread's nested regions (the GEMM's) run serially
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < tasks; ++t) task(t, false);
    }
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t, true);
  }
}

// Calls f(c0, c1) over the channels [0, count), split among the threads when `parallel`.
template <typename F>
void over_channels(bool parallel, int64_t count, int64_t work_per_channel, F&& f) {
  if (parallel)
    parallel_for(count, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, work_per_channel)), f);
  else
    f(int64_t(0), count);
}

// ---------------------------------------------------------------------------------------
// The three passes
// ---------------------------------------------------------------------------------------
template <typename T>
void forward(T* out, const T* x, const T* w, const T* bias, const Conv2dGeometry& g) {
  const int64_t Cg = g.cin_g(), Og = g.cout_g(), K = g.k(), HW = g.H * g.W, OHW = g.ohw();
  const ColumnBlocks blocks = column_blocks(g);
  run_tasks(g.N * g.groups * blocks.count, [&](int64_t t, bool inner_parallel) {
    const int64_t b = t % blocks.count, grp = (t / blocks.count) % g.groups, n = t / (blocks.count * g.groups);
    const int64_t p0 = blocks.begin(b), p1 = blocks.begin(b + 1), np = p1 - p0;
    const T* xg = x + (n * g.Cin + grp * Cg) * HW;
    T* og = out + (n * g.Cout + grp * Og) * OHW + p0;
    const T* cols = xg + p0;  // pointwise: x itself, row stride HW
    int64_t cols_rs = HW;
    if (!g.pointwise()) {
      T* buf = scratch<T>(kColumns, size_t(K * np));
      over_channels(inner_parallel, Cg, g.kh * g.kw * np,
                    [&](int64_t c0, int64_t c1) { im2col(xg, g, c0, c1, p0, p1, buf, np); });
      cols = buf;
      cols_rs = np;
    }
    gemm<T>(Og, np, K, w + grp * Og * K, K, 1, cols, cols_rs, 1, T(0), og, OHW);
    if (bias)
      for (int64_t o = 0; o < Og; ++o) {
        const T bo = bias[grp * Og + o];
        for (int64_t p = 0; p < np; ++p) og[o * OHW + p] += bo;
      }
  });
}

template <typename T>
void backward_input(T* dx, const T* dout, const T* w, const Conv2dGeometry& g) {
  const int64_t Cg = g.cin_g(), Og = g.cout_g(), K = g.k(), HW = g.H * g.W, OHW = g.ohw();
  // col2im adds overlapping windows into one dx plane, so an image and group is one task.
  run_tasks(g.N * g.groups, [&](int64_t t, bool inner_parallel) {
    const int64_t grp = t % g.groups, n = t / g.groups;
    T* dxg = dx + (n * g.Cin + grp * Cg) * HW;
    const T* dog = dout + (n * g.Cout + grp * Og) * OHW;
    const T* wg = w + grp * Og * K;  // w_g^T: element (r, o) at wg[o * K + r]
    if (g.pointwise()) {
      gemm<T>(Cg, HW, Og, wg, 1, K, dog, OHW, 1, T(0), dxg, HW);
      return;
    }
    T* dcols = scratch<T>(kColumns, size_t(K * OHW));
    gemm<T>(K, OHW, Og, wg, 1, K, dog, OHW, 1, T(0), dcols, OHW);
    over_channels(inner_parallel, Cg, g.kh * g.kw * OHW,
                  [&](int64_t c0, int64_t c1) { col2im(dcols, g, c0, c1, dxg); });
  });
}

template <typename T>
void backward_weight(T* dw, const T* dout, const T* x, const Conv2dGeometry& g) {
  const int64_t Cg = g.cin_g(), Og = g.cout_g(), K = g.k(), HW = g.H * g.W, OHW = g.ohw();
  const ColumnBlocks blocks = column_blocks(g);
  if (g.N == 0) std::fill(dw, dw + g.Cout * K, T(0));  // an empty sum
  // dw_g sums over images and column blocks in this fixed order (the GEMM's beta = 1), so a
  // group is one task; groups are independent.
  run_tasks(g.groups, [&](int64_t grp, bool inner_parallel) {
    T* dwg = dw + grp * Og * K;
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t b = 0; b < blocks.count; ++b) {
        const int64_t p0 = blocks.begin(b), p1 = blocks.begin(b + 1), np = p1 - p0;
        const T* xg = x + (n * g.Cin + grp * Cg) * HW;
        const T* cols = xg + p0;
        int64_t cols_rs = HW;
        if (!g.pointwise()) {
          T* buf = scratch<T>(kColumns, size_t(K * np));
          over_channels(inner_parallel, Cg, g.kh * g.kw * np,
                        [&](int64_t c0, int64_t c1) { im2col(xg, g, c0, c1, p0, p1, buf, np); });
          cols = buf;
          cols_rs = np;
        }
        // dw_g[o, r] (+)= sum over p of dout_ng[o, p] cols[r, p]: B = cols^T.
        const bool first = n == 0 && b == 0;
        gemm<T>(Og, K, np, dout + (n * g.Cout + grp * Og) * OHW + p0, OHW, 1, cols, 1, cols_rs, first ? T(0) : T(1),
                dwg, K);
      }
  });
}

}  // namespace

void conv2d_forward_im2col(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                           const Conv2dGeometry& g) {
  dispatch_floating(x.dtype(), "conv2d", [&]<typename T>() {
    forward<T>(out.data<T>(), x.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr, g);
  });
}

void conv2d_backward_input_im2col(const Tensor& dx, const Tensor& dout, const Tensor& weight,
                                  const Conv2dGeometry& g) {
  dispatch_floating(dx.dtype(), "conv2d_backward_input", [&]<typename T>() {
    backward_input<T>(dx.data<T>(), dout.data<T>(), weight.data<T>(), g);
  });
}

void conv2d_backward_weight_im2col(const Tensor& dweight, const Tensor& dout, const Tensor& x,
                                   const Conv2dGeometry& g) {
  dispatch_floating(dweight.dtype(), "conv2d_backward_weight", [&]<typename T>() {
    backward_weight<T>(dweight.data<T>(), dout.data<T>(), x.data<T>(), g);
  });
}

// ---------------------------------------------------------------------------------------
// Launchers: which version serves a call. Version 2 where it exists and its register tile
// (14 output channels x 32 output columns) is mostly filled; version 1 otherwise (float64,
// builds without AVX-512, depthwise and narrow layers, strided input gradients).
// ---------------------------------------------------------------------------------------
namespace {
bool direct_fits(DType dtype, int64_t out_channels_per_group, int64_t out_width) {
  return dtype == DType::Float32 && conv2d_direct_available() && out_channels_per_group >= 8 && out_width >= 16;
}
}  // namespace

void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Conv2dGeometry& g) {
  if (direct_fits(x.dtype(), g.cout_g(), g.OW))
    conv2d_forward_direct(out, x, weight, bias, g);
  else
    conv2d_forward_im2col(out, x, weight, bias, g);
}

void conv2d_backward_input(const Tensor& dx, const Tensor& dout, const Tensor& weight, const Conv2dGeometry& g) {
  // Version 2 computes dx as a convolution with Cin / groups output channels per group and
  // output width W (ops/cpu/conv2d_direct.cpp); it needs stride 1.
  if (g.sh == 1 && g.sw == 1 && direct_fits(dx.dtype(), g.cin_g(), g.W))
    conv2d_backward_input_direct(dx, dout, weight, g);
  else
    conv2d_backward_input_im2col(dx, dout, weight, g);
}

void conv2d_backward_weight(const Tensor& dweight, const Tensor& dout, const Tensor& x, const Conv2dGeometry& g) {
  // Version 2 keeps the whole transposed gradient (K x Cout floats) live across chunks of
  // pixels: it wins while that fits in L2 (the stem, the 64- and 128-channel layers: 5-25%
  // faster); beyond, version 1's GEMM is as fast or faster.
  if (x.dtype() == DType::Float32 && conv2d_direct_available() && g.groups == 1 &&
      g.k() * g.Cout <= (int64_t(1) << 18))
    conv2d_backward_weight_direct(dweight, dout, x, g);
  else
    conv2d_backward_weight_im2col(dweight, dout, x, g);
}

void conv2d_backward_bias(const Tensor& dbias, const Tensor& dout, const Conv2dGeometry& g) {
  dispatch_floating(dbias.dtype(), "conv2d_backward_bias", [&]<typename T>() {
    const T* dop = dout.data<T>();
    T* db = dbias.data<T>();
    const int64_t OHW = g.ohw();
    // One channel per item, summed in double over images then positions: a fixed order.
    parallel_for(g.Cout, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, g.N * OHW)),
                 [&](int64_t o0, int64_t o1) {
                   for (int64_t o = o0; o < o1; ++o) {
                     double acc = 0;
                     for (int64_t n = 0; n < g.N; ++n) {
                       const T* s = dop + (n * g.Cout + o) * OHW;
                       for (int64_t p = 0; p < OHW; ++p) acc += double(s[p]);
                     }
                     db[o] = T(acc);
                   }
                 });
  });
}

}  // namespace mila::cpu
