// ila.cpp - the fused CPU kernel of inter-frame local attention, forward and backward.
// Formulas: ops/ila.h. Derivation, memory and a walk through these loops: docs/ila.md.
//
// Shape legend
//   B batch, D key channels (a, b), C value channels (v, out, dout), H x W the map.
//   L window side, r = (L - 1) / 2, N = L * L offsets. Offset o = (oy, ox), oy, ox in
//   [-r, r], has index (oy + r) * L + (ox + r), so the opposite offset -o has index N-1-o.
//   V lanes of one vector (16 floats or 8 doubles); Wv = W rounded up to whole vectors.
//   A band is R rows [y0, y0 + R).
//
// Two kernels do all the heavy work; every pass of the op is one of them:
//   window_dot  S[o, p] += sum_k X[k, p] * Y[k, p + o]     logits (X = a, Y = b),
//                                                           dW     (X = dout, Y = v)
//   window_sum  Z[k, p]  = sum_o S[o, p] * Y[k, p + o]     out (S = W, Y = v),
//                                                           da  (S = dlogit, Y = b),
//                                                           db  (S = dlogit^T, Y = a),
//                                                           dv  (S = W^T, Y = dout)
// The backward's scatters (db, dv: pixel p sends to p + o) are written as gathers: the
// source pixel q collects from p = q - o. With o' = -o that is window_sum over the
// "transposed" weights S^T[o', q] = S[-o', q + o'] (transpose_band). So every output
// element is written by exactly one task, in a fixed order: no atomics, no races, and
// the same bits with any number of threads.
//
// Work split. A task is one image and one band of rows; bands are cut so that every
// thread gets the same number of tasks (bands_per_image). The cut does not change any
// result: each output element sums the same terms in the same order whatever band holds it.
// Inside a task, channels go in blocks of kBlock: a block's rows of the band (and r rows
// either side) stay in L1/L2 while every output row reads them L times, and the band's
// softmax weights [R][N][Wv] (thread-local scratch) serve every block.
//
// Borders. The kernels read the tensors where they are (no padded copies): a source row
// outside the map is skipped, columns outside load as zeros through lane masks (see "the
// two kernels"); the softmax gives the offsets outside the map weight 0 (softmax_band).
//
// Passes:
//   forward     per band: logits = window_dot(a, b) over D; masked softmax -> weights (also
//               saved for the backward); out = window_sum(weights, v) over C.
//   backward 1  per band: dW = window_dot(dout, v) and dv = window_sum(W^T, dout) over C,
//               reading the same dout rows; dlogit = W * (dW - sum_o W dW) -> scratch.
//   backward 2  per band, once every band's dlogit exists (db reads the neighbours' rows):
//               da = window_sum(dlogit, b), db = window_sum(dlogit^T, a) over D.
//
// Vectors. The inner loops use 64-byte vectors of T through GCC/Clang vector extensions
// (lanewise + - * < and ?:): one zmm register on AVX-512 with -march=native, where
// `acc += s * y` is one FMA; the compiler splits them on narrower machines. x0 walks W in
// whole vectors (W is contiguous). A few AVX-512 intrinsics (masked loads, valignd,
// streaming stores) sit in small helpers, each with a portable fallback. The kernels are
// bound by loads, not FMAs: the two versions of each ("the two kernels" below) are about
// sharing loads among FMAs and avoiding loads that straddle cache lines. Outputs larger
// than kStreamBytes are written with streaming stores (store_streaming).
#include "ops/cpu/ila.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/simd.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// 64-byte vector types change the calling convention on machines without AVX-512. Every
// function that takes one is internal to this file, so GCC's ABI note is moot here.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mila::cpu {
namespace {

// Channels processed together (see "Work split").
constexpr int64_t kBlock = 16;
// v1 window_dot: offsets that share one load of X; window_sum (v1, v2): channels that
// share one load of the weights. The sums of a group live in registers (8 or 16 of
// AVX-512's 32 vector registers): the loops over a group carry `#pragma GCC unroll`,
// without which GCC keeps a 16-vector array in memory and stores it on every iteration.
constexpr int kDotGroup = 8;
constexpr int kSumGroup = 16;
// Bands: at most this many rows; at least this many when more bands are wanted to balance
// the threads (a band's first and last r rows of source are read by its neighbour too).
constexpr int64_t kMaxRows = 12;
constexpr int64_t kMinRows = 4;

// ---- vectors ----------------------------------------------------------------------------

using simd::Simd;
using simd::vec;
using simd::ivec;
using simd::load;
using simd::store;
using simd::splat;
using simd::exp_nonpositive;

// A whole vector to 64-byte aligned p with a streaming (non-temporal) store: the line goes
// to memory without being read into the cache first (no read-for-ownership) and without
// evicting anything. For outputs too big to stay in cache this saves a third of the
// traffic (measured: 25% of the forward's time at 72 x 96 x 512). AVX-512 only; a plain
// store elsewhere. stream_fence() orders these stores before the data is handed over.
template <typename T>
inline void store_streaming(T* p, vec<T> x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4)
    _mm512_stream_ps(p, std::bit_cast<__m512>(x));
  else
    _mm512_stream_pd(p, std::bit_cast<__m512d>(x));
#else
  store(p, x, Simd<T>::lanes);
#endif
}
inline void stream_fence() {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

template <typename T>
inline ivec<T> lane_index() {  // 0, 1, 2, ...
  ivec<T> i{};
  for (int64_t l = 0; l < Simd<T>::lanes; ++l) i[l] = l;
  return i;
}

// Bits of the lanes l (l < V) whose column x + l is inside [0, W).
inline uint32_t lanes_inside(int64_t x, int64_t W, int64_t V) {
  const int64_t lo = std::clamp<int64_t>(-x, 0, V), hi = std::clamp<int64_t>(W - x, 0, V);
  if (hi <= lo) return 0;
  return uint32_t(((uint64_t(1) << hi) - 1) & ~((uint64_t(1) << lo) - 1));
}
template <typename T>
constexpr uint32_t kAllLanes = uint32_t((uint64_t(1) << Simd<T>::lanes) - 1);

// The lanes set in `lanes` from p, 0 in the others, which are never read: p may point
// before or after the row (a border vector's window), only the lanes inside are touched.
template <typename T>
inline vec<T> load_masked(const T* p, uint32_t lanes) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4)
    return std::bit_cast<vec<T>>(_mm512_maskz_loadu_ps(__mmask16(lanes), p));
  else
    return std::bit_cast<vec<T>>(_mm512_maskz_loadu_pd(__mmask8(lanes), p));
