// test_cuda.cpp - the CUDA path: copies between devices and dtypes, and add with
// broadcasting, against the CPU results. Skips (with a message) in a CPU-only build or
// on a machine without a GPU; the CPU-only behaviour is tested in test_tensor.cpp.
#include "tests/test_util.h"

using namespace mila;
using test::check_close;

// False, after printing "SKIPPED <test name>: <why>", when there is no GPU to run on: a
// skipped CUDA test says so by name rather than passing silently.
static bool have_gpu() {
  if (cuda_compiled() && cuda_device_count() > 0) return true;
  const std::string why = cuda_compiled() ? "no GPU on this machine" : "CPU-only build";
  const std::string line = std::string("SKIPPED ") + doctest::getContextOptions()->currentTest->m_name + ": " + why;
  MESSAGE(line);
  return false;
}

TEST_CASE("cuda: round trip cpu -> cuda -> cpu, contiguous and strided, with dtype changes") {
  if (!have_gpu()) return;
  const Tensor x = test::uniform({3, 5, 7}, -2, 2, DType::Float32);
  check_close(x.to(Device::cuda()).to(Device::cpu()), x, 0, 0, "contiguous float32");
  const Tensor xt = x.permute({2, 0, 1});
  check_close(xt.to(Device::cuda()).to(Device::cpu()), xt, 0, 0, "permuted source");
  // Into a strided destination on the device, with a dtype conversion on the way.
  Tensor dst = zeros({7, 5, 3}, {DType::Float64, Device::cuda()});
  copy_(dst.transpose(0, 2), x);  // dst[k][j][i] = x[i][j][k], float32 -> float64
  check_close(dst.to(Device::cpu()), x.to(DType::Float64).permute({2, 1, 0}), 0, 0);
  // Device to device, broadcast source.
  Tensor b = empty({4, 3}, {DType::Float32, Device::cuda()});
  copy_(b, tensor({1, 2, 3}).to(Device::cuda()));
  check_close(b.to(Device::cpu()), tensor({1, 2, 3}).expand({4, 3}), 0, 0);
  fill_(b.narrow(0, 1, 2), 9.0);
  CHECK(test::at(b.to(Device::cpu()), 3) == 9.0);
  CHECK(test::at(b.to(Device::cpu()), 0) == 1.0);
  // Conversions out of an integer type's range follow the CPU's (tensor/dtype.h's convert:
  // -1.0 -> 255, 300.7 -> 44 as uint8), not the GPU's saturating float-to-int instructions.
  const Tensor odd = tensor({-1.0, 300.7, 2.9, -7.5});
  for (DType to : {DType::UInt8, DType::Int64}) {
    CAPTURE(dtype_name(to));
    check_close(odd.to(Device::cuda()).to(to).to(Device::cpu()).to(DType::Float64), odd.to(to).to(DType::Float64), 0, 0);
  }
}

TEST_CASE("cuda: add with broadcasting matches the cpu, and memory returns to baseline") {
  if (!have_gpu()) return;
  const int64_t before = memory_stats(Device::cuda()).bytes_in_use;
  {
    const Tensor a = test::uniform({2, 1, 5}, -1, 1, DType::Float32), b = test::uniform({3, 1}, -1, 1, DType::Float32);
    const Tensor got = add(a.to(Device::cuda()), b.to(Device::cuda()));
    CHECK(got.device() == Device::cuda());
    check_close(got.to(Device::cpu()), add(a, b), 0, 0);
    const Tensor an = test::noncontiguous(a);
    check_close(add(an.to(Device::cuda()), b.to(Device::cuda())).to(Device::cpu()), add(a, b), 0, 0);
  }
  CHECK(memory_stats(Device::cuda()).bytes_in_use == before);
}

TEST_CASE("cuda: ops without a CUDA kernel say so") {
  if (!have_gpu()) return;
  const Tensor a = ones({2}, {DType::Float32, Device::cuda()});
  test::check_throws_with([&] { (void)mul(a, a); }, {"mul", "no CUDA kernel yet"});
}
