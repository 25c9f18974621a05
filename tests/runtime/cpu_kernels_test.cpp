// Tests of the CPU reference kernels: gemm, layout, dense, convolution and pooling against
// naive float64 loops, hand-computed values and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu_kernels_test_util.h"

namespace shoal::cpu {
namespace {

using testing::allClose;
using testing::castAll;
using testing::gradientError;
using testing::randomDoubles;

// float kernels vs float64 references: 1e-5 relative; double kernels: 1e-12.
template <typename T>
constexpr double kRtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

// ---------------------------------------------------------------------------------------
// gemm
// ---------------------------------------------------------------------------------------

// C = alpha op(A) op(B) + beta C with A, B stored as gemm expects them.
std::vector<double> naiveGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha,
                              const std::vector<double>& A, const std::vector<double>& B, double beta,
                              std::vector<double> C) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        double a = transA ? A[k * M + i] : A[i * K + k];
        double b = transB ? B[j * K + k] : B[k * N + j];
        s += a * b;
      }
      C[i * N + j] = alpha * s + (beta == 0 ? 0.0 : beta * C[i * N + j]);
    }
  return C;
}

TEST(CpuGemm, HandComputedProduct) {
  // [[1,2],[3,4],[5,6]] · [[7,8],[9,10]] = [[25,28],[57,64],[89,100]]
  std::vector<float> A = {1, 2, 3, 4, 5, 6}, B = {7, 8, 9, 10}, C(6, -1.0f);
  gemm<float>(false, false, 3, 2, 2, 1.0f, A.data(), B.data(), 0.0f, C.data());
  EXPECT_EQ(C, (std::vector<float>{25, 28, 57, 64, 89, 100}));
  // The same product from Aᵀ stored [2,3] and Bᵀ stored [2,2], accumulated onto C: C + 2AB.
  std::vector<double> At = {1, 3, 5, 2, 4, 6}, Bt = {7, 9, 8, 10}, Cd = {1, 1, 1, 1, 1, 1};
  gemm<double>(true, true, 3, 2, 2, 2.0, At.data(), Bt.data(), 1.0, Cd.data());
  EXPECT_EQ(Cd, (std::vector<double>{51, 57, 115, 129, 179, 201}));
}

template <typename T>
void checkGemmAgainstNaive() {
  struct Dims {
    int64_t M, N, K;
  };
  uint32_t seed = 1;
  for (Dims d : {Dims{1, 1, 1}, Dims{3, 2, 2}, Dims{5, 7, 3}, Dims{17, 13, 9}, Dims{64, 10, 64}, Dims{2, 33, 70}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "M=" << d.M << " N=" << d.N << " K=" << d.K << " ta=" << ta
                                          << " tb=" << tb);
        auto A = randomDoubles(size_t(d.M * d.K), seed++), B = randomDoubles(size_t(d.K * d.N), seed++);
        auto C = randomDoubles(size_t(d.M * d.N), seed++);
        auto expected = naiveGemm(ta, tb, d.M, d.N, d.K, 0.5, A, B, -1.5, C);
        auto At = castAll<T>(A), Bt = castAll<T>(B), Ct = castAll<T>(C);
        gemm<T>(ta, tb, d.M, d.N, d.K, T(0.5), At.data(), Bt.data(), T(-1.5), Ct.data());
        EXPECT_TRUE(allClose(Ct, expected, kRtol<T>));
        // beta = 0 ignores whatever C held, NaN included.
        std::vector<T> Cnan(C.size(), std::numeric_limits<T>::quiet_NaN());
        gemm<T>(ta, tb, d.M, d.N, d.K, T(0.5), At.data(), Bt.data(), T(0), Cnan.data());
        EXPECT_TRUE(allClose(Cnan, naiveGemm(ta, tb, d.M, d.N, d.K, 0.5, A, B, 0.0, C), kRtol<T>));
      }
}

TEST(CpuGemm, MatchesNaiveFloat) { checkGemmAgainstNaive<float>(); }
TEST(CpuGemm, MatchesNaiveDouble) { checkGemmAgainstNaive<double>(); }

TEST(CpuGemm, EmptyInnerDimensionScalesC) {
  std::vector<float> C = {1, 2, 3, 4};
  gemm<float>(false, false, 2, 2, 0, 1.0f, nullptr, nullptr, 3.0f, C.data());
  EXPECT_EQ(C, (std::vector<float>{3, 6, 9, 12}));
  gemm<float>(false, false, 2, 2, 0, 1.0f, nullptr, nullptr, 0.0f, C.data());
  EXPECT_EQ(C, (std::vector<float>{0, 0, 0, 0}));
}

