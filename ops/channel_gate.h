// channel_gate.h - the SE block's multiply (SPEC 4.1): every channel of x scaled by its gate,
// fused forward and backward.
//
// Shapes: x [N, C, *] (the model: [N, C, H, W]), gate [N, C], out like x; float32 or float64.
//   out[n, c, p] = x[n, c, p] * gate[n, c]          (x * gate[:, :, None, None])
// Derivatives (g = dout, sums over the positions p of plane (n, c)):
//   dx[n, c, p]  = g[n, c, p] * gate[n, c]
//   dgate[n, c]  = sum_p g[n, c, p] * x[n, c, p]
// The backward computes both in one pass over g and x; dgate's sums accumulate in double in
// a fixed order (one plane per thread), so results do not depend on the thread count.
// The same as mul(x, gate.reshape({N, C, 1, 1})), which would reduce dgate with a separate
// pass over g * x (a temporary of x's size).
#pragma once

#include "tensor/tensor.h"

namespace mila {

Tensor channel_gate(const Tensor& x, const Tensor& gate);

}  // namespace mila
