// IEEE binary16 (float16) and bfloat16 <-> binary32/binary64, in integer arithmetic: the same
// bits on every host and GPU, whatever the hardware offers. shoal stores these types (ONNX
// models, checkpoints) and converts them; it computes in f32.
//
// Written once for both sides: support/tensor.cpp includes it as C++ (functions in namespace
// shoal), and codegen pastes its text into every CUDA prelude before ir/scalar_math.h, after
// `#define SHOAL_SCALAR_FN __device__ __forceinline__`. Keep it to what g++ and NVRTC accept.
#ifndef SHOAL_SUPPORT_FLOAT16_H
#define SHOAL_SUPPORT_FLOAT16_H

#if !defined(SHOAL_SCALAR_FN) || defined(SHOAL_SCALAR_MATH_ON_HOST)
#define SHOAL_FLOAT16_ON_HOST 1
#include <cstdint>
#include <cstring>
#define SHOAL_F16_FN inline
namespace shoal {
inline unsigned int shoal_f32_bits(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float shoal_bits_f32(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
#else
#define SHOAL_F16_FN SHOAL_SCALAR_FN
SHOAL_F16_FN unsigned int shoal_f32_bits(float f) { return __float_as_uint(f); }
SHOAL_F16_FN float shoal_bits_f32(unsigned int u) { return __uint_as_float(u); }
#endif

// double -> float rounded to odd: truncate toward zero, then set the last bit when anything
// was dropped. Rounding that to a format of at most 22 significand bits gives the correctly
// rounded result of the double (no double-rounding error), which float16 and bfloat16 are.
SHOAL_F16_FN float shoal_f64_to_f32_odd(double d) {
  // Finite values past FLT_MAX (whose conversion C++ leaves undefined) truncate to FLT_MAX,
  // which is odd: it rounds on to inf in float16 and bfloat16, as the value itself would.
  const double kFltMax = 3.4028234663852886e38;
  if (d - d == 0 && d > kFltMax) return shoal_bits_f32(0x7f7fffffu);
  if (d - d == 0 && d < -kFltMax) return shoal_bits_f32(0xff7fffffu);
  float f = (float)d;  // nearest (NaN and the infinities convert exactly)
  if ((double)f == d || d != d) return f;
  unsigned int u = shoal_f32_bits(f);
  double af = f < 0 ? -(double)f : (double)f, ad = d < 0 ? -d : d;
  if (af > ad) u -= 1;  // rounded away from zero (also inf): step back toward zero
  return shoal_bits_f32(u | 1u);
}

// float -> float16 bits, round to nearest even; overflow to inf, NaN stays NaN (quiet).
SHOAL_F16_FN unsigned short shoal_f32_to_f16(float f) {
  const unsigned int x = shoal_f32_bits(f);
  const unsigned int sign = (x >> 16) & 0x8000u;
  const unsigned int ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (unsigned short)(sign | (ax > 0x7f800000u ? 0x7e00u | ((ax >> 13) & 0x3ffu) : 0x7c00u));
  if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // 65520 and above round to inf
  if (ax < 0x38800000u) {                                          // below 2^-14: a subnormal or zero
    if (ax < 0x33000000u) return (unsigned short)sign;             // at most 2^-25: rounds to zero
    const unsigned int e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    const unsigned int shift = 126u - e;  // 14..24
    unsigned int r = m >> shift;
    const unsigned int rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (unsigned short)(sign | r);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
  return (unsigned short)(sign | ((ax - 0x38000000u + 0xfffu + ((ax >> 13) & 1u)) >> 13));
}

SHOAL_F16_FN unsigned short shoal_f64_to_f16(double d) { return shoal_f32_to_f16(shoal_f64_to_f32_odd(d)); }

SHOAL_F16_FN float shoal_f16_to_f32(unsigned short h) {
  const unsigned int sign = ((unsigned int)h & 0x8000u) << 16;
  const unsigned int e = ((unsigned int)h >> 10) & 0x1fu, m = (unsigned int)h & 0x3ffu;
  if (e == 0) {
    const float v = (float)m * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 31) return shoal_bits_f32(sign | 0x7f800000u | (m << 13));
  return shoal_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

// float -> bfloat16 bits (the high half of a float), round to nearest even; NaN stays NaN.
SHOAL_F16_FN unsigned short shoal_f32_to_bf16(float f) {
  const unsigned int x = shoal_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x40u);
  return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

SHOAL_F16_FN unsigned short shoal_f64_to_bf16(double d) { return shoal_f32_to_bf16(shoal_f64_to_f32_odd(d)); }

SHOAL_F16_FN float shoal_bf16_to_f32(unsigned short h) { return shoal_bits_f32((unsigned int)h << 16); }

#ifdef SHOAL_FLOAT16_ON_HOST
}  // namespace shoal
#endif
#undef SHOAL_F16_FN

#endif  // SHOAL_SUPPORT_FLOAT16_H
