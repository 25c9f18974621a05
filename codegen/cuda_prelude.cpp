// CUDA codegen: the prelude every generated translation unit starts with -- types, the scalar
// math and elementwise formulas shared with the host, warp and block reductions, cp.async and
// the tensor cores' fragment helpers, error reporting (codegen/cuda_emit.h, prelude()).
#include <string>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

std::string prelude() {
  std::string out = R"(// ---- shoal prelude: types and helpers the kernels below share ----------------------------
typedef long long i64;
typedef unsigned long long u64;

// ---- support/float16.h and ir/scalar_math.h: float16/bfloat16 conversions and the scalar
// math of the elementwise formulas (shared with the host) ---------------------------------
#define SHOAL_SCALAR_FN __device__ __forceinline__
)";
  out += float16Source();
  out += "\n";
  out += scalarMathSource();
  out += "\n// ---- the elementwise ops of ir/ops.def, one formula each ------------------------------\n";
  out += elementwiseFunctions();
  out += R"(
__device__ __forceinline__ float shoal_neg_inf(float) { return __int_as_float(0xff800000); }
__device__ __forceinline__ double shoal_neg_inf(double) { return __longlong_as_double(0xfff0000000000000LL); }

// Butterfly sums over a warp: every lane ends with the same bits (each level adds a pair,
// and a + b == b + a), and the order is fixed, so results are reproducible.
__device__ __forceinline__ double shoal_warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ long long shoal_warp_sum(long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// Maximum over a warp, ignoring NaN like the interpreter's row max (x > m ? x : m).
template <typename T>
__device__ __forceinline__ T shoal_warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  return v;
}

// A grouped kernel's body takes its block index and grid size as parameters of this type,
// named as CUDA's built-ins (codegen/cuda_kernel_groups.cpp).
struct ShoalGridPos { unsigned x, y, z; };

// First statement of every kernel: a kernel launched with programmatic stream serialization
// (sm_90 and up) may start while the kernel before it still runs; this waits for that kernel
// to complete and its writes to be visible, then lets the next kernel start launching. A
// plain launch makes both no-ops.
__device__ __forceinline__ void shoal_after_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Sum over the whole block (blockDim.x a multiple of 32), valid in thread 0; `scratch` holds
// 32 values in shared memory. Every thread of the block must call it.
template <typename V>
__device__ V shoal_block_sum(V v, V* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = shoal_warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : (V)0;
    v = shoal_warp_sum(v);
  }
  return v;
}

// Argmax as the interpreter defines it: the first NaN if any, else the first maximum.
// Combines two candidates (index -1: none); symmetric, so a butterfly agrees on all lanes.
template <typename T>
__device__ __forceinline__ void shoal_argmax_combine(T& v, long long& i, T ov, long long oi) {
  if (oi < 0) return;
  if (i < 0) { v = ov; i = oi; return; }
  const bool n = v != v, on = ov != ov;
  bool takeOther;
  if (n || on) takeOther = (n && on) ? oi < i : on;
  else takeOther = ov > v || (ov == v && oi < i);
  if (takeOther) { v = ov; i = oi; }
}
// Row argmax by one warp; every lane returns the index (0 for an empty row).
template <typename T>
__device__ long long shoal_warp_argmax(const T* row, long long cols) {
  const int lane = threadIdx.x & 31;
  T v = (T)0;
  long long i = -1;
  for (long long j = lane; j < cols; j += 32) shoal_argmax_combine(v, i, row[j], j);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T ov = __shfl_xor_sync(0xffffffffu, v, o);
    long long oi = __shfl_xor_sync(0xffffffffu, i, o);
    shoal_argmax_combine(v, i, ov, oi);
  }
  return i < 0 ? 0 : i;
}

// A row's log-sum-exp as max + logSum, like the interpreter's rowLogSumExp: the max ignores
// NaN; an infinite max gives logSum 0; the sum of exp(x - max) runs in double.
template <typename T>
struct ShoalLse { T max; T logSum; };
template <typename T>
__device__ ShoalLse<T> shoal_warp_lse(const T* row, long long cols) {
  const int lane = threadIdx.x & 31;
  T m = shoal_neg_inf((T)0);
  for (long long j = lane; j < cols; j += 32) m = row[j] > m ? row[j] : m;
  m = shoal_warp_max(m);
  ShoalLse<T> r;
  r.max = m;
  r.logSum = (T)0;
  if (shoal_isinf(m)) return r;
  double s = 0;
  for (long long j = lane; j < cols; j += 32) s += exp((double)(row[j] - m));
  s = shoal_warp_sum(s);
  r.logSum = (T)log(s);
  return r;
}

