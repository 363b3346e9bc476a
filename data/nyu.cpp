// nyu.cpp - scanning, validating and reading the NYUv2-video layout (see nyu.h).
#include "data/nyu.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "data/image_io.h"

namespace mila::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kWho = "NyuVideoDataset";  // names the dataset in every message

[[noreturn]] void fail(const std::string& msg) { throw DatasetError(std::string(kWho) + ": " + msg); }

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(uint8_t(c)));
  return s;
}

struct Numbered {
  int64_t number;
  fs::path path;
};

// The frame files of one folder, in number order. Hidden files and files that are not
// images are ignored; an image whose name is not a number, a JPEG where only PNG is allowed,
// or two files with one number are errors.
std::vector<Numbered> scan_frames(const fs::path& dir, bool allow_jpeg) {
  std::vector<Numbered> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || !e.is_regular_file()) continue;
    const std::string ext = lower(e.path().extension().string());
    const bool jpeg = ext == ".jpg" || ext == ".jpeg", png = ext == ".png";
    if (!jpeg && !png) continue;
    if (jpeg && !allow_jpeg) fail(e.path().string() + ": annotations must be PNG (JPEG compression would corrupt the values)");
    const std::string stem = e.path().stem().string();
    const bool numeric = !stem.empty() && stem.size() <= 18 && std::all_of(stem.begin(), stem.end(), [](char c) { return std::isdigit(uint8_t(c)); });
    if (!numeric) fail(e.path().string() + ": file name is not a frame number (expected NNNNNN" + ext + ")");
    out.push_back({std::stoll(stem), e.path()});
  }
  std::sort(out.begin(), out.end(), [](const Numbered& a, const Numbered& b) { return a.number < b.number; });
  for (size_t i = 1; i < out.size(); ++i)
    if (out[i].number == out[i - 1].number)
      fail("two files for frame " + std::to_string(out[i].number) + ": " + out[i - 1].path.string() + " and " + out[i].path.string());
  return out;
}

}  // namespace

NyuVideoDataset::NyuVideoDataset(const std::string& root, const std::string& split, int64_t num_classes)
    : num_classes_(num_classes) {
  if (num_classes < 1 || num_classes > 255) fail("num_classes = " + std::to_string(num_classes) + " must be in [1, 255]");
  if (!fs::is_directory(root)) fail("dataset folder " + root + " does not exist");
  const fs::path split_dir = fs::path(root) / split;
  split_dir_ = split_dir.string();
  if (!fs::is_directory(split_dir)) fail("missing split folder " + split_dir_ + " (expected " + root + "/{train,val}/<sequence>/rgb/)");

  std::vector<fs::path> dirs;
  for (const fs::directory_entry& e : fs::directory_iterator(split_dir)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && e.is_directory()) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) fail("split folder " + split_dir_ + " is empty: no sequence folders (expected " + split_dir_ + "/<sequence>/rgb/NNNNNN.png)");

  std::string size_source;
  for (const fs::path& dir : dirs) {
    NyuSequence seq;
    seq.name = dir.filename().string();
    seq.dir = dir;
    if (!fs::is_directory(dir / "rgb")) fail("missing folder " + (dir / "rgb").string());
    for (const Numbered& f : scan_frames(dir / "rgb", true)) {
      seq.numbers.push_back(f.number);
      seq.rgb.push_back(f.path);
    }
    if (seq.numbers.empty()) fail("no frames in " + (dir / "rgb").string());

    // Annotations: label/, depth/ and normal/ together, or none of them.
    const char* subs[3] = {"label", "depth", "normal"};
    int present = 0;
    for (const char* s : subs) present += fs::is_directory(dir / s);
    if (present != 0 && present != 3) {
      for (const char* s : subs)
        if (!fs::is_directory(dir / s)) fail("missing folder " + (dir / s).string() + " (the sequence has other annotation folders)");
    }
    if (present == 3) {
      std::map<int64_t, fs::path> files[3];
      std::set<int64_t> all;
      for (int k = 0; k < 3; ++k)
        for (const Numbered& f : scan_frames(dir / subs[k], false)) files[k][f.number] = f.path, all.insert(f.number);
      for (int64_t number : all) {
        fs::path have;  // one file the frame has, label/ preferred, to name in messages
        for (int k = 2; k >= 0; --k)
          if (files[k].count(number)) have = files[k][number];
        for (int k = 0; k < 3; ++k)
          if (!files[k].count(number))
            fail("missing " + (dir / subs[k] / have.filename()).string() + " (the annotated frame has " + have.string() + ")");
        const auto it = std::lower_bound(seq.numbers.begin(), seq.numbers.end(), number);
        if (it == seq.numbers.end() || *it != number)
          fail("annotated frame " + have.string() + " has no rgb frame in " + (dir / "rgb").string());
        seq.annotated.push_back(int64_t(it - seq.numbers.begin()));
        seq.label.push_back(files[0][number]);
        seq.depth.push_back(files[1][number]);
        seq.normal.push_back(files[2][number]);
      }
    }

    // The split's image size comes from its first frame; every sequence's first frame must agree
    // (validate() checks all the others).
    const ImageInfo info = probe_image(seq.rgb.front().string());
    if (size_source.empty()) {
      width_ = info.width, height_ = info.height, size_source = seq.rgb.front().string();
    } else if (info.width != width_ || info.height != height_) {
      fail(seq.rgb.front().string() + " is " + size_str(info.width, info.height) + ", but the split's frames are " +
           size_str(width_, height_) + " (" + size_source + ")");
    }
    const int64_t s = int64_t(sequences_.size());
    for (size_t a = 0; a < seq.annotated.size(); ++a) samples_.push_back({s, int64_t(a), seq.annotated[a]});
    sequences_.push_back(std::move(seq));
  }
  if (samples_.empty())
    fail("split " + split_dir_ + " has no annotated frames (no sequence has files in label/, depth/ and normal/)");
}

