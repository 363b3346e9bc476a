// test_imagenet.cpp - examples/classify's input and output ends (data/imagenet.h):
// torchvision's ImageNet evaluation transform against Pillow's and torchvision's own results
// (tests/data/imagenet_reference.h, made by tools/gen_imagenet_reference.py), the sizes and
// offsets it computes, reading images as RGB, class names and top-k.
#include <cmath>
#include <numeric>

#include "data/image_io.h"
#include "data/imagenet.h"
#include "data/imagenet_classes.h"
#include "tests/data/imagenet_reference.h"
#include "test_util.h"

using namespace mila;
using namespace mila::data;
using mila::test::check_throws_with;
using mila::test::TempDir;

namespace {

// The generator's pattern(h, w): uint8 [3, h, w], a formula of (channel, row, column) with
// edges and gradients in both directions, so every filter tap matters.
Tensor pattern(int64_t h, int64_t w) {
  Tensor t = Tensor::allocate({3, h, w}, DType::UInt8, Device::cpu());
  uint8_t* p = t.data<uint8_t>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        p[(c * h + y) * w + x] = uint8_t((x * 37 + y * 101 + c * 53 + x * y * 7 + (x * x) % 11 * 13) % 256);
  return t;
}

template <size_t N>
void check_bytes_equal(const Tensor& actual, const uint8_t (&expected)[N]) {
  REQUIRE(actual.numel() == int64_t(N));
  const Tensor a = actual.contiguous();
  const uint8_t* p = a.data<uint8_t>();
  int64_t mismatches = 0;
  for (size_t i = 0; i < N; ++i) mismatches += p[i] != expected[i];
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("imagenet: Resize(256)'s output size and CenterCrop's offsets are torchvision's") {
  CHECK(resized_size(480, 640) == ImageSize{256, 341});  // int(256 * 640 / 480) = int(341.33)
  CHECK(resized_size(640, 480) == ImageSize{341, 256});
  CHECK(resized_size(300, 260) == ImageSize{295, 256});
  CHECK(resized_size(256, 420) == ImageSize{256, 420});  // already 256: unchanged
  CHECK(resized_size(100, 100) == ImageSize{256, 256});
  CHECK(resized_size(1, 1000) == ImageSize{256, 256000});
  CHECK(resized_size(3, 2, 5) == ImageSize{7, 5});  // int(5 * 3 / 2) = 7
  check_throws_with([] { resized_size(0, 5); }, {"resized_size", "0x5"});

  // int(round(d / 2.0)), Python's round: halves to the even neighbour.
  CHECK(center_crop_offset(256, 224) == 16);
  CHECK(center_crop_offset(341, 224) == 58);  // 58.5 -> 58
  CHECK(center_crop_offset(343, 224) == 60);  // 59.5 -> 60
  CHECK(center_crop_offset(225, 224) == 0);   // 0.5 -> 0
  CHECK(center_crop_offset(227, 224) == 2);   // 1.5 -> 2
  CHECK(center_crop_offset(224, 224) == 0);
  check_throws_with([] { center_crop_offset(200, 224); }, {"center_crop_offset", "224", "200"});

  const Tensor img = pattern(10, 12);
  const Tensor c = center_crop(img, 5, 7);  // offsets round(2.5) = 2, round(2.5) = 2
  CHECK(c.shape() == Shape{3, 5, 7});
  CHECK(test::at(c, 0) == test::at(img, 2 * 12 + 2));
  check_throws_with([&] { center_crop(img, 11, 3); }, {"center_crop", "11x3", "[3, 10, 12]"});
}

TEST_CASE("imagenet: the bilinear resize equals Pillow's, byte for byte") {
  namespace ref = imagenet_reference;
  const Tensor src = pattern(13, 17);
  check_bytes_equal(resize_pil_bilinear(src, 7, 5), ref::kResize13x17To7x5);      // shrink both
  check_bytes_equal(resize_pil_bilinear(src, 29, 31), ref::kResize13x17To29x31);  // enlarge both
  check_bytes_equal(resize_pil_bilinear(src, 13, 40), ref::kResize13x17To13x40);  // one axis only
  check_bytes_equal(resize_pil_bilinear(src, 20, 6), ref::kResize13x17To20x6);    // one of each
  check_bytes_equal(resize_pil_bilinear(src, 2, 3), ref::kResize13x17To2x3);      // wide filters
  check_bytes_equal(resize_pil_bilinear(src, 1, 1), ref::kResize13x17To1x1);      // the mean, nearly

  SUBCASE("any strides; the same size is an exact copy, not an alias") {
    const Tensor t = src.transpose(1, 2).contiguous().transpose(1, 2);  // [3, 13, 17], column-major
    REQUIRE(!t.is_contiguous());
    check_bytes_equal(resize_pil_bilinear(t, 29, 31), ref::kResize13x17To29x31);
    const Tensor same = resize_pil_bilinear(src, 13, 17);
    CHECK(test::values(same) == test::values(src));
    CHECK(same.data<uint8_t>() != src.data<uint8_t>());
  }
  SUBCASE("the taps: non-negative 22-bit weights summing to 2^22 within rounding") {
    for (auto [in, out] : {std::pair<int64_t, int64_t>{17, 5}, {13, 29}, {640, 256}, {5, 1}}) {
      const ResampleTaps taps = pil_bilinear_taps(in, out);
      for (int64_t i = 0; i < out; ++i) {
        int64_t sum = 0;
        for (int64_t j = 0; j < taps.count[size_t(i)]; ++j) {
          CHECK(taps.weights[size_t(i * taps.max_taps + j)] >= 0);
          sum += taps.weights[size_t(i * taps.max_taps + j)];
        }
        CHECK(std::abs(sum - (int64_t(1) << 22)) <= taps.count[size_t(i)]);
        CHECK(taps.first[size_t(i)] >= 0);
        CHECK(taps.first[size_t(i)] + taps.count[size_t(i)] <= in);
      }
    }
  }
  check_throws_with([&] { resize_pil_bilinear(src, 0, 4); }, {"resize_pil_bilinear", "0x4"});
  check_throws_with([&] { resize_pil_bilinear(src.to(DType::Float32), 4, 4); }, {"resize_pil_bilinear", "uint8", "float32"});
}

TEST_CASE("imagenet: the whole evaluation transform equals torchvision's on Pillow") {
  namespace ref = imagenet_reference;
  auto check = [](int64_t h, int64_t w, const auto& sample, double sum) {
    CAPTURE(h);
    CAPTURE(w);
    const Tensor x = imagenet_preprocess(pattern(h, w));
    REQUIRE(x.shape() == Shape{1, 3, 224, 224});
    REQUIRE(x.dtype() == DType::Float32);
    const float* p = x.data<float>();
    size_t k = 0;
    float worst = 0;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 224; y += 37)
        for (int64_t xx = 0; xx < 224; xx += 23) worst = std::max(worst, std::abs(p[(c * 224 + y) * 224 + xx] - sample[k++]));
    CHECK(k == std::size(sample));
    CHECK(worst == 0.0f);  // the same uint8 pixels through the same float32 steps
    const double total = std::accumulate(p, p + x.numel(), 0.0, [](double a, float b) { return a + double(b); });
    CHECK(total == doctest::Approx(sum).epsilon(1e-12));
  };
  check(300, 260, ref::kPreprocess300x260, ref::kPreprocess300x260Sum);  // resized to 295 x 256
  check(256, 420, ref::kPreprocess256x420, ref::kPreprocess256x420Sum);  // shorter side already 256
  check(256, 256, ref::kPreprocess256x256, ref::kPreprocess256x256Sum);

  // Normalize by hand: (v / 255 - mean) / std in float32.
  const Tensor grey = full({3, 1, 1}, 128.0, {DType::UInt8});
  const Tensor n = imagenet_normalize(grey);
  for (int64_t c = 0; c < 3; ++c) CHECK(test::at(n, c) == doctest::Approx((128.0 / 255.0 - kImageMean[c]) / kImageStd[c]).epsilon(1e-6));
  check_throws_with([] { imagenet_preprocess(pattern(4, 4).narrow(0, 0, 2)); }, {"imagenet_preprocess", "[2, 4, 4]"});
}

TEST_CASE("imagenet: images read as RGB as Pillow's convert(\"RGB\") gives them") {
  TempDir dir("imagenet");
  const Tensor rgb = pattern(9, 11);
  write_rgb_png(dir / "rgb.png", rgb);
  CHECK(test::values(read_image_rgb(dir / "rgb.png")) == test::values(rgb));

  const Tensor label = pattern(9, 11).select(0, 1).to(DType::Int64);  // [9, 11], values < 256
  write_label_png(dir / "grey.png", label);
  const Tensor grey = read_image_rgb(dir / "grey.png");
  REQUIRE(grey.shape() == Shape{3, 9, 11});
  for (int64_t c = 0; c < 3; ++c) CHECK(test::values(grey.select(0, c)) == test::values(label));

  std::vector<uint16_t> deep(6, 1000);
  write_png16(dir / "deep.png", deep.data(), 3, 2);
  check_throws_with([&] { read_image_rgb(dir / "deep.png"); }, {"read_image_rgb", "deep.png", "16 bits"});
  check_throws_with([&] { read_image_rgb(dir / "missing.png"); }, {"missing.png"});
}

TEST_CASE("imagenet: class names and the top classes of logits") {
  CHECK(std::string(imagenet_class_name(0)) == "tench");
  CHECK(std::string(imagenet_class_name(281)) == "tabby");
  CHECK(std::string(imagenet_class_name(285)) == "Egyptian cat");
  CHECK(std::string(imagenet_class_name(999)) == "toilet tissue");
  for (int64_t i = 0; i < kImageNetClassCount; ++i) CHECK(std::string(kImageNetClasses[i]).size() > 0);
  CHECK_THROWS_AS(imagenet_class_name(1000), std::out_of_range);
  CHECK_THROWS_AS(imagenet_class_name(-1), std::out_of_range);

  // Logits 0, ln 2, ln 4, ln 4 (tie), 0: softmax 1/12, 2/12, 4/12, 4/12, 1/12.
  const Tensor logits = from_vector(std::vector<float>{0.0f, std::log(2.0f), std::log(4.0f), std::log(4.0f), 0.0f}, {1, 5});
  const auto top = top_k_classes(logits, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].index == 2);  // the tie goes to the lower index
  CHECK(top[1].index == 3);
  CHECK(top[2].index == 1);
  CHECK(top[0].probability == doctest::Approx(4.0 / 12).epsilon(1e-6));
  CHECK(top[2].probability == doctest::Approx(2.0 / 12).epsilon(1e-6));
  CHECK(top_k_classes(logits, 50).size() == 5);  // k clamped to N
  // Large logits do not overflow the softmax.
  const auto big = top_k_classes(from_vector(std::vector<float>{1000.0f, 999.0f}, {2}), 2);
  CHECK(big[0].probability == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
  check_throws_with([&] { top_k_classes(logits, 0); }, {"top_k_classes", "k"});
  check_throws_with([&] { top_k_classes(zeros({2, 5}), 1); }, {"top_k_classes", "[2, 5]"});
  check_throws_with([&] { top_k_classes(from_vector(std::vector<float>{1.0f, NAN}, {2}), 1); },
                    {"top_k_classes", "not finite"});
}
