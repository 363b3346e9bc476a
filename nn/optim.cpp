// optim.cpp - the optimizers of optim.h. Each step updates every parameter with one fused
// op (ops/optim_update.h: one pass over the parameter and its state, on the parameter's
// device); the state tensors are created like the parameters, on their device.
#include "nn/optim.h"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/copy.h"
#include "ops/reduce.h"
#include "ops/factory.h"
#include "ops/optim_update.h"

namespace mila::nn {

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  for (ParamGroup& g : groups_) {
    g.base_lr = g.lr;
    for (const Tensor& p : g.params)
      if (!p.requires_grad() || !p.is_leaf())
        throw std::invalid_argument("Optimizer: parameters must be leaves that require grad, got shape " +
                                    shape_str(p.shape()));
  }
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_)
    for (Tensor& p : g.params) p.zero_grad();
}

void Optimizer::scale_lr(double factor) {
  for (ParamGroup& g : groups_) g.lr = g.base_lr * factor;
}

namespace {
std::string slot_name(size_t group, size_t index, const char* slot) {
  return std::to_string(group) + "." + std::to_string(index) + "." + slot;
}
Tensor find(const NamedTensors& state, const std::string& name) {
  for (const auto& [n, t] : state)
    if (n == name) return t;
  return Tensor();
}
// Copies a saved slot into a fresh tensor shaped like `like`; throws on a shape mismatch.
Tensor restore(const NamedTensors& state, const std::string& name, const Tensor& like, const char* who) {
  Tensor saved = find(state, name);
  if (!saved.defined()) return Tensor();
  if (saved.shape() != like.shape())
    throw std::runtime_error(std::string(who) + "::load_state_dict: '" + name + "' has shape " +
                             shape_str(saved.shape()) + ", the parameter " + shape_str(like.shape()));
  Tensor t = empty(like.shape(), {like.dtype(), like.device()});
  copy_(t, saved);
  return t;
}
}  // namespace

// ---- SGD ----
SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opt) : Optimizer(std::move(groups)), opt_(opt) {
  if (opt.nesterov && (opt.momentum <= 0 || opt.dampening != 0))
    throw std::invalid_argument("SGD: nesterov needs momentum > 0 and dampening 0");
  for (ParamGroup& g : groups_) momentum_.emplace_back(g.params.size());
}

void SGD::step() {
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& group = groups_[gi];
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor& p = group.params[i];
      if (!p.grad().defined()) continue;
      Tensor buf = momentum_[gi][i];
      const bool first_step = opt_.momentum != 0 && !buf.defined();
      if (first_step) buf = empty(p.shape(), {p.dtype(), p.device()});  // the first step fills it
      sgd_update_(p, p.grad(), buf,
                  {.lr = group.lr, .momentum = opt_.momentum, .dampening = opt_.dampening,
                   .weight_decay = group.weight_decay, .nesterov = opt_.nesterov, .first_step = first_step});
      momentum_[gi][i] = buf;  // kept only once filled (the update throws before writing anything)
    }
  }
}

NamedTensors SGD::state_dict() const {
  NamedTensors out;
  for (size_t gi = 0; gi < momentum_.size(); ++gi)
    for (size_t i = 0; i < momentum_[gi].size(); ++i)
      if (momentum_[gi][i].defined()) out.emplace_back(slot_name(gi, i, "momentum_buffer"), momentum_[gi][i]);
  return out;
}

void SGD::load_state_dict(const NamedTensors& state) {
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i)
      momentum_[gi][i] = restore(state, slot_name(gi, i, "momentum_buffer"), groups_[gi].params[i], "SGD");
}

// ---- Adam / AdamW ----
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions opt) : Optimizer(std::move(groups)), opt_(opt) {
  for (ParamGroup& g : groups_) {
    m_.emplace_back(g.params.size());
    v_.emplace_back(g.params.size());
  }
}

void Adam::step() {
  ++step_;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& group = groups_[gi];
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor& p = group.params[i];
      if (!p.grad().defined()) continue;
      Tensor& m = m_[gi][i];
      Tensor& v = v_[gi][i];
      if (!m.defined()) {
        m = zeros(p.shape(), {p.dtype(), p.device()});
        v = zeros(p.shape(), {p.dtype(), p.device()});
      }
      adam_update_(p, p.grad(), m, v,
                   {.lr = group.lr, .beta1 = opt_.beta1, .beta2 = opt_.beta2, .eps = opt_.eps,
                    .weight_decay = group.weight_decay, .decoupled_weight_decay = opt_.decoupled_weight_decay,
                    .step = step_});
    }
  }
}

NamedTensors Adam::state_dict() const {
  NamedTensors out;
  out.emplace_back("step", scalar_tensor(double(step_), {DType::Int64}));
  for (size_t gi = 0; gi < m_.size(); ++gi)
    for (size_t i = 0; i < m_[gi].size(); ++i)
      if (m_[gi][i].defined()) {
        out.emplace_back(slot_name(gi, i, "exp_avg"), m_[gi][i]);
        out.emplace_back(slot_name(gi, i, "exp_avg_sq"), v_[gi][i]);
      }
  return out;
}

void Adam::load_state_dict(const NamedTensors& state) {
  const Tensor step = find(state, "step");
  if (!step.defined()) throw std::runtime_error("Adam::load_state_dict: no 'step' in the state");
  step_ = step.item<int64_t>();
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      m_[gi][i] = restore(state, slot_name(gi, i, "exp_avg"), groups_[gi].params[i], "Adam");
      v_[gi][i] = restore(state, slot_name(gi, i, "exp_avg_sq"), groups_[gi].params[i], "Adam");
      if (m_[gi][i].defined() != v_[gi][i].defined())
        throw std::runtime_error("Adam::load_state_dict: exp_avg and exp_avg_sq of " + slot_name(gi, i, "") +
                                 " must both be present");
    }
}

// ---- clipping and schedules ----
double grad_norm(const std::vector<Tensor>& params) {
  NoGradGuard no_grad;
  double total = 0;
  for (const Tensor& p : params)
    if (p.grad().defined()) {
      const Tensor g = p.grad().to(DType::Float64);
      total += sum(mul(g, g)).item<double>();
    }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  const double norm = grad_norm(params);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1)
    for (const Tensor& p : params)
      if (p.grad().defined()) copy_(p.grad(), mul(p.grad(), coef));
  return norm;
}

double LrSchedule::factor(int64_t step) const {
  double f = 1;
  const double t = double(std::min(step, total_steps)), T = double(std::max<int64_t>(total_steps, 1));
  switch (kind) {
    case Kind::constant: break;
    case Kind::step: f = std::pow(gamma, double(step / std::max<int64_t>(step_size, 1))); break;
    case Kind::cosine: f = min_factor + (1 - min_factor) * (1 + std::cos(std::numbers::pi * t / T)) / 2; break;
    case Kind::polynomial: f = std::pow(1 - t / T, power); break;
  }
  if (step < warmup_steps) f *= warmup_start + (1 - warmup_start) * double(step) / double(warmup_steps);
  return f;
}

}  // namespace mila::nn