TEST(CpuGemm, BatchedWithSharedAndSeparateOperands) {
  const int64_t batch = 3, M = 4, N = 5, K = 6;
  auto A = randomDoubles(size_t(batch * M * K), 11), B = randomDoubles(size_t(batch * K * N), 12);
  auto C0 = randomDoubles(size_t(batch * M * N), 13);
  for (bool shareB : {false, true})
    for (bool ta : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "shareB=" << shareB << " ta=" << ta);
      std::vector<double> expected;
      for (int64_t i = 0; i < batch; ++i) {
        std::vector<double> Ai(A.begin() + i * M * K, A.begin() + (i + 1) * M * K);
        int64_t bi = shareB ? 0 : i;
        std::vector<double> Bi(B.begin() + bi * K * N, B.begin() + (bi + 1) * K * N);
        std::vector<double> Ci(C0.begin() + i * M * N, C0.begin() + (i + 1) * M * N);
        auto r = naiveGemm(ta, false, M, N, K, 2.0, Ai, Bi, 0.5, Ci);
        expected.insert(expected.end(), r.begin(), r.end());
      }
      auto C = C0;
      gemmBatched<double>(batch, ta, false, M, N, K, 2.0, A.data(), M * K, B.data(), shareB ? 0 : K * N, 0.5,
                          C.data(), M * N);
      EXPECT_TRUE(allClose(C, expected, 1e-12));
    }
}

// ---------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------

TEST(CpuLayout, Transpose2dAcrossBlocks) {
  const int64_t rows = 37, cols = 70;  // not multiples of the 32 block
  auto x = castAll<float>(randomDoubles(size_t(rows * cols), 3));
  std::vector<float> y(x.size());
  transpose2d<float>(rows, cols, x.data(), y.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(y[c * rows + r], x[r * cols + c]);
}

TEST(CpuLayout, PermuteMatchesIndexArithmetic) {
  const Shape shape = {2, 3, 4, 5};
  std::vector<double> x(120);
  for (size_t i = 0; i < x.size(); ++i) x[i] = double(i);
  for (const std::vector<int64_t>& perm :
       {std::vector<int64_t>{0, 2, 3, 1}, {3, 1, 0, 2}, {0, 1, 2, 3}, {3, 2, 1, 0}}) {
    std::vector<double> y(x.size());
    permute<double>(shape, perm, x.data(), y.data());
    Shape out = {shape[perm[0]], shape[perm[1]], shape[perm[2]], shape[perm[3]]};
    int64_t i[4];
    int64_t o = 0;
    for (i[0] = 0; i[0] < out[0]; ++i[0])
      for (i[1] = 0; i[1] < out[1]; ++i[1])
        for (i[2] = 0; i[2] < out[2]; ++i[2])
          for (i[3] = 0; i[3] < out[3]; ++i[3], ++o) {
            int64_t src[4];
            for (int d = 0; d < 4; ++d) src[perm[d]] = i[d];
            double expected = double(((src[0] * 3 + src[1]) * 4 + src[2]) * 5 + src[3]);
            ASSERT_EQ(y[o], expected) << "perm " << perm[0] << perm[1] << perm[2] << perm[3] << " at " << o;
          }
  }
  // A 2-D permute is a transpose; rank 0 copies the scalar.
  std::vector<float> m = {1, 2, 3, 4, 5, 6}, mt(6);
  permute<float>({2, 3}, {1, 0}, m.data(), mt.data());
  EXPECT_EQ(mt, (std::vector<float>{1, 4, 2, 5, 3, 6}));
  float s = 7, t = 0;
  permute<float>({}, {}, &s, &t);
  EXPECT_EQ(t, 7);
}

// ---------------------------------------------------------------------------------------
// Dense
// ---------------------------------------------------------------------------------------

template <typename T>
void checkDense(int64_t batch, int64_t in, int64_t out, bool withBias) {
  auto x = randomDoubles(size_t(batch * in), 21), w = randomDoubles(size_t(out * in), 22);
  auto b = randomDoubles(size_t(out), 23), dy = randomDoubles(size_t(batch * out), 24);
  std::vector<double> y(size_t(batch * out)), dx(size_t(batch * in), 0), dw(size_t(out * in), 0), db(size_t(out), 0);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t j = 0; j < out; ++j) {
      double s = withBias ? b[j] : 0.0;
      for (int64_t k = 0; k < in; ++k) s += x[i * in + k] * w[j * in + k];
      y[i * out + j] = s;
      db[j] += dy[i * out + j];
      for (int64_t k = 0; k < in; ++k) {
        dx[i * in + k] += dy[i * out + j] * w[j * in + k];
        dw[j * in + k] += dy[i * out + j] * x[i * in + k];
      }
    }
  auto xt = castAll<T>(x), wt = castAll<T>(w), bt = castAll<T>(b), dyt = castAll<T>(dy);
  std::vector<T> yt(y.size(), T(99)), dxt(dx.size(), T(99)), dwt(dw.size(), T(99)), dbt(db.size(), T(99));
  denseForward<T>(batch, in, out, xt.data(), wt.data(), withBias ? bt.data() : nullptr, yt.data());
  EXPECT_TRUE(allClose(yt, y, kRtol<T>));
  denseBackward<T>(batch, in, out, xt.data(), wt.data(), dyt.data(), dxt.data(), dwt.data(), dbt.data());
  EXPECT_TRUE(allClose(dxt, dx, kRtol<T>));
  EXPECT_TRUE(allClose(dwt, dw, kRtol<T>));
  EXPECT_TRUE(allClose(dbt, db, kRtol<T>));
  // Null outputs are skipped.
  std::vector<T> dwOnly(dw.size());
  denseBackward<T>(batch, in, out, xt.data(), wt.data(), dyt.data(), nullptr, dwOnly.data(), nullptr);
  EXPECT_TRUE(allClose(dwOnly, dw, kRtol<T>));
}

