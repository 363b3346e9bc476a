// losses.cpp - CPU kernels of the fused losses and normalize (formulas: ops/losses.h).
//
// Shape legend: logits, dlogits [N, K, S] (K classes at stride S, S = H * W); target, lse
// [N, S]; normal_loss pred, target [N, C, S] with mask [N, S]; normalize x [O, C, I] (the
// norm runs over C, stride I); every other loss works on flat [n] arrays. All contiguous.
//
// These kernels are memory-bound: a few flops per value read. Two things keep them at
// the memory's speed:
//   - Vector math. std::exp / std::log / std::sqrt do not vectorize without -ffast-math (and
//     the auto-vectorizer gives up on loops with float comparisons), and a scalar expf costs
//     more than reading its argument from DRAM. The math that needs it is written on 64-byte
//     vectors (GCC's vector extension) with Cephes' exp and log polynomials for float (1 to
//     2.5 ulp, ops/cpu/simd.h); float64 (the gradient checks' type) calls the std:: functions
//     per lane.
//   - One DRAM pass per tensor. cross_entropy and normalize reduce over channels that are S
//     (or I) values apart; they work on a block of kPixels neighbouring positions at a time,
//     looping channels outside and positions inside (contiguous, vectorized), and the block
//     (K * kPixels values) stays in L1 between its passes.
//
// Determinism: every sum is cut into blocks fixed by the shapes (kSumBlock elements or one
// pixel block), each summed in double by one thread (kLanes interleaved accumulators,
// combined by a fixed tree), and the block sums are added in block order. Threads only
// decide who computes which block, so results do not depend on the thread count.
#include "ops/cpu/losses.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/cpu/simd.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mila::cpu {
namespace {

// ---- vectors and vectorizable math ----------------------------------------------------------

// The vectors of simd.h: lanewise math, comparisons as masks, `mask ? a : b`.
using simd::Simd;
using simd::vec;
using simd::ivec;
using simd::load;
using simd::store;
using simd::splat;
using simd::exp_nonpositive;  // for x <= 0: exp(x - max), exp(-|x|)
using simd::log_ge1;          // for x >= 1: a sum of exps whose largest term is 1
using simd::log1p_unit;       // for e in [0, 1]: ln(1 + exp(-|x|))

template <typename Vec>  // Vec: vec<float> or vec<double>
inline Vec vmax(Vec a, Vec b) {
  return a < b ? b : a;  // std::max's rule per lane: a NaN in b is skipped, one in a kept
}
template <typename Vec>
inline Vec vabs(Vec a) {
  return a < 0 ? -a : a;
}

// Lanewise square root, correctly rounded. std::sqrt does not vectorize unless -fno-math-errno
// is given (it may set errno), so the AVX-512 instruction is called where there is one.
inline vec<double> vsqrt(vec<double> x) {
#if defined(__AVX512F__)
  // (The zero-masking form with every lane selected: GCC 12's _mm512_sqrt_pd draws a
  // -Wmaybe-uninitialized warning from its own header.)
  return std::bit_cast<vec<double>>(_mm512_maskz_sqrt_pd(__mmask8(0xff), std::bit_cast<__m512d>(x)));
#else
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::sqrt(x[l]);
  return x;
#endif
}

// ---- fixed-order sums ------------------------------------------------------------------------

constexpr int kLanes = 16;              // interleaved double accumulators of a flat sum
constexpr int64_t kSumBlock = 1 << 14;  // elements per block of a flat sum (a multiple of every vector width)
constexpr int64_t kPixels = 64;         // positions per block of a reduction over channels

// Adds acc's lanes by a fixed pairwise tree: (0 + N/2, 1 + N/2 + 1, ...), then halves again.
template <int N>
inline double combine_lanes(double (&acc)[N]) {
  for (int width = N / 2; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  return acc[0];
}

// Sums, over i in [0, n), term(i).value and term(i).weight in double, in an order fixed by n:
// blocks of kSumBlock, kLanes interleaved accumulators inside a block (term is inlined and
// the lane loop vectorizes), block sums added in block order.
template <typename F>
WeightedSums fixed_order_sums(int64_t n, F&& term) {
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<WeightedSums> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t end = std::min(n, (b + 1) * kSumBlock);
      double value[kLanes] = {}, weight[kLanes] = {};
      int64_t i = b * kSumBlock;
      for (; i + kLanes <= end; i += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          const WeightedSums t = term(i + l);
          value[l] += t.value;
          weight[l] += t.weight;
        }
      for (int l = 0; i < end; ++i, ++l) {
        const WeightedSums t = term(i);
        value[l] += t.value;
        weight[l] += t.weight;
      }
      partial[size_t(b)] = {combine_lanes(value), combine_lanes(weight)};
    }
  });
  WeightedSums total;
  for (const WeightedSums& p : partial) total.value += p.value, total.weight += p.weight;
  return total;
}

