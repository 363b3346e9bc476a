// gradient_reversal.h - Ganin & Lempitsky's gradient-reversal layer, as MILA's discriminator
// uses it (SPEC 4.4): the identity forward, the gradient times -beta backward, so that the
// features before it learn to fool the discriminator after it.
#pragma once

#include "tensor/tensor.h"

namespace mila {

// x [any] -> the same values [any]; d/dx = -beta * dout.
Tensor gradient_reversal(const Tensor& x, double beta = 1.0);

}  // namespace mila
