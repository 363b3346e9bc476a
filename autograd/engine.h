// engine.h - reverse-mode differentiation over the recorded graph.
//
//   backward(root, dout, retain_graph):
//     1. order the nodes reachable from root.grad_fn once (depth-first, post-order);
//     2. visit them from the root down, each receiving the sum of the gradients its
//        consumers sent it, and pass each input's gradient on (summed back to the input's
//        shape when it was broadcast);
//     3. leaves that require grad accumulate into .grad (across backward calls, until
//        zero_grad);
//     4. unless retain_graph, free each node's saved tensors after its visit; a second
//        backward through a freed node throws.
// Backward runs with grad recording off: higher-order gradients are not supported.
#pragma once

#include "autograd/node.h"

namespace mila::autograd {

// `gradient` may be undefined only when `root` has one element (it is then 1).
void backward(const Tensor& root, const Tensor& gradient = Tensor(), bool retain_graph = false);

// Sums `grad` over the dims that broadcasting added or expanded, giving `shape`.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace mila::autograd
