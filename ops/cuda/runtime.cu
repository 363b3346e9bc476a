// runtime.cu - device queries for tensor/device.h, and the strided-tensor descriptor.
#include "ops/cuda/runtime.h"

namespace mila {

bool cuda_compiled() { return true; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

namespace cuda {

StridedIndexer make_indexer(const Shape& shape, const Shape& strides, const char* op) {
  if (shape.size() > size_t(kMaxDims))
    throw std::invalid_argument(std::string(op) + ": CUDA kernels take at most " + std::to_string(kMaxDims) +
                                " dims, got shape " + shape_str(shape));
  StridedIndexer ix;
  ix.nd = int(shape.size());
  for (int d = 0; d < ix.nd; ++d) {
    ix.sizes[d] = shape[d];
    ix.strides[d] = strides[d];
  }
  return ix;
}

}  // namespace cuda
}  // namespace mila
