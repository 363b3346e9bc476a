// op_list.h - the closed set of primitive ops that have kernels, and which device runs each.
//
// Composite functions (linear, stack, split, mean, var, the SE block, ...) are built from
// these and need no entry. Views (reshape, permute, narrow, ...) only change metadata and
// run on every device. Adding a kernel op means: add it here, write ops/<op>.{h,cpp} (the
// declaration, shape checks and derivative rule), ops/cpu/<op>.{h,cpp} and ops/cuda/<op>.h
// (the kernels' declarations, one signature for both devices) and, when it exists,
// ops/cuda/<op>.cu, then flip its CUDA column below.
//
// Note [device dispatch]. An op's .cpp checks its arguments, then calls the kernel of the
// tensors' device, every call written the same way:
//
//   if (x.device().is_cpu()) cpu::conv2d_forward(out, x, w, b, g);
//   else if constexpr (has_cuda_kernel(Op::conv2d)) cuda::conv2d_forward(out, x, w, b, g);
//   else throw_unsupported(Op::conv2d, x.device());
//
// Both kernels are always declared (ops/cpu/<op>.h, ops/cuda/<op>.h). A call in the branch
// that `if constexpr` discards needs no definition (C++17 [stmt.if]), so the CUDA column
// decides what is compiled: false (or a CPU-only build) discards the cuda:: call and leaves
// the clear error; true calls cuda::, and links only if ops/cuda/ defines it. No #ifdef.
// Kernel families that take the op as a run-time value (unary, binary, softmax) test
// kCudaBuilt instead, so their CUDA side (ops/cuda/<family>.cu) always exists in a CUDA
// build; it runs the ops whose column is true and throws the same error for the others.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#include "tensor/device.h"

namespace mila {

// X(name, has_cuda_kernel)
#define MILA_OPS(X)                                                                             \
  X(copy, true) X(fill, true) X(neg, true) X(exp, true) X(log, true) X(sqrt, true)             \
  X(abs, true) X(relu, true) X(sigmoid, true) X(tanh, true) X(clamp, true) X(add, true)        \
  X(sub, true) X(mul, true) X(div, true) X(pow, true) X(maximum, true) X(minimum, true)        \
  X(eq, true) X(ne, true) X(lt, true) X(le, true) X(gt, true) X(ge, true)                     \
  X(where, true) X(sum, true) X(max, true) X(argmax, true) X(softmax, true)                   \
  X(log_softmax, true) X(matmul, true) X(concat, true) X(gather, true) X(scatter_add, true) \
  X(index_select, true) X(index_add, true)                                                    \
  /* vision (ops/conv2d, batch_norm, pool, interpolate, channel_gate, ila, losses) */            \
  X(conv2d, false) X(batch_norm, false) X(max_pool2d, false) X(avg_pool2d, false)              \
  X(adaptive_avg_pool2d, false) X(interpolate_bilinear, false) X(channel_gate, false)          \
  X(ila, false) X(cross_entropy, false) X(l1_loss, false) X(masked_l1_loss, false)              \
  X(normal_loss, false) X(bce_with_logits, false) X(normalize, false)                            \
  /* fused optimizer updates (ops/optim_update) */                                              \
  X(sgd_update, true) X(adam_update, true)

enum class Op {
#define MILA_OP_ENUM(name, cuda) name,
  MILA_OPS(MILA_OP_ENUM)
#undef MILA_OP_ENUM
      count_
};

inline constexpr const char* kOpNames[] = {
#define MILA_OP_NAME(name, cuda) #name,
    MILA_OPS(MILA_OP_NAME)
#undef MILA_OP_NAME
};
inline constexpr bool kOpHasCuda[] = {
#define MILA_OP_CUDA(name, cuda) cuda,
    MILA_OPS(MILA_OP_CUDA)
#undef MILA_OP_CUDA
};
// The compiler checks that the tables cover the enum (ggml's trick).
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == size_t(Op::count_), "op name table out of date");
static_assert(sizeof(kOpHasCuda) / sizeof(kOpHasCuda[0]) == size_t(Op::count_), "op device table out of date");

inline const char* op_name(Op op) { return kOpNames[size_t(op)]; }

// Whether this build compiles ops/cuda/ (CMake defines MILA_WITH_CUDA for every target that
// uses the library; cuda_compiled() is the same answer at run time).
#ifdef MILA_WITH_CUDA
inline constexpr bool kCudaBuilt = true;
#else
inline constexpr bool kCudaBuilt = false;
#endif

// Whether `op` has a CUDA kernel in this build: its CUDA column, in a CUDA build.
constexpr bool has_cuda_kernel(Op op) { return kCudaBuilt && kOpHasCuda[size_t(op)]; }

// Whether `op` can run on `device` in this build.
inline bool supports(Op op, Device device) { return device.is_cpu() || has_cuda_kernel(op); }

// The error for an op asked to run where it has no kernel: names the op and the device and
// says what to do (move the tensors to the cpu, or build the CUDA backend). Inline, because
// the CUDA kernels (below the op layer) throw it too.
[[noreturn]] inline void throw_unsupported(Op op, Device device) {
  const std::string name = op_name(op);
  if (!cuda_compiled())  // = !kCudaBuilt; the call also keeps ops/cuda/runtime.cu (its allocator) linked
    throw std::runtime_error(name + ": the tensors are on " + device.str() +
                             " but this build has no CUDA backend; reconfigure with -DMILA_CUDA=ON (needs the CUDA "
                             "toolkit's nvcc) or move the tensors to the cpu with .to(Device::cpu())");
  throw std::runtime_error(name + ": no CUDA kernel yet for " + device.str() +
                           "; move the tensors to the cpu with .to(Device::cpu()) for this op");
}

// Throws throw_unsupported's error when supports() is false.
inline void check_supported(Op op, Device device) {
  if (!supports(op, device)) throw_unsupported(op, device);
}

}  // namespace mila
