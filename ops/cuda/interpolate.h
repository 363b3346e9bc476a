// CUDA kernels of interpolate_bilinear (ops/interpolate.h): declared with
// ops/cpu/interpolate.h's contract, not written yet (the CUDA column of ops/op_list.h says so).
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void interpolate_bilinear_forward(const Tensor& out, const Tensor& x);
void interpolate_bilinear_backward(const Tensor& dx, const Tensor& dout);
}  // namespace mila::cuda
