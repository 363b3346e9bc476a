// storage.h - a block of device memory shared by every tensor that views it.
//
// Tensors hold a std::shared_ptr<Storage>; views (reshape, permute, narrow, ...) share it,
// so the bytes are freed when the last view is gone.
#pragma once

#include <cstddef>
#include <memory>

#include "tensor/allocator.h"
#include "tensor/device.h"

namespace mila {

class Storage {
 public:
  Storage(size_t nbytes, Device device)
      : nbytes_(nbytes), device_(device), allocator_(&allocator_for(device)), data_(allocator_->allocate(nbytes)) {}
  ~Storage() { allocator_->deallocate(data_, nbytes_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  size_t nbytes_;
  Device device_;
  Allocator* allocator_;
  void* data_;
};

}  // namespace mila
