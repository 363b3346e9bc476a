// CUDA kernels of max_pool2d, avg_pool2d and adaptive_avg_pool2d (ops/pool.h): declared with
// ops/cpu/pool.h's contract, not written yet (the CUDA columns of ops/op_list.h say so).
#pragma once

#include "ops/pool.h"
#include "tensor/tensor.h"

namespace mila::cuda {
void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x, const Pool2dParams& p);
void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& indices);
void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const Pool2dParams& p);
void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x);
void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout);
}  // namespace mila::cuda
