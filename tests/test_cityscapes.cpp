// test_cityscapes.cpp - the Cityscapes loader (data/cityscapes.h) on a tiny tree in the
// official layout that the test writes: scanning, clips from the snippet's frames, label ids
// to train ids and categories, depth from disparity and the camera, resizing on load, the
// loader's batches, and every kind of bad tree.
#include "data/cityscapes.h"
#include "data/image_io.h"
#include "data/imagenet.h"
#include "data/loader.h"
#include "tests/cityscapes_tree.h"
#include "test_util.h"

using namespace mila;
using namespace mila::data;
using mila::test::check_throws_with;
using mila::test::TempDir;
namespace fs = std::filesystem;
namespace cs = mila::test::cityscapes;
using cs::write_text;

namespace {

constexpr int64_t kH = 8, kW = 12;

Tensor frame_image(int64_t f) { return cs::frame_image(f, kH, kW); }
Tensor label_ids() { return cs::label_ids(kH, kW); }
void write_sample(const fs::path& root, const std::string& split, const std::string& city, const std::string& seq, int64_t frame) {
  cs::write_sample(root, split, city, seq, frame, kH, kW);
}

// Two cities (written in reverse name order), three annotated frames.
void write_tree(const fs::path& root) {
  write_sample(root, "val", "zurich", "000003", 19);
  write_sample(root, "val", "aachen", "000001", 119);
  write_sample(root, "val", "aachen", "000000", 40);
}

}  // namespace

TEST_CASE("cityscapes: label ids to train ids and categories (cityscapesScripts' labels.py)") {
  // Spot checks against the official table.
  CHECK(kCityscapesTrainId[7] == 0);     // road
  CHECK(kCityscapesTrainId[9] == 255);   // parking: ignored in the 19 classes
  CHECK(kCityscapesTrainId[11] == 2);    // building
  CHECK(kCityscapesTrainId[23] == 10);   // sky
  CHECK(kCityscapesTrainId[26] == 13);   // car
  CHECK(kCityscapesTrainId[33] == 18);   // bicycle
  CHECK(kCityscapesCategory[9] == 0);    // parking is flat
  CHECK(kCityscapesCategory[16] == 1);   // tunnel: construction
  CHECK(kCityscapesCategory[23] == 4);   // sky
  CHECK(kCityscapesCategory[25] == 5);   // rider: human
  CHECK(kCityscapesCategory[29] == 6);   // caravan: vehicle
  for (int id = 0; id <= 6; ++id) CHECK(kCityscapesCategory[id] == 255);  // void
  // Each of the 19 train ids comes from exactly one label id; each category from at least one.
  std::vector<int> train_hits(19, 0), category_hits(7, 0);
  for (int id = 0; id < 34; ++id) {
    if (kCityscapesTrainId[id] != 255) ++train_hits[kCityscapesTrainId[id]];
    if (kCityscapesCategory[id] != 255) ++category_hits[kCityscapesCategory[id]];
  }
  for (int h : train_hits) CHECK(h == 1);
  for (int h : category_hits) CHECK(h >= 1);
}

