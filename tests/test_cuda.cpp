// test_cuda.cpp - copy_ and fill_ with a GPU on either side (ops/cuda/copy.cu): transfers
// both ways, device copies, every pair of dtypes with the CPU's conversion rules, strided
// and broadcast sources and destinations, the pinned staging of uploads, and the clear
// error of an op that has no CUDA kernel. Every case is in the test suite "cuda" (the
// `test_cuda.cuda` ctest entry, skipped without a device; tests/cuda_compare.h); the
// CPU-only behaviour is tested in test_tensor.cpp. Copies only move and convert values,
// so every comparison is exact.
#include "ops/conv2d.h"
#include "ops/op_list.h"
#include "tests/cuda_compare.h"

using namespace mila;
using test::check_close;

namespace {

const Device gpu = Device::cuda();
constexpr DType kDTypes[] = {DType::Float32, DType::Float64, DType::Int64, DType::UInt8};

// Values that every dtype holds exactly after conversion from float64 (small integers and
// halves), so a round trip through any dtype pair is exact and comparable.
Tensor halves(const Shape& shape, uint64_t seed = 7) {
  return div(test::draw(shape, 0, 200, seed).to(DType::Int64).to(DType::Float64), 2.0);
}

}  // namespace

TEST_CASE("cuda: round trip cpu -> cuda -> cpu, contiguous and strided, with dtype changes" *
          doctest::test_suite("cuda")) {
  const Tensor x = test::uniform({3, 5, 7}, -2, 2, DType::Float32);
  check_close(x.to(gpu).to(Device::cpu()), x, 0, 0, "contiguous float32");
  const Tensor xt = x.permute({2, 0, 1});
  check_close(xt.to(gpu).to(Device::cpu()), xt, 0, 0, "permuted source");
  // Into a strided destination on the device, with a dtype conversion on the way.
  Tensor dst = zeros({7, 5, 3}, {DType::Float64, gpu});
  copy_(dst.transpose(0, 2), x);  // dst[k][j][i] = x[i][j][k], float32 -> float64
  check_close(dst.to(Device::cpu()), x.to(DType::Float64).permute({2, 1, 0}), 0, 0);
  // Device to device, broadcast source.
  Tensor b = empty({4, 3}, {DType::Float32, gpu});
  copy_(b, tensor({1, 2, 3}).to(gpu));
  check_close(b.to(Device::cpu()), tensor({1, 2, 3}).expand({4, 3}), 0, 0);
  fill_(b.narrow(0, 1, 2), 9.0);
  CHECK(test::at(b.to(Device::cpu()), 3) == 9.0);
  CHECK(test::at(b.to(Device::cpu()), 0) == 1.0);
  // Conversions out of an integer type's range follow the CPU's (tensor/dtype.h's convert:
  // -1.0 -> 255, 300.7 -> 44 as uint8, NaN -> INT64_MIN), not the GPU's saturating
  // float-to-int instructions; on the device itself (a device -> device conversion) too.
  const Tensor odd = tensor({-1.0, 300.7, 2.9, -7.5, std::nan(""), 1e30, -1e30}, {DType::Float64});
  for (DType from : {DType::Float32, DType::Float64}) {
    for (DType to : {DType::UInt8, DType::Int64}) {
      CAPTURE(dtype_name(from));
      CAPTURE(dtype_name(to));
      const Tensor src = odd.to(from);
      check_close(src.to(gpu).to(to).to(Device::cpu()).to(DType::Float64), src.to(to).to(DType::Float64), 0, 0);
    }
  }
}

TEST_CASE("cuda: every pair of dtypes, every direction, dense and strided, against the cpu copy" *
          doctest::test_suite("cuda")) {
  const Tensor values = halves({3, 5, 7});
  for (DType from : kDTypes) {
    for (DType to : kDTypes) {
      INFO(dtype_name(from) << " -> " << dtype_name(to));
      const Tensor src = values.to(from);
      const Tensor expect = src.to(to);  // the cpu's conversion
      // host -> device, into a dense and into a transposed destination.
      Tensor d1 = empty({3, 5, 7}, {to, gpu});
      copy_(d1, src);
      check_close(d1.to(Device::cpu()), expect, 0, 0, "host -> dense device");
      Tensor d2 = empty({7, 5, 3}, {to, gpu});
      copy_(d2.permute({2, 1, 0}), src);
      check_close(d2.permute({2, 1, 0}).to(Device::cpu()), expect, 0, 0, "host -> strided device");
      // device -> device: dense to dense (the vectorized conversion, or one memcpy), and
      // strided to strided.
      const Tensor on_gpu = src.to(gpu);
      Tensor d3 = empty({3, 5, 7}, {to, gpu});
      copy_(d3, on_gpu);
      check_close(d3.to(Device::cpu()), expect, 0, 0, "dense device -> dense device");
      Tensor d4 = empty({3, 7, 5}, {to, gpu});
      copy_(d4.transpose(1, 2), test::noncontiguous(on_gpu));
      check_close(d4.transpose(1, 2).to(Device::cpu()), expect, 0, 0, "strided device -> strided device");
      // device -> host, into a dense and into a strided host destination.
      Tensor h1 = empty({3, 5, 7}, {to});
      copy_(h1, on_gpu);
      check_close(h1, expect, 0, 0, "device -> dense host");
      Tensor h2 = empty({7, 5, 3}, {to});
      copy_(h2.permute({2, 1, 0}), on_gpu.transpose(0, 1).transpose(0, 1));
      check_close(h2.permute({2, 1, 0}), expect, 0, 0, "device -> strided host");
      Tensor h3 = empty({3, 5, 7}, {to});
      copy_(h3, on_gpu.permute({2, 0, 1}).contiguous().permute({1, 2, 0}));  // a non-contiguous device source
      check_close(h3, expect, 0, 0, "non-contiguous device -> host");
    }
  }
}