TEST(CpuDense, ForwardAndBackwardMatchNaive) {
  checkDense<float>(4, 7, 3, true);
  checkDense<float>(64, 50, 10, false);
  checkDense<double>(5, 13, 6, true);
  checkDense<double>(1, 1, 1, true);
}

TEST(CpuDense, HandComputed) {
  // x = [[1, 2]], w = [[1, 0], [0, 1], [1, 1]], b = [10, 20, 30] → y = [[11, 22, 33]].
  std::vector<float> x = {1, 2}, w = {1, 0, 0, 1, 1, 1}, b = {10, 20, 30}, y(3);
  denseForward<float>(1, 2, 3, x.data(), w.data(), b.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{11, 22, 33}));
  // dy = [[1, 1, 1]] → dx = [[2, 2]], dw = [[1, 2]] x3, db = [1, 1, 1].
  std::vector<float> dy = {1, 1, 1}, dx(2), dw(6), db(3);
  denseBackward<float>(1, 2, 3, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  EXPECT_EQ(dx, (std::vector<float>{2, 2}));
  EXPECT_EQ(dw, (std::vector<float>{1, 2, 1, 2, 1, 2}));
  EXPECT_EQ(db, (std::vector<float>{1, 1, 1}));
}

// ---------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------

// x[n, c, iy, ix] for in-image coordinates, else 0 (zero padding).
double pixel(const Conv2dParams& p, const std::vector<double>& x, int64_t n, int64_t c, int64_t iy, int64_t ix) {
  if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) return 0.0;
  return x[((n * p.c + c) * p.h + iy) * p.w + ix];
}

std::vector<double> naiveConvForward(const Conv2dParams& p, const std::vector<double>& x,
                                     const std::vector<double>& w, const std::vector<double>* bias) {
  const int64_t OH = p.outH(), OW = p.outW();
  std::vector<double> y(size_t(p.n * p.o * OH * OW));
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t o = 0; o < p.o; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double s = bias ? (*bias)[o] : 0.0;
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t ki = 0; ki < p.kh; ++ki)
              for (int64_t kj = 0; kj < p.kw; ++kj)
                s += w[((o * p.c + c) * p.kh + ki) * p.kw + kj] *
                     pixel(p, x, n, c, oy * p.strideH - p.padTop + ki * p.dilationH,
                           ox * p.strideW - p.padLeft + kj * p.dilationW);
          y[((n * p.o + o) * OH + oy) * OW + ox] = s;
        }
  return y;
}

// Scatter form of both backward passes: each (output, tap) pair contributes once.
void naiveConvBackward(const Conv2dParams& p, const std::vector<double>& x, const std::vector<double>& w,
                       const std::vector<double>& dy, std::vector<double>& dx, std::vector<double>& dw,
                       std::vector<double>& db) {
  const int64_t OH = p.outH(), OW = p.outW();
  dx.assign(size_t(p.n * p.c * p.h * p.w), 0.0);
  dw.assign(size_t(p.o * p.c * p.kh * p.kw), 0.0);
  db.assign(size_t(p.o), 0.0);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t o = 0; o < p.o; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const double g = dy[((n * p.o + o) * OH + oy) * OW + ox];
          db[o] += g;
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t ki = 0; ki < p.kh; ++ki)
              for (int64_t kj = 0; kj < p.kw; ++kj) {
                int64_t iy = oy * p.strideH - p.padTop + ki * p.dilationH;
                int64_t ix = ox * p.strideW - p.padLeft + kj * p.dilationW;
                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
                const int64_t wi = ((o * p.c + c) * p.kh + ki) * p.kw + kj;
                const int64_t xi = ((n * p.c + c) * p.h + iy) * p.w + ix;
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
        }
}

