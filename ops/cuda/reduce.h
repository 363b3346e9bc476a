// CUDA kernels of the reductions (ops/reduce.h), with ops/cpu/reduce.h's contract; in
// ops/cuda/reduce.cu (Note [deterministic reductions]).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void sum(const Tensor& out, const Tensor& in, const Shape& dims);
void max(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim);
}  // namespace mila::cuda
