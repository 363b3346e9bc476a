// cityscapes.cpp - scanning, validating and reading the official Cityscapes layout (see
// cityscapes.h).
#include "data/cityscapes.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>

#include "data/image_io.h"
#include "data/imagenet.h"
#include "ops/factory.h"

namespace mila::data {

namespace fs = std::filesystem;

// cityscapesScripts' labels.py, by label id: trainId, and category id - 1 (void: 255).
const uint8_t kCityscapesTrainId[34] = {
    255, 255, 255, 255, 255, 255, 255,  // 0-6 unlabeled, ego vehicle, rectification border, out of roi, static, dynamic, ground
    0,   1,   255, 255,                 // 7-10 road, sidewalk, parking, rail track
    2,   3,   4,   255, 255, 255,       // 11-16 building, wall, fence, guard rail, bridge, tunnel
    5,   255, 6,   7,                   // 17-20 pole, polegroup, traffic light, traffic sign
    8,   9,                             // 21-22 vegetation, terrain
    10,                                 // 23 sky
    11,  12,                            // 24-25 person, rider
    13,  14,  15,  255, 255, 16,  17, 18};  // 26-33 car, truck, bus, caravan, trailer, train, motorcycle, bicycle
const uint8_t kCityscapesCategory[34] = {
    255, 255, 255, 255, 255, 255, 255,  // void
    0,   0,   0,   0,                   // flat
    1,   1,   1,   1,   1,   1,         // construction
    2,   2,   2,   2,                   // object
    3,   3,                             // nature
    4,                                  // sky
    5,   5,                             // human
    6,   6,   6,   6,   6,   6,   6, 6};  // vehicle

namespace {

constexpr const char* kWho = "CityscapesDataset";  // names the dataset in every message

[[noreturn]] void fail(const std::string& msg) { throw DatasetError(std::string(kWho) + ": " + msg); }

std::string frame_str(int64_t n) {
  std::string s = std::to_string(n);
  return std::string(s.size() < 6 ? 6 - s.size() : 0, '0') + s;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 12 && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(uint8_t(c)); });
}

// PyTorch's "nearest" resize of an [C, H, W] tensor of any dtype: source index floor(i * in / out).
Tensor resize_nearest(const Tensor& t, int64_t height, int64_t width) {
  const int64_t C = t.size(0), H = t.size(1), W = t.size(2);
  if (H == height && W == width) return t;
  std::vector<int64_t> rows(static_cast<size_t>(height)), cols(static_cast<size_t>(width));
  for (int64_t y = 0; y < height; ++y) rows[size_t(y)] = std::min<int64_t>(int64_t(std::floor(double(y) * double(H) / double(height))), H - 1);
  for (int64_t x = 0; x < width; ++x) cols[size_t(x)] = std::min<int64_t>(int64_t(std::floor(double(x) * double(W) / double(width))), W - 1);
  const Tensor src = t.contiguous();
  Tensor out = Tensor::allocate({C, height, width}, t.dtype(), Device::cpu());
  const int64_t elem = int64_t(dtype_size(t.dtype()));
  const auto* in = static_cast<const uint8_t*>(src.raw_data());
  auto* o = static_cast<uint8_t*>(out.raw_data());
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        std::copy_n(in + ((c * H + rows[size_t(y)]) * W + cols[size_t(x)]) * elem, elem, o + ((c * height + y) * width + x) * elem);
  return out;
}

struct Camera {
  double baseline = 0, fx = 0;
};

Camera read_camera(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("cannot open camera file " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    fail(path + ": not valid JSON (" + e.what() + ")");
  }
  Camera c;
  try {
    c.baseline = j.at("extrinsic").at("baseline").get<double>();
    c.fx = j.at("intrinsic").at("fx").get<double>();
  } catch (const std::exception& e) {
    fail(path + ": expected numbers extrinsic.baseline and intrinsic.fx (" + e.what() + ")");
  }
  if (!(c.baseline > 0) || !(c.fx > 0) || !std::isfinite(c.baseline) || !std::isfinite(c.fx))
    fail(path + ": baseline " + std::to_string(c.baseline) + " and fx " + std::to_string(c.fx) + " must be positive");
  return c;
}

}  // namespace

