// divergence.cpp - see divergence.h (Note [divergence]).
#include "mila/divergence.h"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.h"
#include "mila/run_log.h"

namespace mila {

std::string loss_divergence(const std::vector<std::string>& columns, const std::vector<double>& values, double first_total,
                            double max_loss_factor) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) return "loss term '" + columns[i] + "' is " + exact_text(values[i]);
  const double bound = max_loss_factor * std::max(std::abs(first_total), 1.0);
  if (max_loss_factor > 0 && std::abs(values[0]) > bound)
    return "loss term '" + columns[0] + "' is " + exact_text(values[0]) + ", past the bound " + exact_text(bound) +
           " (--max-loss-factor " + exact_text(max_loss_factor) + " times max(|the first step's " + exact_text(first_total) +
           "|, 1))";
  return "";
}

std::string first_non_finite(const nn::NamedTensors& tensors) {
  autograd::NoGradGuard no_grad;
  for (const auto& [name, t] : tensors) {
    if (!is_floating(t.dtype())) continue;
    const Tensor host = t.to(Device::cpu()).to(DType::Float32).contiguous();
    const float* v = static_cast<const float*>(host.raw_data());
    for (int64_t i = 0; i < host.numel(); ++i)
      if (!std::isfinite(v[i])) return "'" + name + "' (" + exact_text(v[i]) + " at element " + std::to_string(i) + ")";
  }
  return "";
}

}  // namespace mila
