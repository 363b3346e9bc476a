// conv2d.h - 2-d convolution (cross-correlation) with PyTorch's F.conv2d semantics.
//
// Shape legend:
//   x      [N, Cin, H, W]             input
//   weight [Cout, Cin / groups, kh, kw]
//   bias   [Cout] or undefined
//   out    [N, Cout, OH, OW]
//   OH = floor((H + 2 pad_h - dilation_h (kh - 1) - 1) / stride_h) + 1, OW likewise.
//
// Groups: the Cin input channels and Cout output channels are cut into `groups` equal
// slices; output slice g sees only input slice g (groups = Cin = Cout: depthwise).
// With G = groups, Cg = Cin / G, Og = Cout / G, for o in group g = o / Og:
//
//   out[n, o, oh, ow] = bias[o] + sum over c < Cg, i < kh, j < kw of
//                       weight[o, c, i, j] * x[n, g Cg + c, oh sh - ph + i dh, ow sw - pw + j dw]
//
// where taps outside the map read zero (zero padding).
//
// Derivatives (see the Note [conv2d as a matrix product] in ops/cpu/conv2d.cpp):
//   dx[n, g Cg + c, h, w] = sum of weight[o, c, i, j] * dout[n, o, oh, ow] over the (o, i, j,
//                           oh, ow) whose tap lands on (h, w)     (a transposed convolution)
//   dweight[o, c, i, j]   = sum over n, oh, ow of dout[n, o, oh, ow] * x[n, g Cg + c, tap]
//   dbias[o]              = sum over n, oh, ow of dout[n, o, oh, ow]
// Each is computed only when needed. Kernels (ops/cpu/conv2d.h): float32 runs a direct
// AVX-512 convolution or im2col + the project's GEMM (ops/cpu/gemm.h), whichever suits the
// shapes; float64 runs im2col + the plain fp64 GEMM. Results do not depend on the number of
// threads, bit for bit.
//
// Misuse (wrong ranks, channel mismatch, groups not dividing the channels, non-positive
// stride or dilation, negative padding, an empty output) throws std::invalid_argument
// naming conv2d and the shapes.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace mila {

// Stride, zero padding, dilation (per axis) and groups; defaults as F.conv2d. Designated
// initializers read well: conv2d(x, w, b, {.stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3}),
// or use square() for the common equal-axes case: conv2d(x, w, b, Conv2dParams::square(2, 3)).
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  // The same stride, padding and dilation on both axes (PyTorch's integer arguments).
  static Conv2dParams square(int64_t stride, int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1) {
    return {stride, stride, padding, padding, dilation, dilation, groups};
  }
};

// F.conv2d(x, weight, bias, stride, padding, dilation, groups). Differentiable in x, weight
// and bias. float32 or float64, all three of one dtype and device.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Conv2dParams p = {});

// The backward passes as functions of their own (what conv2d's derivative rule calls; also
// useful to benchmark them). They check their arguments like conv2d and return new tensors.
//   dx [N, Cin, H, W] from dout [N, Cout, OH, OW] and weight; x_shape gives N, Cin, H, W.
Tensor conv2d_backward_input(const Tensor& dout, const Tensor& weight, const Shape& x_shape, Conv2dParams p = {});
//   dweight [Cout, Cin / groups, kh, kw] from dout and x; weight_shape gives its shape.
Tensor conv2d_backward_weight(const Tensor& dout, const Tensor& x, const Shape& weight_shape, Conv2dParams p = {});

// Every size a conv2d kernel takes (ops/cpu/conv2d.h, ops/cuda/conv2d.h), derived once from
// the shapes and Conv2dParams by conv2d_geometry().
struct Conv2dGeometry {
  int64_t N, Cin, H, W;       // input
  int64_t Cout, kh, kw;       // weight [Cout, Cin / groups, kh, kw]
  int64_t OH, OW;             // output
  int64_t sh, sw;             // stride
  int64_t ph, pw;             // zero padding
  int64_t dh, dw;             // dilation
  int64_t groups;

  int64_t cin_g() const { return Cin / groups; }     // input channels per group
  int64_t cout_g() const { return Cout / groups; }   // output channels per group
  int64_t k() const { return cin_g() * kh * kw; }    // rows of the im2col matrix (GEMM depth)
  int64_t ohw() const { return OH * OW; }
  // A 1x1 kernel with stride 1 and no padding: the input plane is already the im2col matrix.
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

// Checks shapes and parameters as conv2d does (x_shape 4-d, or 3-d for one image) and
// returns the geometry; for callers of the kernels themselves, such as the benchmark.
Conv2dGeometry conv2d_geometry(const Shape& x_shape, const Shape& weight_shape, const Conv2dParams& p);

}  // namespace mila
