// metrics.cpp - see metrics.h.
#include "mila/metrics.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace mila {
namespace {

constexpr double kPi = 3.14159265358979323846;

// A CPU float32 contiguous copy (or the tensor itself) after checking its shape.
Tensor checked(const Tensor& t, const char* fn, const char* what, int64_t dims, int64_t channels, DType dtype) {
  if (!t.defined() || t.dim() != dims || (channels > 0 && t.size(1) != channels) || !t.device().is_cpu())
    throw std::invalid_argument(std::string("MetricAccumulator::") + fn + ": expected " + what + " on the CPU, got " +
                                (t.defined() ? shape_str(t.shape()) + " on " + t.device().str() : std::string("an undefined tensor")) +
                                " (mila/metrics.cpp)");
  return t.to(dtype).contiguous();
}

void same_maps(const Tensor& a, const Tensor& b, const char* fn) {
  const int64_t da = a.dim(), db = b.dim();
  if (a.size(0) != b.size(0) || a.size(da - 2) != b.size(db - 2) || a.size(da - 1) != b.size(db - 1))
    throw std::invalid_argument(std::string("MetricAccumulator::") + fn + ": prediction " + shape_str(a.shape()) +
                                " and ground truth " + shape_str(b.shape()) + " differ in batch or map size (mila/metrics.cpp)");
}

}  // namespace

MetricAccumulator::MetricAccumulator(int64_t num_classes) : classes_(num_classes) {
  if (num_classes < 1) throw std::invalid_argument("MetricAccumulator: num_classes must be >= 1, got " + std::to_string(num_classes));
  confusion_.assign(size_t(classes_ * classes_), 0);
  angle_hist_.assign(size_t(kAngleBins), 0);
}

void MetricAccumulator::add_seg(const Tensor& logits_in, const Tensor& target_in) {
  const Tensor logits = checked(logits_in, "add_seg", "logits [B, num_classes, H, W]", 4, classes_, DType::Float32);
  const Tensor target = checked(target_in, "add_seg", "labels int64 [B, H, W]", 3, 0, DType::Int64);
  same_maps(logits, target, "add_seg");
  const int64_t B = logits.size(0), K = classes_, n = logits.size(2) * logits.size(3);
  const float* x = logits.data<float>();
  const int64_t* t = target.data<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < n; ++p) {
      const int64_t g = t[b * n + p];
      if (g == 255) continue;
      if (g < 0 || g >= K)
        throw std::out_of_range("MetricAccumulator::add_seg: label " + std::to_string(g) + " at image " + std::to_string(b) +
                                ", position " + std::to_string(p) + " is outside [0, " + std::to_string(K) + ") and not 255");
      const float* px = x + b * K * n + p;
      int64_t best = 0;
      for (int64_t k = 1; k < K; ++k)
        if (px[k * n] > px[best * n]) best = k;
      ++confusion_[size_t(g * K + best)];
    }
  seg_ = true;
}

void MetricAccumulator::add_depth(const Tensor& pred_in, const Tensor& gt_in) {
  const Tensor pred = checked(pred_in, "add_depth", "float [B, 1, H, W]", 4, 1, DType::Float32);
  const Tensor gt = checked(gt_in, "add_depth", "float [B, 1, H, W]", 4, 1, DType::Float32);
  same_maps(pred, gt, "add_depth");
  const float* p = pred.data<float>();
  const float* g = gt.data<float>();
  for (int64_t i = 0; i < pred.numel(); ++i)
    if (g[i] > 0) {
      const double e = std::abs(double(p[i]) - double(g[i]));
      depth_abs_ += e;
      depth_rel_ += e / double(g[i]);
      ++depth_n_;
    }
  depth_ = true;
}

void MetricAccumulator::add_normal(const Tensor& pred_in, const Tensor& gt_in) {
  const Tensor pred = checked(pred_in, "add_normal", "float [B, 3, H, W]", 4, 3, DType::Float32);
  const Tensor gt = checked(gt_in, "add_normal", "float [B, 3, H, W]", 4, 3, DType::Float32);
  same_maps(pred, gt, "add_normal");
  const int64_t B = pred.size(0), n = pred.size(2) * pred.size(3);
  const float* pp = pred.data<float>();
  const float* gp = gt.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i) {
      double dot = 0, p2 = 0, g2 = 0;
      for (int64_t c = 0; c < 3; ++c) {
        const double pv = pp[(b * 3 + c) * n + i], gv = gp[(b * 3 + c) * n + i];
        dot += pv * gv, p2 += pv * pv, g2 += gv * gv;
      }
      if (g2 == 0) continue;  // invalid ground truth
      const double cosine = p2 > 0 ? std::clamp(dot / std::sqrt(p2 * g2), -1.0, 1.0) : 0.0;
      const double angle = std::acos(cosine) * 180.0 / kPi;
      angle_sum_ += angle;
      ++angle_n_;
      under_11_ += angle < 11.25, under_22_ += angle < 22.5, under_30_ += angle < 30.0;
      ++angle_hist_[size_t(std::min<int64_t>(int64_t(angle / 180.0 * double(kAngleBins)), kAngleBins - 1))];
    }
  normal_ = true;
}

