// attention.cpp - see attention.h.
#include "nn/attention.h"

#include <stdexcept>

#include "nn/trace.h"
#include "ops/channel_gate.h"
#include "ops/ila.h"
#include "ops/pool.h"
#include "ops/unary.h"

namespace mila::nn {

SEBlock::SEBlock(int64_t channels, int64_t reduction) : Module("SEBlock") {
  if (channels < reduction)
    throw std::invalid_argument("SEBlock: " + std::to_string(channels) + " channels, fewer than the reduction " +
                                std::to_string(reduction));
  fc1 = register_module("fc1", std::make_shared<Linear>(channels, channels / reduction));
  fc2 = register_module("fc2", std::make_shared<Linear>(channels / reduction, channels));
}

Tensor SEBlock::forward(const Tensor& x) {
  const Tensor squeezed = adaptive_avg_pool2d(x, 1, 1).flatten(1);  // [N, C]
  const Tensor gate = sigmoid((*fc2)(relu((*fc1)(squeezed))));
  return channel_gate(x, gate);
}

ILAModule::ILAModule(int64_t channels, int64_t key_channels, int64_t window_) : Module("ILAModule"), window(window_) {
  if (window < 0 || (window > 0 && window % 2 == 0))
    throw std::invalid_argument("ILAModule: window L must be odd or 0 (global), got " + std::to_string(window));
  h = register_module("h", std::make_shared<Conv2d>(channels, key_channels, 3, 1, 1, 1, 1, true));
}

Tensor ILAModule::attend(const Tensor& target_keys, const Tensor& source_keys, const Tensor& source) {
  Tensor out = ila(target_keys, source_keys, source, window);
  // Not a forward() call, so the MAC counter is told here (SPEC 4.5: the logits and the
  // aggregation, per image).
  if (trace::Recorder* recorder = trace::Recorder::active())
    recorder->record(this, "ILA", out.shape(), out.size(0) * attention_macs(out.size(2), out.size(3), out.size(1)));
  return out;
}

int64_t ILAModule::attention_macs(int64_t height, int64_t width, int64_t channels) const {
  const int64_t n = window == 0 ? height * width : window * window;
  return height * width * n * (h->weight.size(0) + channels);
}

}  // namespace mila::nn
