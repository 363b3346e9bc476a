// CUDA kernels of the binary elementwise ops and comparisons (ops/binary.h), in
// ops/cuda/binary.cu. The same contract as ops/cpu/binary.h.
#pragma once

#include "ops/op_list.h"
#include "tensor/tensor.h"

namespace mila::cuda {
// out = a (op) b; out contiguous with the broadcast shape; a and b have out's dtype
// (comparisons: out is uint8). Runs the ops whose CUDA column in ops/op_list.h is true;
// throws throw_unsupported's error for the others.
void binary_forward(Op op, const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace mila::cuda