void MetricAccumulator::add(const std::map<std::string, Tensor>& outputs, const Tensor& seg, const Tensor& depth,
                            const Tensor& normal) {
  int64_t batch = 0;
  for (const auto& [name, y] : outputs) {
    Task task;
    try {
      task = kTaskNames.parse(name);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("MetricAccumulator::add: ") + e.what());
    }
    switch (task) {
      case Task::seg: add_seg(y, seg); break;
      case Task::depth: add_depth(y, depth); break;
      case Task::normal: add_normal(y, normal); break;
    }
    batch = y.size(0);
  }
  frames_ += batch;  // once per image, whichever tasks the outputs hold
}

void MetricAccumulator::merge(const MetricAccumulator& o) {
  if (o.classes_ != classes_)
    throw std::invalid_argument("MetricAccumulator::merge: " + std::to_string(classes_) + " classes against " + std::to_string(o.classes_));
  for (size_t i = 0; i < confusion_.size(); ++i) confusion_[i] += o.confusion_[i];
  for (size_t i = 0; i < angle_hist_.size(); ++i) angle_hist_[i] += o.angle_hist_[i];
  depth_abs_ += o.depth_abs_, depth_rel_ += o.depth_rel_, depth_n_ += o.depth_n_;
  angle_sum_ += o.angle_sum_, angle_n_ += o.angle_n_;
  under_11_ += o.under_11_, under_22_ += o.under_22_, under_30_ += o.under_30_;
  frames_ += o.frames_;
  seg_ |= o.seg_, depth_ |= o.depth_, normal_ |= o.normal_;
}

MetricResults MetricAccumulator::results() const {
  MetricResults r;
  r.frames = frames_;
  r.has_seg = seg_, r.has_depth = depth_, r.has_normal = normal_;
  if (seg_) {
    const int64_t K = classes_;
    int64_t correct = 0, total = 0, counted = 0;
    double iou_sum = 0;
    r.class_iou.assign(size_t(K), std::numeric_limits<double>::quiet_NaN());
    for (int64_t k = 0; k < K; ++k) {
      int64_t gt_k = 0, pred_k = 0;
      for (int64_t j = 0; j < K; ++j) gt_k += confusion_[size_t(k * K + j)], pred_k += confusion_[size_t(j * K + k)];
      const int64_t tp = confusion_[size_t(k * K + k)], uni = gt_k + pred_k - tp;
      correct += tp, total += gt_k;
      if (uni > 0) {
        r.class_iou[size_t(k)] = double(tp) / double(uni);
        iou_sum += r.class_iou[size_t(k)], ++counted;
      }
    }
    r.miou = counted > 0 ? iou_sum / double(counted) : 0.0;
    r.pixel_acc = total > 0 ? double(correct) / double(total) : 0.0;
  }
  if (depth_ && depth_n_ > 0) r.depth_abs = depth_abs_ / double(depth_n_), r.depth_rel = depth_rel_ / double(depth_n_);
  if (normal_ && angle_n_ > 0) {
    const double n = double(angle_n_);
    r.angle_mean = angle_sum_ / n;
    r.within_11 = 100.0 * double(under_11_) / n, r.within_22 = 100.0 * double(under_22_) / n, r.within_30 = 100.0 * double(under_30_) / n;
    // The value of the angle of rank `rank` (0-based, ascending): its bin's centre.
    auto at_rank = [&](int64_t rank) {
      int64_t seen = 0;
      for (int64_t b = 0; b < kAngleBins; ++b) {
        seen += angle_hist_[size_t(b)];
        if (seen > rank) return (double(b) + 0.5) * 180.0 / double(kAngleBins);
      }
      return 180.0;
    };
    r.angle_median = angle_n_ % 2 == 1 ? at_rank(angle_n_ / 2) : 0.5 * (at_rank(angle_n_ / 2 - 1) + at_rank(angle_n_ / 2));
  }
  return r;
}

std::string metrics_table(const MetricResults& r, const std::string& title) {
  std::string head, row;
  char buf[64];
  auto cell = [&](const char* name, double v, const char* fmt) {
    std::snprintf(buf, sizeof buf, "%10s", name);
    head += buf;
    std::snprintf(buf, sizeof buf, fmt, v);
    row += buf;
  };
  if (r.has_seg) cell("mIoU %", 100 * r.miou, "%10.2f"), cell("pix acc %", 100 * r.pixel_acc, "%10.2f");
  if (r.has_depth) cell("abs err", r.depth_abs, "%10.4f"), cell("rel err", r.depth_rel, "%10.4f");
  if (r.has_normal) {
    cell("angle", r.angle_mean, "%10.2f"), cell("median", r.angle_median, "%10.2f");
    cell("<11.25 %", r.within_11, "%10.2f"), cell("<22.5 %", r.within_22, "%10.2f"), cell("<30 %", r.within_30, "%10.2f");
  }
  std::string out = title.empty() ? "" : title + " (" + std::to_string(r.frames) + " frames)\n";
  return out + head + "\n" + row + "\n";
}

std::string metrics_json(const MetricResults& r) {
  nlohmann::json j;
  j["frames"] = r.frames;
  if (r.has_seg) j["miou"] = r.miou, j["pixel_acc"] = r.pixel_acc;
  if (r.has_depth) j["depth_abs"] = r.depth_abs, j["depth_rel"] = r.depth_rel;
  if (r.has_normal) {
    j["angle_mean"] = r.angle_mean, j["angle_median"] = r.angle_median;
    j["within_11_25"] = r.within_11, j["within_22_5"] = r.within_22, j["within_30"] = r.within_30;
  }
  return j.dump();
}

}  // namespace mila
