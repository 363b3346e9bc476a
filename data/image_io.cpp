// image_io.cpp - image files through stb_image / stb_image_write, and a 16-bit PNG encoder.
//
// The stb implementations are compiled here, once, with STB_IMAGE_STATIC and
// STB_IMAGE_WRITE_STATIC: their functions are private to this file, so no other translation
// unit (or a linked libstb) can clash with them. Only PNG and JPEG decoders are built.
//
// Files are read into memory with our own code first, so that "missing" and "unreadable"
// get the operating system's reason, and stb only ever sees a complete buffer.
#include "data/image_io.h"

#include <cerrno>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "ops/factory.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace mila::data {

namespace {

[[noreturn]] void fail(const char* what, const std::string& path, const std::string& reason) {
  throw ImageError(std::string(what) + ": " + path + ": " + reason);
}

// The file's bytes; with max_bytes > 0, at most its first max_bytes (headers only).
std::vector<uint8_t> read_bytes(const char* what, const std::string& path, size_t max_bytes = 0) {
  // An ifstream opens a directory, and its size then reads as huge ("larger than 2 GiB").
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(what, path, "is a directory, not an image file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(what, path, std::string("cannot open (") + std::strerror(errno) + ")");
  const std::streamoff size = in.tellg();
  if (size < 0) fail(what, path, "cannot determine the file size");
  if (size == 0) fail(what, path, "empty file");
  if (size > std::streamoff(INT32_MAX)) fail(what, path, "file larger than 2 GiB");
  const size_t n = max_bytes > 0 ? std::min(static_cast<size_t>(size), max_bytes) : static_cast<size_t>(size);
  std::vector<uint8_t> bytes(n);
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(n))) fail(what, path, "read error");
  return bytes;
}

// Note [JPEG guard]
// stb_image 2.27 (Debian's libstb-dev) trusts the code counts of a JPEG Huffman table (DHT):
// counts adding up to more than 256 make stbi__build_huffman write past its arrays (found by
// fuzzing this file under UBSan; newer stb versions check it). So before stb sees a JPEG we
// look at every DHT segment stb could reach and refuse such a table ourselves. We follow the
// marker segments as stb does (skipping each by its length), and between segments and inside
// scan data we look at every 0xFF xx pair, since stb also finds markers there (0xFF 0x00 is a
// stuffed data byte and 0xFF 0xD0-D7 a restart, neither a segment). A valid JPEG never has
// 0xFF 0xC4 outside a segment's payload except as a real DHT, so nothing valid is refused.
// Each table is read the way stb reads it: while the segment's remaining length is positive,
// one class/id byte, 16 counts and then as many values as the counts add up to. Like any
// marker, the opening SOI (0xFF 0xD8) may come after extra 0xFF fill bytes, and stb takes
// such a file for a JPEG too.
void check_jpeg_tables(const char* what, const std::string& path, const std::vector<uint8_t>& b) {
  size_t pos = 0;
  while (pos < b.size() && b[pos] == 0xFF) ++pos;
  if (pos < 1 || pos >= b.size() || b[pos] != 0xD8) return;  // not a JPEG
  ++pos;
  auto byte = [&](size_t i) -> size_t { return i < b.size() ? b[i] : 0; };  // stb reads 0 past the end
  while (pos + 1 < b.size()) {
    if (b[pos] != 0xFF) {  // padding or entropy-coded data
      ++pos;
      continue;
    }
    const uint8_t marker = b[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      pos += 2;
      continue;
    }
    if (marker == 0xD9) return;  // end of image: stb stops reading
    const size_t length = byte(pos + 2) << 8 | byte(pos + 3);
    if (marker == 0xC4) {
      int64_t remaining = int64_t(length) - 2;
      size_t t = pos + 4;
      while (remaining > 0) {
        size_t n = 0;
        for (size_t i = 0; i < 16; ++i) n += byte(t + 1 + i);
        if (n > 256) fail(what, path, "corrupt JPEG (a Huffman table with " + std::to_string(n) + " codes, at most 256)");
        remaining -= int64_t(17 + n);
        t += 17 + n;
      }
    }
    pos += 2 + std::max<size_t>(length, 2);
  }
}

