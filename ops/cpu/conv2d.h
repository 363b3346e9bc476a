// CPU kernels of conv2d (ops/conv2d.h): the launchers the op calls, the kernel versions they
// pick from (1: im2col + GEMM, ops/cpu/conv2d.cpp; 2: direct AVX-512, ops/cpu/conv2d_direct.cpp)
// and the plain reference loops the tests compare them with (ops/cpu/conv2d_reference.cpp).
//
// Every tensor here is contiguous, of one floating dtype (float32 or float64), shaped
//   x / dx           [N, Cin, H, W]
//   weight / dweight [Cout, Cin / groups, kh, kw]
//   bias / dbias     [Cout]
//   out / dout       [N, Cout, OH, OW]
// Sizes (Conv2dGeometry, ops/conv2d.h) and validity are checked by the caller
// (ops/conv2d.cpp); outputs are overwritten. Every kernel gives the same bits for any
// number of OpenMP threads.
#pragma once

#include "ops/conv2d.h"
#include "tensor/tensor.h"

namespace mila::cpu {

// ---- the kernels that ship: each picks the fastest version for the shapes and dtype ------
// out = conv(x, weight) + bias; bias may be undefined.
void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                    const Conv2dGeometry& g);
// dx from dout and weight.
void conv2d_backward_input(const Tensor& dx, const Tensor& dout, const Tensor& weight, const Conv2dGeometry& g);
// dweight from dout and x (summed over the batch).
void conv2d_backward_weight(const Tensor& dweight, const Tensor& dout, const Tensor& x, const Conv2dGeometry& g);
// dbias[o] = sum over n, oh, ow of dout[n, o, oh, ow].
void conv2d_backward_bias(const Tensor& dbias, const Tensor& dout, const Conv2dGeometry& g);

// ---- kernel versions, for the tests and the benchmark (the launchers above pick) ----------
// Version 1, any floating dtype, any build: im2col + GEMM (ops/cpu/conv2d.cpp).
void conv2d_forward_im2col(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                           const Conv2dGeometry& g);
void conv2d_backward_input_im2col(const Tensor& dx, const Tensor& dout, const Tensor& weight,
                                  const Conv2dGeometry& g);
void conv2d_backward_weight_im2col(const Tensor& dweight, const Tensor& dout, const Tensor& x,
                                   const Conv2dGeometry& g);
// Version 2, float32 in builds with AVX-512 (conv2d_direct_available()): direct convolution
// without an im2col matrix (ops/cpu/conv2d_direct.cpp). The input backward needs stride 1,
// the weight backward groups = 1.
bool conv2d_direct_available();
void conv2d_forward_direct(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                           const Conv2dGeometry& g);
void conv2d_backward_input_direct(const Tensor& dx, const Tensor& dout, const Tensor& weight,
                                  const Conv2dGeometry& g);
void conv2d_backward_weight_direct(const Tensor& dweight, const Tensor& dout, const Tensor& x,
                                   const Conv2dGeometry& g);

// ---- reference loops (ops/cpu/conv2d_reference.cpp): the formulas of ops/conv2d.h, one
// output element at a time, summed in double, single-threaded. The tests' oracle. --------
void conv2d_reference(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dGeometry& g);
void conv2d_backward_input_reference(const Tensor& dx, const Tensor& dout, const Tensor& weight,
                                     const Conv2dGeometry& g);
void conv2d_backward_weight_reference(const Tensor& dweight, const Tensor& dout, const Tensor& x,
                                      const Conv2dGeometry& g);

}  // namespace mila::cpu
