// test_op_list.cpp - every op of ops/op_list.h, called once: on the cpu always; on a GPU,
// or the CUDA emulator, its CUDA column decides what must happen (true: the same result as on
// the cpu; false: the clear "no CUDA kernel" error). invoke() switches over Op with no
// default and -Wswitch is an error in this file, so a new op without a call here does not
// compile.
#pragma GCC diagnostic error "-Wswitch"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/batch_norm.h"
#include "ops/channel_gate.h"
#include "ops/conv2d.h"
#include "ops/interpolate.h"
#include "ops/op_list.h"
#include "ops/optim_update.h"
#include "ops/pool.h"
#include "tests/test_util.h"

using namespace mila;
using test::draw;

namespace {

Tensor int64s(const std::vector<int64_t>& v, const Shape& shape) { return from_vector(v, shape); }

// One small call of `op` with its inputs on `device`: every output it gives. The inputs are
// made on the cpu (fixed seeds) and copied over, so the op under test is the only other op
// that runs on the device.
std::vector<Tensor> invoke(Op op, Device device) {
  auto on = [&](const Tensor& t) { return t.to(device); };
  const Tensor x = draw({2, 3, 4}, -1, 1, 1), y = draw({3, 4}, -1, 1, 2);  // y broadcasts against x
  const Tensor positive = draw({2, 3, 4}, 0.5, 2, 3);
  const Tensor image = draw({2, 3, 6, 7}, -1, 1, 4);
  switch (op) {
    case Op::copy: {
      Tensor dst = empty({4, 3}, {DType::Float64, device});
      copy_(dst, on(y).t());  // a strided source
      return {dst};
    }
    case Op::fill: {
      Tensor dst = empty({3, 4}, {DType::Float64, device});
      fill_(dst, 2.5);
      return {dst};
    }
    case Op::neg: return {neg(on(x))};
    case Op::exp: return {exp(on(x))};
    case Op::log: return {log(on(positive))};
    case Op::sqrt: return {sqrt(on(positive))};
    case Op::abs: return {abs(on(x))};
    case Op::relu: return {relu(on(x))};
    case Op::sigmoid: return {sigmoid(on(x))};
    case Op::tanh: return {tanh(on(x))};
    case Op::clamp: return {clamp(on(x), -0.5, 0.5)};
    case Op::add: return {add(on(x), on(y))};
    case Op::sub: return {sub(on(x), on(y))};
    case Op::mul: return {mul(on(x), on(y))};
    case Op::div: return {div(on(x), on(positive))};
    case Op::pow: return {pow(on(positive), on(y))};
    case Op::maximum: return {maximum(on(x), on(y))};
    case Op::minimum: return {minimum(on(x), on(y))};
    case Op::eq: return {eq(on(tensor({1, 2, 3, 4})), on(tensor({1, 3, 3, 0})))};
    case Op::ne: return {ne(on(tensor({1, 2, 3, 4})), on(tensor({1, 3, 3, 0})))};
    case Op::lt: return {lt(on(x), on(y))};
    case Op::le: return {le(on(x), on(y))};
    case Op::gt: return {gt(on(x), on(y))};
    case Op::ge: return {ge(on(x), on(y))};
    case Op::where: return {where(on(gt(x, 0.0)), on(x), on(y))};
    case Op::sum: return {sum(on(x), {1})};
    case Op::max: {
      const ValuesIndices m = max(on(x), 1);
      return {m.values, m.indices};
    }
    case Op::argmax: return {argmax(on(x), 2)};
    case Op::softmax: return {softmax(on(x), 1)};
    case Op::log_softmax: return {log_softmax(on(x), 1)};
    case Op::matmul: return {matmul(on(x), on(y.t()))};
    case Op::concat: return {concat({on(x), on(positive)}, 1)};
    case Op::gather: return {gather(on(y), 1, on(int64s({0, 3, 3, 1, 2, 0}, {3, 2})))};
    case Op::scatter_add:
      return {scatter_add(on(y), 1, on(int64s({0, 3, 3, 1, 2, 2}, {3, 2})), on(draw({3, 2}, -1, 1, 5)))};
    case Op::index_select: return {index_select(on(x), 1, on(int64s({2, 0, 2}, {3})))};
    case Op::index_add: return {index_add(on(x), 1, on(int64s({2, 0, 2}, {3})), on(draw({2, 3, 4}, -1, 1, 6)))};
    case Op::conv2d:
      return {conv2d(on(image), on(draw({4, 3, 3, 3}, -1, 1, 7)), on(draw({4}, -1, 1, 8)), Conv2dParams::square(2, 1))};
    case Op::batch_norm: {
      // Training: the running stats are updated in place, outputs too.
      const Tensor running_mean = on(zeros({3}, {DType::Float64})), running_var = on(ones({3}, {DType::Float64}));
      const Tensor out = batch_norm(on(image), running_mean, running_var, on(draw({3}, 0.5, 2, 9)),
                                    on(draw({3}, -1, 1, 10)), /*training=*/true);
      return {out, running_mean, running_var};
    }
    case Op::max_pool2d: return {max_pool2d(on(image), 3, 2, 1)};
    case Op::avg_pool2d: return {avg_pool2d(on(image), 3, 2, 1, /*ceil_mode=*/true, /*count_include_pad=*/false)};
    case Op::adaptive_avg_pool2d: return {adaptive_avg_pool2d(on(image), 4, 3)};
    case Op::interpolate_bilinear: return {interpolate_bilinear(on(image), 9, 5)};
    case Op::channel_gate: return {channel_gate(on(image), on(draw({2, 3}, 0, 1, 11)))};
    case Op::ila: {
      const Tensor a = draw({1, 2, 5, 6}, -1, 1, 12), b = draw({1, 2, 5, 6}, -1, 1, 13);
      return {ila(on(a), on(b), on(draw({1, 3, 5, 6}, -1, 1, 14)), 3)};
    }
    case Op::cross_entropy: {
      std::vector<int64_t> target(2 * 6 * 7);
      for (size_t i = 0; i < target.size(); ++i) target[i] = i % 5 == 4 ? 255 : int64_t(i % 3);  // 3 classes, some ignored
      return {cross_entropy(on(image), on(int64s(target, {2, 6, 7})))};
    }
    case Op::l1_loss: return {l1_loss(on(x), on(positive))};
    case Op::masked_l1_loss: return {masked_l1_loss(on(x), on(positive), on(gt(y, 0.0)))};
    case Op::normal_loss:
      return {normal_loss(on(image), on(draw({2, 3, 6, 7}, -1, 1, 15)), on(gt(draw({2, 6, 7}, -1, 1, 16), 0.0)))};
    case Op::bce_with_logits: return {bce_with_logits(on(x), on(draw({2, 3, 4}, 0, 1, 17)))};
    case Op::normalize: return {normalize(on(image), 1)};
    case Op::sgd_update: {  // in place: the parameter and its momentum buffer are the outputs
      const Tensor p = on(x).clone(), buf = on(y.expand({2, 3, 4})).clone();
      sgd_update_(p, on(positive), buf, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
      return {p, buf};
    }
    case Op::adam_update: {
      const Tensor p = on(x).clone(), m = on(draw({2, 3, 4}, -1, 1, 18)), v = on(draw({2, 3, 4}, 0, 1, 19));
      adam_update_(p, on(positive), m, v, {.lr = 0.1, .weight_decay = 0.01, .step = 3});
      return {p, m, v};
    }
    case Op::count_: break;
  }
  throw std::logic_error("invoke: Op::count_ is not an op");
}

// The op whose kernel runs `op`, and whose name its errors carry: argmax is max's indices.
Op kernel_of(Op op) { return op == Op::argmax ? Op::max : op; }

std::vector<Op> all_ops() {
  std::vector<Op> ops;
  for (size_t i = 0; i < size_t(Op::count_); ++i) ops.push_back(Op(i));
  return ops;
}

}  // namespace

TEST_CASE("op list: the CUDA columns agree with the build, and a missing kernel is a clear error") {
  CHECK(kCudaBuilt == cuda_compiled());
  for (Op op : all_ops()) {
    INFO("op " << op_name(op));
    CHECK(supports(op, Device::cpu()));
    CHECK_NOTHROW(check_supported(op, Device::cpu()));
    CHECK(has_cuda_kernel(op) == (kCudaBuilt && kOpHasCuda[size_t(op)]));
    CHECK(supports(op, Device::cuda()) == has_cuda_kernel(op));
    if (!kCudaBuilt) {
      // No op runs on a GPU without the CUDA backend; the error says how to get one.
      CHECK_FALSE(supports(op, Device::cuda(1)));
      test::check_throws_with([&] { check_supported(op, Device::cuda(1)); },
                              {op_name(op), "cuda:1", "no CUDA backend", "-DMILA_CUDA=ON", "move the tensors to the cpu"});
    } else if (!supports(op, Device::cuda())) {
      test::check_throws_with([&] { check_supported(op, Device::cuda()); },
                              {op_name(op), "cuda:0", "no CUDA kernel", "move the tensors to the cpu"});
    }
  }
}

TEST_CASE("op list: every op runs on the cpu") {
  for (Op op : all_ops()) {
    INFO("op " << op_name(op));
    std::vector<Tensor> outs;
    REQUIRE_NOTHROW(outs = invoke(op, Device::cpu()));
    REQUIRE_FALSE(outs.empty());
    for (const Tensor& out : outs) {
      CHECK(out.device() == Device::cpu());
      CHECK(out.numel() > 0);
      int64_t not_finite = 0;
      for (double v : test::values(out)) not_finite += !std::isfinite(v);
      CHECK(not_finite == 0);
    }
  }
}

// In the suite "cuda" (Note [cuda tests] in CMakeLists.txt): runs on a GPU or the emulator,
// and is reported as skipped, not passed, where there is neither.
TEST_CASE("op list: on a GPU, an op with a CUDA kernel matches the cpu and one without says so" *
          doctest::test_suite("cuda")) {
  for (Op op : all_ops()) {
    INFO("op " << op_name(op));
    if (!supports(op, Device::cuda())) {
      test::check_throws_with([&] { (void)invoke(op, Device::cuda()); },
                              {op_name(kernel_of(op)), "cuda:0", "no CUDA kernel"});
      continue;
    }
    const std::vector<Tensor> expected = invoke(op, Device::cpu());
    std::vector<Tensor> got;
    REQUIRE_NOTHROW(got = invoke(op, Device::cuda()));
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].device() == Device::cuda());
      CHECK(got[i].dtype() == expected[i].dtype());
      test::check_close(got[i].to(Device::cpu()), expected[i], 1e-9, 1e-9, "output " + std::to_string(i));
    }
  }
}
