// CUDA kernels of the unary elementwise ops (ops/unary.h), in ops/cuda/unary.cu. The same
// contract as ops/cpu/unary.h (in, dout and out may have any strides); they run the ops
// whose CUDA column in ops/op_list.h is true and throw throw_unsupported's error for the
// others.
#pragma once

#include "ops/op_list.h"
#include "tensor/tensor.h"

namespace mila::cuda {
void unary_forward(Op op, const Tensor& out, const Tensor& in, double lo, double hi);
void unary_backward(Op op, const Tensor& din, const Tensor& dout, const Tensor& in, const Tensor& out, double lo,
                    double hi);
}  // namespace mila::cuda
