// Tests of the CPU elementwise and reduction kernels: every elementwise op of ir/ops.def (from
// its formula, with broadcasting) against this file's own float64 reference of the op, and
// reduceSumToShape and reduce against naive float64 loops and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
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
constexpr double kElementwiseRtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

// The test's own float64 reference of each elementwise op (independent of ir/ops.def's formula):
// operands a, b, params p. An elementwise op without one here fails CpuElementwise.EveryOpHasAReference.
using Reference = double (*)(double a, double b, const std::vector<double>& p);
const std::map<OpKind, Reference>& references() {
  static const std::map<OpKind, Reference> refs = {
      {OpKind::Scale, [](double a, double, const std::vector<double>& p) { return a * p[0] + p[1]; }},
      {OpKind::Relu, [](double a, double, const std::vector<double>&) { return a > 0 ? a : 0; }},
      {OpKind::ReluGrad, [](double a, double b, const std::vector<double>&) { return a > 0 ? b : 0; }},
      {OpKind::Sigmoid, [](double a, double, const std::vector<double>&) { return 1 / (1 + std::exp(-a)); }},
      {OpKind::SigmoidGrad, [](double a, double b, const std::vector<double>&) { return b * a * (1 - a); }},
      {OpKind::Tanh, [](double a, double, const std::vector<double>&) { return std::tanh(a); }},
      {OpKind::TanhGrad, [](double a, double b, const std::vector<double>&) { return b * (1 - a * a); }},
      {OpKind::Softplus, [](double a, double, const std::vector<double>&) { return std::log(1 + std::exp(a)); }},
      {OpKind::Neg, [](double a, double, const std::vector<double>&) { return -a; }},
      {OpKind::Add, [](double a, double b, const std::vector<double>&) { return a + b; }},
      {OpKind::Sub, [](double a, double b, const std::vector<double>&) { return a - b; }},
      {OpKind::Mul, [](double a, double b, const std::vector<double>&) { return a * b; }},
      {OpKind::Div, [](double a, double b, const std::vector<double>&) { return a / b; }},
      {OpKind::BatchNormScale, [](double a, double b, const std::vector<double>& p) { return a / std::sqrt(b + p[0]); }},
      {OpKind::LossScale, [](double a, double, const std::vector<double>& p) { return p[0] * std::exp2(a); }},
      {OpKind::UnscaleCoef,
       [](double a, double b, const std::vector<double>& p) {
         if (!std::isfinite(a)) return 0.0;
         const double c = p[0] / (std::sqrt(a) / b + 1e-6);
         return (p[0] > 0 && c < 1 ? c : 1.0) / b;
       }},
      {OpKind::ClipGradCoef,
       [](double a, double, const std::vector<double>& p) {
         const double c = p[0] / (std::sqrt(a) + 1e-6);  // NaN (a < 0) stays NaN, as PyTorch's clamp
         return std::isnan(c) ? c : std::min(1.0, c);
       }},

      // ---- the elementwise family (textbook forms, not PyTorch's operation order)
      {OpKind::Gelu, [](double a, double, const std::vector<double>&) { return a * 0.5 * std::erfc(-a / std::sqrt(2.0)); }},
      {OpKind::GeluGrad,
       [](double a, double b, const std::vector<double>&) {
         return b * (0.5 * std::erfc(-a / std::sqrt(2.0)) + a * std::exp(-a * a / 2) / std::sqrt(2 * M_PI));
       }},
      {OpKind::GeluTanh,
       [](double a, double, const std::vector<double>&) {
         return a / 2 * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
       }},
      {OpKind::GeluTanhGrad,
       [](double a, double b, const std::vector<double>&) {
         const double k = std::sqrt(2 / M_PI), t = std::tanh(k * (a + 0.044715 * a * a * a));
         return b * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * k * (1 + 3 * 0.044715 * a * a));
       }},
      {OpKind::Silu, [](double a, double, const std::vector<double>&) { return a / (1 + std::exp(-a)); }},
      {OpKind::SiluGrad,
       [](double a, double b, const std::vector<double>&) {
         const double s = 1 / (1 + std::exp(-a));
         return b * (s + a * s * (1 - s));
       }},
      {OpKind::Hardswish,
       [](double a, double, const std::vector<double>&) { return a <= -3 ? 0.0 : a >= 3 ? a : a * (a + 3) / 6; }},
      {OpKind::HardswishGrad,
       [](double a, double b, const std::vector<double>&) { return a < -3 ? 0.0 : a > 3 ? b : b * (2 * a + 3) / 6; }},
      {OpKind::Hardsigmoid,
       [](double a, double, const std::vector<double>& p) { return std::min(1.0, std::max(0.0, p[0] * a + p[1])); }},
      {OpKind::HardsigmoidGrad,
       [](double a, double b, const std::vector<double>& p) {
         const double u = p[0] * a + p[1];
         return u > 0 && u < 1 ? b * p[0] : 0.0;
       }},
      {OpKind::Relu6, [](double a, double, const std::vector<double>&) { return std::min(6.0, std::max(0.0, a)); }},
      {OpKind::Relu6Grad, [](double a, double b, const std::vector<double>&) { return a > 0 && a < 6 ? b : 0.0; }},
      {OpKind::Clip, [](double a, double, const std::vector<double>& p) { return std::min(p[1], std::max(p[0], a)); }},
      {OpKind::ClipGrad,
       [](double a, double b, const std::vector<double>& p) { return a >= p[0] && a <= p[1] ? b : 0.0; }},
      {OpKind::LeakyRelu, [](double a, double, const std::vector<double>& p) { return a > 0 ? a : p[0] * a; }},
      {OpKind::LeakyReluGrad, [](double a, double b, const std::vector<double>& p) { return a > 0 ? b : p[0] * b; }},
      {OpKind::Exp, [](double a, double, const std::vector<double>&) { return std::exp(a); }},
      {OpKind::Log, [](double a, double, const std::vector<double>&) { return std::log(a); }},
      {OpKind::Sqrt, [](double a, double, const std::vector<double>&) { return std::sqrt(a); }},
      {OpKind::Rsqrt, [](double a, double, const std::vector<double>&) { return std::pow(a, -0.5); }},
      {OpKind::RsqrtGrad, [](double a, double b, const std::vector<double>&) { return -0.5 * b * std::pow(a, 3); }},
      {OpKind::Reciprocal, [](double a, double, const std::vector<double>&) { return 1 / a; }},
      {OpKind::ReciprocalGrad, [](double a, double b, const std::vector<double>&) { return -b * a * a; }},
      {OpKind::Erf, [](double a, double, const std::vector<double>&) { return std::erf(a); }},
      {OpKind::ErfGrad,
       [](double a, double b, const std::vector<double>&) { return b * 2 / std::sqrt(M_PI) * std::exp(-a * a); }},
      {OpKind::Abs, [](double a, double, const std::vector<double>&) { return std::abs(a); }},
      {OpKind::AbsGrad, [](double a, double b, const std::vector<double>&) { return a > 0 ? b : a < 0 ? -b : 0.0; }},
      {OpKind::Pow, [](double a, double b, const std::vector<double>&) { return std::exp(b * std::log(a)); }},
      {OpKind::Minimum, [](double a, double b, const std::vector<double>&) { return std::min(a, b); }},
      {OpKind::Maximum, [](double a, double b, const std::vector<double>&) { return std::max(a, b); }},
      // Trigonometric and hyperbolic functions: the inverses through their log and atan forms.
      {OpKind::Sin, [](double a, double, const std::vector<double>&) { return std::sin(a); }},
      {OpKind::Cos, [](double a, double, const std::vector<double>&) { return std::cos(a); }},
      {OpKind::Tan, [](double a, double, const std::vector<double>&) { return std::sin(a) / std::cos(a); }},
      {OpKind::Asin,
       [](double a, double, const std::vector<double>&) { return std::atan2(a, std::sqrt((1 - a) * (1 + a))); }},
      {OpKind::Acos,
       [](double a, double, const std::vector<double>&) { return std::atan2(std::sqrt((1 - a) * (1 + a)), a); }},
      {OpKind::Atan, [](double a, double, const std::vector<double>&) { return std::atan2(a, 1.0); }},
      {OpKind::Sinh, [](double a, double, const std::vector<double>&) { return (std::exp(a) - std::exp(-a)) / 2; }},
      {OpKind::Cosh, [](double a, double, const std::vector<double>&) { return (std::exp(a) + std::exp(-a)) / 2; }},
      {OpKind::Asinh,
       [](double a, double, const std::vector<double>&) { return std::copysign(std::log(std::abs(a) + std::sqrt(a * a + 1)), a); }},
      {OpKind::Acosh, [](double a, double, const std::vector<double>&) { return std::log(a + std::sqrt(a * a - 1)); }},
      {OpKind::Atanh, [](double a, double, const std::vector<double>&) { return 0.5 * std::log((1 + a) / (1 - a)); }},
      // a - n·b with n = trunc(a / b): the remainder's definition, in double.
      {OpKind::Fmod, [](double a, double b, const std::vector<double>&) { return a - std::trunc(a / b) * b; }},
  };
  return refs;
}

