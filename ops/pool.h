// pool.h - 2-d pooling: max_pool2d, avg_pool2d, adaptive_avg_pool2d, PyTorch's semantics.
//
// Shapes: x [N, C, H, W] (or [C, H, W], treated as N = 1), out [N, C, OH, OW]; every
// (n, c) plane is pooled on its own. float32 or float64.
//
// Windows of max_pool2d / avg_pool2d, for output (oh, ow) (the same along w):
//   rows oh * stride - padding + i * dilation, i in [0, kernel)   (avg_pool2d: dilation 1)
//   OH = floor((H + 2 padding - dilation (kernel - 1) - 1) / stride) + 1; with ceil_mode the
//   division rounds up, and a last window that would start in the right padding is dropped
//   ((OH - 1) * stride >= H + padding: OH - 1), exactly as PyTorch's pooling_output_shape.
// Rules PyTorch enforces, and so do these ops (they throw naming the op and the shapes):
//   kernel, stride, dilation > 0; padding <= kernel / 2; OH, OW >= 1.
//
// max_pool2d: out = the largest value of the window; padding counts as -inf (never taken).
//   The first position of the largest value wins ties; a NaN in the window makes the output
//   NaN (PyTorch's `val > max || isnan(val)`). The argmax (h * W + w in its plane, PyTorch's
//   `indices`) is saved for the backward:
//   dx[argmax(o)] += dout[o]   (overlapping windows may send several outputs to one input).
// avg_pool2d: out = (sum of the window's in-map values) / divisor, where the divisor is
//   count_include_pad: the window's size clipped to the padded map [-padding, H + padding)
//                      (so in ceil_mode a window hanging past the padding counts less)
//   otherwise:         the number of in-map values.
//   dx[i] += dout[o] / divisor(o) for every in-map i of window o.
// adaptive_avg_pool2d(x, OH, OW): out[oh, ow] = mean of rows [floor(oh H / OH), ceil((oh+1) H / OH))
//   and the same for columns (bins may overlap or differ in size when OH does not divide H);
//   OH = OW = 1 is the global average (the SE block's squeeze).
//   dx[i] += dout[o] / (size of bin o) for every bin o that contains i.
//
// Sums accumulate in double; the backward scatters inside one plane, and a plane is owned
// by one thread, so every result is independent of the thread count.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila {

// A (height, width) pair; an integer means the same value for both, as in PyTorch.
struct PoolSize {
  int64_t h, w;
  PoolSize(int64_t v) : h(v), w(v) {}  // NOLINT: implicit on purpose (max_pool2d(x, 3, 2, 1))
  PoolSize(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

// One window description for the kernels of max_pool2d and avg_pool2d (ops/cpu/pool.h,
// ops/cuda/pool.h), built by the ops from their arguments.
struct Pool2dParams {
  int64_t kh, kw;                 // kernel
  int64_t sh, sw;                 // stride
  int64_t ph, pw;                 // padding
  int64_t dh = 1, dw = 1;         // dilation (max_pool2d only)
  bool count_include_pad = true;  // avg_pool2d only
};

// PyTorch's F.max_pool2d; stride is required here (PyTorch's default stride = kernel).
Tensor max_pool2d(const Tensor& x, PoolSize kernel, PoolSize stride, PoolSize padding = 0, PoolSize dilation = 1,
                  bool ceil_mode = false);

// PyTorch's F.avg_pool2d (argument order as PyTorch: ceil_mode before count_include_pad).
Tensor avg_pool2d(const Tensor& x, PoolSize kernel, PoolSize stride, PoolSize padding = 0, bool ceil_mode = false,
                  bool count_include_pad = true);

// PyTorch's F.adaptive_avg_pool2d(x, (out_h, out_w)).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

}  // namespace mila
