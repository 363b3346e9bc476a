// caching_allocator.cu - the device allocator behind every cuda tensor, and the pinned host pool.
//
// Note [caching allocator]. cudaMalloc and cudaFree are slow (cudaFree waits for the whole
// device) and a training step allocates and frees the same activation sizes every step, so,
// like PyTorch's CUDA allocator, freed blocks are kept and handed out again:
//   - size classes: a request is rounded up to its class (size_class below: 512 B, then four
//     classes per power of two), and a freed block waits in the free list of its class; the
//     next request of that class takes it. Steps of the same shapes reach a steady state in
//     which no cudaMalloc happens at all (MemoryStats::backend_allocations stops growing).
//   - stream-ordered frees: every kernel and copy of the project runs on the one stream of
//     the context (ops/cuda/context.h), so a block freed on the host can be handed out at once:
//     whatever kernel uses it next is queued after every kernel that used it before.
//   - out of memory: the cache is released (cudaFree of every free block) and the request
//     tried once more before the error, which gives the sizes in use and cached.
//   - empty_cache() returns every free block to the driver; the statistics say how many bytes
//     are in use (requested sizes, as the CPU allocator counts), their peak, and how many are
//     cached.
// Blocks are never split or merged: simpler than PyTorch's allocator, at the price of the
// class slack and of no reuse across classes.
#include "ops/cuda/caching_allocator.h"

#include <bit>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ops/cuda/context.h"
#include "tensor/allocator.h"

namespace mila::cuda {

size_t size_class(size_t bytes) {
  if (bytes <= 512) return 512;
  const size_t step = std::bit_ceil(bytes) / 8;  // four classes between 2^(p-1) and 2^p
  return (bytes + step - 1) / step * step;
}

namespace {

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const size_t cls = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end()) {
      p = it->second;
      free_.erase(it);
      cached_bytes_ -= cls;
    } else {
      p = fresh(cls, nbytes);
    }
    counter_.on_allocate(nbytes);
    return p;
  }
  void deallocate(void* p, size_t nbytes) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    counter_.on_deallocate(nbytes);
    const size_t cls = size_class(nbytes);
    free_.emplace(cls, p);  // stream-ordered: reusable at once (Note [caching allocator])
    cached_bytes_ += cls;
  }
  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    MemoryStats s = counter_.stats();
    s.bytes_cached = int64_t(cached_bytes_);
    s.backend_allocations = backend_allocations_;
    return s;
  }
  void reset_peak() override { counter_.reset_peak(); }
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    release_all();
  }

 private:
  void* fresh(size_t cls, size_t nbytes) {
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, cls);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear it, free the cache, try once more
      release_all();
      err = cudaMalloc(&p, cls);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      const MemoryStats s = counter_.stats();
      throw std::runtime_error("CUDA out of memory: allocating " + std::to_string(nbytes) + " bytes on cuda:" +
                               std::to_string(context().device()) + " (" + std::to_string(s.bytes_in_use) +
                               " bytes in use by tensors, cache emptied; the device has " +
                               std::to_string(context().properties().totalGlobalMem) + " bytes): " +
                               cudaGetErrorString(err));
    }
    ++backend_allocations_;
    return p;
  }
  void release_all() {
    for (auto& [cls, p] : free_) cudaFree(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  AllocationCounter counter_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_;  // size class -> free block
  size_t cached_bytes_ = 0;
  int64_t backend_allocations_ = 0;
};

// Registered during static initialization. This file is always linked: tensor/device.h's
// cuda_compiled() (ops/cuda/runtime.cu) is referenced by every op's error path, and the
// registration below sits in the same library; -u in CMakeLists.txt keeps it too.
const bool registered = [] {
  static CachingAllocator instance;
  register_allocator(DeviceType::CUDA, &instance);
  return true;
}();

// ---- pinned host blocks ----------------------------------------------------------------------
struct PinnedBlock {
  void* data;
  size_t cls;
  cudaEvent_t last_use;  // recorded on the stream when the block was given back
};

class PinnedPool {
 public:
  void* take(size_t bytes, size_t* cls_out) {
    const size_t cls = size_class(bytes);
    *cls_out = cls;
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      PinnedBlock& b = free_[i];
      if (b.cls != cls || cudaEventQuery(b.last_use) != cudaSuccess) continue;
      cudaGetLastError();  // cudaErrorNotReady from a busy block is not an error
      void* p = b.data;
      events_.push_back(b.last_use);
      free_.erase(free_.begin() + std::ptrdiff_t(i));
      return p;
    }
    cudaGetLastError();
    void* p = nullptr;
    CUDA_CHECK(cudaMallocHost(&p, cls));
    return p;
  }
  void give_back(void* p, size_t cls) {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaEvent_t ev;
    if (!events_.empty()) {
      ev = events_.back();
      events_.pop_back();
    } else {
      CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    }
    CUDA_CHECK(cudaEventRecord(ev, context().stream()));
    free_.push_back({p, cls, ev});
  }

 private:
  std::mutex mutex_;
  std::vector<PinnedBlock> free_;
  std::vector<cudaEvent_t> events_;  // spare events
};

PinnedPool& pinned_pool() {
  static PinnedPool* pool = new PinnedPool();  // lives to the end, like the context
  return *pool;
}

}  // namespace

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes) data_ = pinned_pool().take(bytes, &bytes_);
  bytes_ = bytes;
}

PinnedBuffer::~PinnedBuffer() {
  if (!data_) return;
  try {
    pinned_pool().give_back(data_, size_class(bytes_));
  } catch (...) {
    // Destructors do not throw; a block we cannot recycle is leaked, not freed under a copy.
  }
}

}  // namespace mila::cuda

// Referenced by the linker flag -u in CMakeLists.txt so that the registration above is linked.
extern "C" const bool mila_cuda_allocator_registered = mila::cuda::registered;
