// CPU kernels of the fused losses and normalize (ops/losses.h).
//
// Every tensor is contiguous. The forwards return the sums the op divides (in double); the
// op checks the arguments, divides and throws. Backward gradients that are undefined are
// not wanted and not computed. `scale` is the factor the op folds in (dout / count, ...).
#pragma once

#include <cstdint>

#include "ops/losses.h"
#include "tensor/tensor.h"

namespace mila::cpu {

// target int64 [n] of a K-class problem: its CrossEntropyTargets (ops/losses.h).
CrossEntropyTargets cross_entropy_targets(const Tensor& target, int64_t classes, int64_t ignore_index);

// logits [N, K, S], target int64 [N, S] (checked: every value is ignore_index or in [0, K)).
// Returns the sum over the non-ignored positions of logsumexp - logits[target]. When dlogits
// [N, K, S] is defined, also writes the gradient of scale * that sum:
// dlogits = scale * (softmax(logits) - onehot(target)) at non-ignored positions, 0 elsewhere.
double cross_entropy_forward(const Tensor& dlogits, const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double scale);

// a, b [n]: returns sum |a - b|; da = scale * sign(a - b), db = -da.
double l1_forward(const Tensor& a, const Tensor& b);
void l1_backward(const Tensor& da, const Tensor& db, const Tensor& a, const Tensor& b, double scale);

// pred, target, mask [n] (mask uint8 or pred's dtype; m = 1 where mask != 0, else 0):
// {sum m |p - t|, sum m}; dpred = scale * m * sign(p - t), dtarget = -dpred.
WeightedSums masked_l1_forward(const Tensor& pred, const Tensor& target, const Tensor& mask);
void masked_l1_backward(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                        const Tensor& mask, double scale);

// pred, target [N, C, S], mask [N, S] (m as above): {sum_p m_p cos_p, sum_p m_p} with cos_p
// the cosine of pred and target at p (each L2-normalized over C, eps 1e-12);
// dpred = scale * m_p * d cos_p / d pred, dtarget likewise.
WeightedSums normal_loss_forward(const Tensor& pred, const Tensor& target, const Tensor& mask);
void normal_loss_backward(const Tensor& dpred, const Tensor& dtarget, const Tensor& pred, const Tensor& target,
                          const Tensor& mask, double scale);

// x, t [n]: returns sum of max(x, 0) - x t + log(1 + exp(-|x|));
// dx = scale * (sigmoid(x) - t), dt = -scale * x.
double bce_with_logits_forward(const Tensor& x, const Tensor& t);
void bce_with_logits_backward(const Tensor& dx, const Tensor& dt, const Tensor& x, const Tensor& t, double scale);

// x, y, dout, dx [O, C, I]: the norm is taken over C (stride I) for every (o, i).
void normalize_forward(const Tensor& y, const Tensor& x, double eps);
void normalize_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, double eps);

}  // namespace mila::cpu
