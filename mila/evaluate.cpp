// evaluate.cpp - see evaluate.h.
#include "mila/evaluate.h"

#include <cstdio>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "data/loader.h"
#include "data/sampler.h"

namespace mila {

MetricResults evaluate(Model& model, const data::VideoDataset& dataset, const EvalOptions& options) {
  const int64_t K = model.config().K;
  const int64_t samples = options.max_samples >= 0 ? std::min(options.max_samples, dataset.size()) : dataset.size();
  if (samples == 0) throw std::invalid_argument("evaluate: no samples in " + dataset.split_dir());
  const int64_t seg_classes = std::max<int64_t>(model.config().task_channels(Task::seg), 1);
  const Device device = model.parameters().empty() ? Device::cpu() : model.parameters().front().device();

  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  MetricAccumulator total(seg_classes);
  // eval_plans over the first `samples` samples: the plan's sample numbers are dataset numbers.
  const std::vector<data::BatchPlan> plans = data::eval_plans(samples, options.batch_size, K);
  data::PrefetchLoader loader(
      [&](int64_t i) { return data::make_batch(dataset, plans[size_t(i)], nullptr, 0); }, 0, int64_t(plans.size()), options.workers);
  data::Batch b;
  int64_t offset = -1;
  MetricAccumulator per_offset(seg_classes);
  auto report = [&] {
    if (options.verbose && offset >= 0)
      std::printf("%s", metrics_table(per_offset.results(), "offset " + std::to_string(offset)).c_str());
  };
  try {
    while (loader.next(b)) {
      if (b.offset != offset) {
        report();
        per_offset = MetricAccumulator(seg_classes);
        offset = b.offset;
      }
      const Model::ClipResult r = model.forward_clip(b.frames.to(device), b.t0, /*heads_on_last_only=*/true);
      std::map<std::string, Tensor> outputs;
      for (const auto& [task, y] : r.outputs.back()) outputs[task] = y.to(Device::cpu());
      total.add(outputs, b.seg, b.depth, b.normal);
      if (options.verbose) per_offset.add(outputs, b.seg, b.depth, b.normal);
    }
    report();
  } catch (...) {
    model.train(was_training);
    throw;
  }
  model.train(was_training);
  return total.results();
}

}  // namespace mila
