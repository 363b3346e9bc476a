// module.h - the Module base: named parameters, buffers and children with PyTorch's dotted
// names, train/eval, device moves, state_dict / load_state_dict (SPEC section 2), and the
// call wrapper that the MAC counter and summary hook into (nn/trace.h).
//
// A module keeps its tensors as members (Tensor weight;) and registers them once, so
// `named_parameters()` can walk the tree. Tensor is a handle: loading a checkpoint or moving
// to a device rewrites the registered TensorImpl in place, so members stay valid.
//
//   struct Block : Module {
//     std::shared_ptr<Conv2d> conv;
//     Block() : Module("Block") { conv = register_module("conv", std::make_shared<Conv2d>(...)); }
//     Tensor forward(const Tensor& x) override { return relu((*conv)(x)); }
//   };
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace mila::nn {

namespace trace {
class Recorder;
}

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What a non-strict load did (a strict load throws instead when anything is listed).
struct LoadReport {
  std::vector<std::string> missing;     // expected by the module, absent from the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, unknown to the module
  std::vector<std::string> mismatched;  // present in both with different shapes or dtypes ("name: ckpt [..] vs model [..]")
  std::string str() const;              // one readable paragraph listing the three
};

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The one-input forward that Sequential chains. Modules with other signatures define
  // their own and leave this one throwing.
  virtual Tensor forward(const Tensor& x);
  // Calls forward(x), recording the call for summaries/MAC counting when a trace is active.
  Tensor operator()(const Tensor& x);

  const std::string& type_name() const { return type_name_; }

  // ---- the tree ----
  NamedTensors named_parameters(const std::string& prefix = "") const;
  NamedTensors named_buffers(const std::string& prefix = "") const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // Every module below this one (pre-order), with its dotted path ("" for this one).
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "");
  std::vector<Tensor> parameters() const;
  int64_t num_parameters(bool trainable_only = false) const;

  // ---- state ----
  // Parameters and buffers, in PyTorch's order: each module's own parameters, then its
  // buffers, then its children in registration order.
  NamedTensors state_dict() const;
  // Copies matching tensors in (values converted to each tensor's dtype, kept on its device).
  // strict: throws std::runtime_error listing every missing, unexpected and mis-shaped name.
  // non-strict: loads what matches and returns what it skipped.
  LoadReport load_state_dict(const NamedTensors& state, bool strict = true);

  // ---- modes and devices ----
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void to(Device device);
  void zero_grad();

 protected:
  // Registration: returns what it registered, so constructors can write
  //   weight = register_parameter("weight", ...);
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_new_name(name);
    children_.emplace_back(name, m);
    return m;
  }
  // MACs of one call of this module, given its input and output (thop's convention:
  // Conv2d and Linear count, everything else 0). Overridden by the layers that count.
  virtual int64_t macs(const Tensor& input, const Tensor& output) const { return 0; }

 private:
  friend class trace::Recorder;  // reads params_ for a row's own-parameter count
  void check_new_name(const std::string& name) const;
  std::string type_name_;
  bool training_ = true;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace mila::nn
