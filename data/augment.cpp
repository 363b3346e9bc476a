// augment.cpp - scale + crop + flip resampling and colour jitter (see augment.h).
//
// Shape legend: T frames, H x W maps; all tensors contiguous CPU (as load_clip makes them).
#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace mila::data {

AugmentParams draw_augment_params(const AugmentConfig& c, int64_t H, int64_t W, Generator& gen) {
  const double u_scale = gen.next_uniform(), u_y = gen.next_uniform(), u_x = gen.next_uniform(), u_flip = gen.next_uniform();
  const double u_b = gen.next_uniform(), u_c = gen.next_uniform(), u_s = gen.next_uniform();
  if (!(c.scale_min >= 1.0 && c.scale_max >= c.scale_min))
    throw std::invalid_argument("augment: need 1 <= scale_min <= scale_max (got " + std::to_string(c.scale_min) + ", " +
                                std::to_string(c.scale_max) + ")");
  AugmentParams p;
  p.scale = c.scale_min + (c.scale_max - c.scale_min) * u_scale;
  const int64_t Hs = std::llround(double(H) * p.scale), Ws = std::llround(double(W) * p.scale);
  p.crop_y = std::min(int64_t(u_y * double(Hs - H + 1)), Hs - H);
  p.crop_x = std::min(int64_t(u_x * double(Ws - W + 1)), Ws - W);
  p.flip = c.flip && u_flip < 0.5;
  auto factor = [](double range, double u) { return range > 0 ? 1.0 - range + 2.0 * range * u : 1.0; };
  p.brightness = factor(c.brightness, u_b);
  p.contrast = factor(c.contrast, u_c);
  p.saturation = factor(c.saturation, u_s);
  p.depth_factor = c.scale_depth ? 1.0 / p.scale : 1.0;
  return p;
}

namespace {

// Where output row/column i reads the source, per axis: the resized map has `scaled` pixels,
// the output window starts at `crop`. Bilinear: i0, i1 and the weight of i1; nearest: near.
struct AxisMap {
  std::vector<int64_t> i0, i1, near;
  std::vector<float> w1;
};

AxisMap axis_map(int64_t n, int64_t scaled, int64_t crop, bool flip) {
  AxisMap m;
  const double ratio = double(n) / double(scaled);  // source pixels per resized pixel
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = (flip ? n - 1 - i : i) + crop;  // index in the resized map
    const double src = std::max((double(j) + 0.5) * ratio - 0.5, 0.0);
    const int64_t a = std::min(int64_t(src), n - 1);
    m.i0.push_back(a);
    m.i1.push_back(std::min(a + 1, n - 1));
    m.w1.push_back(float(src - double(a)));
    m.near.push_back(std::min(int64_t((double(j) + 0.5) * ratio), n - 1));
  }
  return m;
}

// One plane [H, W] resampled bilinearly: out[y, x] from the four neighbours.
void bilinear_plane(const float* in, float* out, int64_t W, const AxisMap& ym, const AxisMap& xm) {
  const int64_t H = int64_t(ym.i0.size());
  for (int64_t y = 0; y < H; ++y) {
    const float wy1 = ym.w1[size_t(y)], wy0 = 1.0f - wy1;
    const float* r0 = in + ym.i0[size_t(y)] * W;
    const float* r1 = in + ym.i1[size_t(y)] * W;
    for (int64_t x = 0; x < W; ++x) {
      const float wx1 = xm.w1[size_t(x)], wx0 = 1.0f - wx1;
      const int64_t x0 = xm.i0[size_t(x)], x1 = xm.i1[size_t(x)];
      out[y * W + x] = wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1]);
    }
  }
}

void clamp01(float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = std::clamp(p[i], 0.0f, 1.0f);
}

// Colour jitter of one frame [3, H, W] in [0, 1], in place.
void jitter_frame(float* f, int64_t HW, const AugmentParams& p) {
  float* r = f;
  float* g = f + HW;
  float* b = f + 2 * HW;
  if (p.brightness != 1.0) {
    for (int64_t i = 0; i < 3 * HW; ++i) f[i] *= float(p.brightness);
    clamp01(f, 3 * HW);
  }
  if (p.contrast != 1.0) {
    double sum = 0;
    for (int64_t i = 0; i < HW; ++i) sum += 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i];
    const float mean = float(sum / double(HW)), c = float(p.contrast);
    for (int64_t i = 0; i < 3 * HW; ++i) f[i] = (f[i] - mean) * c + mean;
    clamp01(f, 3 * HW);
  }
  if (p.saturation != 1.0) {
    const float s = float(p.saturation);
    for (int64_t i = 0; i < HW; ++i) {
      const float grey = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
      r[i] = (r[i] - grey) * s + grey;
      g[i] = (g[i] - grey) * s + grey;
      b[i] = (b[i] - grey) * s + grey;
    }
    clamp01(f, 3 * HW);
  }
}

