// CUDA codegen, Hopper's warpgroup MMA: the prelude's wgmma helpers (matrix descriptors,
// fences, commit and wait, the m64nNk8 TF32 and m64nNk16 bfloat16 / float16 calls) and their
// CPU emulation, for the implicit GEMMs of codegen/cuda_kernels_igemm.cpp on sm_90a
// (CudaCodegenOptions::wgmma).
#include <fmt/format.h>

#include <string>
#include <utility>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// A wgmma call's n / 2 accumulators d[0..]: the PTX operand list "%0, %1, ..." and the asm
// output constraints "+f"(d[0]), ...
std::pair<std::string, std::string> accumulatorOperands(int n) {
  std::string list, outs;
  for (int i = 0; i < n / 2; ++i) {
    list += (i ? ", %" : "%") + std::to_string(i);
    outs += fmt::format("{}\"+f\"(d[{}])", i ? ", " : "", i);
  }
  return {list, outs};
}

// One wgmma.mma_async m64nNk8 TF32 call for n = N: the N/2 accumulators as "+f" operands.
std::string wgmmaCall(int n) {
  const int regs = n / 2;
  const auto [list, outs] = accumulatorOperands(n);
  return fmt::format(
      "__device__ __forceinline__ void shoal_wgmma_tf32_n{0}(float* d, shoal_wgmma_desc a, shoal_wgmma_desc b) {{\n"
      "#if SHOAL_WGMMA_HW\n"
      "  asm volatile(\"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{3}, 0;\\n\"\n"
      "               \"wgmma.mma_async.sync.aligned.m64n{0}k8.f32.tf32.tf32 {{{1}}}, %{4}, %{5}, p, 1, 1;\\n}}\\n\"\n"
      "               : {2}\n"
      "               : \"l\"(a), \"l\"(b), \"r\"(1));\n"
      "#else\n"
      "  SHOAL_WGMMA_LATER(shoal_wgmma_span(a, 64, 32, false), shoal_wgmma_span(b, {0}, 32, false),\n"
      "                    shoal_wgmma_tf32_emulated(d, a, b, {0}));\n"
      "#endif\n"
      "}}\n",
      n, list, outs, regs + 2, regs, regs + 1);
}

// A 16-bit wgmma helper: `signature` (name and parameters, `bf16` among them), issuing the
// bfloat16 or float16 form (`bf16Asm`, `f16Asm`) on the hardware and running `emulated` (its
// statements) on the CPU emulator.
std::string sixteenBitFunction(const std::string& signature, const std::string& bf16Asm, const std::string& f16Asm,
                               const std::string& emulated) {
  return "__device__ __forceinline__ void " + signature + " {\n#if SHOAL_WGMMA_HW\n  if (bf16)\n" + bf16Asm +
         "  else\n" + f16Asm + "#else\n" + emulated + "#endif\n}\n";
}

// One wgmma.mma_async m64nNk16 call with 16-bit operands (bf16 or f16: `bf16`, a constant
// where it is called), A from the warp's 4 registers, B through its descriptor.
std::string wgmma16Call(int n) {
  const int regs = n / 2;
  const auto [list, outs] = accumulatorOperands(n);
  auto variant = [&](const char* type) {
    return fmt::format(
        "    asm volatile(\"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{4}, 0;\\n\"\n"
        "                 \"wgmma.mma_async.sync.aligned.m64n{0}k16.f32.{5}.{5} {{{1}}}, {{%{2}, %{6}, %{7}, %{8}}}, "
        "%{3}, p, 1, 1, 0;\\n}}\\n\"\n"
        "                 : {9}\n"
        "                 : \"r\"(a[0]), \"l\"(b), \"r\"(1), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]));\n",
        n, list, regs, regs + 1, regs + 2, type, regs + 3, regs + 4, regs + 5, outs);
  };
  return sixteenBitFunction(
      fmt::format("shoal_wgmma_16bit_n{}(float* d, const unsigned* a, shoal_wgmma_desc b, bool bf16)", n),
      variant("bf16"), variant("f16"),
      fmt::format("  float a0[16], a1[16];  // A's registers gathered now, as the card reads them at the issue\n"
                  "  shoal_wgmma_16bit_gather(a, a0, a1, bf16);\n"
                  "  SHOAL_WGMMA_LATER(ShoalSpan(), shoal_wgmma_span(b, {0}, 32, false),\n"
                  "                    shoal_wgmma_16bit_product(d, a0, a1, b, {0}, bf16));\n",
                  n));
}