#else
  vec<T> x{};
  for (int64_t l = 0; l < Simd<T>::lanes; ++l)
    if (lanes >> l & 1) x[l] = p[l];
  return x;
#endif
}

// ---- scratch memory ---------------------------------------------------------------------

// Per-thread buffers (ops/cpu/scratch.h), kept across tasks and calls:
//   kBandA, kBandB  a task's bands [R][N][Wv] (logits or weights, their gradients, transposes)
//   kBandW          the backward's copy of a band of the forward's weights
//   kLine           one row of W values
//   kDlogit         the backward's dlogit [B, N, H, W], in the calling thread's set
enum IlaScratch { kBandA, kBandB, kBandW, kLine, kDlogit };

// ---- geometry ---------------------------------------------------------------------------

struct Geometry {
  int64_t H, W, L, r, N;
  int64_t V, Wv;                 // lanes per vector; W rounded up to whole vectors
  std::vector<int64_t> shift;    // shift[o] = oy * W + ox: from pixel p to p + o in a plane
  std::vector<uint32_t> lanes;   // lanes[(x0 / V) * N + o]: lanes_inside(x0 + ox, W, V)
  std::vector<uint32_t> own;     // own[x0 / V]: lanes_inside(x0, W, V), the pixels themselves

  Geometry(int64_t H_, int64_t W_, int64_t L_, int64_t V_)
      : H(H_), W(W_), L(L_), r((L_ - 1) / 2), N(L_ * L_), V(V_), Wv((W_ + V_ - 1) / V_ * V_) {
    for (int64_t o = 0; o < N; ++o) shift.push_back(oy(o) * W + ox(o));
    for (int64_t x0 = 0; x0 < Wv; x0 += V) {
      own.push_back(lanes_inside(x0, W, V));
      for (int64_t o = 0; o < N; ++o) lanes.push_back(lanes_inside(x0 + ox(o), W, V));
    }
  }
  int64_t oy(int64_t o) const { return o / L - r; }
  int64_t ox(int64_t o) const { return o % L - r; }
  int64_t plane() const { return H * W; }
  // Whether the window of the vector at x0 crosses a border or the vector passes W (v1).
  bool edge(int64_t x0) const { return x0 < r || x0 + V + r > W; }
};

// The offsets whose source row y + oy lies inside the map, an index range [first, last):
// rows outside contribute nothing (weight 0), so the kernels skip them.
struct OffsetRange {
  int64_t first, last;
};
inline OffsetRange offsets_inside(int64_t y, const Geometry& g) {
  const int64_t lo = std::max(-g.r, -y), hi = std::min(g.r, g.H - 1 - y);
  return {(lo + g.r) * g.L, (hi + g.r + 1) * g.L};
}

// dst [R][N][Wv] = src[o][y0 + i][x] for the band's rows, 0 for x >= W. src: N planes H x W.
template <typename T>
void load_band(T* dst, const T* src, int64_t y0, int64_t R, const Geometry& g) {
  std::fill(dst, dst + R * g.N * g.Wv, T(0));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t o = 0; o < g.N; ++o) {
      const T* s = src + o * g.plane() + (y0 + i) * g.W;
      std::copy(s, s + g.W, dst + (i * g.N + o) * g.Wv);
    }
}

