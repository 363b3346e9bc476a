// CUDA kernels of the binary elementwise ops (ops/binary.h). Only add so far; the CUDA
// backend issue adds the rest (see the CUDA column of ops/op_list.h).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
// out (contiguous, the broadcast shape) = a + b; a and b broadcast to out's shape.
void add(const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace mila::cuda
