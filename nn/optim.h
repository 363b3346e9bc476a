// optim.h - optimizers with PyTorch's update rules, gradient clipping, learning-rate schedules.
//
// SGD (torch.optim.SGD), for each parameter p with gradient g:
//   g <- g + weight_decay * p
//   buf <- g (first step), else momentum * buf + (1 - dampening) * g
//   g <- g + momentum * buf (nesterov), else buf          (when momentum != 0)
//   p <- p - lr * g
// Adam / AdamW (torch.optim.Adam, AdamW), step t = 1, 2, ...:
//   Adam:  g <- g + weight_decay * p           AdamW: p <- p * (1 - lr * weight_decay)
//   m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Parameters without a gradient (none reached them) are skipped, as in PyTorch.
// A step runs one fused update per parameter (ops/optim_update.h, whose Note [fused update
// order] gives the rounding order) on the parameter's device, where its state lives too.
// State (momentum buffers, moments, step counts) round-trips through state_dict() /
// load_state_dict(), which the training loop saves next to the model (safetensors).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"

namespace mila::nn {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0;
  double base_lr = 0;  // lr before any schedule; set by the optimizer's constructor
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  std::vector<ParamGroup>& groups() { return groups_; }
  // Sets every group's lr to factor * its base_lr (what schedules call).
  void scale_lr(double factor);
  // Tensors named "<group>.<index>.<slot>" plus "step"; shapes match the parameters.
  virtual NamedTensors state_dict() const = 0;
  virtual void load_state_dict(const NamedTensors& state) = 0;

 protected:
  std::vector<ParamGroup> groups_;
};

struct SGDOptions {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions opt);
  SGD(const std::vector<Tensor>& params, SGDOptions opt) : SGD({ParamGroup{params, opt.lr, opt.weight_decay}}, opt) {}
  void step() override;
  NamedTensors state_dict() const override;
  void load_state_dict(const NamedTensors& state) override;

 private:
  SGDOptions opt_;
  std::vector<std::vector<Tensor>> momentum_;  // per group, per parameter (undefined until used)
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled_weight_decay = false;  // true: AdamW
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions opt);
  Adam(const std::vector<Tensor>& params, AdamOptions opt) : Adam({ParamGroup{params, opt.lr, opt.weight_decay}}, opt) {}
  void step() override;
  NamedTensors state_dict() const override;
  void load_state_dict(const NamedTensors& state) override;
  int64_t steps_taken() const { return step_; }

 private:
  AdamOptions opt_;
  int64_t step_ = 0;
  std::vector<std::vector<Tensor>> m_, v_;
};

// The global L2 norm of the parameters' gradients (those that have one), summed in float64;
// NaN or infinity when a gradient holds one (what a training loop checks before its update).
double grad_norm(const std::vector<Tensor>& params);
// Scales all gradients so that their joint L2 norm is at most max_norm (torch's
// clip_grad_norm_, with its 1e-6 in the denominator); returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// Learning-rate factor (multiplies each group's base lr) as a function of the step.
struct LrSchedule {
  enum class Kind { constant, step, cosine, polynomial };
  Kind kind = Kind::constant;
  int64_t total_steps = 1;  // cosine, polynomial: the step where the schedule ends
  int64_t step_size = 1;    // step: decay every step_size steps
  double gamma = 0.1;       // step: factor per decay
  double power = 0.9;       // polynomial (DeepLab's "poly")
  double min_factor = 0;    // cosine: eta_min / base lr
  int64_t warmup_steps = 0; // linear warm-up from warmup_start to 1, multiplying the above
  double warmup_start = 0.001;
  double factor(int64_t step) const;
};

}  // namespace mila::nn
