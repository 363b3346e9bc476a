// CPU kernels of interpolate_bilinear (ops/interpolate.h). All tensors contiguous, seen as
// planes: x / dx [P, H, W], out / dout [P, OH, OW], P = N * C.
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {

void interpolate_bilinear_forward(const Tensor& out, const Tensor& x);
void interpolate_bilinear_backward(const Tensor& dx, const Tensor& dout);

}  // namespace mila::cpu