// References of the three-operand rows (a, b, c), like references().
using Reference3 = double (*)(double a, double b, double c, const std::vector<double>& p);
const std::map<OpKind, Reference3>& references3() {
  static const std::map<OpKind, Reference3> refs = {
      {OpKind::PowGradBase,
       [](double a, double b, double c, const std::vector<double>&) { return b == 0 ? 0.0 : c * b * std::pow(a, b - 1); }},
      {OpKind::PowGradExponent,
       [](double a, double b, double c, const std::vector<double>&) { return c * std::pow(a, b) * std::log(a); }},
      {OpKind::MinimumGrad,
       [](double a, double b, double c, const std::vector<double>&) { return a < b ? c : a == b ? c / 2 : 0.0; }},
      {OpKind::MaximumGrad,
       [](double a, double b, double c, const std::vector<double>&) { return a > b ? c : a == b ? c / 2 : 0.0; }},
  };
  return refs;
}

// Ops whose float result cancels where it crosses zero (the left tail of gelu, the gradients'
// sums of a positive and a negative term; PyTorch's float kernels lose the same digits): in
// float they are checked relative to the case's largest value instead of each element's.
bool cancelsInFloat(OpKind k) {
  return k == OpKind::Gelu || k == OpKind::GeluGrad || k == OpKind::GeluTanh || k == OpKind::GeluTanhGrad ||
         k == OpKind::SiluGrad;
}

