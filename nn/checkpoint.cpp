// checkpoint.cpp - see checkpoint.h.
#include "nn/checkpoint.h"

#include <stdexcept>

#include "nn/safetensors.h"

namespace mila::nn {

void save_checkpoint(const std::string& path, const Module& module, const std::map<std::string, std::string>& metadata) {
  safetensors::write(path, module.state_dict(), metadata);
}

LoadReport load_checkpoint(const std::string& path, Module& module, bool strict) {
  const safetensors::Contents contents = safetensors::read(path);
  try {
    return module.load_state_dict(contents.tensors, strict);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("checkpoint '" + path + "': " + e.what());
  }
}

}  // namespace mila::nn
