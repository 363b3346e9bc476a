// ila.h - MILA's inter-frame local attention (SPEC 4.2), fused, and its composed baseline.
// The math, the derivation of the backward and the kernel's loop structure: docs/ila.md.
//
// Shapes (NCHW):
//   a   [B, D, H, W]  queries, from the target frame
//   b   [B, D, H, W]  keys, from the source frame
//   v   [B, C, H, W]  values: the source frame itself
//   out [B, C, H, W]
// Window: L odd >= 1, r = (L - 1) / 2, N = L * L offsets o = (oy, ox), oy, ox in [-r, r].
// For each pixel p = (y, x):
//
//   logit(p, o) = sum_d a[d, p] * b[d, p + o]                    (no 1/sqrt(D) scaling)
//   W(p, .)     = softmax over the offsets whose p + o lies inside the map (others: W = 0)
//   out[c, p]   = sum_o W(p, o) * v[c, p + o]
//
// L = 0 is global attention: every pixel of the map is a candidate offset. A window larger
// than the map gives the same result as L = 0 (only the in-map offsets count).
//
// Derivatives (g = dout, "q = p + o" is the source pixel that p's offset o reads):
//   dW(p, o)     = sum_c g[c, p] * v[c, p + o]
//   dlogit(p, o) = W(p, o) * (dW(p, o) - sum_o' W(p, o') dW(p, o'))   (softmax's rule)
//   da[d, p]     = sum_o dlogit(p, o) * b[d, p + o]
//   db[d, q]     = sum_o dlogit(q - o, o) * a[d, q - o]     (the scatter written as a gather)
//   dv[c, q]     = sum_o W(q - o, o) * g[c, q - o]
// The fused op saves only the softmax weights W [B, N, H, W] for the backward.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila {

// The fused op (CPU kernel in ops/cpu/ila.cpp). a, b, v: float32 or float64 CPU tensors of
// one dtype, any strides (they are made contiguous first). L odd >= 1, or 0 for global
// attention, which runs on matmul + softmax. Throws naming "ila" and the shapes on misuse.
Tensor ila(const Tensor& a, const Tensor& b, const Tensor& v, int64_t L);

// The same function composed from generic differentiable ops (zero padding by concat,
// shifted narrow views, mul, sum, where(-inf) masking, softmax): the baseline the fused op
// is measured against (bench/bench_ila.cpp) and a cross-check in tests/test_ila.cpp.
Tensor ila_composed(const Tensor& a, const Tensor& b, const Tensor& v, int64_t L);

}  // namespace mila
