// Tests of the CPU elementwise and reduction kernels: unary, broadcasting binary and their
// gradients, reduceSumToShape and reduce, against naive float64 loops and finite differences.
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
constexpr double kRtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

const UnaryKind kUnaryKinds[] = {UnaryKind::Relu, UnaryKind::Sigmoid, UnaryKind::Tanh, UnaryKind::Exp,
                                 UnaryKind::Log,  UnaryKind::Neg,     UnaryKind::Sqrt, UnaryKind::Abs};
const BinaryKind kBinaryKinds[] = {BinaryKind::Add, BinaryKind::Sub, BinaryKind::Mul, BinaryKind::Div,
                                   BinaryKind::Max, BinaryKind::Min, BinaryKind::Pow};

double unaryRef(UnaryKind k, double x) {
  switch (k) {
    case UnaryKind::Relu: return x > 0 ? x : 0;
    case UnaryKind::Sigmoid: return 1 / (1 + std::exp(-x));
    case UnaryKind::Tanh: return std::tanh(x);
    case UnaryKind::Exp: return std::exp(x);
    case UnaryKind::Log: return std::log(x);
    case UnaryKind::Neg: return -x;
    case UnaryKind::Sqrt: return std::sqrt(x);
    case UnaryKind::Abs: return std::abs(x);
  }
  return 0;
}

double binaryRef(BinaryKind k, double a, double b) {
  switch (k) {
    case BinaryKind::Add: return a + b;
    case BinaryKind::Sub: return a - b;
    case BinaryKind::Mul: return a * b;
    case BinaryKind::Div: return a / b;
    case BinaryKind::Max: return std::max(a, b);
    case BinaryKind::Min: return std::min(a, b);
    case BinaryKind::Pow: return std::pow(a, b);
  }
  return 0;
}

// Inputs inside each function's domain and away from kinks (|x| >= 0.1).
std::vector<double> unaryInputs(UnaryKind k, size_t n, uint32_t seed) {
  auto x = randomDoubles(n, seed, -3, 3);
  for (double& v : x) {
    if (std::abs(v) < 0.1) v += v < 0 ? -0.1 : 0.1;
    if (k == UnaryKind::Log || k == UnaryKind::Sqrt) v = std::abs(v);
  }
  return x;
}

// Flat index into an operand of shape `s` (right-aligned, broadcast) for an output multi-index.
int64_t broadcastIndex(const Shape& s, const std::vector<int64_t>& outIdx) {
  const size_t lead = outIdx.size() - s.size();
  int64_t flat = 0;
  for (size_t d = 0; d < s.size(); ++d) flat = flat * s[d] + (s[d] == 1 ? 0 : outIdx[lead + d]);
  return flat;
}

