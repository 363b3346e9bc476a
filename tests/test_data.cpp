// test_data.cpp - image files, the NYUv2-video dataset, clips, sampling, augmentation and the
// prefetching loader (data/). Every dataset here is a tiny tree written by the test itself
// under the system's temporary folder.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "data/augment.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/nyu.h"
#include "data/sampler.h"
#include "data/synthetic.h"
#include "test_util.h"

using namespace mila;
using mila::test::TempDir;
using namespace mila::data;
namespace fs = std::filesystem;

namespace {

Tensor random_u8(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randint(0, 256, shape, {DType::Int64}, &gen).to(DType::UInt8);
}

void write_text(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

void truncate_file(const std::string& path, double keep) {
  const auto size = fs::file_size(path);
  fs::resize_file(path, uintmax_t(double(size) * keep));
}

// A tiny synthetic set: 2 train sequences and 1 val sequence of 8 frames, 24x32, frames
// 2 and 5 annotated.
SyntheticConfig tiny_config() {
  SyntheticConfig c;
  c.height = 24, c.width = 32;
  c.train_sequences = 2, c.val_sequences = 1;
  c.frames_per_sequence = 8;
  c.annotate_first = 2, c.annotate_stride = 3;
  c.seed = 5;
  return c;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && test::values(a) == test::values(b);
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.index == b.index && a.offset == b.offset && a.samples == b.samples && same(a.frames, b.frames) && same(a.seg, b.seg) &&
         same(a.depth, b.depth) && same(a.normal, b.normal);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Image files
// ---------------------------------------------------------------------------------------------

TEST_CASE("image_io: round trips") {
  TempDir dir("io");
  SUBCASE("8-bit RGB PNG is exact; JPEG is close") {
    const Tensor rgb = random_u8({3, 5, 7}, 1);
    write_rgb_png(dir / "a.png", rgb);
    const Tensor back = read_rgb(dir / "a.png");
    CHECK(same(back, rgb));
    const ImageInfo info = probe_image(dir / "a.png");
    CHECK(info.width == 7);
    CHECK(info.height == 5);
    CHECK(info.channels == 3);
    CHECK(info.bits == 8);
    // A smooth image survives JPEG at quality 95 within a few levels.
    Tensor smooth = Tensor::allocate({3, 16, 24}, DType::UInt8, Device::cpu());
    for (int64_t i = 0; i < smooth.numel(); ++i) smooth.data<uint8_t>()[i] = uint8_t(40 + (i % 24) * 6 + (i / 384) * 20);
    write_rgb_jpeg(dir / "a.jpg", smooth, 95);
    const Tensor j = read_rgb(dir / "a.jpg");
    REQUIRE(j.shape() == smooth.shape());
    double err = 0;
    for (int64_t i = 0; i < j.numel(); ++i) err += std::abs(double(j.data<uint8_t>()[i]) - double(smooth.data<uint8_t>()[i]));
    CHECK(err / double(j.numel()) < 4.0);
  }
  SUBCASE("label PNG: class ids and 255 exactly") {
    Generator gen(2);
    Tensor label = randint(0, 13, {6, 9}, {DType::Int64}, &gen);
    label.data<int64_t>()[4] = 255;
    write_label_png(dir / "l.png", label);
    const Tensor back = read_label(dir / "l.png");
    CHECK(back.dtype() == DType::Int64);
    CHECK(same(back, label));
  }
  SUBCASE("16-bit depth PNG: exact millimetres, several stored blocks, read back by stbi_load_16") {
    // 200 x 180 samples = 72,180 filtered bytes: two stored deflate blocks.
    const int64_t H = 180, W = 200;
    std::vector<uint16_t> mm(size_t(H * W));
    for (size_t i = 0; i < mm.size(); ++i) mm[i] = uint16_t((i * 2654435761u) >> 16);
    mm[0] = 0, mm[1] = 65535, mm[2] = 256, mm[3] = 1;
    write_png16(dir / "d16.png", mm.data(), W, H);
    int64_t w = 0, h = 0;
    CHECK(read_png16(dir / "d16.png", w, h) == mm);
    CHECK(w == W);
    CHECK(h == H);
    const ImageInfo info = probe_image(dir / "d16.png");
    CHECK(info.bits == 16);
    CHECK(info.channels == 1);
    // Through the depth API: metres in, metres out, to the millimetre; 0 stays invalid.
    Tensor depth = Tensor::allocate({1, 3, 4}, DType::Float32, Device::cpu());
    const float values[12] = {0.0f, 0.001f, 1.234f, 9.999f, 65.535f, 3.5f, -1.0f, 2.0004f, 0.5f, 0.25f, 7.0f, 0.0f};
    std::copy(values, values + 12, depth.data<float>());
    write_depth_png(dir / "d.png", depth);
    const Tensor back = read_depth(dir / "d.png");
    REQUIRE(back.shape() == Shape{1, 3, 4});
    for (int i = 0; i < 12; ++i) {
      const double want = values[i] > 0 ? std::round(values[i] * 1000.0) / 1000.0 : 0.0;
      CHECK(back.data<float>()[i] == doctest::Approx(want).epsilon(1e-7));
    }
  }
  SUBCASE("checksums: standard check values") {
    const std::string s = "123456789", w = "Wikipedia";
    CHECK(crc32(reinterpret_cast<const uint8_t*>(s.data()), s.size()) == 0xCBF43926u);
    CHECK(adler32(reinterpret_cast<const uint8_t*>(w.data()), w.size()) == 0x11E60398u);
  }
  SUBCASE("normal PNG: within quantization; zero stays invalid") {
    const int64_t H = 4, W = 5, HW = H * W;
    Tensor n = Tensor::allocate({3, H, W}, DType::Float32, Device::cpu());
    Generator gen(3);
    float* p = n.data<float>();
    for (int64_t i = 0; i < HW; ++i) {
      double v[3] = {2 * gen.next_uniform() - 1, 2 * gen.next_uniform() - 1, gen.next_uniform() + 0.1};
      const double len = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
      for (int c = 0; c < 3; ++c) p[c * HW + i] = float(v[c] / len);
    }
    for (int c = 0; c < 3; ++c) p[c * HW + 7] = 0;  // invalid pixel
    write_normal_png(dir / "n.png", n);
    const Tensor back = read_normal(dir / "n.png");
    test::check_close(back, n, 0.5 / 127.5 + 1e-6, 0, "normals");
    for (int c = 0; c < 3; ++c) CHECK(back.data<float>()[c * HW + 7] == 0.0f);
  }
}

TEST_CASE("image_io: bad files give errors naming the file") {
  TempDir dir("badio");
  const std::string missing = dir / "nope.png";
  test::check_throws_with([&] { read_rgb(missing); }, {missing, "cannot open"});
  test::check_throws_with([&] { probe_image(missing); }, {missing, "cannot open"});

  // A folder where a file should be: said so (an ifstream opens a folder, and its size reads
  // as huge).
  fs::create_directory(dir / "folder.png");
  test::check_throws_with([&] { read_rgb(dir / "folder.png"); }, {dir / "folder.png", "is a directory"});
  test::check_throws_with([&] { read_depth(dir / "folder.png"); }, {dir / "folder.png", "is a directory"});
  test::check_throws_with([&] { probe_image(dir / "folder.png"); }, {dir / "folder.png", "is a directory"});
  test::check_throws_with([&] { check_image_file(dir / "folder.png"); }, {dir / "folder.png", "is a directory"});

  write_text(dir / "empty.png", "");
  test::check_throws_with([&] { read_label(dir / "empty.png"); }, {dir / "empty.png", "empty"});

  std::string noise;
  Generator gen(4);
  for (int i = 0; i < 500; ++i) noise.push_back(char(gen.next_bits() & 0xFF));
  write_text(dir / "noise.png", noise);
  test::check_throws_with([&] { read_rgb(dir / "noise.png"); }, {dir / "noise.png", "not a readable"});
  test::check_throws_with([&] { read_depth(dir / "noise.png"); }, {dir / "noise.png"});

  // A PNG with valid signature and header but cut short: the header reads, decoding fails.
  write_rgb_png(dir / "cut.png", random_u8({3, 40, 40}, 5));
  truncate_file(dir / "cut.png", 0.5);
  test::check_throws_with([&] { read_rgb(dir / "cut.png"); }, {dir / "cut.png", "truncated"});
  // One flipped bit in the pixel data: stb would decode it; the chunk's CRC catches it.
  write_label_png(dir / "flip.png", zeros({16, 16}, {DType::Int64}));
  {
    std::fstream f(dir / "flip.png", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-20, std::ios::end);  // inside IDAT's data (IEND is the last 12 bytes)
    const char c = char(f.get());
    f.seekp(-20, std::ios::end);
    f.put(char(c ^ 0x10));
  }
  test::check_throws_with([&] { read_label(dir / "flip.png"); }, {dir / "flip.png", "checksum"});
  // A JPEG whose Huffman table claims more than 256 codes (stb 2.27 would overflow: Note [JPEG guard]).
  {
    std::string jpeg = "\xFF\xD8\xFF\xC4";
    jpeg += std::string("\x00\x13\x00", 3) + std::string(16, '\x20');  // length 19, 16 counts of 32 = 512 codes
    jpeg += "\xFF\xD9";
    write_text(dir / "huff.jpg", jpeg);
    test::check_throws_with([&] { read_rgb(dir / "huff.jpg"); }, {dir / "huff.jpg", "Huffman"});
    test::check_throws_with([&] { probe_image(dir / "huff.jpg"); }, {dir / "huff.jpg", "Huffman"});
    // The same after 0xFF fill bytes before the start-of-image marker, which stb skips.
    write_text(dir / "huff_fill.jpg", "\xFF\xFF\xFF" + jpeg.substr(1));
    test::check_throws_with([&] { read_rgb(dir / "huff_fill.jpg"); }, {dir / "huff_fill.jpg", "Huffman"});
    test::check_throws_with([&] { check_image_file(dir / "huff_fill.jpg"); }, {dir / "huff_fill.jpg", "Huffman"});
  }
  std::vector<uint16_t> mm(64 * 64, 1000);
  write_png16(dir / "cut16.png", mm.data(), 64, 64);
  truncate_file(dir / "cut16.png", 0.6);
  test::check_throws_with([&] { read_depth(dir / "cut16.png"); }, {dir / "cut16.png"});

  // Wrong kinds: an 8-bit depth PNG, an RGB label, a grey "RGB" frame, an RGB depth.
  Tensor label = zeros({4, 4}, {DType::Int64});
  write_label_png(dir / "grey8.png", label);
  test::check_throws_with([&] { read_depth(dir / "grey8.png"); }, {dir / "grey8.png", "8-bit", "16-bit"});
  test::check_throws_with([&] { read_rgb(dir / "grey8.png"); }, {dir / "grey8.png", "1 channel", "RGB"});
  write_rgb_png(dir / "rgb.png", random_u8({3, 4, 4}, 6));
  test::check_throws_with([&] { read_label(dir / "rgb.png"); }, {dir / "rgb.png", "3 channels"});
  test::check_throws_with([&] { read_depth(dir / "rgb.png"); }, {dir / "rgb.png", "8-bit"});
  write_png16(dir / "d16.png", mm.data(), 64, 64);
  test::check_throws_with([&] { read_normal(dir / "d16.png"); }, {dir / "d16.png", "16-bit"});

  // Writing: bad values and unwritable places.
  Tensor big = zeros({2, 2}, {DType::Int64});
  big.data<int64_t>()[0] = 256;
  test::check_throws_with([&] { write_label_png(dir / "big.png", big); }, {dir / "big.png", "256"});
  test::check_throws_with([&] { write_rgb_png(dir / "no/such/dir/x.png", random_u8({3, 2, 2}, 7)); }, {"no/such/dir/x.png", "cannot create"});
}

// ---------------------------------------------------------------------------------------------
// The dataset on disk
// ---------------------------------------------------------------------------------------------

TEST_CASE("dataset: the synthetic set is written in the NYUv2-video layout and read back exactly") {
  TempDir dir("layout");
  const SyntheticConfig cfg = tiny_config();
  const SyntheticStats stats = render_synthetic_dataset(dir.path.string(), cfg);
  CHECK(stats.sequences == 3);
  CHECK(stats.frames == 24);
  CHECK(stats.annotated == 6);  // frames 2 and 5 of each sequence
  CHECK(fs::exists(dir.path / "synthetic.json"));
  CHECK(fs::exists(dir.path / "train/seq_0001/rgb/000007.png"));
  CHECK(fs::exists(dir.path / "train/seq_0001/depth/000005.png"));
  CHECK_FALSE(fs::exists(dir.path / "train/seq_0001/label/000004.png"));
  CHECK(fs::exists(dir.path / "val/seq_0000/normal/000002.png"));

  const NyuVideoDataset train(dir.path.string(), "train");
  const NyuVideoDataset val(dir.path.string(), "val");
  CHECK(train.size() == 4);
  CHECK(val.size() == 2);
  CHECK(train.num_frames() == 16);
  CHECK(train.height() == 24);
  CHECK(train.width() == 32);
  CHECK(train.sample_name(3) == "seq_0001/000005");
  CHECK(train.sample(3).position == 5);
  train.validate();
  val.validate();

  // The files hold the renderer's ground truth: labels exactly, depth to the millimetre,
  // normals to the 8-bit quantization.
  const SyntheticSequence seq = make_synthetic_sequence(cfg, synthetic_sequence_seed(cfg, "train", 1));
  RenderOptions opt;
  opt.rgb_noise = cfg.rgb_noise;
  opt.noise_seed = Generator(synthetic_sequence_seed(cfg, "train", 1)).bits(uint64_t(1) << 40 | 5);
  const RenderedFrame fr = render_frame(seq.scene, seq.poses[5], default_intrinsics(24, 32), 24, 32, opt);
  const ClipData c = train.load_clip(3, 0);
  CHECK(same(c.seg, fr.label));
  test::check_close(c.depth, fr.depth, 0.0005 + 1e-6, 0, "depth");
  test::check_close(c.normal, fr.normal, 0.5 / 127.5 + 1e-6, 0, "normal");
  test::check_close(mul(c.frames.select(0, 0), 255.0), fr.rgb.to(DType::Float32), 1e-3, 0, "rgb");
}

TEST_CASE("dataset: ensure_synthetic_dataset renders once and refuses a different config") {
  TempDir dir("cache");
  const std::string root = dir / "synth";
  SyntheticConfig cfg = tiny_config();
  cfg.train_sequences = 1, cfg.val_sequences = 1, cfg.frames_per_sequence = 3;
  CHECK(ensure_synthetic_dataset(root, cfg));
  CHECK_FALSE(ensure_synthetic_dataset(root, cfg));
  SyntheticConfig other = cfg;
  other.seed = 6;
  test::check_throws_with([&] { ensure_synthetic_dataset(root, other); }, {root, "another configuration"});
  fs::create_directories(dir / "junk");
  write_text(dir / "junk/file.txt", "x");
  test::check_throws_with([&] { ensure_synthetic_dataset(dir / "junk", cfg); }, {dir / "junk", "not a complete synthetic set"});
}

TEST_CASE("dataset: clips repeat the first frame when the sequence starts later than a - o") {
  TempDir dir("clip");
  const SyntheticConfig cfg = tiny_config();
  render_synthetic_dataset(dir.path.string(), cfg);
  const NyuVideoDataset ds(dir.path.string(), "train");
  const NyuSequence& seq = ds.sequences()[0];
  auto frame = [&](int64_t pos) { return read_rgb(seq.rgb[size_t(pos)].string()).to(DType::Float32); };

  // Sample 0 is frame 2 of seq_0000; offset 4 wants frames -2..2: 0, 0, 0, 1, 2.
  const ClipData c = ds.load_clip(0, 4);
  REQUIRE(c.frames.shape() == Shape{5, 3, 24, 32});
  const int64_t want[5] = {0, 0, 0, 1, 2};
  for (int64_t t = 0; t < 5; ++t) {
    INFO("t = " << t);
    test::check_close(mul(c.frames.select(0, t), 255.0), frame(want[t]), 1e-4, 0);
  }
  // Sample 1 is frame 5; offset 3 gives frames 2..5, no repeats.
  const ClipData d = ds.load_clip(1, 3);
  for (int64_t t = 0; t < 4; ++t) test::check_close(mul(d.frames.select(0, t), 255.0), frame(2 + t), 1e-4, 0);
  CHECK(same(d.seg, read_label(seq.label[1].string())));
  CHECK(same(d.depth, read_depth(seq.depth[1].string())));

  // clip() normalizes per SPEC 1.
  const ClipData n = ds.clip(1, 0);
  for (int64_t ch = 0; ch < 3; ++ch) {
    const double x = test::at(d.frames, ((3 * 3 + ch) * 24 + 5) * 32 + 7);  // frame a = t 3 of d
    const double y = test::at(n.frames, (ch * 24 + 5) * 32 + 7);
    CHECK(y == doctest::Approx((x - kImageMean[ch]) / kImageStd[ch]).epsilon(1e-5));
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling (SPEC 4.4, 4.5)
// ---------------------------------------------------------------------------------------------

TEST_CASE("sampler: one offset per batch in [0, K-1], epochs are permutations, deterministic by seed") {
  const int64_t N = 12, B = 4, K = 5;
  const TrainSampler s(N, B, K, 42), again(N, B, K, 42), other(N, B, K, 43);
  CHECK(s.batches_per_epoch() == 3);
  std::map<int64_t, int> offsets;
  for (int64_t epoch = 0; epoch < 40; ++epoch) {
    std::set<int64_t> seen;
    for (int64_t b = 0; b < 3; ++b) {
      const BatchPlan p = s.plan(epoch * 3 + b);
      REQUIRE(p.samples.size() == size_t(B));
      REQUIRE(p.offset >= 0);
      REQUIRE(p.offset < K);
      ++offsets[p.offset];
      seen.insert(p.samples.begin(), p.samples.end());
      const BatchPlan q = again.plan(epoch * 3 + b);
      CHECK(q.samples == p.samples);
      CHECK(q.offset == p.offset);
    }
    CHECK(seen.size() == size_t(N));  // every sample once per epoch
  }
  CHECK(offsets.size() == size_t(K));  // 120 batches: every offset occurs...
  for (const auto& [o, count] : offsets) CHECK(count > 8);  // ...about 24 times each
  bool differs = false;
  for (int64_t b = 0; b < 6; ++b) differs = differs || other.plan(b).samples != s.plan(b).samples;
  CHECK(differs);
  CHECK(s.epoch_order(0) != s.epoch_order(1));
  test::check_throws_with([&] { TrainSampler(3, 4, K, 0); }, {"batch size 4", "3 samples"});
}

TEST_CASE("sampler: evaluation visits every annotated frame once per offset") {
  const int64_t N = 7, B = 3, K = 5;
  const std::vector<BatchPlan> plans = eval_plans(N, B, K);
  CHECK(plans.size() == size_t(3 * K));  // ceil(7 / 3) per offset
  std::set<std::pair<int64_t, int64_t>> clips;
  int64_t total = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    CHECK(plans[i].index == int64_t(i));
    for (int64_t s : plans[i].samples) clips.insert({s, plans[i].offset}), ++total;
  }
  CHECK(total == N * K);
  CHECK(clips.size() == size_t(N * K));
}

// ---------------------------------------------------------------------------------------------
// Augmentation
// ---------------------------------------------------------------------------------------------

namespace {

// A clip with distinctive content: gradients in RGB, 4 classes + an ignore band, depth with
// a hole, normals with an invalid block.
ClipData test_clip(int64_t T, int64_t H, int64_t W) {
  ClipData c;
  c.frames = Tensor::allocate({T, 3, H, W}, DType::Float32, Device::cpu());
  c.seg = Tensor::allocate({H, W}, DType::Int64, Device::cpu());
  c.depth = Tensor::allocate({1, H, W}, DType::Float32, Device::cpu());
  c.normal = Tensor::allocate({3, H, W}, DType::Float32, Device::cpu());
  const int64_t HW = H * W;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t i = 0; i < HW; ++i)
        c.frames.data<float>()[(t * 3 + ch) * HW + i] = float((i % W) * 7 + (i / W) * 3 + ch * 11 + t * 5) / float(7 * W + 3 * H + 40);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const int64_t i = y * W + x;
      c.seg.data<int64_t>()[i] = y == 2 ? 255 : (x < W / 3 ? 0 : (x < W / 2 ? 3 : (y < H / 2 ? 7 : 12)));
      c.depth.data<float>()[i] = (x > W - 4 && y < 3) ? 0.0f : 1.0f + 0.25f * float(x) + 0.5f * float(y % 3);
      double v[3] = {0.3 * std::sin(0.4 * double(x)), 0.2 * std::cos(0.3 * double(y)), 1.0};
      const double len = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
      const bool invalid = x < 3 && y > H - 4;
      for (int ch = 0; ch < 3; ++ch) c.normal.data<float>()[ch * HW + i] = invalid ? 0.0f : float(v[ch] / len);
    }
  return c;
}

}  // namespace

TEST_CASE("augment: flips and scales apply to every frame and label consistently") {
  const int64_t T = 3, H = 12, W = 17, HW = H * W;
  const ClipData c = test_clip(T, H, W);

  SUBCASE("identity parameters change nothing") {
    const ClipData o = augment_clip(c, AugmentParams{});
    CHECK(same(o.frames, c.frames));
    CHECK(same(o.seg, c.seg));
    CHECK(same(o.depth, c.depth));
    test::check_close(o.normal, c.normal, 1e-6, 0);
  }
  SUBCASE("flip mirrors columns, negates the normal's x; flipping twice is the identity") {
    AugmentParams p;
    p.flip = true;
    const ClipData f = augment_clip(c, p);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t i = y * W + x, m = y * W + (W - 1 - x);
        REQUIRE(f.seg.data<int64_t>()[i] == c.seg.data<int64_t>()[m]);
        REQUIRE(f.depth.data<float>()[i] == c.depth.data<float>()[m]);
        REQUIRE(f.frames.data<float>()[(2 * 3 + 1) * HW + i] == c.frames.data<float>()[(2 * 3 + 1) * HW + m]);
        REQUIRE(f.normal.data<float>()[i] == doctest::Approx(-c.normal.data<float>()[m]).epsilon(1e-6));
        REQUIRE(f.normal.data<float>()[HW + i] == doctest::Approx(c.normal.data<float>()[HW + m]).epsilon(1e-6));
        REQUIRE(f.normal.data<float>()[2 * HW + i] == doctest::Approx(c.normal.data<float>()[2 * HW + m]).epsilon(1e-6));
      }
    const ClipData back = augment_clip(f, p);
    CHECK(same(back.frames, c.frames));
    CHECK(same(back.seg, c.seg));
    CHECK(same(back.depth, c.depth));
    test::check_close(back.normal, c.normal, 1e-6, 0);
  }
  SUBCASE("scale and crop: labels nearest (only values present), depth / s, normals unit or invalid") {
    Generator gen(11);
    AugmentConfig cfg;
    cfg.brightness = cfg.contrast = cfg.saturation = 0;
    std::set<int64_t> labels_in(c.seg.data<int64_t>(), c.seg.data<int64_t>() + HW);
    std::set<float> depths_in(c.depth.data<float>(), c.depth.data<float>() + HW);
    for (int trial = 0; trial < 20; ++trial) {
      const AugmentParams p = draw_augment_params(cfg, H, W, gen);
      REQUIRE(p.scale >= 1.0);
      REQUIRE(p.scale <= 1.5);
      const ClipData a = augment_clip(c, p);
      for (int64_t i = 0; i < HW; ++i) {
        REQUIRE(labels_in.count(a.seg.data<int64_t>()[i]) == 1);
        const float d = a.depth.data<float>()[i];
        REQUIRE((d == 0.0f || std::any_of(depths_in.begin(), depths_in.end(),
                                          [&](float v) { return std::abs(v * p.depth_factor - d) < 1e-5; })));
        const float* n = a.normal.data<float>();
        const double len = std::sqrt(double(n[i]) * n[i] + double(n[HW + i]) * n[HW + i] + double(n[2 * HW + i]) * n[2 * HW + i]);
        REQUIRE((len == 0.0 || std::abs(len - 1.0) < 1e-5));
      }
      for (int64_t i = 0; i < T * 3 * HW; ++i) {
        const float v = a.frames.data<float>()[i];
        REQUIRE((v >= 0.0f && v <= 1.0f));
      }
      // Frames and labels moved together: every frame of the clip is the same warp of its source.
      const ClipData again = augment_clip(c, p);
      CHECK(same(again.frames, a.frames));
    }
  }
  SUBCASE("colour jitter touches RGB only, the same way on every frame") {
    ClipData same_frames = c;
    same_frames.frames = c.frames.select(0, 0).unsqueeze(0).expand({T, 3, H, W}).contiguous();
    AugmentParams p;
    p.brightness = 1.15, p.contrast = 0.8, p.saturation = 1.2;
    const ClipData j = augment_clip(same_frames, p);
    CHECK(same(j.seg, c.seg));
    CHECK(same(j.depth, c.depth));
    CHECK_FALSE(same(j.frames, same_frames.frames));
    for (int64_t t = 1; t < T; ++t) CHECK(same(j.frames.select(0, t), j.frames.select(0, 0)));
  }
  SUBCASE("parameters are a function of the generator's state") {
    AugmentConfig cfg;
    Generator a(5), b(5);
    for (int i = 0; i < 5; ++i) {
      const AugmentParams p = draw_augment_params(cfg, H, W, a), q = draw_augment_params(cfg, H, W, b);
      CHECK(p.scale == q.scale);
      CHECK(p.crop_x == q.crop_x);
      CHECK(p.flip == q.flip);
      CHECK(p.saturation == q.saturation);
    }
    CHECK(a.counter() == 35);  // 7 draws per clip
  }
}

// ---------------------------------------------------------------------------------------------
// Batches and the loader
// ---------------------------------------------------------------------------------------------

TEST_CASE("loader: batches are identical with 0, 1 and 3 workers; resume continues exactly; errors propagate") {
  TempDir dir("loader");
  SyntheticConfig cfg = tiny_config();
  cfg.train_sequences = 3;
  render_synthetic_dataset(dir.path.string(), cfg);
  const NyuVideoDataset ds(dir.path.string(), "train");  // 6 samples
  REQUIRE(ds.size() == 6);

  TrainLoaderConfig lc;
  lc.batch_size = 2, lc.K = 5, lc.seed = 9, lc.num_batches = 8;
  auto collect = [&](int workers, int64_t first, int64_t count) {
    TrainLoaderConfig c = lc;
    c.workers = workers, c.first_batch = first, c.num_batches = count;
    auto loader = make_train_loader(ds, c);
    std::vector<Batch> out;
    Batch b;
    while (loader->next(b)) out.push_back(b);
    return out;
  };
  const std::vector<Batch> serial = collect(0, 0, 8), one = collect(1, 0, 8), three = collect(3, 0, 8), resumed = collect(3, 5, 3);
  REQUIRE(serial.size() == 8);
  REQUIRE(one.size() == 8);
  REQUIRE(three.size() == 8);
  REQUIRE(resumed.size() == 3);
  std::set<int64_t> offsets;
  for (size_t i = 0; i < 8; ++i) {
    INFO("batch " << i);
    CHECK(serial[i].index == int64_t(i));
    CHECK(same_batch(serial[i], one[i]));
    CHECK(same_batch(serial[i], three[i]));
    const Batch& b = serial[i];
    const int64_t T = b.offset + 1;
    CHECK(b.t0 == 0);
    CHECK(b.frames.shape() == Shape{T, 2, 3, 24, 32});
    CHECK(b.seg.shape() == Shape{2, 24, 32});
    CHECK(b.depth.shape() == Shape{2, 1, 24, 32});
    CHECK(b.normal.shape() == Shape{2, 3, 24, 32});
    offsets.insert(b.offset);
  }
  for (size_t i = 0; i < 3; ++i) CHECK(same_batch(resumed[i], serial[5 + i]));
  CHECK(offsets.size() > 1);

  // Without augmentation a batch holds exactly the normalized clips.
  const BatchPlan plan = TrainSampler(ds.size(), 2, 5, 9).plan(2);
  const Batch plain = make_batch(ds, plan, nullptr, 9);
  for (size_t b = 0; b < 2; ++b) {
    const ClipData c = ds.clip(plan.samples[b], plan.offset);
    CHECK(same(plain.frames.select(1, int64_t(b)).contiguous(), c.frames));
    CHECK(same(plain.seg.select(0, int64_t(b)).contiguous(), c.seg));
  }

  // Evaluation: ceil(6 / 4) batches per offset, every sample once per offset.
  auto eval = make_eval_loader(ds, 4, 5, 2);
  Batch b;
  int64_t batches = 0, clips = 0;
  while (eval->next(b)) {
    CHECK(b.frames.size(0) == b.offset + 1);
    ++batches, clips += int64_t(b.samples.size());
  }
  CHECK(batches == 10);
  CHECK(clips == ds.size() * 5);

  // A worker's exception comes out of next() at its batch, in order.
  {
    PrefetchLoader failing(
        [](int64_t i) -> Batch {
          if (i == 2) throw std::runtime_error("broken batch 2");
          Batch x;
          x.index = i;
          return x;
        },
        0, 5, 3, 2);
    Batch x;
    REQUIRE(failing.next(x));
    CHECK(x.index == 0);
    REQUIRE(failing.next(x));
    CHECK(x.index == 1);
    test::check_throws_with([&] { failing.next(x); }, {"broken batch 2"});
    REQUIRE(failing.next(x));
    CHECK(x.index == 3);
  }
  // An endless stream shuts down cleanly with batches still in flight.
  {
    TrainLoaderConfig c = lc;
    c.workers = 3, c.num_batches = -1, c.capacity = 3;
    auto loader = make_train_loader(ds, c);
    Batch x;
    REQUIRE(loader->next(x));
  }
}

// ---------------------------------------------------------------------------------------------
// Bad datasets
// ---------------------------------------------------------------------------------------------

TEST_CASE("dataset: bad trees give errors naming the file") {
  TempDir dir("bad");
  const std::string root = dir.path.string();
  SyntheticConfig cfg = tiny_config();
  cfg.train_sequences = 2, cfg.val_sequences = 0;
  render_synthetic_dataset(root, cfg);
  const fs::path seq = dir.path / "train" / "seq_0000";

  SUBCASE("missing root and split, empty split") {
    test::check_throws_with([&] { NyuVideoDataset(dir / "nothing", "train"); }, {dir / "nothing", "does not exist"});
    test::check_throws_with([&] { NyuVideoDataset(root, "test"); }, {(dir.path / "test").string(), "missing split folder"});
    fs::create_directories(dir.path / "val");  // rendered with 0 val sequences
    test::check_throws_with([&] { NyuVideoDataset(root, "val"); }, {(dir.path / "val").string(), "empty"});
    fs::create_directories(dir.path / "val" / "seq_x" / "rgb");
    write_rgb_png((dir.path / "val" / "seq_x" / "rgb" / "000000.png").string(), random_u8({3, 24, 32}, 1));
    test::check_throws_with([&] { NyuVideoDataset(root, "val"); }, {(dir.path / "val").string(), "no annotated frames"});
  }
  SUBCASE("missing rgb folder, missing annotation file, annotation without a frame") {
    fs::rename(seq / "rgb", seq / "frames");
    test::check_throws_with([&] { NyuVideoDataset(root, "train"); }, {(seq / "rgb").string(), "missing folder"});
    fs::rename(seq / "frames", seq / "rgb");
    fs::remove(seq / "depth" / "000005.png");
    test::check_throws_with([&] { NyuVideoDataset(root, "train"); }, {(seq / "depth" / "000005.png").string(), "missing"});
    fs::copy_file(seq / "label" / "000005.png", seq / "depth" / "000005.png");
    fs::remove(seq / "rgb" / "000005.png");
    test::check_throws_with([&] { NyuVideoDataset(root, "train"); }, {(seq / "label" / "000005.png").string(), "no rgb frame"});
  }
  SUBCASE("badly named file") {
    write_rgb_png((seq / "rgb" / "frame7.png").string(), random_u8({3, 24, 32}, 2));
    test::check_throws_with([&] { NyuVideoDataset(root, "train"); }, {(seq / "rgb" / "frame7.png").string(), "not a frame number"});
  }
  SUBCASE("a frame of another size in a sequence: validate() and load_clip name it") {
    const std::string odd = (seq / "rgb" / "000004.png").string();
    write_rgb_png(odd, random_u8({3, 20, 32}, 3));
    const NyuVideoDataset ds(root, "train");
    test::check_throws_with([&] { ds.validate(); }, {odd, "32x20", "32x24", "1 problem"});
    test::check_throws_with([&] { ds.load_clip(1, 1); }, {odd, "32x20"});  // sample 1 = frame 5, offset 1 reads frame 4
    // A sequence whose first frame differs from the split's size is refused at once.
    write_rgb_png((dir.path / "train" / "seq_0001" / "rgb" / "000000.png").string(), random_u8({3, 24, 30}, 4));
    test::check_throws_with([&] { NyuVideoDataset(root, "train"); }, {"seq_0001", "000000.png", "30x24"});
  }
  SUBCASE("label out of range, 8-bit depth, truncated frame") {
    const std::string label = (seq / "label" / "000002.png").string();
    Tensor l = read_label(label);
    l.data<int64_t>()[3 * 32 + 4] = 13;  // NYUv2 has classes 0..12
    write_label_png(label, l);
    const std::string depth = (seq / "depth" / "000005.png").string();
    write_label_png(depth, zeros({24, 32}, {DType::Int64}));  // 8-bit grey instead of 16-bit
    const std::string frame = (dir.path / "train" / "seq_0001" / "rgb" / "000003.png").string();
    truncate_file(frame, 0.4);
    const NyuVideoDataset ds(root, "train");
    try {
      ds.validate();
      FAIL("validate() accepted a broken dataset");
    } catch (const DatasetError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(label + ": label value 13 at row 3, column 4") != std::string::npos);
      CHECK(msg.find(depth) != std::string::npos);
      CHECK(msg.find("8-bit") != std::string::npos);
      CHECK(msg.find(frame + ": truncated PNG") != std::string::npos);
      CHECK(msg.find("3 problems") != std::string::npos);
    }
    test::check_throws_with([&] { ds.load_clip(0, 0); }, {label, "label value 13"});
    test::check_throws_with([&] { ds.load_clip(1, 0); }, {depth, "8-bit"});
    CHECK(ds.load_clip(2, 1).frames.size(0) == 2);                         // seq_0001 frames 1, 2: fine
    test::check_throws_with([&] { ds.load_clip(3, 2); }, {frame, "truncated"});  // seq_0001 frames 3..5
  }
}
