// coalesce.h - merging the dims of an iteration that every operand walks as one, shared by
// the CPU loops (ops/cpu/loops.h) and the CUDA elementwise launcher (ops/cuda/elementwise.cuh).
// Plain host C++ with no threading, so that the .cu files can include it.
#pragma once

#include <array>
#include <cstddef>
#include <utility>

#include "tensor/shape.h"

namespace mila::cpu {

// Merges adjacent dims that every operand can walk as one (stride[i] == stride[i+1] *
// size[i+1] for all), so [N, C, H, W] + [N, C, H, W] becomes one dim of N*C*H*W.
template <size_t N>
void coalesce_dims(Shape& shape, std::array<Shape, N>& strides) {
  // Size-1 dims carry no iteration and may have any stride: drop them first.
  Shape kept;
  std::array<Shape, N> kept_strides;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    kept.push_back(shape[i]);
    for (size_t k = 0; k < N; ++k) kept_strides[k].push_back(strides[k][i]);
  }
  shape = std::move(kept);
  strides = std::move(kept_strides);
  if (shape.size() <= 1) return;
  Shape s{shape[0]};
  std::array<Shape, N> st;
  for (size_t k = 0; k < N; ++k) st[k] = {strides[k][0]};
  for (size_t i = 1; i < shape.size(); ++i) {
    bool merge = true;
    for (size_t k = 0; k < N; ++k) merge = merge && st[k].back() == strides[k][i] * shape[i];
    if (merge) {
      s.back() *= shape[i];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][i];
    } else {
      s.push_back(shape[i]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][i]);
    }
  }
  shape = std::move(s);
  strides = std::move(st);
}

}  // namespace mila::cpu
