// Helpers for the CPU kernel tests: seeded random data, tolerant comparisons, finite differences.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <vector>

namespace shoal::cpu::testing {

/// n uniform values in [lo, hi) from a fixed seed.
inline std::vector<double> randomDoubles(size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

/// Element type conversion of a whole vector.
template <typename To, typename From>
std::vector<To> castAll(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

/// Every |actual - expected| <= rtol * (|expected| + max|expected|·scaleFrac) + atol. The
/// second term covers entries that are small only because their terms cancel (float sums
/// can't be 1e-5 relative to a near-zero result); scaleFrac 0 makes it a plain rtol test.
template <typename A>
::testing::AssertionResult allClose(const std::vector<A>& actual, const std::vector<double>& expected, double rtol,
                                    double atol = 0.0, double scaleFrac = 1.0) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "size " << actual.size() << " != expected " << expected.size();
  double scale = 0;
  for (double e : expected) scale = std::max(scale, std::abs(e));
  for (size_t i = 0; i < actual.size(); ++i) {
    double a = double(actual[i]), e = expected[i];
    double tol = rtol * (std::abs(e) + scale * scaleFrac) + atol;
    bool same = (std::isnan(a) && std::isnan(e)) || a == e || std::abs(a - e) <= tol;
    if (!same)
      return ::testing::AssertionFailure() << "element " << i << ": got " << a << ", expected " << e
                                           << " (tolerance " << tol << ", max|expected| " << scale << ")";
  }
  return ::testing::AssertionSuccess();
}

/// The analytic gradient of L(x) = Σ r ⊙ f(x) checked against central differences:
/// returns max_i |numeric_i - analytic_i| / max_i |analytic_i| (0 if both are all zero).
inline double gradientError(std::vector<double> x,
                            const std::function<std::vector<double>(const std::vector<double>&)>& f,
                            const std::vector<double>& r, const std::vector<double>& analytic, double h = 1e-6) {
  auto loss = [&](const std::vector<double>& at) {
    std::vector<double> y = f(at);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += r[i] * y[i];
    return s;
  };
  double maxDiff = 0, maxGrad = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss(x);
    x[i] = saved - h;
    const double down = loss(x);
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    maxDiff = std::max(maxDiff, std::abs(numeric - analytic[i]));
    maxGrad = std::max(maxGrad, std::abs(analytic[i]));
  }
  return maxGrad == 0 ? maxDiff : maxDiff / maxGrad;
}

}  // namespace shoal::cpu::testing