// The same for a term computed a vector at a time: term(i, count) gives the values of
// i .. i + count - 1 in its first count lanes (count <= lanes) and 0 in the others.
template <typename T, typename F>
double fixed_order_vector_sum(int64_t n, F&& term) {
  constexpr int64_t V = Simd<T>::lanes;
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t end = std::min(n, (b + 1) * kSumBlock);
      double acc[V] = {};
      for (int64_t i = b * kSumBlock; i < end; i += V) {
        const vec<T> t = term(i, std::min(V, end - i));
        for (int64_t l = 0; l < V; ++l) acc[l] += double(t[l]);
      }
      partial[size_t(b)] = combine_lanes(acc);
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

template <typename T>
inline T sign(T v) {  // -1, 0, 1 (0 at 0, as PyTorch's sgn); written without branches so loops vectorize
  return T(v > T(0)) - T(v < T(0));
}

// A mask value as a weight: 1 where the mask is non-zero (valid), 0 elsewhere; uint8 or floating.
template <typename T, typename M>
inline T mask_weight(M m) {
  return m != M(0) ? T(1) : T(0);
}

template <typename T, typename F>
decltype(auto) dispatch_mask(const Tensor& mask, F&& f) {
  if (mask.dtype() == DType::UInt8) return f.template operator()<uint8_t>();
  return f.template operator()<T>();
}

// ---- cross_entropy ---------------------------------------------------------------------------
//
// The targets are checked and counted first (one read of the int64 labels), so that the
// main pass knows the mean's divisor and can write the gradient scaled already.
//
// Main pass: a block is kClassPixels consecutive positions of one image (the last block of
// an image may be shorter): NV vectors of V lanes side by side, vector j covering positions
// j V .. j V + V - 1. Per block, with e = exp(x - m):
//   1. m  = max over the K classes, the logits copied into a contiguous tile
//   2. s  = sum of e, x_t = the target's logit; e replaces the logits in the tile
//      loss terms lse - x_t = m + ln s - x_t, summed in double
//   3. when the gradient is wanted: dlogits = scale * (e / s - onehot) at non-ignored
//      positions, 0 at ignored ones
// Passes 2 and 3 read the tile from L1 (13 x 64 x 4 bytes = 3.3 KB at K = 13), so DRAM sees
// the logits read once and the gradient written once.

// 64 positions: 4 vectors wide. Wider blocks were slower in a single-thread micro-benchmark
// (1.5 ms to read and max the logits at 64, 2.0 at 128, 4.3 at 256): each block reads K rows
// of kClassPixels values S apart, and wide blocks keep more lines of all K streams in flight.
constexpr int64_t kClassPixels = 64;

CrossEntropyTargets ce_targets(const Tensor& target, int64_t K, int64_t ignore) {
  const int64_t n = target.numel();
  const int64_t* t = target.data<int64_t>();
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<CrossEntropyTargets> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      CrossEntropyTargets r;
      for (int64_t i = b * kSumBlock; i < std::min(n, (b + 1) * kSumBlock); ++i) {
        if (t[i] == ignore) continue;
        if (t[i] >= 0 && t[i] < K) {
          ++r.count;
        } else if (r.bad_index < 0) {
          r.bad_index = i, r.bad_value = t[i];
        }
      }
      partial[size_t(b)] = r;
    }
  });
  CrossEntropyTargets total;
  for (const CrossEntropyTargets& p : partial) {  // block order: the first bad position overall
    total.count += p.count;
    if (total.bad_index < 0 && p.bad_index >= 0) total.bad_index = p.bad_index, total.bad_value = p.bad_value;
  }
  return total;
}

