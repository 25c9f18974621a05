// The runtime's own kernels: their source (compiled by NVRTC at the first accumulated step)
// and the host's side of their arguments.
#include "runtime/cuda/runtime_kernels.h"

namespace shoal::cudaimpl {

namespace {

// The runtime's own kernels, one module loaded at the first runAccumulate:
// - shoal_accumulate, one thread: stream order serializes the steps, so plain read-modify-
//   writes suffice. The products and sums are rounded separately (no FMA), as the host's
//   default accumulation does.
// - shoal_gather_rows (runAccumulateRows): a block per (row, tensor) copies row order[first +
//   row] of a resident data set's tensor into the input's buffer, bit for bit when the element
//   types agree, else converted through double as the host's upload converts (Tensor::set);
//   block (0, 0) also writes the scalar inputs, given by value. ShoalGather mirrors GatherArgs.
// - shoal_copy_in (run()): copies an input from mapped page-locked host memory into its
//   buffer, 16 bytes a thread and up to four loads in flight each, so every load of a small
//   input crosses the bus at once; the bytes past the last whole 16 by threads 0-15. Both
//   addresses 16-byte aligned (the caller checks).
constexpr const char* kRuntimeKernelsSource = R"(// shoal: the runtime's kernels (metrics, gathers, copies in)
typedef unsigned long long u64;
extern "C" __global__ void shoal_copy_in(const unsigned char* __restrict__ src, unsigned char* __restrict__ dst,
                                         long long bytes) {
  const long long vecs = bytes / 16, stride = (long long)gridDim.x * blockDim.x;
  const long long me = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const float4* s = (const float4*)src;
  float4* d = (float4*)dst;
  long long i = me;
  for (; i + 3 * stride < vecs; i += 4 * stride) {
    const float4 a = s[i], b = s[i + stride], c = s[i + 2 * stride], e = s[i + 3 * stride];
    d[i] = a;
    d[i + stride] = b;
    d[i + 2 * stride] = c;
    d[i + 3 * stride] = e;
  }
  for (; i < vecs; i += stride) d[i] = s[i];
  if (me < bytes - vecs * 16) dst[vecs * 16 + me] = src[vecs * 16 + me];
}
__device__ __forceinline__ double shoal_load_scalar(const void* p, unsigned code) {
  switch (code) {
    case 0: return (double)*(const float*)p;
    case 1: return *(const double*)p;
    case 2: return (double)*(const int*)p;
    case 3: return (double)*(const long long*)p;
    default: return (double)*(const unsigned char*)p;
  }
}
extern "C" __global__ void shoal_accumulate(double* acc, const void* p0, const void* p1, const void* p2,
                                            const void* p3, const void* p4, const void* p5, const void* p6,
                                            const void* p7, unsigned codes, int lossSlot, double weight,
                                            long long step, const u64* status, int statusWords) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const void* ps[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
  for (int s = 0; s < 8; ++s) {
    if (!ps[s]) continue;
    const double v = shoal_load_scalar(ps[s], (codes >> (4 * s)) & 15u);
    acc[s] = __dadd_rn(acc[s], __dmul_rn(v, weight));
    long long* bad = (long long*)(acc + 10);
    if (s == lossSlot && !isfinite(v) && *bad == 0) {
      *bad = step + 1;
      acc[9] = v;
    }
  }
  acc[8] = __dadd_rn(acc[8], weight);
  long long* err = (long long*)(acc + 11);
  if (status[0] != 0 && *err == 0) {
    *err = step + 1;
    u64* words = (u64*)(acc + 12);
    for (int w = 0; w < statusWords; ++w) words[w] = status[w];
  }
}
struct ShoalGatherTensor {
  const unsigned char* src;
  unsigned char* dst;
  long long rowElems;
  int srcCode, dstCode;  // element codes as shoal_load_scalar's; equal: copied bit for bit
  int elemBytes, pad;
};
struct ShoalGatherScalar {
  unsigned char* dst;
  u64 bits;
  int bytes, pad;
};
struct ShoalGather {
  const long long* order;
  long long first;
  int tensors, scalars;
  ShoalGatherTensor tensor[8];
  ShoalGatherScalar scalar[4];
};
extern "C" __global__ void shoal_gather_rows(ShoalGather g) {
  if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x < g.scalars) {
    const ShoalGatherScalar& s = g.scalar[threadIdx.x];
    for (int b = 0; b < s.bytes; ++b) s.dst[b] = (unsigned char)(s.bits >> (8 * b));
  }
  if ((int)blockIdx.y >= g.tensors) return;
  const ShoalGatherTensor& t = g.tensor[blockIdx.y];
  const long long row = blockIdx.x, from = g.order[g.first + row];
  if (t.srcCode == t.dstCode) {
    const long long bytes = t.rowElems * t.elemBytes;
    const unsigned char* s = t.src + from * bytes;
    unsigned char* d = t.dst + row * bytes;
    if (bytes % 4 == 0 && ((u64)s | (u64)d) % 4 == 0) {
      for (long long i = threadIdx.x; i < bytes / 4; i += blockDim.x) ((unsigned*)d)[i] = ((const unsigned*)s)[i];
    } else {
      for (long long i = threadIdx.x; i < bytes; i += blockDim.x) d[i] = s[i];
    }
    return;
  }
  const int srcBytes = t.srcCode == 1 || t.srcCode == 3 ? 8 : t.srcCode == 4 ? 1 : 4;
  const unsigned char* s = t.src + from * t.rowElems * srcBytes;
  for (long long e = threadIdx.x; e < t.rowElems; e += blockDim.x) {
    const double v = shoal_load_scalar(s + e * srcBytes, (unsigned)t.srcCode);
    const long long at = row * t.rowElems + e;
    switch (t.dstCode) {
      case 0: ((float*)t.dst)[at] = (float)v; break;
      case 1: ((double*)t.dst)[at] = v; break;
      case 2: ((int*)t.dst)[at] = (int)v; break;
      default: ((long long*)t.dst)[at] = (long long)v; break;
    }
  }
}
)";

}  // namespace

const char* runtimeKernelsSource() { return kRuntimeKernelsSource; }

bool gatherConverts(DType from, DType to) {
  if (from == to) return true;
  const bool intSource = from == DType::U8 || from == DType::Bool || from == DType::I32 || from == DType::I64;
  if (to == DType::F32 || to == DType::F64) return intSource || from == DType::F32 || from == DType::F64;
  if (to == DType::I64) return from == DType::U8 || from == DType::Bool || from == DType::I32;
  if (to == DType::I32) return from == DType::U8 || from == DType::Bool;
  return false;
}

unsigned scalarCode(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F64: return 1;
    case DType::I32: return 2;
    case DType::I64: return 3;
    case DType::U8: return 4;
    case DType::Bool: return 4;  // one byte holding 0 or 1: read as unsigned char
    default: return 4;           // storage types: refused by runAccumulate before this
  }
  return 0;
}

}  // namespace shoal::cudaimpl
