// conv2d_direct.cpp - version 2 of the CPU conv2d: direct convolution, float32, AVX-512.
//
// What it adds over version 1 (im2col + GEMM, ops/cpu/conv2d.cpp): no im2col matrix. The
// GEMM micro-kernel's B operand (the im2col matrix) is read straight from the input, so
// the K x OH*OW matrix is never written, packed or read back, and taps that fall in the
// zero padding above or below the map are skipped instead of multiplied by zeros.
//
// Shape legend (per image n and group g; Cg = Cin / groups, Og = Cout / groups, T = kh kw):
//   x_ng   [Cg, H, W]   the group's input planes
//   w_g    [Og, Cg, kh, kw]
//   out_ng [Og, OH, OW]
//
// The register tile is the GEMM's (ops/cpu/gemm.cpp): 14 output channels x 32 output
// columns of one output row (2 vectors of 16 lanes), 28 accumulators. One step of the sum
// is one (input channel c, tap (i, j)) pair: it loads the 32 inputs that tap reads,
//   x_ng[c, oh sh - ph + i dh, ow sw - pw + j dw]  for ow = ow0 .. ow0 + 31,
// broadcasts the 14 weights w_g[o, c, i, j] and does 28 FMAs. Those 32 inputs are
// contiguous when the input row is stored with its zero padding and, for a stride sw > 1,
// split into sw phases (columns u = q sw + phase; see InputLayout). A tap whose input row
// lies in the padding reads only zeros: it is left out of the row's tap list.
//
// Packing. The weights are packed once per call into panels of <= 14 output channels laid
// out in step order, [c][tap][14] (as the GEMM packs A), so a step's 14 weights are one
// 56-byte row. The input is copied into the padded (and phase-split) layout only when
// there is column padding or a column stride; otherwise x is read in place.
//
// Blocking. The sum over c is cut into blocks of about kKC steps (channels x taps) so a
// panel's block of weights (14 x 256 floats = 14 KiB) stays in L1 while it sweeps the
// tiles of a few output rows; those rows' inputs stay in L2. The first block writes the
// output tile (plus the bias), later blocks add to it.
//
// Threads and determinism. The output rows of all images and groups are cut into one
// contiguous range per thread. A row's every output element is summed by one thread in
// the same order (blocks of c, then c, then taps) whatever the cut, so the result does
// not depend on the thread count, bit for bit.
//
// The backward pass for the input, with stride 1, is the same kernel: dx is a convolution
// of dout with the weights transposed (input and output channels swapped) and flipped
// (tap (i, j) -> (kh-1-i, kw-1-j)), padding d (k - 1) - p (see conv2d_backward_input_direct).
#include <omp.h>
#include <cstdlib>

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "ops/cpu/conv2d.h"
#include "ops/cpu/parallel.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mila::cpu {

#if defined(__AVX512F__)

bool conv2d_direct_available() { return true; }

