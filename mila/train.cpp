// train.cpp - see train.h.
#include "mila/train.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>

#include "autograd/function.h"
#include "ops/gradient_reversal.h"
#include "ops/binary.h"
#include "ops/losses.h"
#include "ops/reduce.h"
#include "ops/unary.h"
#include "ops/factory.h"

namespace mila {

DynamicWeightAverage::DynamicWeightAverage(std::vector<std::string> tasks, double temperature)
    : tasks_(std::move(tasks)), temperature_(temperature) {}

void DynamicWeightAverage::record(const std::string& task, double loss) {
  sum_[task] += loss;
  count_[task] += 1;
}

void DynamicWeightAverage::end_epoch() {
  std::map<std::string, double> means;
  for (const std::string& t : tasks_) means[t] = count_[t] > 0 ? sum_[t] / count_[t] : 0.0;
  epoch_means_.push_back(means);
  sum_.clear();
  count_.clear();
}

double DynamicWeightAverage::weight(const std::string& task) const {
  if (epoch_means_.size() < 2) return 1.0;
  const auto& last = epoch_means_[epoch_means_.size() - 1];
  const auto& before = epoch_means_[epoch_means_.size() - 2];
  double denom = 0;
  for (const std::string& t : tasks_) denom += std::exp(last.at(t) / std::max(before.at(t), 1e-12) / temperature_);
  return double(tasks_.size()) * std::exp(last.at(task) / std::max(before.at(task), 1e-12) / temperature_) / denom;
}

std::string DynamicWeightAverage::state_json() const {
  nlohmann::json j;
  j["sum"] = sum_;
  j["count"] = count_;
  j["epoch_means"] = epoch_means_;
  return j.dump();
}

void DynamicWeightAverage::load_state_json(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    auto sum = j.at("sum").get<std::map<std::string, double>>();
    auto count = j.at("count").get<std::map<std::string, double>>();
    auto means = j.at("epoch_means").get<std::vector<std::map<std::string, double>>>();
    for (const auto& m : means)
      for (const std::string& t : tasks_)
        if (!m.count(t)) throw std::invalid_argument("epoch means lack task '" + t + "'");
    sum_ = std::move(sum), count_ = std::move(count), epoch_means_ = std::move(means);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("DynamicWeightAverage::load_state_json: ") + e.what());
  }
}

Tensor task_loss(Task task, const Tensor& pred, const Batch& batch) {
  switch (task) {
    case Task::seg:
      // A batch with no labelled pixel contributes 0 (SPEC 4.4), not PyTorch's NaN.
      if (sum(ne(batch.seg, 255.0)).item<int64_t>() == 0) return mul(sum(pred), 0.0);
      return cross_entropy(pred, batch.seg, 255);
    case Task::depth:
      return masked_l1_loss(pred, batch.depth, gt(batch.depth, 0.0));
    case Task::normal: {
      const Tensor valid = gt(sum(abs(batch.normal), {1}), 0.0);  // a zero gt normal marks invalid
      return normal_loss(pred, batch.normal, valid);
    }
  }
  throw std::logic_error("task_loss: no loss for task " + std::to_string(int(task)));
}

LossTerms training_losses(Model& model, const Batch& batch, const DynamicWeightAverage* dwa) {
  const Config& cfg = model.config();
  const int64_t T = batch.frames.size(0), a = T - 1;
  Model::ClipResult clip = model.forward_clip(batch.frames, batch.t0, /*heads_on_last_only=*/true);
  LossTerms out;
  Tensor total;
  auto accumulate = [&](const Tensor& term) { total = total.defined() ? add(total, term) : term; };
  for (const TaskSpec& t : cfg.tasks) {
    const std::string name = t.name();
    const Tensor loss = task_loss(t.task, clip.outputs[size_t(a)].at(name), batch);
    out.task[name] = loss;
    double w = 1.0;
    if (cfg.weighting == Weighting::dwa && dwa) w = dwa->weight(name);
    if (cfg.weighting == Weighting::uncertainty) {
      // exp(-s_T) L_T + s_T with a learnable s_T ("uncertainty.<T>", starting at 0).
      const Tensor s = model.uncertainty_for(name);
      accumulate(add(mul(exp(neg(s)), loss), s));
    } else {
      accumulate(mul(loss, w));
    }
  }
  if (cfg.mimic) {
    // S from Slow without gradient, F from Fast with gradient, both of frame a; e_a is one
    // of them already, the other is one extra encoder pass in training mode.
    const bool a_is_key = model.is_keyframe(a, batch.t0);
    const Tensor frame = batch.frames.select(0, a);
    Tensor S, F;
    if (a_is_key) {
      S = clip.encodings[size_t(a)].detach();
      F = model.encode(frame, /*keyframe=*/false);
    } else {
      F = clip.encodings[size_t(a)];
      NoGradGuard no_grad;
      S = model.encode(frame, /*keyframe=*/true);
    }
    out.l1 = l1_loss(F, S);
    const Tensor real = model.discriminate(S), fake = model.discriminate(gradient_reversal(F, cfg.beta));
    out.disc = add(bce_with_logits(real, ones_like(real)), bce_with_logits(fake, zeros_like(fake)));
    accumulate(mul(out.l1, cfg.alpha));
    accumulate(out.disc);
  }
  out.total = total;
  return out;
}

}  // namespace mila
