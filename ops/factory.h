// factory.h - functions that make new tensors.
#pragma once

#include <initializer_list>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mila {

struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

Tensor empty(const Shape& shape, TensorOptions opt = {});
Tensor zeros(const Shape& shape, TensorOptions opt = {});
Tensor ones(const Shape& shape, TensorOptions opt = {});
Tensor full(const Shape& shape, double value, TensorOptions opt = {});
// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, TensorOptions opt = {});
// [start, end) in steps of `step`, like torch.arange.
Tensor arange(double start, double end, double step = 1.0, TensorOptions opt = {});
inline Tensor arange(double end, TensorOptions opt = {}) { return arange(0, end, 1, opt); }
// Uniform in [0, 1) and standard normal (Box-Muller), from `gen` (the default generator when null).
Tensor rand(const Shape& shape, TensorOptions opt = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions opt = {}, Generator* gen = nullptr);
// Uniform integers in [low, high), int64 unless opt says otherwise.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opt = {DType::Int64}, Generator* gen = nullptr);

// Copies `count` elements of type T from host memory into a new tensor of `shape`.
template <typename T>
Tensor from_blob(const T* data, const Shape& shape, TensorOptions opt = {dtype_of<T>()});
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opt = {dtype_of<T>()}) {
  return from_blob(values.data(), shape, opt);
}
inline Tensor tensor(std::initializer_list<double> values, TensorOptions opt = {}) {
  std::vector<double> v(values);
  return from_blob(v.data(), {int64_t(v.size())}, opt);
}

Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

}  // namespace mila
