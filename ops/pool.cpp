// pool.cpp - checks, output sizes, dispatch and derivative rules of the 2-d poolings
// (ops/pool.h); kernels in ops/cpu/pool.cpp and ops/cuda/pool.h.
#include "ops/pool.h"

#include <stdexcept>
#include <string>

#include "autograd/function.h"
#include "ops/cpu/pool.h"
#include "ops/cuda/pool.h"
#include "ops/op_list.h"

namespace mila {
namespace {

std::string pair_str(PoolSize s) { return "(" + std::to_string(s.h) + ", " + std::to_string(s.w) + ")"; }

// Common checks; returns x as [N, C, H, W] (a 3-d [C, H, W] input gets N = 1).
Tensor as_4d(const char* op, const Tensor& x) {
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string(op) + ": expected a float32 or float64 input, got " +
                                dtype_name(x.dtype()) + " " + shape_str(x.shape()));
  if (x.dim() != 3 && x.dim() != 4)
    throw std::invalid_argument(std::string(op) + ": expected a 3-d [C, H, W] or 4-d [N, C, H, W] input, got " +
                                shape_str(x.shape()));
  return x.dim() == 3 ? x.unsqueeze(0) : x;
}

// PyTorch's pooling_output_shape for one axis (div_rtn: the division rounds toward -inf).
int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (span >= 0 ? span / s : -((-span + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;  // the last window must start inside the map or left padding
  return out;
}

// PyTorch's pool2d_shape_check, with its rules and messages; returns {OH, OW}.
std::pair<int64_t, int64_t> output_size(const char* op, const Tensor& x, PoolSize k, PoolSize s, PoolSize p, PoolSize d,
                                        bool ceil_mode) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(std::string(op) + ": " + why + " (input " + shape_str(x.shape()) + ", kernel " +
                                pair_str(k) + ", stride " + pair_str(s) + ", padding " + pair_str(p) +
                                (d.h != 1 || d.w != 1 ? ", dilation " + pair_str(d) : std::string()) + ")");
  };
  if (k.h <= 0 || k.w <= 0) fail("kernel size must be greater than zero");
  if (s.h <= 0 || s.w <= 0) fail("stride must be greater than zero");
  if (d.h <= 0 || d.w <= 0) fail("dilation must be greater than zero");
  if (p.h < 0 || p.w < 0) fail("padding must be non-negative");
  if (p.h > k.h / 2 || p.w > k.w / 2) fail("pad should be smaller than or equal to half of kernel size");
  const int64_t H = x.size(-2), W = x.size(-1);
  const int64_t OH = pooled_size(H, k.h, s.h, p.h, d.h, ceil_mode), OW = pooled_size(W, k.w, s.w, p.w, d.w, ceil_mode);
  if (OH < 1 || OW < 1)
    fail("output size is too small: calculated " + std::to_string(OH) + "x" + std::to_string(OW) + " from " +
         std::to_string(H) + "x" + std::to_string(W));
  return {OH, OW};
}

// The planes view [P, H, W] of a contiguous [N, C, H, W] tensor.
Tensor planes(const Tensor& t) { return t.reshape({t.size(0) * t.size(1), t.size(2), t.size(3)}); }

}  // namespace

Tensor max_pool2d(const Tensor& x_in, PoolSize kernel, PoolSize stride, PoolSize padding, PoolSize dilation,
                  bool ceil_mode) {
  const Tensor x = as_4d("max_pool2d", x_in);
  const auto [OH, OW] = output_size("max_pool2d", x_in, kernel, stride, padding, dilation, ceil_mode);
  const int64_t N = x.size(0), C = x.size(1);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::allocate({N, C, OH, OW}, x.dtype(), x.device());
  Tensor indices = Tensor::allocate({N, C, OH, OW}, DType::Int64, x.device());
  const Pool2dParams p{kernel.h, kernel.w, stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w};
  if (x.device().is_cpu()) cpu::max_pool2d_forward(planes(out), planes(indices), planes(xc), p);
  else if constexpr (has_cuda_kernel(Op::max_pool2d))
    cuda::max_pool2d_forward(planes(out), planes(indices), planes(xc), p);
  else throw_unsupported(Op::max_pool2d, x.device());
  const Shape x_shape = x.shape();
  out = autograd::record("max_pool2d", out, {x},
                         [indices, x_shape](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                           Tensor dx = Tensor::allocate(x_shape, dout.dtype(), dout.device());
                           const Tensor g = dout.contiguous();
                           if (g.device().is_cpu()) cpu::max_pool2d_backward(planes(dx), planes(g), planes(indices));
                           else if constexpr (has_cuda_kernel(Op::max_pool2d))
                             cuda::max_pool2d_backward(planes(dx), planes(g), planes(indices));
                           else throw_unsupported(Op::max_pool2d, g.device());
                           return {dx};
                         });
  return x_in.dim() == 3 ? out.squeeze(0) : out;
}