struct ConvCase {
  std::string name;
  Conv2dParams p;
};

std::vector<ConvCase> convCases() {
  std::vector<ConvCase> cases;
  auto add = [&](std::string name, Conv2dParams p) { cases.push_back({std::move(name), p}); };
  add("3x3 valid, batch 2", {.n = 2, .c = 3, .h = 7, .w = 6, .o = 4, .kh = 3, .kw = 3});
  add("3x2 stride 2 pad 1", {.n = 2, .c = 3, .h = 9, .w = 8, .o = 5, .kh = 3, .kw = 2, .strideH = 2, .strideW = 2,
                             .padTop = 1, .padLeft = 1, .padBottom = 1, .padRight = 1});
  add("dilation 2 pad 2", {.n = 1, .c = 2, .h = 10, .w = 9, .o = 3, .kh = 3, .kw = 3, .padTop = 2, .padLeft = 2,
                           .padBottom = 2, .padRight = 2, .dilationH = 2, .dilationW = 2});
  add("asymmetric pad, stride 2x1, odd", {.n = 3, .c = 2, .h = 7, .w = 5, .o = 2, .kh = 2, .kw = 3, .strideH = 2,
                                          .strideW = 1, .padTop = 1, .padLeft = 2, .padBottom = 0, .padRight = 1});
  add("pointwise 1x1", {.n = 2, .c = 5, .h = 4, .w = 3, .o = 3, .kh = 1, .kw = 1});
  add("1x1 stride 2", {.n = 2, .c = 3, .h = 5, .w = 6, .o = 2, .kh = 1, .kw = 1, .strideH = 2, .strideW = 2});
  add("mnist-like c=1", {.n = 3, .c = 1, .h = 12, .w = 11, .o = 8, .kh = 3, .kw = 3});
  add("stride 3 > kernel 2", {.n = 2, .c = 2, .h = 11, .w = 7, .o = 3, .kh = 2, .kw = 2, .strideH = 3, .strideW = 3});
  add("dilation 2x3 stride 2", {.n = 2, .c = 2, .h = 11, .w = 12, .o = 3, .kh = 2, .kw = 3, .strideH = 2,
                                .strideW = 2, .padTop = 0, .padLeft = 1, .padBottom = 1, .padRight = 0,
                                .dilationH = 2, .dilationW = 3});
  add("kernel covers padded image", {.n = 1, .c = 2, .h = 3, .w = 4, .o = 2, .kh = 5, .kw = 4, .padTop = 1,
                                     .padLeft = 0, .padBottom = 1, .padRight = 0});
  add("pad wider than kernel", {.n = 1, .c = 1, .h = 4, .w = 4, .o = 2, .kh = 2, .kw = 2, .padTop = 3,
                                .padLeft = 3, .padBottom = 3, .padRight = 3});
  return cases;
}

template <typename T>
void checkConvAgainstNaive(const Conv2dParams& p, uint32_t seed, bool useScratch) {
  const int64_t OH = p.outH(), OW = p.outW();
  auto x = randomDoubles(size_t(p.n * p.c * p.h * p.w), seed);
  auto w = randomDoubles(size_t(p.o * p.c * p.kh * p.kw), seed + 1);
  auto b = randomDoubles(size_t(p.o), seed + 2);
  auto dy = randomDoubles(size_t(p.n * p.o * OH * OW), seed + 3);
  std::vector<double> dx, dw, db;
  naiveConvBackward(p, x, w, dy, dx, dw, db);

  auto xt = castAll<T>(x), wt = castAll<T>(w), bt = castAll<T>(b), dyt = castAll<T>(dy);
  std::vector<T> scratch(size_t(conv2dScratchElems(p)), T(123));  // garbage must not leak
  T* s = useScratch ? scratch.data() : nullptr;
  std::vector<T> y(size_t(p.n * p.o * OH * OW), T(99));
  conv2dForward<T>(p, xt.data(), wt.data(), bt.data(), y.data(), s);
  EXPECT_TRUE(allClose(y, naiveConvForward(p, x, w, &b), kRtol<T>)) << "forward with bias";
  conv2dForward<T>(p, xt.data(), wt.data(), nullptr, y.data(), s);
  EXPECT_TRUE(allClose(y, naiveConvForward(p, x, w, nullptr), kRtol<T>)) << "forward without bias";

  std::vector<T> dxt(dx.size(), T(99)), dwt(dw.size(), T(99)), dbt(db.size(), T(99));
  conv2dBackwardData<T>(p, dyt.data(), wt.data(), dxt.data(), s);
  EXPECT_TRUE(allClose(dxt, dx, kRtol<T>)) << "backward data";
  conv2dBackwardWeight<T>(p, xt.data(), dyt.data(), dwt.data(), s);
  EXPECT_TRUE(allClose(dwt, dw, kRtol<T>)) << "backward weight";
  conv2dBackwardBias<T>(p, dyt.data(), dbt.data());
  EXPECT_TRUE(allClose(dbt, db, kRtol<T>)) << "backward bias";
}

