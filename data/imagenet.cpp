// imagenet.cpp - see imagenet.h: torchvision's ImageNet evaluation transform on uint8 images,
// the class names, top-k.
#include "data/imagenet.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "data/image_io.h"
#include "data/imagenet_classes.h"
#include "ops/cpu/parallel.h"
#include "ops/ops.h"

namespace mila::data {

namespace {

void check_image_u8(const char* what, const Tensor& image) {
  if (!image.defined()) throw std::invalid_argument(std::string(what) + ": undefined image");
  if (image.dtype() != DType::UInt8 || image.dim() != 3 || image.size(0) < 1 || image.size(1) < 1 || image.size(2) < 1)
    throw std::invalid_argument(std::string(what) + ": expected a uint8 [C, H, W] image, got " + dtype_name(image.dtype()) +
                                " " + shape_str(image.shape()));
}

}  // namespace

ImageSize resized_size(int64_t height, int64_t width, int64_t shorter) {
  if (height < 1 || width < 1 || shorter < 1)
    throw std::invalid_argument("resized_size: sizes must be positive, got " + std::to_string(height) + "x" +
                                std::to_string(width) + " to shorter side " + std::to_string(shorter));
  // torchvision: new_long = int(shorter * long / short), a float division truncated. For
  // integers below 2^53 that is the integer floor division: the float quotient is correctly
  // rounded, and a non-integer quotient is at least 1 / short away from the next integer.
  if (width <= height) return {shorter * height / width, shorter};
  return {shorter, shorter * width / height};
}

// Note [PIL's bilinear resize]
// Pillow's ImagingResample (libImaging/Resample.c, unchanged from Pillow 4.x to 10.x) maps
// output sample i of an axis to the source interval around center = (i + 0.5) * scale,
// scale = in / out, in continuous coordinates where source pixel x covers [x, x + 1). With
// filterscale = max(scale, 1) (the filter widens only when shrinking: antialiasing) and
// support = 1 * filterscale (bilinear's support is 1):
//   first = max(0, int(center - support + 0.5))           int() truncates toward zero
//   last  = min(in, int(center + support + 0.5))          exclusive
//   w_j   = triangle((first + j - center + 0.5) / filterscale),  triangle(t) = max(0, 1 - |t|)
// for j < last - first, then divided by their sum (double precision). Taps cut off by the
// border are simply dropped and the rest renormalized (no clamping or mirroring). For the
// 8-bit images here the weights become 22-bit fixed point, int(0.5 + w * 2^22), and each
// output is (2^21 + sum w_j * in_j) >> 22 clamped to [0, 255]. An image is resampled
// horizontally first, rounded to uint8, then vertically; an axis whose size does not change
// is left alone. Reproducing the rounding, the order and the intermediate uint8 is what makes
// the result bit-exact to PIL's rather than close.
ResampleTaps pil_bilinear_taps(int64_t in_size, int64_t out_size) {
  if (in_size < 1 || out_size < 1)
    throw std::invalid_argument("pil_bilinear_taps: sizes must be positive, got " + std::to_string(in_size) + " -> " +
                                std::to_string(out_size));
  const double scale = double(in_size) / double(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  const double ss = 1.0 / filterscale;
  ResampleTaps taps;
  taps.max_taps = int64_t(std::ceil(support)) * 2 + 1;  // PIL's ksize: room for any window
  taps.first.resize(size_t(out_size));
  taps.count.resize(size_t(out_size));
  taps.weights.assign(size_t(out_size * taps.max_taps), 0);
  std::vector<double> w(size_t(taps.max_taps));
  for (int64_t i = 0; i < out_size; ++i) {
    const double center = (double(i) + 0.5) * scale;
    const int64_t first = std::max<int64_t>(0, int64_t(center - support + 0.5));
    const int64_t last = std::min<int64_t>(in_size, int64_t(center + support + 0.5));
    const int64_t n = last - first;
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const double t = std::abs((double(first + j) - center + 0.5) * ss);
      w[size_t(j)] = t < 1.0 ? 1.0 - t : 0.0;
      total += w[size_t(j)];
    }
    int32_t* k = taps.weights.data() + i * taps.max_taps;
    for (int64_t j = 0; j < n; ++j) {
      const double v = total != 0.0 ? w[size_t(j)] / total : w[size_t(j)];
      k[j] = int32_t(v < 0 ? -0.5 + v * (1 << ResampleTaps::precision_bits) : 0.5 + v * (1 << ResampleTaps::precision_bits));
    }
    taps.first[size_t(i)] = first;
    taps.count[size_t(i)] = n;
  }
  return taps;
}

namespace {

// PIL's clip8: the fixed-point sum back to a uint8 sample.
uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> ResampleTaps::precision_bits;  // arithmetic shift: floor, as PIL
  return uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

Tensor resize_pil_bilinear(const Tensor& image, int64_t height, int64_t width) {
  const char* what = "resize_pil_bilinear";
  check_image_u8(what, image);
  if (image.device() != Device::cpu()) throw std::invalid_argument(std::string(what) + ": the image must be on the CPU");
  if (height < 1 || width < 1)
    throw std::invalid_argument(std::string(what) + ": output size must be positive, got " + std::to_string(height) + "x" +
                                std::to_string(width));
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  Tensor current = image.contiguous().clone();  // never alias the caller's pixels
  // Accumulators are int32 as in PIL: the weights are >= 0 and sum to about 2^22, so
  // 255 * 2^22 + 2^21 stays below 2^31.
  if (width != W) {  // horizontal pass: every row of every channel
    const ResampleTaps taps = pil_bilinear_taps(W, width);
    Tensor out = Tensor::allocate({C, H, width}, DType::UInt8, Device::cpu());
    const uint8_t* in = current.data<uint8_t>();
    uint8_t* o = out.data<uint8_t>();
    cpu::parallel_for(C * H, 16, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const uint8_t* src = in + row * W;
        uint8_t* dst = o + row * width;
        for (int64_t x = 0; x < width; ++x) {
          const int32_t* k = taps.weights.data() + x * taps.max_taps;
          const uint8_t* s = src + taps.first[size_t(x)];
          int32_t acc = 1 << (ResampleTaps::precision_bits - 1);
          for (int64_t j = 0; j < taps.count[size_t(x)]; ++j) acc += int32_t(s[j]) * k[j];
          dst[x] = clip8(acc);
        }
      }
    });
    current = out;
  }
  if (height != H) {  // vertical pass on the (possibly resized) rows
    const int64_t Wc = current.size(2);
    const ResampleTaps taps = pil_bilinear_taps(H, height);
    Tensor out = Tensor::allocate({C, height, Wc}, DType::UInt8, Device::cpu());
    const uint8_t* in = current.data<uint8_t>();
    uint8_t* o = out.data<uint8_t>();
    cpu::parallel_for(C * height, 16, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> acc(static_cast<size_t>(Wc));
      for (int64_t r = begin; r < end; ++r) {
        const int64_t c = r / height, y = r % height;
        const int32_t* k = taps.weights.data() + y * taps.max_taps;
        std::fill(acc.begin(), acc.end(), 1 << (ResampleTaps::precision_bits - 1));
        for (int64_t j = 0; j < taps.count[size_t(y)]; ++j) {
          const uint8_t* src = in + (c * H + taps.first[size_t(y)] + j) * Wc;
          for (int64_t x = 0; x < Wc; ++x) acc[size_t(x)] += int32_t(src[x]) * k[j];
        }
        uint8_t* dst = o + (c * height + y) * Wc;
        for (int64_t x = 0; x < Wc; ++x) dst[x] = clip8(acc[size_t(x)]);
      }
    });
    current = out;
  }
  return current;
}

