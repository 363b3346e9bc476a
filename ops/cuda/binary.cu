// binary.cu - the binary elementwise ops with broadcasting: one thread per output element,
// inputs read through their (broadcast) strides. Only add has a kernel so far.
#include "ops/cuda/binary.h"

#include <stdexcept>

#include "ops/cuda/runtime.h"

namespace mila::cuda {
namespace {

template <typename T>
__global__ void add_kernel(T* out, const T* a, StridedIndexer ai, const T* b, StridedIndexer bi, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[ai.offset(i)] + b[bi.offset(i)];
}

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const StridedIndexer ai = make_indexer(out.shape(), broadcast_strides(a.shape(), a.strides(), out.shape()), "add");
  const StridedIndexer bi = make_indexer(out.shape(), broadcast_strides(b.shape(), b.strides(), out.shape()), "add");
  dispatch_all(out.dtype(), [&]<typename T>() {
    MILA_LAUNCH((add_kernel<T>), dim3(blocks_for(n)), dim3(256), 0, static_cast<T*>(out.raw_data()), static_cast<const T*>(a.raw_data()), ai,
                                          static_cast<const T*>(b.raw_data()), bi, n);
  });
}

}  // namespace

void binary_forward(Op op, const Tensor& out, const Tensor& a, const Tensor& b) {
  if (!supports(op, out.device())) throw_unsupported(op, out.device());
  switch (op) {
    case Op::add: return add(out, a, b);
    default:  // a CUDA column flipped without its case here
      throw std::logic_error(std::string(op_name(op)) + ": ops/op_list.h says it has a CUDA kernel, but "
                             "ops/cuda/binary.cu has no case for it");
  }
}

}  // namespace mila::cuda