namespace {

constexpr int kVec = 16;             // fp32 lanes in a 512-bit register
constexpr int kMaxRows = 14;         // output channels in a register tile, at most
constexpr int kMaxNV = 3;
static const bool kPrefetch = getenv("KPF") != nullptr;            // vectors of output columns in a register tile, at most
static int64_t kKC = getenv("KKC") ? atol(getenv("KKC")) : 256;
constexpr int64_t kRowsPerBlockMax = 16; static int64_t kRowsPerBlock = getenv("KRB") ? atol(getenv("KRB")) : 4;
// Floats of weights (one block of the sum) and output rows that a group of panels keeps in
// L2 (1 MiB per core here) while the block's input rows take most of the rest.
static int64_t kPanelGroupFloats = getenv("KPG") ? atol(getenv("KPG")) : 96 * 1024;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t part_begin(int64_t len, int64_t parts, int64_t r) { return len * r / parts; }
__mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// A per-thread buffer that grows on demand and is kept between calls; Slot tells apart
// buffers that are alive at the same time.
template <int Slot>
float* buffer(size_t count) {
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  thread_local std::unique_ptr<float[], Free> data;
  thread_local size_t capacity = 0;
  if (count > capacity) {
    data.reset();
    data.reset(static_cast<float*>(::operator new[](count * sizeof(float), std::align_val_t(64))));
    capacity = count;
  }
  return data.get();
}

// ---------------------------------------------------------------------------------------
// The weights of the convolution being computed, read through strides:
//   W(group, o, c, i, j) = w[group * s_group + o * s_o + c * s_c + i * s_i + j * s_j]
// The forward reads the weight tensor as it is; the input backward reads it transposed and
// flipped (negative s_i, s_j).
// ---------------------------------------------------------------------------------------
struct WeightLayout {
  const float* w;
  int64_t s_group, s_o, s_c, s_i, s_j;
};

// Where the kernels read the input: plane (n, c) starts at xq + (n Cin + c) * plane;
// within it, the input column u = iw + pw (the padded column) of row ih is at
//   ih * row + (u % sw) * wq + u / sw.
// With no column padding and stride 1 this is x itself (wq = row = W).
struct InputLayout {
  const float* xq;
  int64_t image, chan, row, wq;
};

// Everything a thread needs to compute rows of the output.
struct Plan {
  Conv2dGeometry g;
  int64_t Cg, Og, T;
  int64_t mr, nv;                // register tile: mr output channels x nv vectors of columns
  int64_t panels;                // panels of <= mr output channels per group
  int64_t c_blocks;              // blocks of input channels in the sum
  const float* wpk;              // packed weights, [group][panel][c][tap][mr]
  InputLayout in;
  std::vector<int64_t> col_off;  // per tap column j: offset of column ow = 0 in a row
  float* out;
  const float* bias;             // [Cout] or null
};

// ---------------------------------------------------------------------------------------
// Micro-kernel
// ---------------------------------------------------------------------------------------
struct TileArgs {
  const float* w;        // packed panel at the block's first channel: [c][tap][mr]
  int64_t w_c;           // floats between channels in w (T * mr)
  const float* x;        // input plane of the block's first channel, at column ow0
  int64_t x_c;           // floats between input planes
  int64_t channels;      // channels in this block
  const int64_t* x_off;  // per valid tap of this row: offset of its input row and column
  const int64_t* w_off;  // per valid tap: offset of its mr weights within a channel
  int taps;
  float* out;            // output tile at (first channel of the panel, oh, ow0)
  int64_t out_rs;        // floats between output channels (OH * OW)
  int cols;              // valid columns of the tile, 1..nv * 16
  const float* bias;     // the panel's bias (applied by the first block) or null
  bool first;            // first block of the sum: overwrite the tile
};

// out tile (ROWS output channels x cols columns) (+)= sum over the block's steps of
// weights (broadcast) x inputs (vectors). ROWS and NV are template parameters so the
// accumulators stay in registers.
template <int ROWS, int NV>
void tile_kernel(const TileArgs& t) {
  __m512 acc[ROWS][NV];
#pragma GCC unroll 16
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const __mmask16 tail = first_lanes(t.cols - (NV - 1) * kVec);

  for (int64_t c = 0; c < t.channels; ++c) {
    const float* xc = t.x + c * t.x_c;
    const float* wc = t.w + c * t.w_c;
    if (kPrefetch && c + 1 < t.channels)
      for (int k = 0; k < t.taps; ++k) {
        _mm_prefetch(reinterpret_cast<const char*>(xc + t.x_c + t.x_off[k]), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(xc + t.x_c + t.x_off[k] + NV * kVec - 1), _MM_HINT_T0);
      }
    for (int k = 0; k < t.taps; ++k) {
      const float* xs = xc + t.x_off[k];
      const float* ws = wc + t.w_off[k];
      __m512 b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(tail, xs + v * kVec) : _mm512_loadu_ps(xs + v * kVec);
#pragma GCC unroll 16
      for (int r = 0; r < ROWS; ++r) {
        const __m512 a = _mm512_set1_ps(ws[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
      }
    }
  }

#pragma GCC unroll 16
  for (int r = 0; r < ROWS; ++r) {
    float* o = t.out + r * t.out_rs;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 m = v == NV - 1 ? tail : __mmask16(0xFFFF);
      __m512 res = acc[r][v];
      if (!t.first)
        res = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o + v * kVec), res);
      else if (t.bias)
        res = _mm512_add_ps(_mm512_set1_ps(t.bias[r]), res);
      _mm512_mask_storeu_ps(o + v * kVec, m, res);
    }
  }
}

