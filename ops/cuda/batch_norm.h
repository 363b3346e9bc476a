// CUDA kernels of batch_norm (ops/batch_norm.h): declared with ops/cpu/batch_norm.h's
// contract, not written yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include "ops/batch_norm.h"
#include "tensor/tensor.h"

namespace mila::cuda {
void batch_norm_forward(const Tensor& y, const Tensor& mean, const Tensor& invstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, const BatchNormParams& p);
void batch_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                         const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& invstd,
                         const BatchNormParams& p);
}  // namespace mila::cuda