// Visits every multi-index of `shape` in row-major order.
template <typename F>
void forEachIndex(const Shape& shape, F&& f) {
  const int64_t total = numElements(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t flat = 0; flat < total; ++flat) {
    f(flat, idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Unary
// ---------------------------------------------------------------------------------------

template <typename T>
void checkUnary() {
  for (UnaryKind k : kUnaryKinds) {
    SCOPED_TRACE(int(k));
    auto x = unaryInputs(k, 257, 5 + uint32_t(k));
    std::vector<double> expected(x.size());
    for (size_t i = 0; i < x.size(); ++i) expected[i] = unaryRef(k, double(T(x[i])));
    auto xt = castAll<T>(x);
    std::vector<T> y(x.size());
    unary<T>(k, int64_t(x.size()), xt.data(), y.data());
    EXPECT_TRUE(allClose(y, expected, kRtol<T>, 0.0, 0.0));
    unary<T>(k, int64_t(x.size()), xt.data(), xt.data());  // in place
    EXPECT_EQ(xt, y);
  }
}

TEST(CpuUnary, MatchesStdFunctions) {
  checkUnary<float>();
  checkUnary<double>();
}

TEST(CpuUnary, SigmoidDoesNotOverflowAndReluKeepsNaN) {
  std::vector<float> x = {-1000, -50, 0, 50, 1000}, y(5);
  unary<float>(UnaryKind::Sigmoid, 5, x.data(), y.data());
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_NEAR(y[1], 1.9287e-22f, 1e-26f);
  EXPECT_EQ(y[2], 0.5f);
  EXPECT_EQ(y[3], 1.0f);
  EXPECT_EQ(y[4], 1.0f);
  std::vector<double> r = {-2, 0, 3, std::numeric_limits<double>::quiet_NaN()}, ry(4);
  unary<double>(UnaryKind::Relu, 4, r.data(), ry.data());
  EXPECT_EQ(ry[0], 0.0);
  EXPECT_EQ(ry[1], 0.0);
  EXPECT_EQ(ry[2], 3.0);
  EXPECT_TRUE(std::isnan(ry[3]));
}

TEST(CpuUnary, GradientsMatchFiniteDifferences) {
  for (UnaryKind k : kUnaryKinds) {
    SCOPED_TRACE(int(k));
    auto x = unaryInputs(k, 40, 50 + uint32_t(k));
    auto r = randomDoubles(x.size(), 60 + uint32_t(k));
    std::vector<double> y(x.size()), dx(x.size());
    unary<double>(k, int64_t(x.size()), x.data(), y.data());
    unaryGrad<double>(k, int64_t(x.size()), x.data(), y.data(), r.data(), dx.data());
    auto f = [&](const std::vector<double>& v) {
      std::vector<double> out(v.size());
      unary<double>(k, int64_t(v.size()), v.data(), out.data());
      return out;
    };
    EXPECT_LT(gradientError(x, f, r, dx), 1e-6);
  }
}

TEST(CpuUnary, GradientsAtKinksAreZeroLikePyTorch) {
  std::vector<float> x = {0, -1, 2}, y(3), dy = {5, 5, 5}, dx(3);
  unary<float>(UnaryKind::Relu, 3, x.data(), y.data());
  unaryGrad<float>(UnaryKind::Relu, 3, x.data(), y.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{0, 0, 5}));
  unary<float>(UnaryKind::Abs, 3, x.data(), y.data());
  unaryGrad<float>(UnaryKind::Abs, 3, x.data(), y.data(), dy.data(), dx.data());
  EXPECT_EQ(dx, (std::vector<float>{0, -5, 5}));
  // Sigmoid and tanh use the forward output: y(1-y) and 1-y².
  std::vector<double> s = {0.0}, sy(1), g = {1.0}, sdx(1);
  unary<double>(UnaryKind::Sigmoid, 1, s.data(), sy.data());
  unaryGrad<double>(UnaryKind::Sigmoid, 1, s.data(), sy.data(), g.data(), sdx.data());
  EXPECT_EQ(sdx[0], 0.25);
  unary<double>(UnaryKind::Tanh, 1, s.data(), sy.data());
  unaryGrad<double>(UnaryKind::Tanh, 1, s.data(), sy.data(), g.data(), sdx.data());
  EXPECT_EQ(sdx[0], 1.0);
}

// ---------------------------------------------------------------------------------------
// Binary with broadcasting
// ---------------------------------------------------------------------------------------

struct BroadcastCase {
  Shape out, a, b;
};

const std::vector<BroadcastCase>& broadcastCases() {
  static const std::vector<BroadcastCase> cases = {
      {{3, 5}, {3, 5}, {3, 5}},              // same shape
      {{3, 5}, {3, 5}, {}},                  // scalar b
      {{3, 5}, {1}, {3, 5}},                 // scalar a, as [1]
      {{3, 5}, {3, 5}, {5}},                 // row-vector b
      {{4, 6}, {4, 1}, {6}},                 // column a, row b
      {{3, 5}, {3, 1}, {1, 5}},              // outer product shape
      {{2, 3, 4, 5}, {2, 3, 4, 5}, {3, 1, 1}},  // NCHW + per-channel
      {{4, 3, 5}, {4, 1, 5}, {3, 1}},        // both broadcast, different ranks
      {{2, 1, 3}, {2, 1, 3}, {1, 1, 1}},     // size-1 dims everywhere
      {{6}, {6}, {6}},
      {{}, {}, {}},                          // rank 0
      {{2, 0, 3}, {2, 0, 3}, {3}},           // empty
      {{7, 9}, {1, 9}, {7, 1}},
  };
  return cases;
}

std::vector<double> naiveBinary(BinaryKind k, const BroadcastCase& c, const std::vector<double>& a,
                                const std::vector<double>& b) {
  std::vector<double> out(size_t(numElements(c.out)));
  forEachIndex(c.out, [&](int64_t flat, const std::vector<int64_t>& idx) {
    out[flat] = binaryRef(k, a[broadcastIndex(c.a, idx)], b[broadcastIndex(c.b, idx)]);
  });
  return out;
}

template <typename T>
void checkBinary() {
  uint32_t seed = 70;
  for (const BroadcastCase& c : broadcastCases())
    for (BinaryKind k : kBinaryKinds) {
      SCOPED_TRACE(::testing::Message() << "out " << shapeString(c.out) << " a " << shapeString(c.a) << " b "
                                        << shapeString(c.b) << " kind " << int(k));
      ASSERT_TRUE(broadcastsTo(c.a, c.b, c.out));
      double lo = k == BinaryKind::Pow ? 0.2 : -2;
      auto a = castAll<double>(castAll<T>(randomDoubles(size_t(numElements(c.a)), seed++, lo, 2)));
      auto b = castAll<double>(castAll<T>(randomDoubles(size_t(numElements(c.b)), seed++, lo, 2)));
      auto expected = naiveBinary(k, c, a, b);
      auto at = castAll<T>(a), bt = castAll<T>(b);
      std::vector<T> out(expected.size(), T(99));
      binary<T>(k, c.out, c.a, at.data(), c.b, bt.data(), out.data());
      EXPECT_TRUE(allClose(out, expected, kRtol<T>, 0.0, 0.0));
      if (numElements(c.a) == numElements(c.out)) {  // out aliasing a
        binary<T>(k, c.out, c.a, at.data(), c.b, bt.data(), at.data());
        EXPECT_EQ(at, out);
      }
    }
}

TEST(CpuBinary, BroadcastingMatchesNaiveFloat) { checkBinary<float>(); }
TEST(CpuBinary, BroadcastingMatchesNaiveDouble) { checkBinary<double>(); }

TEST(CpuBinary, HandComputedBroadcast) {
  // [[1],[2]] + [10, 20, 30] = [[11, 21, 31], [12, 22, 32]]
  std::vector<float> a = {1, 2}, b = {10, 20, 30}, out(6);
  binary<float>(BinaryKind::Add, {2, 3}, {2, 1}, a.data(), {3}, b.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{11, 21, 31, 12, 22, 32}));
  binary<float>(BinaryKind::Sub, {2, 3}, {2, 1}, a.data(), {3}, b.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{-9, -19, -29, -8, -18, -28}));
}

