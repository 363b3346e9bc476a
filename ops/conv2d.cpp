// conv2d.cpp - checks, output size, dispatch and derivative rule of conv2d (ops/conv2d.h);
// kernels in ops/cpu/conv2d.h and ops/cuda/conv2d.h.
#include "ops/conv2d.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/function.h"
#include "ops/cpu/conv2d.h"
#include "ops/cuda/conv2d.h"
#include "ops/op_list.h"

namespace mila {
namespace {

std::string params_str(const Conv2dParams& p) {
  auto pair = [](int64_t h, int64_t w) { return "(" + std::to_string(h) + ", " + std::to_string(w) + ")"; };
  return "stride " + pair(p.stride_h, p.stride_w) + ", padding " + pair(p.pad_h, p.pad_w) + ", dilation " +
         pair(p.dilation_h, p.dilation_w) + ", groups " + std::to_string(p.groups);
}

// Validates the shapes and parameters, PyTorch's rules, and returns every size the kernels
// need. x_shape and w_shape are 4-d; a message names the op (`op`) and all shapes.
Conv2dGeometry geometry(const char* op, const Shape& x_shape, const Shape& w_shape, const Conv2dParams& p) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(std::string(op) + ": " + why + " (input " + shape_str(x_shape) + ", weight " +
                                shape_str(w_shape) + ", " + params_str(p) + ")");
  };
  if (x_shape.size() != 4) fail("expected a 4-d input [N, Cin, H, W] (or 3-d [Cin, H, W])");
  if (w_shape.size() != 4) fail("expected a 4-d weight [Cout, Cin / groups, kh, kw]");
  if (p.stride_h <= 0 || p.stride_w <= 0) fail("stride must be positive");
  if (p.dilation_h <= 0 || p.dilation_w <= 0) fail("dilation must be positive");
  if (p.pad_h < 0 || p.pad_w < 0) fail("padding must be non-negative");
  if (p.groups <= 0) fail("groups must be positive");
  const int64_t Cin = x_shape[1], Cout = w_shape[0];
  if (Cout % p.groups != 0)
    fail("the " + std::to_string(Cout) + " output channels are not divisible by groups=" + std::to_string(p.groups));
  if (w_shape[1] * p.groups != Cin)
    fail("given groups=" + std::to_string(p.groups) + ", weight of size " + shape_str(w_shape) + " expects input[" +
         std::to_string(x_shape[0]) + ", " + std::to_string(w_shape[1] * p.groups) + ", ...] to have " +
         std::to_string(w_shape[1] * p.groups) + " channels, but got " + std::to_string(Cin) + " channels instead");
  if (w_shape[2] <= 0 || w_shape[3] <= 0 || w_shape[1] <= 0 || Cout <= 0) fail("weight has an empty dimension");
  Conv2dGeometry g{};
  g.N = x_shape[0];
  g.Cin = Cin;
  g.H = x_shape[2];
  g.W = x_shape[3];
  g.Cout = Cout;
  g.kh = w_shape[2];
  g.kw = w_shape[3];
  g.sh = p.stride_h;
  g.sw = p.stride_w;
  g.ph = p.pad_h;
  g.pw = p.pad_w;
  g.dh = p.dilation_h;
  g.dw = p.dilation_w;
  g.groups = p.groups;
  // floor((H + 2p - d (k - 1) - 1) / s) + 1, rounding toward -inf: a kernel wider than the
  // padded map gives OH <= 0, reported below.
  auto out_size = [](int64_t in, int64_t k, int64_t s, int64_t pad, int64_t d) {
    const int64_t span = in + 2 * pad - d * (k - 1) - 1;
    return (span >= 0 ? span / s : -((-span + s - 1) / s)) + 1;
  };
  // An empty batch is allowed (an empty output, as PyTorch); empty maps are not.
  if (g.H <= 0 || g.W <= 0) fail("input has an empty height or width");
  g.OH = out_size(g.H, g.kh, g.sh, g.ph, g.dh);
  g.OW = out_size(g.W, g.kw, g.sw, g.pw, g.dw);
  if (g.OH < 1 || g.OW < 1)
    fail("output size is too small: calculated " + std::to_string(g.OH) + "x" + std::to_string(g.OW) +
         " from input " + std::to_string(g.H) + "x" + std::to_string(g.W) + " and dilated kernel " +
         std::to_string(g.dh * (g.kh - 1) + 1) + "x" + std::to_string(g.dw * (g.kw - 1) + 1));
  return g;
}