TEST_CASE("cuda: broadcast sources, size-1, 0-d, empty and prime-sized copies" * doctest::test_suite("cuda")) {
  // A broadcast source is sent at its own size and expanded on the device, or fetched at
  // its own size and expanded on the host.
  const Tensor row = tensor({1, 2, 3, 4, 5}, {DType::Float64});
  Tensor up = empty({4, 5}, {DType::Float32, gpu});
  copy_(up, row);
  check_close(up.to(Device::cpu()), row.expand({4, 5}), 0, 0, "host row -> device matrix");
  Tensor down = empty({4, 5}, {DType::Int64});
  copy_(down, row.to(gpu));
  check_close(down, row.to(DType::Int64).expand({4, 5}), 0, 0, "device row -> host matrix");
  Tensor col = empty({3, 4}, {DType::Float64, gpu});
  copy_(col, scalar_tensor(2.5, {DType::Float64, gpu}));
  check_close(col.to(Device::cpu()), full({3, 4}, 2.5, {DType::Float64}), 0, 0, "device scalar -> device matrix");
  // Expanded device sources and 0-d and empty tensors.
  check_close(row.to(gpu).expand({3, 5}).to(Device::cpu()), row.expand({3, 5}), 0, 0, "expanded device source");
  check_close(scalar_tensor(-4, {DType::Int64, gpu}).to(Device::cpu()), scalar_tensor(-4, {DType::Int64}), 0, 0, "0-d");
  CHECK(empty({0, 3}, {DType::Float32, gpu}).to(Device::cpu()).shape() == Shape{0, 3});
  CHECK(zeros({2, 0}).to(gpu).shape() == Shape{2, 0});
  Tensor none = empty({0, 3}, {DType::Float32, gpu});
  copy_(none, ones({1, 3}).to(gpu));
  // Prime sizes above 256 threads x 4 elements, dense (vectorized conversion) and sliced
  // one element in (misaligned: the strided path).
  const Tensor big = halves({1031 + 1});
  for (DType to : kDTypes) {
    INFO(dtype_name(to));
    const Tensor on_gpu = big.to(gpu);
    Tensor dense = empty({1032}, {to, gpu});
    copy_(dense, on_gpu);
    check_close(dense.to(Device::cpu()), big.to(to), 0, 0, "dense conversion");
    Tensor sliced = empty({1032}, {to, gpu});
    copy_(sliced.narrow(0, 1, 1031), on_gpu.narrow(0, 1, 1031));
    check_close(sliced.narrow(0, 1, 1031).to(Device::cpu()), big.narrow(0, 1, 1031).to(to), 0, 0, "misaligned");
  }
}

TEST_CASE("cuda: uploads through the pinned staging pool keep every batch intact" * doctest::test_suite("cuda")) {
  // Successive uploads reuse pinned blocks once the stream has passed the copies that used
  // them; a block handed out too early would overwrite a batch before its copy ran. Each
  // batch is consumed on the device after later uploads are queued.
  std::vector<Tensor> sent, on_gpu;
  for (int i = 0; i < 12; ++i) {
    sent.push_back(add(test::uniform({64, 33}, -1, 1, DType::Float32), double(i)));
    on_gpu.push_back(sent.back().to(gpu));
  }
  for (size_t i = 0; i < sent.size(); ++i) check_close(mul(on_gpu[i], 2.0).to(Device::cpu()), mul(sent[i], 2.0), 0, 0);
}

TEST_CASE("cuda: fill every dtype, strided destinations, values converted like the cpu" *
          doctest::test_suite("cuda")) {
  for (DType dtype : kDTypes) {
    for (double value : {0.0, 2.9, -1.0, 300.7}) {
      INFO(dtype_name(dtype) << " " << value);
      Tensor d = zeros({5, 1031}, {dtype, gpu});
      fill_(d.narrow(1, 1, 1029).transpose(0, 1), value);  // strided and misaligned
      Tensor h = zeros({5, 1031}, {dtype});
      fill_(h.narrow(1, 1, 1029).transpose(0, 1), value);
      check_close(d.to(Device::cpu()), h, 0, 0);
      check_close(full({7, 3}, value, {dtype, gpu}).to(Device::cpu()), full({7, 3}, value, {dtype}), 0, 0, "full");
    }
  }
}

TEST_CASE("cuda: add with broadcasting matches the cpu, and memory returns to baseline" *
          doctest::test_suite("cuda")) {
  const int64_t before = memory_stats(gpu).bytes_in_use;
  {
    const Tensor a = test::uniform({2, 1, 5}, -1, 1, DType::Float32), b = test::uniform({3, 1}, -1, 1, DType::Float32);
    const Tensor got = add(a.to(gpu), b.to(gpu));
    CHECK(got.device() == gpu);
    check_close(got.to(Device::cpu()), add(a, b), 0, 0);
    const Tensor an = test::noncontiguous(a);
    check_close(add(an.to(gpu), b.to(gpu)).to(Device::cpu()), add(a, b), 0, 0);
  }
  CHECK(memory_stats(gpu).bytes_in_use == before);
}

TEST_CASE("cuda: ops without a CUDA kernel say so" * doctest::test_suite("cuda")) {
  REQUIRE_FALSE(supports(Op::conv2d, gpu));  // replace by another op once conv2d has a kernel
  const Tensor x = ones({1, 1, 3, 3}, {DType::Float32, gpu}), w = ones({1, 1, 3, 3}, {DType::Float32, gpu});
  test::check_throws_with([&] { (void)conv2d(x, w, Tensor(), {}); }, {"conv2d", "no CUDA kernel yet"});
}
