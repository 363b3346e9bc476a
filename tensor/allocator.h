// allocator.h - one allocator per device type, with statistics that tests can read.
//
// Every Storage gets its bytes here, so "bytes in use" is exact: the autograd tests use it
// to show that forward + backward leaves no memory behind. The CPU allocator returns
// 64-byte aligned blocks (one cache line, one AVX-512 register). The CUDA backend, when
// built, registers its own allocator for DeviceType::CUDA at start-up.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "tensor/device.h"

// 1 in an AddressSanitizer build, which skips the CPU block cache (Note [CPU block cache]).
// GCC says so with __SANITIZE_ADDRESS__; clang 14 only through __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define MILA_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MILA_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef MILA_ADDRESS_SANITIZER
#define MILA_ADDRESS_SANITIZER 0
#endif

namespace mila {

struct MemoryStats {
  int64_t bytes_in_use = 0;   // bytes handed out and not yet returned
  int64_t peak_bytes = 0;     // maximum of bytes_in_use since start or the last reset_peak()
  int64_t allocations = 0;    // number of allocate() calls since start
  int64_t bytes_cached = 0;   // bytes held by a caching allocator but not in use (see Note [CPU block cache])
  int64_t backend_allocations = 0;  // blocks obtained from the system (aligned_alloc, cudaMalloc): stops
                                    // growing once a caching allocator serves every request from its cache
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  // Returns cached free blocks to the system (caching allocators; a no-op otherwise).
  virtual void empty_cache() {}
};

// The allocator for a device type; throws when that device has no backend in this build.
Allocator& allocator_for(Device device);
// Used by backends at start-up. The allocator must outlive every Storage.
void register_allocator(DeviceType type, Allocator* allocator);

// Shorthands for tests and benchmarks.
MemoryStats memory_stats(Device device = Device::cpu());
void reset_peak_memory(Device device = Device::cpu());
// Frees a device's cached free blocks (Note [CPU block cache]; Note [caching allocator] in
// ops/cuda/caching_allocator.cu for the GPU).
void empty_cache(Device device = Device::cpu());
inline void empty_cpu_cache() { empty_cache(Device::cpu()); }

// Counting helper shared by the allocators: thread-safe in-use and peak bookkeeping.
class AllocationCounter {
 public:
  void on_allocate(size_t n) {
    int64_t now = in_use_.fetch_add(int64_t(n)) + int64_t(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    count_.fetch_add(1);
  }
  void on_deallocate(size_t n) { in_use_.fetch_sub(int64_t(n)); }
  MemoryStats stats() const { return {in_use_.load(), peak_.load(), count_.load(), 0, 0}; }
  void reset_peak() { peak_.store(in_use_.load()); }

 private:
  std::atomic<int64_t> in_use_{0}, peak_{0}, count_{0};
};

}  // namespace mila
