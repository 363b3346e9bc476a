// bench_conv2d.cpp - mila's CPU conv2d kernels next to oneDNN's convolution primitives.
//
// Passes, each on the same shapes, fp32, the same OpenMP thread count for both libraries:
//   fwd   out = conv(x, weight)                    (no bias: the ResNet convs have none)
//   bwd_data    dx from dout and weight
//   bwd_weights dweight from dout and x
//
//   mila   : mila::cpu::conv2d_forward / conv2d_backward_input / conv2d_backward_weight, the
//            launchers that ship (ops/cpu/conv2d.h: each picks the im2col + GEMM or the
//            direct kernel version), on NCHW tensors allocated once; the per-call packing of
//            the weights and copy of the input are timed.
//   oneDNN : convolution_forward (forward_training) / convolution_backward_data /
//            convolution_backward_weights, algorithm::convolution_direct, in two layouts:
//     onednn_any  every memory descriptor created with format_tag::any: oneDNN picks its
//                 preferred blocked layouts (nChw16c activations, blocked weights on AVX-512)
//                 and its direct JIT kernels. The timed loop runs the primitive alone on
//                 memory already in those layouts: NO reorder to or from NCHW is timed. This
//                 is oneDNN at its fastest; a caller holding NCHW tensors would pay the
//                 reorders on top.
//     onednn_nchw the same plain layouts as mila, NCHW activations (format_tag::nchw) and
//                 OIHW weights (format_tag::oihw), so both libraries read and write the same
//                 memory; oneDNN then mostly runs its im2col + sgemm path (x64:gemm:jit).
//            The label of each oneDNN row names the implementation oneDNN chose.
//
// Counter: GFLOP/s = 2 * N * Cout * OH * OW * (Cin / groups) * kh * kw / time, the same
// count for all three passes (each is one multiply-add per term of the forward sum), taps in
// the zero padding included (both libraries skip some of them, so the counter can exceed
// the FMA peak on padded, dilated shapes).
// Read it against BM_fma_peak in bench_peak.cpp (the measured fp32 FMA peak).
//
// Shapes: the convolutions of MILA's dilated ResNet backbones at 288x384 input (names as in
// bench/RESULTS.md): a stem, a layer1 conv, 36x48 maps of layers 2-4 (dilation 2 and 4),
// the 1x1 neck and the 768 -> 512 head conv; batch 1 and 4; 1 and 2 threads.
// Benchmarks are named <pass>/<library>/<shape>/N<batch>/T<threads>; each does one untimed
// warm-up call, then runs for at least --benchmark_min_time seconds (0.2 in RESULTS.md).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

#include "ops/conv2d.h"
#include "ops/cpu/conv2d.h"
#include "ops/factory.h"
#include "tensor/random.h"

