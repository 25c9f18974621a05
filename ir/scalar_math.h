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

SHOAL_SCALAR_FN float shoal_exp(float x) { return expf(x); }
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

#ifdef SHOAL_SCALAR_MATH_ON_HOST
}  // namespace shoal::scalar
#endif

#endif  // SHOAL_IR_SCALAR_MATH_H
