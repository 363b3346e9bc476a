// caching_allocator.h - device memory and pinned host memory, kept for reuse
// (Note [caching allocator] in caching_allocator.cu).
#pragma once

#include <cstddef>

namespace mila::cuda {

// The size a request of `bytes` is served with: 512 bytes at least, then four classes per
// power of two (so at most a quarter of a block is slack).
size_t size_class(size_t bytes);

// Page-locked host memory for staging host <-> device copies, from a pool: cudaMemcpyAsync
// from pinned memory is a true asynchronous DMA, from pageable memory it is not. Destroying
// the buffer records an event on the context's stream; the pool hands the block out again
// only once the stream has passed that event, so a copy still in flight never sees its
// source overwritten.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace mila::cuda
