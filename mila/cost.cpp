// cost.cpp - see cost.h. Every figure follows the layer shapes that nn/resnet.cpp and
// mila/model.cpp build; tests/test_cost.cpp holds the two to each other.
#include "mila/cost.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "nn/resnet.h"

namespace mila {
namespace {

// PyTorch's conv output size: floor((in + 2p - d(k-1) - 1) / s) + 1.
int64_t conv_out(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation = 1) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

// Walks ResNet(depth, width) as nn::ResNet builds it, summing conv MACs at the image size
// (when height > 0) and parameters (conv weights, batch-norm weight and bias).
struct ResNetWalk {
  int64_t macs = 0, params = 0;
  MapSize out;
  ResNetActivations activations;  // conv output elements (double: sizes far beyond any run still add up)
};

ResNetWalk walk_resnet(int depth, int64_t w, int64_t height, int64_t width, bool dilated) {
  const std::vector<int> blocks = nn::resnet_layers(depth);  // throws on an unknown depth
  const bool bottleneck = nn::resnet_uses_bottleneck(depth);
  const int64_t expansion = bottleneck ? 4 : 1;
  ResNetWalk r;
  auto conv = [&](int64_t cin, int64_t cout, int64_t k, int64_t out_h, int64_t out_w) {
    r.macs += out_h * out_w * cout * cin * k * k;
    const double elements = double(out_h) * double(out_w) * double(cout);
    r.activations.total += elements;
    r.activations.largest = std::max(r.activations.largest, elements);
    r.params += cout * cin * k * k + 2 * cout;  // the conv and the batch norm after it
  };
  // Stem: conv1 7x7/2 pad 3, then maxpool 3x3/2 pad 1.
  int64_t h = conv_out(height, 7, 2, 3), wd = conv_out(width, 7, 2, 3);
  conv(3, w, 7, h, wd);
  h = conv_out(h, 3, 2, 1);
  wd = conv_out(wd, 3, 2, 1);
  int64_t inplanes = w;
  const int64_t planes_of[4] = {w, 2 * w, 4 * w, 8 * w};
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t planes = planes_of[layer];
    // Layers 3 and 4 keep stride 1 when dilated; a dilated 3x3 conv with padding = dilation
    // keeps the size, so only the stride matters here.
    const int64_t stride = layer == 0 ? 1 : (dilated && layer >= 2 ? 1 : 2);
    for (int i = 0; i < blocks[size_t(layer)]; ++i) {
      const int64_t s = i == 0 ? stride : 1;
      const bool ds = i == 0 && (s != 1 || inplanes != planes * expansion);
      const int64_t oh = conv_out(h, 3, s, 1), ow = conv_out(wd, 3, s, 1);
      if (bottleneck) {
        conv(inplanes, planes, 1, h, wd);  // conv1 1x1 at the input size
        conv(planes, planes, 3, oh, ow);   // conv2 3x3 carries the stride
        conv(planes, planes * 4, 1, oh, ow);
      } else {
        conv(inplanes, planes, 3, oh, ow);
        conv(planes, planes, 3, oh, ow);
      }
      if (ds) conv(inplanes, planes * expansion, 1, oh, ow);  // downsample.0 (1x1, stride s) + .1
      inplanes = planes * expansion;
      h = oh;
      wd = ow;
    }
  }
  r.out = {h, wd};
  return r;
}

int64_t encoder_channels(int depth, int64_t width) {
  return 8 * width * (nn::resnet_uses_bottleneck(depth) ? 4 : 1);
}

int64_t slots(const Config& cfg) { return cfg.multi_frame ? 3 : 2; }
int64_t blocks(const Config& cfg) { return cfg.task_specific ? int64_t(cfg.tasks.size()) : 1; }

// MACs / parameters of one head at F pixels, from S*C channels to `out`.
int64_t head_macs(const Config& cfg, int64_t pixels, int64_t out) {
  return pixels * (512 * slots(cfg) * cfg.C * 9 + 256 * 512 + out * 256);
}
int64_t head_parameters(const Config& cfg, int64_t out) {
  return 512 * slots(cfg) * cfg.C * 9 + 2 * 512 + 256 * 512 + 2 * 256 + out * 256 + out;
}

}  // namespace

MapSize feature_size(int64_t height, int64_t width, bool dilated) {
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("mila::feature_size: image size must be positive, got " + std::to_string(height) +
                                "x" + std::to_string(width));
  return walk_resnet(18, 1, height, width, dilated).out;
}

