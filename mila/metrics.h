// metrics.h - SPEC 4.5's evaluation metrics, pooled over the pixels of a whole data set.
//
//   seg     confusion matrix over the non-ignored pixels (label 255 ignored); mIoU = mean over
//           the classes with a non-empty union (TP + FP + FN > 0) of TP / (TP + FP + FN);
//           pixel accuracy = trace / total. The prediction is the argmax over the logits'
//           channels (ties: the lowest class, as torch.argmax).
//   depth   over pixels with gt > 0: abs = mean |p - g|, rel = mean |p - g| / g.
//   normal  over pixels whose gt vector is non-zero: the angle in degrees between prediction
//           and ground truth (both normalized; a zero prediction counts as 90 degrees);
//           mean, median, and the percentages strictly under 11.25, 22.5 and 30 degrees.
//
// Pooled, not averaged per batch: every sum is over all pixels added so far. The median of
// the angles comes from a histogram of kAngleBins bins over [0, 180] degrees (0.001 degree
// each, so NYUv2's 654 x 5 x 307200 angles need no storage): the value at rank (n - 1) / 2
// (n odd) or the mean of ranks n/2 - 1 and n/2 (n even), as numpy's median, each rank's
// value taken as the centre of its bin: exact to 0.0005 degree.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mila/config.h"
#include "tensor/tensor.h"

namespace mila {

struct MetricResults {
  bool has_seg = false;
  double miou = 0, pixel_acc = 0;   // fractions in [0, 1]
  std::vector<double> class_iou;    // per class; NaN where the union is empty
  bool has_depth = false;
  double depth_abs = 0, depth_rel = 0;
  bool has_normal = false;
  double angle_mean = 0, angle_median = 0;        // degrees
  double within_11 = 0, within_22 = 0, within_30 = 0;  // percentages of the valid pixels
  int64_t frames = 0;  // images passed to add() (the add_* calls alone do not count them)
};

class MetricAccumulator {
 public:
  static constexpr int64_t kAngleBins = 180000;
  explicit MetricAccumulator(int64_t num_classes);
  // logits float [B, K, H, W] with K = num_classes; target int64 [B, H, W], values in
  // [0, K) or 255 (anything else throws, naming the value).
  void add_seg(const Tensor& logits, const Tensor& target);
  void add_depth(const Tensor& pred, const Tensor& gt);    // float [B, 1, H, W] each
  void add_normal(const Tensor& pred, const Tensor& gt);   // float [B, 3, H, W] each
  // Every task of a model's output map by name (kTaskNames; other names throw).
  void add(const std::map<std::string, Tensor>& outputs, const Tensor& seg, const Tensor& depth, const Tensor& normal);
  void merge(const MetricAccumulator& other);
  MetricResults results() const;
  int64_t num_classes() const { return classes_; }

 private:
  int64_t classes_;
  int64_t frames_ = 0;
  bool seg_ = false, depth_ = false, normal_ = false;
  std::vector<int64_t> confusion_;  // [gt][pred]
  double depth_abs_ = 0, depth_rel_ = 0;
  int64_t depth_n_ = 0;
  std::vector<int64_t> angle_hist_;
  double angle_sum_ = 0;
  int64_t angle_n_ = 0, under_11_ = 0, under_22_ = 0, under_30_ = 0;
};

// A table with the paper's columns: mIoU, pixel acc., depth abs and rel error, normal angle
// mean and median, % under 11.25 / 22.5 / 30 degrees (tasks not present are left out).
std::string metrics_table(const MetricResults& r, const std::string& title = "");
// The results as one line of JSON (for logs).
std::string metrics_json(const MetricResults& r);

}  // namespace mila