// The same two by one thread, over the row in order (for narrow rows, a thread per row).
template <typename T>
__device__ long long shoal_row_argmax(const T* row, long long cols) {
  T v = (T)0;
  long long i = -1;
  for (long long j = 0; j < cols; ++j) shoal_argmax_combine(v, i, row[j], j);
  return i < 0 ? 0 : i;
}
template <typename T>
__device__ ShoalLse<T> shoal_row_lse(const T* row, long long cols) {
  T m = shoal_neg_inf((T)0);
  for (long long j = 0; j < cols; ++j) m = row[j] > m ? row[j] : m;
  ShoalLse<T> r;
  r.max = m;
  r.logSum = (T)0;
  if (shoal_isinf(m)) return r;
  double s = 0;
  for (long long j = 0; j < cols; ++j) s += exp((double)(row[j] - m));
  r.logSum = (T)log(s);
  return r;
}

// Status words (see CudaErrorSite in codegen/cuda_codegen.h): word 0 says "some kernel of
// this step failed"; site s owns words 1 + 2s and 2 + 2s.
__device__ __forceinline__ void shoal_report_label(u64* status, int site, long long row, long long label) {
  const u64 key = ((u64)row << 32) | (u64)(unsigned)(int)label;
  atomicMax(&status[1 + 2 * site], ~key);  // the largest ~key is the first bad row
  atomicMax(&status[0], 1ull);
}
__device__ __forceinline__ void shoal_report_value(u64* status, int site, double value) {
  status[2 + 2 * site] = (u64)__double_as_longlong(value);
  __threadfence();
  atomicMax(&status[1 + 2 * site], 1ull);
  atomicMax(&status[0], 1ull);
}

// ---- Winograd convolutions (codegen/cuda_kernels_winograd.cpp) ---------------------------
// G[r][i] of F(m x m, 3 x 3), m 2 or 4 (Lavin and Gray's interpolation points 0, +-1 and
// infinity; 0, +-1, +-2 and infinity): a function, not a table, so that no thread builds one
// in local memory.
__device__ __forceinline__ double shoal_winograd_g(int m, int r, int i) {
  if (m == 2) return r == 0 ? (i == 0 ? 1.0 : 0.0) : r == 3 ? (i == 2 ? 1.0 : 0.0) : (r == 2 && i == 1 ? -0.5 : 0.5);
  switch (r) {
    case 0: return i == 0 ? 0.25 : 0.0;
    case 1: return -1.0 / 6;
    case 2: return i == 1 ? 1.0 / 6 : -1.0 / 6;
    case 3: return i == 0 ? 1.0 / 24 : i == 1 ? 1.0 / 12 : 1.0 / 6;
    case 4: return i == 0 ? 1.0 / 24 : i == 1 ? -1.0 / 12 : 1.0 / 6;
    default: return i == 2 ? 1.0 : 0.0;
  }
}
// Element t (row t / a, column t % a; a = m + 2) of G g G^T, the transform of the 3 x 3 filter
// g (row-major; rotated by 180 degrees when `flip`: the data gradient's), summed in double and
// rounded once.
__device__ __forceinline__ float shoal_winograd_weight(const float* g, int t, int m, bool flip) {
  const int a = m + 2, r = t / a, c = t % a;
  double s = 0.0;
#pragma unroll
  for (int i = 0; i < 3; ++i) {
    double row = 0.0;  // (g G^T)[i][c]
#pragma unroll
    for (int j = 0; j < 3; ++j) row += (double)g[flip ? 8 - (3 * i + j) : 3 * i + j] * shoal_winograd_g(m, c, j);
    s += shoal_winograd_g(m, r, i) * row;
  }
  return (float)s;
}