TEST(CpuBinary, BroadcastsToRejectsMismatches) {
  EXPECT_TRUE(broadcastsTo({3, 1}, {1, 4}, {3, 4}));
  EXPECT_TRUE(broadcastsTo({}, {2, 2}, {2, 2}));
  EXPECT_FALSE(broadcastsTo({3}, {4}, {4}));
  EXPECT_FALSE(broadcastsTo({3, 1}, {1, 4}, {3, 1}));
  EXPECT_FALSE(broadcastsTo({3, 4}, {4}, {1, 3, 4}));
}

TEST(CpuBinary, MaxMinPropagateNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> a = {nan, 1, 2}, b = {1, nan, 3}, out(3);
  binary<double>(BinaryKind::Max, {3}, {3}, a.data(), {3}, b.data(), out.data());
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]));
  EXPECT_EQ(out[2], 3.0);
  binary<double>(BinaryKind::Min, {3}, {3}, a.data(), {3}, b.data(), out.data());
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]));
  EXPECT_EQ(out[2], 2.0);
}

TEST(CpuBinary, GradientsMatchFiniteDifferences) {
  uint32_t seed = 900;
  for (const BroadcastCase& c : broadcastCases())
    for (BinaryKind k : kBinaryKinds) {
      SCOPED_TRACE(::testing::Message() << "out " << shapeString(c.out) << " a " << shapeString(c.a) << " b "
                                        << shapeString(c.b) << " kind " << int(k));
      double lo = k == BinaryKind::Pow ? 0.2 : -2;
      auto a = randomDoubles(size_t(numElements(c.a)), seed++, lo, 2);
      auto b = randomDoubles(size_t(numElements(c.b)), seed++, lo, 2);
      if (k == BinaryKind::Div)
        for (double& v : b) v += v < 0 ? -0.5 : 0.5;  // keep away from 0
      auto r = randomDoubles(size_t(numElements(c.out)), seed++);
      std::vector<double> da(a.size(), 99), db(b.size(), 99);
      binaryGrad<double>(k, c.out, c.a, a.data(), c.b, b.data(), r.data(), da.data(), db.data());
      auto fa = [&](const std::vector<double>& v) {
        std::vector<double> out(r.size());
        binary<double>(k, c.out, c.a, v.data(), c.b, b.data(), out.data());
        return out;
      };
      auto fb = [&](const std::vector<double>& v) {
        std::vector<double> out(r.size());
        binary<double>(k, c.out, c.a, a.data(), c.b, v.data(), out.data());
        return out;
      };
      // Max/Min are kinks where broadcast operands tie; random data never ties.
      EXPECT_LT(gradientError(a, fa, r, da), 1e-6) << "da";
      EXPECT_LT(gradientError(b, fb, r, db), 1e-6) << "db";
    }
}

