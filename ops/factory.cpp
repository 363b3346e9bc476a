#include "ops/factory.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ops/copy.h"
#include "ops/cuda/random.h"
#include "ops/op_list.h"

namespace mila {

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

namespace {

// Factories build on the host, then move to the requested device: simple, and the cost is
// irrelevant next to the work done with the tensor. The exceptions draw or fill on the GPU
// itself, where a host detour would cost a transfer per call: full (the scalars of every
// `x * 0.5`) and the random draws (a model's initial weights).
Tensor finish(Tensor host, const TensorOptions& opt) {
  Tensor t = opt.device.is_cpu() ? host : host.to(opt.device);
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

template <typename F>
Tensor fill_host(const Shape& shape, DType dtype, F value_of_index) {
  Tensor t = Tensor::allocate(shape, dtype, Device::cpu());
  dispatch_all(dtype, [&]<typename T>() {
    T* p = t.data<T>();
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = convert<T>(value_of_index(i));
  });
  return t;
}

// Random factories reserve numel draws from the generator before allocating: validate the
// shape and dtype first, so that a refused call leaves the generator where it was.
void check_random_args(const char* op, const Shape& shape, DType dtype, bool floating_only) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument(std::string(op) + ": negative dimension in shape " + shape_str(shape));
  if (floating_only && !is_floating(dtype))
    throw std::invalid_argument(std::string(op) + ": expected a floating dtype (float32 or float64), got " +
                                dtype_name(dtype));
}

}  // namespace

Tensor empty(const Shape& shape, TensorOptions opt) {
  Tensor t = Tensor::allocate(shape, opt.dtype, opt.device);
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions opt) {
  if constexpr (has_cuda_kernel(Op::fill)) {
    if (opt.device.is_cuda()) {
      Tensor t = Tensor::allocate(shape, opt.dtype, opt.device);
      fill_(t, value);
      return finish(t, opt);
    }
  }
  return finish(fill_host(shape, opt.dtype, [=](int64_t) { return value; }), opt);
}
Tensor zeros(const Shape& shape, TensorOptions opt) { return full(shape, 0.0, opt); }
Tensor ones(const Shape& shape, TensorOptions opt) { return full(shape, 1.0, opt); }
Tensor scalar_tensor(double value, TensorOptions opt) { return full({}, value, opt); }

Tensor arange(double start, double end, double step, TensorOptions opt) {
  if (step == 0 || !std::isfinite(step) || !std::isfinite(start) || !std::isfinite(end))
    throw std::invalid_argument("arange: step must be finite and non-zero and bounds finite (start " +
                                std::to_string(start) + ", end " + std::to_string(end) + ", step " +
                                std::to_string(step) + ")");
  // As torch.arange: a step pointing away from `end` is an error, not an empty range.
  if ((step > 0 && end < start) || (step < 0 && end > start))
    throw std::invalid_argument("arange: the bounds (start " + std::to_string(start) + ", end " +
                                std::to_string(end) + ") are inconsistent with the sign of step " + std::to_string(step));
  const double count = std::ceil((end - start) / step);
  if (count >= 0x1p62) throw std::invalid_argument("arange: too many elements (" + std::to_string(count) + ")");
  const int64_t n = count > 0 ? int64_t(count) : 0;
  return finish(fill_host({n}, opt.dtype, [=](int64_t i) { return start + double(i) * step; }), opt);
}

// The random factories reserve their counters on the host, then compute element i with
// tensor/random.h's per-element function on the tensor's device: the same bits on both
// (Note [one random stream for every device]).
Tensor rand(const Shape& shape, TensorOptions opt, Generator* gen) {
  check_random_args("rand", shape, opt.dtype, true);
  Generator& g = gen ? *gen : default_generator();
  const uint64_t seed = g.seed(), first = g.advance(uint64_t(numel_of(shape)));
  const double top = opt.dtype == DType::Float32 ? double(0x1.fffffep-1f) : 1.0;
  if constexpr (kCudaBuilt) {
    if (opt.device.is_cuda()) {
      Tensor t = Tensor::allocate(shape, opt.dtype, opt.device);
      cuda::rand_fill(t, seed, first, top);
      return finish(t, opt);
    }
  }
  return finish(fill_host(shape, opt.dtype, [&](int64_t i) { return rand_element(seed, first, uint64_t(i), top); }),
                opt);
}

Tensor randn(const Shape& shape, TensorOptions opt, Generator* gen) {
  check_random_args("randn", shape, opt.dtype, true);
  Generator& g = gen ? *gen : default_generator();
  const int64_t n = numel_of(shape);
  const uint64_t seed = g.seed(), first = g.advance(uint64_t(n + (n & 1)));  // whole Box-Muller pairs
  if constexpr (kCudaBuilt) {
    if (opt.device.is_cuda()) {
      Tensor t = Tensor::allocate(shape, opt.dtype, opt.device);
      cuda::randn_fill(t, seed, first);
      return finish(t, opt);
    }
  }
  return finish(fill_host(shape, opt.dtype, [&](int64_t i) { return randn_element(seed, first, uint64_t(i)); }), opt);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opt, Generator* gen) {
  if (high <= low)
    throw std::invalid_argument("randint: need low < high, got low " + std::to_string(low) + " and high " +
                                std::to_string(high));
  check_random_args("randint", shape, opt.dtype, false);
  Generator& g = gen ? *gen : default_generator();
  const uint64_t seed = g.seed(), first = g.advance(uint64_t(numel_of(shape)));
  const uint64_t range = uint64_t(high) - uint64_t(low);  // no signed overflow for wide ranges
  if constexpr (kCudaBuilt) {
    if (opt.device.is_cuda()) {
      Tensor t = Tensor::allocate(shape, opt.dtype, opt.device);
      cuda::randint_fill(t, seed, first, low, range);
      return finish(t, opt);
    }
  }
  return finish(
      fill_host(shape, opt.dtype, [&](int64_t i) { return randint_element(seed, first, uint64_t(i), low, range); }),
      opt);
}

template <typename T>
Tensor from_blob(const T* data, const Shape& shape, TensorOptions opt) {
  Tensor host = Tensor::allocate(shape, dtype_of<T>(), Device::cpu());
  if (host.numel()) std::memcpy(host.raw_data(), data, host.nbytes());
  if (opt.dtype != dtype_of<T>()) host = host.to(opt.dtype);
  return finish(host, opt);
}
template Tensor from_blob<float>(const float*, const Shape&, TensorOptions);
template Tensor from_blob<double>(const double*, const Shape&, TensorOptions);
template Tensor from_blob<int64_t>(const int64_t*, const Shape&, TensorOptions);
template Tensor from_blob<uint8_t>(const uint8_t*, const Shape&, TensorOptions);

Tensor empty_like(const Tensor& t) { return empty(t.shape(), {t.dtype(), t.device()}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {t.dtype(), t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {t.dtype(), t.device()}); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, {t.dtype(), t.device()}); }

}  // namespace mila
