// In a CUDA build these two are defined by ops/cuda/runtime.cu.
#include "tensor/device.h"

#ifndef MILA_WITH_CUDA
namespace mila {
bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
}  // namespace mila
#endif
