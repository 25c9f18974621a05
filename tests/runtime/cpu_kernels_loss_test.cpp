// Tests of the CPU softmax, loss, argmax and optimizer kernels: hand-computed values, naive
// float64 references and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu_kernels_test_util.h"

namespace shoal::cpu {
namespace {

using testing::allClose;
using testing::castAll;
using testing::gradientError;
using testing::randomDoubles;

template <typename T>
constexpr double kLossRtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

std::vector<double> naiveSoftmax(int64_t rows, int64_t cols, const std::vector<double>& x, bool log) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp(x[r * cols + j]);
    for (int64_t j = 0; j < cols; ++j)
      y[r * cols + j] = log ? x[r * cols + j] - std::log(s) : std::exp(x[r * cols + j]) / s;
  }
  return y;
}

// ---------------------------------------------------------------------------------------
// Softmax
// ---------------------------------------------------------------------------------------

template <typename T>
void checkSoftmax(int64_t rows, int64_t cols) {
  auto x = castAll<double>(castAll<T>(randomDoubles(size_t(rows * cols), 1, -5, 5)));
  auto xt = castAll<T>(x);
  std::vector<T> y(x.size());
  softmax<T>(rows, cols, xt.data(), y.data());
  EXPECT_TRUE(allClose(y, naiveSoftmax(rows, cols, x, false), kLossRtol<T>, 0.0, 0.0));
  logSoftmax<T>(rows, cols, xt.data(), y.data());
  EXPECT_TRUE(allClose(y, naiveSoftmax(rows, cols, x, true), kLossRtol<T>, 0.0, 0.0));
}

TEST(CpuSoftmax, MatchesNaive) {
  checkSoftmax<float>(7, 10);
  checkSoftmax<double>(3, 33);
  checkSoftmax<float>(1, 1);
}

TEST(CpuSoftmax, StableForHugeLogits) {
  std::vector<float> x = {1000, 1001, 1002, -1000, -1000, -1000}, y(6);
  softmax<float>(2, 3, x.data(), y.data());
  EXPECT_NEAR(y[0], 0.09003057f, 1e-7f);
  EXPECT_NEAR(y[1], 0.24472847f, 1e-7f);
  EXPECT_NEAR(y[2], 0.66524096f, 1e-7f);
  EXPECT_NEAR(y[3], 1.0f / 3, 1e-7f);
  logSoftmax<float>(2, 3, x.data(), y.data());
  EXPECT_NEAR(y[2], -0.40760596f, 1e-6f);
  EXPECT_NEAR(y[4], -1.09861229f, 1e-6f);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
}

TEST(CpuSoftmax, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 4, cols = 6;
  auto x = randomDoubles(size_t(rows * cols), 2, -3, 3);
  auto r = randomDoubles(x.size(), 3);
  for (bool log : {false, true}) {
    std::vector<double> y(x.size()), dx(x.size());
    auto f = [&](const std::vector<double>& v) {
      std::vector<double> out(v.size());
      if (log)
        logSoftmax<double>(rows, cols, v.data(), out.data());
      else
        softmax<double>(rows, cols, v.data(), out.data());
      return out;
    };
    y = f(x);
    if (log)
      logSoftmaxBackward<double>(rows, cols, y.data(), r.data(), dx.data());
    else
      softmaxBackward<double>(rows, cols, y.data(), r.data(), dx.data());
    EXPECT_LT(gradientError(x, f, r, dx), 1e-6) << (log ? "logSoftmax" : "softmax");
  }
}

// ---------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------

TEST(CpuLoss, SoftmaxCrossEntropyHandComputed) {
  // Rows [1,2,3] (label 2) and [1,1,1] (label 0): losses 0.40760596 and log 3; mean 0.7531091.
  std::vector<float> logits = {1, 2, 3, 1, 1, 1}, probs(6), grad(6);
  std::vector<int64_t> labels = {2, 0};
  float loss = -1;
  ASSERT_TRUE(softmaxCrossEntropy<float>(2, 3, logits.data(), labels.data(), &loss, probs.data()));
  EXPECT_NEAR(loss, 0.753109126556245f, 1e-6f);
  EXPECT_NEAR(probs[0], 0.09003057317038048f, 1e-7f);
  EXPECT_NEAR(probs[2], 0.665240955774822f, 1e-7f);
  EXPECT_NEAR(probs[4], 1.0f / 3, 1e-7f);
  // dlogits = dloss (p - onehot) / rows with dloss = 2: row 0 → p, last entry p - 1.
  ASSERT_TRUE(softmaxCrossEntropyBackward<float>(2, 3, logits.data(), labels.data(), 2.0f, grad.data()));
  EXPECT_NEAR(grad[0], 0.09003057f, 1e-7f);
  EXPECT_NEAR(grad[1], 0.24472847f, 1e-7f);
  EXPECT_NEAR(grad[2], 0.66524096f - 1.0f, 1e-7f);
  EXPECT_NEAR(grad[3], 1.0f / 3 - 1.0f, 1e-7f);
  EXPECT_NEAR(grad[4], 1.0f / 3, 1e-7f);
}