// Operands that must be positive for the op's domain: division's divisor, logarithms, roots,
// powers' bases (and log in the exponent's gradient).
bool positiveOperand(OpKind k, int operand) {
  if (operand == 1) return k == OpKind::Div || k == OpKind::BatchNormScale || k == OpKind::UnscaleCoef;
  // clip_grad_coef reads a sum of squares: its domain is x >= 0.
  return operand == 0 && (k == OpKind::ClipGradCoef || k == OpKind::UnscaleCoef || k == OpKind::Log || k == OpKind::Sqrt || k == OpKind::Rsqrt || k == OpKind::Pow ||
                          k == OpKind::PowGradBase || k == OpKind::PowGradExponent);
}

// Float attributes for an op under test: its schema default, else a value off 0 and 1.
std::vector<double> testParams(OpKind k) {
  std::vector<double> p;
  for (const std::string& name : opInfo(k).formulaParams) {
    const AttrSpec* spec = opInfo(k).findAttr(name);
    p.push_back(spec->defaultValue ? std::get<double>(*spec->defaultValue) : 0.75);
  }
  p.resize(4, 0.0);
  return p;
}

std::vector<OpKind> elementwiseOps() {
  std::vector<OpKind> out;
  for (OpKind k : allOps())
    if (isElementwise(k)) out.push_back(k);
  return out;
}