void check_tensors(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  if (!is_floating(a.dtype()) || a.dtype() != b.dtype())
    throw std::invalid_argument(std::string(op) + ": expected float32 or float64 tensors of one dtype, got " + a_name +
                                " " + dtype_name(a.dtype()) + " " + shape_str(a.shape()) + " and " + b_name + " " +
                                dtype_name(b.dtype()) + " " + shape_str(b.shape()));
  if (a.device() != b.device())
    throw std::invalid_argument(std::string(op) + ": " + a_name + " on " + a.device().str() + " but " + b_name +
                                " on " + b.device().str());
}

Shape shape_4d(const Shape& s) {
  if (s.size() != 3) return s;
  return {1, s[0], s[1], s[2]};
}

// The kernels of the tensors' device, one per pass (Note [device dispatch] in ops/op_list.h).
void forward_kernel(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g) {
  if (x.device().is_cpu()) cpu::conv2d_forward(out, x, w, b, g);
  else if constexpr (has_cuda_kernel(Op::conv2d)) cuda::conv2d_forward(out, x, w, b, g);
  else throw_unsupported(Op::conv2d, x.device());
}

void backward_input_kernel(const Tensor& dx, const Tensor& dout, const Tensor& w, const Conv2dGeometry& g) {
  if (dout.device().is_cpu()) cpu::conv2d_backward_input(dx, dout, w, g);
  else if constexpr (has_cuda_kernel(Op::conv2d)) cuda::conv2d_backward_input(dx, dout, w, g);
  else throw_unsupported(Op::conv2d, dout.device());
}

void backward_weight_kernel(const Tensor& dw, const Tensor& dout, const Tensor& x, const Conv2dGeometry& g) {
  if (dout.device().is_cpu()) cpu::conv2d_backward_weight(dw, dout, x, g);
  else if constexpr (has_cuda_kernel(Op::conv2d)) cuda::conv2d_backward_weight(dw, dout, x, g);
  else throw_unsupported(Op::conv2d, dout.device());
}

void backward_bias_kernel(const Tensor& db, const Tensor& dout, const Conv2dGeometry& g) {
  if (dout.device().is_cpu()) cpu::conv2d_backward_bias(db, dout, g);
  else if constexpr (has_cuda_kernel(Op::conv2d)) cuda::conv2d_backward_bias(db, dout, g);
  else throw_unsupported(Op::conv2d, dout.device());
}

}  // namespace

Conv2dGeometry conv2d_geometry(const Shape& x_shape, const Shape& weight_shape, const Conv2dParams& p) {
  return geometry("conv2d", shape_4d(x_shape), weight_shape, p);
}

