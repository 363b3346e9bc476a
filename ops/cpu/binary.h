// CPU kernel of the binary elementwise ops and comparisons (ops/binary.h).
#pragma once

#include "ops/op_list.h"
#include "tensor/tensor.h"

namespace mila::cpu {
// out = a (op) b; out has the broadcast shape; a and b have out's dtype (comparisons: out is uint8).
void binary_forward(Op op, const Tensor& out, const Tensor& a, const Tensor& b);
}  // namespace mila::cpu