template <typename T>
double ce_forward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, int64_t ignore, double scale) {
  constexpr int64_t V = Simd<T>::lanes, NV = kClassPixels / V;
  const int64_t N = logits.size(0), K = logits.size(1), S = logits.size(2);
  const int64_t per_image = (S + kClassPixels - 1) / kClassPixels, blocks = N * per_image;
  const T* xp = logits.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T* dp = dlogits.defined() ? dlogits.data<T>() : nullptr;
  constexpr T kMinusInf = -std::numeric_limits<T>::infinity();
  std::vector<double> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kClassPixels * K)), [&](int64_t b0, int64_t b1) {
    // The block's logits, then their exps, [K, NV] vectors. A copy rather than rereading the
    // logits in place: the K rows are S * 4 bytes apart, a multiple of 4 KiB at the model's
    // sizes (288 x 384), so they all map to the same L1 sets and evict one another.
    std::vector<vec<T>> tile(size_t(K * NV));
    const int64_t ignore_index = ignore;  // a local: the loops below store through pointers
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / per_image, p0 = (b % per_image) * kClassPixels, len = std::min(kClassPixels, S - p0);
      const int64_t nv = (len + V - 1) / V;  // vectors in use: fewer in a short block ([N, K] logits: one)
      const T* x = xp + n * K * S + p0;      // x[k * S + p]: class k at position p0 + p
      // Per position: the target class as T, -1 when ignored (the targets are checked already).
      T cls_s[kClassPixels];
      const int64_t* t = tp + n * S + p0;
      for (int64_t p = 0; p < len; ++p) cls_s[p] = t[p] != ignore_index ? T(t[p]) : T(-1);
      for (int64_t p = len; p < kClassPixels; ++p) cls_s[p] = T(-1);
      int64_t cnt[NV];
      vec<T> m[NV], s[NV], xt[NV], cls[NV];
      for (int64_t j = 0; j < nv; ++j) {
        cnt[j] = std::min(len - j * V, V);
        cls[j] = load(cls_s + j * V, V);
        m[j] = splat(kMinusInf);
        s[j] = xt[j] = vec<T>{};
      }
      for (int64_t k = 0; k < K; ++k)  // pass 1: the max (lanes past the block's end: -inf)
        for (int64_t j = 0; j < nv; ++j) {
          const vec<T> v = load(x + k * S + j * V, cnt[j], kMinusInf);
          tile[size_t(k * NV + j)] = v;
          m[j] = vmax(m[j], v);
        }
      for (int64_t k = 0; k < K; ++k)  // pass 2: e = exp(x - m), its sum, the target's logit
        for (int64_t j = 0; j < nv; ++j) {
          vec<T>& v = tile[size_t(k * NV + j)];
          const vec<T> e = exp_nonpositive(v - m[j]);
          s[j] += e;
          xt[j] += cls[j] == T(k) ? v : vec<T>{};
          if (dp) v = e;  // kept for pass 3
        }
      // The block's loss terms, lane by lane into double accumulators (a fixed order).
      double acc[V] = {};
      for (int64_t j = 0; j < nv; ++j) {
        const vec<T> term = cls[j] >= T(0) ? m[j] + log_ge1(s[j]) - xt[j] : vec<T>{};
        for (int64_t l = 0; l < V; ++l) acc[l] += double(term[l]);
      }
      partial[size_t(b)] = combine_lanes(acc);
      if (!dp) continue;
      T* d = dp + n * K * S + p0;
      for (int64_t j = 0; j < nv; ++j) {  // pass 3: the gradient
        const vec<T> w = cls[j] >= T(0) ? splat(T(scale)) : vec<T>{};  // 0 at ignored positions
        const vec<T> inv_s = T(1) / s[j];
        for (int64_t k = 0; k < K; ++k) {
          const vec<T> onehot = cls[j] == T(k) ? splat(T(1)) : vec<T>{};
          store(d + k * S + j * V, w * (tile[size_t(k * NV + j)] * inv_s - onehot), cnt[j]);
        }
      }
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// ---- l1, masked l1, bce ------------------------------------------------------------------------

template <typename T>
double l1_sum(const Tensor& a, const Tensor& b) {
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  return fixed_order_sums(a.numel(), [&](int64_t i) { return WeightedSums{double(std::abs(ap[i] - bp[i])), 0.0}; }).value;
}

template <typename T>
void l1_grad(const Tensor& da, const Tensor& db, const Tensor& a, const Tensor& b, double scale) {
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* dap = da.defined() ? da.data<T>() : nullptr;
  T* dbp = db.defined() ? db.data<T>() : nullptr;
  const T s = T(scale);
  parallel_for(a.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (dap)
      for (int64_t i = begin; i < end; ++i) dap[i] = s * sign(ap[i] - bp[i]);
    if (dbp)
      for (int64_t i = begin; i < end; ++i) dbp[i] = -s * sign(ap[i] - bp[i]);
  });
}

