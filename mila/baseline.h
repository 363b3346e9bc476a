// baseline.h - the constant predictor a trained model has to beat, scored as the model is.
#pragma once

#include "data/video_dataset.h"
#include "mila/config.h"
#include "mila/metrics.h"

namespace mila {

// Predicts, for every pixel of every validation sample, the most frequent training class,
// the mean valid training depth and the mean training normal (of the annotated frames, at
// offset 0), and returns SPEC 4.5's metrics of that on `val`: every sample once (the
// offsets would only repeat the same pixels). Tasks as in `cfg`.
MetricResults constant_baseline(const data::VideoDataset& train, const data::VideoDataset& val, const Config& cfg);

}  // namespace mila