// Note [stb shifts]
// A JPEG whose entropy-coded data meets a marker early leaves stb 2.27 with a negative bit
// count, and stbi__grow_buffer_unsafe then shifts by more than 31 (`b << (24 - code_bits)`),
// which C++ leaves undefined; on x86 the shift count wraps and the block decodes to garbage
// (newer stb versions stop at the short code instead), and in the fuzz runs AddressSanitizer
// saw no access outside stb's buffers come of it.
// No file check can tell such data in advance, so the fuzz build (MILA_FUZZ) compiles this
// file with that one UBSan check off in that one function: tests/fuzz/stb_ignorelist.txt.

void write_bytes(const char* what, const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(what, path, std::string("cannot create (") + std::strerror(errno) + ")");
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  out.close();
  if (!out) fail(what, path, "write error");
}

// A whole PNG file's chunk structure and checksums (stb_image ignores the CRCs, so without
// this a flipped bit in a label map would quietly change a class id). Stops at IEND.
void check_png_chunks(const char* what, const std::string& path, const std::vector<uint8_t>& b) {
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || !std::equal(signature, signature + 8, b.begin())) return;  // not a PNG
  size_t pos = 8;
  for (;;) {
    if (pos + 12 > b.size()) fail(what, path, "truncated PNG (the file ends before its IEND chunk)");
    const size_t length = size_t(b[pos]) << 24 | size_t(b[pos + 1]) << 16 | size_t(b[pos + 2]) << 8 | b[pos + 3];
    const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    if (length > b.size() - pos - 12) fail(what, path, "truncated PNG (chunk " + type + " runs past the end of the file)");
    const uint8_t* c = &b[pos + 8 + length];
    const uint32_t stored = uint32_t(c[0]) << 24 | uint32_t(c[1]) << 16 | uint32_t(c[2]) << 8 | c[3];
    if (crc32(&b[pos + 4], 4 + length) != stored) fail(what, path, "corrupt PNG (checksum mismatch in chunk " + type + ")");
    if (type == "IEND") return;
    pos += 12 + length;
  }
}

// Header of a whole in-memory image; throws when stb does not recognise it or its structure
// is broken (Note [JPEG guard], check_png_chunks).
ImageInfo info_of(const char* what, const std::string& path, const std::vector<uint8_t>& bytes) {
  check_jpeg_tables(what, path, bytes);
  check_png_chunks(what, path, bytes);
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c)) {
    const char* reason = stbi_failure_reason();
    fail(what, path, std::string("not a readable PNG or JPEG (") + (reason ? reason : "unknown format") + ")");
  }
  ImageInfo info;
  info.width = w, info.height = h, info.channels = c;
  info.bits = stbi_is_16_bit_from_memory(bytes.data(), int(bytes.size())) ? 16 : 8;
  return info;
}

std::string describe(const ImageInfo& info) {
  std::ostringstream s;
  s << info.width << "x" << info.height << ", " << info.channels << " channel" << (info.channels == 1 ? "" : "s")
    << ", " << info.bits << "-bit";
  return s.str();
}

void require(const char* what, const std::string& path, const ImageInfo& info, int channels, int bits,
             const char* expected) {
  if (info.channels != channels || info.bits != bits)
    fail(what, path, "the file is " + describe(info) + "; expected " + expected);
}

struct StbiFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

