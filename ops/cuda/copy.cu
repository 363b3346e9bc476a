// copy.cu - copies that involve a GPU.
//
// Host <-> device transfers go through one contiguous buffer in the destination's dtype:
//   host -> device: arrange on the host (cpu::copy converts and broadcasts), cudaMemcpy,
//                   then a device strided copy when dst is not contiguous;
//   device -> host: arrange on the device (strided kernel), cudaMemcpy, then cpu::copy.
// A device -> device copy is one strided kernel (or one cudaMemcpy when both are dense).
#include "ops/cuda/copy.h"

#include "ops/cpu/copy.h"
#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

template <typename D, typename S>
__global__ void strided_copy_kernel(D* dst, StridedIndexer di, const S* src, StridedIndexer si, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[di.offset(i)] = convert<D>(src[si.offset(i)]);  // PyTorch's conversions, as on the CPU (tensor/dtype.h)
}

template <typename T>
__global__ void fill_kernel(T* dst, StridedIndexer di, T value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[di.offset(i)] = value;
}

// dst and src both on the GPU.
void device_copy(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
    CUDA_CHECK(cudaMemcpy(dst.raw_data(), src.raw_data(), dst.nbytes(), cudaMemcpyDeviceToDevice));
    return;
  }
  const StridedIndexer di = make_indexer(dst.shape(), dst.strides(), "copy_");
  const StridedIndexer si =
      make_indexer(dst.shape(), broadcast_strides(src.shape(), src.strides(), dst.shape()), "copy_");
  dispatch_all(dst.dtype(), [&]<typename D>() {
    dispatch_all(src.dtype(), [&]<typename S>() {
      MILA_LAUNCH((strided_copy_kernel<D, S>), dim3(blocks_for(n)), dim3(256), 0, static_cast<D*>(dst.raw_data()), di,
                                                        static_cast<const S*>(src.raw_data()), si, n);
    });
  });
}

}  // namespace

void copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.device().is_cuda() && src.device().is_cuda()) return device_copy(dst, src);
  if (dst.device().is_cuda()) {  // host -> device
    Tensor staged = Tensor::allocate(dst.shape(), dst.dtype(), Device::cpu());
    cpu::copy(staged, src);
    if (dst.is_contiguous()) {
      CUDA_CHECK(cudaMemcpy(dst.raw_data(), staged.raw_data(), dst.nbytes(), cudaMemcpyHostToDevice));
    } else {
      Tensor on_device = Tensor::allocate(dst.shape(), dst.dtype(), dst.device());
      CUDA_CHECK(cudaMemcpy(on_device.raw_data(), staged.raw_data(), dst.nbytes(), cudaMemcpyHostToDevice));
      device_copy(dst, on_device);
    }
    return;
  }
  // device -> host
  Tensor arranged = Tensor::allocate(dst.shape(), src.dtype(), src.device());
  device_copy(arranged, src);
  Tensor staged = Tensor::allocate(dst.shape(), src.dtype(), Device::cpu());
  CUDA_CHECK(cudaMemcpy(staged.raw_data(), arranged.raw_data(), staged.nbytes(), cudaMemcpyDeviceToHost));
  cpu::copy(dst, staged);
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const StridedIndexer di = make_indexer(dst.shape(), dst.strides(), "fill_");
  dispatch_all(dst.dtype(), [&]<typename T>() {
    MILA_LAUNCH((fill_kernel<T>), dim3(blocks_for(n)), dim3(256), 0, static_cast<T*>(dst.raw_data()), di, convert<T>(value), n);
  });
}

}  // namespace mila::cuda