template <typename T, typename M>
WeightedSums masked_l1_sums(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  const T* pp = pred.data<T>();
  const T* tp = target.data<T>();
  const M* mp = mask.data<M>();
  return fixed_order_sums(pred.numel(), [&](int64_t i) {
    const T m = mask_weight<T>(mp[i]);
    // Selected rather than multiplied by m: 0 * NaN would let an invalid pixel's NaN through.
    const T v = m != T(0) ? std::abs(pp[i] - tp[i]) : T(0);
    return WeightedSums{double(v), double(m)};
  });
}

template <typename T, typename M>
void masked_l1_grad(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                    const Tensor& mask, double scale) {
  const T* pp = pred.data<T>();
  const T* tp = target.data<T>();
  const M* mp = mask.data<M>();
  T* dpp = dpred.defined() ? dpred.data<T>() : nullptr;
  T* dtp = dtarget.defined() ? dtarget.data<T>() : nullptr;
  const T s = T(scale);
  parallel_for(pred.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (dpp)
      for (int64_t i = begin; i < end; ++i) dpp[i] = s * mask_weight<T>(mp[i]) * sign(pp[i] - tp[i]);
    if (dtp)
      for (int64_t i = begin; i < end; ++i) dtp[i] = -s * mask_weight<T>(mp[i]) * sign(pp[i] - tp[i]);
  });
}

template <typename T>
double bce_sum(const Tensor& x, const Tensor& t) {
  const T* xp = x.data<T>();
  const T* tp = t.data<T>();
  return fixed_order_vector_sum<T>(x.numel(), [&](int64_t i, int64_t count) {
    const vec<T> v = load(xp + i, count), target = load(tp + i, count);  // lanes past count: 0 -> term ln 2, dropped below
    const vec<T> term = vmax(v, vec<T>{}) - v * target + log1p_unit(exp_nonpositive(-vabs(v)));
    if (count == Simd<T>::lanes) return term;
    vec<T> kept{};
    for (int64_t l = 0; l < count; ++l) kept[l] = term[l];
    return kept;
  });
}

template <typename T>
void bce_grad(const Tensor& dx, const Tensor& dt, const Tensor& x, const Tensor& t, double scale) {
  constexpr int64_t V = Simd<T>::lanes;
  const T* xp = x.data<T>();
  const T* tp = t.data<T>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  T* dtp = dt.defined() ? dt.data<T>() : nullptr;
  const T s = T(scale);
  parallel_for(x.numel(), kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i += V) {
      const int64_t count = std::min(V, end - i);
      const vec<T> v = load(xp + i, count);
      if (dxp) {
        // sigmoid(v) without overflow: e = exp(-|v|) <= 1; 1 / (1 + e) for v >= 0, e / (1 + e) below.
        const vec<T> e = exp_nonpositive(-vabs(v));
        const vec<T> sig = (v >= T(0) ? splat(T(1)) : e) / (e + T(1));
        store(dxp + i, s * (sig - load(tp + i, count)), count);
      }
      if (dtp) store(dtp + i, -s * v, count);
    }
  });
}

