// CUDA kernels of the index ops (ops/index.h), in ops/cuda/index.cu, with ops/cpu/index.h's
// contract: the same results as the CPU kernels to the bit (repeated indices accumulate in
// ascending position along dim, Note [deterministic scatter]). check_index_range reads the
// index values, so it is a kernel of the index's device too (Note [index range check]); it
// throws the CPU path's std::out_of_range.
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& idx);
void index_add(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src);
void check_index_range(const Tensor& idx, int64_t size, int64_t dim, const char* op);
}  // namespace mila::cuda