TEST(CpuBinary, MaxGradientSplitsTiesAndSkipsNullOutputs) {
  std::vector<float> a = {1, 5, 3}, b = {1, 2, 4}, g = {2, 2, 2}, da(3), db(3);
  binaryGrad<float>(BinaryKind::Max, {3}, {3}, a.data(), {3}, b.data(), g.data(), da.data(), db.data());
  EXPECT_EQ(da, (std::vector<float>{1, 2, 0}));
  EXPECT_EQ(db, (std::vector<float>{1, 0, 2}));
  binaryGrad<float>(BinaryKind::Min, {3}, {3}, a.data(), {3}, b.data(), g.data(), da.data(), db.data());
  EXPECT_EQ(da, (std::vector<float>{1, 0, 2}));
  EXPECT_EQ(db, (std::vector<float>{1, 2, 0}));
  // Bias-style broadcast: d(a + b)/db sums over the broadcast rows; da skipped.
  std::vector<float> m = {1, 2, 3, 4, 5, 6}, bias = {0, 0, 0}, dout = {1, 2, 3, 4, 5, 6}, dbias(3);
  binaryGrad<float>(BinaryKind::Add, {2, 3}, {2, 3}, m.data(), {3}, bias.data(), dout.data(), nullptr,
                    dbias.data());
  EXPECT_EQ(dbias, (std::vector<float>{5, 7, 9}));
  // pow at a = 0 with b >= 0: d/db is 0, like PyTorch.
  std::vector<double> za = {0.0}, zb = {2.0}, one = {1.0}, dza(1), dzb(1);
  binaryGrad<double>(BinaryKind::Pow, {1}, {1}, za.data(), {1}, zb.data(), one.data(), dza.data(), dzb.data());
  EXPECT_EQ(dza[0], 0.0);
  EXPECT_EQ(dzb[0], 0.0);
}

// ---------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------

template <typename T>
void checkReduceSumToShape(const Shape& in, const Shape& out, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << shapeString(in) << " -> " << shapeString(out));
  auto x = randomDoubles(size_t(numElements(in)), seed);
  std::vector<double> expected(size_t(numElements(out)), 0.0);
  forEachIndex(in, [&](int64_t flat, const std::vector<int64_t>& idx) {
    expected[broadcastIndex(out, idx)] += x[flat];
  });
  auto xt = castAll<T>(x);
  std::vector<T> y(expected.size(), T(99));
  reduceSumToShape<T>(in, xt.data(), out, y.data());
  EXPECT_TRUE(allClose(y, expected, kRtol<T>));
}