// dst [R][N][Wv] = S^T for the band: dst[i][o][x] = src[N-1-o][y0 + i + oy][x + ox], 0 where
// (y0 + i + oy, x + ox) is outside the map (and for x >= W). The pixel q = (y0 + i, x)
// reads, through offset o, the value that p = q + o sent to q through its offset -o.
template <typename T>
void transpose_band(T* dst, const T* src, int64_t y0, int64_t R, const Geometry& g) {
  std::fill(dst, dst + R * g.N * g.Wv, T(0));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t o = 0; o < g.N; ++o) {
      const int64_t y = y0 + i + g.oy(o), ox = g.ox(o);
      if (y < 0 || y >= g.H) continue;
      const T* s = src + (g.N - 1 - o) * g.plane() + y * g.W;
      T* d = dst + (i * g.N + o) * g.Wv;
      for (int64_t x = std::max<int64_t>(0, -ox); x < std::min(g.W, g.W - ox); ++x) d[x] = s[x + ox];
    }
}

// ---- the two kernels ------------------------------------------------------------------
//
// Two versions of each, picked by window_dot / window_sum at the end of this section:
//   v1 (any L)       loads every shifted vector y[x0 + ox .. x0 + ox + V) from memory.
//                    window_dot shares each load of x among kDotGroup offsets, window_sum
//                    each load of the weights among kSumGroup channels.
//   v2 (L = 3, 5, 7) adds: each source row is loaded as three whole vectors around x0,
//                        prev = y[x0 - V .. x0),  cur = y[x0 .. x0 + V),  next = y[x0 + V ..)
//                    and the L shifted vectors are cut from them in registers
//                    (shift_lanes: AVX-512's valignd / valignq). In v1 all but one of the
//                    L loads straddle two cache lines, which costs the load unit about
//                    twice; v2 spends 3 aligned loads (when W is a multiple of V) per L
//                    FMAs. Measured on Zen 4: v2 takes 25-30% less time per FMA.
// Both handle the borders the same way: a source row outside the map is skipped
// (offsets_inside), columns outside load as zeros through lane masks on the vectors whose
// window crosses the left or right border (and the last one when V does not divide W).

// K consecutive H x W planes of one image, as the kernels read them.
template <typename T>
struct Planes {
  const T* data;
  const T* at(int64_t k, int64_t y, int64_t x, const Geometry& g) const { return data + k * g.plane() + y * g.W + x; }
};

// Stores z[j * z_plane] = acc[j] for j < G (n lanes each), streaming when asked.
template <typename T, int G>
inline void store_group(T* z, int64_t z_plane, int64_t n, bool stream, const vec<T>* acc) {
  if (stream) {
#pragma GCC unroll 16
    for (int j = 0; j < G; ++j) store_streaming(z + j * z_plane, acc[j]);
  } else {
#pragma GCC unroll 16
    for (int j = 0; j < G; ++j) store(z + j * z_plane, acc[j], n);
  }
}

// ---- v1: any L

