// random.h - a seeded, counter-based random source.
//
// Element i of a draw is a pure function of (seed, counter + i): a SplitMix64 hash. So a
// draw gives the same numbers whatever the thread count, and a Generator's whole state is
// two integers, which makes saving and resuming a training run exact.
#pragma once

#include <cstdint>

namespace mila {

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
  uint64_t bits(uint64_t i) const { return mix(seed_ * 0x9E3779B97F4A7C15ull + i); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform(uint64_t i) const { return double(bits(i) >> 11) * 0x1.0p-53; }

  // Convenience draws that advance the counter (used by data augmentation and init).
  double next_uniform() { return uniform(advance(1)); }
  uint64_t next_bits() { return bits(advance(1)); }

 private:
  static uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t seed_ = 0;
  uint64_t counter_ = 0;
};

// The process-wide generator used when a factory is not given one.
Generator& default_generator();
inline void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace mila