// Decodes 8-bit pixels with exactly `channels` channels (already checked against the header).
std::unique_ptr<uint8_t, StbiFree> decode8(const char* what, const std::string& path,
                                           const std::vector<uint8_t>& bytes, const ImageInfo& info,
                                           int channels) {
  int w = 0, h = 0, c = 0;
  std::unique_ptr<uint8_t, StbiFree> pixels(stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c, channels));
  if (!pixels) {
    const char* reason = stbi_failure_reason();
    fail(what, path, std::string("cannot decode (") + (reason ? reason : "unknown error") + "; truncated or corrupt?)");
  }
  if (w != info.width || h != info.height) fail(what, path, "decoded size differs from the header");
  return pixels;
}

void check_cpu(const char* what, const std::string& path, const Tensor& t) {
  if (!t.defined()) fail(what, path, "undefined tensor");
  if (t.device() != Device::cpu()) fail(what, path, "tensor must be on the CPU");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

ImageInfo probe_image(const std::string& path) {
  // Headers sit at the start: read 256 KiB, and the whole file only when stb needs more
  // (a JPEG with a large EXIF block). stb's header parser does not decode pixels.
  const char* what = "probe_image";
  std::vector<uint8_t> bytes = read_bytes(what, path, size_t(256) << 10);
  check_jpeg_tables(what, path, bytes);
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c)) {
    if (bytes.size() == size_t(256) << 10) bytes = read_bytes(what, path);
    return info_of(what, path, bytes);
  }
  ImageInfo info;
  info.width = w, info.height = h, info.channels = c;
  info.bits = stbi_is_16_bit_from_memory(bytes.data(), int(bytes.size())) ? 16 : 8;
  return info;
}

ImageInfo check_image_file(const std::string& path) {
  const char* what = "check_image_file";
  return info_of(what, path, read_bytes(what, path));
}

Tensor read_rgb(const std::string& path) {
  const char* what = "read_rgb";
  const std::vector<uint8_t> bytes = read_bytes(what, path);
  const ImageInfo info = info_of(what, path, bytes);
  require(what, path, info, 3, 8, "an 8-bit RGB image (3 channels)");
  auto pixels = decode8(what, path, bytes, info, 3);
  const int64_t H = info.height, W = info.width;
  Tensor out = Tensor::allocate({3, H, W}, DType::UInt8, Device::cpu());
  uint8_t* o = out.data<uint8_t>();
  const uint8_t* p = pixels.get();  // [H, W, 3] interleaved -> planes
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < H * W; ++i) o[c * H * W + i] = p[i * 3 + c];
  return out;
}

Tensor read_label(const std::string& path) {
  const char* what = "read_label";
  const std::vector<uint8_t> bytes = read_bytes(what, path);
  const ImageInfo info = info_of(what, path, bytes);
  require(what, path, info, 1, 8, "an 8-bit grey PNG of class ids (1 channel)");
  auto pixels = decode8(what, path, bytes, info, 1);
  Tensor out = Tensor::allocate({info.height, info.width}, DType::Int64, Device::cpu());
  int64_t* o = out.data<int64_t>();
  for (int64_t i = 0; i < info.height * info.width; ++i) o[i] = pixels.get()[i];
  return out;
}

std::vector<uint16_t> read_png16(const std::string& path, int64_t& width, int64_t& height) {
  const char* what = "read_png16";
  const std::vector<uint8_t> bytes = read_bytes(what, path);
  const ImageInfo info = info_of(what, path, bytes);
  if (info.bits != 16)
    fail(what, path, "the file is " + describe(info) + "; expected a 16-bit grey PNG (an 8-bit PNG cannot hold millimetres)");
  require(what, path, info, 1, 16, "a 16-bit grey PNG (1 channel)");
  int w = 0, h = 0, c = 0;
  std::unique_ptr<uint16_t, StbiFree> pixels(stbi_load_16_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c, 1));
  if (!pixels) {
    const char* reason = stbi_failure_reason();
    fail(what, path, std::string("cannot decode (") + (reason ? reason : "unknown error") + "; truncated or corrupt?)");
  }
  width = w, height = h;
  return std::vector<uint16_t>(pixels.get(), pixels.get() + size_t(w) * size_t(h));
}

