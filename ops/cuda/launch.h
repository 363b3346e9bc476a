// launch.h - the one way a kernel is launched (Note [launch]).
//
//   MILA_LAUNCH(kernel, grid, block, shared_bytes, args...);
//
// runs `kernel` on the context's stream (ops/cuda/context.h) and checks the launch: a bad
// configuration throws at once, naming the kernel, the file and line, the grid and block,
// and CUDA's message. With MILA_CUDA_SYNC=1 in the environment every launch also waits for
// its kernel, so an error inside a kernel is reported at the launch that caused it (as
// CUDA_LAUNCH_BLOCKING=1 does for PyTorch). In the emulation build the same macro hands
// the kernel to the emulator, which runs its blocks in turn and its threads as fibers.
#pragma once

#include <string>
#include <utility>

#include "ops/cuda/context.h"
#include "ops/cuda/device.h"

namespace mila::cuda {

struct LaunchSite {
  const char* kernel;
  const char* file;
  int line;
};

// Throws for a failed launch (or, with MILA_CUDA_SYNC=1, a failed kernel); ops/cuda/context.cu.
void check_launch(const LaunchSite& site, dim3 grid, dim3 block, size_t shared_bytes);

template <typename... Params, typename... Args>
void launch(const LaunchSite& site, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;  // nothing to do (CUDA would call it an error)
#if defined(MILA_CUDA_EMULATE)
  emulator::launch(site.kernel, site.file, site.line, grid, block, shared_bytes,
                   [&] { kernel(Params(args)...); });
#else
  kernel<<<grid, block, shared_bytes, context().stream()>>>(std::forward<Args>(args)...);
#endif
  check_launch(site, grid, block, shared_bytes);
}

}  // namespace mila::cuda

#define MILA_LAUNCH(kernel, grid, block, shared_bytes, ...) \
  ::mila::cuda::launch({#kernel, __FILE__, __LINE__}, kernel, grid, block, shared_bytes, __VA_ARGS__)
