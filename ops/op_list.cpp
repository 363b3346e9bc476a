// op_list.cpp - the error of an op asked to run where it has no kernel (ops/op_list.h).
#include "ops/op_list.h"

#include <stdexcept>

namespace mila {

void throw_unsupported(Op op, Device device) {
  const std::string name = op_name(op);
  if (!cuda_compiled())  // = !kCudaBuilt; the call also keeps ops/cuda/runtime.cu (its allocator) linked
    throw std::runtime_error(name + ": the tensors are on " + device.str() +
                             " but this build has no CUDA backend; reconfigure with -DMILA_CUDA=ON (needs the CUDA "
                             "toolkit's nvcc) or move the tensors to the cpu with .to(Device::cpu())");
  throw std::runtime_error(name + ": no CUDA kernel yet for " + device.str() +
                           "; move the tensors to the cpu with .to(Device::cpu()) for this op");
}

void check_supported(Op op, Device device) {
  if (!supports(op, device)) throw_unsupported(op, device);
}

}  // namespace mila