// Inputs away from kinks (|x| >= 0.1), positive for division's right operand.
std::vector<double> elementwiseInputs(size_t n, uint32_t seed, bool positive) {
  auto x = randomDoubles(n, seed, -3, 3);
  for (double& v : x) {
    if (std::abs(v) < 0.1) v += v < 0 ? -0.1 : 0.1;
    if (positive) v = std::abs(v);
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
// Elementwise ops
// ---------------------------------------------------------------------------------------

TEST(CpuElementwise, EveryOpHasAReference) {
  for (OpKind k : elementwiseOps())
    EXPECT_TRUE(references().count(k) || references3().count(k)) << opName(k) << ": add a reference to this test";
}

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

// Every elementwise op over every broadcast case (unary ops: the `a` operand at the output's
// shape), in T, against the reference on the same T-rounded inputs; also in place.
template <typename T>
void checkElementwise() {
  uint32_t seed = 70;
  for (OpKind k : elementwiseOps()) {
    auto ref = references().find(k);
    auto ref3 = references3().find(k);
    if (ref == references().end() && ref3 == references3().end()) continue;  // reported by EveryOpHasAReference
    const int arity = opInfo(k).minInputs;
    std::vector<double> p = testParams(k);
    std::vector<T> pt(p.begin(), p.end());
    for (const BroadcastCase& c0 : broadcastCases()) {
      BroadcastCase c = c0;
      if (arity == 1) c.a = c.out, c.b = {};
      const Shape cShape = arity > 2 ? c.out : Shape{};  // a third operand (a gradient) has the output's shape
      SCOPED_TRACE(::testing::Message() << opName(k) << " out " << shapeString(c.out) << " a " << shapeString(c.a)
                                        << " b " << shapeString(c.b));

      auto a = castAll<double>(castAll<T>(elementwiseInputs(size_t(numElements(c.a)), seed++, positiveOperand(k, 0))));
      auto b = castAll<double>(castAll<T>(elementwiseInputs(size_t(numElements(c.b)), seed++, positiveOperand(k, 1))));
      auto cv = castAll<double>(castAll<T>(elementwiseInputs(size_t(numElements(cShape)), seed++, false)));
      std::vector<double> expected(size_t(numElements(c.out)));
      forEachIndex(c.out, [&](int64_t flat, const std::vector<int64_t>& idx) {
        const double av = a[size_t(broadcastIndex(c.a, idx))];
        const double bv = arity > 1 ? b[size_t(broadcastIndex(c.b, idx))] : 0.0;
        expected[size_t(flat)] = arity > 2 ? ref3->second(av, bv, cv[size_t(flat)], p) : ref->second(av, bv, p);
      });
      auto at = castAll<T>(a), bt = castAll<T>(b), ct = castAll<T>(cv);
      std::vector<Shape> shapes = {c.a};
      std::vector<const T*> ops = {at.data()};
      if (arity > 1) shapes.push_back(c.b), ops.push_back(bt.data());
      if (arity > 2) shapes.push_back(cShape), ops.push_back(ct.data());
      std::vector<T> out(expected.size(), T(99));
      elementwise<T>(k, c.out, shapes, ops, pt.data(), out.data());
      const double scaleFrac = std::is_same_v<T, float> && cancelsInFloat(k) ? 1.0 : 0.0;
      EXPECT_TRUE(allClose(out, expected, kElementwiseRtol<T>, 1e-300, scaleFrac));
      if (numElements(c.a) == numElements(c.out)) {  // out aliasing a
        elementwise<T>(k, c.out, shapes, ops, pt.data(), at.data());
        // Bit for bit (NaN outside asin's domain, say, equals itself here).
        EXPECT_TRUE(out.empty() || std::memcmp(at.data(), out.data(), out.size() * sizeof(T)) == 0);
      }
    }
  }
}

TEST(CpuElementwise, EveryOpMatchesItsReferenceInFloat) { checkElementwise<float>(); }
TEST(CpuElementwise, EveryOpMatchesItsReferenceInDouble) { checkElementwise<double>(); }

TEST(CpuElementwise, SigmoidDoesNotOverflowAndReluKeepsNaN) {
  std::vector<float> x = {-1000, -50, 0, 50, 1000}, y(5);
  std::vector<float> p(4, 0.0f);
  elementwise<float>(OpKind::Sigmoid, {5}, {{5}}, {x.data()}, p.data(), y.data());
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_NEAR(y[1], 1.9287e-22f, 1e-26f);
  EXPECT_EQ(y[2], 0.5f);
  EXPECT_EQ(y[3], 1.0f);
  EXPECT_EQ(y[4], 1.0f);
  std::vector<double> r = {-2, 0, 3, std::numeric_limits<double>::quiet_NaN()}, ry(4), pd(4, 0.0);
  elementwise<double>(OpKind::Relu, {4}, {{4}}, {r.data()}, pd.data(), ry.data());
  EXPECT_EQ(ry[0], 0.0);
  EXPECT_EQ(ry[1], 0.0);
  EXPECT_EQ(ry[2], 3.0);
  EXPECT_TRUE(std::isnan(ry[3]));
}

// The host's expf (ir/scalar_math.h, a polynomial that vectorizes) against exp in double over a
// sweep of every 509th float of [-104, 89] (about 4.4 million, the subnormal results included):
// within 1 ulp of the exact value, as libm's and PyTorch's (Sleef's) expf. And its edges.
TEST(CpuElementwise, HostExpIsWithinOneUlp) {
  std::vector<float> x;
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 509) {
    const uint32_t b = uint32_t(bits);
    float v;
    std::memcpy(&v, &b, sizeof v);
    if (v >= -104.0f && v <= 89.0f) x.push_back(v);
  }
  ASSERT_GT(x.size(), 4000000u);
  std::vector<float> y(x.size()), p(4, 0.0f);
  elementwise<float>(OpKind::Exp, {int64_t(x.size())}, {{int64_t(x.size())}}, {x.data()}, p.data(), y.data());
  double worst = 0;
  float worstAt = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(double(x[i]));
    if (want > double(std::numeric_limits<float>::max())) {
      ASSERT_TRUE(std::isinf(y[i])) << "exp(" << x[i] << ")";
      continue;
    }
    const float nearest = float(want);
    // The ulp at the result: the gap above the float nearest the exact value (subnormals too).
    const double ulp = double(std::nextafter(nearest, std::numeric_limits<float>::infinity())) - double(nearest);
    const double err = std::abs(double(y[i]) - want) / ulp;
    if (err > worst) worst = err, worstAt = x[i];
  }
  EXPECT_LE(worst, 1.0) << "worst at exp(" << worstAt << ")";
  std::vector<float> edges = {0.0f,
                              -0.0f,
                              1.0f,
                              88.72f,
                              88.73f,
                              -87.0f,
                              -103.0f,
                              -104.5f,
                              std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN()},
                     ey(edges.size());
  elementwise<float>(OpKind::Exp, {int64_t(edges.size())}, {{int64_t(edges.size())}}, {edges.data()}, p.data(),
                     ey.data());
  EXPECT_EQ(ey[0], 1.0f);
  EXPECT_EQ(ey[1], 1.0f);
  EXPECT_NEAR(ey[2], 2.7182818f, 3e-7f);
  EXPECT_NEAR(double(ey[3]) / std::exp(double(88.72f)), 1.0, 2e-7);  // just below FLT_MAX
  EXPECT_TRUE(std::isinf(ey[4]));                                    // just above: overflows
  EXPECT_GT(ey[5], 0.0f);                                            // subnormal-adjacent, not flushed
  EXPECT_GT(ey[6], 0.0f);                                            // a subnormal result
  EXPECT_EQ(ey[7], 0.0f);                                            // below the smallest subnormal
  EXPECT_TRUE(std::isinf(ey[8]));
  EXPECT_EQ(ey[9], 0.0f);
  EXPECT_TRUE(std::isnan(ey[10]));
}

