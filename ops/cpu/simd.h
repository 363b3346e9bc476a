// simd.h - a 64-byte vector of T (16 floats or 8 doubles) in GCC's vector extension, shared
// by the hand-vectorized CPU kernels (ila.cpp, losses.cpp).
//
// Lanewise +, *, comparisons (giving all-bits masks) and `mask ? a : b` compile to AVX-512
// with -march=native, and to narrower vectors or scalars elsewhere. Written out rather than
// left to the auto-vectorizer, which keeps loops with float comparisons (max, clamping, NaN
// checks) scalar unless -fno-trapping-math is given. Vectors are passed by value: a vector
// whose address is taken would live in memory rather than in a register.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

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

}  // namespace mila::cpu::simd
