#include "ops/op_list.h"

#include <stdexcept>

namespace mila {

void check_supported(Op op, Device device) {
  if (supports(op, device)) return;
  if (!cuda_compiled())
    throw std::runtime_error(std::string(op_name(op)) + ": tensor is on " + device.str() +
                             " but this build has no CUDA backend (configure with -DMILA_CUDA=ON)");
  throw std::runtime_error(std::string(op_name(op)) + ": no CUDA kernel yet (the CUDA backend issue fills it); "
                                                      "move the tensors to the cpu");
}

}  // namespace mila