TEST(CpuReduce, SumToShapeInvertsBroadcasting) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {3, 4}}, {{2, 3, 4}, {3, 1}}, {{2, 3, 4}, {1}},    {{2, 3, 4}, {}},
      {{2, 3, 4}, {2, 1, 4}}, {{2, 3, 4}, {2, 3, 4}}, {{64, 10}, {10}}, {{2, 5, 3, 3}, {5, 1, 1}},
      {{4, 1, 5}, {1, 5}},  {{3, 0}, {1}},   {{0, 3}, {3}},
  };
  uint32_t seed = 500;
  for (const auto& [in, out] : cases) {
    checkReduceSumToShape<float>(in, out, seed++);
    checkReduceSumToShape<double>(in, out, seed++);
  }
}

template <typename T>
void checkReduce(ReduceKind kind, const Shape& in, const std::vector<int64_t>& axes, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "kind " << int(kind) << " in " << shapeString(in) << " axes "
                                    << ::testing::PrintToString(axes));
  auto x = randomDoubles(size_t(numElements(in)), seed);
  const Shape kept = reducedShape(in, axes, /*keepDims=*/true);
  const int64_t m = numElements(kept);
  std::vector<double> sum(size_t(m), 0.0), mx(size_t(m), -std::numeric_limits<double>::infinity());
  forEachIndex(in, [&](int64_t flat, const std::vector<int64_t>& idx) {
    int64_t o = broadcastIndex(kept, idx);
    sum[o] += x[flat];
    mx[o] = std::max(mx[o], double(T(x[flat])));
  });
  const double count = double(numElements(in)) / double(std::max<int64_t>(m, 1));
  std::vector<double> expected = sum;
  if (kind == ReduceKind::Mean)
    for (double& v : expected) v /= count;
  if (kind == ReduceKind::Max) expected = mx;
  auto xt = castAll<T>(x);
  std::vector<T> y(size_t(m), T(99));
  reduce<T>(kind, in, xt.data(), axes, y.data());
  EXPECT_TRUE(allClose(y, expected, kRtol<T>));
}

TEST(CpuReduce, SumMeanMaxOverAxes) {
  const Shape in = {3, 4, 5, 2};
  const std::vector<std::vector<int64_t>> axesList = {{}, {0}, {1}, {3}, {-1}, {0, 2}, {1, 3}, {1, 2}, {0, 1, 2, 3}};
  uint32_t seed = 600;
  for (ReduceKind kind : {ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max})
    for (const auto& axes : axesList) {
      checkReduce<float>(kind, in, axes, seed++);
      checkReduce<double>(kind, in, axes, seed++);
    }
  checkReduce<float>(ReduceKind::Sum, {7}, {0}, seed++);
  checkReduce<double>(ReduceKind::Max, {1, 6, 1}, {1}, seed++);
}

TEST(CpuReduce, ShapesAndHandComputedValues) {
  EXPECT_EQ(reducedShape({3, 4, 5}, {1}, false), (Shape{3, 5}));
  EXPECT_EQ(reducedShape({3, 4, 5}, {-1, 0}, true), (Shape{1, 4, 1}));
  EXPECT_EQ(reducedShape({3, 4, 5}, {}, false), (Shape{}));
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, y(3);
  reduce<float>(ReduceKind::Sum, {2, 3}, x.data(), {0}, y.data());
  EXPECT_EQ(y, (std::vector<float>{5, 7, 9}));
  reduce<float>(ReduceKind::Mean, {2, 3}, x.data(), {1}, y.data());
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[1], 5.0f);
  reduce<float>(ReduceKind::Max, {2, 3}, x.data(), {}, y.data());
  EXPECT_EQ(y[0], 6.0f);
  // Over an empty axis: sum 0, mean NaN, max -inf.
  std::vector<double> e(2);
  reduce<double>(ReduceKind::Sum, {2, 0}, nullptr, {1}, e.data());
  EXPECT_EQ(e, (std::vector<double>{0, 0}));
  reduce<double>(ReduceKind::Mean, {2, 0}, nullptr, {1}, e.data());
  EXPECT_TRUE(std::isnan(e[0]));
  reduce<double>(ReduceKind::Max, {2, 0}, nullptr, {1}, e.data());
  EXPECT_EQ(e[1], -std::numeric_limits<double>::infinity());
}

}  // namespace
}  // namespace shoal::cpu