Tensor read_depth(const std::string& path) {
  int64_t W = 0, H = 0;
  std::vector<uint16_t> mm;
  try {
    mm = read_png16(path, W, H);
  } catch (const ImageError& e) {
    // Re-label the message so the caller sees which kind of file was expected.
    throw ImageError(std::string("read_depth (16-bit millimetres): ") + (e.what() + std::strlen("read_png16: ")));
  }
  Tensor out = Tensor::allocate({1, H, W}, DType::Float32, Device::cpu());
  float* o = out.data<float>();
  for (int64_t i = 0; i < H * W; ++i) o[i] = float(mm[size_t(i)]) * 0.001f;
  return out;
}

Tensor read_normal(const std::string& path) {
  const char* what = "read_normal";
  const std::vector<uint8_t> bytes = read_bytes(what, path);
  const ImageInfo info = info_of(what, path, bytes);
  require(what, path, info, 3, 8, "an 8-bit RGB PNG of normals (3 channels)");
  auto pixels = decode8(what, path, bytes, info, 3);
  const int64_t H = info.height, W = info.width, HW = H * W;
  Tensor out = Tensor::allocate({3, H, W}, DType::Float32, Device::cpu());
  float* o = out.data<float>();
  const uint8_t* p = pixels.get();
  for (int64_t i = 0; i < HW; ++i) {
    const uint8_t r = p[i * 3], g = p[i * 3 + 1], b = p[i * 3 + 2];
    const bool invalid = (r | g | b) == 0;
    o[i] = invalid ? 0.0f : decode_normal_component(r);
    o[HW + i] = invalid ? 0.0f : decode_normal_component(g);
    o[2 * HW + i] = invalid ? 0.0f : decode_normal_component(b);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

namespace {

void stbi_to_vector(void* context, void* data, int size) {
  auto* v = static_cast<std::vector<uint8_t>*>(context);
  v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

// Interleaved 8-bit pixels [H, W, C] to a PNG file through stb_image_write.
void write_png8(const char* what, const std::string& path, const uint8_t* hwc, int64_t W, int64_t H, int C) {
  if (W <= 0 || H <= 0 || W > (1 << 24) || H > (1 << 24)) fail(what, path, "bad image size");
  std::vector<uint8_t> png;
  if (!stbi_write_png_to_func(&stbi_to_vector, &png, int(W), int(H), C, hwc, int(W * C)))
    fail(what, path, "PNG encoding failed");
  write_bytes(what, path, png);
}

void check_shape(const char* what, const std::string& path, const Tensor& t, const Shape& want_prefix, int64_t dims) {
  bool ok = t.dim() == dims;
  for (size_t i = 0; ok && i < want_prefix.size(); ++i) ok = t.size(int64_t(i)) == want_prefix[i];
  if (!ok) fail(what, path, "unexpected tensor shape " + shape_str(t.shape()));
}

}  // namespace

void write_rgb_png(const std::string& path, const Tensor& rgb) {
  const char* what = "write_rgb_png";
  check_cpu(what, path, rgb);
  check_shape(what, path, rgb, {3}, 3);
  if (rgb.dtype() != DType::UInt8) fail(what, path, std::string("expected uint8, got ") + dtype_name(rgb.dtype()));
  const Tensor c = rgb.contiguous();
  const int64_t H = c.size(1), W = c.size(2);
  std::vector<uint8_t> hwc(size_t(3 * H * W));
  const uint8_t* p = c.data<uint8_t>();
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < H * W; ++i) hwc[size_t(i * 3 + ch)] = p[ch * H * W + i];
  write_png8(what, path, hwc.data(), W, H, 3);
}

void write_rgb_jpeg(const std::string& path, const Tensor& rgb, int quality) {
  const char* what = "write_rgb_jpeg";
  check_cpu(what, path, rgb);
  check_shape(what, path, rgb, {3}, 3);
  if (rgb.dtype() != DType::UInt8) fail(what, path, std::string("expected uint8, got ") + dtype_name(rgb.dtype()));
  if (quality < 1 || quality > 100) fail(what, path, "quality " + std::to_string(quality) + " outside [1, 100]");
  const Tensor c = rgb.contiguous();
  const int64_t H = c.size(1), W = c.size(2);
  if (W > 65535 || H > 65535) fail(what, path, "JPEG images are at most 65535 pixels wide and high");
  std::vector<uint8_t> hwc(size_t(3 * H * W));
  const uint8_t* p = c.data<uint8_t>();
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t i = 0; i < H * W; ++i) hwc[size_t(i * 3 + ch)] = p[ch * H * W + i];
  std::vector<uint8_t> jpg;
  if (!stbi_write_jpg_to_func(&stbi_to_vector, &jpg, int(W), int(H), 3, hwc.data(), quality)) fail(what, path, "JPEG encoding failed");
  write_bytes(what, path, jpg);
}

void write_label_png(const std::string& path, const Tensor& label) {
  const char* what = "write_label_png";
  check_cpu(what, path, label);
  check_shape(what, path, label, {}, 2);
  const Tensor c = label.to(DType::Int64).contiguous();
  const int64_t n = c.numel();
  std::vector<uint8_t> grey(static_cast<size_t>(n));
  const int64_t* p = c.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] > 255) fail(what, path, "label value " + std::to_string(p[i]) + " outside [0, 255]");
    grey[size_t(i)] = uint8_t(p[i]);
  }
  write_png8(what, path, grey.data(), c.size(1), c.size(0), 1);
}

