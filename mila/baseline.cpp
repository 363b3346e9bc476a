// baseline.cpp - see baseline.h.
#include "mila/baseline.h"

#include <algorithm>
#include <vector>

#include "mila/model.h"
#include "ops/copy.h"
#include "ops/factory.h"

namespace mila {

MetricResults constant_baseline(const data::VideoDataset& train, const data::VideoDataset& val, const Config& cfg) {
  const int64_t classes = std::max<int64_t>(cfg.task_channels(Task::seg), 1);
  std::vector<int64_t> class_count(size_t(classes), 0);
  double depth_sum = 0, normal_sum[3] = {0, 0, 0};
  int64_t depth_n = 0;
  for (int64_t i = 0; i < train.size(); ++i) {
    const data::ClipData c = train.load_clip(i, 0);
    const int64_t n = c.seg.numel();
    // Contiguous copies held by name: the pointers below read their storage.
    const Tensor seg = c.seg.contiguous(), dep = c.depth.contiguous(), nor = c.normal.contiguous();
    const int64_t* s = seg.data<int64_t>();
    const float* d = dep.data<float>();
    const float* v = nor.data<float>();
    for (int64_t p = 0; p < n; ++p) {
      if (s[p] >= 0 && s[p] < classes) ++class_count[size_t(s[p])];
      if (d[p] > 0) depth_sum += d[p], ++depth_n;
      for (int k = 0; k < 3; ++k) normal_sum[k] += v[k * n + p];
    }
  }
  const int64_t best = std::max_element(class_count.begin(), class_count.end()) - class_count.begin();
  const double depth_mean = depth_n > 0 ? depth_sum / double(depth_n) : 1.0;
  MetricAccumulator acc(classes);
  for (int64_t i = 0; i < val.size(); ++i) {
    const data::ClipData c = val.load_clip(i, 0);
    const int64_t H = c.seg.size(0), W = c.seg.size(1);
    TaskOutputs out;
    for (const TaskSpec& t : cfg.tasks) {
      Tensor y = zeros({1, t.channels, H, W});
      switch (t.task) {
        case Task::seg: copy_(y.select(1, best), full({1, H, W}, 1.0)); break;
        case Task::depth: y = full({1, 1, H, W}, depth_mean); break;
        case Task::normal:
          for (int k = 0; k < 3; ++k) copy_(y.select(1, k), full({1, H, W}, normal_sum[k]));
          break;
      }
      out[t.name()] = y;
    }
    acc.add(out, c.seg.unsqueeze(0), c.depth.unsqueeze(0), c.normal.unsqueeze(0));
  }
  return acc.results();
}

}  // namespace mila
