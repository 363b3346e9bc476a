// stream.cpp - see stream.h.
#include "mila/stream.h"

#include <chrono>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "nn/trace.h"
#include "ops/ops.h"

namespace mila {

Stream::Stream(Model& model, StreamOptions options) : model_(model), options_(options) {
  // !(x >= 0) also refuses NaN, with which every drift comparison would be false.
  if (options_.adaptive && !(options_.drift_threshold >= 0))
    throw std::invalid_argument("Stream: drift_threshold must be a number >= 0, got " + std::to_string(options_.drift_threshold));
  if (options_.max_interval < 0)
    throw std::invalid_argument("Stream: max_interval must be >= 0 (0: no cap), got " + std::to_string(options_.max_interval));
}

void Stream::reset() {
  t_ = 0;
  last_keyframe_ = -1;
  shape_.clear();
  key_encoding_ = Tensor();
  key_.clear();
  previous_.clear();
}

FrameResult Stream::step(const Tensor& frame) {
  if (frame.dim() != 4 || frame.size(1) != 3)
    throw std::invalid_argument("Stream::step: expected a frame [B, 3, H, W], got " + shape_str(frame.shape()));
  if (t_ > 0 && frame.shape() != shape_)
    throw std::invalid_argument("Stream::step: frame " + std::to_string(t_) + " is " + shape_str(frame.shape()) +
                                ", the stream's first was " + shape_str(shape_));
  const auto start = std::chrono::steady_clock::now();
  NoGradGuard no_grad;
  nn::trace::Recorder trace(model_);
  FrameResult r;

  const int64_t K = model_.config().K;
  const bool scheduled = last_keyframe_ < 0 || (!options_.adaptive || options_.fixed_schedule ? t_ - last_keyframe_ >= K : false);
  bool key = scheduled;
  Tensor e;
  if (!key) {
    e = model_.encode(frame, /*keyframe=*/false);
    if (options_.adaptive) {
      if (!key_encoding_.defined()) key_encoding_ = e;  // the first Fast frame after the keyframe: drift 0
      const double base = mean(abs(key_encoding_)).item<double>();
      r.drift = mean(abs(sub(e, key_encoding_))).item<double>() / std::max(base, 1e-12);
      const bool overdue = options_.max_interval > 0 && t_ - last_keyframe_ >= options_.max_interval;
      if (r.drift > options_.drift_threshold || overdue) key = true;
    }
  }
  if (key) e = model_.encode(frame, /*keyframe=*/true);

  std::map<std::string, Model::Features> now;
  for (const std::string& b : model_.blocks()) now[b] = model_.block_features(b, e);
  const int64_t H = frame.size(2), W = frame.size(3);
  for (const TaskSpec& spec : model_.config().tasks) {
    const std::string& b = model_.block_of(spec.name());
    // As forward_clip: on a keyframe the key slot is the frame itself; prev is the frame
    // itself on the stream's first frame.
    const Model::Features k = key ? Model::Features{} : key_.at(b);
    const Model::Features p = previous_.count(b) ? previous_.at(b) : Model::Features{};
    r.outputs[spec.name()] = model_.predict(spec.task, now[b], k, p, H, W);
  }
  if (key) {
    key_ = now;
    last_keyframe_ = t_;
    key_encoding_ = Tensor();  // the next Fast frame becomes the reference
  }
  previous_ = std::move(now);
  if (t_ == 0) shape_ = frame.shape();
  ++t_;
  r.keyframe = key;
  r.macs = trace.total_macs();
  r.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace mila
