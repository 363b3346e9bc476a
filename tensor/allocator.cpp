#include "tensor/allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

namespace mila {
namespace {

constexpr size_t kCpuAlignment = 64;
// Blocks this large are 2 MiB aligned and marked for transparent huge pages: a fresh
// multi-megabyte block then costs a few page faults instead of one per 4 KiB page, which
// otherwise dominates memory-bound ops on large activations (measured on ILA: 29 ms vs 9 ms).
constexpr size_t kHugePage = size_t(2) << 20;

// Note [CPU block cache]: a training step allocates and frees the same large activation
// blocks every step. Returned to the OS and mapped again, each costs a page fault and a
// zeroed page per 4 KiB (or 2 MiB) of it: 15% of a small MILA training step was the
// kernel's clear_page. Large blocks (>= kCacheMin) are therefore kept on free, by their
// rounded size, and handed out again for a request of the same rounded size, as
// PyTorch's CUDA caching allocator does on the GPU. The cache holds at most kCacheMax bytes
// (a block that would exceed it is freed) and never more than the largest working set
// seen, so the peak resident memory grows by at most kCacheMax. Sanitizer builds skip the
// cache, so that AddressSanitizer still sees every use after free.
constexpr size_t kCacheMin = size_t(256) << 10;
constexpr size_t kCacheMax = size_t(1) << 30;
#if MILA_ADDRESS_SANITIZER
constexpr bool kUseCache = false;
#else
constexpr bool kUseCache = true;
#endif

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    // aligned_alloc wants a size that is a multiple of the alignment.
    const size_t align = nbytes >= kHugePage ? kHugePage : kCpuAlignment;
    const size_t rounded = (nbytes + align - 1) / align * align;
    void* p = nullptr;
    if (kUseCache && rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = cache_.find(rounded);
      if (it != cache_.end()) {
        p = it->second;
        cache_.erase(it);
        cached_bytes_ -= rounded;
      }
    }
    if (!p) {
      p = std::aligned_alloc(align, rounded);
      if (!p) throw std::bad_alloc();
      backend_allocations_.fetch_add(1);
      if (align == kHugePage) ::madvise(p, rounded, MADV_HUGEPAGE);  // a hint; failure is harmless
    }
    counter_.on_allocate(nbytes);
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    counter_.on_deallocate(nbytes);
    const size_t align = nbytes >= kHugePage ? kHugePage : kCpuAlignment;
    const size_t rounded = (nbytes + align - 1) / align * align;
    if (kUseCache && rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + rounded <= kCacheMax) {
        cache_.emplace(rounded, ptr);
        cached_bytes_ += rounded;
        return;
      }
    }
    std::free(ptr);
  }
  MemoryStats stats() const override {
    MemoryStats s = counter_.stats();
    std::lock_guard<std::mutex> lock(mutex_);
    s.bytes_cached = int64_t(cached_bytes_);
    s.backend_allocations = backend_allocations_.load();
    return s;
  }
  void reset_peak() override { counter_.reset_peak(); }
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, p] : cache_) std::free(p);
    cache_.clear();
    cached_bytes_ = 0;
  }

 private:
  AllocationCounter counter_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> cache_;  // rounded size -> free block
  size_t cached_bytes_ = 0;
  std::atomic<int64_t> backend_allocations_{0};
};

CpuAllocator& cpu_allocator() {
  static CpuAllocator instance;  // never destroyed before the storages that use it: function-local static
  return instance;
}

Allocator*& cuda_allocator_slot() {
  static Allocator* slot = nullptr;
  return slot;
}

}  // namespace

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  Allocator* a = cuda_allocator_slot();
  if (!a)
    throw std::runtime_error("allocator_for(" + device.str() +
                             "): this build has no CUDA backend (configure with -DMILA_CUDA=ON on a machine with "
                             "the CUDA toolkit)");
  return *a;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  if (type == DeviceType::CPU) throw std::logic_error("register_allocator: the CPU allocator is built in");
  cuda_allocator_slot() = allocator;
}

void empty_cache(Device device) { allocator_for(device).empty_cache(); }

MemoryStats memory_stats(Device device) { return allocator_for(device).stats(); }
void reset_peak_memory(Device device) { allocator_for(device).reset_peak(); }

}  // namespace mila