TEST_CASE("cityscapes: the official layout as clips") {
  TempDir dir("cityscapes");
  write_tree(dir.path);
  const CityscapesDataset ds(dir.path.string(), "val");
  REQUIRE(ds.size() == 3);
  CHECK(ds.sample_name(0) == "aachen_000000_000040");  // cities, then sequences, in name order
  CHECK(ds.sample_name(1) == "aachen_000001_000119");
  CHECK(ds.sample_name(2) == "zurich_000003_000019");
  CHECK(ds.height() == kH);
  CHECK(ds.width() == kW);
  CHECK(ds.num_classes() == 19);
  CHECK_NOTHROW(ds.validate());

  SUBCASE("frames: the annotated one last, the snippet's first before its start") {
    const ClipData c = ds.load_clip(1, 3);  // frames 116..119
    REQUIRE(c.frames.shape() == Shape{4, 3, kH, kW});
    for (int64_t t = 0; t < 4; ++t) CHECK(test::at(c.frames, t * 3 * kH * kW) == doctest::Approx((116 + t) % 256 / 255.0));
    const ClipData far = ds.load_clip(2, 25);  // 26 frames; the first 7 are the snippet's first (frame 0)
    REQUIRE(far.frames.size(0) == 26);
    for (int64_t t = 0; t < 26; ++t) {
      const int64_t f = std::max<int64_t>(t - 6, 0);
      CHECK(test::at(far.frames, t * 3 * kH * kW + kH * kW) == doctest::Approx(double(7 * f % 256) / 255.0));
    }
    // clip() is load_clip normalized as SPEC 1 says.
    const ClipData n = ds.clip(1, 0);
    CHECK(test::at(n.frames, 0) == doctest::Approx((119 / 255.0 - kImageMean[0]) / kImageStd[0]).epsilon(1e-5));
    check_throws_with([&] { ds.load_clip(3, 0); }, {"CityscapesDataset", "sample 3"});
    check_throws_with([&] { ds.load_clip(0, -1); }, {"CityscapesDataset", "negative"});
  }
  SUBCASE("labels, depth and normals of the annotated frame") {
    const ClipData c = ds.load_clip(0, 0);
    REQUIRE(c.seg.shape() == Shape{kH, kW});
    for (int64_t i = 0; i < kH * kW; ++i) CHECK(test::at(c.seg, i) == kCityscapesTrainId[i % 34]);
    const CityscapesDataset coarse(dir.path.string(), "val", {7, 0, 0});
    const ClipData k = coarse.load_clip(0, 0);
    for (int64_t i = 0; i < kH * kW; ++i) CHECK(test::at(k.seg, i) == kCityscapesCategory[i % 34]);
    // depth = baseline * fx / ((p - 1) / 256) = 0.2 * 2000 * 256 / (p - 1): 400, 200, 4 m.
    const double expected[5] = {0, 0, 400, 200, 4};
    REQUIRE(c.depth.shape() == Shape{1, kH, kW});
    for (int64_t i = 0; i < kH * kW; ++i) CHECK(test::at(c.depth, i) == doctest::Approx(expected[i % 5]).epsilon(1e-6));
    REQUIRE(c.normal.shape() == Shape{3, kH, kW});
    CHECK(test::values(c.normal) == std::vector<double>(size_t(3 * kH * kW), 0.0));
  }
  SUBCASE("resized on load: RGB antialiased bilinear, labels and depth nearest") {
    const CityscapesDataset small(dir.path.string(), "val", {19, 4, 6});
    CHECK(small.height() == 4);
    CHECK(small.width() == 6);
    const ClipData c = small.load_clip(0, 1);
    REQUIRE(c.frames.shape() == Shape{2, 3, 4, 6});
    const Tensor want = resize_pil_bilinear(frame_image(40), 4, 6);
    for (int64_t k = 0; k < 3 * 4 * 6; ++k) CHECK(test::at(c.frames, 3 * 4 * 6 + k) == doctest::Approx(test::at(want, k) / 255.0));
    const double expected_depth[5] = {0, 0, 400, 200, 4};
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 6; ++x) {
        const int64_t src = (2 * y) * kW + 2 * x;  // floor(i * 8 / 4), floor(j * 12 / 6)
        CHECK(test::at(c.seg, y * 6 + x) == kCityscapesTrainId[src % 34]);
        CHECK(test::at(c.depth, y * 6 + x) == doctest::Approx(expected_depth[src % 5]));
      }
  }
  SUBCASE("the loader's batches, as for NYUv2") {
    const std::vector<BatchPlan> plans = eval_plans(ds.size(), 2, 3);
    const Batch b = make_batch(ds, plans.back(), nullptr, 0);
    CHECK(b.frames.size(2) == 3);
    CHECK(b.frames.size(3) == kH);
    CHECK(b.depth.shape() == Shape{int64_t(b.samples.size()), 1, kH, kW});
    CHECK(b.normal.shape() == Shape{int64_t(b.samples.size()), 3, kH, kW});
  }
}