// ---- tensor cores (TF32): the implicit-GEMM convolution's building blocks -----------------
// x rounded to TF32 (10 mantissa bits, to nearest, ties away from zero: cvt.rna), as fp32 bits.
__device__ __forceinline__ unsigned shoal_to_tf32(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#else
  unsigned u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;  // inf and NaN stay
  return (u + 0x1000u) & 0xffffe000u;
#endif
}
// d += A·B for one warp: A 16x8 (row-major), B 8x8 (column-major), D 16x8, in mma.sync's
// m16n8k8 TF32 fragments. Lane l = 4g + t holds a = {A[g][t], A[g+8][t], A[g][t+4],
// A[g+8][t+4]}, b = {B[t][g], B[t+4][g]} and d = {D[g][2t], D[g][2t+1], D[g+8][2t],
// D[g+8][2t+1]}. Below sm_80 (and on the CPU emulator) the same product through shuffles.
__device__ __forceinline__ void shoal_warp_mma_tf32(float* d, const unsigned* a, const unsigned* b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  const int lane = (int)(threadIdx.x & 31u), t = lane & 3;
  float a0[8], a1[8], b0[8], b1[8];  // rows g and g + 8 of A; columns 2t and 2t + 1 of B
  for (int j = 0; j < 4; ++j) {
    const int ma = t ^ j;                          // lane 4g + j holds A[g][j], A[g][j + 4], ...
    const int m0 = lane ^ (8 * t + j), m1 = lane ^ (8 * t + 4 + j);  // lanes 4n + j hold B[j][n]
    a0[j] = __uint_as_float(__shfl_xor_sync(0xffffffffu, a[0], ma));
    a1[j] = __uint_as_float(__shfl_xor_sync(0xffffffffu, a[1], ma));
    a0[j + 4] = __uint_as_float(__shfl_xor_sync(0xffffffffu, a[2], ma));
    a1[j + 4] = __uint_as_float(__shfl_xor_sync(0xffffffffu, a[3], ma));
    b0[j] = __uint_as_float(__shfl_xor_sync(0xffffffffu, b[0], m0));
    b0[j + 4] = __uint_as_float(__shfl_xor_sync(0xffffffffu, b[1], m0));
    b1[j] = __uint_as_float(__shfl_xor_sync(0xffffffffu, b[0], m1));
    b1[j + 4] = __uint_as_float(__shfl_xor_sync(0xffffffffu, b[1], m1));
  }
  for (int k = 0; k < 8; ++k) {
    d[0] += a0[k] * b0[k];
    d[1] += a0[k] * b1[k];
    d[2] += a1[k] * b0[k];
    d[3] += a1[k] * b1[k];
  }
#endif
}
// d += A·B for one warp in mma.sync's m16n8k16 fragments of 16-bit operands (bfloat16 or
// float16: `bf16` picks), fp32 accumulation. Lane l = 4g + t holds a = {A[g][2t..2t+1],
// A[g+8][2t..2t+1], A[g][2t+8..2t+9], A[g+8][2t+8..2t+9]} and b = {B[2t..2t+1][g],
// B[2t+8..2t+9][g]}, each pair packed low element first; d as for m16n8k8.
__device__ __forceinline__ float shoal_half_to_f32(unsigned short h, bool bf16) {
  return bf16 ? shoal_bf16_to_f32(h) : shoal_f16_to_f32(h);
}
__device__ __forceinline__ void shoal_warp_mma_16bit(float* d, const unsigned* a, const unsigned* b, bool bf16) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if (bf16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  const int lane = (int)(threadIdx.x & 31u), t = lane & 3;
  float a0[16], a1[16], b0[16], b1[16];  // rows g and g + 8 of A; columns 2t and 2t + 1 of B
  for (int j = 0; j < 4; ++j) {
    const int ma = t ^ j;                                            // lane 4g + j
    const int m0 = lane ^ (8 * t + j), m1 = lane ^ (8 * t + 4 + j);  // lanes 4n + j
    const unsigned r[8] = {__shfl_xor_sync(0xffffffffu, a[0], ma), __shfl_xor_sync(0xffffffffu, a[1], ma),
                           __shfl_xor_sync(0xffffffffu, a[2], ma), __shfl_xor_sync(0xffffffffu, a[3], ma),
                           __shfl_xor_sync(0xffffffffu, b[0], m0), __shfl_xor_sync(0xffffffffu, b[1], m0),
                           __shfl_xor_sync(0xffffffffu, b[0], m1), __shfl_xor_sync(0xffffffffu, b[1], m1)};
    for (int h = 0; h < 2; ++h) {
      const int shift = 16 * h;
      a0[2 * j + h] = shoal_half_to_f32((unsigned short)(r[0] >> shift), bf16);
      a1[2 * j + h] = shoal_half_to_f32((unsigned short)(r[1] >> shift), bf16);
      a0[2 * j + 8 + h] = shoal_half_to_f32((unsigned short)(r[2] >> shift), bf16);
      a1[2 * j + 8 + h] = shoal_half_to_f32((unsigned short)(r[3] >> shift), bf16);
      b0[2 * j + h] = shoal_half_to_f32((unsigned short)(r[4] >> shift), bf16);
      b0[2 * j + 8 + h] = shoal_half_to_f32((unsigned short)(r[5] >> shift), bf16);
      b1[2 * j + h] = shoal_half_to_f32((unsigned short)(r[6] >> shift), bf16);
      b1[2 * j + 8 + h] = shoal_half_to_f32((unsigned short)(r[7] >> shift), bf16);
    }
  }
  for (int k = 0; k < 16; ++k) {
    d[0] += a0[k] * b0[k];
    d[1] += a0[k] * b1[k];
    d[2] += a1[k] * b0[k];
    d[3] += a1[k] * b1[k];
  }
#endif
}
// Two fp32 values (as bits) rounded to bfloat16 or float16 (to nearest even) and packed, lo in
// the low half: an m16n8k16 fragment register.
__device__ __forceinline__ unsigned shoal_pack_words(unsigned lo, unsigned hi, bool bf16) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned r;
  if (bf16)
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(__uint_as_float(hi)), "f"(__uint_as_float(lo)));
  else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(__uint_as_float(hi)), "f"(__uint_as_float(lo)));
  return r;
