#include "ops/cpu/where.h"

#include "ops/cpu/loops.h"

namespace mila::cpu {

void where_forward(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  dispatch_all(a.dtype(), [&]<typename T>() {
    ternary_loop<T, uint8_t, T, T>(out, cond, a, b, [](uint8_t c, T x, T y) { return c ? x : y; });
  });
}

}  // namespace mila::cpu