int64_t NyuVideoDataset::num_frames() const {
  int64_t n = 0;
  for (const NyuSequence& s : sequences_) n += int64_t(s.numbers.size());
  return n;
}

NyuVideoDataset::SampleRef NyuVideoDataset::sample(int64_t i) const {
  if (i < 0 || i >= size()) fail("sample " + std::to_string(i) + " out of range [0, " + std::to_string(size()) + ")");
  return samples_[size_t(i)];
}

std::string NyuVideoDataset::sample_name(int64_t i) const {
  const SampleRef r = sample(i);
  const NyuSequence& s = sequences_[size_t(r.sequence)];
  return s.name + "/" + s.rgb[size_t(r.position)].stem().string();
}

void NyuVideoDataset::validate() const {
  ValidationReport report;
  for (const NyuSequence& seq : sequences_) {
    for (const fs::path& f : seq.rgb) report.check_image(f.string(), 3, 8, "rgb frame", height_, width_);
    for (size_t a = 0; a < seq.annotated.size(); ++a) {
      if (report.check_image(seq.label[a].string(), 1, 8, "label", height_, width_)) {
        try {
          const Tensor label = read_label(seq.label[a].string());
          const int64_t* p = label.data<int64_t>();
          for (int64_t i = 0; i < label.numel(); ++i)
            if (p[i] >= num_classes_ && p[i] != 255) {
              report.add(seq.label[a].string() + ": label value " + std::to_string(p[i]) + " at row " + std::to_string(i / width_) +
                         ", column " + std::to_string(i % width_) + " is not a class id (0.." + std::to_string(num_classes_ - 1) +
                         ") nor 255 (ignore)");
              break;
            }
        } catch (const std::exception& e) {
          report.add(e.what());
        }
      }
      report.check_image(seq.depth[a].string(), 1, 16, "depth", height_, width_);
      report.check_image(seq.normal[a].string(), 3, 8, "normal", height_, width_);
    }
  }
  report.throw_if_any(kWho, split_dir_);
}

ClipData NyuVideoDataset::load_clip(int64_t i, int64_t offset) const {
  const SampleRef ref = sample(i);
  const NyuSequence& seq = sequences_[size_t(ref.sequence)];
  const int64_t H = height_, W = width_, HW = H * W;

  ClipData clip;
  clip.frames = load_clip_frames(kWho, seq.rgb, ref.position, offset, H, W, H, W);

  const size_t a = size_t(ref.annotation);
  clip.seg = read_label(seq.label[a].string());
  check_frame_size(kWho, seq.label[a], clip.seg.size(0), clip.seg.size(1), H, W);
  const int64_t* lab = clip.seg.data<int64_t>();
  for (int64_t k = 0; k < HW; ++k)
    if (lab[k] >= num_classes_ && lab[k] != 255)
      fail(seq.label[a].string() + ": label value " + std::to_string(lab[k]) + " at row " + std::to_string(k / W) + ", column " +
           std::to_string(k % W) + " is not a class id (0.." + std::to_string(num_classes_ - 1) + ") nor 255 (ignore)");
  clip.depth = read_depth(seq.depth[a].string());
  check_frame_size(kWho, seq.depth[a], clip.depth.size(1), clip.depth.size(2), H, W);
  clip.normal = read_normal(seq.normal[a].string());
  check_frame_size(kWho, seq.normal[a], clip.normal.size(1), clip.normal.size(2), H, W);
  return clip;
}

}  // namespace mila::data
