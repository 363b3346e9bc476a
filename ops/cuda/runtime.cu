// runtime.cu - device queries and the CUDA allocator (registered at start-up).
//
// The allocator calls cudaMalloc/cudaFree directly and counts bytes like the CPU one. A
// caching allocator (as PyTorch's) is worth adding once training on the GPU makes allocation
// cost visible. Only the current device (cuda:0 unless the program calls cudaSetDevice) is
// used.
#include "ops/cuda/runtime.h"

#include "tensor/allocator.h"

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
namespace {

class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, nbytes));
    counter_.on_allocate(nbytes);
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    cudaFree(p);  // no throw from a destructor path
    counter_.on_deallocate(nbytes);
  }
  MemoryStats stats() const override { return counter_.stats(); }
  void reset_peak() override { counter_.reset_peak(); }

 private:
  AllocationCounter counter_;
};

// Registered during static initialization; this file is always linked because
// cuda_compiled() above is referenced by the ops' error (throw_unsupported, ops/op_list.cpp).
const bool registered = [] {
  static CudaAllocator instance;
  register_allocator(DeviceType::CUDA, &instance);
  return true;
}();

}  // namespace

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
