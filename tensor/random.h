// random.h - a seeded, counter-based random source, and the draws of the random factories.
//
// Element i of a draw is a pure function of (seed, counter + i): a SplitMix64 hash. So a
// draw gives the same numbers whatever the thread count, and a Generator's whole state is
// two integers, which makes saving and resuming a training run exact.
//
// Note [one random stream for every device]. The GPU draws with the same hash, not with
// the Philox generator that cuRAND and PyTorch use on CUDA: a counter-based hash is already
// what a GPU wants (every element is computed on its own, no state passes between
// threads), and sharing it means that a seeded rand/randn/randint gives the same bits on
// the CPU and on the GPU, and that a run is reproducible from its seed whichever device
// drew the numbers. The per-element functions below are the single definition both
// devices call (ops/factory.cpp on the CPU, ops/cuda/random.cu on the GPU); normals use
// tensor/portable_math.h, whose log and sin/cos round alike on both.
#pragma once

#include <cstdint>

#include "tensor/portable_math.h"

namespace mila {

// The 64-bit draw number i of `seed`: SplitMix64's finalizer of seed * phi + i.
MILA_HOST_DEVICE inline uint64_t random_bits(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Uniform in [0, 1) with 53 random bits (exact: an integer below 2^53 times 2^-53).
MILA_HOST_DEVICE inline double random_uniform(uint64_t seed, uint64_t i) {
  return double(random_bits(seed, i) >> 11) * 0x1.0p-53;
}

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed, counter_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t counter() const { return counter_; }
  void set_state(uint64_t seed, uint64_t counter) { seed_ = seed, counter_ = counter; }

  // Reserves n consecutive 64-bit draws and returns the counter of the first.
  uint64_t advance(uint64_t n) {
    uint64_t first = counter_;
    counter_ += n;
    return first;
  }
  // The 64-bit draw number `i` of this seed (pure function).
  uint64_t bits(uint64_t i) const { return random_bits(seed_, i); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform(uint64_t i) const { return random_uniform(seed_, i); }

  // Convenience draws that advance the counter (used by data augmentation and init).
  double next_uniform() { return uniform(advance(1)); }
  uint64_t next_bits() { return bits(advance(1)); }

 private:
  uint64_t seed_ = 0;
  uint64_t counter_ = 0;
};

// Element i of each random factory (ops/factory.h) whose draw reserved the counters from
// `first` on, as a double (the factory converts it to the tensor's dtype).
//
// rand: uniform in [0, top]; top is the largest float below 1 for float32, whose rounding
// would otherwise turn a draw within 2^-25 of 1 into 1.0f, and 1 (never reached) for float64.
MILA_HOST_DEVICE inline double rand_element(uint64_t seed, uint64_t first, uint64_t i, double top) {
  const double u = random_uniform(seed, first + i);
  return u < top ? u : top;
}
// randn: Box-Muller, elements 2j and 2j+1 from the draws first + 2j and first + 2j + 1 (the
// factory reserves an even count): r cos(2 pi u2) and r sin(2 pi u2), r = sqrt(-2 log u1).
MILA_HOST_DEVICE inline double randn_element(uint64_t seed, uint64_t first, uint64_t i) {
  const uint64_t pair = first + (i & ~uint64_t(1));
  const double u1 = 1.0 - random_uniform(seed, pair);  // in (0, 1]: the log is finite
  const double u2 = random_uniform(seed, pair + 1);
  const double r = ::sqrt(portable::mul(-2.0, portable::log(u1)));
  const portable::SinCos sc = portable::sincos_2pi(u2);
  return portable::mul(r, (i & 1) ? sc.sin : sc.cos);
}
// randint: low + bits mod (high - low), in uint64 so that a range wider than 2^63 does not
// overflow (`range` = high - low as uint64; the modulo's bias is below range / 2^64).
MILA_HOST_DEVICE inline int64_t randint_element(uint64_t seed, uint64_t first, uint64_t i, int64_t low,
                                                uint64_t range) {
  return int64_t(uint64_t(low) + random_bits(seed, first + i) % range);
}

// The process-wide generator used when a factory is not given one.
Generator& default_generator();
inline void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace mila