TEST(CpuConv2d, OutputSizeFollowsPyTorch) {
  EXPECT_EQ((Conv2dParams{.h = 28, .w = 28, .kh = 3, .kw = 3}.outH()), 26);
  Conv2dParams p{.h = 7, .w = 8, .kh = 3, .kw = 3, .strideH = 2, .strideW = 3, .padTop = 1, .padLeft = 1,
                 .padBottom = 1, .padRight = 1};
  EXPECT_EQ(p.outH(), 4);  // floor((7 + 2 - 3) / 2) + 1
  EXPECT_EQ(p.outW(), 3);  // floor((8 + 2 - 3) / 3) + 1
  Conv2dParams d{.h = 10, .w = 10, .kh = 3, .kw = 3, .dilationH = 2, .dilationW = 3};
  EXPECT_EQ(d.outH(), 6);  // 10 - 2*2
  EXPECT_EQ(d.outW(), 4);  // 10 - 3*2
  EXPECT_EQ(conv2dScratchElems(Conv2dParams{.c = 4, .h = 5, .w = 5, .kh = 1, .kw = 1}), 0);
  EXPECT_EQ(conv2dScratchElems(Conv2dParams{.c = 4, .h = 5, .w = 5, .kh = 3, .kw = 2}), 4 * 3 * 2 * 3 * 4);
  // Issue "Hardening" 1: rows (c·kh·kw = 2^40) times columns (outH·outW = 2^32) overflow; the
  // count saturates instead of wrapping to a small buffer the kernel would overrun.
  Conv2dParams huge{.c = int64_t(1) << 20, .h = 66559, .w = 66559, .kh = 1024, .kw = 1024};  // out 65536x65536
  EXPECT_EQ(huge.colRows(), int64_t(1) << 40);
  EXPECT_EQ(huge.colCols(), int64_t(1) << 32);
  EXPECT_EQ(conv2dScratchElems(huge), std::numeric_limits<int64_t>::max());
}

TEST(CpuConv2d, DesignRampExample) {
  // 5x5 ramp 1..25, K = [[1,0,1],[0,1,0],[1,0,1]], valid padding.
  Conv2dParams p{.n = 1, .c = 1, .h = 5, .w = 5, .o = 1, .kh = 3, .kw = 3};
  std::vector<float> x(25), k = {1, 0, 1, 0, 1, 0, 1, 0, 1}, y(9);
  for (int i = 0; i < 25; ++i) x[i] = float(i + 1);
  conv2dForward<float>(p, x.data(), k.data(), nullptr, y.data());
  EXPECT_EQ(y, (std::vector<float>{35, 40, 45, 60, 65, 70, 85, 90, 95}));
  std::vector<double> xd(x.begin(), x.end()), kd(k.begin(), k.end()), yd(9), bias = {0.5};
  conv2dForward<double>(p, xd.data(), kd.data(), bias.data(), yd.data());
  EXPECT_EQ(yd, (std::vector<double>{35.5, 40.5, 45.5, 60.5, 65.5, 70.5, 85.5, 90.5, 95.5}));
}

TEST(CpuConv2d, MatchesNaiveFloat) {
  uint32_t seed = 100;
  for (const ConvCase& c : convCases()) {
    SCOPED_TRACE(c.name);
    checkConvAgainstNaive<float>(c.p, seed, /*useScratch=*/seed % 2 == 0);
    seed += 10;
  }
}

TEST(CpuConv2d, MatchesNaiveDouble) {
  uint32_t seed = 200;
  for (const ConvCase& c : convCases()) {
    SCOPED_TRACE(c.name);
    checkConvAgainstNaive<double>(c.p, seed, /*useScratch=*/seed % 2 == 1);
    seed += 10;
  }
}

