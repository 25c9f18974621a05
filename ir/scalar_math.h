// Scalar math of the elementwise formulas (ir/ops.def), written once for every place that
// evaluates them: included as C++ by the interpreter and fold-constants (functions in
// shoal::scalar), and pasted verbatim into every generated CUDA translation unit, after
// `#define SHOAL_SCALAR_FN __device__ __forceinline__` (codegen's prelude). Keep it to what
// both g++ and NVRTC accept: plain overloads and templates, C math functions, no std::.
#ifndef SHOAL_IR_SCALAR_MATH_H
#define SHOAL_IR_SCALAR_MATH_H

#ifndef SHOAL_SCALAR_FN
#define SHOAL_SCALAR_FN inline
#define SHOAL_SCALAR_MATH_ON_HOST 1
#include <math.h>
namespace shoal::scalar {
#endif

#ifdef SHOAL_SCALAR_MATH_ON_HOST
// expf on the host as straight-line arithmetic the compiler vectorizes (libm's expf is a call
// per element, which kept every exp-based activation's loop scalar): e^x = 2^n e^r with
// n = round(x log2 e) (the 1.5 2^23 rounding trick: no call, no SSE4.1), r = x - n ln 2 in two
// Cody-Waite parts (n C1 is exact: C1 has 9 bits, |n| <= 150), e^r by Cephes' degree-7
// polynomial on |r| <= ln2 / 2, and 2^n in two halves so that subnormal results are rounded
// once and overflow gives inf. Within 1 ulp of the exact e^x (tests/elementwise_test.cpp
// sweeps every float of the range, as PyTorch's CPU kernels' Sleef expf promises); exact at 0;
// NaN stays NaN, inf gives inf, -inf 0. Each operation is a plain IEEE one (no FMA in a
// baseline x86-64 build), so every vector width gives the same bits as the scalar code.
SHOAL_SCALAR_FN float shoal_exp(float x) {
  const float xc = x > 88.8f ? 88.8f : (x < -104.0f ? -104.0f : (x == x ? x : 0.0f));
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float nf = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = (p * (r * r) + r) + 1.0f;
  const int n = int(nf);
  const int n1 = n / 2, n2 = n - n1;  // each half within a normal float's exponent range
  const float s1 = __builtin_bit_cast(float, (n1 + 127) << 23);
  const float s2 = __builtin_bit_cast(float, (n2 + 127) << 23);
  const float y = (er * s1) * s2;
  return x == x ? y : x;
}
#else
SHOAL_SCALAR_FN float shoal_exp(float x) { return expf(x); }
#endif
SHOAL_SCALAR_FN double shoal_exp(double x) { return exp(x); }
SHOAL_SCALAR_FN float shoal_log(float x) { return logf(x); }
SHOAL_SCALAR_FN double shoal_log(double x) { return log(x); }
SHOAL_SCALAR_FN float shoal_log1p(float x) { return log1pf(x); }
SHOAL_SCALAR_FN double shoal_log1p(double x) { return log1p(x); }
SHOAL_SCALAR_FN float shoal_tanh(float x) { return tanhf(x); }
SHOAL_SCALAR_FN double shoal_tanh(double x) { return tanh(x); }
SHOAL_SCALAR_FN float shoal_sqrt(float x) { return sqrtf(x); }
SHOAL_SCALAR_FN double shoal_sqrt(double x) { return sqrt(x); }
SHOAL_SCALAR_FN float shoal_abs(float x) { return fabsf(x); }
SHOAL_SCALAR_FN double shoal_abs(double x) { return fabs(x); }
SHOAL_SCALAR_FN bool shoal_isinf(float x) { return isinf(x); }
SHOAL_SCALAR_FN bool shoal_isinf(double x) { return isinf(x); }
SHOAL_SCALAR_FN float shoal_erf(float x) { return erff(x); }
SHOAL_SCALAR_FN double shoal_erf(double x) { return erf(x); }
// Trigonometric and hyperbolic functions and their inverses (C's; NaN outside the domain).
SHOAL_SCALAR_FN float shoal_sin(float x) { return sinf(x); }
SHOAL_SCALAR_FN double shoal_sin(double x) { return sin(x); }
SHOAL_SCALAR_FN float shoal_cos(float x) { return cosf(x); }
SHOAL_SCALAR_FN double shoal_cos(double x) { return cos(x); }
SHOAL_SCALAR_FN float shoal_tan(float x) { return tanf(x); }
SHOAL_SCALAR_FN double shoal_tan(double x) { return tan(x); }
SHOAL_SCALAR_FN float shoal_asin(float x) { return asinf(x); }
SHOAL_SCALAR_FN double shoal_asin(double x) { return asin(x); }
SHOAL_SCALAR_FN float shoal_acos(float x) { return acosf(x); }
SHOAL_SCALAR_FN double shoal_acos(double x) { return acos(x); }
SHOAL_SCALAR_FN float shoal_atan(float x) { return atanf(x); }
SHOAL_SCALAR_FN double shoal_atan(double x) { return atan(x); }
SHOAL_SCALAR_FN float shoal_sinh(float x) { return sinhf(x); }
SHOAL_SCALAR_FN double shoal_sinh(double x) { return sinh(x); }
SHOAL_SCALAR_FN float shoal_cosh(float x) { return coshf(x); }
SHOAL_SCALAR_FN double shoal_cosh(double x) { return cosh(x); }
SHOAL_SCALAR_FN float shoal_asinh(float x) { return asinhf(x); }
SHOAL_SCALAR_FN double shoal_asinh(double x) { return asinh(x); }
SHOAL_SCALAR_FN float shoal_acosh(float x) { return acoshf(x); }
SHOAL_SCALAR_FN double shoal_acosh(double x) { return acosh(x); }
SHOAL_SCALAR_FN float shoal_atanh(float x) { return atanhf(x); }
SHOAL_SCALAR_FN double shoal_atanh(double x) { return atanh(x); }
SHOAL_SCALAR_FN float shoal_pow(float x, float y) { return powf(x, y); }
SHOAL_SCALAR_FN double shoal_pow(double x, double y) { return pow(x, y); }

// a * b rounded on its own, never contracted with a following add into a fused multiply-add
// (which NVCC and NVRTC do by default): formulas that compare an affine value against a
// threshold (hardsigmoid's kinks) then decide alike on the host and on the GPU.
#ifdef SHOAL_SCALAR_MATH_ON_HOST
SHOAL_SCALAR_FN float shoal_mul_rn(float a, float b) { return a * b; }
SHOAL_SCALAR_FN double shoal_mul_rn(double a, double b) { return a * b; }
#else
SHOAL_SCALAR_FN float shoal_mul_rn(float a, float b) { return __fmul_rn(a, b); }
SHOAL_SCALAR_FN double shoal_mul_rn(double a, double b) { return __dmul_rn(a, b); }
#endif

// 1 / (1 + exp(-x)) with exp of a non-positive argument only, so nothing overflows.
template <typename T>
SHOAL_SCALAR_FN T shoal_sigmoid(T x) {
  const T e = shoal_exp(-shoal_abs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// log(1 + exp(x)), PyTorch's Softplus with beta 1 and threshold 20 (x itself above it).
template <typename T>
SHOAL_SCALAR_FN T shoal_softplus(T x) {
  return x > T(20) ? x : shoal_log1p(shoal_exp(x));
}

// Philox-4x32-10 (Salmon et al., SC'11; cuRAND's and PyTorch's CUDA generator): four random
// 32-bit words from a 128-bit counter `ctr` (overwritten with them) and a 64-bit key. Being
// counter-based it needs no state, so dropout draws the same mask on the host and on the GPU.
SHOAL_SCALAR_FN void shoal_philox4x32_10(unsigned int ctr[4], unsigned int key0, unsigned int key1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += 0x9E3779B9u;
      key1 += 0xBB67AE85u;
    }
    const unsigned long long p0 = 0xD2511F53ull * ctr[0];
    const unsigned long long p1 = 0xCD9E8D57ull * ctr[2];
    const unsigned int c1 = ctr[1], c3 = ctr[3];
    ctr[0] = (unsigned int)(p1 >> 32) ^ c1 ^ key0;
    ctr[1] = (unsigned int)p1;
    ctr[2] = (unsigned int)(p0 >> 32) ^ c3 ^ key1;
    ctr[3] = (unsigned int)p0;
  }
}

// Dropout keeps an element when its random word r satisfies r < shoal_dropout_threshold(rate)
// = (1 - rate) 2^32, an exact integer comparison; kept elements are scaled by 1 / (1 - rate)
// (0 when everything is dropped), as PyTorch's dropout.
SHOAL_SCALAR_FN unsigned long long shoal_dropout_threshold(double rate) {
  return (unsigned long long)((1.0 - rate) * 4294967296.0);
}
SHOAL_SCALAR_FN double shoal_dropout_scale(double rate) { return rate < 1.0 ? 1.0 / (1.0 - rate) : 0.0; }

// ---- the elementwise family (gelu, silu, hard activations, clip, minimum/maximum) ----------
// Each follows PyTorch's CPU kernel (aten/src/ATen/native/cpu), in its operation order and
// with its constants (written as the double values of M_SQRT1_2, M_2_SQRTPI, M_SQRT2), so
// float64 results agree bit for bit where the libm calls do.

// -1, 0 or 1 (0 for NaN), as torch.sign of a real number.
template <typename T>
SHOAL_SCALAR_FN T shoal_sign(T x) {
  return T(x > T(0)) - T(x < T(0));
}

// min(max(x, lo), hi) that keeps NaN, as torch.clamp (hi when lo > hi).
template <typename T>
SHOAL_SCALAR_FN T shoal_clip(T x, T lo, T hi) {
  const T t = x < lo ? lo : x;
  return t > hi ? hi : t;
}

// torch.maximum / torch.minimum: NaN if either operand is NaN, else std::max / std::min
// (the first operand on ties).
template <typename T>
SHOAL_SCALAR_FN T shoal_maximum(T a, T b) {
  return a != a ? a : b != b ? b : a < b ? b : a;
}
template <typename T>
SHOAL_SCALAR_FN T shoal_minimum(T a, T b) {
  return a != a ? a : b != b ? b : b < a ? b : a;
}

// C's fmod: a - n·b with n = trunc(a / b), exact, the sign of a; NaN for b = 0. Integers (on
// the GPU; the interpreter evaluates integer formulas in double, which agrees) use %, which
// truncates alike, and give 0 for b = 0, where the interpreter reports the division by zero.
SHOAL_SCALAR_FN float shoal_fmod(float a, float b) { return fmodf(a, b); }
SHOAL_SCALAR_FN double shoal_fmod(double a, double b) { return fmod(a, b); }
template <typename T>
SHOAL_SCALAR_FN T shoal_fmod(T a, T b) {
  return b == T(0) ? T(0) : T(a % b);
}

// GELU, approximate='none': x/2 (1 + erf(x / sqrt 2)).
template <typename T>
SHOAL_SCALAR_FN T shoal_gelu(T x) {
  return x * T(0.5) * (T(1) + shoal_erf(x * T(0.7071067811865476)));
}
// dy * (Phi(x) + x phi(x)), GeluBackward's expression.
template <typename T>
SHOAL_SCALAR_FN T shoal_gelu_grad(T x, T dy) {
  const T kBeta = T(1.1283791670955126 * 0.7071067811865476 * 0.5);
  const T cdf = T(0.5) * (T(1) + shoal_erf(x * T(0.7071067811865476)));
  const T pdf = kBeta * shoal_exp(x * x * T(-0.5));
  return dy * (cdf + x * pdf);
}

// GELU, approximate='tanh': x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T>
SHOAL_SCALAR_FN T shoal_gelu_tanh(T x) {
  const T kBeta = T(1.4142135623730951 * 1.1283791670955126 * 0.5);
  const T kKappa = T(0.044715);
  const T inner = kBeta * (x + kKappa * (x * x * x));
  return T(0.5) * x * (T(1) + shoal_tanh(inner));
}
template <typename T>
SHOAL_SCALAR_FN T shoal_gelu_tanh_grad(T x, T dy) {
  const T kBeta = T(1.4142135623730951 * 1.1283791670955126 * 0.5);
  const T kKappa = T(0.044715);
  const T xSq = x * x;
  const T inner = kBeta * (x + kKappa * (xSq * x));
  const T tanhInner = shoal_tanh(inner);
  const T left = T(0.5) * x;
  const T right = T(1) + tanhInner;
  const T leftDerivative = T(0.5) * right;
  const T rightDerivative = left * (T(1) - tanhInner * tanhInner) * kBeta * (T(1) + T(3) * kKappa * xSq);
  return dy * (leftDerivative + rightDerivative);
}

// SiLU: x / (1 + exp(-x)); its gradient dy * s (1 + x (1 - s)) with s = sigmoid(x).
template <typename T>
SHOAL_SCALAR_FN T shoal_silu(T x) {
  return x / (T(1) + shoal_exp(-x));
}
template <typename T>
SHOAL_SCALAR_FN T shoal_silu_grad(T x, T dy) {
  const T s = T(1) / (T(1) + shoal_exp(-x));
  return dy * s * (T(1) + x * (T(1) - s));
}

// Hardswish: x relu6(x + 3) / 6; its gradient is 0 below -3, dy (x/3 + 1/2) on [-3, 3], dy
// above (PyTorch's one-sided choice at the kinks).
template <typename T>
SHOAL_SCALAR_FN T shoal_hardswish(T x) {
  return x * shoal_clip(x + T(3), T(0), T(6)) / T(6);
}
template <typename T>
SHOAL_SCALAR_FN T shoal_hardswish_grad(T x, T dy) {
  return x < T(-3) ? T(0) : x <= T(3) ? dy * ((x / T(3)) + T(0.5)) : dy;
}

#ifdef SHOAL_SCALAR_MATH_ON_HOST
}  // namespace shoal::scalar
#endif

#endif  // SHOAL_IR_SCALAR_MATH_H
