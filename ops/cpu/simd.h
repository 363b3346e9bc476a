// simd.h - what the hand-vectorized CPU kernels share: a 64-byte vector of T (16 floats or
// 8 doubles) in GCC's vector extension with its loads and stores, exp and log polynomials on
// it (ila.cpp, losses.cpp), and two AVX-512 helpers of the packing code: lane masks and a
// 16 x 16 transpose in registers (gemm.cpp, conv2d_direct.cpp).
//
// Lanewise +, *, comparisons (giving all-bits masks) and `mask ? a : b` compile to AVX-512
// with -march=native, and to narrower vectors or scalars elsewhere. Written out rather than
// left to the auto-vectorizer, which keeps loops with float comparisons (max, clamping, NaN
// checks) scalar unless -fno-trapping-math is given. Vectors are passed by value: a vector
// whose address is taken would live in memory rather than in a register.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// 64-byte vectors passed by value change the calling convention where AVX-512 is off, and
// GCC says so (-Wpsabi). Every function here is inline and compiled with its callers' flags,
// so the note is moot: silenced for this header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace mila::cpu::simd {

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
using ivec = typename Simd<T>::ivec;  // comparisons give these: all bits set (true) or 0

template <typename T>
inline vec<T> splat(T value) {
  return vec<T>{} + value;
}
// A whole vector from p (unaligned).
template <typename T>
inline vec<T> load(const T* p) {
  vec<T> x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
// The first n (<= lanes) values from p; the other lanes are `fill`, and p[n..] is not read.
template <typename T>
inline vec<T> load(const T* p, int64_t n, T fill = T(0)) {
  if (n == Simd<T>::lanes) return load(p);
  vec<T> x = splat(fill);
  for (int64_t l = 0; l < n; ++l) x[l] = p[l];
  return x;
}
// Stores the first n (<= lanes) lanes to p (n = all lanes except at the end of a row).
template <typename T>
inline void store(T* p, vec<T> x, int64_t n) {
  if (n == Simd<T>::lanes) {
    std::memcpy(p, &x, sizeof x);
    return;
  }
  for (int64_t l = 0; l < n; ++l) p[l] = x[l];
}

// ---- exp and log ------------------------------------------------------------------------
//
// std::exp and std::log do not vectorize without -ffast-math, and a scalar expf costs more
// than reading its argument from DRAM, so the float versions below are Cephes' polynomials
// (S. Moshier's expf.c and logf.c) on whole vectors. Each serves only the range its callers
// need, which keeps it short. The float64 versions call the std:: functions lane by lane:
// float64 serves the gradient checks, where speed is not the point.

// e^x lanewise for x <= 0 (callers pass a logit minus the maximum, or -|x|). -inf gives
// 0, NaN gives NaN.
// float: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2 (ln2 in two parts, so r
// is exact); e^r = 1 + r + r^2 P(r) with P of degree 5, times 2^n made in the exponent
// bits. n is rounded by adding 1.5 * 2^23 (the float sum keeps no fraction bits) and read
// back from the sum's bits as an integer, with no float-to-int conversion (so a NaN needs no
// test). Accuracy: at most 1.02 ulp from e^x, measured against double exp over every float
// in [-87.33, 0]. Below -87.34 e^x is subnormal; the result is 0 there (an absolute error
// below 2^-126).
inline vec<float> exp_nonpositive(vec<float> x) {
  const vec<float> lo = splat(-87.3365448f);  // ln(2^-126)
  const vec<float> xc = x < lo ? lo : x;
  const vec<float> magic = splat(12582912.0f);  // 1.5 * 2^23
  const vec<float> shifted = xc * 1.44269504088896341f + magic;
  const vec<float> n = shifted - magic;  // round(x / ln2), in [-126, 0]
  const vec<float> r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  vec<float> p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const vec<float> er = p * r * r + r + 1.0f;
  const ivec<float> ni = std::bit_cast<ivec<float>>(shifted) - std::bit_cast<ivec<float>>(magic);  // n as an integer
  const vec<float> y = er * std::bit_cast<vec<float>>((ni + 127) << 23);
  return x < lo ? vec<float>{} : y;
}
inline vec<double> exp_nonpositive(vec<double> x) {
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::exp(x[l]);
  return x;
}

// ln x lanewise for x >= 1 (callers pass a sum of exps whose largest term is 1, or 1 + e).
// +inf gives +inf, NaN gives NaN. float: x = m 2^e with m in [sqrt(1/2), sqrt(2)); with f = m - 1,
// ln m = f - f^2 / 2 + f^3 P(f), P of degree 8, plus e ln2 (ln2 in two parts). Accuracy:
// at most 0.83 ulp from ln x, measured against double log over every finite float >= 1.
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
inline vec<double> log_ge1(vec<double> x) {
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::log(x[l]);
  return x;
}

// ln(1 + e) lanewise for e in [0, 1], accurate for tiny e too. float: with u = 1 + e
// rounded, ln(1 + e) = ln(u) * e / (u - 1) (Goldberg's trick: the rounding error of u
// cancels), and e itself where u rounds to 1. Accuracy: at most 2.5 ulp from ln(1 + e),
// measured against double log1p over every float in [0, 1].
inline vec<float> log1p_unit(vec<float> e) {
  const vec<float> u = e + 1.0f;
  const ivec<float> exact = u == 1.0f;
  const vec<float> d = exact ? splat(1.0f) : u - 1.0f;
  return exact ? e : log_ge1(u) * (e / d);
}
inline vec<double> log1p_unit(vec<double> x) {
  for (int64_t l = 0; l < Simd<double>::lanes; ++l) x[l] = std::log1p(x[l]);
  return x;
}

// ---- AVX-512 helpers of the packing code ----------------------------------------------------
#if defined(__AVX512F__)

// The mask of the first n lanes of a float vector, n >= 0 (all 16 for n >= 16).
inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// GCC 12 warns, wrongly, that the unpack/shuffle intrinsics read an uninitialized
// register (GCC bug 105593, fixed in GCC 13); silence it for this function only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Transposes the 16 x 16 block held in r[0..15] in place: afterwards r[q] holds what was
// column q. Three rounds of shuffles: single elements within pairs of rows, then pairs
// within 128-bit lanes, then whole lanes across registers (two steps).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
    r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xDD);
  }
}
#pragma GCC diagnostic pop

// dst[q * dst_stride + r] = src[r * src_stride + q] for q < cols and r < 16, stored under
// store_mask; rows r >= rows read as zero. rows, cols <= 16. Masked loads never touch the
// lanes they leave out, so nothing past the source block is read.
inline void transpose_block(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
                            int64_t dst_stride, __mmask16 store_mask) {
  const __mmask16 load_mask = first_lanes(cols);
  __m512 r[16];
  for (int i = 0; i < 16; ++i)
    r[i] = i < rows ? _mm512_maskz_loadu_ps(load_mask, src + i * src_stride) : _mm512_setzero_ps();
  transpose16(r);
  for (int q = 0; q < cols; ++q) _mm512_mask_storeu_ps(dst + q * dst_stride, store_mask, r[q]);
}

#endif  // __AVX512F__

}  // namespace mila::cpu::simd

#pragma GCC diagnostic pop
