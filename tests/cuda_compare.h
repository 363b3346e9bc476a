// cuda_compare.h - how an op's test file checks its CUDA kernels against its CPU kernels.
//
// A CUDA case is a doctest case in the op's own test file, in the test suite "cuda":
//
//   TEST_CASE("relu: cuda matches cpu" * doctest::test_suite("cuda")) {
//     test::compare_devices("relu", [](const auto& x) { return relu(x[0]); },
//                           {test::draw({3, 5})}, {.atol = 0, .rtol = 0});
//   }
//
// CMake registers every test file that has such cases twice (CMakeLists.txt, Note [cuda
// tests]): `test_x` runs the other cases, `test_x.cuda` (ctest label `cuda`) runs these.
// When there is no CUDA device (a CPU-only build, or an nvcc build on a machine without a
// GPU) `test_x.cuda` exits with 77 before running any case and ctest reports it as skipped,
// never passed. In the emulation build (-DMILA_CUDA=EMULATE) the device is the emulator.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace mila::test {

inline Device cuda_device() { return Device::cuda(0); }

// An uninitialized tensor on `device` with x's shape and strides (expanded dims stay
// expanded): a buffer just long enough, viewed through the same strides.
inline Tensor empty_strided_like(const Tensor& x, Device device) {
  int64_t span = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) == 0) span = 0;
    if (span) span += (x.size(d) - 1) * x.stride(d);
  }
  const Tensor buf = empty({std::max<int64_t>(span, 1)}, {x.dtype(), device});
  return Tensor::make_view(buf, x.shape(), x.strides(), 0);
}

// A copy of x on `device` with x's strides. An expanded dim (stride 0) cannot be written
// through (copy_ refuses a destination whose elements share memory), so the values are
// copied through a view with those dims narrowed to one element, then viewed at full size.
inline Tensor copy_keeping_strides(const Tensor& x, Device device) {
  Tensor compact = x;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (x.stride(d) == 0 && x.size(d) > 1) compact = compact.narrow(d, 0, 1);
  const Tensor buf = empty_strided_like(compact, device);
  copy_(buf, compact);
  return Tensor::make_view(buf, x.shape(), x.strides(), buf.offset());
}

struct DeviceTolerance {
  double atol = 1e-6;
  double rtol = 1e-5;
};

// Runs f on `inputs` (CPU tensors, any dtype and strides) and on copies of them on the GPU
// that keep their strides, then compares the outputs and, when the output is floating,
// the gradient of every floating input under the same random upstream gradient. Inputs
// listed in `constant` (by position) get no gradient (indices, masks).
inline void compare_devices(const std::string& what, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            const std::vector<Tensor>& inputs, DeviceTolerance tol = {},
                            const std::vector<size_t>& constant = {}) {
  INFO(what);
  auto leaves_on = [&](Device device) {
    std::vector<Tensor> leaves;
    for (size_t i = 0; i < inputs.size(); ++i) {
      // Same values, same strides: a strided copy into a buffer laid out like the input.
      Tensor t = inputs[i];
      if (device.is_cuda()) {
        t = copy_keeping_strides(inputs[i], device);
      } else {
        t = inputs[i].detach();
      }
      const bool diff = is_floating(t.dtype()) &&
                        std::find(constant.begin(), constant.end(), i) == constant.end();
      if (diff) t.requires_grad_();
      leaves.push_back(t);
    }
    return leaves;
  };
  std::vector<Tensor> cpu_in = leaves_on(Device::cpu()), gpu_in = leaves_on(cuda_device());
  for (size_t i = 0; i < inputs.size(); ++i) REQUIRE(gpu_in[i].strides() == inputs[i].strides());
  const Tensor cpu_out = f(cpu_in), gpu_out = f(gpu_in);
  REQUIRE_MESSAGE(gpu_out.device().is_cuda(), what << ": the result left the GPU");
  check_close(gpu_out.to(Device::cpu()), cpu_out, tol.atol, tol.rtol, what + " (forward)");
  if (!cpu_out.requires_grad()) return;
  const Tensor upstream = draw(cpu_out.shape(), -1, 1, 99).to(cpu_out.dtype());
  cpu_out.backward(upstream);
  gpu_out.backward(upstream.to(cuda_device()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!cpu_in[i].requires_grad()) continue;
    const Tensor gc = cpu_in[i].grad(), gg = gpu_in[i].grad();
    REQUIRE(gc.defined() == gg.defined());
    if (!gc.defined()) continue;
    CHECK(gg.device().is_cuda());
    check_close(gg.to(Device::cpu()), gc, tol.atol, tol.rtol, what + " (gradient of input " + std::to_string(i) + ")");
  }
}

}  // namespace mila::test
