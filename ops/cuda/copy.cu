// copy.cu - copies that involve a GPU, and fill.
//
// Everything runs on the context's stream (ops/cuda/context.h), in order with the kernels
// before and after it; the host waits only where it reads the bytes itself.
//
//   device -> device  one cudaMemcpyAsync when both sides are dense blocks of one dtype and
//                     shape; otherwise one elementwise kernel (ops/cuda/elementwise.cuh:
//                     vectorized when both are dense and aligned, strided otherwise) that
//                     converts each element with the CPU's rules (tensor/dtype.h convert:
//                     truncation toward zero, INT64_MIN for NaN and out-of-range values,
//                     uint8 keeps the low 8 bits), never the GPU's saturating conversions.
//   host -> device    src's values in dst's dtype, dense, in src's own shape, copied into a
//                     pinned staging block (ops/cuda/caching_allocator.h: cpu::copy arranges
//                     them first unless src already is such a block), then cudaMemcpyAsync
//                     straight into dst when dst is that dense block, or into a device buffer
//                     and from there a device copy that places (and broadcasts) them. From
//                     pinned memory the transfer is a true asynchronous DMA: the host returns
//                     at once, where a copy from pageable memory may first wait for the stream
//                     to drain (CUDA's "API synchronization behavior"), a stall per batch. The
//                     pool reuses the block only after the stream has passed the copy.
//   device -> host    src made dense on the device in its own shape and dtype (skipped when
//                     it is), cudaMemcpyAsync into dst when dst is that dense block or into a
//                     host buffer, a synchronize (the host reads the bytes next), then
//                     cpu::copy converts, places and broadcasts. No pinned staging: the host
//                     waits for these bytes anyway, and a pinned detour would add a copy.
// A source that copy_ broadcasts to dst's shape crosses the bus at its own size.
#include "ops/cuda/copy.h"

#include <cstring>

#include "ops/cpu/copy.h"
#include "ops/cuda/caching_allocator.h"
#include "ops/cuda/elementwise.cuh"

namespace mila::cuda {
namespace {

template <typename D>
struct ConvertTo {
  template <typename S> __device__ D operator()(S v) const { return convert<D>(v); }
};

template <typename T>
struct Fill {
  T value;
  __device__ T operator()() const { return value; }
};

bool dense_like(const Tensor& t, const Tensor& like) {
  return t.is_contiguous() && t.shape() == like.shape() && t.dtype() == like.dtype();
}

// dst and src both on the GPU.
void device_copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dense_like(dst, src) && src.is_contiguous()) {
    CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                               context().stream()));
    return;
  }
  dispatch_all(dst.dtype(), [&]<typename D>() {
    dispatch_all(src.dtype(), [&]<typename S>() { launch_elementwise<D, S>("copy_", ConvertTo<D>{}, dst, src); });
  });
}

void host_to_device(const Tensor& dst, const Tensor& src) {
  Tensor host = src;
  if (!src.is_contiguous() || src.dtype() != dst.dtype()) {
    host = Tensor::allocate(src.shape(), dst.dtype(), Device::cpu());
    cpu::copy(host, src);
  }
  PinnedBuffer staging(host.nbytes());
  std::memcpy(staging.data(), host.raw_data(), host.nbytes());
  const bool direct = dense_like(dst, host);
  const Tensor landing = direct ? dst : Tensor::allocate(host.shape(), host.dtype(), dst.device());
  CUDA_CHECK(cudaMemcpyAsync(landing.raw_data(), staging.data(), host.nbytes(), cudaMemcpyHostToDevice,
                             context().stream()));
  if (!direct) device_copy(dst, landing);
}

void device_to_host(const Tensor& dst, const Tensor& src) {
  Tensor dense = src;
  if (!src.is_contiguous()) {
    dense = Tensor::allocate(src.shape(), src.dtype(), src.device());
    device_copy(dense, src);
  }
  const bool direct = dense_like(dst, dense);
  const Tensor host = direct ? dst : Tensor::allocate(dense.shape(), dense.dtype(), Device::cpu());
  CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), dense.raw_data(), dense.nbytes(), cudaMemcpyDeviceToHost,
                             context().stream()));
  context().synchronize();
  if (!direct) cpu::copy(dst, host);
}

}  // namespace

void copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.device().is_cuda() && src.device().is_cuda()) return device_copy(dst, src);
  if (dst.device().is_cuda()) return host_to_device(dst, src);
  device_to_host(dst, src);
}

void fill(const Tensor& dst, double value) {
  dispatch_all(dst.dtype(), [&]<typename T>() { launch_elementwise<T>("fill_", Fill<T>{convert<T>(value)}, dst); });
}

}  // namespace mila::cuda
