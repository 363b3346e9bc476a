// CPU kernels of the unary elementwise ops (ops/unary.h).
#pragma once

#include "ops/op_list.h"
#include "tensor/tensor.h"

namespace mila::cpu {
// out = f(in); out contiguous with in's shape. lo/hi: clamp's bounds (ignored by the others).
void unary_forward(Op op, const Tensor& out, const Tensor& in, double lo, double hi);
// din = dout * f'(in), written with the forward's input `in` and output `out` (whichever the
// rule needs). All four have the same shape; din contiguous.
void unary_backward(Op op, const Tensor& din, const Tensor& dout, const Tensor& in, const Tensor& out, double lo,
                    double hi);
}  // namespace mila::cpu
