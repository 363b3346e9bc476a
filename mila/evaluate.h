// evaluate.h - SPEC 4.5's evaluation of a model on a data set: every annotated frame once per
// keyframe offset o = 0..K-1 (the clip a-o..a with its keyframe at a-o), the metrics pooled
// over all of them (mila/metrics.h).
#pragma once

#include "data/video_dataset.h"
#include "mila/metrics.h"
#include "mila/model.h"

namespace mila {

struct EvalOptions {
  int64_t batch_size = 4;
  int workers = 2;           // loader threads decoding the clips
  int64_t max_samples = -1;  // the first max_samples annotated frames (all offsets); -1: all
  bool verbose = false;      // a line per offset
};

// The model runs in eval mode under no-grad, heads on the last frame only; its training mode
// is restored afterwards. The data's frames are moved to the model's device.
MetricResults evaluate(Model& model, const data::VideoDataset& dataset, const EvalOptions& options = {});

}  // namespace mila
