// make_corpus.cpp - writes the seed corpus of the fuzz targets, tests/fuzz/corpus/<target>/:
// small valid files made by the project's own writers, so the fuzzers start from what the
// readers really meet, and a few malformed ones near the checks the readers make.
//
//   build-fuzz/make_fuzz_corpus [DIR]      (DIR: tests/fuzz/corpus of the source tree)
//
// The output is deterministic (no clock, fixed pixel patterns): running it again rewrites
// the same bytes, so the committed files can be regenerated and compared. Each file is at
// most a few KiB; the fuzzers mutate them and add their own finds to a copy.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/image_io.h"
#include "mila/config.h"
#include "mila/train.h"
#include "mila/trainer.h"
#include "nn/safetensors.h"
#include "ops/ops.h"

namespace fs = std::filesystem;
using namespace mila;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// A raw safetensors file: 8-byte little-endian header length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  const uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

// A uint8 [3, H, W] image of smooth gradients and a few hard edges (JPEG-friendly, not flat).
Tensor pattern_rgb(int64_t H, int64_t W) {
  Tensor t = Tensor::allocate({3, H, W}, DType::UInt8, Device::cpu());
  uint8_t* p = t.data<uint8_t>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        p[(c * H + y) * W + x] = uint8_t((x * 255 / W + y * 97 / H + c * 60 + ((x / 4 + y / 4) % 2) * 40) & 0xFF);
  return t;
}

