// model.cpp - see model.h.
#include "mila/model.h"

#include <stdexcept>

#include "ops/binary.h"
#include "ops/concat.h"
#include "ops/interpolate.h"
#include "ops/losses.h"
#include "ops/reduce.h"
#include "ops/unary.h"
#include "ops/factory.h"

namespace mila {
namespace {

std::shared_ptr<nn::Sequential> make_neck(int64_t in, int64_t out) {
  auto neck = std::make_shared<nn::Sequential>();
  neck->add(std::make_shared<nn::Conv2d>(in, out, 1, 1, 0, 1, 1, false));
  neck->add(std::make_shared<nn::BatchNorm2d>(out));
  neck->add(std::make_shared<nn::ReLU>());
  return neck;
}

nn::ResNetConfig backbone(int depth, int64_t width) { return {.depth = depth, .width = width, .dilated = true, .num_classes = 0}; }

// A plain container whose children are named by task.
class Container : public nn::Module {
 public:
  Container() : Module("ModuleDict") {}
  template <typename M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) { return register_module(name, m); }
};

// The uncertainty weighting's scalars, one parameter per task, starting at 0.
class UncertaintyWeights : public nn::Module {
 public:
  explicit UncertaintyWeights(const std::vector<TaskSpec>& tasks) : Module("UncertaintyWeights") {
    for (const TaskSpec& t : tasks) values[t.name()] = register_parameter(t.name(), zeros({}));
  }
  std::map<std::string, Tensor> values;
};

}  // namespace

TaskDecoder::TaskDecoder(const Config& cfg, int64_t out_channels, bool own_attention) : Module("TaskDecoder") {
  if (own_attention) {
    se = register_module("se", std::make_shared<nn::SEBlock>(cfg.C));
    ila = register_module("ila", std::make_shared<nn::ILAModule>(cfg.C, cfg.D, cfg.L));
  }
  const int64_t slots = cfg.multi_frame ? 3 : 2;
  head = std::make_shared<nn::Sequential>();
  head->add(std::make_shared<nn::Conv2d>(slots * cfg.C, 512, 3, 1, 1, 1, 1, false));
  head->add(std::make_shared<nn::BatchNorm2d>(512));
  head->add(std::make_shared<nn::ReLU>());
  head->add(std::make_shared<nn::Conv2d>(512, 256, 1, 1, 0, 1, 1, false));
  head->add(std::make_shared<nn::BatchNorm2d>(256));
  head->add(std::make_shared<nn::ReLU>());
  head->add(std::make_shared<nn::Conv2d>(256, out_channels, 1, 1, 0, 1, 1, true));
  register_module("head", head);
}

SharedAttention::SharedAttention(const Config& cfg) : Module("SharedAttention") {
  se = register_module("se", std::make_shared<nn::SEBlock>(cfg.C));
  ila = register_module("ila", std::make_shared<nn::ILAModule>(cfg.C, cfg.D, cfg.L));
}

Model::Model(const Config& cfg) : Module("MILA"), cfg_(cfg) {
  cfg_.validate();
  slow = register_module("slow", std::make_shared<nn::ResNet>(backbone(cfg.slow_depth, cfg.width)));
  fast = register_module("fast", std::make_shared<nn::ResNet>(backbone(cfg.fast_depth, cfg.width)));
  slow_neck = register_module("slow_neck", make_neck(slow->out_channels(), cfg.C));
  fast_neck = register_module("fast_neck", make_neck(fast->out_channels(), cfg.C));
  auto dict = std::make_shared<Container>();
  for (const TaskSpec& t : cfg.tasks) {
    task_decoders[t.name()] = dict->add(t.name(), std::make_shared<TaskDecoder>(cfg, t.channels, cfg.task_specific));
    block_of_[t.name()] = cfg.task_specific ? t.name() : "shared";
  }
  decoders = register_module("decoders", std::static_pointer_cast<nn::Module>(dict));
  if (!cfg.task_specific) shared = register_module("shared", std::make_shared<SharedAttention>(cfg));
  disc = std::make_shared<nn::Sequential>();
  disc->add(std::make_shared<nn::Conv2d>(cfg.C, cfg.C / 2, 3, 1, 1, 1, 1, true));
  disc->add(std::make_shared<nn::ReLU>());
  disc->add(std::make_shared<nn::Conv2d>(cfg.C / 2, cfg.C / 4, 3, 1, 1, 1, 1, true));
  disc->add(std::make_shared<nn::ReLU>());
  disc->add(std::make_shared<nn::Conv2d>(cfg.C / 4, 1, 3, 1, 1, 1, 1, true));
  register_module("disc", disc);
  if (cfg.weighting == Weighting::uncertainty)
    uncertainty = register_module("uncertainty", std::static_pointer_cast<nn::Module>(std::make_shared<UncertaintyWeights>(cfg.tasks)));
}

