// op_list.h - the closed set of primitive ops that have kernels, and which device runs each.
//
// Composite functions (linear, stack, split, mean, var, the SE block, ...) are built from
// these and need no entry. Views (reshape, permute, narrow, ...) only change metadata and
// run on every device. Adding a kernel op means: add it here, write ops/<op>.{h,cpp} (the
// declaration, shape checks and derivative rule), ops/cpu/<op>.cpp and, when it exists,
// ops/cuda/<op>.cu, and flip its CUDA column below.
#pragma once

#include <cstddef>
#include <string>

#include "tensor/device.h"

namespace mila {

// X(name, has_cuda_kernel)
#define MILA_OPS(X)                                                                             \
  X(copy, true) X(fill, false) X(neg, false) X(exp, false) X(log, false) X(sqrt, false)        \
  X(abs, false) X(relu, false) X(sigmoid, false) X(tanh, false) X(clamp, false) X(add, true)   \
  X(sub, false) X(mul, false) X(div, false) X(pow, false) X(maximum, false) X(minimum, false)  \
  X(eq, false) X(ne, false) X(lt, false) X(le, false) X(gt, false) X(ge, false)               \
  X(where, false) X(sum, false) X(max, false) X(argmax, false) X(softmax, false)              \
  X(log_softmax, false) X(matmul, false) X(concat, false) X(gather, false) X(scatter_add, false) \
  X(index_select, false) X(index_add, false)                                                    \
  /* vision (ops/conv2d, batch_norm, pool, interpolate, channel_gate, ila, losses) */            \
  X(conv2d, false) X(batch_norm, false) X(max_pool2d, false) X(avg_pool2d, false)              \
  X(adaptive_avg_pool2d, false) X(interpolate_bilinear, false) X(channel_gate, false)          \
  X(ila, false) X(cross_entropy, false) X(l1_loss, false) X(masked_l1_loss, false)              \
  X(normal_loss, false) X(bce_with_logits, false) X(normalize, false)

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

// Whether `op` can run on `device` in this build.
inline bool supports(Op op, Device device) {
  if (device.is_cpu()) return true;
  return cuda_compiled() && kOpHasCuda[size_t(op)];
}

// Throws a clear error (op, device, why) when supports() is false.
void check_supported(Op op, Device device);

}  // namespace mila