using KernelFn = void (*)(const TileArgs&);
// Kernels exist for ROWS * NV <= 28 accumulators (with NV loads and one broadcast: 32 registers).
template <int ROWS, int NV>
constexpr KernelFn kernel_or_null() {
  if constexpr (ROWS * NV <= 28) return &tile_kernel<ROWS, NV>;
  return nullptr;
}
template <int NV, int... R>
constexpr std::array<KernelFn, sizeof...(R)> kernels_for_rows(std::integer_sequence<int, R...>) {
  return {kernel_or_null<R + 1, NV>()...};
}
// kKernels[nv - 1][rows - 1]
constexpr std::array<std::array<KernelFn, kMaxRows>, kMaxNV> kKernels = {
    kernels_for_rows<1>(std::make_integer_sequence<int, kMaxRows>{}),
    kernels_for_rows<2>(std::make_integer_sequence<int, kMaxRows>{}),
    kernels_for_rows<3>(std::make_integer_sequence<int, kMaxRows>{})};

// ---------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------
// Panel p of group grp: dst[(c * T + tap) * mr + r] = W(grp, o0 + r, c, i, j), zero for
// rows past the panel.
void pack_panel(const Plan& plan, const WeightLayout& wl, int64_t grp, int64_t p, float* dst) {
  const Conv2dGeometry& g = plan.g;
  const int64_t o0 = part_begin(plan.Og, plan.panels, p), rows = part_begin(plan.Og, plan.panels, p + 1) - o0;
  const float* src = wl.w + grp * wl.s_group + o0 * wl.s_o;
  for (int64_t c = 0; c < plan.Cg; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* d = dst + ((c * g.kh + i) * g.kw + j) * plan.mr;
        const float* s = src + c * wl.s_c + i * wl.s_i + j * wl.s_j;
        for (int64_t r = 0; r < rows; ++r) d[r] = s[r * wl.s_o];
        for (int64_t r = rows; r < plan.mr; ++r) d[r] = 0.f;
      }
}

// Input plane (n, c) into the padded, phase-split layout of InputLayout.
void copy_plane(const Conv2dGeometry& g, const float* x, const InputLayout& in, float* dst) {
  for (int64_t h = 0; h < g.H; ++h)
    for (int64_t phase = 0; phase < g.sw; ++phase) {
      float* d = dst + h * in.row + phase * in.wq;  // dst is at (n, c)
      const float* s = x + h * g.W;
      for (int64_t q = 0; q < in.wq; ++q) {
        const int64_t iw = q * g.sw + phase - g.pw;
        d[q] = (iw >= 0 && iw < g.W) ? s[iw] : 0.f;
      }
    }
}

