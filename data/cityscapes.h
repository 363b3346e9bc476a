// cityscapes.h - the Cityscapes video dataset in its official layout (SPEC 5), as a
// VideoDataset (video_dataset.h): segmentation and depth of the annotated frame, clips of the
// frames before it.
//
//   ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   annotated frames
//   ROOT/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<f>_leftImg8bit.png   every frame
//   ROOT/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png     16-bit
//   ROOT/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json          baseline, fx
//
// Samples: every gtFine labelIds file of the split, in (city, sequence, frame) order. The
// annotated frame is the 20th of its 30-frame snippet, so the snippet's frames before it are
// numbers frame-19 .. frame-1; all 20 must exist in leftImg8bit_sequence (the constructor
// checks, naming the first missing file). A clip with offset o takes frames frame-o .. frame,
// with offsets above 19 clamped to the snippet's first frame (SPEC 4.4's rule at a sequence
// start). The 10 frames after the annotated one are never read.
//
// Labels: the official label ids (0..33) of labelIds.png mapped, as cityscapesScripts'
// labels.py defines them, to
//   19 classes: the train ids (road 0 ... bicycle 18); every other id 255 (ignore);
//   7 classes:  the categories flat, construction, object, nature, sky, human, vehicle
//               (category id - 1); the void category's ids (0..6) 255.
// A value above 33 is an error naming the file (labelIds.png holds only official ids; a
// labelTrainIds.png passed by mistake has 255s and fails).
// Depth: disparity d = (p - 1) / 256 for a 16-bit sample p > 1 (the dataset's encoding; p = 0
// is invalid, and p = 1 is disparity 0, infinitely far: invalid too), depth = baseline * fx / d
// in metres with the frame's camera.json (extrinsic.baseline in metres, intrinsic.fx in
// pixels). Invalid pixels are 0. Normals are not annotated: all zero (invalid).
//
// Size: frames are 1024 x 2048; `height` x `width` (0: as stored) resizes on load: RGB with
// Pillow's antialiased bilinear filter (imagenet.h's resize_pil_bilinear, on the 8-bit
// pixels), labels and depth with nearest neighbour (PyTorch's "nearest": source index
// floor(i * in / out)), so no label or depth is invented between two objects.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/video_dataset.h"

namespace mila::data {

// The official label id -> train id (19 classes) and -> category (7 classes) tables; 255 for
// ignored ids. Index: label id 0..33.
extern const uint8_t kCityscapesTrainId[34];
extern const uint8_t kCityscapesCategory[34];

struct CityscapesOptions {
  int64_t num_classes = 19;         // 19 (train ids) or 7 (categories)
  int64_t height = 0, width = 0;    // output size; 0, 0: as stored (1024 x 2048)
};

class CityscapesDataset : public VideoDataset {
 public:
  static constexpr int64_t kFramesBefore = 19;  // the annotated frame is the snippet's 20th

  // root: the folder holding gtFine/, leftImg8bit_sequence/, disparity/ and camera/;
  // split: "train", "val" or "test".
  CityscapesDataset(const std::string& root, const std::string& split, CityscapesOptions options = {});

  int64_t size() const override { return int64_t(samples_.size()); }
  int64_t height() const override { return height_; }
  int64_t width() const override { return width_; }
  int64_t num_classes() const override { return options_.num_classes; }
  const std::string& split_dir() const override { return split_dir_; }
  std::string sample_name(int64_t i) const override;  // "<city>_<seq>_<frame>"

  // Every file of every sample: image headers and structure (check_image_file), sizes, bit
  // depths, label values, camera files' fields.
  void validate() const override;
  ClipData load_clip(int64_t i, int64_t offset) const override;

  struct Sample {
    std::string city, sequence;  // "aachen", "000000"
    int64_t frame = 0;           // the annotated frame's number
    std::filesystem::path label, disparity, camera;
    std::vector<std::filesystem::path> frames;  // frame-19 .. frame, in order
  };
  const Sample& sample(int64_t i) const;

  // depth = baseline * fx / ((p - 1) / 256) of the disparity PNG, 0 where p <= 1; and the
  // label file mapped to train ids or categories. Both at the stored size, [1, H, W] / [H, W].
  static Tensor read_depth_from_disparity(const std::string& disparity_png, const std::string& camera_json);
  static Tensor read_labels(const std::string& label_ids_png, int64_t num_classes);

 private:
  std::string split_dir_;
  CityscapesOptions options_;
  int64_t stored_height_ = 0, stored_width_ = 0;  // as the files are
  int64_t height_ = 0, width_ = 0;                // as load_clip returns them
  std::vector<Sample> samples_;
};

}  // namespace mila::data
