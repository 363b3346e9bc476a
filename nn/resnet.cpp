// resnet.cpp - see resnet.h.
#include "nn/resnet.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/copy.h"
#include "ops/unary.h"
#include "ops/factory.h"

namespace mila::nn {

std::vector<int> resnet_layers(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
  }
  throw std::invalid_argument("ResNet: depth " + std::to_string(depth) + " is not one of 18, 34, 50, 101");
}
bool resnet_uses_bottleneck(int depth) { return depth >= 50; }

int resnet_depth_of(const NamedTensors& state) {
  std::vector<int> blocks(4, 0);
  bool bottleneck = false;
  for (const auto& [name, tensor] : state) {
    // "layer<L>.<block>.<rest>"
    if (name.size() < 9 || name.compare(0, 5, "layer") != 0 || name[5] < '1' || name[5] > '4' || name[6] != '.') continue;
    const size_t dot = name.find('.', 7);
    if (dot == std::string::npos || dot == 7) continue;
    const std::string index = name.substr(7, dot - 7);
    if (!std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }) || index.size() > 4) continue;
    int& count = blocks[size_t(name[5] - '1')];
    count = std::max(count, std::stoi(index) + 1);
    if (name.compare(dot, 7, ".conv3.") == 0) bottleneck = true;
  }
  for (int depth : {18, 34, 50, 101})
    if (resnet_layers(depth) == blocks && resnet_uses_bottleneck(depth) == bottleneck) return depth;
  return 0;
}

namespace {

std::shared_ptr<Sequential> make_downsample(int64_t in, int64_t out, int64_t stride) {
  auto seq = std::make_shared<Sequential>();
  seq->add(std::make_shared<Conv2d>(in, out, 1, stride, 0, 1, 1, /*bias=*/false));
  seq->add(std::make_shared<BatchNorm2d>(out));
  return seq;
}

// torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") on every conv.
void kaiming_normal_fan_out(const Tensor& w) {
  const int64_t fan_out = w.size(0) * w.size(2) * w.size(3);
  NoGradGuard no_grad;
  copy_(w, mul(randn(w.shape(), {w.dtype()}), std::sqrt(2.0 / double(fan_out))));
}

}  // namespace

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation, bool ds)
    : Module("BasicBlock") {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(inplanes, planes, 3, stride, dilation, dilation, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, 1, dilation, dilation, 1, false));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (ds) downsample = register_module("downsample", make_downsample(inplanes, planes * expansion, stride));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = (*bn2)((*conv2)(out));
  return relu(add(out, downsample ? (*downsample)(x) : x));
}

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation, bool ds)
    : Module("Bottleneck") {
  conv1 = register_module("conv1", std::make_shared<Conv2d>(inplanes, planes, 1, 1, 0, 1, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, 3, stride, dilation, dilation, 1, false));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3 = register_module("conv3", std::make_shared<Conv2d>(planes, planes * expansion, 1, 1, 0, 1, 1, false));
  bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(planes * expansion));
  if (ds) downsample = register_module("downsample", make_downsample(inplanes, planes * expansion, stride));
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu((*bn1)((*conv1)(x)));
  out = relu((*bn2)((*conv2)(out)));
  out = (*bn3)((*conv3)(out));
  return relu(add(out, downsample ? (*downsample)(x) : x));
}

ResNet::ResNet(const ResNetConfig& config) : Module("ResNet"), config_(config) {
  const std::vector<int> blocks = resnet_layers(config.depth);
  const bool bottleneck = resnet_uses_bottleneck(config.depth);
  const int64_t expansion = bottleneck ? Bottleneck::expansion : BasicBlock::expansion;
  const int64_t w = config.width;
  if (w <= 0) throw std::invalid_argument("ResNet: width must be positive, got " + std::to_string(w));

  conv1 = register_module("conv1", std::make_shared<Conv2d>(3, w, 7, 2, 3, 1, 1, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(w));
  maxpool = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));

  int64_t inplanes = w, dilation = 1;
  auto make_layer = [&](const char* name, int64_t planes, int count, int64_t stride, bool dilate) {
    // torchvision's _make_layer with replace_stride_with_dilation.
    const int64_t previous_dilation = dilation;
    if (dilate) {
      dilation *= stride;
      stride = 1;
    }
    auto layer = std::make_shared<Sequential>();
    const bool ds = stride != 1 || inplanes != planes * expansion;
    for (int i = 0; i < count; ++i) {
      const int64_t s = i == 0 ? stride : 1, d = i == 0 ? previous_dilation : dilation;
      const bool has_ds = i == 0 && ds;
      if (bottleneck)
        layer->add(std::make_shared<Bottleneck>(inplanes, planes, s, d, has_ds));
      else
        layer->add(std::make_shared<BasicBlock>(inplanes, planes, s, d, has_ds));
      inplanes = planes * expansion;
    }
    return register_module(name, layer);
  };
  layer1 = make_layer("layer1", w, blocks[0], 1, false);
  layer2 = make_layer("layer2", 2 * w, blocks[1], 2, false);
  layer3 = make_layer("layer3", 4 * w, blocks[2], 2, config.dilated);
  layer4 = make_layer("layer4", 8 * w, blocks[3], 2, config.dilated);
  if (config.num_classes > 0) {
    avgpool = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
    fc = register_module("fc", std::make_shared<Linear>(8 * w * expansion, config.num_classes));
  }
  for (auto& [path, m] : named_modules())
    if (auto* conv = dynamic_cast<Conv2d*>(m)) kaiming_normal_fan_out(conv->weight);
}

int64_t ResNet::out_channels() const {
  return 8 * config_.width * (resnet_uses_bottleneck(config_.depth) ? Bottleneck::expansion : BasicBlock::expansion);
}

Tensor ResNet::forward(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3)
    throw std::invalid_argument("ResNet: expected input [N, 3, H, W], got " + shape_str(x.shape()));
  Tensor y = (*maxpool)(relu((*bn1)((*conv1)(x))));
  y = (*layer4)((*layer3)((*layer2)((*layer1)(y))));
  if (!fc) return y;
  return (*fc)((*avgpool)(y).flatten(1));
}

}  // namespace mila::nn
