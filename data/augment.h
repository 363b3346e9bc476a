// augment.h - training augmentation of a clip: one random draw applied identically to every
// frame of the clip and to its labels, so that the frames stay aligned with each other (the
// model's attention compares them) and with the ground truth.
//
// Geometry (all of the clip's maps, in this order):
//   scale s uniform in [scale_min, scale_max]: the map is resized to (round(H s), round(W s))
//     and a window of the original size (H, W) is cut out at a uniform position;
//   flip with probability 1/2: columns mirrored; the normal's x component is negated.
// The two are one resampling per output pixel (no intermediate image): output (y, x) reads
// the resized map at (y + crop_y, x' + crop_x), x' = W - 1 - x when flipped, which is the
// source point ((Y + 0.5) / s' - 0.5) with s' = round(H s) / H per axis, as
// F.interpolate(align_corners=False) maps it.
//   RGB      bilinear (ops/interpolate.h's formulas, clamped at the border);
//   labels   nearest: source index floor((Y + 0.5) / s'), so only values that occur in the
//            label map (class ids and 255) ever come out;
//   depth    nearest, then divided by s when scale_depth: zooming in by s shows the scene as
//            it would look from s times closer (MTAN's RandomScaleCrop does the same). Nearest,
//            because a bilinear mix across an object's edge or a hole (0 = invalid) invents
//            depths that no surface has;
//   normal   bilinear over the valid (non-zero) neighbours only, then renormalized; a pixel
//            whose nearest source is invalid stays invalid (zero).
// Colour (RGB only, after the geometry, factors drawn uniformly in [1 - x, 1 + x]), as
// torchvision's ColorJitter, each step clamped to [0, 1]:
//   brightness  rgb * b
//   contrast    (rgb - m) * c + m, m the frame's mean grey (0.299 R + 0.587 G + 0.114 B)
//   saturation  (rgb - g) * a + g, g the pixel's grey
// A factor of exactly 1 leaves the image untouched. Evaluation uses no augmentation at all.
#pragma once

#include <cstdint>

#include "data/video_dataset.h"
#include "tensor/random.h"

namespace mila::data {

struct AugmentConfig {
  double scale_min = 1.0, scale_max = 1.5;
  bool flip = true;
  double brightness = 0.2, contrast = 0.2, saturation = 0.2;
  bool scale_depth = true;
};

// One draw: what augment_clip applies.
struct AugmentParams {
  double scale = 1.0;
  int64_t crop_y = 0, crop_x = 0;  // window position in the resized map
  bool flip = false;
  double brightness = 1.0, contrast = 1.0, saturation = 1.0;
  double depth_factor = 1.0;  // 1 / scale when the config's scale_depth, else 1
};

// Always takes 7 draws from gen (scale, crop y, crop x, flip, brightness, contrast,
// saturation), whatever the config, so a batch's later samples do not depend on it.
AugmentParams draw_augment_params(const AugmentConfig& config, int64_t height, int64_t width, Generator& gen);

// Returns the augmented clip (new tensors; the input is not modified). Shapes as ClipData.
ClipData augment_clip(const ClipData& clip, const AugmentParams& params);

}  // namespace mila::data
