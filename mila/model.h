// model.h - MILA (SPEC 4): Slow and Fast encoders, necks, per-task SE + ILA, heads, and
// the discriminator, with PyTorch's module names so checkpoints move between the two.
//
//   keyframe t:  e_t = relu(slow_neck(slow(I_t)))      other frames: e_t = relu(fast_neck(fast(I_t)))
//   per task T:  s_t = SE_T(e_t)
//                cur  = s_t
//                key  = ILA_T(s_t, s_k)    k = the latest keyframe before t in the clip (s_t when none / on keyframes)
//                prev = ILA_T(s_t, s_{t-1}) (multi_frame; s_t when t is the clip's first frame)
//                y_T  = upsample(head_T(concat(cur, key[, prev])))   normal: L2-normalized over channels
// Paper equations: the ILA weighted sum is eq. (1), its softmax weights eq. (2), the mimic
// and adversarial losses eq. (3) (mila/train.h); docs/mila.md maps each to the code.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mila/config.h"
#include "nn/attention.h"
#include "nn/resnet.h"

namespace mila {

// One task's decoder: SE and ILA (when task-specific) and the head.
class TaskDecoder : public nn::Module {
 public:
  TaskDecoder(const Config& cfg, int64_t out_channels, bool own_attention);
  std::shared_ptr<nn::SEBlock> se;       // null when the shared block serves this task
  std::shared_ptr<nn::ILAModule> ila;    // null when shared
  std::shared_ptr<nn::Sequential> head;  // .0 conv3x3 S*C->512, .1 BN, .2 relu, .3 conv1x1 512->256, .4 BN, .5 relu, .6 conv1x1 ->out
};

// The SE + ILA pair shared by every task when task_specific = false ("shared.*").
class SharedAttention : public nn::Module {
 public:
  explicit SharedAttention(const Config& cfg);
  std::shared_ptr<nn::SEBlock> se;
  std::shared_ptr<nn::ILAModule> ila;
};

using TaskOutputs = std::map<std::string, Tensor>;  // task name -> [B, channels, H, W]

class Model : public nn::Module {
 public:
  explicit Model(const Config& cfg);
  const Config& config() const { return cfg_; }

  // Whether frame t of a clip with keyframe phase t0 is a keyframe: (t - t0) mod K == 0.
  bool is_keyframe(int64_t t, int64_t t0) const;
  // e_t: the neck output of the Slow (keyframe) or Fast encoder for frames [B, 3, H, W].
  Tensor encode(const Tensor& frames, bool keyframe);
  // The discriminator's logit per image, [B].
  Tensor discriminate(const Tensor& features);

  struct ClipResult {
    std::vector<TaskOutputs> outputs;  // per frame (empty maps for frames whose heads were skipped)
    std::vector<Tensor> encodings;     // e_t per frame
  };
  // frames [T, B, 3, H, W]; heads run on every frame, or on the last one only (training).
  ClipResult forward_clip(const Tensor& frames, int64_t t0, bool heads_on_last_only = false);

  std::shared_ptr<nn::ResNet> slow, fast;
  std::shared_ptr<nn::Sequential> slow_neck, fast_neck, disc;
  std::shared_ptr<nn::Module> decoders;  // children: one TaskDecoder per task
  std::shared_ptr<SharedAttention> shared;
  std::map<std::string, std::shared_ptr<TaskDecoder>> task_decoders;
  std::shared_ptr<nn::Module> uncertainty;  // weighting "uncertainty": scalars "uncertainty.<task>"
  // The learnable log-variance s_T of a task (weighting "uncertainty" only).
  Tensor uncertainty_for(const std::string& task) const;

  // Per-frame state of one SE/ILA block: SE output and its keys h(s).
  struct Features {
    Tensor s, keys;
    bool defined() const { return s.defined(); }
  };
  // The attention block (SE, ILA) that serves `task`.
  nn::SEBlock& se_for(const std::string& task);
  nn::ILAModule& ila_for(const std::string& task);
  // Names of the attention blocks: the task names, or {"shared"}.
  std::vector<std::string> blocks() const;
  const std::string& block_of(const std::string& task) const;
  Features block_features(const std::string& block, const Tensor& e);
  // The head output of `task` from its frame's features and the slots' sources, upsampled
  // to height x width (normal: normalized).
  Tensor predict(Task task, const Features& now, const Features& key, const Features& prev, int64_t height, int64_t width);

 private:
  Config cfg_;
  std::map<std::string, std::string> block_of_;
};

}  // namespace mila
