// resnet.h - ResNet 18/34/50/101 in torchvision's layout and names (SPEC section 3), with
// a width multiplier and the dilated ("DeepLab", output stride 8) variant.
//
//   conv1 (7x7/2, 3 -> w) - bn1 - relu - maxpool (3x3/2, pad 1)
//   layer1..layer4: blocks with w, 2w, 4w, 8w planes; the first block of layer2..4 has
//   stride 2, or, when dilated, stride 1 and the previous layer's dilation (layer3: 1 then
//   2, layer4: 2 then 4); a downsample branch (1x1 conv + BN, "downsample.0/.1") wherever
//   the shape changes.
//   classifier: avgpool (1x1) - flatten - fc (8w * expansion -> classes).
// Initialization as torchvision: convs kaiming normal (fan_out, relu gain), BN 1 / 0, fc
// PyTorch's Linear default.
#pragma once

#include <memory>
#include <vector>

#include "nn/layers.h"

namespace mila::nn {

struct ResNetConfig {
  int depth = 18;           // 18, 34, 50 or 101
  int64_t width = 64;       // w: the stem's channels and layer1's planes
  bool dilated = false;     // output stride 8 (layer3, layer4 dilated instead of strided)
  int64_t num_classes = 0;  // > 0: the classifier (avgpool + fc); 0: features only (layer4's map)
};

class BasicBlock : public Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation, bool downsample);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> downsample;  // null when the identity fits
};

class Bottleneck : public Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation, bool downsample);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Sequential> downsample;
};

class ResNet : public Module {
 public:
  explicit ResNet(const ResNetConfig& config);
  // [N, 3, H, W] -> logits [N, classes], or layer4's features [N, out_channels(), H/s, W/s].
  Tensor forward(const Tensor& x) override;
  int64_t out_channels() const;  // layer4's channels: 8w (BasicBlock) or 32w (Bottleneck)
  const ResNetConfig& config() const { return config_; }

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<MaxPool2d> maxpool;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool;  // classifier only
  std::shared_ptr<Linear> fc;                  // classifier only

 private:
  ResNetConfig config_;
};

// Blocks per layer: 18 [2,2,2,2], 34 [3,4,6,3], 50 [3,4,6,3], 101 [3,4,23,3]; throws otherwise.
std::vector<int> resnet_layers(int depth);
bool resnet_uses_bottleneck(int depth);

// The depth (18, 34, 50 or 101) of the torchvision ResNet a state dict belongs to, read from
// its names: the blocks per layer ("layer3.22.conv1.weight": at least 23 in layer3) and whether
// the blocks have a conv3 (Bottleneck). 0 when it matches none of the four. For messages
// such as examples/classify's "it holds resnet34 weights".
int resnet_depth_of(const NamedTensors& state);

}  // namespace mila::nn
