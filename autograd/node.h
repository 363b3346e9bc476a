// node.h - one recorded op in the autograd graph.
//
// Gradient semantics, stated once (see also engine.h):
//   * A node has one output. Its backward takes d(loss)/d(output) and returns one gradient
//     per input, in input order; an undefined Tensor means "no gradient" (zero).
//   * `needs[i]` says whether input i wants a gradient at all. Backward functions skip the
//     work for inputs that don't (ATen's output_mask), e.g. a frozen weight.
//   * A gradient may have a broadcast input's larger shape: the engine sums it back to the
//     input's shape (autograd::sum_to), so op rules never do that themselves.
//   * Saved tensors are captured by the backward closure, always detached (no grad_fn), so
//     a node never keeps its own output's graph alive: the graph has no cycles and frees
//     itself when the last reference to the output goes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mila::autograd {

using GradList = std::vector<Tensor>;
using BackwardFn = std::function<GradList(const Tensor& dout, const std::vector<bool>& needs)>;

// Where the gradient of one input goes: to the node that produced it, or (for a leaf that
// requires grad) into the leaf's .grad. Neither, when the input needs no gradient.
struct Edge {
  std::shared_ptr<Node> node;
  std::weak_ptr<TensorImpl> leaf;  // weak: a leaf that is gone needs no gradient
  Shape shape;                     // the input's shape, for summing broadcast gradients back
  DType dtype = DType::Float32;
  Device device;
  bool wants_grad() const { return node != nullptr || !leaf.expired(); }
};

struct Node {
  std::string name;          // the op's name, for errors and graph dumps
  std::vector<Edge> inputs;  // one per op input, in order
  BackwardFn backward;       // reset after use unless the graph is retained (frees saved tensors)
  ~Node();                   // iterative: a long chain of nodes must not overflow the stack (engine.cpp)
};

}  // namespace mila::autograd
