// layers.cpp - see layers.h.
#include "nn/layers.h"

#include <cmath>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "ops/batch_norm.h"
#include "ops/binary.h"
#include "ops/copy.h"
#include "ops/matmul.h"
#include "ops/pool.h"
#include "ops/unary.h"
#include "ops/factory.h"

namespace mila::nn {
namespace {
// U(-bound, bound) from the default generator.
Tensor uniform_init(const Shape& shape, double bound) { return sub(mul(rand(shape), 2 * bound), bound); }
}  // namespace

Conv2d::Conv2d(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
               bool has_bias)
    : Module("Conv2d") {
  if (in <= 0 || out <= 0 || k <= 0 || groups <= 0 || in % groups || out % groups)
    throw std::invalid_argument("Conv2d: invalid configuration in " + std::to_string(in) + " out " +
                                std::to_string(out) + " kernel " + std::to_string(k) + " groups " +
                                std::to_string(groups));
  params = Conv2dParams{stride, stride, padding, padding, dilation, dilation, groups};
  const double bound = 1.0 / std::sqrt(double(in / groups * k * k));
  weight = register_parameter("weight", uniform_init({out, in / groups, k, k}, bound));
  if (has_bias) bias = register_parameter("bias", uniform_init({out}, bound));
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, params); }

int64_t Conv2d::macs(const Tensor&, const Tensor& output) const {
  // thop: output elements x (Cin / groups) x kh x kw; the bias is not counted.
  return output.numel() * weight.size(1) * weight.size(2) * weight.size(3);
}

BatchNorm2d::BatchNorm2d(int64_t channels, double eps_, double momentum_)
    : Module("BatchNorm2d"), eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", ones({channels}));
  bias = register_parameter("bias", zeros({channels}));
  running_mean = register_buffer("running_mean", zeros({channels}));
  running_var = register_buffer("running_var", ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, {DType::Int64}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  if (is_training()) {
    NoGradGuard no_grad;
    copy_(num_batches_tracked, add(num_batches_tracked, scalar_tensor(1, {DType::Int64, num_batches_tracked.device()})));
  }
  return batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum, eps);
}

Linear::Linear(int64_t in, int64_t out, bool has_bias) : Module("Linear") {
  const double bound = 1.0 / std::sqrt(double(in));
  weight = register_parameter("weight", uniform_init({out, in}, bound));
  if (has_bias) bias = register_parameter("bias", uniform_init({out}, bound));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

int64_t Linear::macs(const Tensor&, const Tensor& output) const { return output.numel() * weight.size(1); }

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p) : Module("MaxPool2d"), kernel(k), stride(s), padding(p) {}
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel, stride, padding); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, out_h, out_w); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : layers_) y = (*m)(y);
  return y;
}

}  // namespace mila::nn
