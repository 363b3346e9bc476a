// where.h - elementwise select: out = cond ? a : b (cond uint8, broadcast with a and b).
#pragma once

#include "tensor/tensor.h"

namespace mila {
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
}
