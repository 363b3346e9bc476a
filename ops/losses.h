// losses.h - the losses MILA trains with (SPEC 1 and 4.4), and L2 normalization.
// Each returns a 0-d tensor (normalize returns x's shape).
//
//   cross_entropy(logits [N,K,H,W] or [N,K], target int64 [N,H,W] or [N], ignore_index)
//       = mean over non-ignored positions of  logsumexp_k(logits) - logits[target]
//       d/dlogits = (softmax - onehot(target)) / count at valid positions, 0 elsewhere.
//       With every position ignored the mean is 0/0 = NaN, as PyTorch; the MILA training
//       step skips such a term (SPEC 4.4: a term with no valid pixel is 0).
//   l1_loss(a, b)                    = mean |a - b|
//   masked_l1_loss(pred, target, m)  = sum(|pred - target| * m) / count(m != 0); 0 if the mask is empty
//   normal_loss(pred, target, valid) = 1 - mean over valid pixels of normalize(pred) . normalize(target)
//                                      (over channels); 0 if no pixel is valid
//   bce_with_logits(x, t)            = mean of max(x, 0) - x t + log(1 + exp(-|x|))  (stable form)
//                                      d/dx = (sigmoid(x) - t) / n
//   normalize(x, dim, eps)           = x / max(||x||_2 over dim, eps)
//       d/dx = (g - y (g . y)) / ||x|| where ||x|| > eps, g / eps elsewhere (no NaN at 0).
#pragma once

#include "tensor/tensor.h"

namespace mila {

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = 255);
Tensor l1_loss(const Tensor& a, const Tensor& b);
Tensor masked_l1_loss(const Tensor& pred, const Tensor& target, const Tensor& mask);
Tensor normal_loss(const Tensor& pred, const Tensor& target, const Tensor& valid);
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets);
Tensor normalize(const Tensor& x, int64_t dim = 1, double eps = 1e-12);

}  // namespace mila
