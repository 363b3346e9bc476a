// CPU kernels of the fused losses (ops/losses.h). Inputs contiguous.
#pragma once

#include "tensor/tensor.h"

namespace mila::cpu {
// logits [N, K, S] (S = H*W, 1 for [N, K]), target int64 [N, S]. Returns the sum of the
// per-position losses over valid positions (double) and sets `count` to their number.
// Throws std::out_of_range for a target outside [0, K) that is not ignore_index.
double cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index, int64_t& count);
// dlogits = scale * (softmax(logits) - onehot(target)) at valid positions, 0 elsewhere.
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                            double scale);
}  // namespace mila::cpu
