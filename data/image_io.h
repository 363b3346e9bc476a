// image_io.h - the image files of the datasets (SPEC 5): reading through stb_image, writing
// through stb_image_write plus a small 16-bit PNG encoder of our own.
//
// Layouts (channels first, as everywhere in this project):
//   read_rgb     8-bit RGB PNG or JPEG          -> uint8   [3, H, W]
//   read_label   8-bit grey PNG (class ids)     -> int64   [H, W]      255 = ignore
//   read_depth   16-bit grey PNG (millimetres)  -> float32 [1, H, W]   metres, 0 = invalid
//   read_normal  8-bit RGB PNG                  -> float32 [3, H, W]   n = v / 127.5 - 1,
//                                                  (0,0,0) = invalid -> the zero vector
//
// The readers are strict on purpose: a label PNG with 3 channels, a depth PNG with 8 bits
// or an RGB file with an alpha channel is a mistake in a dataset conversion, and guessing
// would hide it. Every failure (missing file, unreadable or truncated bytes, wrong channel
// count or bit depth) throws ImageError whose message names the file and the reason.
//
// Writers take the same tensors back (any strides, CPU). write_png16 exists because
// stb_image_write only writes 8-bit PNGs: see "Note [16-bit PNG encoder]" in image_io.cpp.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mila::data {

struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a file's header says, without decoding the pixels (stbi_info): cheap enough to run
// over a whole dataset before training.
struct ImageInfo {
  int64_t width = 0, height = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
  int bits = 8;      // 8 or 16 (16 only for PNG)
};
ImageInfo probe_image(const std::string& path);
// probe_image plus a check of the whole file's structure, still without decoding pixels: a
// PNG's chunks must be complete and match their CRCs (catches truncated and bit-flipped
// files), a JPEG's Huffman tables must be sane. Reads the whole file.
ImageInfo check_image_file(const std::string& path);

// ---- readers (see the table above) ----
Tensor read_rgb(const std::string& path);     // uint8 [3, H, W]
Tensor read_label(const std::string& path);   // int64 [H, W]
Tensor read_depth(const std::string& path);   // float32 [1, H, W], metres
Tensor read_normal(const std::string& path);  // float32 [3, H, W]
// The raw 16-bit samples of a 1-channel 16-bit PNG, row-major; `width`, `height` set.
std::vector<uint16_t> read_png16(const std::string& path, int64_t& width, int64_t& height);

// ---- writers ----
// rgb: uint8 [3, H, W].
void write_rgb_png(const std::string& path, const Tensor& rgb);
// rgb: uint8 [3, H, W] as a baseline JPEG of the given quality (1..100), as NYUv2's frames
// are stored; lossy, so for tests and conversions, never for labels.
void write_rgb_jpeg(const std::string& path, const Tensor& rgb, int quality = 95);
// label: int64 or uint8 [H, W], values in [0, 255].
void write_label_png(const std::string& path, const Tensor& label);
// depth: float32 [1, H, W] or [H, W] in metres; written as round(1000 * d) millimetres,
// values <= 0 or non-finite as 0 (invalid). Depths above 65.535 m are refused.
void write_depth_png(const std::string& path, const Tensor& depth);
// normal: float32 [3, H, W]; v = round((n + 1) * 127.5) clamped to [0, 255]; a zero vector
// is written as (0, 0, 0) (invalid). No unit normal encodes to (0,0,0) (it would need every
// component below -0.996), so the marker is unambiguous.
void write_normal_png(const std::string& path, const Tensor& normal);
// 1-channel 16-bit PNG from `height * width` samples, row-major.
void write_png16(const std::string& path, const uint16_t* samples, int64_t width, int64_t height);

// Encodes a normal vector component to its 8-bit code and back (shared with the tests).
inline uint8_t encode_normal_component(float n) {
  const float v = (n + 1.0f) * 127.5f + 0.5f;
  return uint8_t(v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
}
inline float decode_normal_component(uint8_t v) { return float(v) / 127.5f - 1.0f; }

// crc32 (PNG chunks, polynomial 0xEDB88320) and adler32 (zlib streams); exposed for tests.
uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0);
uint32_t adler32(const uint8_t* data, size_t n, uint32_t adler = 1);

}  // namespace mila::data
