// optim.cpp - the update rules of optim.h, written with the library's own ops under
// no_grad, so they run wherever the parameters live.
#include "nn/optim.h"

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/copy.h"
#include "ops/reduce.h"
#include "ops/unary.h"
#include "ops/factory.h"

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
  NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& group = groups_[gi];
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor& p = group.params[i];
      if (!p.grad().defined()) continue;
      Tensor d = p.grad();
      if (group.weight_decay != 0) d = add(d, mul(p, group.weight_decay));
      if (opt_.momentum != 0) {
        Tensor& buf = momentum_[gi][i];
        if (!buf.defined()) {
          buf = d.clone();
        } else {
          copy_(buf, add(mul(buf, opt_.momentum), mul(d, 1 - opt_.dampening)));
        }
        d = opt_.nesterov ? add(d, mul(buf, opt_.momentum)) : buf;
      }
      copy_(p, sub(p, mul(d, group.lr)));
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
  NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1 - std::pow(opt_.beta1, double(step_)), bc2 = 1 - std::pow(opt_.beta2, double(step_));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& group = groups_[gi];
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor& p = group.params[i];
      if (!p.grad().defined()) continue;
      Tensor g = p.grad();
      if (group.weight_decay != 0) {
        if (opt_.decoupled_weight_decay)
          copy_(p, mul(p, 1 - group.lr * group.weight_decay));
        else
          g = add(g, mul(p, group.weight_decay));
      }
      Tensor& m = m_[gi][i];
      Tensor& v = v_[gi][i];
      if (!m.defined()) m = zeros_like(p), v = zeros_like(p);
      copy_(m, add(mul(m, opt_.beta1), mul(g, 1 - opt_.beta1)));
      copy_(v, add(mul(v, opt_.beta2), mul(mul(g, g), 1 - opt_.beta2)));
      const Tensor denom = add(div(sqrt(v), std::sqrt(bc2)), opt_.eps);
      copy_(p, sub(p, mul(div(m, denom), group.lr / bc1)));
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
