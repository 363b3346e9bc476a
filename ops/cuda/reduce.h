// CUDA kernels of the reductions (ops/reduce.h): declared with ops/cpu/reduce.h's contract,
// not written yet (the CUDA columns of ops/op_list.h say so).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void sum(const Tensor& out, const Tensor& in, const Shape& dims);
void max(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim);
}  // namespace mila::cuda