Tensor CityscapesDataset::read_labels(const std::string& path, int64_t num_classes) {
  if (num_classes != 19 && num_classes != 7) fail("num_classes must be 19 (train ids) or 7 (categories), got " + std::to_string(num_classes));
  const uint8_t* table = num_classes == 19 ? kCityscapesTrainId : kCityscapesCategory;
  Tensor label = read_label(path);  // int64 [H, W]
  int64_t* p = label.data<int64_t>();
  const int64_t W = label.size(1);
  for (int64_t i = 0; i < label.numel(); ++i) {
    if (p[i] > 33)
      fail(path + ": value " + std::to_string(p[i]) + " at row " + std::to_string(i / W) + ", column " + std::to_string(i % W) +
           " is not a Cityscapes label id (0..33; is this a labelTrainIds file?)");
    p[i] = table[p[i]];
  }
  return label;
}

Tensor CityscapesDataset::read_depth_from_disparity(const std::string& disparity_png, const std::string& camera_json) {
  const Camera cam = read_camera(camera_json);
  int64_t W = 0, H = 0;
  const std::vector<uint16_t> p = read_png16(disparity_png, W, H);  // throws ImageError naming the file
  Tensor depth = Tensor::allocate({1, H, W}, DType::Float32, Device::cpu());
  float* d = depth.data<float>();
  const double focal_baseline = cam.baseline * cam.fx;
  for (int64_t i = 0; i < H * W; ++i) d[i] = p[size_t(i)] > 1 ? float(focal_baseline * 256.0 / (double(p[size_t(i)]) - 1.0)) : 0.0f;
  return depth;
}

CityscapesDataset::CityscapesDataset(const std::string& root, const std::string& split, CityscapesOptions options)
    : options_(options) {
  if (options_.num_classes != 19 && options_.num_classes != 7)
    fail("num_classes must be 19 (train ids) or 7 (categories), got " + std::to_string(options_.num_classes));
  if ((options_.height > 0) != (options_.width > 0) || options_.height < 0 || options_.width < 0)
    fail("height and width must both be positive or both 0 (as stored), got " + size_str(options_.width, options_.height));
  const fs::path base(root);
  if (!fs::is_directory(base)) fail("dataset root " + root + " does not exist");
  const fs::path gt = base / "gtFine" / split;
  split_dir_ = gt.string();
  for (const char* sub : {"gtFine", "leftImg8bit_sequence", "disparity", "camera"})
    if (!fs::is_directory(base / sub / split)) fail("missing folder " + (base / sub / split).string() + " (the official layout: " +
                                                    "gtFine/, leftImg8bit_sequence/, disparity/, camera/, each with <split>/<city>/)");

  std::vector<fs::path> cities;
  for (const fs::directory_entry& e : fs::directory_iterator(gt))
    if (e.is_directory() && e.path().filename().string()[0] != '.') cities.push_back(e.path());
  std::sort(cities.begin(), cities.end());
  const std::string suffix = "_gtFine_labelIds.png";
  for (const fs::path& city_dir : cities) {
    const std::string city = city_dir.filename().string();
    std::vector<Sample> found;
    for (const fs::directory_entry& e : fs::directory_iterator(city_dir)) {
      const std::string name = e.path().filename().string();
      if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
      // <city>_<seq>_<frame>_gtFine_labelIds.png; city names have no '_'.
      const std::string stem = name.substr(0, name.size() - suffix.size());
      const size_t b = stem.rfind('_'), a = b == std::string::npos ? b : stem.rfind('_', b - 1);
      if (a == std::string::npos || stem.substr(0, a) != city || !all_digits(stem.substr(a + 1, b - a - 1)) || !all_digits(stem.substr(b + 1)))
        fail(e.path().string() + ": expected " + city + "_<sequence>_<frame>" + suffix);
      Sample s;
      s.city = city;
      s.sequence = stem.substr(a + 1, b - a - 1);
      s.frame = std::stoll(stem.substr(b + 1));
      if (s.frame < kFramesBefore)
        fail(e.path().string() + ": frame " + std::to_string(s.frame) + " cannot be the 20th of its snippet (it needs 19 frames before it)");
      s.label = e.path();
      s.disparity = base / "disparity" / split / city / (stem + "_disparity.png");
      s.camera = base / "camera" / split / city / (stem + "_camera.json");
      for (const fs::path& p : {s.disparity, s.camera})
        if (!fs::is_regular_file(p)) fail("missing " + p.string() + " (the annotated frame has " + s.label.string() + ")");
      const fs::path seq_dir = base / "leftImg8bit_sequence" / split / city;
      for (int64_t f = s.frame - kFramesBefore; f <= s.frame; ++f) {
        const fs::path p = seq_dir / (city + "_" + s.sequence + "_" + frame_str(f) + "_leftImg8bit.png");
        if (!fs::is_regular_file(p))
          fail("missing " + p.string() + ": frame " + std::to_string(f - s.frame + kFramesBefore + 1) + " of the snippet of " +
               s.label.string() + " (leftImg8bit_sequence must hold the 19 frames before each annotated one)");
        s.frames.push_back(p);
      }
      found.push_back(std::move(s));
    }
    std::sort(found.begin(), found.end(), [](const Sample& x, const Sample& y) {
      return std::make_pair(x.sequence, x.frame) < std::make_pair(y.sequence, y.frame);
    });
    for (Sample& s : found) samples_.push_back(std::move(s));
  }
  if (samples_.empty()) fail("no annotated frames (*" + suffix + ") in " + split_dir_);

  const ImageInfo info = probe_image(samples_.front().frames.back().string());
  stored_height_ = info.height, stored_width_ = info.width;
  height_ = options_.height > 0 ? options_.height : stored_height_;
  width_ = options_.width > 0 ? options_.width : stored_width_;
}

