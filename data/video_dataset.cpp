// video_dataset.cpp - see video_dataset.h.
#include "data/video_dataset.h"

#include <sstream>
#include <stdexcept>
#include <string>

#include "data/image_io.h"

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

void ValidationReport::add(const std::string& problem) {
  if (problems_.size() < 20) problems_.push_back(problem);
  ++count_;
}

bool ValidationReport::check_image(const std::string& path, int channels, int bits, const char* kind, int64_t height,
                                   int64_t width) {
  try {
    const ImageInfo info = check_image_file(path);
    if (info.bits != bits || info.channels != channels) {
      std::ostringstream s;
      s << path << ": " << kind << " file has " << info.channels << " channel(s), " << info.bits << "-bit; expected " << channels
        << " channel(s), " << bits << "-bit";
      if (bits == 16 && info.bits == 8) s << " (an 8-bit PNG cannot hold 16-bit depth or disparity: a broken conversion?)";
      add(s.str());
      return false;
    }
    if (info.width != width || info.height != height) {
      add(path + ": " + kind + " is " + std::to_string(info.width) + "x" + std::to_string(info.height) +
          ", but the split's frames are " + std::to_string(width) + "x" + std::to_string(height));
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    add(e.what());
    return false;
  }
}

void ValidationReport::throw_if_any(const std::string& who, const std::string& split_dir) const {
  if (count_ == 0) return;
  std::ostringstream msg;
  msg << who << ": " << split_dir << " failed validation with " << count_ << " problem" << (count_ == 1 ? "" : "s") << ":";
  for (const std::string& p : problems_) msg << "\n  " << p;
  if (count_ > int64_t(problems_.size())) msg << "\n  ... and " << count_ - int64_t(problems_.size()) << " more";
  throw DatasetError(msg.str());
}

}  // namespace mila::data