namespace {

struct ConvShape {
  const char* name;
  int64_t cin, cout, h, w, k, stride, pad, dilation;
};

// (c) has no padding in the task list; every 3x3 conv of the backbone pads by its
// dilation, so it is benchmarked with padding 1 like (b) and (g).
const ConvShape kShapes[] = {
    {"a_7x7s2_3-64_288x384", 3, 64, 288, 384, 7, 2, 3, 1},
    {"b_3x3_64-64_72x96", 64, 64, 72, 96, 3, 1, 1, 1},
    {"c_3x3_128-128_36x48", 128, 128, 36, 48, 3, 1, 1, 1},
    {"d_3x3d2_256-256_36x48", 256, 256, 36, 48, 3, 1, 2, 2},
    {"e_3x3d4_512-512_36x48", 512, 512, 36, 48, 3, 1, 4, 4},
    {"f_1x1_1024-256_36x48", 1024, 256, 36, 48, 1, 1, 0, 1},
    {"g_3x3_768-512_36x48", 768, 512, 36, 48, 3, 1, 1, 1},
};

enum class Pass { fwd, bwd_data, bwd_weights };
const char* pass_name(Pass p) { return p == Pass::fwd ? "fwd" : p == Pass::bwd_data ? "bwd_data" : "bwd_weights"; }

mila::Conv2dParams params_of(const ConvShape& s) { return mila::Conv2dParams::square(s.stride, s.pad, s.dilation); }

void set_counters(benchmark::State& state, const mila::Conv2dGeometry& g) {
  const double flop = 2.0 * double(g.N * g.Cout * g.OH * g.OW) * double(g.cin_g() * g.kh * g.kw);
  state.counters["GFLOP/s"] = benchmark::Counter(flop * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

// ---- mila ------------------------------------------------------------------------------
void bench_mila(benchmark::State& state, const ConvShape& s, int64_t batch, int threads, Pass pass) {
  omp_set_num_threads(threads);
  const mila::Conv2dParams p = params_of(s);
  const mila::Shape x_shape{batch, s.cin, s.h, s.w}, w_shape{s.cout, s.cin, s.k, s.k};
  const mila::Conv2dGeometry g = mila::conv2d_geometry(x_shape, w_shape, p);
  mila::Generator gen(7);
  const mila::Tensor x = mila::rand(x_shape, {mila::DType::Float32}, &gen);
  const mila::Tensor w = mila::rand(w_shape, {mila::DType::Float32}, &gen);
  const mila::Tensor out = mila::rand({g.N, g.Cout, g.OH, g.OW}, {mila::DType::Float32}, &gen);  // also dout
  const mila::Tensor dx = mila::zeros(x_shape, {mila::DType::Float32});
  const mila::Tensor dw = mila::zeros(w_shape, {mila::DType::Float32});
  auto run = [&]() {
    switch (pass) {
      case Pass::fwd: mila::cpu::conv2d_forward(out, x, w, mila::Tensor(), g); break;
      case Pass::bwd_data: mila::cpu::conv2d_backward_input(dx, out, w, g); break;
      case Pass::bwd_weights: mila::cpu::conv2d_backward_weight(dw, out, x, g); break;
    }
  };
  run();  // warm-up: sizes the scratch buffers
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  set_counters(state, g);
}

// ---- oneDNN ------------------------------------------------------------------------------
void fill(dnnl::memory& m) {
  float* p = static_cast<float*>(m.get_data_handle());
  const size_t n = m.get_desc().get_size() / sizeof(float);
  for (size_t i = 0; i < n; ++i) p[i] = float((i * 2654435761u) % 1000) * 1e-3f;
}

void bench_onednn(benchmark::State& state, const ConvShape& s, int64_t batch, int threads, Pass pass, bool blocked) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  omp_set_num_threads(threads);
  const mila::Conv2dGeometry g =
      mila::conv2d_geometry({batch, s.cin, s.h, s.w}, {s.cout, s.cin, s.k, s.k}, params_of(s));
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const memory::dims src_dims{g.N, g.Cin, g.H, g.W}, wei_dims{g.Cout, g.Cin, g.kh, g.kw},
      dst_dims{g.N, g.Cout, g.OH, g.OW};
  const memory::dims strides{g.sh, g.sw}, dilates{g.dh - 1, g.dw - 1}, pad_l{g.ph, g.pw};
  // padding_r: what makes oneDNN's output size equal PyTorch's floor rule.
  const memory::dims pad_r{(g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.H - g.ph,
                           (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1 - g.W - g.pw};
  const tag act = blocked ? tag::any : tag::nchw, wei_tag = blocked ? tag::any : tag::oihw;
  const memory::desc src_md(src_dims, dt::f32, act), wei_md(wei_dims, dt::f32, wei_tag), dst_md(dst_dims, dt::f32, act);
  const convolution_forward::primitive_desc fwd_pd(
      convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, src_md, wei_md, dst_md,
                                strides, dilates, pad_l, pad_r),
      eng);
  primitive prim;
  std::unordered_map<int, memory> args;
  switch (pass) {
    case Pass::fwd: {
      memory src(fwd_pd.src_desc(), eng), wei(fwd_pd.weights_desc(), eng), dst(fwd_pd.dst_desc(), eng);
      fill(src), fill(wei);
      prim = convolution_forward(fwd_pd);
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
      state.SetLabel(fwd_pd.impl_info_str());
      break;
    }
    case Pass::bwd_data: {
      const convolution_backward_data::primitive_desc pd(
          convolution_backward_data::desc(algorithm::convolution_direct, src_md, wei_md, dst_md, strides, dilates,
                                          pad_l, pad_r),
          eng, fwd_pd);
      memory dsrc(pd.diff_src_desc(), eng), wei(pd.weights_desc(), eng), ddst(pd.diff_dst_desc(), eng);
      fill(wei), fill(ddst);
      prim = convolution_backward_data(pd);
      args = {{DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_DST, ddst}};
      state.SetLabel(pd.impl_info_str());
      break;
    }
    case Pass::bwd_weights: {
      const convolution_backward_weights::primitive_desc pd(
          convolution_backward_weights::desc(algorithm::convolution_direct, src_md, wei_md, dst_md, strides, dilates,
                                             pad_l, pad_r),
          eng, fwd_pd);
      memory src(pd.src_desc(), eng), dwei(pd.diff_weights_desc(), eng), ddst(pd.diff_dst_desc(), eng);
      fill(src), fill(ddst);
      prim = convolution_backward_weights(pd);
      args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_WEIGHTS, dwei}, {DNNL_ARG_DIFF_DST, ddst}};
      state.SetLabel(pd.impl_info_str());
      break;
    }
  }
  prim.execute(strm, args);  // warm-up
  strm.wait();
  for (auto _ : state) {
    prim.execute(strm, args);
    strm.wait();
  }
  set_counters(state, g);
}

}  // namespace

int main(int argc, char** argv) {
  for (const Pass pass : {Pass::fwd, Pass::bwd_data, Pass::bwd_weights})
    for (const ConvShape& s : kShapes)
      for (const int64_t batch : {1, 4})
        for (const int threads : {1, 2})
          for (const int lib : {0, 1, 2}) {
            const char* lib_name[] = {"mila", "onednn_any", "onednn_nchw"};
            const std::string name = std::string(pass_name(pass)) + "/" + lib_name[lib] + "/" + s.name + "/N" +
                                     std::to_string(batch) + "/T" + std::to_string(threads);
            auto* b = benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
              if (lib == 0)
                bench_mila(st, s, batch, threads, pass);
              else
                bench_onednn(st, s, batch, threads, pass, lib == 1);
            });
            b->Unit(benchmark::kMillisecond)->UseRealTime();
          }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