void check_clip(const ClipData& c) {
  auto ok = [](const Tensor& t, DType dt) { return t.defined() && t.dtype() == dt && t.is_contiguous() && t.device() == Device::cpu(); };
  if (!ok(c.frames, DType::Float32) || !ok(c.seg, DType::Int64) || !ok(c.depth, DType::Float32) || !ok(c.normal, DType::Float32) ||
      c.frames.dim() != 4 || c.frames.size(1) != 3 || c.seg.dim() != 2 || c.depth.dim() != 3 || c.normal.dim() != 3)
    throw std::invalid_argument("augment_clip: expected contiguous CPU frames float32 [T, 3, H, W], seg int64 [H, W], depth float32 "
                                "[1, H, W], normal float32 [3, H, W]");
  const int64_t H = c.frames.size(2), W = c.frames.size(3);
  if (c.seg.size(0) != H || c.seg.size(1) != W || c.depth.size(0) != 1 || c.depth.size(1) != H || c.depth.size(2) != W ||
      c.normal.size(0) != 3 || c.normal.size(1) != H || c.normal.size(2) != W)
    throw std::invalid_argument("augment_clip: maps of different sizes: frames " + shape_str(c.frames.shape()) + ", seg " +
                                shape_str(c.seg.shape()) + ", depth " + shape_str(c.depth.shape()) + ", normal " +
                                shape_str(c.normal.shape()));
}

}  // namespace

ClipData augment_clip(const ClipData& clip, const AugmentParams& p) {
  check_clip(clip);
  const int64_t T = clip.frames.size(0), H = clip.frames.size(2), W = clip.frames.size(3), HW = H * W;
  const int64_t Hs = std::llround(double(H) * p.scale), Ws = std::llround(double(W) * p.scale);
  if (p.scale < 1.0 || p.crop_y < 0 || p.crop_x < 0 || p.crop_y + H > Hs || p.crop_x + W > Ws)
    throw std::invalid_argument("augment_clip: crop window outside the resized map (scale " + std::to_string(p.scale) + ")");
  const AxisMap ym = axis_map(H, Hs, p.crop_y, false), xm = axis_map(W, Ws, p.crop_x, p.flip);

  ClipData out;
  out.frames = Tensor::allocate({T, 3, H, W}, DType::Float32, Device::cpu());
  out.seg = Tensor::allocate({H, W}, DType::Int64, Device::cpu());
  out.depth = Tensor::allocate({1, H, W}, DType::Float32, Device::cpu());
  out.normal = Tensor::allocate({3, H, W}, DType::Float32, Device::cpu());

  // RGB: bilinear per plane, then the colour jitter per frame.
  const float* fin = clip.frames.data<float>();
  float* fout = out.frames.data<float>();
  for (int64_t plane = 0; plane < T * 3; ++plane) bilinear_plane(fin + plane * HW, fout + plane * HW, W, ym, xm);
  for (int64_t t = 0; t < T; ++t) jitter_frame(fout + t * 3 * HW, HW, p);

  // Labels and depth: nearest.
  const int64_t* sin = clip.seg.data<int64_t>();
  int64_t* sout = out.seg.data<int64_t>();
  const float* din = clip.depth.data<float>();
  float* dout = out.depth.data<float>();
  const float depth_factor = float(p.depth_factor);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const int64_t src = ym.near[size_t(y)] * W + xm.near[size_t(x)];
      sout[y * W + x] = sin[src];
      dout[y * W + x] = din[src] * depth_factor;
    }

  // Normals: bilinear over valid neighbours, x negated when flipped, renormalized.
  const float* nin = clip.normal.data<float>();
  float* nout = out.normal.data<float>();
  const float flip_x = p.flip ? -1.0f : 1.0f;
  auto valid = [&](int64_t i) { return nin[i] != 0.0f || nin[HW + i] != 0.0f || nin[2 * HW + i] != 0.0f; };
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const int64_t o = y * W + x;
      float v[3] = {0, 0, 0};
      if (valid(ym.near[size_t(y)] * W + xm.near[size_t(x)])) {
        const float wy1 = ym.w1[size_t(y)], wx1 = xm.w1[size_t(x)];
        const int64_t ys[2] = {ym.i0[size_t(y)], ym.i1[size_t(y)]}, xs[2] = {xm.i0[size_t(x)], xm.i1[size_t(x)]};
        const float wy[2] = {1.0f - wy1, wy1}, wx[2] = {1.0f - wx1, wx1};
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) {
            const int64_t src = ys[a] * W + xs[b];
            if (!valid(src)) continue;
            for (int c = 0; c < 3; ++c) v[c] += wy[a] * wx[b] * nin[c * HW + src];
          }
        const float norm = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        if (norm > 1e-6f) {
          v[0] *= flip_x / norm, v[1] /= norm, v[2] /= norm;
        } else {
          v[0] = v[1] = v[2] = 0;
        }
      }
      for (int c = 0; c < 3; ++c) nout[c * HW + o] = v[c];
    }
  return out;
}

}  // namespace mila::data
