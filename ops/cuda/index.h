// CUDA kernels of the index ops (ops/index.h): declared with ops/cpu/index.h's contract,
// not written yet (the CUDA columns of ops/op_list.h say so). check_index_range reads the
// index values, so it is a kernel of the index's device too.
#pragma once

#include "tensor/tensor.h"

namespace mila::cuda {
void gather(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& idx);
void index_add(const Tensor& out, int64_t dim, const Tensor& idx, const Tensor& src);
void check_index_range(const Tensor& idx, int64_t size, int64_t dim, const char* op);
}  // namespace mila::cuda