TEST(CpuConv2d, Im2colMatchesDefinitionAndCol2imIsItsAdjoint) {
  for (const ConvCase& c : convCases()) {
    SCOPED_TRACE(c.name);
    Conv2dParams p = c.p;
    p.n = 1;
    const int64_t OH = p.outH(), OW = p.outW(), rows = p.colRows(), cols = p.colCols();
    auto x = randomDoubles(size_t(p.c * p.h * p.w), 7);
    std::vector<double> col(size_t(rows * cols), 99.0);
    im2col<double>(p, x.data(), col.data());
    for (int64_t ci = 0; ci < p.c; ++ci)
      for (int64_t ki = 0; ki < p.kh; ++ki)
        for (int64_t kj = 0; kj < p.kw; ++kj)
          for (int64_t oy = 0; oy < OH; ++oy)
            for (int64_t ox = 0; ox < OW; ++ox) {
              double expected = pixel(p, x, 0, ci, oy * p.strideH - p.padTop + ki * p.dilationH,
                                      ox * p.strideW - p.padLeft + kj * p.dilationW);
              ASSERT_EQ(col[((ci * p.kh + ki) * p.kw + kj) * cols + oy * OW + ox], expected);
            }
    // <im2col(x), r> == <x, col2im(r)>
    auto r = randomDoubles(col.size(), 8);
    std::vector<double> back(x.size(), 99.0);
    col2im<double>(p, r.data(), back.data());
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < col.size(); ++i) lhs += col[i] * r[i];
    for (size_t i = 0; i < x.size(); ++i) rhs += x[i] * back[i];
    EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs)));
  }
}

TEST(CpuConv2d, GradientsMatchFiniteDifferences) {
  for (const ConvCase& c : convCases()) {
    SCOPED_TRACE(c.name);
    const Conv2dParams& p = c.p;
    auto x = randomDoubles(size_t(p.n * p.c * p.h * p.w), 31);
    auto w = randomDoubles(size_t(p.o * p.c * p.kh * p.kw), 32);
    auto b = randomDoubles(size_t(p.o), 33);
    auto r = randomDoubles(size_t(p.n * p.o * p.outH() * p.outW()), 34);  // dL/dy for L = Σ r·y
    auto forward = [&](const std::vector<double>& xx, const std::vector<double>& ww, const std::vector<double>& bb) {
      std::vector<double> y(r.size());
      conv2dForward<double>(p, xx.data(), ww.data(), bb.data(), y.data());
      return y;
    };
    std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
    conv2dBackwardData<double>(p, r.data(), w.data(), dx.data());
    conv2dBackwardWeight<double>(p, x.data(), r.data(), dw.data());
    conv2dBackwardBias<double>(p, r.data(), db.data());
    EXPECT_LT(gradientError(x, [&](const std::vector<double>& v) { return forward(v, w, b); }, r, dx), 1e-6);
    EXPECT_LT(gradientError(w, [&](const std::vector<double>& v) { return forward(x, v, b); }, r, dw), 1e-6);
    EXPECT_LT(gradientError(b, [&](const std::vector<double>& v) { return forward(x, w, v); }, r, db), 1e-6);
  }
}

TEST(CpuConv2d, BackwardWeightOverwritesAndHandlesEmptyBatch) {
  Conv2dParams p{.n = 1, .c = 1, .h = 3, .w = 3, .o = 1, .kh = 2, .kw = 2};
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, dy = {1, 0, 0, 1}, dw(4, 100.0f);
  conv2dBackwardWeight<float>(p, x.data(), dy.data(), dw.data());
  // dw[ki,kj] = x[ki,kj] + x[ki+1,kj+1]
  EXPECT_EQ(dw, (std::vector<float>{6, 8, 12, 14}));
  p.n = 0;
  conv2dBackwardWeight<float>(p, x.data(), dy.data(), dw.data());
  EXPECT_EQ(dw, (std::vector<float>{0, 0, 0, 0}));
}

// ---------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------

// Max (first maximum wins, padding excluded) and average (divisor kh*kw) by plain loops;
// argmax is the flat input index of each output's maximum, -1 for padding-only windows.
void naivePool(const Pool2dParams& p, const std::vector<double>& x, std::vector<double>& maxY,
               std::vector<int64_t>& argmaxIdx, std::vector<double>& avgY) {
  const int64_t OH = p.outH(), OW = p.outW();
  maxY.assign(size_t(p.n * p.c * OH * OW), 0);
  avgY.assign(maxY.size(), 0);
  argmaxIdx.assign(maxY.size(), -1);
  for (int64_t nc = 0; nc < p.n * p.c; ++nc)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        int64_t bestIdx = -1;
        for (int64_t ki = 0; ki < p.kh; ++ki)
          for (int64_t kj = 0; kj < p.kw; ++kj) {
            int64_t iy = oy * p.strideH - p.padTop + ki, ix = ox * p.strideW - p.padLeft + kj;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
            int64_t idx = (nc * p.h + iy) * p.w + ix;
            sum += x[idx];
            if (bestIdx < 0 || x[idx] > best) best = x[idx], bestIdx = idx;
          }
        size_t o = size_t((nc * OH + oy) * OW + ox);
        maxY[o] = best;
        argmaxIdx[o] = bestIdx;
        avgY[o] = sum / double(p.kh * p.kw);
      }
}

