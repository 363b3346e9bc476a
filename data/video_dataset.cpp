// video_dataset.cpp - see video_dataset.h.
#include "data/video_dataset.h"

#include <stdexcept>
#include <string>

namespace mila::data {

void normalize_frames_(Tensor& frames) {
  if (frames.dtype() != DType::Float32 || !frames.is_contiguous() || frames.dim() < 3 || frames.size(-3) != 3)
    throw std::invalid_argument("normalize_frames_: expected a contiguous float32 [..., 3, H, W] tensor, got " +
                                shape_str(frames.shape()) + " " + dtype_name(frames.dtype()));
  const int64_t plane = frames.size(-1) * frames.size(-2), images = frames.numel() / (3 * plane);
  float* p = frames.data<float>();
  for (int64_t n = 0; n < images; ++n)
    for (int64_t c = 0; c < 3; ++c) {
      float* q = p + (n * 3 + c) * plane;
      const float mean = kImageMean[c], inv_std = 1.0f / kImageStd[c];
      for (int64_t i = 0; i < plane; ++i) q[i] = (q[i] - mean) * inv_std;
    }
}

}  // namespace mila::data
