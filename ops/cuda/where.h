// CUDA kernel of where (ops/where.h): declared with ops/cpu/where.h's contract, not written
// yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void where_forward(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
}  // namespace mila::cuda