const CityscapesDataset::Sample& CityscapesDataset::sample(int64_t i) const {
  if (i < 0 || i >= size()) fail("sample " + std::to_string(i) + " out of range [0, " + std::to_string(size()) + ")");
  return samples_[size_t(i)];
}

std::string CityscapesDataset::sample_name(int64_t i) const {
  const Sample& s = sample(i);
  return s.city + "_" + s.sequence + "_" + frame_str(s.frame);
}

void CityscapesDataset::validate() const {
  ValidationReport report;
  const int64_t H = stored_height_, W = stored_width_;
  for (const Sample& s : samples_) {
    for (const fs::path& f : s.frames) report.check_image(f.string(), 3, 8, "frame", H, W);
    if (report.check_image(s.label.string(), 1, 8, "labelIds", H, W)) try {
        read_labels(s.label.string(), options_.num_classes);
      } catch (const std::exception& e) {
        report.add(e.what());
      }
    report.check_image(s.disparity.string(), 1, 16, "disparity", H, W);
    try {
      read_camera(s.camera.string());
    } catch (const std::exception& e) {
      report.add(e.what());
    }
  }
  report.throw_if_any(kWho, split_dir_);
}

ClipData CityscapesDataset::load_clip(int64_t i, int64_t offset) const {
  const Sample& s = sample(i);
  const int64_t H = height_, W = width_;

  ClipData clip;
  clip.frames = load_clip_frames(kWho, s.frames, kFramesBefore, offset, stored_height_, stored_width_, H, W);

  const Tensor label = read_labels(s.label.string(), options_.num_classes);
  check_frame_size(kWho, s.label, label.size(0), label.size(1), stored_height_, stored_width_);
  clip.seg = resize_nearest(label.unsqueeze(0), H, W).squeeze(0).contiguous();
  const Tensor depth = read_depth_from_disparity(s.disparity.string(), s.camera.string());
  check_frame_size(kWho, s.disparity, depth.size(1), depth.size(2), stored_height_, stored_width_);
  clip.depth = resize_nearest(depth, H, W).contiguous();
  clip.normal = zeros({3, H, W});  // not annotated: invalid everywhere
  return clip;
}

}  // namespace mila::data
