// pictures.h - what a model sees and predicts on validation clips, as PNGs a person can check
// at a glance (examples/train_nyu writes them at every evaluation, under vis/step_N/).
#pragma once

#include <cstdint>
#include <string>

#include "data/video_dataset.h"
#include "mila/model.h"

namespace mila {

// One PNG per clip, clip_000.png .. for the first `count` clips of `val`: the top row is the
// annotated frame and each task's ground truth, the bottom row the frame and each prediction
// (in the config's task order; seg as the palette, depth on one range for both rows, normal
// as RGB; data/visualize.h). The model runs in eval mode under no-grad; its mode is restored.
void write_validation_pictures(Model& model, const data::VideoDataset& val, int64_t count, const std::string& dir);

}  // namespace mila
