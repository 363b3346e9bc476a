// function.h - how an op (built-in or user-defined) joins the autograd graph.
//
// An op computes its output with plain kernels, then calls record() with its inputs and a
// backward closure. This is also the custom-function mechanism: forward and backward stay
// side by side in one place. Example, the gradient-reversal layer (ops/gradient_reversal.cpp):
//
//   Tensor gradient_reversal(const Tensor& x, double beta) {
//     return record("gradient_reversal", x.detach(), {x},
//                   [beta](const Tensor& dout, const std::vector<bool>&) -> GradList {
//                     return {mul(dout, -beta)};
//                   });
//   }
//
// Rules for the closure: capture only what backward needs (detached: use save()); return
// one gradient per input (undefined for "none"); skip inputs whose `needs` is false.
#pragma once

#include <initializer_list>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace mila::autograd {

// True when recording is on and some input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a node to `out` (a fresh tensor made by the op) when any input requires grad
// and recording is on; returns `out` either way.
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward);

// A tensor as a backward closure should keep it: same values, no graph.
inline Tensor save(const Tensor& t) { return t.defined() ? t.detach() : t; }

}  // namespace mila::autograd