int64_t center_crop_offset(int64_t size, int64_t crop) {
  if (crop < 1 || crop > size)
    throw std::invalid_argument("center_crop_offset: crop " + std::to_string(crop) + " does not fit in size " +
                                std::to_string(size));
  // int(round(d / 2.0)): exact for even d; for odd d the half goes to the even neighbour.
  const int64_t d = size - crop, q = d / 2;
  return d % 2 == 0 ? q : (q % 2 == 0 ? q : q + 1);
}

Tensor center_crop(const Tensor& image, int64_t height, int64_t width) {
  if (!image.defined() || image.dim() < 2)
    throw std::invalid_argument("center_crop: expected a [..., H, W] tensor");
  const int64_t H = image.size(-2), W = image.size(-1);
  if (height < 1 || width < 1 || height > H || width > W)
    throw std::invalid_argument("center_crop: a " + std::to_string(height) + "x" + std::to_string(width) +
                                " crop does not fit in " + shape_str(image.shape()));
  return image.narrow(image.dim() - 2, center_crop_offset(H, height), height)
      .narrow(image.dim() - 1, center_crop_offset(W, width), width);
}

Tensor imagenet_normalize(const Tensor& rgb8) {
  const char* what = "imagenet_normalize";
  check_image_u8(what, rgb8);
  if (rgb8.size(0) != 3)
    throw std::invalid_argument(std::string(what) + ": expected 3 channels (RGB), got " + shape_str(rgb8.shape()));
  const Tensor in = rgb8.to(Device::cpu()).contiguous();
  const int64_t HW = in.size(1) * in.size(2);
  Tensor out = Tensor::allocate(in.shape(), DType::Float32, Device::cpu());
  const uint8_t* p = in.data<uint8_t>();
  float* o = out.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < HW; ++i) {
      // Three float32 steps, as ToTensor (x.float().div(255)) and Normalize (sub_, div_) do;
      // not normalize_frames_ (video_dataset.h), whose multiply by 1 / std rounds differently.
      const float x = float(p[c * HW + i]) / 255.0f;
      const float centred = x - kImageMean[c];
      o[c * HW + i] = centred / kImageStd[c];
    }
  return out;
}

