// scratch.h - per-thread scratch memory of the CPU kernels: grow-only, 64-byte aligned.
//
// Why. The kernels are called once or more per training step with the same shapes, and
// several need large temporaries: the GEMM's packed panels, conv2d's im2col matrix, input
// copy and packed weights, ILA's bands of weights. Fresh memory every call would make the
// kernel page-fault it in every call (measured: a tenth of the ILA forward's time; the
// im2col matrix of a large layer is tens of MB). So each thread keeps its buffers between
// calls; a buffer only grows, to the largest size asked of it, and is freed when its
// thread exits. 64-byte alignment: whole vectors then never straddle a cache line where the
// layout allows, and aligned vector stores are allowed.
//
// Use. Each kernel file names its buffers with an enum of its own, e.g.
//   enum GemmScratch { kPackedA, kPackedB };
//   float* a = scratch<float>(kPackedA, count);
// The enum type picks the set of buffers and its value the slot within the set: buffers
// alive at the same time need different slots, and kernels that call one another (conv2d
// calls the GEMM while holding its im2col matrix) never share a buffer, because their
// enums are different types. The contents are not initialized, and a request that grows
// the slot drops them.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <new>

namespace mila::cpu {

// One buffer: at least `bytes` bytes, reallocated (contents dropped) when asked for more.
class ScratchBuffer {
 public:
  // Never null, even for 0 bytes (a null pointer would read as "not wanted" to callers).
  std::byte* get(size_t bytes) {
    bytes = std::max<size_t>(bytes, 64);
    if (bytes > bytes_) {
      data_.reset();  // the old buffer goes first: the two are never held together
      bytes_ = 0;     // stays consistent if the allocation throws
      data_.reset(static_cast<std::byte*>(::operator new[](bytes, std::align_val_t(64))));
      bytes_ = bytes;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<std::byte[], Free> data_;
  size_t bytes_ = 0;
};

// This thread's set of buffers for the enum Slots (at most 8 slots).
template <typename Slots>
std::array<ScratchBuffer, 8>& scratch_buffers() {
  thread_local std::array<ScratchBuffer, 8> buffers;
  return buffers;
}

// This thread's buffer `slot`, with room for `count` values of T (any T: the float and the
// float64 version of a kernel share the buffer).
template <typename T, typename Slots>
T* scratch(Slots slot, size_t count) {
  return reinterpret_cast<T*>(scratch_buffers<Slots>().at(size_t(slot)).get(count * sizeof(T)));
}

}  // namespace mila::cpu
