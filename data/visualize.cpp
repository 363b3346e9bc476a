// visualize.cpp - see visualize.h.
#include "data/visualize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "data/video_dataset.h"

namespace mila::data {
namespace {

void check(bool ok, const std::string& fn, const Tensor& t, const char* want) {
  if (!ok) throw std::invalid_argument(fn + ": expected " + want + ", got " + shape_str(t.shape()) + " " +
                                       dtype_name(t.dtype()) + " (data/visualize.cpp)");
}

// PASCAL VOC's palette: the bits of the class id spread over the high bits of R, G, B.
void palette(int64_t c, uint8_t rgb[3]) {
  rgb[0] = rgb[1] = rgb[2] = 0;
  for (int shift = 7; c > 0; --shift, c >>= 3) {
    rgb[0] |= uint8_t(((c >> 0) & 1) << shift);
    rgb[1] |= uint8_t(((c >> 1) & 1) << shift);
    rgb[2] |= uint8_t(((c >> 2) & 1) << shift);
  }
}

// A smooth blue -> cyan -> yellow -> red ramp for t in [0, 1] (piecewise linear through
// five stops; close to matplotlib's "turbo" without its table).
void ramp(double t, uint8_t rgb[3]) {
  static const double stops[5][3] = {{48, 18, 59}, {40, 160, 230}, {120, 250, 100}, {250, 190, 40}, {122, 4, 3}};
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int i = std::min(int(t), 3);
  const double f = t - i;
  for (int k = 0; k < 3; ++k) rgb[k] = uint8_t(std::lround(stops[i][k] * (1 - f) + stops[i + 1][k] * f));
}

}  // namespace

Tensor segmentation_rgb(const Tensor& labels) {
  check(labels.dim() == 2 && labels.dtype() == DType::Int64, "segmentation_rgb", labels, "int64 [H, W]");
  const Tensor l = labels.contiguous();
  const int64_t n = l.numel();
  Tensor out = Tensor::allocate({3, l.size(0), l.size(1)}, DType::UInt8, Device::cpu());
  const int64_t* src = l.data<int64_t>();
  uint8_t* dst = out.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    uint8_t rgb[3] = {0, 0, 0};
    if (src[i] >= 0 && src[i] != 255) palette(src[i] + 1, rgb);  // +1: class 0 is not black
    for (int k = 0; k < 3; ++k) dst[k * n + i] = rgb[k];
  }
  return out;
}

Tensor depth_rgb(const Tensor& depth, double lo, double hi) {
  check((depth.dim() == 3 && depth.size(0) == 1) || depth.dim() == 2, "depth_rgb", depth, "float [1, H, W] or [H, W]");
  const Tensor d = depth.to(DType::Float32).contiguous();
  const int64_t h = d.size(d.dim() - 2), w = d.size(d.dim() - 1), n = h * w;
  Tensor out = Tensor::allocate({3, h, w}, DType::UInt8, Device::cpu());
  const float* src = d.data<float>();
  uint8_t* dst = out.data<uint8_t>();
  const double span = hi > lo ? hi - lo : 1.0;
  for (int64_t i = 0; i < n; ++i) {
    uint8_t rgb[3] = {0, 0, 0};
    if (std::isfinite(src[i]) && src[i] > 0) ramp((src[i] - lo) / span, rgb);
    for (int k = 0; k < 3; ++k) dst[k * n + i] = rgb[k];
  }
  return out;
}

Tensor normal_rgb(const Tensor& normal) {
  check(normal.dim() == 3 && normal.size(0) == 3, "normal_rgb", normal, "float [3, H, W]");
  const Tensor v = normal.to(DType::Float32).contiguous();
  const int64_t n = v.size(1) * v.size(2);
  Tensor out = Tensor::allocate(v.shape(), DType::UInt8, Device::cpu());
  const float* src = v.data<float>();
  uint8_t* dst = out.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const bool zero = src[i] == 0 && src[n + i] == 0 && src[2 * n + i] == 0;
    for (int k = 0; k < 3; ++k)
      dst[k * n + i] = zero ? 0 : uint8_t(std::lround(std::clamp((src[k * n + i] + 1.0) * 127.5, 0.0, 255.0)));
  }
  return out;
}

Tensor image_rgb(const Tensor& frame) {
  check(frame.dim() == 3 && frame.size(0) == 3, "image_rgb", frame, "float [3, H, W]");
  const Tensor v = frame.to(DType::Float32).contiguous();
  const int64_t n = v.size(1) * v.size(2);
  Tensor out = Tensor::allocate(v.shape(), DType::UInt8, Device::cpu());
  const float* src = v.data<float>();
  uint8_t* dst = out.data<uint8_t>();
  for (int k = 0; k < 3; ++k)
    for (int64_t i = 0; i < n; ++i) {
      const double rgb = src[k * n + i] * kImageStd[k] + kImageMean[k];
      dst[k * n + i] = uint8_t(std::lround(std::clamp(rgb, 0.0, 1.0) * 255.0));
    }
  return out;
}

Tensor argmax_channels(const Tensor& logits) {
  check(logits.dim() == 3, "argmax_channels", logits, "[K, H, W]");
  const Tensor v = logits.to(DType::Float32).contiguous();
  const int64_t K = v.size(0), n = v.size(1) * v.size(2);
  Tensor out = Tensor::allocate({v.size(1), v.size(2)}, DType::Int64, Device::cpu());
  const float* src = v.data<float>();
  int64_t* dst = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (src[k * n + i] > src[best * n + i]) best = k;
    dst[i] = best;
  }
  return out;
}

namespace {
constexpr int64_t kGutter = 2;

Tensor stack_images(const std::vector<Tensor>& tiles, bool horizontal) {
  const char* fn = horizontal ? "hstack_images" : "vstack_images";
  if (tiles.empty()) throw std::invalid_argument(std::string(fn) + ": no tiles (data/visualize.cpp)");
  const int64_t fixed = horizontal ? tiles[0].size(1) : tiles[0].size(2);
  int64_t total = -kGutter;
  for (const Tensor& t : tiles) {
    check(t.dim() == 3 && t.size(0) == 3 && t.dtype() == DType::UInt8 && (horizontal ? t.size(1) : t.size(2)) == fixed, fn, t,
          horizontal ? "uint8 [3, H, W] tiles of one height" : "uint8 [3, H, W] tiles of one width");
    total += (horizontal ? t.size(2) : t.size(1)) + kGutter;
  }
  const int64_t H = horizontal ? fixed : total, W = horizontal ? total : fixed;
  Tensor out = Tensor::allocate({3, H, W}, DType::UInt8, Device::cpu());
  uint8_t* dst = out.data<uint8_t>();
  std::fill(dst, dst + 3 * H * W, uint8_t(255));
  int64_t at = 0;
  for (const Tensor& tile : tiles) {
    const Tensor t = tile.contiguous();
    const int64_t h = t.size(1), w = t.size(2);
    const uint8_t* src = t.data<uint8_t>();
    for (int k = 0; k < 3; ++k)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const int64_t oy = horizontal ? y : at + y, ox = horizontal ? at + x : x;
          dst[(k * H + oy) * W + ox] = src[(k * h + y) * w + x];
        }
    at += (horizontal ? w : h) + kGutter;
  }
  return out;
}
}  // namespace

Tensor hstack_images(const std::vector<Tensor>& tiles) { return stack_images(tiles, true); }
Tensor vstack_images(const std::vector<Tensor>& tiles) { return stack_images(tiles, false); }

}  // namespace mila::data