TEST(CpuElementwise, SoftplusFollowsPyTorchAboveItsThreshold) {
  // torch.nn.functional.softplus: x itself above 20; log1p(exp(x)) below (no overflow at -1000).
  std::vector<double> x = {-1000, -20, 0, 19.5, 20.5, 1000}, y(6), p(4, 0.0);
  elementwise<double>(OpKind::Softplus, {6}, {{6}}, {x.data()}, p.data(), y.data());
  EXPECT_EQ(y[0], 0.0);
  const double e20 = std::exp(-20.0);  // log1p(e) = e - e^2/2 + O(e^3)
  EXPECT_NEAR(y[1], e20 - e20 * e20 / 2, 1e-24);
  EXPECT_EQ(y[2], std::log(2.0));
  EXPECT_NEAR(y[3], 19.500000003398268, 1e-12);
  EXPECT_EQ(y[4], 20.5);
  EXPECT_EQ(y[5], 1000.0);
}

TEST(CpuElementwise, HandComputedBroadcast) {
  // [[1],[2]] + [10, 20, 30] = [[11, 21, 31], [12, 22, 32]]
  std::vector<float> a = {1, 2}, b = {10, 20, 30}, out(6), p(4, 0.0f);
  elementwise<float>(OpKind::Add, {2, 3}, {{2, 1}, {3}}, {a.data(), b.data()}, p.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{11, 21, 31, 12, 22, 32}));
  elementwise<float>(OpKind::Sub, {2, 3}, {{2, 1}, {3}}, {a.data(), b.data()}, p.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{-9, -19, -29, -8, -18, -28}));
}

