// CPU kernels of max_pool2d, avg_pool2d and adaptive_avg_pool2d (ops/pool.h).
//
// Every tensor here is contiguous and seen as planes: x / dx [P, H, W], out / dout / indices
// [P, OH, OW], P = N * C. Output sizes are computed by the caller (ops/pool.cpp).
#pragma once

#include "ops/pool.h"
#include "tensor/tensor.h"

namespace mila::cpu {

// out and indices (int64, h * W + w within the plane; -1 for a window with no in-map value).
void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x, const Pool2dParams& p);
// dx (zeroed here) from dout and the forward's indices.
void max_pool2d_backward(const Tensor& dx, const Tensor& dout, const Tensor& indices);

void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& p);
void avg_pool2d_backward(const Tensor& dx, const Tensor& dout, const Pool2dParams& p);

void adaptive_avg_pool2d_forward(const Tensor& out, const Tensor& x);
void adaptive_avg_pool2d_backward(const Tensor& dx, const Tensor& dout);

}  // namespace mila::cpu