// ---- normal_loss -------------------------------------------------------------------------------
//
// Per pixel (sums over the C channels, in double): pp = |p|^2, tt = |t|^2, pt = p . t;
// dp = max(|p|, eps), dt = max(|t|, eps); cos = pt / (dp dt) (the dot of the normalized vectors).
// Blocks of kPixels positions of one image, channels outside, positions inside, as in
// cross_entropy.

constexpr double kNormalEps = 1e-12;  // normalize's default eps

struct PixelSums {
  double pp = 0, tt = 0, pt = 0;
};

// sums[p] for the len positions of a block starting at pr / ta (channel c at c * S).
template <typename T>
void pixel_sums(PixelSums* sums, const T* pr, const T* ta, int64_t C, int64_t S, int64_t len) {
  for (int64_t p = 0; p < len; ++p) sums[p] = PixelSums{};
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < len; ++p) {
      const double a = double(pr[c * S + p]), b = double(ta[c * S + p]);
      sums[p].pp += a * a;
      sums[p].tt += b * b;
      sums[p].pt += a * b;
    }
}

template <typename T, typename M>
WeightedSums normal_sums(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  const int64_t N = pred.size(0), C = pred.size(1), S = pred.size(2);
  const int64_t per_image = (S + kPixels - 1) / kPixels, blocks = N * per_image;
  const T* pp = pred.data<T>();
  const T* tp = target.data<T>();
  const M* mp = mask.data<M>();
  std::vector<WeightedSums> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kPixels * C)), [&](int64_t b0, int64_t b1) {
    PixelSums sums[kPixels];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / per_image, p0 = (b % per_image) * kPixels, len = std::min(kPixels, S - p0);
      pixel_sums(sums, pp + n * C * S + p0, tp + n * C * S + p0, C, S, len);
      const M* m = mp + n * S + p0;
      WeightedSums block;  // in position order
      for (int64_t p = 0; p < len; ++p) {
        if (mask_weight<T>(m[p]) == T(0)) continue;  // an invalid pixel's values are never touched
        const double dp = std::max(std::sqrt(sums[p].pp), kNormalEps), dt = std::max(std::sqrt(sums[p].tt), kNormalEps);
        block.value += sums[p].pt / (dp * dt);
        block.weight += 1;
      }
      partial[size_t(b)] = block;
    }
  });
  WeightedSums total;
  for (const WeightedSums& p : partial) total.value += p.value, total.weight += p.weight;
  return total;
}

// d cos / d p_c = t_c / (dp dt) - p_c pt / (dp^2 dt |p|)   (second term only where |p| >= eps:
// below, dp = eps is a constant), and the same with p and t swapped. The kernel writes
// scale * m * that, so scale = -dout / (number of valid pixels) gives the loss's gradient.
template <typename T, typename M>
void normal_grad(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                 const Tensor& mask, double scale) {
  const int64_t N = pred.size(0), C = pred.size(1), S = pred.size(2);
  const int64_t per_image = (S + kPixels - 1) / kPixels, blocks = N * per_image;
  const T* pp = pred.data<T>();
  const T* tp = target.data<T>();
  const M* mp = mask.data<M>();
  T* dpp = dpred.defined() ? dpred.data<T>() : nullptr;
  T* dtp = dtarget.defined() ? dtarget.data<T>() : nullptr;
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kPixels * C)), [&](int64_t b0, int64_t b1) {
    PixelSums sums[kPixels];
    T cross[kPixels], self_p[kPixels], self_t[kPixels];  // d = cross * other - self * own
    bool valid[kPixels];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / per_image, p0 = (b % per_image) * kPixels, len = std::min(kPixels, S - p0);
      const int64_t base = n * C * S + p0;
      pixel_sums(sums, pp + base, tp + base, C, S, len);
      const M* m = mp + n * S + p0;
      for (int64_t p = 0; p < len; ++p) {
        const double np = std::sqrt(sums[p].pp), nt = std::sqrt(sums[p].tt);
        const double dp = std::max(np, kNormalEps), dt = std::max(nt, kNormalEps);
        valid[p] = mask_weight<T>(m[p]) != T(0);
        const double w = valid[p] ? scale : 0.0;
        cross[p] = T(w / (dp * dt));
        self_p[p] = np >= kNormalEps ? T(w * sums[p].pt / (dp * dp * dt * np)) : T(0);
        self_t[p] = nt >= kNormalEps ? T(w * sums[p].pt / (dt * dt * dp * nt)) : T(0);
      }
      // Selected, not multiplied by a 0 weight: 0 * NaN would let an invalid pixel's NaN through.
      for (int64_t c = 0; c < C; ++c) {
        const T* pr = pp + base + c * S;
        const T* ta = tp + base + c * S;
        if (dpp)
          for (int64_t p = 0; p < len; ++p)
            dpp[base + c * S + p] = valid[p] ? cross[p] * ta[p] - self_p[p] * pr[p] : T(0);
        if (dtp)
          for (int64_t p = 0; p < len; ++p)
            dtp[base + c * S + p] = valid[p] ? cross[p] * pr[p] - self_t[p] * ta[p] : T(0);
      }
    }
  });
}