// One wgmma.mma_async m64nNk16 call with 16-bit operands both read through descriptors
// (bf16 or f16, as wgmma16Call): A and B K-major (trans-a and trans-b 0; shoal_wgmma_ss16_nN),
// or with `mn` both MN-major (1 and 1; shoal_wgmma_ss16mn_nN).
std::string wgmmaSs16Call(int n, bool mn = false) {
  const int regs = n / 2;
  const auto [list, outs] = accumulatorOperands(n);
  auto variant = [&](const char* type) {
    return fmt::format(
        "    asm volatile(\"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{4}, 0;\\n\"\n"
        "                 \"wgmma.mma_async.sync.aligned.m64n{0}k16.f32.{5}.{5} {{{1}}}, %{2}, %{3}, p, 1, 1, {7}, "
        "{7};\\n}}\\n\"\n"
        "                 : {6}\n"
        "                 : \"l\"(a), \"l\"(b), \"r\"(1));\n",
        n, list, regs, regs + 1, regs + 2, type, outs, mn ? 1 : 0);
  };
  return sixteenBitFunction(
      fmt::format("shoal_wgmma_ss16{}_n{}(float* d, shoal_wgmma_desc a, shoal_wgmma_desc b, bool bf16)", mn ? "mn" : "", n),
      variant("bf16"), variant("f16"),
      fmt::format("  SHOAL_WGMMA_LATER(shoal_wgmma_span(a, 64, 32, {1}), shoal_wgmma_span(b, {0}, 32, {1}),\n"
                  "                    shoal_wgmma_ss16_emulated(d, a, b, {0}, bf16, {1}));\n",
                  n, mn ? "true" : "false"));
}

}  // namespace