template <typename T, typename L>
void checkCrossEntropy(int64_t rows, int64_t cols, uint32_t seed) {
  auto x = castAll<double>(castAll<T>(randomDoubles(size_t(rows * cols), seed, -4, 4)));
  std::vector<L> labels(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) labels[r] = L((r * 7 + seed) % cols);
  auto logp = naiveSoftmax(rows, cols, x, true);
  double expectedLoss = 0;
  std::vector<double> expectedGrad(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    expectedLoss -= logp[r * cols + int64_t(labels[r])] / double(rows);
    for (int64_t j = 0; j < cols; ++j)
      expectedGrad[r * cols + j] = 0.5 * (std::exp(logp[r * cols + j]) - (j == int64_t(labels[r]))) / double(rows);
  }
  auto xt = castAll<T>(x);
  T loss = 0;
  std::vector<T> grad(x.size());
  ASSERT_TRUE((softmaxCrossEntropy<T, L>(rows, cols, xt.data(), labels.data(), &loss)));
  EXPECT_TRUE(allClose(std::vector<T>{loss}, {expectedLoss}, kLossRtol<T>));
  ASSERT_TRUE((softmaxCrossEntropyBackward<T, L>(rows, cols, xt.data(), labels.data(), T(0.5), grad.data())));
  EXPECT_TRUE(allClose(grad, expectedGrad, kLossRtol<T>));
}

TEST(CpuLoss, SoftmaxCrossEntropyMatchesNaiveForEveryLabelType) {
  checkCrossEntropy<float, int64_t>(64, 10, 1);
  checkCrossEntropy<float, int32_t>(5, 3, 2);
  checkCrossEntropy<float, uint8_t>(9, 10, 3);
  checkCrossEntropy<double, int64_t>(8, 7, 4);
  checkCrossEntropy<double, int32_t>(1, 2, 5);
  checkCrossEntropy<double, uint8_t>(3, 4, 6);
}

TEST(CpuLoss, SoftmaxCrossEntropyBackwardMatchesFiniteDifferences) {
  const int64_t rows = 5, cols = 4;
  auto x = randomDoubles(size_t(rows * cols), 7, -2, 2);
  std::vector<int32_t> labels = {0, 3, 1, 1, 2};
  std::vector<double> grad(x.size());
  ASSERT_TRUE(softmaxCrossEntropyBackward<double>(rows, cols, x.data(), labels.data(), 1.0, grad.data()));
  auto f = [&](const std::vector<double>& v) {
    double loss = 0;
    softmaxCrossEntropy<double>(rows, cols, v.data(), labels.data(), &loss);
    return std::vector<double>{loss};
  };
  EXPECT_LT(gradientError(x, f, {1.0}, grad), 1e-6);
}

TEST(CpuLoss, OutOfRangeLabelsAreReportedNotFatal) {
  std::vector<float> logits(6, 0.0f), grad(6, 7.0f);
  float loss = 42;
  std::vector<int64_t> tooBig = {0, 3};
  EXPECT_EQ(firstInvalidLabel<int64_t>(2, 3, tooBig.data()), 1);
  EXPECT_FALSE(softmaxCrossEntropy<float>(2, 3, logits.data(), tooBig.data(), &loss));
  EXPECT_EQ(loss, 42.0f);  // nothing written
  EXPECT_FALSE(softmaxCrossEntropyBackward<float>(2, 3, logits.data(), tooBig.data(), 1.0f, grad.data()));
  EXPECT_EQ(grad[0], 7.0f);
  std::vector<int32_t> negative = {-1, 0};
  EXPECT_EQ(firstInvalidLabel<int32_t>(2, 3, negative.data()), 0);
  EXPECT_FALSE(softmaxCrossEntropy<float>(2, 3, logits.data(), negative.data(), &loss));
  std::vector<uint8_t> bytes = {2, 255};
  EXPECT_EQ(firstInvalidLabel<uint8_t>(2, 3, bytes.data()), 1);
  std::vector<int64_t> fine = {2, 0};
  EXPECT_EQ(firstInvalidLabel<int64_t>(2, 3, fine.data()), -1);
  EXPECT_EQ(accuracyCount<float>(2, 3, logits.data(), tooBig.data()), 1);  // row 0 argmax 0 = label 0
}

