// CPU kernels of the fused inter-frame local attention (ops/ila.h, docs/ila.md).
// Every tensor here is contiguous, CPU, float32 or float64, and already checked by ops/ila.cpp.
//
//   a, b     [B, D, H, W]     queries, keys
//   v        [B, C, H, W]     values
//   out      [B, C, H, W]
//   weights  [B, N, H, W]     the softmax weights W(p, o), N = L * L, offset o = (oy, ox) at
//                             index (oy + r) * L + (ox + r); 0 for offsets outside the map
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila::cpu {

// Fills out and weights (both allocated by the caller). L odd >= 1.
void ila_forward(const Tensor& out, const Tensor& weights, const Tensor& a, const Tensor& b, const Tensor& v,
                 int64_t L);

// Fills the gradients that are defined (an undefined da, db or dv is skipped, with the
// work only it needs) from dout [B, C, H, W] and the forward's weights.
void ila_backward(const Tensor& da, const Tensor& db, const Tensor& dv, const Tensor& dout, const Tensor& weights,
                  const Tensor& a, const Tensor& b, const Tensor& v, int64_t L);

}  // namespace mila::cpu