#else
  const unsigned l = bf16 ? shoal_f32_to_bf16(__uint_as_float(lo)) : shoal_f32_to_f16(__uint_as_float(lo));
  const unsigned h = bf16 ? shoal_f32_to_bf16(__uint_as_float(hi)) : shoal_f32_to_f16(__uint_as_float(hi));
  return l | (h << 16);
#endif
}
// Dynamic shared memory (the launch step's sharedBytes) as an array `name` of T, 1024-byte
// aligned (wgmma's swizzled operand layouts repeat every 512 bytes of the address).
#ifndef SHOAL_DYNAMIC_SHARED
#define SHOAL_DYNAMIC_SHARED(T, name) extern __shared__ __align__(1024) T name[]
#endif
// Shared-memory addresses for the copy and fragment helpers below, in bytes: from sm_80 the
// 32-bit address of PTX's shared state space (what cp.async and ldmatrix take, so a kernel
// converts its base once and adds offsets); below sm_80 and on the CPU emulator the generic
// pointer's value.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
typedef unsigned shoal_saddr;
__device__ __forceinline__ shoal_saddr shoal_saddr_of(const void* p) {
  unsigned a;
  asm("{ .reg .u64 s; cvta.to.shared.u64 s, %1; cvt.u32.u64 %0, s; }" : "=r"(a) : "l"(p));
  return a;
}
#else
typedef unsigned long long shoal_saddr;
__device__ __forceinline__ shoal_saddr shoal_saddr_of(const void* p) { return (unsigned long long)p; }
#endif
// *dst = ok ? *src : 0, asynchronously from sm_80 (cp.async, zero-filled when !ok: src is
// then not read); complete once a later shoal_cp_async_wait says so. Below sm_80 a plain copy;
// on the CPU emulator a copy that lands when the thread waits for its group (as late as the
// card may), its source read now.
__device__ __forceinline__ void shoal_cp_async_f32(shoal_saddr dst, const float* src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 4 : 0) : "memory");
#elif defined(__CUDA_ARCH__)
  *(float*)dst = ok ? *src : 0.0f;
#else
  shoal_emu_async_copy((void*)dst, ok ? (const void*)src : nullptr, 4, 4);
