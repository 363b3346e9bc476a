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
//     vectors (GCC's vector extension) with Cephes' exp and log polynomials for float (~1 ulp)
//     below; float64 (the gradient checks' type) calls the std:: functions per lane.
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

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace mila::cpu {
namespace {

// ---- vectors and vectorizable math ----------------------------------------------------------

// A 64-byte vector of T (16 floats or 8 doubles) in GCC's vector extension: lanewise +, *,
// comparisons (giving all-bits masks) and `mask ? a : b`, compiled to AVX-512 with
// -march=native (to narrower vectors or scalars elsewhere). Written out rather than left
// to the auto-vectorizer, which keeps loops with float comparisons (max, clamping, NaN
// checks) scalar unless -fno-trapping-math is given.
template <typename T>
struct Simd {
  typedef T vec __attribute__((vector_size(64)));
  using index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;  // an integer of T's size
  typedef index ivec __attribute__((vector_size(64)));
  static constexpr int64_t lanes = 64 / sizeof(T);
};
template <typename T>
using vec = typename Simd<T>::vec;
template <typename T>
using ivec = typename Simd<T>::ivec;

template <typename T>
inline vec<T> splat(T value) {
  return vec<T>{} + value;
}
// The first n (<= lanes) values from p; the other lanes are `fill`, and p[n..] is not read.
template <typename T>
inline vec<T> load(const T* p, int64_t n, T fill = T(0)) {
  vec<T> x;
  if (n == Simd<T>::lanes) {
    std::memcpy(&x, p, sizeof x);
    return x;
  }
  x = splat(fill);
  for (int64_t l = 0; l < n; ++l) x[l] = p[l];
  return x;
}
// Stores the first n (<= lanes) lanes to p.
template <typename T>
inline void store(T* p, vec<T> x, int64_t n) {
  if (n == Simd<T>::lanes) {
    std::memcpy(p, &x, sizeof x);
    return;
  }
  for (int64_t l = 0; l < n; ++l) p[l] = x[l];
}
template <typename Vec>  // Vec: vec<float> or vec<double>
inline Vec vmax(Vec a, Vec b) {
  return a < b ? b : a;  // std::max's rule per lane: a NaN in b is skipped, one in a kept
}
template <typename Vec>
inline Vec vabs(Vec a) {
  return a < 0 ? -a : a;
}

// e^x lanewise for x <= 0 (all these kernels need: exp(x - max), exp(-|x|)); x > 0 is
// treated as 0. float: Cephes' expf. x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2
// (ln2 split in two parts so r is exact), e^r by a degree-5 polynomial (relative error
// ~1e-7), times 2^n built in the exponent bits. Below -87.34 (2^n would leave the normal
// floats) the result is 0; NaN stays NaN.
inline vec<float> exp_nonpositive(vec<float> x) {
  const vec<float> lo = splat(-87.3365448f);  // ln(2^-126)
  const ivec<float> nan = x != x;
  const ivec<float> tiny = x < lo;
  vec<float> xc = tiny ? lo : x;
  xc = xc > 0.0f ? vec<float>{} : xc;
  xc = nan ? vec<float>{} : xc;  // keeps the integer conversion below defined
  const vec<float> magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vec<float> n = (xc * 1.44269504088896341f + magic) - magic;  // in [-126, 0]
  const vec<float> r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  vec<float> p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const vec<float> er = p * r * r + r + 1.0f;
  const ivec<float> exponent = (__builtin_convertvector(n, ivec<float>) + 127) << 23;
  const vec<float> y = er * std::bit_cast<vec<float>>(exponent);
  return nan ? x : (tiny ? vec<float>{} : y);
}

// ln x lanewise for x >= 1 (all these kernels need: a sum of exps whose largest term is 1,
// and 1 + e). float: Cephes' logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)),
// ln m = f - f^2 / 2 + f^3 P(f) (f = m - 1, P of degree 8), plus e ln2 (in two parts).
// +inf gives +inf, NaN gives NaN.
inline vec<float> log_ge1(vec<float> x) {
  const ivec<float> bits = std::bit_cast<ivec<float>>(x);
  ivec<float> e = ((bits >> 23) & 0xff) - 126;  // x = m 2^e, m in [0.5, 1)
  const vec<float> m = std::bit_cast<vec<float>>((bits & 0x007fffff) | 0x3f000000);
  const ivec<float> low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  const vec<float> f = low ? m + m - 1.0f : m - 1.0f;
  const vec<float> z = f * f;
  vec<float> p = splat(7.0376836292e-2f);
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const vec<float> fe = __builtin_convertvector(e, vec<float>);
  vec<float> y = p * f * z;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  y = (f + y) + 0.693359375f * fe;
  const ivec<float> special = (x != x) | (x == std::numeric_limits<float>::infinity());
  return special ? x : y;
}

// ln(1 + e) lanewise for e in [0, 1], accurate for tiny e: with u = 1 + e rounded,
// ln(1 + e) = ln(u) * e / (u - 1) (Goldberg's trick: u's rounding error cancels), e where u = 1.
inline vec<float> log1p_unit(vec<float> e) {
  const vec<float> u = e + 1.0f;
  const ivec<float> exact = u == 1.0f;
  const vec<float> d = exact ? splat(1.0f) : u - 1.0f;
  return exact ? e : log_ge1(u) * (e / d);
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

// double (the gradient checks' type; speed is not its point): the library functions per lane.
inline vec<double> exp_nonpositive(vec<double> x) {
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::exp(std::min(x[l], 0.0));
  return x;
}
inline vec<double> log_ge1(vec<double> x) {
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::log(x[l]);
  return x;
}
inline vec<double> log1p_unit(vec<double> x) {
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::log1p(x[l]);
  return x;
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
// A block is kPixels consecutive positions of one image (the last block of an image may be
// shorter): NV vectors of V lanes side by side, vector j covering positions j V .. j V + V - 1.
// Its K x kPixels logits (3.3 KB at K = 13) are read from memory by the first pass and from
// L1 by the others.

// Lanes of vector j that hold positions of a block of `len` positions.
inline int64_t lanes_of(int64_t j, int64_t V, int64_t len) { return std::clamp<int64_t>(len - j * V, 0, V); }

template <typename T>
CrossEntropySums ce_forward(const Tensor& lse, const Tensor& logits, const Tensor& target, int64_t ignore) {
  constexpr int64_t V = Simd<T>::lanes, NV = kPixels / V;
  const int64_t N = logits.size(0), K = logits.size(1), S = logits.size(2);
  const int64_t per_image = (S + kPixels - 1) / kPixels, blocks = N * per_image;
  const T* xp = logits.data<T>();
  const int64_t* tp = target.data<int64_t>();
  T* lp = lse.data<T>();
  constexpr T kMinusInf = -std::numeric_limits<T>::infinity();
  std::vector<CrossEntropySums> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kPixels * K)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / per_image, p0 = (b % per_image) * kPixels, len = std::min(kPixels, S - p0);
      const T* x = xp + n * K * S + p0;  // x[k * S + p]: class k at position p0 + p
      int64_t cnt[NV];
      for (int64_t j = 0; j < NV; ++j) cnt[j] = lanes_of(j, V, len);
      // m = max over k, s = sum over k of exp(x - m), lse = m + ln s (s >= 1: the max's term is 1).
      vec<T> m[NV], s[NV];
      for (int64_t j = 0; j < NV; ++j) m[j] = load(x + j * V, cnt[j], kMinusInf), s[j] = vec<T>{};
      for (int64_t k = 1; k < K; ++k)
        for (int64_t j = 0; j < NV; ++j) m[j] = vmax(m[j], load(x + k * S + j * V, cnt[j], kMinusInf));
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < NV; ++j) s[j] += exp_nonpositive(load(x + k * S + j * V, cnt[j]) - m[j]);
      T* l = lp + n * S + p0;
      for (int64_t j = 0; j < NV; ++j) store(l + j * V, m[j] + log_ge1(s[j]), cnt[j]);
      // The block's terms in position order. Targets are checked here and reported to the
      // caller (throwing from inside a parallel region is not allowed).
      // (Local sums: accumulating straight into partial[b] would put every addition through
      // memory.)
      const int64_t* t = tp + n * S + p0;
      double loss_sum = 0;
      int64_t count = 0, bad_index = -1, bad_value = 0;
      for (int64_t p = 0; p < len; ++p) {
        if (t[p] == ignore) continue;
        if (t[p] < 0 || t[p] >= K) {
          if (bad_index < 0) bad_index = n * S + p0 + p, bad_value = t[p];
          continue;
        }
        loss_sum += double(l[p]) - double(x[t[p] * S + p]);
        ++count;
      }
      partial[size_t(b)] = {loss_sum, count, bad_index, bad_value};
    }
  });
  CrossEntropySums total;
  for (const CrossEntropySums& p : partial) {
    total.loss_sum += p.loss_sum;
    total.count += p.count;
    if (total.bad_index < 0 && p.bad_index >= 0) total.bad_index = p.bad_index, total.bad_value = p.bad_value;
  }
  return total;
}