std::vector<Pool2dParams> poolCases() {
  return {
      {.n = 2, .c = 3, .h = 6, .w = 8, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2},  // the 2x2 fast path
      {.n = 1, .c = 2, .h = 7, .w = 9, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2},  // odd: last row/col unused
      {.n = 2, .c = 2, .h = 7, .w = 7, .kh = 3, .kw = 3, .strideH = 2, .strideW = 2, .padTop = 1, .padLeft = 1,
       .padBottom = 1, .padRight = 1},
      {.n = 1, .c = 3, .h = 6, .w = 5, .kh = 3, .kw = 3, .strideH = 1, .strideW = 1},  // overlapping windows
      {.n = 2, .c = 1, .h = 8, .w = 7, .kh = 3, .kw = 2, .strideH = 1, .strideW = 2, .padTop = 1, .padLeft = 0,
       .padBottom = 0, .padRight = 1},
      {.n = 1, .c = 2, .h = 5, .w = 6, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2, .padTop = 0, .padLeft = 0,
       .padBottom = 1, .padRight = 0},  // 2x2 with bottom pad: general path
      {.n = 1, .c = 1, .h = 9, .w = 9, .kh = 2, .kw = 3, .strideH = 3, .strideW = 4},
  };
}

template <typename T>
void checkPoolAgainstNaive(const Pool2dParams& p, uint32_t seed) {
  const int64_t OH = p.outH(), OW = p.outW();
  auto x = randomDoubles(size_t(p.n * p.c * p.h * p.w), seed);
  auto dy = randomDoubles(size_t(p.n * p.c * OH * OW), seed + 1);
  std::vector<double> maxY, avgY;
  std::vector<int64_t> arg;
  naivePool(p, x, maxY, arg, avgY);
  std::vector<double> dxMax(x.size(), 0), dxAvg(x.size(), 0);
  for (size_t o = 0; o < arg.size(); ++o) {
    if (arg[o] >= 0) dxMax[size_t(arg[o])] += dy[o];
  }
  for (int64_t nc = 0; nc < p.n * p.c; ++nc)  // avg backward by scattering each window
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int64_t ki = 0; ki < p.kh; ++ki)
          for (int64_t kj = 0; kj < p.kw; ++kj) {
            int64_t iy = oy * p.strideH - p.padTop + ki, ix = ox * p.strideW - p.padLeft + kj;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
            dxAvg[size_t((nc * p.h + iy) * p.w + ix)] += dy[size_t((nc * OH + oy) * OW + ox)] / double(p.kh * p.kw);
          }
  auto xt = castAll<T>(x), dyt = castAll<T>(dy);
  std::vector<T> y(maxY.size(), T(99)), dx(x.size(), T(99));
  maxPool2dForward<T>(p, xt.data(), y.data());
  EXPECT_TRUE(allClose(y, maxY, kRtol<T>)) << "max forward";
  maxPool2dBackward<T>(p, xt.data(), dyt.data(), dx.data());
  EXPECT_TRUE(allClose(dx, dxMax, kRtol<T>)) << "max backward";
  avgPool2dForward<T>(p, xt.data(), y.data());
  EXPECT_TRUE(allClose(y, avgY, kRtol<T>)) << "avg forward";
  std::fill(dx.begin(), dx.end(), T(99));
  avgPool2dBackward<T>(p, dyt.data(), dx.data());
  EXPECT_TRUE(allClose(dx, dxAvg, kRtol<T>)) << "avg backward";
}

TEST(CpuPool2d, MatchesNaive) {
  uint32_t seed = 300;
  for (const Pool2dParams& p : poolCases()) {
    SCOPED_TRACE(::testing::Message() << "pool " << p.h << "x" << p.w << " k" << p.kh << "x" << p.kw << " s"
                                      << p.strideH << "x" << p.strideW << " pad " << p.padTop << p.padLeft
                                      << p.padBottom << p.padRight);
    checkPoolAgainstNaive<float>(p, seed);
    checkPoolAgainstNaive<double>(p, seed + 5);
    seed += 10;
  }
}

TEST(CpuPool2d, GradientsMatchFiniteDifferences) {
  uint32_t seed = 400;
  for (const Pool2dParams& p : poolCases()) {
    auto x = randomDoubles(size_t(p.n * p.c * p.h * p.w), seed++);
    auto r = randomDoubles(size_t(p.n * p.c * p.outH() * p.outW()), seed++);
    std::vector<double> dx(x.size());
    maxPool2dBackward<double>(p, x.data(), r.data(), dx.data());
    auto maxF = [&](const std::vector<double>& v) {
      std::vector<double> y(r.size());
      maxPool2dForward<double>(p, v.data(), y.data());
      return y;
    };
    EXPECT_LT(gradientError(x, maxF, r, dx), 1e-6) << "max pool, case " << seed;
    avgPool2dBackward<double>(p, r.data(), dx.data());
    auto avgF = [&](const std::vector<double>& v) {
      std::vector<double> y(r.size());
      avgPool2dForward<double>(p, v.data(), y.data());
      return y;
    };
    EXPECT_LT(gradientError(x, avgF, r, dx), 1e-6) << "avg pool, case " << seed;
  }
}