// ---------------------------------------------------------------------------------------
// Rows of the output
// ---------------------------------------------------------------------------------------
// Output rows [oh0, oh1) of image n, group grp.
void compute_rows(const Plan& plan, int64_t n, int64_t grp, int64_t oh0, int64_t oh1) {
  const Conv2dGeometry& g = plan.g;
  const int64_t rows = oh1 - oh0, T = plan.T;
  // Valid taps of each row: x offset (input row and column) and weight offset.
  constexpr int64_t kMaxTaps = 64;  // up to 8x8 kernels without touching the heap
  int64_t x_off[kRowsPerBlockMax * kMaxTaps], w_off[kRowsPerBlockMax * kMaxTaps];
  std::vector<int64_t> x_off_big, w_off_big;
  int64_t* xo = x_off;
  int64_t* wo = w_off;
  if (T > kMaxTaps) {
    x_off_big.resize(size_t(rows * T));
    w_off_big.resize(size_t(rows * T));
    xo = x_off_big.data();
    wo = w_off_big.data();
  }
  int taps[kRowsPerBlockMax];
  for (int64_t r = 0; r < rows; ++r) {
    int count = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ih = (oh0 + r) * g.sh - g.ph + i * g.dh;
      if (ih < 0 || ih >= g.H) continue;  // the tap's input row is padding: all zeros
      for (int64_t j = 0; j < g.kw; ++j) {
        xo[r * T + count] = ih * plan.in.row + plan.col_off[size_t(j)];
        wo[r * T + count] = (i * g.kw + j) * plan.mr;
        ++count;
      }
    }
    taps[r] = count;
  }

  // Rows in the order (oh mod dh, oh): rows dh apart read two of their three input rows in
  // common, so the second finds them in L1.
  int64_t order[kRowsPerBlockMax];
  {
    int64_t k = 0;
    const int64_t step = getenv("KORD") ? g.dh : 1;
    for (int64_t m = 0; m < step; ++m)
      for (int64_t r = m; r < rows; r += step) order[k++] = r;
  }
  const float* x_img = plan.in.xq + n * plan.in.image + grp * plan.Cg * plan.in.chan;
  float* out_img = plan.out + (n * g.Cout + grp * plan.Og) * g.OH * g.OW;
  const int64_t ohw = g.OH * g.OW;
  TileArgs t;
  t.w_c = T * plan.mr;
  t.x_c = plan.in.chan;
  t.out_rs = ohw;
  const int64_t nr = plan.nv * kVec;
  // Panels in groups whose weights block and output rows fit in L2 next to the input rows.
  const int64_t per_channel = (plan.Cg * T) / plan.c_blocks + rows * g.OW;  // floats per output channel
  const int64_t group_panels = std::clamp<int64_t>(kPanelGroupFloats / (per_channel * plan.mr), 1, plan.panels);
  for (int64_t p0 = 0; p0 < plan.panels; p0 += group_panels) {
    const int64_t p1 = std::min(plan.panels, p0 + group_panels);
    for (int64_t b = 0; b < plan.c_blocks; ++b) {
      const int64_t c0 = part_begin(plan.Cg, plan.c_blocks, b), c1 = part_begin(plan.Cg, plan.c_blocks, b + 1);
      t.channels = c1 - c0;
      t.first = b == 0;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t o0 = part_begin(plan.Og, plan.panels, p), o1 = part_begin(plan.Og, plan.panels, p + 1);
        t.w = plan.wpk + ((grp * plan.panels + p) * plan.Cg + c0) * T * plan.mr;
        t.bias = plan.bias ? plan.bias + grp * plan.Og + o0 : nullptr;
        for (int64_t rr = 0; rr < rows; ++rr) {
          const int64_t r = order[rr];
          t.x_off = xo + r * T;
          t.w_off = wo + r * T;
          t.taps = taps[r];
          for (int64_t ow0 = 0; ow0 < g.OW; ow0 += nr) {
            t.cols = int(std::min<int64_t>(nr, g.OW - ow0));
            t.x = x_img + c0 * plan.in.chan + ow0;
            t.out = out_img + o0 * ohw + (oh0 + r) * g.OW + ow0;
            kKernels[ceil_div(t.cols, kVec) - 1][o1 - o0 - 1](t);
          }
        }
      }
    }
  }
}

// The whole convolution out = conv(x, W) (+ bias) of geometry g, W read through wl.
void direct_conv(float* out, const float* x, const float* bias, const Conv2dGeometry& g, const WeightLayout& wl) {
  Plan plan;
  plan.g = g;
  plan.Cg = g.cin_g();
  plan.Og = g.cout_g();
  plan.T = g.kh * g.kw;
  // Register tile: 14 x 32 (16 loads per 28 FMAs) or 9 x 48 (12 loads per 27 FMAs) when
  // rows are wide enough to fill 48-column tiles.
  const bool wide = getenv("KNV3") && g.OW % 48 == 0;
  plan.mr = wide ? 9 : 14;
  plan.nv = wide ? 3 : 2;
  plan.panels = ceil_div(plan.Og, plan.mr);
  plan.c_blocks = ceil_div(plan.Cg, std::max<int64_t>(1, kKC / plan.T));
  plan.out = out;
  plan.bias = bias;

  // The input layout: padded and phase-split when there is column padding (of either
  // sign: the input backward pass may crop) or a column stride.
  const bool rowmajor = getenv("KLAY") != nullptr;
  const bool copy = rowmajor || g.pw != 0 || g.sw != 1;
  const int64_t used_cols = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;  // padded columns read
  plan.in.wq = copy ? ceil_div(used_cols, g.sw) : g.W;
  if (rowmajor) {
    plan.in.chan = g.sw * plan.in.wq;
    plan.in.row = g.Cin * plan.in.chan;
    plan.in.image = g.H * plan.in.row;
  } else {
    plan.in.row = copy ? g.sw * plan.in.wq : g.W;
    plan.in.chan = g.H * plan.in.row;
    plan.in.image = g.Cin * plan.in.chan;
  }
  plan.in.xq = copy ? buffer<1>(size_t(g.N * plan.in.image)) : x;
  plan.col_off.resize(size_t(g.kw));
  for (int64_t j = 0; j < g.kw; ++j)
    plan.col_off[size_t(j)] = copy ? ((j * g.dw) % g.sw) * plan.in.wq + (j * g.dw) / g.sw : j * g.dw;

  const int64_t panel_floats = plan.Cg * plan.T * plan.mr;
  float* wpk = buffer<0>(size_t(g.groups * plan.panels * panel_floats));
  plan.wpk = wpk;

  const int64_t row_units = g.N * g.groups * g.OH;  // (n, group, oh), in this order
  const int threads = int(std::max<int64_t>(1, std::min<int64_t>(num_threads(), row_units)));
  float* xq = const_cast<float*>(plan.in.xq);
#pragma omp parallel num_threads(threads)
  {
    const int team = omp_get_num_threads(), tid = omp_get_thread_num();
#pragma omp for schedule(static) nowait
    for (int64_t q = 0; q < g.groups * plan.panels; ++q)
      pack_panel(plan, wl, q / plan.panels, q % plan.panels, wpk + q * panel_floats);
    if (copy) {
#pragma omp for schedule(static) nowait
      for (int64_t q = 0; q < g.N * g.Cin; ++q)
        copy_plane(g, x + q * g.H * g.W, plan.in, xq + (q / g.Cin) * plan.in.image + (q % g.Cin) * plan.in.chan);
    }
#pragma omp barrier
    // This thread's contiguous range of output rows, in blocks of rows of one (n, group).
    const int64_t u1 = part_begin(row_units, team, tid + 1);
    for (int64_t u = part_begin(row_units, team, tid); u < u1;) {
      const int64_t image_group = u / g.OH, oh0 = u % g.OH;
      const int64_t oh1 = std::min({g.OH, oh0 + kRowsPerBlock, oh0 + (u1 - u)});
      compute_rows(plan, image_group / g.groups, image_group % g.groups, oh0, oh1);
      u += oh1 - oh0;
    }
  }
}

}  // namespace

