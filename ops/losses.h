// losses.h - MILA's training losses (SPEC 4.4) and the L2 normalization of the normal head,
// each a fused op with its own backward (kernels: ops/cpu/losses.cpp).
//
// Every loss returns a 0-d tensor of its input's dtype (float32 or float64), the mean of
// its per-element terms. Sums accumulate in double in an order fixed by the shapes alone,
// so results do not depend on the thread count. Inputs may have any strides.
//
// ---- cross_entropy(logits, target, ignore_index = 255) ----------------------------------
//   logits [N, K, d1, ...] (the model: [N, K, H, W]; also [N, K]), target int64 [N, d1, ...].
//   For every position p whose target t = target[p] is not ignore_index:
//     loss_p = logsumexp_k(logits[:, k, p]) - logits[t, p]      (= -log_softmax(logits)[t, p])
//   loss = sum of loss_p / (number of such positions)           (PyTorch's reduction="mean")
//   A target outside [0, K) that is not ignore_index throws (PyTorch: "Target t is out of
//   bounds"). All positions ignored: the loss is NaN, as PyTorch >= 1.10 gives (0 / 0: the
//   mean of an empty set; pytorch/pytorch#64572), and the gradient is all zeros. MILA's trainer
//   wants 0 for a term with no valid pixel (SPEC 4.4): it checks for that case itself.
//   Derivative (g = dout, M = number of non-ignored positions):
//     dlogits[k, p] = g / M * (softmax(logits[:, p])_k - [k == t_p])  at non-ignored p, 0 at ignored p.
//   Fused: one pass over the logits computes the loss and, when the logits require grad, the
//   gradient above for g = 1; the backward returns it (g = 1) or scales it (Note [fused
//   cross-entropy gradient] in ops/losses.cpp). Without grad mode nothing but the loss is made.
//
// ---- l1_loss(a, b) ----------------------------------------------------------------------
//   a, b of one shape: loss = mean |a - b|.     da = g / n * sign(a - b) (0 where a = b), db = -da.
//
// ---- masked_l1_loss(pred, target, mask) -------------------------------------------------
//   pred, target of one shape; mask uint8 or of pred's dtype, of pred's shape or broadcast to
//   it; an element is valid where mask != 0. The depth loss: mask = gt > 0.
//     loss = sum over valid elements of |pred - target| / (number of valid elements)
//   An empty mask gives 0 with zero gradients: SPEC 4.4's "a term with no valid pixel is 0"
//   (this is MILA's loss, not a PyTorch op, so it follows the SPEC rather than 0 / 0). Values
//   at invalid elements are never read into the result (a NaN there does not leak).
//   dpred = g sign(pred - target) / count at valid elements (0 elsewhere), dtarget = -dpred.
//
// ---- normal_loss(pred, target, valid) ---------------------------------------------------
//   pred, target [N, C, H, W] (C = 3: surface normals), valid [N, H, W] uint8 or pred's dtype
//   (a pixel p = (n, h, w) is valid where valid != 0: the gt normal is non-zero).
//     cos_p = normalize(pred)_p . normalize(target)_p  (over C, eps 1e-12 as normalize below)
//     loss  = 1 - mean of cos_p over the valid pixels
//   Both inputs ARE normalized inside, so the op is SPEC 4.4's formula as written and takes
//   raw ground truth (decoded PNG normals are only roughly unit length). The model's normal
//   output is normalized already (SPEC 4.3); normalizing it again changes it only by rounding.
//   A zero vector has cos 0 (no NaN); its gradient is (other / |other|) / eps, large but
//   finite, as PyTorch's autograd gives for the composition. No valid pixel: 0, zero gradients.
//   Derivative (per valid pixel, dp = max(|p|, eps), dt = max(|t|, eps), n = valid count):
//     dpred_c = -g / n * (t_c / (dp dt) - p_c (p . t) / (dp^2 dt |p|))   (2nd term: |p| >= eps only)
//   and dtarget likewise with p and t swapped.
//
// ---- bce_with_logits(logits, targets) ---------------------------------------------------
//   logits, targets of one shape (targets in [0, 1], e.g. 1 for "real"):
//     loss_i = max(x, 0) - x t + log(1 + exp(-|x|))            (x = logits_i, t = targets_i;
//   loss = mean loss_i.  = -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)), written so that
//   exp never overflows and large |x| loses no precision (PyTorch's formula).
//   dlogits = g / n * (sigmoid(x) - t),  dtargets = -g / n * x.
//
// ---- normalize(x, dim = 1, eps = 1e-12) -------------------------------------------------
//   y = x / max(||x||_2, eps), the norm taken along dim (PyTorch's F.normalize, p = 2).
//   Derivative (per line along dim, n = ||x||, d = max(n, eps), g = dout):
//     n >= eps:  dx = g / d - x (sum_c g_c x_c) / (d^2 n)     (= (g - y (g . y)) / n)
//     n <  eps:  dx = g / eps                                  (the clamp is constant there)
//   as PyTorch's autograd gives for x / norm(x).clamp_min(eps): a zero vector has output 0
//   and gradient dout / eps (large, but finite).
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila {

Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = 255);
Tensor l1_loss(const Tensor& a, const Tensor& b);
Tensor masked_l1_loss(const Tensor& pred, const Tensor& target, const Tensor& mask);
Tensor normal_loss(const Tensor& pred, const Tensor& target, const Tensor& valid);
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets);
Tensor normalize(const Tensor& x, int64_t dim = 1, double eps = 1e-12);

// ---- what the kernels return (ops/cpu/losses.h, ops/cuda/losses.h) ----------------------

// A K-class target: the number of positions to average over (target in [0, K)), and the
// first position (row-major) whose target is neither ignore_index nor in [0, K) with its
// value (bad_index -1 if none).
struct CrossEntropyTargets {
  int64_t count = 0;
  int64_t bad_index = -1;
  int64_t bad_value = 0;
};

// A masked sum and the number of valid (mask != 0) elements or pixels.
struct WeightedSums {
  double value = 0;
  double weight = 0;
};

}  // namespace mila
