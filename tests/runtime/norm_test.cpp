// The norm family's CPU kernels against naive float64 references on random NCHW data (every
// layout: per channel, per row, per sample group), and dropout's generator: Philox-4x32-10
// against Random123's known answers, and the fraction and scale of what dropout keeps.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ir/scalar_math.h"
#include "runtime/cpu/ops_norm.h"

namespace shoal::cpu {
namespace {

std::vector<double> normRandomValues(size_t n, uint32_t seed, double offset) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::vector<double> v(n);
  for (double& x : v) x = offset + u(rng);
  return v;
}

// Normalises the elements `members` of x (indices) by their own mean and biased variance.
void normalizeNaive(const std::vector<double>& x, const std::vector<int64_t>& members, double eps,
                    std::vector<double>& y) {
  double mean = 0;
  for (int64_t i : members) mean += x[size_t(i)];
  mean /= double(members.size());
  double var = 0;
  for (int64_t i : members) var += (x[size_t(i)] - mean) * (x[size_t(i)] - mean);
  var /= double(members.size());
  for (int64_t i : members) y[size_t(i)] = (x[size_t(i)] - mean) / std::sqrt(var + eps);
}

// x [N, C, H, W] with an offset of 100 (two-pass statistics keep their precision).
constexpr int64_t N = 3, C = 4, H = 5, W = 2;
const Shape kShape = {N, C, H, W};
int64_t at(int64_t n, int64_t c, int64_t s) { return (n * C + c) * H * W + s; }

TEST(NormKernels, BatchNormTrainingNormalisesEachChannelOverTheBatch) {
  const auto x = normRandomValues(size_t(N * C * H * W), 1, 100.0);
  std::vector<double> want(x.size()), got(x.size());
  for (int64_t c = 0; c < C; ++c) {
    std::vector<int64_t> members;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < H * W; ++s) members.push_back(at(n, c, s));
    normalizeNaive(x, members, 1e-5, want);
  }
  normForward<double>(channelLayout(kShape), NormAffine{NormAffineKind::PerGroup}, x.data(), nullptr, nullptr, 1e-5,
                      got.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-11) << i;
}

TEST(NormKernels, GroupNormNormalisesEachSamplesGroupOfChannels) {
  const auto x = normRandomValues(size_t(N * C * H * W), 2, 100.0);
  std::vector<double> want(x.size()), got(x.size());
  const int64_t groups = 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < groups; ++g) {
      std::vector<int64_t> members;
      for (int64_t c = g * (C / groups); c < (g + 1) * (C / groups); ++c)
        for (int64_t s = 0; s < H * W; ++s) members.push_back(at(n, c, s));
      normalizeNaive(x, members, 1e-5, want);
    }
  // The affine: weight c + 1, bias -c, per channel.
  std::vector<double> w(C), b(C);
  for (int64_t c = 0; c < C; ++c) w[size_t(c)] = double(c + 1), b[size_t(c)] = -double(c);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < H * W; ++s) {
        double& v = want[size_t(at(n, c, s))];
        v = v * w[size_t(c)] + b[size_t(c)];
      }
  normForward<double>(sampleGroupLayout(kShape, groups), groupAffine(kShape, groups), x.data(), w.data(), b.data(),
                      1e-5, got.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-11) << i;
}

TEST(NormKernels, LayerNormNormalisesTheLastDims) {
  const auto x = normRandomValues(size_t(N * C * H * W), 3, 100.0);
  std::vector<double> want(x.size()), got(x.size());
  const int64_t cols = H * W;  // dims = 2
  for (int64_t r = 0; r < N * C; ++r) {
    std::vector<int64_t> members;
    for (int64_t j = 0; j < cols; ++j) members.push_back(r * cols + j);
    normalizeNaive(x, members, 1e-5, want);
  }
  normForward<double>(rowLayout(kShape, 2), NormAffine{NormAffineKind::PerElement}, x.data(), nullptr, nullptr, 1e-5,
                      got.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-11) << i;
}

// Random123's known-answer tests for philox4x32 with 10 rounds (kat_vectors), which cuRAND's
// curand_Philox4x32_10 also gives.
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Kat {
    unsigned int ctr[4];
    unsigned int key[2];
    unsigned int out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    unsigned int words[4] = {k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]};
    scalar::shoal_philox4x32_10(words, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(words[i], k.out[i]) << "word " << i;
  }
}

TEST(DropoutKernel, KeepsAboutOneMinusRateScaledByItsInverse) {
  const int64_t n = 100003;
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(i % 17) + 1.0f;  // never 0
  for (double rate : {0.1, 0.5, 0.9}) {
    SCOPED_TRACE(rate);
    std::vector<float> y(static_cast<size_t>(n));
    dropoutTrain<float>(n, x.data(), 5, 0xfeedull, rate, y.data());
    int64_t kept = 0;
    const float scale = float(1.0 / (1.0 - rate));
    for (int64_t i = 0; i < n; ++i) {
      if (y[size_t(i)] == 0) continue;
      ++kept;
      ASSERT_EQ(y[size_t(i)], x[size_t(i)] * scale) << i;
    }
    EXPECT_NEAR(double(kept) / double(n), 1 - rate, 0.01);
    // In place (y over x) gives the same values.
    std::vector<float> inPlace = x;
    dropoutTrain<float>(n, inPlace.data(), 5, 0xfeedull, rate, inPlace.data());
    EXPECT_EQ(inPlace, y);
  }
  // Another step or seed draws another mask.
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), c(static_cast<size_t>(n));
  dropoutTrain<float>(n, x.data(), 1, 7, 0.5, a.data());
  dropoutTrain<float>(n, x.data(), 2, 7, 0.5, b.data());
  dropoutTrain<float>(n, x.data(), 1, 8, 0.5, c.data());
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(dropoutStepWord(3.0), 3u);
}

}  // namespace
}  // namespace shoal::cpu
