// unary.h - elementwise functions of one tensor. Each op's forward and derivative sit side
// by side in one table row in ops/cpu/unary.cpp; ops/unary.cpp validates and records.
#pragma once

#include <limits>

#include "tensor/tensor.h"

namespace mila {

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);       // derivative sign(x), 0 at 0 (as PyTorch)
Tensor relu(const Tensor& x);      // derivative 1 where the output is > 0
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
// min(max(x, lo), hi); the gradient passes where lo <= x <= hi (inclusive, as PyTorch).
Tensor clamp(const Tensor& x, double lo = -std::numeric_limits<double>::infinity(),
             double hi = std::numeric_limits<double>::infinity());

inline Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace mila
