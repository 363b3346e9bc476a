// ila.cpp - checks, dispatch and derivative rule of the fused inter-frame local attention,
// and its composed baseline. Formulas: ops/ila.h; kernels: ops/cpu/ila.cpp (and
// ops/cuda/ila.h); docs/ila.md.
#include "ops/ila.h"

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/concat.h"
#include "ops/cpu/ila.h"
#include "ops/cuda/ila.h"
#include "ops/matmul.h"
#include "ops/op_list.h"
#include "ops/reduce.h"
#include "ops/softmax.h"
#include "ops/where.h"
#include "ops/factory.h"

namespace mila {
namespace {

// Throws "<op>: <why> (a [..], b [..], v [..], L = ..)" on every misuse.
void check_args(const char* op, const Tensor& a, const Tensor& b, const Tensor& v, int64_t L) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(std::string(op) + ": " + why + " (a " + shape_str(a.shape()) + ", b " +
                                shape_str(b.shape()) + ", v " + shape_str(v.shape()) + ", L = " +
                                std::to_string(L) + ")");
  };
  if (!is_floating(a.dtype()) || a.dtype() != b.dtype() || a.dtype() != v.dtype())
    fail(std::string("expected float32 or float64 tensors of one dtype, got a ") + dtype_name(a.dtype()) + ", b " +
         dtype_name(b.dtype()) + ", v " + dtype_name(v.dtype()));
  if (a.dim() != 4 || b.dim() != 4 || v.dim() != 4) fail("expected 4-d tensors [B, D, H, W] and [B, C, H, W]");
  if (a.shape() != b.shape()) fail("queries a and keys b must have the same shape [B, D, H, W]");
  if (v.size(0) != a.size(0) || v.size(2) != a.size(2) || v.size(3) != a.size(3))
    fail("values v must have the batch and map size of a and b");
  if (L < 0 || (L > 0 && L % 2 == 0)) fail("window L must be odd (or 0 for global attention)");
  if (a.device() != b.device() || a.device() != v.device()) fail("tensors on different devices");
}

// Global attention (L = 0): every pixel attends to the whole map, as two batched matrix
// products around a softmax; autograd derives the backward from matmul and softmax.
Tensor ila_global(const Tensor& a, const Tensor& b, const Tensor& v) {
  const int64_t B = a.size(0), D = a.size(1), C = v.size(1), HW = a.size(2) * a.size(3);
  const Tensor queries = a.reshape({B, D, HW}).transpose(1, 2);                    // [B, HW, D]
  const Tensor weights = softmax(matmul(queries, b.reshape({B, D, HW})), 2);         // [B, HW (p), HW (q)]
  const Tensor out = matmul(v.reshape({B, C, HW}), weights.transpose(1, 2));         // [B, C, HW]
  return out.reshape(v.shape());
}

// x [B, K, H, W] with r zeros on each side of H and W: [B, K, H + 2r, W + 2r].
Tensor pad_hw(const Tensor& x, int64_t r) {
  if (r == 0) return x;
  const int64_t B = x.size(0), K = x.size(1), H = x.size(2), W = x.size(3);
  const TensorOptions opt{x.dtype(), x.device()};
  const Tensor wide = concat({zeros({B, K, H, r}, opt), x, zeros({B, K, H, r}, opt)}, 3);
  return concat({zeros({B, K, r, W + 2 * r}, opt), wide, zeros({B, K, r, W + 2 * r}, opt)}, 2);
}

}  // namespace

Tensor ila(const Tensor& a, const Tensor& b, const Tensor& v, int64_t L) {
  check_args("ila", a, b, v, L);
  if (L == 0) return ila_global(a, b, v);
  // The kernel walks rows of W contiguous values: strided inputs are copied once here
  // (a contiguous input is used as is). Detached: the node below is their only gradient path.
  const Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous(), vc = v.detach().contiguous();
  const int64_t B = a.size(0), H = a.size(2), W = a.size(3);
  Tensor out = Tensor::allocate(v.shape(), v.dtype(), v.device());
  Tensor weights = Tensor::allocate({B, L * L, H, W}, v.dtype(), v.device());  // W(p, o), saved for backward
  if (a.device().is_cpu()) cpu::ila_forward(out, weights, ac, bc, vc, L);
  else if constexpr (has_cuda_kernel(Op::ila)) cuda::ila_forward(out, weights, ac, bc, vc, L);
  else throw_unsupported(Op::ila, a.device());
  return autograd::record("ila", out, {a, b, v},
                          [L, ac, bc, vc, weights](const Tensor& dout, const std::vector<bool>& needs) -> autograd::GradList {
                            auto grad_like = [&](bool need, const Tensor& x) {
                              return need ? Tensor::allocate(x.shape(), x.dtype(), x.device()) : Tensor();
                            };
                            Tensor da = grad_like(needs[0], ac), db = grad_like(needs[1], bc), dv = grad_like(needs[2], vc);
                            const Tensor g = dout.contiguous();
                            if (g.device().is_cpu()) cpu::ila_backward(da, db, dv, g, weights, ac, bc, vc, L);
                            else if constexpr (has_cuda_kernel(Op::ila))
                              cuda::ila_backward(da, db, dv, g, weights, ac, bc, vc, L);
                            else throw_unsupported(Op::ila, g.device());
                            return {da, db, dv};
                          });
}

Tensor ila_composed(const Tensor& a, const Tensor& b, const Tensor& v, int64_t L) {
  check_args("ila_composed", a, b, v, L);
  if (L == 0) return ila_global(a, b, v);
  const int64_t H = a.size(2), W = a.size(3), r = (L - 1) / 2, N = L * L;
  const Tensor b_pad = pad_hw(b, r), v_pad = pad_hw(v, r);
  // The source pixels of offset (oy, ox), for every p at once: a shifted view of the padding.
  auto shifted = [&](const Tensor& padded, int64_t oy, int64_t ox) {
    return padded.narrow(2, r + oy, H).narrow(3, r + ox, W);
  };
  std::vector<Tensor> logits;  // N x [B, 1, H, W]
  std::vector<uint8_t> inside(size_t(N * H * W));
  for (int64_t oy = -r; oy <= r; ++oy)
    for (int64_t ox = -r; ox <= r; ++ox) {
      logits.push_back(sum(mul(a, shifted(b_pad, oy, ox)), {1}, /*keepdim=*/true));
      const int64_t o = int64_t(logits.size()) - 1;
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          inside[size_t((o * H + y) * W + x)] = y + oy >= 0 && y + oy < H && x + ox >= 0 && x + ox < W;
    }
  const Tensor mask = from_vector(inside, {1, N, H, W});
  const Tensor minus_inf = full({}, -std::numeric_limits<double>::infinity(), {a.dtype(), a.device()});
  const Tensor weights = softmax(where(mask, concat(logits, 1), minus_inf), 1);  // [B, N, H, W]
  Tensor out;
  int64_t o = 0;
  for (int64_t oy = -r; oy <= r; ++oy)
    for (int64_t ox = -r; ox <= r; ++ox, ++o) {
      const Tensor term = mul(weights.narrow(1, o, 1), shifted(v_pad, oy, ox));
      out = out.defined() ? add(out, term) : term;
    }
  return out;
}

}  // namespace mila
