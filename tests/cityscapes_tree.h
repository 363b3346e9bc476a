// cityscapes_tree.h - writes tiny Cityscapes trees in the official layout for the tests
// (test_cityscapes.cpp, test_trainer.cpp): frames whose colour says which file they are,
// every label id, known disparities and a camera file, plus files the loader must ignore.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/image_io.h"
#include "tensor/tensor.h"

namespace mila::test::cityscapes {

inline std::string num6(int64_t n) {
  std::string s = std::to_string(n);
  return std::string(6 - s.size(), '0') + s;
}

// Frame f of a snippet: a different colour per frame (R = f % 256, G = 7 * f % 256, B a ramp
// along x), so a test can tell which file a clip frame came from.
inline Tensor frame_image(int64_t f, int64_t H, int64_t W) {
  Tensor t = Tensor::allocate({3, H, W}, DType::UInt8, Device::cpu());
  uint8_t* p = t.data<uint8_t>();
  for (int64_t i = 0; i < H * W; ++i) {
    p[i] = uint8_t(f % 256);
    p[H * W + i] = uint8_t(7 * f % 256);
    p[2 * H * W + i] = uint8_t((i % W) * 20 % 256);
  }
  return t;
}

// Label ids: pixel i holds id i % 34, so every official id appears.
inline Tensor label_ids(int64_t H, int64_t W) {
  Tensor t = Tensor::allocate({H, W}, DType::Int64, Device::cpu());
  for (int64_t i = 0; i < H * W; ++i) t.data<int64_t>()[i] = i % 34;
  return t;
}

// Disparity samples: p = 0, 1 (invalid), then 257 (d = 1), 513 (d = 2), 25601 (d = 100), ...
// With kCamera (baseline 0.2 m, fx 2000 px) the depths are 0, 0, 400, 200, 4 m.
inline std::vector<uint16_t> disparity_samples(int64_t H, int64_t W) {
  const uint16_t cycle[5] = {0, 1, 257, 513, 25601};
  std::vector<uint16_t> v(static_cast<size_t>(H * W));
  for (size_t i = 0; i < v.size(); ++i) v[i] = cycle[i % 5];
  return v;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

inline const char* kCamera =
    R"({"extrinsic": {"baseline": 0.2, "pitch": 0.05}, "intrinsic": {"fx": 2000.0, "fy": 2000.0, "u0": 6, "v0": 4}})";

// One annotated frame <city>_<seq>_<frame> with the 19 frames before it (and one after, which
// must be ignored), H x W.
inline void write_sample(const std::filesystem::path& root, const std::string& split, const std::string& city,
                         const std::string& seq, int64_t frame, int64_t H, int64_t W) {
  using mila::data::write_label_png;
  const std::string stem = city + "_" + seq + "_" + num6(frame);
  for (const char* sub : {"gtFine", "leftImg8bit_sequence", "disparity", "camera"})
    std::filesystem::create_directories(root / sub / split / city);
  for (int64_t f = frame - 19; f <= frame + 1; ++f)
    mila::data::write_rgb_png(
        (root / "leftImg8bit_sequence" / split / city / (city + "_" + seq + "_" + num6(f) + "_leftImg8bit.png")).string(),
        frame_image(f, H, W));
  write_label_png((root / "gtFine" / split / city / (stem + "_gtFine_labelIds.png")).string(), label_ids(H, W));
  // Files of the official download the loader does not read.
  write_label_png((root / "gtFine" / split / city / (stem + "_gtFine_instanceIds.png")).string(), label_ids(H, W));
  write_text(root / "gtFine" / split / city / (stem + "_gtFine_polygons.json"), "{}");
  const std::vector<uint16_t> d = disparity_samples(H, W);
  mila::data::write_png16((root / "disparity" / split / city / (stem + "_disparity.png")).string(), d.data(), W, H);
  write_text(root / "camera" / split / city / (stem + "_camera.json"), kCamera);
}

}  // namespace mila::test::cityscapes