Tensor conv2d_backward_input(const Tensor& dout_in, const Tensor& weight, const Shape& x_shape, Conv2dParams p) {
  check_tensors("conv2d_backward_input", dout_in, "dout", weight, "weight");
  const Conv2dGeometry g = geometry("conv2d_backward_input", shape_4d(x_shape), weight.shape(), p);
  const Shape out_shape{g.N, g.Cout, g.OH, g.OW};
  if (shape_4d(dout_in.shape()) != out_shape)
    throw std::invalid_argument("conv2d_backward_input: dout " + shape_str(dout_in.shape()) +
                                " does not match the output " + shape_str(out_shape) + " of input " +
                                shape_str(x_shape) + " and weight " + shape_str(weight.shape()));
  autograd::NoGradGuard no_grad;  // a kernel call, not part of any graph
  Tensor dx = Tensor::allocate(x_shape, dout_in.dtype(), dout_in.device());
  backward_input_kernel(dx, dout_in.contiguous(), weight.contiguous(), g);
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& dout_in, const Tensor& x, const Shape& weight_shape, Conv2dParams p) {
  check_tensors("conv2d_backward_weight", dout_in, "dout", x, "input");
  const Conv2dGeometry g = geometry("conv2d_backward_weight", shape_4d(x.shape()), weight_shape, p);
  const Shape out_shape{g.N, g.Cout, g.OH, g.OW};
  if (shape_4d(dout_in.shape()) != out_shape)
    throw std::invalid_argument("conv2d_backward_weight: dout " + shape_str(dout_in.shape()) +
                                " does not match the output " + shape_str(out_shape) + " of input " +
                                shape_str(x.shape()) + " and weight " + shape_str(weight_shape));
  autograd::NoGradGuard no_grad;
  Tensor dw = Tensor::allocate(weight_shape, dout_in.dtype(), dout_in.device());
  backward_weight_kernel(dw, dout_in.contiguous(), x.contiguous(), g);
  return dw;
}

Tensor conv2d(const Tensor& x_in, const Tensor& weight, const Tensor& bias, Conv2dParams p) {
  check_tensors("conv2d", x_in, "input", weight, "weight");
  if (x_in.dim() != 3 && x_in.dim() != 4)
    throw std::invalid_argument("conv2d: expected a 4-d input [N, Cin, H, W] (or 3-d [Cin, H, W]), got input " +
                                shape_str(x_in.shape()) + " and weight " + shape_str(weight.shape()));
  const Tensor x = x_in.dim() == 3 ? x_in.unsqueeze(0) : x_in;  // an unbatched input is a batch of one
  const Conv2dGeometry g = geometry("conv2d", shape_4d(x.shape()), weight.shape(), p);
  if (bias.defined()) {
    check_tensors("conv2d", x, "input", bias, "bias");
    if (bias.dim() != 1 || bias.size(0) != g.Cout)
      throw std::invalid_argument("conv2d: expected bias [" + std::to_string(g.Cout) + "], got bias " +
                                  shape_str(bias.shape()) + " (input " + shape_str(x.shape()) + ", weight " +
                                  shape_str(weight.shape()) + ")");
  }
  // The kernels read contiguous buffers; detached copies are kernel arguments, not graph.
  const Tensor xc = x.detach().contiguous(), wc = weight.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::allocate({g.N, g.Cout, g.OH, g.OW}, x.dtype(), x.device());
  forward_kernel(out, xc, wc, bc, g);

  // Save only what backward needs: x for dweight, weight for dx.
  const bool track = autograd::any_requires_grad({x, weight, bias});
  const Tensor saved_x = track && weight.requires_grad() ? xc : Tensor();
  const Tensor saved_w = track && x.requires_grad() ? wc : Tensor();
  auto backward = [g, saved_x, saved_w](const Tensor& dout_in, const std::vector<bool>& needs) {
    const Tensor dout = dout_in.contiguous();
    autograd::GradList grads(needs.size());  // [dx, dweight(, dbias)]
    if (needs[0]) {
      grads[0] = Tensor::allocate({g.N, g.Cin, g.H, g.W}, dout.dtype(), dout.device());
      backward_input_kernel(grads[0], dout, saved_w, g);
    }
    if (needs[1]) {
      grads[1] = Tensor::allocate({g.Cout, g.cin_g(), g.kh, g.kw}, dout.dtype(), dout.device());
      backward_weight_kernel(grads[1], dout, saved_x, g);
    }
    if (needs.size() > 2 && needs[2]) {
      grads[2] = Tensor::allocate({g.Cout}, dout.dtype(), dout.device());
      backward_bias_kernel(grads[2], dout, g);
    }
    return grads;
  };
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  out = autograd::record("conv2d", out, inputs, backward);
  return x_in.dim() == 3 ? out.squeeze(0) : out;
}

}  // namespace mila
