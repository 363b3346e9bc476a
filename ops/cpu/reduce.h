// CPU kernels of the reductions (ops/reduce.h).
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {
// out (contiguous, keepdim shape: in's shape with each reduced dim set to 1) = sum of in
// over `dims` (sorted, unique). float/double accumulate in double; int64 in int64.
void sum(const Tensor& out, const Tensor& in, const Shape& dims);
// values, indices (contiguous, keepdim shape) = max of `in` along `dim` and its first index.
// NaN counts as the largest value (PyTorch).
void max(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t dim);
}  // namespace mila::cpu
