// ops.h - everything a user of the tensor library needs: tensors, factories, autograd and
// every op. `#include "ops/ops.h"` and write PyTorch-like code in namespace mila.
#pragma once

#include "autograd/engine.h"
#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/concat.h"
#include "ops/copy.h"
#include "ops/factory.h"
#include "ops/gradient_reversal.h"
#include "ops/ila.h"
#include "ops/index.h"
#include "ops/losses.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/softmax.h"
#include "ops/threads.h"
#include "ops/unary.h"
#include "ops/where.h"
#include "tensor/allocator.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