Tensor avg_pool2d(const Tensor& x_in, PoolSize kernel, PoolSize stride, PoolSize padding, bool ceil_mode,
                  bool count_include_pad) {
  const Tensor x = as_4d("avg_pool2d", x_in);
  const auto [OH, OW] = output_size("avg_pool2d", x_in, kernel, stride, padding, 1, ceil_mode);
  const int64_t N = x.size(0), C = x.size(1);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::allocate({N, C, OH, OW}, x.dtype(), x.device());
  Pool2dParams p{kernel.h, kernel.w, stride.h, stride.w, padding.h, padding.w};
  p.count_include_pad = count_include_pad;
  if (x.device().is_cpu()) cpu::avg_pool2d_forward(planes(out), planes(xc), p);
  else if constexpr (has_cuda_kernel(Op::avg_pool2d)) cuda::avg_pool2d_forward(planes(out), planes(xc), p);
  else throw_unsupported(Op::avg_pool2d, x.device());
  const Shape x_shape = x.shape();
  out = autograd::record("avg_pool2d", out, {x},
                         [p, x_shape](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                           Tensor dx = Tensor::allocate(x_shape, dout.dtype(), dout.device());
                           const Tensor g = dout.contiguous();
                           if (g.device().is_cpu()) cpu::avg_pool2d_backward(planes(dx), planes(g), p);
                           else if constexpr (has_cuda_kernel(Op::avg_pool2d))
                             cuda::avg_pool2d_backward(planes(dx), planes(g), p);
                           else throw_unsupported(Op::avg_pool2d, g.device());
                           return {dx};
                         });
  return x_in.dim() == 3 ? out.squeeze(0) : out;
}

Tensor adaptive_avg_pool2d(const Tensor& x_in, int64_t out_h, int64_t out_w) {
  const Tensor x = as_4d("adaptive_avg_pool2d", x_in);
  if (out_h < 1 || out_w < 1 || x.size(2) < 1 || x.size(3) < 1)
    throw std::invalid_argument("adaptive_avg_pool2d: output size " + std::to_string(out_h) + "x" +
                                std::to_string(out_w) + " and input " + shape_str(x_in.shape()) +
                                " must have positive heights and widths");
  const int64_t N = x.size(0), C = x.size(1);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::allocate({N, C, out_h, out_w}, x.dtype(), x.device());
  if (x.device().is_cpu()) cpu::adaptive_avg_pool2d_forward(planes(out), planes(xc));
  else if constexpr (has_cuda_kernel(Op::adaptive_avg_pool2d))
    cuda::adaptive_avg_pool2d_forward(planes(out), planes(xc));
  else throw_unsupported(Op::adaptive_avg_pool2d, x.device());
  const Shape x_shape = x.shape();
  out = autograd::record("adaptive_avg_pool2d", out, {x},
                         [x_shape](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                           Tensor dx = Tensor::allocate(x_shape, dout.dtype(), dout.device());
                           const Tensor g = dout.contiguous();
                           if (g.device().is_cpu()) cpu::adaptive_avg_pool2d_backward(planes(dx), planes(g));
                           else if constexpr (has_cuda_kernel(Op::adaptive_avg_pool2d))
                             cuda::adaptive_avg_pool2d_backward(planes(dx), planes(g));
                           else throw_unsupported(Op::adaptive_avg_pool2d, g.device());
                           return {dx};
                         });
  return x_in.dim() == 3 ? out.squeeze(0) : out;
}

}  // namespace mila
