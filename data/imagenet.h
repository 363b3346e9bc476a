// imagenet.h - ImageNet classification's input and output ends: torchvision's evaluation
// transform, bit for bit, and the class names and top-k of a classifier's logits.
//
// The transform torchvision's ImageNet weights were evaluated with (their
// `transforms()`, and every ImageNet example since AlexNet's) is
//   Resize(256)      shorter side to 256 (longer int(256 * long / short)), PIL bilinear
//   CenterCrop(224)  top = int(round((H - 224) / 2.0)), Python's round: half to even
//   ToTensor()       uint8 / 255 in float32
//   Normalize        (x - mean) / std, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
// on a PIL image. PIL's bilinear resize is not F.interpolate's: when it shrinks it widens
// the triangle filter by the scale factor (antialiasing), it works in two 8-bit passes
// (horizontal, rounded to uint8, then vertical) with fixed-point weights, and it is skipped
// when the size does not change. resize_pil_bilinear reproduces all of that, so
// imagenet_preprocess gives the same float32 tensor as torchvision 0.14 + Pillow 9 on the
// same pixels (measured: docs/classify.md; "Note [PIL's bilinear resize]" in imagenet.cpp).
//
// Images are channels first, uint8 [C, H, W], as data/image_io.h reads them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/video_dataset.h"  // kImageMean, kImageStd: SPEC section 1's normalization
#include "tensor/tensor.h"

namespace mila::data {

inline constexpr int64_t kImageNetResize = 256;  // Resize(256): the shorter side
inline constexpr int64_t kImageNetCrop = 224;    // CenterCrop(224)
inline constexpr int64_t kImageNetClassCount = 1000;

struct ImageSize {
  int64_t height = 0, width = 0;
  bool operator==(const ImageSize&) const = default;
};

// torchvision's Resize(shorter) output size for an image of height x width: the shorter
// side becomes `shorter`, the longer int(shorter * long / short) (truncated). A square
// image gives shorter x shorter. Throws on a non-positive size.
ImageSize resized_size(int64_t height, int64_t width, int64_t shorter = kImageNetResize);

// The taps of one axis of PIL's bilinear resample from in_size to out_size samples: output
// i is (sum_j weights[i * max_taps + j] * in[first[i] + j] + 2^21) >> 22 over
// j < count[i], clamped to [0, 255]. The weights are 22-bit fixed point, summing to about
// 2^22 per output (see the Note in imagenet.cpp for how they are made).
struct ResampleTaps {
  static constexpr int precision_bits = 22;  // PIL's PRECISION_BITS (32 - 8 - 2)
  int64_t max_taps = 0;
  std::vector<int64_t> first, count;  // per output sample
  std::vector<int32_t> weights;       // [out_size, max_taps], zero past count[i]
};
ResampleTaps pil_bilinear_taps(int64_t in_size, int64_t out_size);

// PIL's Image.resize((width, height), BILINEAR) of a uint8 [C, H, W] image (any strides, CPU):
// a horizontal pass rounded to uint8, then a vertical one; an axis whose size does not
// change is not resampled (so a same-size resize returns an exact copy).
Tensor resize_pil_bilinear(const Tensor& image, int64_t height, int64_t width);

// torchvision's CenterCrop offset along one axis: int(round((size - crop) / 2.0)) with
// Python's round (half to even: 16.5 -> 16, 17.5 -> 18). Throws if crop > size.
int64_t center_crop_offset(int64_t size, int64_t crop);
// The centre height x width window of a [..., H, W] tensor (a view, no copy).
Tensor center_crop(const Tensor& image, int64_t height, int64_t width);

// uint8 [3, H, W] -> float32 [3, H, W]: (v / 255 - mean[c]) / std[c], each step in float32
// as torchvision's ToTensor and Normalize compute it.
Tensor imagenet_normalize(const Tensor& rgb8);

// The whole evaluation transform: uint8 RGB [3, H, W] (any size >= 1x1) -> float32
// [1, 3, 224, 224], ready for a torchvision ImageNet classifier.
Tensor imagenet_preprocess(const Tensor& rgb8);

// An 8-bit PNG or JPEG as uint8 RGB [3, H, W], as PIL's Image.open(path).convert("RGB")
// gives it for the files that matter here: RGB as is, grey replicated to three channels.
// Files with alpha or 16-bit samples are refused (ImageError naming the file), as
// data/image_io.h refuses them: drop the alpha channel with an image tool first.
Tensor read_image_rgb(const std::string& path);

// ---- the classifier's output ----

// The name of ImageNet-1k class `index` (0 "tench" ... 999 "toilet tissue"), torchvision's
// names (data/imagenet_classes.h). Throws std::out_of_range outside [0, 1000).
const char* imagenet_class_name(int64_t index);

struct ClassScore {
  int64_t index = 0;
  float logit = 0;
  double probability = 0;  // softmax over all the logits
};
// The k highest-scoring classes of logits [N] or [1, N] (float32, any device), by
// descending logit (ties: lower index first), with their softmax probabilities (computed in
// double). k is clamped to N; throws on k < 1 or another shape.
std::vector<ClassScore> top_k_classes(const Tensor& logits, int64_t k);

}  // namespace mila::data