TEST(CpuLoss, MseHandComputedAndGradient) {
  std::vector<float> pred = {1, 2, 3}, target = {1, 0, 0}, grad(3);
  float loss = 0;
  mse<float>(3, pred.data(), target.data(), &loss);
  EXPECT_FLOAT_EQ(loss, 13.0f / 3);
  mseBackward<float>(3, pred.data(), target.data(), 1.0f, grad.data());
  EXPECT_FLOAT_EQ(grad[0], 0.0f);
  EXPECT_FLOAT_EQ(grad[1], 4.0f / 3);
  EXPECT_FLOAT_EQ(grad[2], 2.0f);
  auto p = randomDoubles(12, 8), t = randomDoubles(12, 9);
  std::vector<double> g(12);
  mseBackward<double>(12, p.data(), t.data(), 1.0, g.data());
  auto f = [&](const std::vector<double>& v) {
    double l = 0;
    mse<double>(12, v.data(), t.data(), &l);
    return std::vector<double>{l};
  };
  EXPECT_LT(gradientError(p, f, {1.0}, g), 1e-6);
}

// ---------------------------------------------------------------------------------------
// argmax / accuracy
// ---------------------------------------------------------------------------------------

TEST(CpuArgmax, FirstMaximumWinsAndNaNIsLargest) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {1, 3, 3, 0,   // tie → 1
                          5, 1, 2, 5,   // tie first/last → 0
                          0, nan, 9, nan,  // NaN → first NaN
                          -2, -1, -3, -4};
  std::vector<int64_t> out(4);
  argmax<float>(4, 4, x.data(), out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{1, 0, 1, 1}));
  std::vector<int32_t> labels = {1, 3, 1, 1};
  EXPECT_EQ(accuracyCount<float>(4, 4, x.data(), labels.data()), 3);
  std::vector<uint8_t> byteLabels = {1, 0, 2, 1};
  EXPECT_EQ(accuracyCount<float>(4, 4, x.data(), byteLabels.data()), 3);
}

// ---------------------------------------------------------------------------------------
// Optimizers
// ---------------------------------------------------------------------------------------

TEST(CpuOptim, SgdMomentumHandComputed) {
  // lr 0.1, momentum 0.9, grads 0.5, -1, 0.25 (hand-computed with v_t = 0.9 v + g):
  //   v = 0.5,    w = 1 - 0.05        = 0.95
  //   v = -0.55,  w = 0.95 + 0.055    = 1.005
  //   v = -0.245, w = 1.005 + 0.0245  = 1.0295
  std::vector<double> w = {1.0}, v = {0.0};
  const double grads[] = {0.5, -1.0, 0.25}, expectedW[] = {0.95, 1.005, 1.0295}, expectedV[] = {0.5, -0.55, -0.245};
  for (int s = 0; s < 3; ++s) {
    sgdUpdate<double>(1, w.data(), &grads[s], v.data(), 0.1, 0.9);
    EXPECT_NEAR(w[0], expectedW[s], 1e-15) << "step " << s + 1;
    EXPECT_NEAR(v[0], expectedV[s], 1e-15) << "step " << s + 1;
  }
  // Nesterov: w -= lr (g + m v): 1 - 0.1·0.95 = 0.905, then 0.905 - 0.1·(-1 + 0.9·(-0.55)) = 1.0545.
  std::vector<float> wn = {1.0f}, vn = {0.0f}, g1 = {0.5f}, g2 = {-1.0f};
  sgdUpdate<float>(1, wn.data(), g1.data(), vn.data(), 0.1f, 0.9f, 0.0f, /*nesterov=*/true);
  EXPECT_NEAR(wn[0], 0.905f, 1e-7f);
  sgdUpdate<float>(1, wn.data(), g2.data(), vn.data(), 0.1f, 0.9f, 0.0f, /*nesterov=*/true);
  EXPECT_NEAR(wn[0], 1.0545f, 1e-6f);
  // Weight decay 0.1: g = 0.5 + 0.1 → w = 0.94; then g = -1 + 0.094, v = 0.54 - 0.906 → w = 0.9766.
  std::vector<double> wd = {1.0}, vd = {0.0};
  sgdUpdate<double>(1, wd.data(), &grads[0], vd.data(), 0.1, 0.9, 0.1);
  EXPECT_NEAR(wd[0], 0.94, 1e-15);
  sgdUpdate<double>(1, wd.data(), &grads[1], vd.data(), 0.1, 0.9, 0.1);
  EXPECT_NEAR(wd[0], 0.9766, 1e-15);
  // Plain SGD needs no velocity buffer.
  std::vector<float> wp = {2.0f}, gp = {4.0f};
  sgdUpdate<float>(1, wp.data(), gp.data(), nullptr, 0.25f, 0.0f);
  EXPECT_EQ(wp[0], 1.0f);
}

