// device.h - where a tensor's storage lives: the host (cpu) or an NVIDIA GPU (cuda:N).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace mila {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // GPU ordinal; always 0 for the CPU

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }

  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  // "cpu", "cuda" or "cuda:N".
  static Device parse(const std::string& s) {
    if (s == "cpu") return cpu();
    if (s == "cuda") return cuda(0);
    if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() <= 9 &&
        s.find_first_not_of("0123456789", 5) == std::string::npos)  // digits only: no sign or spaces
      return cuda(std::stoi(s.substr(5)));
    throw std::invalid_argument("Device::parse: expected 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
  }
};

// True when this binary was built with the CUDA backend (ops/cuda/).
bool cuda_compiled();
// Number of usable GPUs (0 in a CPU-only build or on a machine without a GPU).
int cuda_device_count();

}  // namespace mila
