// portable_math.h - log(x) and the sine and cosine of 2*pi*u, built only from operations
// that IEEE 754 rounds exactly (+, -, *, /, sqrt, fma, frexp), so that the CPU and the GPU
// compute the same bits for the same input. The C library's log, sin and cos are not
// correctly rounded: glibc, its CPU-specific variants (FMA or not) and CUDA's device
// library each land within an ulp or two of the true value, but not on the same one. The
// random normal draws (tensor/random.h) use these so a seeded randn is identical on every
// device. Accuracy against long double: log within 1 ulp, sin and cos within 1.5 ulp
// (tests/test_tensor.cpp).
//
// Two rules keep the bits portable:
//   - every product is written mul(a, b) or fused(a, b, c). nvcc would otherwise contract
//     a plain `a * b + c` into one fma (one rounding instead of two) while g++ in ISO C++
//     mode does not; mul() is __dmul_rn on the GPU, which nvcc never contracts;
//   - no library call beyond frexp (exact) and sqrt and fma (correctly rounded everywhere).
//
// The polynomial coefficients are fdlibm's (Sun Microsystems' freely distributable libm:
// e_log.c, k_sin.c, k_cos.c), evaluated by Horner's rule with fma.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define MILA_HOST_DEVICE __host__ __device__
#else
#define MILA_HOST_DEVICE
#endif

namespace mila::portable {

MILA_HOST_DEVICE inline double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

MILA_HOST_DEVICE inline double fused(double a, double b, double c) {  // a * b + c, rounded once
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// log(x) for a positive, finite, normal x (fdlibm's e_log.c, without its special cases).
// With x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) and s = f / (2 + f):
//   log(1 + f) = log((1 + s) / (1 - s)) = 2s + 2s^3/3 + 2s^5/5 + ... = f - f^2/2 + s (f^2/2 + R(s^2))
// and log(x) = k ln2 + log(1 + f), ln2 split so that k * ln2_hi is exact.
MILA_HOST_DEVICE inline double log(double x) {
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
                   Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                   Lg7 = 1.479819860511658591e-01;
  int e = 0;
  double m = ::frexp(x, &e);  // x = m 2^e, m in [1/2, 1)
  if (m < 0.70710678118654752440) {
    m = m + m;
    e -= 1;
  }
  const double f = m - 1.0;  // exact (Sterbenz)
  const double s = f / (2.0 + f);
  const double z = mul(s, s), w = mul(z, z);
  const double even = mul(w, fused(w, fused(w, Lg6, Lg4), Lg2));
  const double odd = mul(z, fused(w, fused(w, fused(w, Lg7, Lg5), Lg3), Lg1));
  const double r = odd + even;
  const double half_f2 = mul(mul(0.5, f), f);
  const double k = double(e);
  return fused(k, ln2_hi, -((half_f2 - fused(s, half_f2 + r, mul(k, ln2_lo))) - f));
}

// sin(a) and cos(a) for |a| <= pi/4 (fdlibm's k_sin.c and k_cos.c with no tail).
MILA_HOST_DEVICE inline double sin_kernel(double a) {
  constexpr double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
                   S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
                   S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  const double z = mul(a, a), v = mul(z, a);
  const double r = fused(z, fused(z, fused(z, fused(z, S6, S5), S4), S3), S2);
  return fused(v, fused(z, r, S1), a);  // a + a^3 (S1 + a^2 r)
}
MILA_HOST_DEVICE inline double cos_kernel(double a) {
  constexpr double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
                   C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
                   C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  const double z = mul(a, a);
  const double r = mul(z, fused(z, fused(z, fused(z, fused(z, fused(z, C6, C5), C4), C3), C2), C1));
  return 1.0 - fused(-z, r, mul(0.5, z));  // 1 - (a^2/2 - a^2 r)
}

struct SinCos {
  double sin, cos;
};

// sin(2 pi u) and cos(2 pi u) for u in [0, 1). The reduction is exact: 2 pi u = (pi/2)(q + f)
// with q = floor(4u) the quadrant and f = 4u - q, folded to f <= 1/2 (sin(pi/2 - b) = cos b)
// so the kernels see |a| <= pi/4. Only a = (pi/2) f is rounded, by half an ulp (pi/2 carried
// in two parts), where sin(2.0 * M_PI * u) would first round 2 pi u and lose the small
// values near multiples of pi.
MILA_HOST_DEVICE inline SinCos sincos_2pi(double u) {
  constexpr double pio2_hi = 1.57079632679489655800e+00, pio2_lo = 6.12323399573676603587e-17;
  const double t = mul(4.0, u);  // exact
  const int q = int(t);
  double f = t - double(q);  // exact
  const bool folded = f > 0.5;
  if (folded) f = 1.0 - f;  // exact
  const double a = fused(f, pio2_hi, mul(f, pio2_lo));
  const double s = sin_kernel(a), c = cos_kernel(a);
  const double sin_b = folded ? c : s, cos_b = folded ? s : c;  // of b = (pi/2)(4u - q)
  switch (q) {
    case 0: return {sin_b, cos_b};
    case 1: return {cos_b, -sin_b};
    case 2: return {-sin_b, -cos_b};
    default: return {-cos_b, sin_b};
  }
}

}  // namespace mila::portable
