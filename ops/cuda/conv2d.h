// CUDA kernels of conv2d (ops/conv2d.h): declared with the contract of the launchers in
// ops/cpu/conv2d.h, not written yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include "ops/conv2d.h"
#include "tensor/tensor.h"

namespace mila::cuda {
void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Conv2dGeometry& g);
void conv2d_backward_input(const Tensor& dx, const Tensor& dout, const Tensor& weight, const Conv2dGeometry& g);
void conv2d_backward_weight(const Tensor& dweight, const Tensor& dout, const Tensor& x, const Conv2dGeometry& g);
void conv2d_backward_bias(const Tensor& dbias, const Tensor& dout, const Conv2dGeometry& g);
}  // namespace mila::cuda
