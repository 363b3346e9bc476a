// copy.cpp - copy_ and fill_ dispatch, and the differentiable copies on Tensor.
#include "ops/copy.h"

#include <stdexcept>

#include "autograd/function.h"
#include "ops/cpu/copy.h"
#include "ops/cuda/copy.h"
#include "ops/op_list.h"

namespace mila {

namespace {

// An expanded view (stride 0 on a dim of size > 1) names one memory location through several
// elements: writing it would race between threads and keep an arbitrary value. PyTorch
// refuses this too ("more than one element of the written-to tensor refers to a single
// memory location").
void check_no_internal_overlap(const Tensor& dst, const char* op) {
  for (int64_t d = 0; d < dst.dim(); ++d)
    if (dst.shape()[d] > 1 && dst.strides()[d] == 0)
      throw std::invalid_argument(std::string(op) + ": the destination of shape " + shape_str(dst.shape()) +
                                  " and strides " + shape_str(dst.strides()) +
                                  " has elements that share memory (an expanded view); clone() it first");
}

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  check_no_internal_overlap(dst, "copy_");
  if (broadcast_shapes(src.shape(), dst.shape(), "copy_") != dst.shape())
    throw std::invalid_argument("copy_: source of shape " + shape_str(src.shape()) +
                                " cannot be broadcast to destination shape " + shape_str(dst.shape()));
  // A copy that involves a GPU (either side) runs on the CUDA side, which does the transfers.
  const Device device = dst.device().is_cpu() ? src.device() : dst.device();
  if (device.is_cpu()) cpu::copy(dst, src);
  else if constexpr (has_cuda_kernel(Op::copy)) cuda::copy(dst, src);
  else throw_unsupported(Op::copy, device);
}

void fill_(const Tensor& dst, double value) {
  check_no_internal_overlap(dst, "fill_");
  if (dst.device().is_cpu()) cpu::fill(dst, value);
  else if constexpr (has_cuda_kernel(Op::fill)) cuda::fill(dst, value);
  else throw_unsupported(Op::fill, dst.device());
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
  return dispatch_all(host.dtype(), [&]<typename S>() { return convert<T>(*host.data<S>()); });
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template uint8_t Tensor::item<uint8_t>() const;

}  // namespace mila
