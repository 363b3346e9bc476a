// CUDA kernel of the batched matrix product (ops/matmul.h): declared with ops/cpu/matmul.h's
// contract, not written yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void batched_matmul(const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace mila::cuda
