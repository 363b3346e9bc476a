// stream.h - MILA as it runs on a live video: one frame in, its predictions out (SPEC 4.3 in
// steady state, the cost of SPEC 4.5).
//
// A Stream keeps, per attention block (each task's, or the shared one), the SE output s and
// its keys h(s) of the last keyframe and of the previous frame - two frames of features, so
// memory stays constant over any length of video. step(frame):
//   1. keyframe?  fixed policy: frame t (0-based) when t mod K == 0, so frame 0 is one;
//                 adaptive policy (below) may add more;
//   2. e_t = the Slow or Fast encoder + neck; per block s_t = SE(e_t), keys h(s_t) (once);
//   3. per task: cur = s_t, key = ILA(s_t, s_k) (s_t on a keyframe), prev = ILA(s_t, s_{t-1})
//      (s_t on the first frame), head, upsampling, normalization - Model::predict.
// Its outputs equal Model::forward_clip(frames, t0 = 0) on the same frames (tested).
//
// Adaptive keyframes (beyond the paper; off by default). Slow and Fast features differ
// even on one image, so the drift compares Fast with Fast: the reference is the Fast
// encoding of the first frame after the last keyframe, and on each later frame the stream
// runs Fast and measures
//     drift = mean |e_t - e_ref| / mean |e_ref|
// When drift > drift_threshold (or max_interval frames have passed since the keyframe,
// when max_interval > 0) it runs Slow on the frame too and makes it a keyframe. The Fast
// pass's cost then counts in that frame's MACs. With adaptive on, the K schedule still
// applies, counted from the last keyframe (K frames after it comes the next), unless
// fixed_schedule = false: then only the drift (and max_interval) decide.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "mila/model.h"

namespace mila {

struct StreamOptions {
  bool adaptive = false;
  double drift_threshold = 0.0;
  int64_t max_interval = 0;     // adaptive: a keyframe at least every max_interval frames (0: no cap)
  bool fixed_schedule = true;   // adaptive: also keep a keyframe every K frames
};

struct FrameResult {
  TaskOutputs outputs;      // task -> [B, channels, H, W] at the input's size
  bool keyframe = false;
  double latency_ms = 0;    // wall time of step()
  int64_t macs = 0;         // multiply-accumulates this frame ran (convs, linears, ILA; thop's convention)
  double drift = 0;         // adaptive: the measured drift (0 on keyframes the schedule chose, or when off)
};

class Stream {
 public:
  // The model runs as it is (call model.eval() first for inference); step() runs under no-grad.
  explicit Stream(Model& model, StreamOptions options = {});
  // frame: [B, 3, H, W], normalized (SPEC 1), on the model's device. Every frame of a stream
  // has the same shape as the first.
  FrameResult step(const Tensor& frame);
  void reset();
  int64_t frames_seen() const { return t_; }

 private:
  Model& model_;
  StreamOptions options_;
  int64_t t_ = 0;               // frames seen
  int64_t last_keyframe_ = -1;  // its frame number
  Shape shape_;                 // of the first frame
  Tensor key_encoding_;         // adaptive: e of the first Fast frame after the last keyframe
  std::map<std::string, Model::Features> key_, previous_;  // per block
};

}  // namespace mila