TEST(CpuElementwise, BroadcastsToRejectsMismatches) {
  EXPECT_TRUE(broadcastsTo({3, 1}, {1, 4}, {3, 4}));
  EXPECT_TRUE(broadcastsTo({}, {2, 2}, {2, 2}));
  EXPECT_FALSE(broadcastsTo({3}, {4}, {4}));
  EXPECT_FALSE(broadcastsTo({3, 1}, {1, 4}, {3, 1}));
  EXPECT_FALSE(broadcastsTo({3, 4}, {4}, {1, 3, 4}));
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
  EXPECT_TRUE(allClose(y, expected, kElementwiseRtol<T>));
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
  std::vector<double> mn(size_t(m), std::numeric_limits<double>::infinity());
  forEachIndex(in, [&](int64_t flat, const std::vector<int64_t>& idx) {
    int64_t o = broadcastIndex(kept, idx);
    sum[o] += x[flat];
    mx[o] = std::max(mx[o], double(T(x[flat])));
    mn[o] = std::min(mn[o], double(T(x[flat])));
  });
  const double count = double(numElements(in)) / double(std::max<int64_t>(m, 1));
  std::vector<double> expected = sum;
  if (kind == ReduceKind::Mean)
    for (double& v : expected) v /= count;
  if (kind == ReduceKind::Max) expected = mx;
  if (kind == ReduceKind::Min) expected = mn;
  auto xt = castAll<T>(x);
  std::vector<T> y(size_t(m), T(99));
  reduce<T>(kind, in, xt.data(), axes, y.data());
  EXPECT_TRUE(allClose(y, expected, kElementwiseRtol<T>));
}

TEST(CpuReduce, SumMeanMaxMinOverAxes) {
  const Shape in = {3, 4, 5, 2};
  const std::vector<std::vector<int64_t>> axesList = {{}, {0}, {1}, {3}, {-1}, {0, 2}, {1, 3}, {1, 2}, {0, 1, 2, 3}};
  uint32_t seed = 600;
  for (ReduceKind kind : {ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max, ReduceKind::Min})
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
  reduce<double>(ReduceKind::Min, {2, 0}, nullptr, {1}, e.data());
  EXPECT_EQ(e[1], std::numeric_limits<double>::infinity());
}

}  // namespace
}  // namespace shoal::cpu