template <typename T>
void ce_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, const Tensor& lse, int64_t ignore,
                 double scale) {
  constexpr int64_t V = Simd<T>::lanes, NV = kPixels / V;
  const int64_t N = logits.size(0), K = logits.size(1), S = logits.size(2);
  const int64_t per_image = (S + kPixels - 1) / kPixels, blocks = N * per_image;
  const T* xp = logits.data<T>();
  const int64_t* tp = target.data<int64_t>();
  const T* lp = lse.data<T>();
  T* dp = dlogits.data<T>();
  parallel_for(blocks, std::max<int64_t>(1, kElementwiseGrain / (kPixels * K)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = b / per_image, p0 = (b % per_image) * kPixels, len = std::min(kPixels, S - p0);
      // Per position: w = scale (0 when ignored), cls = the target class as T (-1 when ignored;
      // the forward has checked that the others are in [0, K)).
      T w_s[kPixels], cls_s[kPixels];
      const int64_t* t = tp + n * S + p0;
      for (int64_t p = 0; p < kPixels; ++p) {
        const bool keep = p < len && t[p] != ignore;
        w_s[p] = keep ? T(scale) : T(0);
        cls_s[p] = keep ? T(t[p]) : T(-1);
      }
      int64_t cnt[NV];
      vec<T> w[NV], cls[NV], l[NV];
      for (int64_t j = 0; j < NV; ++j) {
        cnt[j] = lanes_of(j, V, len);
        w[j] = load(w_s + j * V, V);
        cls[j] = load(cls_s + j * V, V);
        l[j] = load(lp + n * S + p0 + j * V, cnt[j]);
      }
      const T* x = xp + n * K * S + p0;
      T* d = dp + n * K * S + p0;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < NV; ++j) {
          const vec<T> softmax = exp_nonpositive(load(x + k * S + j * V, cnt[j]) - l[j]);
          const vec<T> onehot = cls[j] == T(k) ? splat(T(1)) : vec<T>{};
          store(d + k * S + j * V, w[j] * (softmax - onehot), cnt[j]);
        }
    }
  });
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

CrossEntropySums cross_entropy_forward(const Tensor& lse, const Tensor& logits, const Tensor& target,
                                       int64_t ignore_index) {
  return dispatch_floating(logits.dtype(), "cross_entropy",
                           [&]<typename T>() { return ce_forward<T>(lse, logits, target, ignore_index); });
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, const Tensor& lse,
                            int64_t ignore_index, double scale) {
  dispatch_floating(logits.dtype(), "cross_entropy_backward",
                    [&]<typename T>() { ce_backward<T>(dlogits, logits, target, lse, ignore_index, scale); });
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