// window_dot, G offsets of one vector of pixels: s[j * Wv] += sum_k x[k] * y[k][shift[j]]
// (planes `plane` apart). The G sums stay in registers over the K channels; each load of
// x serves G FMAs. lanes[j], own: the masks of the y and x vectors (edge vectors).
template <typename T, int G, bool kEdge>
inline void window_dot_group_v1(T* s, const T* x, const T* y, int64_t plane, int64_t K, const int64_t* shift,
                                const uint32_t* lanes, uint32_t own, int64_t Wv) {
  vec<T> acc[G];
#pragma GCC unroll 16
  for (int j = 0; j < G; ++j) acc[j] = vec<T>{};
  for (int64_t k = 0; k < K; ++k) {
    if constexpr (kEdge) {
      const vec<T> xv = load_masked(x + k * plane, own);
#pragma GCC unroll 16
      for (int j = 0; j < G; ++j) acc[j] += xv * load_masked(y + k * plane + shift[j], lanes[j]);
    } else {
      const vec<T> xv = load(x + k * plane);
#pragma GCC unroll 16
      for (int j = 0; j < G; ++j) acc[j] += xv * load(y + k * plane + shift[j]);
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < G; ++j) store(s + j * Wv, load(s + j * Wv) + acc[j], Simd<T>::lanes);
}

template <typename T, bool kEdge>
void window_dot_vector_v1(T* s, const T* x, const T* y, int64_t K, OffsetRange range, int64_t x0, const Geometry& g) {
  const uint32_t* lanes = &g.lanes[size_t(x0 / g.V * g.N)];
  const uint32_t own = g.own[size_t(x0 / g.V)];
  int64_t o = range.first;
  for (; o + kDotGroup <= range.last; o += kDotGroup)
    window_dot_group_v1<T, kDotGroup, kEdge>(s + o * g.Wv, x, y, g.plane(), K, &g.shift[size_t(o)], lanes + o, own,
                                             g.Wv);
  for (; o < range.last; ++o)
    window_dot_group_v1<T, 1, kEdge>(s + o * g.Wv, x, y, g.plane(), K, &g.shift[size_t(o)], lanes + o, own, g.Wv);
}

// window_sum, G channels of one vector of pixels: z[j * plane] = sum_o s[o * Wv] *
// y[j * plane + shift[o]] over the offsets in range. Each load of s serves G FMAs.
template <typename T, int G, bool kEdge>
inline void window_sum_group_v1(T* z, int64_t n, bool stream, const T* s, const T* y, int64_t plane,
                                OffsetRange range, const int64_t* shift, const uint32_t* lanes, int64_t Wv) {
  vec<T> acc[G];
#pragma GCC unroll 16
  for (int j = 0; j < G; ++j) acc[j] = vec<T>{};
  for (int64_t o = range.first; o < range.last; ++o) {
    const vec<T> sv = load(s + o * Wv);
    const T* p = y + shift[o];
    if constexpr (kEdge) {
#pragma GCC unroll 16
      for (int j = 0; j < G; ++j) acc[j] += sv * load_masked(p + j * plane, lanes[o]);
    } else {
#pragma GCC unroll 16
      for (int j = 0; j < G; ++j) acc[j] += sv * load(p + j * plane);
    }
  }
  store_group<T, G>(z, plane, n, stream, acc);
}

template <typename T, bool kEdge>
void window_sum_vector_v1(T* z, int64_t n, bool stream, const T* s, const T* y, int64_t K, OffsetRange range,
                          int64_t x0, const Geometry& g) {
  const int64_t plane = g.plane();
  const int64_t* shift = g.shift.data();
  const uint32_t* lanes = &g.lanes[size_t(x0 / g.V * g.N)];
  int64_t k = 0;
  for (; k + kSumGroup <= K; k += kSumGroup)
    window_sum_group_v1<T, kSumGroup, kEdge>(z + k * plane, n, stream, s, y + k * plane, plane, range, shift, lanes,
                                             g.Wv);
  for (; k + 4 <= K; k += 4)
    window_sum_group_v1<T, 4, kEdge>(z + k * plane, n, stream, s, y + k * plane, plane, range, shift, lanes, g.Wv);
  for (; k < K; ++k)
    window_sum_group_v1<T, 1, kEdge>(z + k * plane, n, stream, s, y + k * plane, plane, range, shift, lanes, g.Wv);
}

// ---- v2: L = 3, 5, 7

// Lanes [V + d, 2V + d) of the concatenation (lo, hi) for -V < d < 0, i.e. the vector that
// starts |d| lanes before hi; and lanes [d, V + d) for 0 < d < V: d lanes after lo's start.
template <typename T, int d>
inline vec<T> shift_lanes(vec<T> lo, vec<T> hi) {
  constexpr int V = int(Simd<T>::lanes);
  constexpr int start = d < 0 ? V + d : d;  // first lane taken from the pair (lo, hi)
#if defined(__AVX512F__)
  // The masked forms with every lane selected: the plain _mm512_alignr_epi32 of GCC 12
  // passes an undefined vector through and trips -Wmaybe-uninitialized. Same instruction.
  const __m512i a = std::bit_cast<__m512i>(lo), b = std::bit_cast<__m512i>(hi);
  if constexpr (sizeof(T) == 4)
    return std::bit_cast<vec<T>>(_mm512_mask_alignr_epi32(a, __mmask16(0xFFFF), b, a, start));
  else
    return std::bit_cast<vec<T>>(_mm512_mask_alignr_epi64(a, __mmask8(0xFF), b, a, start));
#else
  vec<T> out;
  for (int l = 0; l < V; ++l) out[l] = l + start < V ? lo[l + start] : hi[l + start - V];
  return out;
#endif
}

// The pixels x0 + ox .. x0 + ox + V (-V < ox < V) from prev, cur, next (see above).
template <typename T, int ox>
inline vec<T> shifted(vec<T> prev, vec<T> cur, vec<T> next) {
  if constexpr (ox < 0)
    return shift_lanes<T, ox>(prev, cur);
  else if constexpr (ox == 0)
    return cur;
  else
    return shift_lanes<T, ox>(cur, next);
}

// The masks of prev, cur and next at x0, for edge vectors (a mask of 0 loads nothing).
struct RowMasks {
  uint32_t prev, cur, next;
  RowMasks(int64_t x0, const Geometry& g)
      : prev(lanes_inside(x0 - g.V, g.W, g.V)), cur(lanes_inside(x0, g.W, g.V)), next(lanes_inside(x0 + g.V, g.W, g.V)) {}
  // Whether prev, cur and next all lie inside the row: plain loads.
  static bool interior(int64_t x0, const Geometry& g) { return x0 >= g.V && x0 + 2 * g.V <= g.W; }
};

template <typename T, bool kEdge>
inline void load_row(const T* p, const RowMasks& m, vec<T>& prev, vec<T>& cur, vec<T>& next) {
  constexpr int64_t V = Simd<T>::lanes;
  if constexpr (kEdge) {
    prev = load_masked(p - V, m.prev), cur = load_masked(p, m.cur), next = load_masked(p + V, m.next);
  } else {
    prev = load(p - V), cur = load(p), next = load(p + V);
  }
}

// window_dot, the L offsets of one source row for one vector of pixels:
// s[ox * Wv] += sum_k x[k] * y[k][x0 + ox] (y: the source row at x0). 4 loads per L FMAs.
template <typename T, int L, bool kEdge>
inline void window_dot_row_v2(T* s, const T* x, const T* y, int64_t plane, int64_t K, const RowMasks& masks,
                              int64_t Wv) {
  constexpr int r = (L - 1) / 2;
  vec<T> acc[L];
#pragma GCC unroll 8
  for (int ox = 0; ox < L; ++ox) acc[ox] = vec<T>{};
  for (int64_t k = 0; k < K; ++k) {
    const vec<T> xv = kEdge ? load_masked(x + k * plane, masks.cur) : load(x + k * plane);
    vec<T> prev, cur, next;
    load_row<T, kEdge>(y + k * plane, masks, prev, cur, next);
    [&]<int... i>(std::integer_sequence<int, i...>) {  // acc[ox] += xv * (row shifted by ox - r)
      ((acc[i] += xv * shifted<T, i - r>(prev, cur, next)), ...);
    }(std::make_integer_sequence<int, L>{});
  }
#pragma GCC unroll 8
  for (int ox = 0; ox < L; ++ox) store(s + ox * Wv, load(s + ox * Wv) + acc[ox], Simd<T>::lanes);
}

template <typename T, int L, bool kEdge>
void window_dot_vector_v2(T* s, const T* x, const T* y, int64_t K, OffsetRange range, int64_t x0, const Geometry& g) {
  const RowMasks masks(x0, g);
  for (int64_t o = range.first; o < range.last; o += L)  // a source row at a time
    window_dot_row_v2<T, L, kEdge>(s + o * g.Wv, x, y + (o / L - g.r) * g.W, g.plane(), K, masks, g.Wv);
}

// window_sum, G channels of one vector of pixels (see window_sum_group_v1).
template <typename T, int L, int G, bool kEdge>
inline void window_sum_group_v2(T* z, int64_t n, bool stream, const T* s, const T* y, int64_t plane,
                                OffsetRange range, const RowMasks& masks, int64_t W, int64_t Wv) {
  constexpr int r = (L - 1) / 2;
  vec<T> acc[G];
#pragma GCC unroll 16
  for (int j = 0; j < G; ++j) acc[j] = vec<T>{};
  for (int64_t o = range.first; o < range.last; o += L) {  // a source row at a time
    vec<T> sv[L];  // the weights of the row's L offsets, shared by the G channels
#pragma GCC unroll 8
    for (int ox = 0; ox < L; ++ox) sv[ox] = load(s + (o + ox) * Wv);
    const T* row = y + (o / L - r) * W;
#pragma GCC unroll 16
    for (int j = 0; j < G; ++j) {
      vec<T> prev, cur, next;
      load_row<T, kEdge>(row + j * plane, masks, prev, cur, next);
      [&]<int... i>(std::integer_sequence<int, i...>) {  // acc[j] += sv[ox] * (row shifted by ox - r)
        ((acc[j] += sv[i] * shifted<T, i - r>(prev, cur, next)), ...);
      }(std::make_integer_sequence<int, L>{});
    }
  }
  store_group<T, G>(z, plane, n, stream, acc);
}

template <typename T, int L, bool kEdge>
void window_sum_vector_v2(T* z, int64_t n, bool stream, const T* s, const T* y, int64_t K, OffsetRange range,
                          int64_t x0, const Geometry& g) {
  const RowMasks masks(x0, g);
  const int64_t plane = g.plane();
  int64_t k = 0;
  for (; k + kSumGroup <= K; k += kSumGroup)
    window_sum_group_v2<T, L, kSumGroup, kEdge>(z + k * plane, n, stream, s, y + k * plane, plane, range, masks, g.W,
                                                g.Wv);
  for (; k + 4 <= K; k += 4)
    window_sum_group_v2<T, L, 4, kEdge>(z + k * plane, n, stream, s, y + k * plane, plane, range, masks, g.W, g.Wv);
  for (; k < K; ++k)
    window_sum_group_v2<T, L, 1, kEdge>(z + k * plane, n, stream, s, y + k * plane, plane, range, masks, g.W, g.Wv);
}

// ---- the launchers

// S[i][o][x] += sum_k X[k][y][x] * Y[k][y + oy][x + ox], y = y0 + i, for the R rows of a
// band, the offsets whose source row is inside the map, and x < Wv (0 past W).
//   S     [R][N][Wv]
//   X, Y  K planes
template <typename T, int L>  // L = 0: v1, any L
void window_dot_rows(T* S, Planes<T> X, Planes<T> Y, int64_t K, int64_t y0, int64_t R, const Geometry& g) {
  for (int64_t i = 0; i < R; ++i) {
    const int64_t y = y0 + i;
    const OffsetRange range = offsets_inside(y, g);
    for (int64_t x0 = 0; x0 < g.Wv; x0 += g.V) {
      T* s = S + i * g.N * g.Wv + x0;
      const T *x = X.at(0, y, x0, g), *src = Y.at(0, y, x0, g);
      if constexpr (L == 0) {
        if (g.edge(x0))
          window_dot_vector_v1<T, true>(s, x, src, K, range, x0, g);
        else
          window_dot_vector_v1<T, false>(s, x, src, K, range, x0, g);
      } else {
        if (RowMasks::interior(x0, g))
          window_dot_vector_v2<T, L, false>(s, x, src, K, range, x0, g);
        else
          window_dot_vector_v2<T, L, true>(s, x, src, K, range, x0, g);
      }
    }
  }
}
template <typename T>
void window_dot(T* S, Planes<T> X, Planes<T> Y, int64_t K, int64_t y0, int64_t R, const Geometry& g) {
  switch (g.L) {
    case 3: return window_dot_rows<T, 3>(S, X, Y, K, y0, R, g);
    case 5: return window_dot_rows<T, 5>(S, X, Y, K, y0, R, g);
    case 7: return window_dot_rows<T, 7>(S, X, Y, K, y0, R, g);
    default: return window_dot_rows<T, 0>(S, X, Y, K, y0, R, g);
  }
}

// Z[k][y][x] = sum_o S[i][o][x] * Y[k][y + oy][x + ox], y = y0 + i, for the R rows of a
// band and x < W; streaming stores when `stream` (see streams()).
//   Z  K output planes
//   S  [R][N][Wv], 0 for the offsets outside the map
//   Y  K planes
template <typename T, int L>  // L = 0: v1, any L
void window_sum_rows(T* Z, const T* S, Planes<T> Y, int64_t K, int64_t y0, int64_t R, const Geometry& g, bool stream) {
  for (int64_t i = 0; i < R; ++i) {
    const int64_t y = y0 + i;
    const OffsetRange range = offsets_inside(y, g);
    for (int64_t x0 = 0; x0 < g.Wv; x0 += g.V) {
      const int64_t n = std::min(g.V, g.W - x0);
      T* z = Z + y * g.W + x0;
      const T* s = S + i * g.N * g.Wv + x0;
      const T* src = Y.at(0, y, x0, g);
      if constexpr (L == 0) {
        if (g.edge(x0))
          window_sum_vector_v1<T, true>(z, n, stream, s, src, K, range, x0, g);
        else
          window_sum_vector_v1<T, false>(z, n, stream, s, src, K, range, x0, g);
      } else {
        if (RowMasks::interior(x0, g))
          window_sum_vector_v2<T, L, false>(z, n, stream, s, src, K, range, x0, g);
        else
          window_sum_vector_v2<T, L, true>(z, n, stream, s, src, K, range, x0, g);
      }
    }
  }
}
template <typename T>
void window_sum(T* Z, const T* S, Planes<T> Y, int64_t K, int64_t y0, int64_t R, const Geometry& g, bool stream) {
  switch (g.L) {
    case 3: return window_sum_rows<T, 3>(Z, S, Y, K, y0, R, g, stream);
    case 5: return window_sum_rows<T, 5>(Z, S, Y, K, y0, R, g, stream);
    case 7: return window_sum_rows<T, 7>(Z, S, Y, K, y0, R, g, stream);
    default: return window_sum_rows<T, 0>(Z, S, Y, K, y0, R, g, stream);
  }
}

// ---- softmax ----------------------------------------------------------------------------

// In place on S [R][N][Wv], the logits of the band's rows: the softmax over the offsets
// whose pixel lies inside the map, with its maximum subtracted first; 0 for the other
// offsets and for the lanes past W.
template <typename T>
void softmax_band(T* S, int64_t y0, int64_t R, const Geometry& g) {
  using Vec = vec<T>;
  using Mask = ivec<T>;
  using Index = typename Simd<T>::index;
  const T minus_inf = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < R; ++i)
    for (int64_t x0 = 0; x0 < g.Wv; x0 += g.V) {
      T* s = S + i * g.N * g.Wv + x0;
      const Mask col = lane_index<T>() + Index(x0);
      // Lanes whose pixel p + o is inside the map.
      auto inside = [&](int64_t o) -> Mask {
        const int64_t y = y0 + i + g.oy(o);
        if (y < 0 || y >= g.H) return Mask{};
        const Mask c = col + Index(g.ox(o));
        return (c >= 0) & (c < Index(g.W)) & (col < Index(g.W));
      };
      Vec m = splat(minus_inf);
      for (int64_t o = 0; o < g.N; ++o) {
        const Vec l = load(s + o * g.Wv);
        m = (inside(o) & (l > m)) ? l : m;
      }
      m = (m == minus_inf) ? Vec{} : m;  // lanes past W have no offset inside
      Vec total{};
      for (int64_t o = 0; o < g.N; ++o) {
        const Vec e = exp_nonpositive(inside(o) ? load(s + o * g.Wv) - m : splat(minus_inf));
        store(s + o * g.Wv, e, g.V);
        total += e;
      }
      const Vec inv = (total > T(0)) ? T(1) / total : Vec{};
      for (int64_t o = 0; o < g.N; ++o) store(s + o * g.Wv, load(s + o * g.Wv) * inv, g.V);
    }
}

