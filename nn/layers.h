// layers.h - the standard layers, with PyTorch's parameter names and default initializations.
//
// Initializations (PyTorch's reset_parameters, drawn from mila's seeded default generator):
//   Conv2d, Linear: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))  (kaiming_uniform
//                   with a = sqrt(5), which reduces to that bound)
//   BatchNorm2d:    weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0
// torchvision's ResNet re-initializes its convs (kaiming normal, fan_out): see resnet.h.
#pragma once

#include <memory>
#include <vector>

#include "nn/module.h"
#include "ops/conv2d.h"

namespace mila::nn {

class Conv2d : public Module {
 public:
  // Square kernel/stride/padding/dilation, as the networks here use them.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
         int64_t dilation = 1, int64_t groups = 1, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;  // [out, in/groups, k, k], [out] or undefined
  Conv2dParams params;

 protected:
  int64_t macs(const Tensor& input, const Tensor& output) const override;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;

 protected:
  int64_t macs(const Tensor& input, const Tensor& output) const override;
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  int64_t kernel, stride, padding;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : Module("AdaptiveAvgPool2d"), out_h(out_h), out_w(out_w) {}
  Tensor forward(const Tensor& x) override;
  int64_t out_h, out_w;
};

// Children named "0", "1", ... in order; forward chains them.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  template <typename M>
  std::shared_ptr<M> add(std::shared_ptr<M> m) {
    layers_.push_back(m);
    return register_module(std::to_string(layers_.size() - 1), m);
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  Module& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace mila::nn