void conv2d_forward_direct(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                           const Conv2dGeometry& g) {
  if (x.dtype() != DType::Float32) throw std::invalid_argument("conv2d_forward_direct: float32 only");
  const int64_t T = g.kh * g.kw;
  const WeightLayout wl{weight.data<float>(), g.cout_g() * g.cin_g() * T, g.cin_g() * T, T, g.kw, 1};
  direct_conv(out.data<float>(), x.data<float>(), bias.defined() ? bias.data<float>() : nullptr, g, wl);
}

// dx[n, c, h, w] = sum over o, i, j of w[o, c, i, j] dout[n, o, (h + ph - i dh), (w + pw - j dw)]
// (stride 1). With i' = kh - 1 - i this is a convolution of dout, padding
// dh (kh - 1) - ph, with the weights W'[c, o, i', j'] = w[o, c, kh - 1 - i', kw - 1 - j']:
// output channels and input channels trade places (within each group) and taps are flipped.
void conv2d_backward_input_direct(const Tensor& dx, const Tensor& dout, const Tensor& weight,
                                  const Conv2dGeometry& g) {
  if (dx.dtype() != DType::Float32) throw std::invalid_argument("conv2d_backward_input_direct: float32 only");
  if (g.sh != 1 || g.sw != 1) throw std::invalid_argument("conv2d_backward_input_direct: stride 1 only");
  Conv2dGeometry t = g;
  t.Cin = g.Cout;
  t.H = g.OH;
  t.W = g.OW;
  t.Cout = g.Cin;
  t.OH = g.H;
  t.OW = g.W;
  t.ph = g.dh * (g.kh - 1) - g.ph;
  t.pw = g.dw * (g.kw - 1) - g.pw;
  const int64_t T = g.kh * g.kw, Cg = g.cin_g(), Og = g.cout_g();
  const WeightLayout wl{weight.data<float>() + (g.kh - 1) * g.kw + (g.kw - 1), Og * Cg * T, T, Cg * T, -g.kw, -1};
  direct_conv(dx.data<float>(), dout.data<float>(), nullptr, t, wl);
}

#else  // no AVX-512: version 1 serves every call

bool conv2d_direct_available() { return false; }

void conv2d_forward_direct(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dGeometry&) {
  throw std::logic_error("conv2d_forward_direct: built without AVX-512");
}
void conv2d_backward_input_direct(const Tensor&, const Tensor&, const Tensor&, const Conv2dGeometry&) {
  throw std::logic_error("conv2d_backward_input_direct: built without AVX-512");
}

#endif

}  // namespace mila::cpu
