// gemm.h — single- and double-precision matrix multiply on the CPU (namespace mila::cpu).
//
//   C[m, n] = alpha * sum_k A[m, k] * B[k, n] + beta * C[m, n]
//
// Layout: row-major with arbitrary element strides for A and B, so a transposed or
// strided operand is described by its strides and never copied by the caller:
//   A(i, p) lives at a[i * a_rs + p * a_cs]      (A^T: swap a_rs and a_cs)
//   B(p, j) lives at b[p * b_rs + j * b_cs]      (B^T: swap b_rs and b_cs)
//   C(i, j) lives at c[i * c_rs + j]             (unit column stride for C)
//
// Semantics shared by every function here (they follow BLAS):
//   - m == 0 or n == 0: nothing is read or written.
//   - k == 0 or alpha == 0: C = beta * C; A and B are not read.
//   - beta == 0: C is overwritten without being read, so it may hold NaN or garbage.
//   - C must not alias A or B. Rows of C must not overlap (c_rs >= n when m > 1).
// Misuse (negative sizes, null pointers for a non-empty operand, overlapping rows of C)
// throws std::invalid_argument naming the function and the shapes.
//
// gemm_f32 is the fast kernel (see gemm.cpp for the algorithm); its result does not
// depend on the number of OpenMP threads, bit for bit. gemm_f64 is a plain, correct
// kernel for float64 gradient checks. gemm_reference_f32 is the test oracle.
#pragma once

#include <cstdint>

namespace mila::cpu {

struct GemmParams {
    int64_t m, n, k;        // C is [m, n], A is [m, k], B is [k, n]
    float alpha = 1.f;
    const float* a;         // A(i, p) = a[i * a_rs + p * a_cs]
    int64_t a_rs, a_cs;
    const float* b;         // B(p, j) = b[p * b_rs + j * b_cs]
    int64_t b_rs, b_cs;
    float beta = 0.f;
    float* c;               // C(i, j) = c[i * c_rs + j]
    int64_t c_rs;
};

struct GemmParamsF64 {
    int64_t m, n, k;        // C is [m, n], A is [m, k], B is [k, n]
    double alpha = 1.0;
    const double* a;        // A(i, p) = a[i * a_rs + p * a_cs]
    int64_t a_rs, a_cs;
    const double* b;        // B(p, j) = b[p * b_rs + j * b_cs]
    int64_t b_rs, b_cs;
    double beta = 0.0;
    double* c;              // C(i, j) = c[i * c_rs + j]
    int64_t c_rs;
};

// Fast packed, blocked, multithreaded (OpenMP) fp32 GEMM. Deterministic: the result is
// bitwise independent of the number of threads.
void gemm_f32(const GemmParams& p);

// fp64 GEMM for gradient checks: simple i-k-j loops, OpenMP over rows of C. Correct
// and cache-friendly, not tuned.
void gemm_f64(const GemmParamsF64& p);

// Plain triple loop, single thread, accumulating each C(i, j) in float over p = 0..k-1
// in order. The oracle the tests compare gemm_f32 against.
void gemm_reference_f32(const GemmParams& p);

}  // namespace mila::cpu