#endif
}
// *dst = (word & bit) ? *src : 0, as shoal_cp_async_f32 with the test inside the copy (cp.async's
// ignore-src predicate: zeros copied, src neither read nor required to be valid, where the bit
// is clear) -- one logic instruction and the copy. 32- and 64-bit words.
__device__ __forceinline__ void shoal_cp_async_f32_if(shoal_saddr dst, const float* src, unsigned word, unsigned bit) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("{\n.reg .pred p;\n.reg .b32 t;\nand.b32 t, %2, %3;\nsetp.eq.u32 p, t, 0;\n"
               "cp.async.ca.shared.global [%0], [%1], 4, p;\n}\n" ::"r"(dst), "l"(src), "r"(word), "r"(bit) : "memory");
#else
  shoal_cp_async_f32(dst, src, (word & bit) != 0u);
#endif
}
__device__ __forceinline__ void shoal_cp_async_f32_if(shoal_saddr dst, const float* src, unsigned long long word,
                                                      unsigned long long bit) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("{\n.reg .pred p;\n.reg .b64 t;\nand.b64 t, %2, %3;\nsetp.eq.u64 p, t, 0;\n"
               "cp.async.ca.shared.global [%0], [%1], 4, p;\n}\n" ::"r"(dst), "l"(src), "l"(word), "l"(bit) : "memory");
#else
  shoal_cp_async_f32(dst, src, (word & bit) != 0ull);
#endif
}
// dst[0..1] = the first n (0, 1 or 2) of src[0..1], zeros after them: one 8-byte copy (cp.async
// copies n floats and zero-fills the rest; src is not read past them). src and dst 8-byte
// aligned -- the CPU emulator traps where either is not, as cp.async would fault (below sm_80,
// two plain copies).
__device__ __forceinline__ void shoal_cp_async_f32x2(shoal_saddr dst, const float* src, int n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(4 * n) : "memory");
#elif defined(__CUDA_ARCH__)
  ((float*)dst)[0] = n > 0 ? src[0] : 0.0f;
  ((float*)dst)[1] = n > 1 ? src[1] : 0.0f;
#else
  if ((dst & 7ull) != 0 || (n > 0 && (reinterpret_cast<unsigned long long>(src) & 7ull) != 0)) __builtin_trap();
  shoal_emu_async_copy((void*)dst, n > 0 ? (const void*)src : nullptr, 4 * (n > 2 ? 2 : n), 8);
#endif
}
// The same for 4 floats; src and dst 16-byte aligned (one 16-byte copy; the CPU emulator traps
// where either is not, as cp.async would fault).
__device__ __forceinline__ void shoal_cp_async_f32x4_aligned(shoal_saddr dst, const float* src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0) : "memory");
#elif defined(__CUDA_ARCH__)
  for (int q = 0; q < 4; ++q) shoal_cp_async_f32(dst + 4 * q, src + q, ok);
#else
  if ((dst & 15ull) != 0 || (ok && (reinterpret_cast<unsigned long long>(src) & 15ull) != 0)) __builtin_trap();
  shoal_emu_async_copy((void*)dst, ok ? (const void*)src : nullptr, 16, 16);
#endif
}
// The same, cached in L1 as well (cp.async.ca): for gathers that read their neighbours'
// elements again soon (a channels-last convolution's taps), where .cg would go to L2 each time.
__device__ __forceinline__ void shoal_cp_async_f32x4_cached(shoal_saddr dst, const float* src, bool ok) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0) : "memory");
#else
  shoal_cp_async_f32x4_aligned(dst, src, ok);
#endif
}
// The same where only dst is known to be aligned: one 16-byte copy where src is, else four.
__device__ __forceinline__ void shoal_cp_async_f32x4(shoal_saddr dst, const float* src, bool ok) {
  if ((reinterpret_cast<unsigned long long>(src) & 15ull) == 0) {
    shoal_cp_async_f32x4_aligned(dst, src, ok);
    return;
  }
  for (int q = 0; q < 4; ++q) shoal_cp_async_f32(dst + 4 * q, src + q, ok);
}
// ldmatrix .x4 on 32-bit elements: lane l passes the address of one 16-byte row (4 floats) --
// lanes 8q..8q+7 the rows 0..7 of matrix q -- and gets r[q] = word (l & 3) of row (l >> 2) of
// matrix q: mma.sync's TF32 fragments of four 8 x 4 blocks in one instruction. Below sm_80
// (and on the CPU emulator) the same through shuffles of the addresses.
__device__ __forceinline__ void shoal_ldmatrix_x4(unsigned* r, shoal_saddr p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(p));
#else
  const int lane = (int)(threadIdx.x & 31u);
  for (int q = 0; q < 4; ++q) {
    const unsigned long long row = __shfl_xor_sync(0xffffffffu, p, lane ^ (8 * q + (lane >> 2)));
    r[q] = __float_as_uint(((const float*)row)[lane & 3]);
  }
