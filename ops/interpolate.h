// interpolate.h - bilinear resizing, PyTorch's F.interpolate(x, size=(out_h, out_w),
// mode="bilinear", align_corners=False), up or down, any sizes.
//
// Shapes: x [N, C, H, W] -> out [N, C, out_h, out_w], float32 or float64.
//
// Per axis (rows shown; columns the same with W, out_w), for output row oh:
//   scale  = H / out_h                                  (PyTorch: input_size / output_size
//                                                        when a size, not a scale, is given)
//   src    = max((oh + 0.5) * scale - 0.5, 0)            (pixel centres aligned; clamped at 0)
//   h0     = min(floor(src), H - 1),  h1 = min(h0 + 1, H - 1)
//   l1     = src - h0,  l0 = 1 - l1                      (at the bottom edge h1 = h0: l0 + l1 = 1
//                                                        on the one row)
//   out[oh, ow] = l0h * (l0w x[h0, w0] + l1w x[h0, w1]) + l1h * (l0w x[h1, w0] + l1w x[h1, w1])
// computed in x's dtype in that order, as PyTorch's CPU kernel does (float32 weights for
// float32 tensors), so results match it to float32 rounding. Same size gives x exactly
// (src = oh, l1 = 0); a 1x1 input is broadcast; a 1x1 output samples the map's centre.
//
// Derivative: each output spreads its gradient back to its four sources with the same
// weights, dx[h, w] = sum over outputs reading (h, w) of weight * dout. The CPU kernel
// computes it as a gather per plane (ops/cpu/interpolate.cpp), so the result does not
// depend on the thread count.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila {

Tensor interpolate_bilinear(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace mila
