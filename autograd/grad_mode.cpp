// grad_mode.cpp - the per-thread switch behind NoGradGuard (grad_mode.h).
#include "autograd/grad_mode.h"

namespace mila::autograd {
namespace {
thread_local bool grad_enabled = true;  // per thread, as PyTorch's: a loader thread's no_grad is its own
}

bool is_grad_enabled() { return grad_enabled; }
void set_grad_enabled(bool on) { grad_enabled = on; }

}  // namespace mila::autograd
