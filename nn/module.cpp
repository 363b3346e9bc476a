// module.cpp - the Module tree and state dicts (module.h).
#include "nn/module.h"

#include <map>
#include <sstream>
#include <stdexcept>

#include "autograd/grad_mode.h"
#include "nn/trace.h"
#include "ops/copy.h"
#include "ops/factory.h"

namespace mila::nn {

std::string LoadReport::str() const {
  std::ostringstream os;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    os << what << " (" << names.size() << "):";
    for (const std::string& n : names) os << ' ' << n;
    os << ". ";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("mis-shaped", mismatched);
  return os.str();
}

Tensor Module::forward(const Tensor&) {
  throw std::logic_error(type_name_ + ": this module has no one-input forward(x)");
}

Tensor Module::operator()(const Tensor& x) {
  trace::Recorder* recorder = trace::Recorder::active();
  if (!recorder) return forward(x);
  recorder->enter(this);
  Tensor y = forward(x);
  recorder->leave(this, x, y);
  return y;
}

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument(type_name_ + ": invalid member name '" + name + "' (non-empty, no dots)");
  auto taken = [&](const auto& list) {
    for (const auto& [n, _] : list)
      if (n == name) return true;
    return false;
  };
  if (taken(params_) || taken(buffers_) || taken(children_))
    throw std::invalid_argument(type_name_ + ": member '" + name + "' registered twice");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name);
  if (!t.is_leaf()) t = t.detach();
  if (requires_grad) t.requires_grad_();
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  buffers_.emplace_back(name, t);
  return t;
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  for (const auto& [n, c] : children_)
    for (auto& p : c->named_parameters(prefix + n + ".")) out.push_back(std::move(p));
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  for (const auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, c] : children_)
    for (auto& p : c->named_buffers(prefix + n + ".")) out.push_back(std::move(p));
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, Module*>> out{{prefix, this}};
  for (const auto& [n, c] : children_)
    for (auto& m : c->named_modules(prefix.empty() ? n : prefix + "." + n)) out.push_back(std::move(m));
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  std::function<void(const Module&, const std::string&)> walk = [&](const Module& m, const std::string& prefix) {
    for (const auto& [n, t] : m.params_) out.emplace_back(prefix + n, t);
    for (const auto& [n, t] : m.buffers_) out.emplace_back(prefix + n, t);
    for (const auto& [n, c] : m.children_) walk(*c, prefix + n + ".");
  };
  walk(*this, "");
  return out;
}

LoadReport Module::load_state_dict(const NamedTensors& state, bool strict) {
  std::map<std::string, Tensor> given;
  for (const auto& [n, t] : state) given[n] = t;
  LoadReport report;
  NamedTensors mine = state_dict();
  std::map<std::string, bool> known;
  std::vector<std::pair<Tensor, Tensor>> to_copy;  // (destination, source)
  for (const auto& [name, dst] : mine) {
    known[name] = true;
    auto it = given.find(name);
    if (it == given.end()) {
      report.missing.push_back(name);
    } else if (it->second.shape() != dst.shape() || is_floating(it->second.dtype()) != is_floating(dst.dtype())) {
      report.mismatched.push_back(name + ": checkpoint " + shape_str(it->second.shape()) + " " +
                                  dtype_name(it->second.dtype()) + " vs model " + shape_str(dst.shape()) + " " +
                                  dtype_name(dst.dtype()));
    } else {
      to_copy.emplace_back(dst, it->second);
    }
  }
  for (const auto& [name, t] : state)
    if (!known.count(name)) report.unexpected.push_back(name);
  if (strict && (!report.missing.empty() || !report.unexpected.empty() || !report.mismatched.empty()))
    throw std::runtime_error("load_state_dict (" + type_name_ + ", strict): " + report.str());
  NoGradGuard no_grad;
  for (auto& [dst, src] : to_copy) copy_(dst, src.to(dst.device()));
  return report;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

namespace {
// Moves the tensor behind `t` to `device`, keeping every handle to it valid.
void move_in_place(const Tensor& t, Device device) {
  if (t.device() == device) return;
  NoGradGuard no_grad;
  const Tensor moved = t.detach().to(device).contiguous();
  TensorImpl* impl = t.impl();
  impl->storage = moved.storage();
  impl->strides = moved.strides();
  impl->offset = moved.offset();
  impl->grad.reset();
}
}  // namespace

void Module::to(Device device) {
  for (auto& [n, t] : params_) move_in_place(t, device);
  for (auto& [n, t] : buffers_) move_in_place(t, device);
  for (auto& [n, c] : children_) c->to(device);
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) t.zero_grad();
}

}  // namespace mila::nn