#endif
}
// Named barrier `id` (1-15: 0 is __syncthreads') of `count` threads, whole warps: arrive and go
// on, or arrive and wait for the generation to complete (a block's producer and consumer warps
// handing stages to each other). On the CPU emulator a fiber barrier.
__device__ __forceinline__ void shoal_bar_arrive(int id, int count) {
#if defined(__CUDA_ARCH__)
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
#else
  shoal_emu_bar(id, count, 0);
#endif
}
__device__ __forceinline__ void shoal_bar_sync(int id, int count) {
#if defined(__CUDA_ARCH__)
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
#else
  shoal_emu_bar(id, count, 1);
#endif
}
// A tensor map (CudaTensorMap): 128 opaque bytes the executor encodes, taken by value as a
// __grid_constant__ parameter (SHOAL_TMAP(name)); the copies below name it by its address.
// On the CPU emulator the parameter is a reference to the emulator's own form.
struct __align__(64) shoal_tensor_map {
  unsigned long long q[16];
};
#ifndef SHOAL_TMAP
#define SHOAL_TMAP(name) const __grid_constant__ shoal_tensor_map name
#endif
// mbarriers (sm_90; 8 bytes of shared memory each): initialised by one thread for `count`
// arrivals, then fenced before any other thread or the copy engine uses them; a phase completes
// once its arrivals have come and the bytes they expect (expect_tx) have landed.
__device__ __forceinline__ void shoal_mbar_init(shoal_saddr bar, unsigned count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#else
  shoal_emu_mbar(0, bar, count);
#endif
}
__device__ __forceinline__ void shoal_mbar_fence_init() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// Arrives at `bar`, its phase now also waiting for `bytes` more of the copies that complete on it.
__device__ __forceinline__ void shoal_mbar_arrive_expect_tx(shoal_saddr bar, unsigned bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#else
  shoal_emu_mbar(1, bar, bytes);
#endif
}
// Waits until the phase of parity `parity` of `bar` has completed.
__device__ __forceinline__ void shoal_mbar_wait(shoal_saddr bar, unsigned parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  unsigned done;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
  } while (!done);
#elif defined(__CUDA_ARCH__)
  __trap();
#else
  shoal_emu_mbar(2, bar, parity);
#endif
}
// The copy engine (sm_90's bulk tensor copies), completing on `bar` with the box's bytes: a tile
// of a 2-D map at (x, y), or an im2col box of a 4-D map (C, W, H, N) whose filter corners start
// at (c, w, h, n), each pixel read at the tap's offsets (ow, oh) from its corner.
__device__ __forceinline__ void shoal_tma_tile2(shoal_saddr dst, const shoal_tensor_map* map, shoal_saddr bar, int x,
                                                int y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(map), "r"(x), "r"(y), "r"(bar)
      : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#else
  const int coords[4] = {x, y, 0, 0};
  shoal_emu_tma((void*)dst, map, coords, 0, 0, (void*)bar);
#endif
}
__device__ __forceinline__ void shoal_tma_im2col4(shoal_saddr dst, const shoal_tensor_map* map, shoal_saddr bar, int c,
                                                  int w, int h, int n, unsigned short ow, unsigned short oh) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6], {%7, %8};\n" ::"r"(dst),
      "l"(map), "r"(c), "r"(w), "r"(h), "r"(n), "r"(bar), "h"(ow), "h"(oh)
      : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#else
  const int coords[4] = {c, w, h, n};
  shoal_emu_tma((void*)dst, map, coords, ow, oh, (void*)bar);
#endif
}
// Closes the group of this thread's cp.async copies issued since the last commit.
__device__ __forceinline__ void shoal_cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif !defined(__CUDA_ARCH__)
  shoal_emu_async_commit(0);
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void shoal_cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif !defined(__CUDA_ARCH__)
  shoal_emu_async_wait(0, N);
#endif
}
// ---- end of prelude -----------------------------------------------------------------------
)";
  return out;
}

}  // namespace shoal::cudagen
