// CUDA kernels of the random factories (ops/factory.h: rand, randn, randint), in
// ops/cuda/random.cu. Each fills a contiguous tensor with element i = the same per-element
// function of (seed, first, i) that the CPU uses (tensor/random.h, Note [one random stream
// for every device]), converted to the tensor's dtype; the caller has already advanced
// the generator (reserved the counters from `first` on).
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila::cuda {
void rand_fill(const Tensor& out, uint64_t seed, uint64_t first, double top);  // floating out
void randn_fill(const Tensor& out, uint64_t seed, uint64_t first);             // floating out
void randint_fill(const Tensor& out, uint64_t seed, uint64_t first, int64_t low, uint64_t range);
}  // namespace mila::cuda