// ---- normalize ---------------------------------------------------------------------------------

// Per block of kPixels positions: ss[p] = sum over C of x^2 (double, vectorized over p by
// the compiler), then the per-position step on 8 positions at a time in vec<double> (the
// square root and the clamp, which the compiler would leave scalar), then the channel loop.
// T8: 8 lanes of T (the per-position results, converted from the 8 doubles).
template <typename T>
struct Eight {
  typedef T vec __attribute__((vector_size(8 * sizeof(T))));
};
template <typename T>
using T8 = typename Eight<T>::vec;
constexpr int64_t kD = Simd<double>::lanes;  // 8

template <typename T>
void normalize_fwd(const Tensor& y, const Tensor& x, double eps) {
  const int64_t O = x.size(0), C = x.size(1), I = x.size(2);
  const int64_t per_outer = (I + kPixels - 1) / kPixels, blocks = O * per_outer;
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kPixels * C)), [&](int64_t b0, int64_t b1) {
    double ss[kPixels];
    T denom[kPixels];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b / per_outer, i0 = (b % per_outer) * kPixels, len = std::min(kPixels, I - i0);
      const T* xb = xp + o * C * I + i0;
      T* yb = yp + o * C * I + i0;
      for (int64_t p = 0; p < kPixels; ++p) ss[p] = 0;  // all kPixels: the vector step reads them
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < len; ++p) ss[p] += double(xb[c * I + p]) * double(xb[c * I + p]);
      // PyTorch: x / norm.clamp_min(eps), the norm and the clamp in x's dtype.
      for (int64_t j = 0; j < kPixels; j += kD) {
        T8<T> d = __builtin_convertvector(vsqrt(load(ss + j, kD)), T8<T>);
        d = d < T(eps) ? T8<T>{} + T(eps) : d;
        std::memcpy(denom + j, &d, sizeof d);
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < len; ++p) yb[c * I + p] = xb[c * I + p] / denom[p];
    }
  });
}