std::string wgmmaPrelude() {
  std::string out = R"(// ---- warpgroup MMA (sm_90a wgmma; CudaCodegenOptions::wgmma) -------------------------------
// An operand's matrix descriptor: a K-major tile of 64-byte rows (16 fp32 words) in shared
// memory whose 16-byte chunks are XOR-swizzled by bits 1-2 of the row -- PTX's 64-byte swizzle
// mode, which XORs address bits 4-5 with bits 7-8 (so the tile starts 512-byte aligned: the
// ring is 1024-byte aligned and its blocks of rows start at multiples of 8 rows) -- 8-row
// groups 512 bytes apart. `start` may point 32 bytes into the rows (the second 8 of a stage's
// 16 reduction steps): the hardware swizzles the address it computes. On the CPU emulator the
// descriptor also carries the pointer (a shared address there is a host pointer).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SHOAL_WGMMA_HW 1
typedef unsigned long long shoal_wgmma_desc;
#else
#define SHOAL_WGMMA_HW 0
struct shoal_wgmma_desc { unsigned long long bits; shoal_saddr addr; };
#endif
// The descriptor's fields: the start address (bits 0-13, in 16-byte units), the leading
// offset (1: unused by the swizzled K-major modes), the stride between 8-row groups (bits
// 32-45, 16-byte units) and the swizzle mode (bits 62-63).
__device__ __forceinline__ shoal_wgmma_desc shoal_wgmma_desc_make(shoal_saddr start, unsigned groupBytes,
                                                                  unsigned long long mode) {
  const unsigned long long bits = (unsigned long long)((start & 0x3FFFFu) >> 4) | (1ull << 16) |
                                  ((unsigned long long)(groupBytes >> 4) << 32) | (mode << 62);
#if SHOAL_WGMMA_HW
  return bits;
#else
  return {bits, start};
#endif
}
__device__ __forceinline__ shoal_wgmma_desc shoal_wgmma_desc_sw64(shoal_saddr start) {
  return shoal_wgmma_desc_make(start, 512, 2);
}
// The same for rows of 32 bytes (16 bfloat16 or float16 values) in PTX's 32-byte swizzle mode
// (address bit 4 XORed with bit 7: a row's two 16-byte chunks swap on rows 4-7 of every 8),
// 8-row groups 256 bytes apart.
__device__ __forceinline__ shoal_wgmma_desc shoal_wgmma_desc_sw32(shoal_saddr start) {
  return shoal_wgmma_desc_make(start, 256, 3);
}
// The same for rows of 128 bytes (64 bfloat16 or float16 values: a 64-step stage row) in PTX's
// 128-byte swizzle mode (address bits 4-6 XORed with bits 7-9: chunk j of row r at chunk
// j ^ (r & 7), the tile 1024-byte aligned), 8-row groups 1024 bytes apart; `start` may point
// 32 k bytes into the rows (reduction steps 16 k on).
__device__ __forceinline__ shoal_wgmma_desc shoal_wgmma_desc_sw128(shoal_saddr start) {
  return shoal_wgmma_desc_make(start, 1024, 1);
}
// `d` with its start `bytes` (a multiple of 16) further on: the start field is the address in
// 16-byte units and a shared address stays below 256 KB, so on the device an add (no carry
// leaves the field); a loop keeps a descriptor and adds a stage's and a 16-step's offset
// instead of building one each time.
__device__ __forceinline__ shoal_wgmma_desc shoal_wgmma_desc_add(shoal_wgmma_desc d, unsigned bytes) {
#if SHOAL_WGMMA_HW
  return d + (bytes >> 4);
#else
  return {(d.bits & ~0x3FFFull) | (((d.addr + bytes) & 0x3FFFFu) >> 4), d.addr + bytes};
#endif
}
// An MN-major operand (wgmma's transposed form) in the 128-byte swizzle: each reduction step's
// 64 consecutive rows (columns) of an atom are one 128-byte row of the tile (chunk j of tile
// row r at chunk j ^ (r & 7)), 8-step groups 1024 bytes apart; atoms of 64 rows (columns)
// `atomBytes` apart (the descriptor's leading offset). `start` may point 2048 k bytes on
// (reduction steps 16 k on).
__device__ __forceinline__ shoal_wgmma_desc shoal_wgmma_desc_mn128(shoal_saddr start, unsigned atomBytes) {
  const unsigned long long bits = (unsigned long long)((start & 0x3FFFFu) >> 4) |
                                  ((unsigned long long)((atomBytes >> 4) & 0x3FFFu) << 16) | (64ull << 32) | (1ull << 62);
#if SHOAL_WGMMA_HW
  return bits;
#else
  return {bits, start};
#endif
}
// Makes this thread's completed shared-memory writes (cp.async's) visible to the tensor cores'
// reads (the async proxy); before the barrier that hands a stage to them.
__device__ __forceinline__ void shoal_fence_proxy_async() {
#if SHOAL_WGMMA_HW
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Before a warpgroup's first wgmma after its accumulators were written by other instructions.
__device__ __forceinline__ void shoal_wgmma_fence() {
#if SHOAL_WGMMA_HW
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void shoal_wgmma_commit() {
#if SHOAL_WGMMA_HW
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#elif !defined(__CUDA_ARCH__)
  shoal_emu_async_commit(1);
#endif
}
// Waits until at most N of the warpgroup's committed wgmma groups are in flight.
template <int N>
__device__ __forceinline__ void shoal_wgmma_wait() {
#if SHOAL_WGMMA_HW
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#elif !defined(__CUDA_ARCH__)
  shoal_emu_async_wait(1, N);
#endif
}
// Keeps the compiler from moving the accumulators across a wgmma issue or wait (their
// registers belong to the tensor cores in between).
__device__ __forceinline__ void shoal_wgmma_hold(float& r) {
#if SHOAL_WGMMA_HW
  asm volatile("" : "+f"(r)::"memory");
#endif
}
#if !SHOAL_WGMMA_HW
// On the CPU emulator a product runs when its thread waits for it (wgmma.wait_group: as late as
// the card may read its operands and write its accumulators), and until then the shared bytes
// its operands span (spanA, spanB) may not be copied into; elsewhere it runs when issued.
struct ShoalSpan { unsigned long long lo = 0, hi = 0; };  // none: lo == hi
#if defined(__CUDA_ARCH__)
#define SHOAL_WGMMA_LATER(spanA, spanB, ...) __VA_ARGS__
#else
#define SHOAL_WGMMA_LATER(spanA, spanB, ...) \
  shoal_emu_later([=] { __VA_ARGS__; }, (spanA).lo, (spanA).hi, (spanB).lo, (spanB).hi)
#endif
// The emulator's wgmma: element (row, k) of a descriptor's tile, read where the hardware reads
// it (the 64-byte swizzle applied to the computed address) and truncated to TF32 (the tensor
// cores ignore an fp32 operand's low 13 mantissa bits).
// The address of byte `byte` of row `row` of a descriptor's tile: rows of 128 bytes (128-byte
// swizzle: bits 4-6 ^= bits 7-9), 64 bytes (64-byte swizzle: bits 4-5 ^= bits 7-8) or 32 bytes
// (32-byte swizzle: bit 4 ^= bit 7), 8-row groups the descriptor's stride apart, the swizzle
// applied to the computed address.
__device__ inline unsigned long long shoal_wgmma_address(const shoal_wgmma_desc& d, int row, int byte) {
  const unsigned mode = (unsigned)(d.bits >> 62);
  if (mode == 0 || (d.bits & 0x3FFFu) != ((d.addr & 0x3FFFFu) >> 4)) __builtin_trap();
  const unsigned long long sbo = ((d.bits >> 32) & 0x3FFFu) << 4, pitch = mode == 1 ? 128 : mode == 2 ? 64 : 32;
  unsigned long long a = d.addr + (unsigned long long)(row >> 3) * sbo + (unsigned long long)(row & 7) * pitch + byte;
  return a ^ (mode == 1 ? ((a >> 7) & 7) << 4 : mode == 2 ? ((a >> 7) & 3) << 4 : ((a >> 7) & 1) << 4);
}
__device__ inline float shoal_wgmma_element(const shoal_wgmma_desc& d, int row, int k) {
  unsigned u;
  memcpy(&u, (const void*)shoal_wgmma_address(d, row, 4 * k), 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u &= 0xffffe000u;
  return __uint_as_float(u);
}
// D (64 x n, this warpgroup's) += A (64 x 8) B (n x 8)^T: thread t of the warpgroup holds rows
// 16 (t / 32) + (t % 32) / 4 (+ 8) and columns 8 j + 2 (t % 4) (+ 1) of each 8-column block j:
// d[4 j + q] with q = 2 (row + 8) + (column + 1), as mma.sync's m16n8 accumulators.
__device__ inline void shoal_wgmma_tf32_emulated(float* d, const shoal_wgmma_desc& a, const shoal_wgmma_desc& b, int n) {
  const int t = (int)(threadIdx.x & 127u), g = (t & 31) >> 2, c = t & 3, w = t >> 5;
  for (int j = 0; j < n / 8; ++j)
    for (int q = 0; q < 4; ++q) {
      const int row = 16 * w + g + (q >= 2 ? 8 : 0), col = 8 * j + 2 * c + (q & 1);
      float s = 0.0f;
      for (int k = 0; k < 8; ++k) s += shoal_wgmma_element(a, row, k) * shoal_wgmma_element(b, col, k);
      d[4 * j + q] += s;
    }
}
// The 16-bit product m64nNk16 with A from registers: each warp's 4 registers are mma.sync's
// m16n8k16 A fragment of its 16 rows (lane 4g + t: rows g and g + 8, reduction slots 2t, 2t + 1
// and 2t + 8, 2t + 9, each pair packed low first), gathered through shuffles when the product
// is issued (a0, a1: rows g and g + 8 of this warp's 16); B (16-bit, 32-byte rows) read through
// the descriptor when it runs.
__device__ inline void shoal_wgmma_16bit_gather(const unsigned* a, float* a0, float* a1, bool bf16) {
  const int c = (int)(threadIdx.x & 3u);
  for (int j = 0; j < 4; ++j) {
    const int from = c ^ j;  // lane 4g + j
    const unsigned r[4] = {__shfl_xor_sync(0xffffffffu, a[0], from), __shfl_xor_sync(0xffffffffu, a[1], from),
                           __shfl_xor_sync(0xffffffffu, a[2], from), __shfl_xor_sync(0xffffffffu, a[3], from)};
    for (int h = 0; h < 2; ++h) {
      a0[2 * j + h] = shoal_half_to_f32((unsigned short)(r[0] >> (16 * h)), bf16);
      a1[2 * j + h] = shoal_half_to_f32((unsigned short)(r[1] >> (16 * h)), bf16);
      a0[2 * j + 8 + h] = shoal_half_to_f32((unsigned short)(r[2] >> (16 * h)), bf16);
      a1[2 * j + 8 + h] = shoal_half_to_f32((unsigned short)(r[3] >> (16 * h)), bf16);
    }
  }
}
__device__ inline void shoal_wgmma_16bit_product(float* d, const float* a0, const float* a1, const shoal_wgmma_desc& b,
                                                 int n, bool bf16) {
  const int c = (int)(threadIdx.x & 3u);
  for (int jb = 0; jb < n / 8; ++jb)
    for (int q = 0; q < 4; ++q) {
      const int col = 8 * jb + 2 * c + (q & 1);
      const float* arow = q >= 2 ? a1 : a0;
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) {
        unsigned short h;
        memcpy(&h, (const void*)shoal_wgmma_address(b, col, 2 * k), 2);
        s += arow[k] * shoal_half_to_f32(h, bf16);
      }
      d[4 * jb + q] += s;
    }
}
// The address of element (mn, k) of an MN-major 16-bit tile in the 128-byte swizzle (the only
// MN-major mode the kernels use): atoms of 64 along MN the leading offset apart, 8-step groups
// the stride apart, step k % 8's row 128 bytes on within a group, the swizzle applied to the
// computed address.
__device__ inline unsigned long long shoal_wgmma_address_mn(const shoal_wgmma_desc& d, int mn, int k) {
  if ((d.bits >> 62) != 1 || (d.bits & 0x3FFFu) != ((d.addr & 0x3FFFFu) >> 4)) __builtin_trap();
  const unsigned long long lbo = ((d.bits >> 16) & 0x3FFFu) << 4, sbo = ((d.bits >> 32) & 0x3FFFu) << 4;
  const unsigned long long a = d.addr + (unsigned long long)(mn >> 6) * lbo + (unsigned long long)(k >> 3) * sbo +
                               (unsigned long long)(k & 7) * 128 + (unsigned long long)(mn & 63) * 2;
  return a ^ (((a >> 7) & 7) << 4);
}
// The shared bytes a descriptor's operand spans: `rows` rows (MN-major: `rows` along MN) of
// `bytes` bytes of reduction steps (a product's 8 TF32 or 16 16-bit steps: 32), whole 128-byte
// lines (the swizzles move chunks within their rows' lines).
__device__ inline ShoalSpan shoal_wgmma_span(const shoal_wgmma_desc& d, int rows, int bytes, bool mn) {
  unsigned long long lo = ~0ull, hi = 0;
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 2; ++k) {
      const int row = r ? rows - 1 : 0;
      const unsigned long long a =
          mn ? shoal_wgmma_address_mn(d, row, k ? bytes / 2 - 1 : 0) : shoal_wgmma_address(d, row, k ? bytes - 1 : 0);
      lo = a < lo ? a : lo;
      hi = a > hi ? a : hi;
    }
  ShoalSpan s;
  s.lo = lo & ~127ull;
  s.hi = (hi | 127ull) + 1;
  return s;
}
// The 16-bit product m64nNk16 with both operands through descriptors: K-major (16-bit rows of
// the reduction) or, with `mn`, both MN-major (wgmma's transposed form).
__device__ inline void shoal_wgmma_ss16_emulated(float* d, const shoal_wgmma_desc& a, const shoal_wgmma_desc& b, int n,
                                                 bool bf16, bool mn) {
  const int t = (int)(threadIdx.x & 127u), g = (t & 31) >> 2, c = t & 3, w = t >> 5;
  auto element = [&](const shoal_wgmma_desc& desc, int row, int k) {
    unsigned short h;
    memcpy(&h, (const void*)(mn ? shoal_wgmma_address_mn(desc, row, k) : shoal_wgmma_address(desc, row, 2 * k)), 2);
    return shoal_half_to_f32(h, bf16);
  };
  for (int j = 0; j < n / 8; ++j)
    for (int q = 0; q < 4; ++q) {
      const int row = 16 * w + g + (q >= 2 ? 8 : 0), col = 8 * j + 2 * c + (q & 1);
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) s += element(a, row, k) * element(b, col, k);
      d[4 * j + q] += s;
    }
}
#endif
)";
  out += wgmmaCall(64) + wgmmaCall(128) + wgmmaCall(256) + wgmma16Call(64) + wgmma16Call(128) + wgmmaSs16Call(64) +
         wgmmaSs16Call(128) + wgmmaSs16Call(256) + wgmmaSs16Call(64, true) + wgmmaSs16Call(128, true) +
         wgmmaSs16Call(256, true);
  return out;
}

}  // namespace shoal::cudagen
