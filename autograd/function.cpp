#include "autograd/function.h"

#include <stdexcept>
#include <string>

namespace mila::autograd {

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!is_grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool any_requires_grad(std::initializer_list<Tensor> inputs) { return any_requires_grad(std::vector<Tensor>(inputs)); }

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return out;
  // Attaching the node to an input itself would make that input its own consumer (and turn
  // a leaf into a non-leaf); an identity op must return a new tensor, e.g. x.detach().
  for (const Tensor& t : inputs)
    if (t.defined() && t.is_same(out))
      throw std::logic_error(std::string("record(") + name +
                             "): the output is one of the inputs; return a new tensor (x.detach() for an identity)");
  auto node = std::make_shared<Node>();
  node->name = name;
  node->backward = std::move(backward);
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined()) {
      e.shape = t.shape();
      e.dtype = t.dtype();
      e.device = t.device();
      if (t.requires_grad()) {
        if (t.is_leaf())
          e.leaf = t.impl_ptr();
        else
          e.node = t.grad_fn();
      }
    }
    node->inputs.push_back(std::move(e));
  }
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

}  // namespace mila::autograd