// ---- passes -----------------------------------------------------------------------------

// Bands per image: at most kMaxRows rows each (at least kMinRows when the map allows), and
// a count that gives every thread the same number of (image, band) tasks when possible.
int64_t bands_per_image(int64_t B, int64_t H) {
  const int64_t threads = num_threads();
  const int64_t bands = std::max<int64_t>(1, (H + kMaxRows - 1) / kMaxRows);
  const int64_t most = std::max<int64_t>(1, H / kMinRows);
  for (int64_t more = bands; more <= most; ++more)
    if ((B * more) % threads == 0) return more;
  return bands;
}

// Calls task(n, y0, R) for every image n and band [y0, y0 + R), in parallel.
template <typename F>
void for_each_band(int64_t B, int64_t H, F&& task) {
  const int64_t bands = bands_per_image(B, H);
  parallel_for(B * bands, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / bands, j = t % bands;
      const int64_t y0 = H * j / bands, y1 = H * (j + 1) / bands;
      if (y1 > y0) task(n, y0, y1 - y0);
    }
  });
}

// Bytes above which an output of window_sum is written with streaming stores
// (store_streaming): it would not stay in cache for its reader anyway (a quarter of this
// machine's 32 MiB L3).
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// Whether window_sum may stream into t: big, and every vector it stores 64-byte aligned
// (rows of whole vectors from an aligned start).
template <typename T>
bool streams(const Tensor& t, const Geometry& g) {
  return t.defined() && int64_t(t.nbytes()) >= kStreamBytes && g.W % g.V == 0 &&
         reinterpret_cast<uintptr_t>(t.data<T>()) % 64 == 0;
}

