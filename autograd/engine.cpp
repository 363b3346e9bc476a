#include "autograd/engine.h"

#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "autograd/gradient_math.h"

namespace mila::autograd {
namespace {

// Nodes reachable from `root`, each after every node that consumes it (reverse post-order of
// a depth-first walk). Iterative, so deep graphs (ResNet-101 unrolled over a clip) cannot
// overflow the stack.
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen{root};
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (next_input < node->inputs.size()) {
      Node* child = node->inputs[next_input++].node.get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      post.push_back(node);
      stack.pop_back();
    }
  }
  return {post.rbegin(), post.rend()};
}

void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  // The first gradient is copied, so .grad never aliases a tensor the user or another node
  // holds (identity backwards pass dout straight through).
  Tensor grad(leaf.grad);
  const GradientMath& math = gradient_math();
  leaf.grad = grad.defined() ? math.add(grad, g).impl_ptr() : math.clone(g).impl_ptr();
}

void check_gradient(const Node& node, size_t i, const Tensor& g) {
  const Edge& e = node.inputs[i];
  if (g.dtype() != e.dtype || g.device() != e.device)
    throw std::logic_error("backward of " + node.name + ": gradient " + std::to_string(i) + " has dtype " +
                           dtype_name(g.dtype()) + " on " + g.device().str() + ", the input has " +
                           dtype_name(e.dtype) + " on " + e.device.str());
}

}  // namespace

Node::~Node() {
  // A chain of nodes is owned link by link (each node by its consumer), so destroying it by
  // plain recursion would take stack in proportion to its length and overflow on long
  // graphs (a loss accumulated over 10^6 steps). Inputs that only this node owns are
  // moved to a heap stack and released one at a time instead.
  std::vector<std::shared_ptr<Node>> stack;
  auto take_sole_inputs = [&stack](Node& n) {
    for (Edge& e : n.inputs)
      if (e.node && e.node.use_count() == 1) stack.push_back(std::move(e.node));
  };
  take_sole_inputs(*this);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    take_sole_inputs(*n);
  }  // n dies here with nothing left to recurse into
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const Shape& gs = grad.shape();
  const auto fail = [&] {
    throw std::logic_error("sum_to: gradient of shape " + shape_str(gs) + " cannot be reduced to " + shape_str(shape));
  };
  if (gs.size() < shape.size()) fail();
  const size_t lead = gs.size() - shape.size();
  Shape dims;
  for (size_t i = 0; i < gs.size(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && gs[i] != 1))
      dims.push_back(int64_t(i));
    else if (gs[i] != shape[i - lead])
      fail();
  }
  // The shapes differ, so dims is not empty and the sum is a new tensor of gs's rank with
  // size 1 at each of `dims`: a view with the leading dims dropped gives `shape`.
  Tensor r = gradient_math().sum_keepdim(grad, dims);
  if (!r.is_contiguous()) r = gradient_math().clone(r);
  return Tensor::make_view(r, shape, contiguous_strides(shape), r.offset());
}

void backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
  if (!root.requires_grad())
    throw std::logic_error("backward: the tensor (shape " + shape_str(root.shape()) +
                           ") does not require grad and has no grad_fn");
  Tensor dout = gradient;
  if (!dout.defined()) {
    if (root.numel() != 1)
      throw std::invalid_argument("backward: a gradient must be given for a non-scalar root of shape " +
                                  shape_str(root.shape()));
    dout = gradient_math().ones_like(root);
  } else if (dout.shape() != root.shape()) {
    throw std::invalid_argument("backward: gradient shape " + shape_str(dout.shape()) + " differs from root shape " +
                                shape_str(root.shape()));
  } else if (dout.dtype() != root.dtype() || dout.device() != root.device()) {
    throw std::invalid_argument(std::string("backward: gradient has dtype ") + dtype_name(dout.dtype()) + " on " +
                                dout.device().str() + ", the root (shape " + shape_str(root.shape()) + ") has " +
                                dtype_name(root.dtype()) + " on " + root.device().str());
  }

  NoGradGuard no_grad;
  if (root.is_leaf()) {
    accumulate_into_leaf(*root.impl(), dout);
    return;
  }

  std::unordered_map<Node*, Tensor> pending;  // summed gradient arriving at each node's output
  pending[root.grad_fn().get()] = dout;
  for (Node* node : topological_order(root.grad_fn().get())) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;  // nothing flowed here (every consumer's gradient was empty)
    Tensor g_out = std::move(it->second);
    pending.erase(it);
    if (!node->backward)
      throw std::logic_error("backward: trying to go through the graph a second time at node '" + node->name +
                             "' (its saved tensors were freed; pass retain_graph=true to the first backward)");
    std::vector<bool> needs(node->inputs.size());
    for (size_t i = 0; i < needs.size(); ++i) needs[i] = node->inputs[i].wants_grad();

    GradList grads = node->backward(g_out, needs);
    if (!retain_graph) node->backward = nullptr;
    if (grads.size() != node->inputs.size())
      throw std::logic_error("backward of " + node->name + " returned " + std::to_string(grads.size()) +
                             " gradients for " + std::to_string(node->inputs.size()) + " inputs");

    for (size_t i = 0; i < grads.size(); ++i) {
      const Edge& e = node->inputs[i];
      if (!grads[i].defined() || !needs[i]) continue;
      Tensor g = sum_to(grads[i], e.shape);
      check_gradient(*node, i, g);
      if (e.node) {
        Tensor& slot = pending[e.node.get()];
        slot = slot.defined() ? gradient_math().add(slot, g) : g;
      } else if (auto leaf = e.leaf.lock()) {
        accumulate_into_leaf(*leaf, g);
      }
    }
  }
}

}  // namespace mila::autograd

namespace mila {
void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward(*this, gradient, retain_graph);
}
}  // namespace mila
