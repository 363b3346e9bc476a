// attention.h - the two blocks MILA adds per task: the squeeze-excitation block and the
// inter-frame local attention module (SPEC 4.1, 4.2).
//
//   SEBlock(C):   gate = sigmoid(fc2(relu(fc1(global_avg(x)))));   out = x * gate  (per channel)
//                 fc1: Linear(C -> C/16), fc2: Linear(C/16 -> C)
//   ILAModule(C, D, L):  h = 3x3 conv C -> D (padding 1, bias);
//                 forward(target, source) = ila(h(target), h(source), source, L)
//                 keys(s) = h(s) may be computed once per frame and passed in (SPEC 4.2).
#pragma once

#include <memory>

#include "nn/layers.h"

namespace mila::nn {

class SEBlock : public Module {
 public:
  explicit SEBlock(int64_t channels, int64_t reduction = 16);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Linear> fc1, fc2;
};

class ILAModule : public Module {
 public:
  ILAModule(int64_t channels, int64_t key_channels, int64_t window);
  // The projection h(x) [B, D, H, W]; counted in MACs like any conv.
  Tensor keys(const Tensor& x) { return (*h)(x); }
  // out = ILA(target, source) with precomputed h(target) and h(source).
  Tensor attend(const Tensor& target_keys, const Tensor& source_keys, const Tensor& source);
  Tensor forward(const Tensor& target, const Tensor& source) { return attend(keys(target), keys(source), source); }
  // ILA's own MACs at a map of H x W with C value channels: H*W*n*(D + C), n = L*L or H*W (SPEC 4.5).
  int64_t attention_macs(int64_t height, int64_t width, int64_t channels) const;
  std::shared_ptr<Conv2d> h;
  int64_t window;
};

}  // namespace mila::nn