int64_t resnet_macs(int depth, int64_t width, int64_t height, int64_t image_width, bool dilated) {
  if (height <= 0 || image_width <= 0 || width <= 0)
    throw std::invalid_argument("mila::resnet_macs: sizes must be positive, got width " + std::to_string(width) +
                                " and image " + std::to_string(height) + "x" + std::to_string(image_width));
  return walk_resnet(depth, width, height, image_width, dilated).macs;
}

ResNetActivations resnet_activations(int depth, int64_t width, int64_t height, int64_t image_width, bool dilated) {
  if (height <= 0 || image_width <= 0 || width <= 0)
    throw std::invalid_argument("mila::resnet_activations: sizes must be positive, got width " + std::to_string(width) +
                                " and image " + std::to_string(height) + "x" + std::to_string(image_width));
  return walk_resnet(depth, width, height, image_width, dilated).activations;
}

int64_t resnet_parameters(int depth, int64_t width) { return walk_resnet(depth, width, 64, 64, false).params; }

FrameCost frame_cost(const Config& cfg, int64_t height, int64_t width, bool keyframe) {
  cfg.validate();
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("mila::frame_cost: image size must be positive, got " + std::to_string(height) + "x" +
                                std::to_string(width));
  const int depth = keyframe ? cfg.slow_depth : cfg.fast_depth;
  const ResNetWalk enc = walk_resnet(depth, cfg.width, height, width, true);
  const int64_t F = enc.out.height * enc.out.width;  // pixels of the feature map
  const int64_t nblocks = blocks(cfg), ntasks = int64_t(cfg.tasks.size());
  FrameCost c;
  c.encoder = enc.macs;
  c.neck = F * cfg.C * encoder_channels(depth, cfg.width);
  c.se = nblocks * 2 * cfg.C * (cfg.C / 16);  // fc1 C -> C/16 and fc2 C/16 -> C on the pooled vector
  if (cfg.attention) {
    c.ila_keys = nblocks * F * cfg.D * cfg.C * 9;
    const int64_t n = cfg.L == 0 ? F : cfg.L * cfg.L;
    // Per task: the key slot attends on non-keyframes only, the prev slot on every frame.
    const int64_t calls = (keyframe ? 0 : 1) + (cfg.multi_frame ? 1 : 0);
    c.ila_attention = ntasks * calls * F * n * (cfg.D + cfg.C);
  }
  for (const TaskSpec& t : cfg.tasks) c.heads += head_macs(cfg, F, t.channels);
  return c;
}

double average_macs(const Config& cfg, int64_t height, int64_t width) {
  const double key = double(frame_cost(cfg, height, width, true).total());
  if (cfg.K == 1) return key;
  const double other = double(frame_cost(cfg, height, width, false).total());
  return (key + double(cfg.K - 1) * other) / double(cfg.K);
}

double average_gmacs(const Config& cfg, int64_t height, int64_t width) { return average_macs(cfg, height, width) / 1e9; }

int64_t parameter_count(const Config& cfg, bool with_training_extras) {
  cfg.validate();
  const int64_t C = cfg.C, D = cfg.D, r = C / 16;
  int64_t n = resnet_parameters(cfg.slow_depth, cfg.width) + resnet_parameters(cfg.fast_depth, cfg.width);
  n += (encoder_channels(cfg.slow_depth, cfg.width) + encoder_channels(cfg.fast_depth, cfg.width)) * C + 2 * 2 * C;
  // SE (fc1, fc2 with biases) and h (3x3 conv with bias) per block; built even when
  // attention = false, so they are counted as the model holds them.
  n += blocks(cfg) * ((C * r + r) + (r * C + C) + (D * C * 9 + D));
  for (const TaskSpec& t : cfg.tasks) n += head_parameters(cfg, t.channels);
  if (with_training_extras) {
    n += (C / 2) * C * 9 + C / 2 + (C / 4) * (C / 2) * 9 + C / 4 + (C / 4) * 9 + 1;  // disc
    if (cfg.weighting == Weighting::uncertainty) n += int64_t(cfg.tasks.size());
  }
  return n;
}

int64_t used_parameter_count(const Config& cfg) {
  int64_t n = parameter_count(cfg, false);
  if (cfg.K == 1) n -= resnet_parameters(cfg.fast_depth, cfg.width) + encoder_channels(cfg.fast_depth, cfg.width) * cfg.C + 2 * cfg.C;
  if (!cfg.attention) n -= blocks(cfg) * (cfg.D * cfg.C * 9 + cfg.D);
  return n;
}

}  // namespace mila