template <typename T>
void checkMaxPoolTies() {
  // Constant input: every window's first (top-left) pixel takes the gradient.
  Pool2dParams fast{.n = 1, .c = 1, .h = 4, .w = 4, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2};
  std::vector<T> x(16, T(1)), dy = {1, 2, 3, 4}, dx(16, T(99));
  maxPool2dBackward<T>(fast, x.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<T>{1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0}));
  // Overlapping 2x2 windows, stride 1, on a 3x3 constant: window (i, j) picks pixel (i, j).
  Pool2dParams overlap{.n = 1, .c = 1, .h = 3, .w = 3, .kh = 2, .kw = 2, .strideH = 1, .strideW = 1};
  std::vector<T> x9(9, T(5)), dy4 = {1, 2, 3, 4}, dx9(9);
  maxPool2dBackward<T>(overlap, x9.data(), dy4.data(), dx9.data());
  EXPECT_EQ(dx9, (std::vector<T>{1, 2, 0, 3, 4, 0, 0, 0, 0}));
  // A tie between the second and fourth pixel: the second wins.
  std::vector<T> x4 = {0, 7, 3, 7}, dy1 = {1}, dx4(4), y1(1);
  Pool2dParams one{.n = 1, .c = 1, .h = 2, .w = 2, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2};
  maxPool2dForward<T>(one, x4.data(), y1.data());
  EXPECT_EQ(y1[0], T(7));
  maxPool2dBackward<T>(one, x4.data(), dy1.data(), dx4.data());
  EXPECT_EQ(dx4, (std::vector<T>{0, 1, 0, 0}));
}

TEST(CpuPool2d, MaxPoolFirstMaximumWinsTies) {
  checkMaxPoolTies<float>();
  checkMaxPoolTies<double>();
}

TEST(CpuPool2d, MaxPoolPropagatesNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (bool fastPath : {true, false}) {
    Pool2dParams p{.n = 1, .c = 1, .h = 2, .w = 4, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2};
    if (!fastPath) p.padRight = 1;  // same windows plus one of padding and column 3: general path
    std::vector<float> x = {1, nan, 3, 4, 2, 0, 9, 8}, y(size_t(p.outH() * p.outW()));
    maxPool2dForward<float>(p, x.data(), y.data());
    EXPECT_TRUE(std::isnan(y[0])) << "fast path " << fastPath;
    EXPECT_EQ(y[1], 9.0f) << "fast path " << fastPath;
  }
}

TEST(CpuPool2d, PaddingOnlyWindowIsMinusInfinityAndGetsNoGradient) {
  // 1x1 image, 1x1 window, padding 1 all round: only the centre window sees the image.
  Pool2dParams p{.n = 1, .c = 1, .h = 1, .w = 1, .kh = 1, .kw = 1, .strideH = 1, .strideW = 1, .padTop = 1,
                 .padLeft = 1, .padBottom = 1, .padRight = 1};
  std::vector<double> x = {4}, y(9), dy(9, 1.0), dx(1);
  maxPool2dForward<double>(p, x.data(), y.data());
  EXPECT_EQ(y[4], 4.0);
  EXPECT_EQ(y[0], -std::numeric_limits<double>::infinity());
  maxPool2dBackward<double>(p, x.data(), dy.data(), dx.data());
  EXPECT_EQ(dx[0], 1.0);
  // Average pooling counts the padding: corner windows average nothing in, the centre 4/1.
  avgPool2dForward<double>(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<double>{0, 0, 0, 0, 4, 0, 0, 0, 0}));
}

TEST(CpuPool2d, AvgPoolCountsPaddingInDivisor) {
  // 2x2 image of ones, 2x2 windows with stride 2 and padding 1: each window holds one pixel
  // and three padded zeros → 1/4 (count_include_pad=true).
  Pool2dParams p{.n = 1, .c = 1, .h = 2, .w = 2, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2, .padTop = 1,
                 .padLeft = 1, .padBottom = 1, .padRight = 1};
  std::vector<float> x(4, 1.0f), y(4), dy = {4, 8, 12, 16}, dx(4);
  maxPool2dForward<float>(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 1, 1, 1}));
  avgPool2dForward<float>(p, x.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{0.25f, 0.25f, 0.25f, 0.25f}));
  avgPool2dBackward<float>(p, dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{1, 2, 3, 4}));
}

}  // namespace
}  // namespace shoal::cpu
