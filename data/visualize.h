// visualize.h - colour maps that turn predictions and labels into pictures (uint8 [3, H, W]),
// and a side-by-side grid. Used by examples/train_nyu (validation pictures) and
// examples/predict (per-frame outputs).
//
//   segmentation_rgb  class ids -> a fixed palette (PASCAL VOC's bit-interleaved one: class
//                     c gets distinct colours for the first 256 ids); 255 (ignore) -> black.
//   depth_rgb         metres -> the "turbo"-like ramp below, near = blue, far = red, over a
//                     range [lo, hi] the caller fixes (so prediction and ground truth share
//                     it); invalid (<= 0 or non-finite) -> black.
//   normal_rgb        unit vectors -> (n + 1) / 2 * 255 as NYUv2 shows them; zero -> black.
//   image_rgb         a normalized frame (SPEC 1) back to uint8 RGB.
//   hstack / vstack   tiles of equal height / width with a 2-pixel white gutter.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace mila::data {

Tensor segmentation_rgb(const Tensor& labels);                  // int64 [H, W] -> uint8 [3, H, W]
Tensor depth_rgb(const Tensor& depth, double lo, double hi);    // float [1, H, W] or [H, W]
Tensor normal_rgb(const Tensor& normal);                        // float [3, H, W]
Tensor image_rgb(const Tensor& normalized_frame);               // float [3, H, W] -> uint8 [3, H, W]
// Argmax over channels of logits [K, H, W] -> int64 [H, W] (ties: the lowest class).
Tensor argmax_channels(const Tensor& logits);
Tensor hstack_images(const std::vector<Tensor>& tiles);  // uint8 [3, H, W_i] -> [3, H, sum W + gutters]
Tensor vstack_images(const std::vector<Tensor>& tiles);  // uint8 [3, H_i, W] -> [3, sum H + gutters, W]

}  // namespace mila::data
