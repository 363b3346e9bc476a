// copy.cpp - copy_ and fill_ dispatch, and the differentiable copies on Tensor.
#include "ops/copy.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/cpu/copy.h"
#include "ops/op_list.h"
#ifdef MILA_WITH_CUDA
#include "ops/cuda/copy.h"
#endif

namespace mila {

void copy_(const Tensor& dst, const Tensor& src) {
  if (broadcast_shapes(src.shape(), dst.shape(), "copy_") != dst.shape())
    throw std::invalid_argument("copy_: source of shape " + shape_str(src.shape()) +
                                " cannot be broadcast to destination shape " + shape_str(dst.shape()));
  if (dst.device().is_cpu() && src.device().is_cpu()) return cpu::copy(dst, src);
  check_supported(Op::copy, dst.device().is_cuda() ? dst.device() : src.device());
#ifdef MILA_WITH_CUDA
  cuda::copy(dst, src);
#endif
}

void fill_(const Tensor& dst, double value) {
  if (dst.device().is_cpu()) return cpu::fill(dst, value);
#ifdef MILA_WITH_CUDA
  cuda::fill(dst, value);
#else
  check_supported(Op::fill, dst.device());
#endif
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::allocate(shape(), dtype(), device());
  copy_(out, *this);
  return autograd::record("clone", out, {*this},
                          [](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList { return {dout}; });
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  if (requires_grad() && !is_floating(target))
    throw std::invalid_argument(std::string("to: cannot cast a tensor that requires grad to ") + dtype_name(target));
  Tensor out = Tensor::allocate(shape(), target, device());
  copy_(out, *this);
  const DType source = dtype();
  return autograd::record("to_dtype", out, {*this},
                          [source](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                            return {dout.to(source)};
                          });
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor out = Tensor::allocate(shape(), dtype(), target);
  copy_(out, *this);
  const Device source = device();
  return autograd::record("to_device", out, {*this},
                          [source](const Tensor& dout, const std::vector<bool>&) -> autograd::GradList {
                            return {dout.to(source)};
                          });
}

template <typename T>
T Tensor::item() const {
  if (numel() != 1)
    throw std::invalid_argument("item: expected a tensor with one element, got shape " + shape_str(shape()));
  Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  return dispatch_all(host.dtype(), [&]<typename S>() { return static_cast<T>(*host.data<S>()); });
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template uint8_t Tensor::item<uint8_t>() const;

}  // namespace mila
