// CPU reference kernels: matrix products (OpenBLAS), transposes and dense layers.
#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

// cblas takes int dimensions; shapes here come from the IR as int64.
int blasInt(int64_t v) {
  assert(v >= 0 && v <= int64_t(INT32_MAX) && "matrix extent too large for BLAS");
  return int(v);
}

void blasGemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B,
              int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              A, lda, B, ldb, beta, C, ldc);
}

void blasGemm(bool transA, bool transB, int m, int n, int k, double alpha, const double* A, int lda, const double* B,
              int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              A, lda, B, ldb, beta, C, ldc);
}

// Multiply-adds per task of a split product: about 50-100 µs of one core's BLAS. A product
// under twice this is one BLAS call.
constexpr int64_t kGemmTaskMacs = int64_t(1) << 20;
// At most this many tasks, and split-K slices at least this deep.
constexpr int64_t kGemmMaxTasks = 64;
constexpr int64_t kGemmMinSliceK = 256;

}  // namespace

// BLAS runs single-threaded (cpu_threads.cpp); a large product is cut here into tasks that
// shoal's pool runs: slices of K when K dominates (a dense layer's forward pass: 64 x 64
// outputs over 5408 inputs), blocks of rows or columns otherwise. The cut depends on the
// shapes only, and each task is one single-threaded BLAS call, so the bits do not depend on
// the number of threads. (OpenBLAS's own threading changes them: it splits differently for
// each thread count.)
template <typename T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B, T beta, T* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS rejects lda = 0; the product is empty, only the beta scaling remains.
    for (int64_t i = 0; i < M * N; ++i) C[i] = beta == T(0) ? T(0) : beta * C[i];
    return;
  }
  const int lda = blasInt(transA ? M : K);
  const int ldb = blasInt(transB ? K : N);
  const int ldc = blasInt(N);
  const int64_t macs = M * N * K;  // bounded: each factor is a tensor extent below 2^31
  if (macs < 2 * kGemmTaskMacs) {
    blasGemm(transA, transB, blasInt(M), blasInt(N), blasInt(K), alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t tasks = std::min(kGemmMaxTasks, macs / kGemmTaskMacs);
  if (K >= 8 * std::max(M, N) && K >= 2 * kGemmMinSliceK) {
    // Split K: slice s computes op(A)[:, ks] op(B)[ks, :] into its own partial; the partials
    // are added in slice order.
    const int64_t slices = std::min(tasks, K / kGemmMinSliceK);
    const int64_t depth = (K + slices - 1) / slices;
    std::vector<T> partials(size_t(slices * M * N));
    parallelFor(slices, 1, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) {
        const int64_t k0 = s * depth, k1 = std::min(K, k0 + depth);
        const T* a = transA ? A + k0 * M : A + k0;
        const T* b = transB ? B + k0 : B + k0 * N;
        blasGemm(transA, transB, blasInt(M), blasInt(N), blasInt(k1 - k0), T(1), a, lda, b, ldb, T(0),
                 partials.data() + s * M * N, ldc);
      }
    });
    parallelFor(M * N, 16384, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T sum = partials[size_t(i)];
        for (int64_t s = 1; s < slices; ++s) sum += partials[size_t(s * M * N + i)];
        C[i] = beta == T(0) ? alpha * sum : alpha * sum + beta * C[i];
      }
    });
    return;
  }
  if (N >= M) {
    // Blocks of columns (a multiple of 16 wide).
    const int64_t width = std::max<int64_t>(16, ((N + tasks - 1) / tasks + 15) / 16 * 16);
    parallelFor(N, width, [&](int64_t j0, int64_t j1) {
      const T* b = transB ? B + j0 * K : B + j0;
      blasGemm(transA, transB, blasInt(M), blasInt(j1 - j0), blasInt(K), alpha, A, lda, b, ldb, beta, C + j0, ldc);
    });
    return;
  }
  // Blocks of rows.
  const int64_t height = std::max<int64_t>(16, ((M + tasks - 1) / tasks + 15) / 16 * 16);
  parallelFor(M, height, [&](int64_t i0, int64_t i1) {
    const T* a = transA ? A + i0 : A + i0 * K;
    blasGemm(transA, transB, blasInt(i1 - i0), blasInt(N), blasInt(K), alpha, a, lda, B, ldb, beta, C + i0 * N, ldc);
  });
}