Tensor imagenet_preprocess(const Tensor& rgb8) {
  const char* what = "imagenet_preprocess";
  check_image_u8(what, rgb8);
  if (rgb8.size(0) != 3)
    throw std::invalid_argument(std::string(what) + ": expected an RGB image [3, H, W], got " + shape_str(rgb8.shape()));
  const Tensor cpu_image = rgb8.to(Device::cpu());
  const ImageSize size = resized_size(cpu_image.size(1), cpu_image.size(2));
  const Tensor resized = resize_pil_bilinear(cpu_image, size.height, size.width);
  return imagenet_normalize(center_crop(resized, kImageNetCrop, kImageNetCrop)).unsqueeze(0);
}

Tensor read_image_rgb(const std::string& path) {
  const ImageInfo info = probe_image(path);  // throws ImageError for missing or unreadable files
  if (info.bits == 8 && info.channels == 3) return read_rgb(path);
  if (info.bits == 8 && info.channels == 1) {
    // PIL's convert("RGB") of an "L" image copies the grey value into R, G and B.
    const Tensor grey = read_label(path).to(DType::UInt8);  // [H, W], values 0..255
    return grey.unsqueeze(0).expand({3, -1, -1}).contiguous();
  }
  throw ImageError("read_image_rgb: '" + path + "' has " + std::to_string(info.channels) + " channel(s) of " +
                   std::to_string(info.bits) + " bits; expected an 8-bit RGB or grey PNG/JPEG (remove an alpha channel first)");
}

const char* imagenet_class_name(int64_t index) {
  if (index < 0 || index >= kImageNetClassCount)
    throw std::out_of_range("imagenet_class_name: index " + std::to_string(index) + " is outside [0, 1000)");
  return kImageNetClasses[index];
}

std::vector<ClassScore> top_k_classes(const Tensor& logits, int64_t k) {
  if (!logits.defined() || !(logits.dim() == 1 || (logits.dim() == 2 && logits.size(0) == 1)) || logits.numel() < 1)
    throw std::invalid_argument("top_k_classes: expected logits [N] or [1, N], got " +
                                (logits.defined() ? shape_str(logits.shape()) : std::string("an undefined tensor")));
  if (k < 1) throw std::invalid_argument("top_k_classes: k must be >= 1, got " + std::to_string(k));
  const Tensor l = logits.detach().to(Device::cpu()).to(DType::Float32).contiguous();
  const float* v = l.data<float>();
  const int64_t n = l.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      throw std::invalid_argument("top_k_classes: logit " + std::to_string(i) + " is not finite (" + std::to_string(v[i]) + ")");
  k = std::min(k, n);
  // Softmax in double with the maximum subtracted (no overflow for any finite logits).
  const double m = *std::max_element(v, v + n);
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += std::exp(double(v[i]) - m);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  std::vector<ClassScore> out;
  for (int64_t r = 0; r < k; ++r) {
    const int64_t i = order[size_t(r)];
    out.push_back({i, v[i], std::exp(double(v[i]) - m) / total});
  }
  return out;
}

}  // namespace mila::data