void write_depth_png(const std::string& path, const Tensor& depth) {
  const char* what = "write_depth_png";
  check_cpu(what, path, depth);
  const Tensor d = depth.dim() == 3 ? depth.squeeze(0) : depth;
  check_shape(what, path, d, {}, 2);
  const Tensor c = d.to(DType::Float32).contiguous();
  const float* p = c.data<float>();
  std::vector<uint16_t> mm(size_t(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) {
    const float v = p[i];
    if (!(std::isfinite(v) && v > 0.0f)) {
      mm[size_t(i)] = 0;
      continue;
    }
    const float r = std::round(v * 1000.0f);
    if (r > 65535.0f) fail(what, path, "depth " + std::to_string(v) + " m exceeds the 16-bit range (65.535 m)");
    mm[size_t(i)] = uint16_t(r);
  }
  write_png16(path, mm.data(), c.size(1), c.size(0));
}

void write_normal_png(const std::string& path, const Tensor& normal) {
  const char* what = "write_normal_png";
  check_cpu(what, path, normal);
  check_shape(what, path, normal, {3}, 3);
  const Tensor c = normal.to(DType::Float32).contiguous();
  const int64_t H = c.size(1), W = c.size(2), HW = H * W;
  const float* p = c.data<float>();
  std::vector<uint8_t> hwc(size_t(3 * HW));
  for (int64_t i = 0; i < HW; ++i) {
    const float x = p[i], y = p[HW + i], z = p[2 * HW + i];
    const bool invalid = x == 0.0f && y == 0.0f && z == 0.0f;
    hwc[size_t(i * 3)] = invalid ? 0 : encode_normal_component(x);
    hwc[size_t(i * 3 + 1)] = invalid ? 0 : encode_normal_component(y);
    hwc[size_t(i * 3 + 2)] = invalid ? 0 : encode_normal_component(z);
  }
  write_png8(what, path, hwc.data(), W, H, 3);
}

// ---------------------------------------------------------------------------------------------
// Note [16-bit PNG encoder]
//
// stb_image_write only writes 8-bit PNGs, and depth needs 16 bits (millimetres up to 65 m).
// A PNG is simple enough to write by hand when the pixel data are not compressed:
//
//   8-byte signature  89 50 4E 47 0D 0A 1A 0A
//   chunks            [length: u32 BE][type: 4 ASCII][data][crc32 of type + data: u32 BE]
//     IHDR            width u32, height u32, bit depth 16, colour type 0 (grey),
//                     compression 0, filter 0, interlace 0
//     IDAT            a zlib stream of the "filtered" rows: each row is one filter-type byte
//                     (0 = None) followed by its samples, 16-bit big-endian
//     IEND            empty
//
//   zlib stream       CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (makes CMF*256+FLG a
//                     multiple of 31, no dictionary), deflate blocks, adler32 BE of the data
//   stored block      1 byte: BFINAL in bit 0, BTYPE = 00 (stored) in bits 1-2; then
//                     LEN u16 LE, NLEN = ~LEN u16 LE, and LEN raw bytes (LEN <= 65535)
//
// The files are about as large as the raw samples (depth maps compress poorly anyway) and
// any PNG reader accepts them; the tests read them back with stbi_load_16.
// ---------------------------------------------------------------------------------------------

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const uint8_t* data, size_t n, uint32_t adler) {
  uint32_t a = adler & 0xFFFF, b = adler >> 16;
  for (size_t i = 0; i < n; ++i) {
    a = (a + data[i]) % 65521;
    b = (b + a) % 65521;
  }
  return (b << 16) | a;
}

