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

#ifdef SHOAL_SCALAR_MATH_ON_HOST
}  // namespace shoal::scalar
#endif

#endif  // SHOAL_IR_SCALAR_MATH_H
