// video_dataset.cpp - see video_dataset.h.
#include "data/video_dataset.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>

#include "data/image_io.h"
#include "data/imagenet.h"

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

std::string size_str(int64_t width, int64_t height) { return std::to_string(width) + "x" + std::to_string(height); }

void check_frame_size(const char* who, const std::filesystem::path& path, int64_t height, int64_t width, int64_t split_height,
                      int64_t split_width) {
  if (height != split_height || width != split_width)
    throw DatasetError(std::string(who) + ": " + path.string() + " is " + size_str(width, height) + ", but the split's frames are " +
                       size_str(split_width, split_height));
}

Tensor load_clip_frames(const char* who, const std::vector<std::filesystem::path>& files, int64_t last, int64_t offset,
                        int64_t stored_height, int64_t stored_width, int64_t height, int64_t width) {
  if (offset < 0) throw DatasetError(std::string(who) + ": negative clip offset " + std::to_string(offset));
  const int64_t T = offset + 1, HW = height * width;
  Tensor frames = Tensor::allocate({T, 3, height, width}, DType::Float32, Device::cpu());
  float* out = frames.data<float>();
  int64_t previous = -1;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t pos = std::max<int64_t>(last - offset + t, 0);
    float* dst = out + t * 3 * HW;
    if (pos == previous) {
      std::copy(dst - 3 * HW, dst, dst);
      continue;
    }
    const std::filesystem::path& path = files[size_t(pos)];
    Tensor rgb = read_rgb(path.string());
    check_frame_size(who, path, rgb.size(1), rgb.size(2), stored_height, stored_width);
    if (height != stored_height || width != stored_width) rgb = resize_pil_bilinear(rgb, height, width);
    const uint8_t* src = rgb.data<uint8_t>();
    for (int64_t k = 0; k < 3 * HW; ++k) dst[k] = float(src[k]) * (1.0f / 255.0f);
    previous = pos;
  }
  return frames;
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
      add(path + ": " + kind + " is " + size_str(info.width, info.height) + ", but the split's frames are " +
          size_str(width, height));
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