void safetensors_corpus(const fs::path& dir) {
  // Written by the writer the checkpoints use.
  Tensor weight = arange(0, 6, 1, {DType::Float32}).reshape({2, 3});
  Tensor index = arange(-2, 3, 1, {DType::Int64});
  safetensors::write((dir / "valid_f32_i64.safetensors").string(),
                     {{"layer.weight", weight}, {"layer.index", index}, {"bn.num_batches_tracked", scalar_tensor(7, {DType::Int64})},
                      {"empty", zeros({0, 4})}},
                     {{"mila.config", small_config().to_json()}});
  safetensors::write((dir / "valid_no_tensors.safetensors").string(), {});
  // F16 and BF16 are read, not written: by hand (1, -2, 65504, the smallest subnormal; 1.5, -0.25).
  const uint16_t half[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001}, bf16[2] = {0x3FC0, 0xBE80};
  std::string data(reinterpret_cast<const char*>(half), 8);
  data.append(reinterpret_cast<const char*>(bf16), 4);
  write_file(dir / "valid_f16_bf16.safetensors",
             safetensors_bytes(R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"BF16","shape":[2,1],"data_offsets":[8,12]}})",
                               data));
  // Malformed, each next to one check.
  const std::string two(8, '\0');
  write_file(dir / "bad_duplicate_key.safetensors",
             safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two));
  write_file(dir / "bad_overlap.safetensors",
             safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two));
  write_file(dir / "bad_shape_size.safetensors", safetensors_bytes(R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", two));
  write_file(dir / "bad_dtype.safetensors", safetensors_bytes(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", two));
  write_file(dir / "bad_huge_shape.safetensors",
             safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", ""));
  const std::string valid = read_file(dir / "valid_f32_i64.safetensors");
  write_file(dir / "bad_truncated.safetensors", valid.substr(0, valid.size() - 5));
  std::string long_header = valid;
  long_header[0] = char(0xFF);  // header length past the end
  write_file(dir / "bad_header_length.safetensors", long_header);
}

void image_corpus(const fs::path& dir) {
  const auto at = [&](const char* name) { return (dir / name).string(); };
  data::write_rgb_png(at("rgb_12x8.png"), pattern_rgb(8, 12));
  data::write_rgb_jpeg(at("rgb_16x16_q95.jpg"), pattern_rgb(16, 16), 95);  // 4:4:4
  data::write_rgb_jpeg(at("rgb_17x9_q50.jpg"), pattern_rgb(9, 17), 50);    // 4:2:0, partial blocks
  Tensor label = Tensor::allocate({6, 10}, DType::Int64, Device::cpu());
  for (int64_t i = 0; i < label.numel(); ++i) label.data<int64_t>()[i] = i % 7 == 0 ? 255 : i % 13;
  data::write_label_png(at("label_10x6.png"), label);
  Tensor depth = Tensor::allocate({1, 5, 9}, DType::Float32, Device::cpu());
  for (int64_t i = 0; i < depth.numel(); ++i) depth.data<float>()[i] = i % 11 == 0 ? 0.0f : 0.5f + 0.137f * float(i);
  data::write_depth_png(at("depth_9x5.png"), depth);
  Tensor normal = Tensor::allocate({3, 4, 6}, DType::Float32, Device::cpu());
  for (int64_t i = 0; i < 24; ++i) {
    const float a = 0.3f * float(i);
    normal.data<float>()[i] = i == 5 ? 0.0f : std::sin(a) * 0.6f;
    normal.data<float>()[24 + i] = i == 5 ? 0.0f : std::cos(a) * 0.6f;
    normal.data<float>()[48 + i] = i == 5 ? 0.0f : -0.53f;
  }
  data::write_normal_png(at("normal_6x4.png"), normal);

  // Malformed: cut short, one flipped bit (the chunk CRC catches it), a JPEG Huffman table
  // with more than 256 codes (Note [JPEG guard] in data/image_io.cpp), a cut JPEG, a JPEG
  // that declares a huge image.
  const std::string png = read_file(at("rgb_12x8.png"));
  write_file(at("bad_truncated.png"), png.substr(0, png.size() / 2));
  std::string flipped = png;
  flipped[flipped.size() - 20] ^= 0x10;
  write_file(at("bad_crc.png"), flipped);
  std::string huffman = "\xFF\xD8\xFF\xC4";
  huffman += std::string("\x00\x13\x00", 3) + std::string(16, '\x20') + "\xFF\xD9";
  write_file(at("bad_huffman.jpg"), huffman);
  write_file(at("bad_huffman_fill.jpg"), "\xFF\xFF" + huffman.substr(1));  // fill bytes before the SOI marker
  const std::string jpg = read_file(at("rgb_17x9_q50.jpg"));
  write_file(at("bad_truncated.jpg"), jpg.substr(0, jpg.size() * 2 / 3));
  // A small file whose frame header (SOF0: FF C0, length, precision, height, width) claims
  // 65305 x 1280 pixels: its decoding costs time and memory by the declared size.
  std::string huge = jpg;
  const size_t sof = huge.find("\xFF\xC0");
  if (sof == std::string::npos) throw std::runtime_error("no SOF0 marker in the JPEG written by write_rgb_jpeg");
  huge[sof + 5] = char(0x05), huge[sof + 6] = char(0x00), huge[sof + 7] = char(0xFF), huge[sof + 8] = char(0x19);
  write_file(at("bad_huge_declared.jpg"), huge);
}

void config_corpus(const fs::path& dir) {
  // The configurations the repository ships, and the built-in one.
  for (const auto& e : fs::directory_iterator(fs::path(MILA_SOURCE_DIR) / "examples/train_nyu/configs"))
    if (e.path().extension() == ".json") fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  write_file(dir / "small_config_to_json.json", small_config().to_json());
  // A dynamic-weight-average state as train_nyu saves it (two epochs: the weights in use).
  DynamicWeightAverage dwa({"seg", "depth", "normal"});
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (int step = 0; step < 3; ++step) {
      dwa.record("seg", 2.0 - 0.3 * epoch + 0.1 * step);
      dwa.record("depth", 0.8 - 0.1 * epoch);
      dwa.record("normal", 0.4 + 0.05 * step);
    }
    dwa.end_epoch();
  }
  write_file(dir / "dwa_state.json", dwa.state_json());
  // Malformed, each next to one check.
  write_file(dir / "bad_unknown_field.json", R"({"slow_depth": 34, "K": 3, "dropout": 0.1})");
  write_file(dir / "bad_wrong_type.json", R"({"width": "sixteen"})");
  write_file(dir / "bad_even_L.json", R"({"L": 4, "tasks": [["seg", 13]]})");
  write_file(dir / "bad_task.json", R"({"tasks": [["seg", 13], ["seg", 2], ["depth"]]})");
  write_file(dir / "bad_dwa_state.json", R"({"sum": {"seg": 1.5}, "count": {"seg": 2}, "epoch_means": [{"seg": 1.0}]})");
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::path(MILA_SOURCE_DIR) / "tests/fuzz/corpus";
  try {
    for (const char* target : {"safetensors", "image", "config"}) {
      fs::remove_all(root / target);
      fs::create_directories(root / target);
    }
    safetensors_corpus(root / "safetensors");
    image_corpus(root / "image");
    config_corpus(root / "config");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_corpus: %s\n", e.what());
    return 1;
  }
  uintmax_t total = 0;
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) total += e.file_size(), ++files;
  std::printf("make_fuzz_corpus: %d files, %ju bytes in %s\n", files, total, root.string().c_str());
  return 0;
}
