// CUDA kernels of the fused losses and normalize (ops/losses.h): declared with
// ops/cpu/losses.h's contract, not written yet (the CUDA columns of ops/op_list.h say so).
#pragma once

#include <cstdint>

#include "ops/losses.h"
#include "tensor/tensor.h"

namespace mila::cuda {
CrossEntropyTargets cross_entropy_targets(const Tensor& target, int64_t classes, int64_t ignore_index);
double cross_entropy_forward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double scale);
double l1_forward(const Tensor& a, const Tensor& b);
void l1_backward(const Tensor& da, const Tensor& db, const Tensor& a, const Tensor& b, double scale);
WeightedSums masked_l1_forward(const Tensor& pred, const Tensor& target, const Tensor& mask);
void masked_l1_backward(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                        const Tensor& mask, double scale);
WeightedSums normal_loss_forward(const Tensor& pred, const Tensor& target, const Tensor& mask);
void normal_loss_backward(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                          const Tensor& mask, double scale);
double bce_with_logits_forward(const Tensor& x, const Tensor& t);
void bce_with_logits_backward(const Tensor& dx, const Tensor& dt, const Tensor& x, const Tensor& t, double scale);
void normalize_forward(const Tensor& y, const Tensor& x, double eps);
void normalize_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double eps);
}  // namespace mila::cuda
