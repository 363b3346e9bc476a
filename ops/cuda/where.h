// CUDA kernel of where (ops/where.h), in ops/cuda/where.cu. The same contract as
// ops/cpu/where.h.
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
// out = cond ? a : b; cond uint8; out contiguous with the broadcast shape and a's dtype.
void where_forward(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
}  // namespace mila::cuda