template <typename T>
void normalize_bwd(const Tensor& dx, const Tensor& dout, const Tensor& x, double eps) {
  const int64_t O = x.size(0), C = x.size(1), I = x.size(2);
  const int64_t per_outer = (I + kPixels - 1) / kPixels, blocks = O * per_outer;
  const T* xp = x.data<T>();
  const T* gp = dout.data<T>();
  T* dp = dx.data<T>();
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kPixels * C)), [&](int64_t b0, int64_t b1) {
    double ss[kPixels], dot[kPixels];
    T a[kPixels], bcoef[kPixels];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b / per_outer, i0 = (b % per_outer) * kPixels, len = std::min(kPixels, I - i0);
      const int64_t base = o * C * I + i0;
      for (int64_t p = 0; p < kPixels; ++p) ss[p] = 0, dot[p] = 0;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < len; ++p) {
          const double xv = double(xp[base + c * I + p]);
          ss[p] += xv * xv;
          dot[p] += double(gp[base + c * I + p]) * xv;
        }
      // dx = g a - x b,  a = 1 / d,  b = (g . x) / (d^2 n) where n >= eps, else 0  (d = max(n, eps)).
      for (int64_t j = 0; j < kPixels; j += kD) {
        const vec<double> n = vsqrt(load(ss + j, kD));
        const vec<double> d = n < eps ? vec<double>{} + eps : n;
        const vec<double> bj = n >= eps ? load(dot + j, kD) / (d * d * n) : vec<double>{};
        const T8<T> aj = __builtin_convertvector(1.0 / d, T8<T>), bt = __builtin_convertvector(bj, T8<T>);
        std::memcpy(a + j, &aj, sizeof aj);
        std::memcpy(bcoef + j, &bt, sizeof bt);
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < len; ++p) {
          const int64_t e = base + c * I + p;
          dp[e] = gp[e] * a[p] - xp[e] * bcoef[p];
        }
    }
  });
}

}  // namespace

CrossEntropyTargets cross_entropy_targets(const Tensor& target, int64_t classes, int64_t ignore_index) {
  return ce_targets(target, classes, ignore_index);
}

double cross_entropy_forward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double scale) {
  return dispatch_floating(logits.dtype(), "cross_entropy",
                           [&]<typename T>() { return ce_forward<T>(dlogits, logits, target, ignore_index, scale); });
}

double l1_forward(const Tensor& a, const Tensor& b) {
  return dispatch_floating(a.dtype(), "l1_loss", [&]<typename T>() { return l1_sum<T>(a, b); });
}

void l1_backward(const Tensor& da, const Tensor& db, const Tensor& a, const Tensor& b, double scale) {
  dispatch_floating(a.dtype(), "l1_loss_backward", [&]<typename T>() { l1_grad<T>(da, db, a, b, scale); });
}

WeightedSums masked_l1_forward(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  return dispatch_floating(pred.dtype(), "masked_l1_loss", [&]<typename T>() {
    return dispatch_mask<T>(mask, [&]<typename M>() { return masked_l1_sums<T, M>(pred, target, mask); });
  });
}

void masked_l1_backward(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                        const Tensor& mask, double scale) {
  dispatch_floating(pred.dtype(), "masked_l1_loss_backward", [&]<typename T>() {
    dispatch_mask<T>(mask, [&]<typename M>() { masked_l1_grad<T, M>(dpred, dtarget, pred, target, mask, scale); });
  });
}

WeightedSums normal_loss_forward(const Tensor& pred, const Tensor& target, const Tensor& mask) {
  return dispatch_floating(pred.dtype(), "normal_loss", [&]<typename T>() {
    return dispatch_mask<T>(mask, [&]<typename M>() { return normal_sums<T, M>(pred, target, mask); });
  });
}

void normal_loss_backward(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                          const Tensor& mask, double scale) {
  dispatch_floating(pred.dtype(), "normal_loss_backward", [&]<typename T>() {
    dispatch_mask<T>(mask, [&]<typename M>() { normal_grad<T, M>(dpred, dtarget, pred, target, mask, scale); });
  });
}

double bce_with_logits_forward(const Tensor& x, const Tensor& t) {
  return dispatch_floating(x.dtype(), "bce_with_logits", [&]<typename T>() { return bce_sum<T>(x, t); });
}

void bce_with_logits_backward(const Tensor& dx, const Tensor& dt, const Tensor& x, const Tensor& t, double scale) {
  dispatch_floating(x.dtype(), "bce_with_logits_backward", [&]<typename T>() { bce_grad<T>(dx, dt, x, t, scale); });
}

void normalize_forward(const Tensor& y, const Tensor& x, double eps) {
  dispatch_floating(x.dtype(), "normalize", [&]<typename T>() { normalize_fwd<T>(y, x, eps); });
}

void normalize_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double eps) {
  dispatch_floating(x.dtype(), "normalize_backward", [&]<typename T>() { normalize_bwd<T>(dx, dout, x, eps); });
}

}  // namespace mila::cpu