TEST_CASE("cityscapes: bad trees and files name the file") {
  TempDir dir("cityscapes_bad");
  const fs::path root = dir.path;
  check_throws_with([&] { CityscapesDataset(root.string() + "/nothing", "val"); }, {"nothing", "does not exist"});
  write_tree(root);
  const std::string r = root.string();
  check_throws_with([&] { CityscapesDataset(r, "train"); }, {(root / "gtFine" / "train").string(), "missing folder"});
  check_throws_with([&] { CityscapesDataset(r, "val", {5, 0, 0}); }, {"CityscapesDataset", "19", "7", "5"});
  check_throws_with([&] { CityscapesDataset(r, "val", {19, 4, 0}); }, {"CityscapesDataset", "height and width"});

  const fs::path city = root / "gtFine" / "val" / "aachen";
  SUBCASE("a frame of the snippet is missing") {
    const fs::path gone = root / "leftImg8bit_sequence" / "val" / "aachen" / "aachen_000001_000105_leftImg8bit.png";
    fs::remove(gone);
    check_throws_with([&] { CityscapesDataset(r, "val"); }, {gone.string(), "missing", "frame 6 of the snippet"});
  }
  SUBCASE("disparity or camera file missing") {
    const fs::path gone = root / "disparity" / "val" / "aachen" / "aachen_000000_000040_disparity.png";
    fs::remove(gone);
    check_throws_with([&] { CityscapesDataset(r, "val"); }, {gone.string(), "missing"});
  }
  SUBCASE("badly named label file, and an annotated frame too early in its sequence") {
    write_label_png((city / "aachen_x_000040_gtFine_labelIds.png").string(), label_ids());
    check_throws_with([&] { CityscapesDataset(r, "val"); }, {"aachen_x_000040_gtFine_labelIds.png", "expected"});
    fs::remove(city / "aachen_x_000040_gtFine_labelIds.png");
    write_label_png((city / "aachen_000009_000005_gtFine_labelIds.png").string(), label_ids());
    check_throws_with([&] { CityscapesDataset(r, "val"); }, {"aachen_000009_000005", "20th"});
  }
  SUBCASE("a label value that is not an official id (a labelTrainIds file)") {
    Tensor bad = label_ids();
    bad.data<int64_t>()[kW + 3] = 255;
    const fs::path path = city / "aachen_000000_000040_gtFine_labelIds.png";
    write_label_png(path.string(), bad);
    const CityscapesDataset ds(r, "val");
    check_throws_with([&] { ds.validate(); }, {path.string(), "255", "row 1, column 3", "labelTrainIds"});
    check_throws_with([&] { ds.load_clip(0, 0); }, {path.string(), "255"});
  }
  SUBCASE("camera files: bad JSON, missing fields, a zero baseline") {
    const fs::path cam = root / "camera" / "val" / "aachen" / "aachen_000000_000040_camera.json";
    const CityscapesDataset ds(r, "val");
    write_text(cam, "{\"extrinsic\": ");
    check_throws_with([&] { ds.load_clip(0, 0); }, {cam.string(), "JSON"});
    check_throws_with([&] { ds.validate(); }, {cam.string(), "JSON"});
    write_text(cam, R"({"extrinsic": {"baseline": 0.2}, "intrinsic": {}})");
    check_throws_with([&] { ds.load_clip(0, 0); }, {cam.string(), "intrinsic.fx"});
    write_text(cam, R"({"extrinsic": {"baseline": 0}, "intrinsic": {"fx": 2000}})");
    check_throws_with([&] { ds.load_clip(0, 0); }, {cam.string(), "positive"});
  }
  SUBCASE("an 8-bit disparity, a frame of another size, a truncated frame") {
    const fs::path disp = root / "disparity" / "val" / "aachen" / "aachen_000000_000040_disparity.png";
    write_label_png(disp.string(), label_ids());
    const fs::path other = root / "leftImg8bit_sequence" / "val" / "zurich" / "zurich_000003_000010_leftImg8bit.png";
    write_rgb_png(other.string(), zeros({3, 5, 5}, {DType::UInt8}));
    const fs::path cut = root / "leftImg8bit_sequence" / "val" / "aachen" / "aachen_000001_000110_leftImg8bit.png";
    fs::resize_file(cut, fs::file_size(cut) / 2);
    const CityscapesDataset ds(r, "val");
    check_throws_with([&] { ds.validate(); }, {"3 problems", disp.string(), "8-bit", other.string(), "5x5", cut.string()});
    check_throws_with([&] { ds.load_clip(0, 0); }, {disp.string()});
    check_throws_with([&] { ds.load_clip(2, 9); }, {other.string(), "5x5"});
  }
}
