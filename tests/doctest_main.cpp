// The one translation unit that builds doctest's runner; every tests/test_*.cpp links it.
//
// Note [cuda tests] (CMakeLists.txt): the ctest entry <name>.cuda runs this program with
// --test-suite=cuda. Without a CUDA device to run on it exits with 77 before any case runs,
// which ctest reports as skipped: a CUDA case never passes without having run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "tensor/device.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg != "--test-suite=cuda" && arg != "-ts=cuda") continue;
    if (!mila::cuda_compiled() || mila::cuda_device_count() == 0) {
      std::printf("SKIPPED: the CUDA cases need a GPU (%s); build with -DMILA_CUDA=EMULATE to run them on the "
                  "CPU emulator\n",
                  mila::cuda_compiled() ? "this machine has none" : "this is a CPU-only build");
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