// One image's planes: [K][H][W] starting at plane 0 of image n.
template <typename T>
T* image(const Tensor& t, int64_t n) {
  return t.data<T>() + n * t.size(1) * t.size(2) * t.size(3);
}

template <typename T>
void forward(const Tensor& out_t, const Tensor& weights_t, const Tensor& a_t, const Tensor& b_t, const Tensor& v_t,
             const Geometry& g) {
  const int64_t B = a_t.size(0), D = a_t.size(1), C = v_t.size(1);
  const bool stream = streams<T>(out_t, g);
  for_each_band(B, g.H, [&](int64_t n, int64_t y0, int64_t R) {
    const T *a = image<T>(a_t, n), *b = image<T>(b_t, n), *v = image<T>(v_t, n);
    T *out = image<T>(out_t, n), *weights = image<T>(weights_t, n);
    T* S = scratch<T>(kBandA, R * g.N * g.Wv);  // logits, then weights [R][N][Wv]
    // Logits over D, one channel block at a time.
    std::fill(S, S + R * g.N * g.Wv, T(0));
    for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
      const int64_t K = std::min(kBlock, D - d0);
      window_dot(S, Planes<T>{a + d0 * g.plane()}, Planes<T>{b + d0 * g.plane()}, K, y0, R, g);
    }
    softmax_band(S, y0, R, g);
    for (int64_t i = 0; i < R; ++i)
      for (int64_t o = 0; o < g.N; ++o) {
        const T* s = S + (i * g.N + o) * g.Wv;
        std::copy(s, s + g.W, weights + o * g.plane() + (y0 + i) * g.W);
      }
    // Weighted sum over the window, one block of C at a time.
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const int64_t K = std::min(kBlock, C - c0);
      window_sum(out + c0 * g.plane(), S, Planes<T>{v + c0 * g.plane()}, K, y0, R, g, stream);
    }
    if (stream) stream_fence();
  });
}