template <typename T>
void gemmBatched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t strideA, const T* B, int64_t strideB, T beta, T* C, int64_t strideC) {
  // A shared right operand with a plain left one is one tall gemm: [batch*M, K] · B.
  if (strideB == 0 && !transA && strideA == M * K && strideC == M * N) {
    gemm(false, transB, batch * M, N, K, alpha, A, B, beta, C);
    return;
  }
  // The products in parallel (each as gemm cuts it; a nested cut runs inline, in order).
  parallelFor(batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      gemm(transA, transB, M, N, K, alpha, A + i * strideA, B + i * strideB, beta, C + i * strideC);
  });
}

template <typename T>
void transpose2d(int64_t rows, int64_t cols, const T* x, T* y) {
  constexpr int64_t kBlock = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    int64_t r1 = std::min(rows, r0 + kBlock);
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      int64_t c1 = std::min(cols, c0 + kBlock);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) y[c * rows + r] = x[r * cols + c];
    }
  }
}

template <typename T>
void permute(const Shape& inShape, const std::vector<int64_t>& perm, const T* x, T* y) {
  const int64_t rank = int64_t(inShape.size());
  assert(int64_t(perm.size()) == rank);
  const int64_t total = numElements(inShape);
  if (total == 0) return;
  // Input strides, read in output-dimension order.
  std::vector<int64_t> inStride(rank, 1);
  for (int64_t d = rank - 2; d >= 0; --d) inStride[d] = inStride[d + 1] * inShape[d + 1];
  Shape outShape(rank);
  std::vector<int64_t> srcStride(rank);
  for (int64_t d = 0; d < rank; ++d) {
    outShape[d] = inShape[perm[d]];
    srcStride[d] = inStride[perm[d]];
  }
  if (rank == 0) {
    y[0] = x[0];
    return;
  }
  // Odometer over the output, innermost dimension as a strided copy loop.
  const int64_t inner = outShape[rank - 1];
  const int64_t innerStride = srcStride[rank - 1];
  std::vector<int64_t> idx(rank, 0);
  int64_t src = 0;
  for (int64_t out = 0; out < total; out += inner) {
    for (int64_t i = 0; i < inner; ++i) y[out + i] = x[src + i * innerStride];
    for (int64_t d = rank - 2; d >= 0; --d) {
      src += srcStride[d];
      if (++idx[d] < outShape[d]) break;
      src -= srcStride[d] * outShape[d];
      idx[d] = 0;
    }
  }
}

template <typename T>
void denseForward(int64_t batch, int64_t in, int64_t out, const T* x, const T* w, const T* bias, T* y) {
  if (bias) {
    for (int64_t b = 0; b < batch; ++b) std::memcpy(y + b * out, bias, sizeof(T) * size_t(out));
    gemm(false, true, batch, out, in, T(1), x, w, T(1), y);
  } else {
    gemm(false, true, batch, out, in, T(1), x, w, T(0), y);
  }
}

template <typename T>
void denseBackward(int64_t batch, int64_t in, int64_t out, const T* x, const T* w, const T* dy, T* dx, T* dw,
                   T* db) {
  if (dx) gemm(false, false, batch, in, out, T(1), dy, w, T(0), dx);
  if (dw) gemm(true, false, out, in, batch, T(1), dy, x, T(0), dw);
  if (db) {
    std::vector<double> acc(size_t(out), 0.0);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j = 0; j < out; ++j) acc[j] += double(dy[b * out + j]);
    for (int64_t j = 0; j < out; ++j) db[j] = T(acc[j]);
  }
}

#define SHOAL_INSTANTIATE(T)                                                                                    \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, const T*, T, T*);                   \
  template void gemmBatched<T>(int64_t, bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                               int64_t, T, T*, int64_t);                                                        \
  template void transpose2d<T>(int64_t, int64_t, const T*, T*);                                                 \
  template void permute<T>(const Shape&, const std::vector<int64_t>&, const T*, T*);                            \
  template void denseForward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, T*);                   \
  template void denseBackward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, T*, T*, T*);
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE

}  // namespace shoal::cpu
