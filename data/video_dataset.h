// video_dataset.h - what the trainer, the evaluation and the loader need of a video dataset
// with annotated frames: NyuVideoDataset (nyu.h, SPEC 5's NYUv2-video layout) and
// CityscapesDataset (cityscapes.h, the official layout) implement it.
//
// A sample is one annotated frame. Its clip with offset o (SPEC 4.4) is the frames at
// positions p-o .. p of its sequence (p: the annotated frame's), a position before the
// sequence's start replaced by its first frame; T = o + 1 frames, the keyframe at index 0,
// the annotated frame last. Labels are those of the annotated frame; a task a dataset does
// not annotate (Cityscapes has no normals) comes back all invalid (zeros), so the losses and
// metrics, which skip invalid pixels, ignore it without a special case.
//
// Thread safety: a dataset is immutable after construction; load_clip may run on many
// threads at once (the loader's workers do).
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mila::data {

struct DatasetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One annotated frame's clip, before normalization (what augmentation works on).
struct ClipData {
  Tensor frames;  // float32 [T, 3, H, W], RGB in [0, 1]; frames[T-1] is the annotated frame
  Tensor seg;     // int64 [H, W], class ids, 255 = ignore
  Tensor depth;   // float32 [1, H, W], metres, 0 = invalid
  Tensor normal;  // float32 [3, H, W], unit or zero (invalid)
};

// SPEC 1's input normalization: x = (rgb - mean) / std per channel, in place on a contiguous
// float32 [..., 3, H, W] tensor of values in [0, 1].
constexpr float kImageMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageStd[3] = {0.229f, 0.224f, 0.225f};
void normalize_frames_(Tensor& frames);

class VideoDataset {
 public:
  virtual ~VideoDataset() = default;

  virtual int64_t size() const = 0;  // number of annotated frames (samples)
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  virtual int64_t num_classes() const = 0;  // segmentation classes (255 is ignore)
  virtual const std::string& split_dir() const = 0;
  virtual std::string sample_name(int64_t i) const = 0;  // for messages and pictures

  // Checks every file of the split without training on it; throws one DatasetError listing
  // the first problems found, each naming its file.
  virtual void validate() const = 0;

  // The clip of sample i with offset o, RGB in [0, 1] (above).
  virtual ClipData load_clip(int64_t i, int64_t offset) const = 0;
  // load_clip with the frames normalized (normalize_frames_): what the model sees.
  ClipData clip(int64_t i, int64_t offset) const {
    ClipData c = load_clip(i, offset);
    normalize_frames_(c.frames);
    return c;
  }
};

// ---- what the datasets share ----

// "WxH", as the messages about image sizes write it.
std::string size_str(int64_t width, int64_t height);

// Throws DatasetError("<who>: <path> is WxH, but the split's frames are WxH") when a file's
// height x width is not the split's.
void check_frame_size(const char* who, const std::filesystem::path& path, int64_t height, int64_t width, int64_t split_height,
                      int64_t split_width);

// The frames of a clip (SPEC 4.4) whose annotated frame is files[last]: frame t = 0..offset
// is files[max(last - offset + t, 0)], the first file standing in for positions before the
// start. Each is an 8-bit RGB image of stored_height x stored_width (check_frame_size, `who`
// naming the dataset), resized to height x width with Pillow's bilinear filter
// (imagenet.h's resize_pil_bilinear) when that differs. Returns float32
// [offset + 1, 3, height, width] in [0, 1]; a repeated position is copied, not read again.
Tensor load_clip_frames(const char* who, const std::vector<std::filesystem::path>& files, int64_t last, int64_t offset,
                        int64_t stored_height, int64_t stored_width, int64_t height, int64_t width);

// What the datasets' validate() share: a list of problems (the first 20 kept, all counted)
// that becomes one DatasetError, and the header check of one image file.
class ValidationReport {
 public:
  void add(const std::string& problem);
  // Checks `path`'s structure and header (check_image_file, no pixel decoding): its channels,
  // bit depth and size. Adds a problem naming the file and returns false on any mismatch or
  // read error. `kind` names the file's role in messages ("label", "depth", ...).
  bool check_image(const std::string& path, int channels, int bits, const char* kind, int64_t height, int64_t width);
  // Throws DatasetError("<who>: <split_dir> failed validation with N problems: ...") when
  // there is any problem.
  void throw_if_any(const std::string& who, const std::string& split_dir) const;

 private:
  std::vector<std::string> problems_;
  int64_t count_ = 0;
};

}  // namespace mila::data