namespace {

void put_u32_be(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(uint8_t(v >> 24)), out.push_back(uint8_t(v >> 16)), out.push_back(uint8_t(v >> 8)), out.push_back(uint8_t(v));
}

void put_chunk(std::vector<uint8_t>& png, const char type[4], const std::vector<uint8_t>& data) {
  put_u32_be(png, uint32_t(data.size()));
  const size_t type_at = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_u32_be(png, crc32(png.data() + type_at, 4 + data.size()));
}

}  // namespace

void write_png16(const std::string& path, const uint16_t* samples, int64_t width, int64_t height) {
  const char* what = "write_png16";
  if (width <= 0 || height <= 0 || width > (1 << 24) || height > (1 << 24)) fail(what, path, "bad image size");

  // The filtered image: per row a filter byte 0 and big-endian samples.
  const size_t row_bytes = 1 + 2 * size_t(width);
  std::vector<uint8_t> raw(row_bytes * size_t(height));
  for (int64_t y = 0; y < height; ++y) {
    uint8_t* r = raw.data() + size_t(y) * row_bytes;
    r[0] = 0;
    for (int64_t x = 0; x < width; ++x) {
      const uint16_t v = samples[y * width + x];
      r[1 + 2 * x] = uint8_t(v >> 8);
      r[2 + 2 * x] = uint8_t(v & 0xFF);
    }
  }

  // zlib stream of stored deflate blocks.
  std::vector<uint8_t> z = {0x78, 0x01};
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + len == raw.size();
    z.push_back(last ? 1 : 0);
    z.push_back(uint8_t(len & 0xFF)), z.push_back(uint8_t(len >> 8));
    z.push_back(uint8_t(~len & 0xFF)), z.push_back(uint8_t((~len >> 8) & 0xFF));
    z.insert(z.end(), raw.begin() + std::ptrdiff_t(pos), raw.begin() + std::ptrdiff_t(pos + len));
    pos += len;
  } while (pos < raw.size());
  put_u32_be(z, adler32(raw.data(), raw.size()));

  std::vector<uint8_t> ihdr;
  put_u32_be(ihdr, uint32_t(width));
  put_u32_be(ihdr, uint32_t(height));
  ihdr.insert(ihdr.end(), {16, 0, 0, 0, 0});  // bit depth, colour type grey, compression, filter, interlace

  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", z);
  put_chunk(png, "IEND", {});
  write_bytes(what, path, png);
}

}  // namespace mila::data