Tensor Model::uncertainty_for(const std::string& task) const {
  if (!uncertainty) throw std::logic_error("Model::uncertainty_for: the config's weighting is not 'uncertainty'");
  return static_cast<const UncertaintyWeights&>(*uncertainty).values.at(task);
}

bool Model::is_keyframe(int64_t t, int64_t t0) const {
  const int64_t r = ((t - t0) % cfg_.K + cfg_.K) % cfg_.K;  // the remainder taken non-negative
  return r == 0;
}

Tensor Model::encode(const Tensor& frames, bool keyframe) {
  return keyframe ? (*slow_neck)((*slow)(frames)) : (*fast_neck)((*fast)(frames));
}

Tensor Model::discriminate(const Tensor& features) { return mean((*disc)(features), {1, 2, 3}); }

std::vector<std::string> Model::blocks() const {
  if (!cfg_.task_specific) return {"shared"};
  std::vector<std::string> out;
  for (const TaskSpec& t : cfg_.tasks) out.push_back(t.name());
  return out;
}

const std::string& Model::block_of(const std::string& task) const { return block_of_.at(task); }

nn::SEBlock& Model::se_for(const std::string& block) {
  return block == "shared" ? *shared->se : *task_decoders.at(block)->se;
}
nn::ILAModule& Model::ila_for(const std::string& block) {
  return block == "shared" ? *shared->ila : *task_decoders.at(block)->ila;
}

Model::Features Model::block_features(const std::string& block, const Tensor& e) {
  Features f;
  f.s = se_for(block)(e);
  if (cfg_.attention) f.keys = ila_for(block).keys(f.s);  // h(s_t): once per frame and block
  return f;
}

Tensor Model::predict(Task task, const Features& now, const Features& key, const Features& prev, int64_t height,
                      int64_t width) {
  const std::string name = kTaskNames.name(task);
  nn::ILAModule& ila = ila_for(block_of(name));
  auto slot = [&](const Features& src) -> Tensor {
    if (!src.defined()) return now.s;  // no source in the clip: the frame's own features
    return cfg_.attention ? ila.attend(now.keys, src.keys, src.s) : src.s;
  };
  std::vector<Tensor> parts = {now.s, slot(key)};
  if (cfg_.multi_frame) parts.push_back(slot(prev));
  Tensor y = (*task_decoders.at(name)->head)(concat(parts, 1));
  y = interpolate_bilinear(y, height, width);
  if (task == Task::normal) y = normalize(y, 1);
  return y;
}

Model::ClipResult Model::forward_clip(const Tensor& frames, int64_t t0, bool heads_on_last_only) {
  if (frames.dim() != 5 || frames.size(2) != 3)
    throw std::invalid_argument("Model::forward_clip: expected frames [T, B, 3, H, W], got " + shape_str(frames.shape()));
  const int64_t T = frames.size(0), H = frames.size(3), W = frames.size(4);
  ClipResult result;
  result.outputs.resize(size_t(T));
  std::map<std::string, Features> last_key, previous;  // per block
  for (int64_t t = 0; t < T; ++t) {
    const bool key = is_keyframe(t, t0);
    const Tensor e = encode(frames.select(0, t), key);
    result.encodings.push_back(e);
    std::map<std::string, Features> now;
    for (const std::string& b : blocks()) now[b] = block_features(b, e);
    if (!heads_on_last_only || t == T - 1) {
      for (const TaskSpec& spec : cfg_.tasks) {
        const std::string& b = block_of(spec.name());
        // On a keyframe, or before any keyframe of the clip, the key slot is the frame itself.
        const Features k = key || !last_key.count(b) ? Features{} : last_key[b];
        const Features p = previous.count(b) ? previous[b] : Features{};
        result.outputs[size_t(t)][spec.name()] = predict(spec.task, now[b], k, p, H, W);
      }
    }
    for (auto& [b, f] : now) {
      if (key) last_key[b] = f;
      previous[b] = f;
    }
  }
  return result;
}

}  // namespace mila