TEST(CpuOptim, AdamHandComputed) {
  // lr 0.1, β1 0.9, β2 0.999, eps 1e-8, w = 1, grads 0.5, -0.25, 0.1. Step 1: m̂ = 0.5,
  // v̂ = 0.25, w = 1 - 0.1·0.5/(0.5 + 1e-8) = 0.900000002. Step 2: m = 0.02, v = 0.00031225,
  // m̂ = 0.02/0.19, v̂ = 0.00031225/0.001999, w = 0.87336630 (values from a float64 run of
  // the formula in the header).
  std::vector<double> w = {1.0}, m = {0.0}, v = {0.0};
  const double grads[] = {0.5, -0.25, 0.1};
  const double expectedW[] = {0.900000002, 0.8733662987078463, 0.8418419430257161};
  const double expectedM[] = {0.05, 0.02, 0.028};
  const double expectedV[] = {0.00025, 0.00031225, 0.00032193775};
  for (int s = 0; s < 3; ++s) {
    adamUpdate<double>(1, w.data(), &grads[s], m.data(), v.data(), 0.1, 0.9, 0.999, 1e-8, s + 1);
    EXPECT_NEAR(w[0], expectedW[s], 1e-14) << "step " << s + 1;
    EXPECT_NEAR(m[0], expectedM[s], 1e-15) << "step " << s + 1;
    EXPECT_NEAR(v[0], expectedV[s], 1e-15) << "step " << s + 1;
  }
  // Weight decay 0.5, as L2 (Adam) and decoupled (AdamW).
  const double l2W[] = {0.900000001, 0.8196959042420043, 0.735595172997426};
  const double decoupledW[] = {0.8500000019999999, 0.7808662986078463, 0.7102986279953237};
  for (bool decoupled : {false, true}) {
    std::vector<float> wf = {1.0f}, mf = {0.0f}, vf = {0.0f};
    for (int s = 0; s < 3; ++s) {
      float g = float(grads[s]);
      adamUpdate<float>(1, wf.data(), &g, mf.data(), vf.data(), 0.1f, 0.9f, 0.999f, 1e-8f, s + 1, 0.5f, decoupled);
      EXPECT_NEAR(wf[0], (decoupled ? decoupledW : l2W)[s], 1e-6) << "decoupled " << decoupled << " step " << s + 1;
    }
  }
}

template <typename T>
void checkOptimizersAgainstNaive() {
  const int64_t n = 101;
  auto w0 = randomDoubles(size_t(n), 11);
  std::vector<double> wRef = w0, mRef(size_t(n), 0), vRef(size_t(n), 0), velRef(size_t(n), 0), wSgdRef = w0;
  auto w = castAll<T>(w0), wSgd = castAll<T>(w0);
  std::vector<T> m(size_t(n), 0), v(size_t(n), 0), vel(size_t(n), 0);
  const double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-7, mom = 0.9, wd = 1e-2;
  for (int64_t step = 1; step <= 5; ++step) {
    auto g = randomDoubles(size_t(n), 20 + uint32_t(step));
    g = castAll<double>(castAll<T>(g));
    for (int64_t i = 0; i < n; ++i) {
      mRef[i] = b1 * mRef[i] + (1 - b1) * g[i];
      vRef[i] = b2 * vRef[i] + (1 - b2) * g[i] * g[i];
      wRef[i] -= lr * (mRef[i] / (1 - std::pow(b1, step))) / (std::sqrt(vRef[i] / (1 - std::pow(b2, step))) + eps);
      double gs = g[i] + wd * wSgdRef[i];
      velRef[i] = mom * velRef[i] + gs;
      wSgdRef[i] -= lr * velRef[i];
    }
    auto gt = castAll<T>(g);
    adamUpdate<T>(n, w.data(), gt.data(), m.data(), v.data(), T(lr), T(b1), T(b2), T(eps), step);
    sgdUpdate<T>(n, wSgd.data(), gt.data(), vel.data(), T(lr), T(mom), T(wd));
  }
  EXPECT_TRUE(allClose(w, wRef, kLossRtol<T>, 0.0, 0.0));
  EXPECT_TRUE(allClose(m, mRef, kLossRtol<T>));
  EXPECT_TRUE(allClose(wSgd, wSgdRef, kLossRtol<T>, 0.0, 0.0));
  EXPECT_TRUE(allClose(vel, velRef, kLossRtol<T>));
}

TEST(CpuOptim, MatchNaiveOverSeveralSteps) {
  checkOptimizersAgainstNaive<float>();
  checkOptimizersAgainstNaive<double>();
}

}  // namespace
}  // namespace shoal::cpu
