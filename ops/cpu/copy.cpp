#include "ops/cpu/copy.h"

#include "ops/cpu/loops.h"

namespace mila::cpu {

void copy(const Tensor& dst, const Tensor& src) {
  dispatch_all(dst.dtype(), [&]<typename TO>() {
    dispatch_all(src.dtype(), [&]<typename TI>() {
      unary_loop<TO, TI>(dst, src, [](TI v) { return convert<TO>(v); });
    });
  });
}

void fill(const Tensor& dst, double value) {
  dispatch_all(dst.dtype(), [&]<typename T>() {
    const T v = convert<T>(value);
    T* p = dst.data<T>();
    for_each_row<1>(dst.shape(), {dst.strides()},
                    [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                      for (int64_t i = 0; i < n; ++i) p[off[0] + i * st[0]] = v;
                    });
  });
}

}  // namespace mila::cpu
