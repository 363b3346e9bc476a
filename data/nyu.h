// nyu.h - the NYUv2-video dataset on disk (SPEC 5) and its clips (SPEC 4.3, 4.4).
//
//   ROOT/<split>/<sequence>/rgb/NNNNNN.{png,jpg}   every frame of the sequence
//   ROOT/<split>/<sequence>/label/NNNNNN.png       annotated frames: 8-bit class ids, 255 ignore
//   ROOT/<split>/<sequence>/depth/NNNNNN.png       16-bit millimetres, 0 invalid
//   ROOT/<split>/<sequence>/normal/NNNNNN.png      8-bit RGB, n = v / 127.5 - 1, (0,0,0) invalid
//
// Sequences are taken in name order, frames in number order (the numbers need not be
// contiguous: "the frame before" is the previous file in number order). A frame is annotated
// when label/, depth/ and normal/ all hold its number; a number in one of them but not in
// another, or without an rgb frame, is an error. A sample is one annotated frame; samples are
// numbered in (sequence, frame) order.
//
// Errors. The constructor scans the folders (names only, plus the header of each
// sequence's first frame) and throws DatasetError for a missing split or rgb/ folder, a split
// without annotated frames, badly named files and frames of another size than the split's.
// validate() then checks every file's header without decoding the pixels (channels, bit
// depth, size; an 8-bit depth PNG is refused) and decodes the labels to check their range;
// train_nyu calls it before training. PNGs are read whole and their chunk CRCs checked, so
// truncated or corrupted PNGs are found here too; a damaged JPEG may only show when its clip
// is loaded, which checks the decoded pixels again. Every message names the file.
//
// Thread safety: as every VideoDataset (video_dataset.h), immutable after construction.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/synthetic.h"
#include "data/video_dataset.h"

namespace mila::data {

struct NyuSequence {
  std::string name;
  std::filesystem::path dir;
  std::vector<int64_t> numbers;               // frame numbers, ascending
  std::vector<std::filesystem::path> rgb;     // rgb file of each frame
  std::vector<int64_t> annotated;             // positions (indices into numbers) of annotated frames
  std::vector<std::filesystem::path> label, depth, normal;  // files of each annotated frame
};

class NyuVideoDataset : public VideoDataset {
 public:
  // root: the folder holding train/ and val/; split: "train", "val" or any sub-folder name.
  NyuVideoDataset(const std::string& root, const std::string& split, int64_t num_classes = kNyuClasses);

  int64_t size() const override { return int64_t(samples_.size()); }  // number of annotated frames
  int64_t height() const override { return height_; }
  int64_t width() const override { return width_; }
  int64_t num_classes() const override { return num_classes_; }
  int64_t num_frames() const;  // rgb frames over all sequences
  const std::string& split_dir() const override { return split_dir_; }
  const std::vector<NyuSequence>& sequences() const { return sequences_; }

  struct SampleRef {
    int64_t sequence = 0;    // index into sequences()
    int64_t annotation = 0;  // index into that sequence's annotated, label, depth, normal
    int64_t position = 0;    // the annotated frame's position: its rgb file is rgb[position]
  };
  SampleRef sample(int64_t i) const;
  std::string sample_name(int64_t i) const override;  // "<sequence>/<frame number>"

  // Checks every file's structure and header (check_image_file: no pixel decoding) and the
  // labels' values; throws one DatasetError listing the first problems found (each naming
  // its file) and how many there were.
  void validate() const override;

  // The clip of sample i with offset o (video_dataset.h, SPEC 4.4).
  ClipData load_clip(int64_t i, int64_t offset) const override;

 private:
  std::string split_dir_;
  int64_t num_classes_;
  int64_t height_ = 0, width_ = 0;
  std::vector<NyuSequence> sequences_;
  std::vector<SampleRef> samples_;
};

}  // namespace mila::data
