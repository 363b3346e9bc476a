// softmax.h - softmax and log_softmax over one dim (floating tensors).
//
//   softmax(x)_i     = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j (for stability)
//   log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))
// Derivatives (y the output, g = dout):
//   softmax:     dx = y * (g - sum_j g_j y_j)
//   log_softmax: dx = g - exp(y) * sum_j g_j
#pragma once

#include "tensor/tensor.h"

namespace mila {
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
}  // namespace mila