template <typename T>
void backward(const Tensor& da_t, const Tensor& db_t, const Tensor& dv_t, const Tensor& dout_t, const Tensor& weights_t,
              const Tensor& a_t, const Tensor& b_t, const Tensor& v_t, const Geometry& g) {
  const int64_t B = a_t.size(0), D = a_t.size(1), C = v_t.size(1);
  const bool need_dlogit = da_t.defined() || db_t.defined(), need_dv = dv_t.defined();
  const bool stream_dv = streams<T>(dv_t, g), stream_da = streams<T>(da_t, g), stream_db = streams<T>(db_t, g);
  // dlogit [B, N, H, W]: written by pass 1, read by pass 2 (db's gather crosses bands). In
  // the calling thread's scratch; the tasks use other slots.
  T* dlogit_all = need_dlogit ? scratch<T>(kDlogit, B * g.N * g.plane()) : nullptr;

  // Pass 1: dW and dv over C, then dlogit.
  for_each_band(B, g.H, [&](int64_t n, int64_t y0, int64_t R) {
    const T *v = image<T>(v_t, n), *dout = image<T>(dout_t, n), *weights = image<T>(weights_t, n);
    const int64_t band = R * g.N * g.Wv;
    T* dW = need_dlogit ? scratch<T>(kBandA, band) : nullptr;
    T* Wt = need_dv ? scratch<T>(kBandB, band) : nullptr;
    if (need_dlogit) std::fill(dW, dW + band, T(0));
    if (need_dv) transpose_band(Wt, weights, y0, R, g);
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const int64_t K = std::min(kBlock, C - c0);
      const Planes<T> G{dout + c0 * g.plane()};
      if (need_dlogit) window_dot(dW, G, Planes<T>{v + c0 * g.plane()}, K, y0, R, g);
      if (need_dv) window_sum(image<T>(dv_t, n) + c0 * g.plane(), Wt, G, K, y0, R, g, stream_dv);
    }
    if (stream_dv) stream_fence();
    if (!need_dlogit) return;
    // dlogit = W * (dW - sum_o W dW), the softmax rule; 0 wherever W is 0.
    T* Wb = scratch<T>(kBandW, band);
    T* dot = scratch<T>(kLine, g.W);
    load_band(Wb, weights, y0, R, g);
    T* dlogit = dlogit_all + n * g.N * g.plane();
    for (int64_t i = 0; i < R; ++i) {
      const T* w = Wb + i * g.N * g.Wv;
      const T* dw = dW + i * g.N * g.Wv;
      std::fill(dot, dot + g.W, T(0));
      for (int64_t o = 0; o < g.N; ++o)
        for (int64_t x = 0; x < g.W; ++x) dot[x] += w[o * g.Wv + x] * dw[o * g.Wv + x];
      for (int64_t o = 0; o < g.N; ++o) {
        T* dl = dlogit + o * g.plane() + (y0 + i) * g.W;
        for (int64_t x = 0; x < g.W; ++x) dl[x] = w[o * g.Wv + x] * (dw[o * g.Wv + x] - dot[x]);
      }
    }
  });
  if (!need_dlogit) return;

  // Pass 2: da and db over D.
  for_each_band(B, g.H, [&](int64_t n, int64_t y0, int64_t R) {
    const T *a = image<T>(a_t, n), *b = image<T>(b_t, n);
    const T* dlogit = dlogit_all + n * g.N * g.plane();
    const int64_t band = R * g.N * g.Wv;
    T* S = da_t.defined() ? scratch<T>(kBandA, band) : nullptr;
    T* St = db_t.defined() ? scratch<T>(kBandB, band) : nullptr;
    if (S) load_band(S, dlogit, y0, R, g);
    if (St) transpose_band(St, dlogit, y0, R, g);
    for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
      const int64_t K = std::min(kBlock, D - d0);
      if (S) window_sum(image<T>(da_t, n) + d0 * g.plane(), S, Planes<T>{b + d0 * g.plane()}, K, y0, R, g, stream_da);
      if (St) window_sum(image<T>(db_t, n) + d0 * g.plane(), St, Planes<T>{a + d0 * g.plane()}, K, y0, R, g, stream_db);
    }
    if (stream_da || stream_db) stream_fence();
  });
}

}  // namespace

void ila_forward(const Tensor& out, const Tensor& weights, const Tensor& a, const Tensor& b, const Tensor& v,
                 int64_t L) {
  dispatch_floating(a.dtype(), "ila", [&]<typename T>() {
    forward<T>(out, weights, a, b, v, Geometry(a.size(2), a.size(3), L, Simd<T>::lanes));
  });
}

void ila_backward(const Tensor& da, const Tensor& db, const Tensor& dv, const Tensor& dout, const Tensor& weights,
                  const Tensor& a, const Tensor& b, const Tensor& v, int64_t L) {
  dispatch_floating(a.dtype(), "ila_backward", [&]<typename T>() {
    backward<T>(da, db, dv, dout, weights, a, b, v, Geometry(a.size(2), a.size(3), L, Simd<T>::lanes));
  });
}

}  // namespace mila::cpu
