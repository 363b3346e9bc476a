// CUDA kernels of copy_ and fill_ (ops/copy.h), in ops/cuda/copy.cu: any pair of devices
// among cpu and cuda, any dtypes, any strides, src broadcast to dst's shape.
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void copy(const Tensor& dst, const Tensor& src);
void fill(const Tensor& dst, double value);
}  // namespace mila::cuda
