// cost.h - MILA's cost, counted analytically in multiply-accumulates (SPEC 4.5).
//
// The convention is thop's, which is what the paper reports as "GFLOPs": a conv counts
// out_elements * (Cin / groups) * kh * kw (bias not counted), a linear layer in * out, and
// ILA H*W*n*(D + C) for its logits and its aggregation (n = L*L offsets, or H*W when global).
// Batch norm, activations, pooling, upsampling, normalization and the discriminator count 0.
//
// The count is per image (batch 1) in steady-state streaming: the previous frame and the
// latest keyframe are always there, so every ILA call that the model makes on a long stream
// is counted. Per frame (Model::forward_clip / Model::predict):
//   keyframe:      slow + slow_neck, then per block SE and h(s_t) once, per task the head;
//                  ILA calls per task: prev (multi_frame) only; the key slot is s_t itself.
//   non-keyframe:  fast + fast_neck, SE and h(s_t) per block, per task the head;
//                  ILA calls per task: key, and prev (multi_frame).
// With attention = false (the MultiNet++-style baseline) the slots copy the source
// features: no h and no ILA. With task_specific = false the shared block's SE and h run
// once per frame, but each task still makes its own ILA calls (as Model::predict does).
// average_gmacs averages over the K positions of a keyframe cycle: (key + (K-1) * non-key) / K.
//
// Nothing here builds a model or runs a forward: every figure comes from the shapes, so a
// report over many variants is instant. tests/test_cost.cpp checks the counts against
// nn::trace::Recorder over real forwards and against hand sums.
#pragma once

#include <cstdint>
#include <string>

#include "mila/config.h"

namespace mila {

// MACs of one frame (batch 1), by component.
struct FrameCost {
  int64_t encoder = 0;        // slow or fast ResNet (dilated, output stride 8, no fc)
  int64_t neck = 0;           // slow_neck.0 or fast_neck.0 (1x1 conv to C)
  int64_t se = 0;             // SE fc1 + fc2, once per block
  int64_t ila_keys = 0;       // h(s_t), once per block (0 with attention = false)
  int64_t ila_attention = 0;  // H*W*n*(D + C) per ILA call, every call Model::predict makes
  int64_t heads = 0;          // the task heads (3x3 S*C->512, 1x1 512->256, 1x1 256->out)
  int64_t total() const { return encoder + neck + se + ila_keys + ila_attention + heads; }
};

// The spatial size of a dilated ResNet's output (stride 8) for an input of height x width,
// following the convs' own arithmetic (conv1 7x7/2 pad 3, maxpool 3x3/2 pad 1, layer2 3x3/2
// pad 1): 288x384 -> 36x48, 256x512 -> 32x64.
struct MapSize {
  int64_t height = 0, width = 0;
};
MapSize feature_size(int64_t height, int64_t width, bool dilated = true);

// MACs of ResNet(depth, width) without fc on a 3 x height x width image (batch 1).
int64_t resnet_macs(int depth, int64_t width, int64_t height, int64_t image_width, bool dilated = true);
// The conv outputs of ResNet(depth, width) without fc on one 3 x height x width image, in
// elements: their sum and the largest (mila/memory.h estimates activation memory from them).
struct ResNetActivations {
  double total = 0, largest = 0;
};
ResNetActivations resnet_activations(int depth, int64_t width, int64_t height, int64_t image_width, bool dilated = true);
// Parameters of ResNet(depth, width) without fc (conv weights and batch-norm weight and bias).
int64_t resnet_parameters(int depth, int64_t width);

// Steady-state cost of one keyframe or non-keyframe at the input size height x width.
// Throws std::invalid_argument when the config is invalid or the size is not positive.
FrameCost frame_cost(const Config& cfg, int64_t height, int64_t width, bool keyframe);
// The mean over the K positions of a keyframe cycle, in MACs and in GMACs (1e9 MACs).
double average_macs(const Config& cfg, int64_t height, int64_t width);
double average_gmacs(const Config& cfg, int64_t height, int64_t width);

// Parameters of the model as built by Model(cfg). Without training extras: what inference
// uses (slow, fast, necks, SE, h, heads). With them: also the discriminator and the
// uncertainty scalars, i.e. exactly Model(cfg).num_parameters().
int64_t parameter_count(const Config& cfg, bool with_training_extras = false);
// The parameters that inference actually reads: parameter_count(cfg) less the Fast encoder
// and its neck when K = 1 (every frame is a keyframe) and less the h convs when
// attention = false (the model still builds them).
int64_t used_parameter_count(const Config& cfg);

}  // namespace mila
