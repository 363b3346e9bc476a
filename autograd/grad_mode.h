// grad_mode.h - whether ops record the graph on this thread (PyTorch's torch.no_grad()).
#pragma once

namespace mila::autograd {

bool is_grad_enabled();
void set_grad_enabled(bool on);

// Disables graph recording for its scope: { NoGradGuard g; ... }
class NoGradGuard {
 public:
  NoGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace mila::autograd

namespace mila {
using autograd::NoGradGuard;
}
