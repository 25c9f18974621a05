// CUDA codegen, tensor cores: a GEMM over gathered operands (an implicit GEMM) in TF32,
// bfloat16 or float16 with fp32 accumulation, through mma.sync m16n8k8 (TF32) or m16n8k16
// (the prelude's shoal_warp_mma_tf32 and shoal_warp_mma_16bit). The
// convolutions (forward, both gradients, the transposed convolution) describe their gathers
// and epilogues in codegen/cuda_kernels_nn.cpp; this file owns the tiling.
//
// A block of 8 warps computes a 128 x 64 tile of the output, each warp 32 x 32 as 2 x 4 mma
// products. Every 16 steps of the reduction the block gathers the A tile (128 x 16) and the B
// tile (64 x 16) into shared memory, rounded to the format (rows padded to 20 floats: TF32's
// fragment reads of a warp then hit 32 different banks), and runs two k-steps of 8 (TF32) or
// one of 16 (16-bit operands stored packed two to a word). The shared tiles are double
// buffered: the next tiles' global loads are issued before the current tiles' products, stored
// after them, then one barrier. A gather is per element, or (ImplicitGemm::aGroup / bGroup)
// does its index arithmetic once per thread and tile and then only strides.
#include <fmt/format.h>

#include <algorithm>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// Expression: float `v` rounded to the operand format, as a float.
std::string roundTo(TensorCoreMath m, const std::string& v) {
  switch (m) {
    case TensorCoreMath::Bf16: return "shoal_bf16_to_f32(shoal_f32_to_bf16(" + v + "))";
    case TensorCoreMath::Fp16: return "shoal_f16_to_f32(shoal_f32_to_f16(" + v + "))";
    default: return "__uint_as_float(shoal_to_tf32(" + v + "))";
  }
}

// Gathers this thread's `n` operand elements of the tile starting at reduction index `kt`
// into registers `r` (A: row `am`, B: row `bo`): per element, or once per group.
std::string gatherCode(const std::string& r, int n, const std::string& rowOk, const std::string& kOff,
                       const std::string& group, const std::string& load) {
  const Vars v = {{"R", r}, {"N", std::to_string(n)}, {"ROW_OK", rowOk}, {"KOFF", kOff}, {"GROUP", group}, {"LOAD", load}};
  if (group.empty())
    return fill("      for (int e = 0; e < ${N}; ++e) {\n"
                "        const int k = kt + ${KOFF} + e;\n"
                "        float val = 0.0f;\n"
                "        if (${ROW_OK} && k < kEnd) {\n"
                "${LOAD}"
                "        }\n"
                "        ${R}[e] = val;\n"
                "      }\n",
                v);
  return fill("      for (int e = 0; e < ${N}; ++e) ${R}[e] = 0.0f;\n"
              "      if (${ROW_OK} && kt + ${KOFF} < kEnd) {\n"
              "        const int kg = kt + ${KOFF};\n"
              "${GROUP}"
              "        for (int e = 0; e < ${N}; ++e) {\n"
              "          const int k = kg + e;\n"
              "          float val = 0.0f;\n"
              "${LOAD}"
              "          ${R}[e] = val;\n"
              "        }\n"
              "      }\n",
              v);
}

// The warp's products over the 16 reduction steps of the tiles in shared memory.
std::string mmaSteps(TensorCoreMath m) {
  if (m == TensorCoreMath::Tf32 || m == TensorCoreMath::Off)
    return "    for (int ks = 0; ks < 16; ks += 8) {\n"
           "      unsigned a[2][4], b[4][2];\n"
           "      for (int i = 0; i < 2; ++i) {\n"
           "        const int r = wm * 32 + i * 16 + g;\n"
           "        a[i][0] = __float_as_uint(As[buf][r][ks + t]);\n"
           "        a[i][1] = __float_as_uint(As[buf][r + 8][ks + t]);\n"
           "        a[i][2] = __float_as_uint(As[buf][r][ks + t + 4]);\n"
           "        a[i][3] = __float_as_uint(As[buf][r + 8][ks + t + 4]);\n"
           "      }\n"
           "      for (int j = 0; j < 4; ++j) {\n"
           "        const int col = wn * 32 + j * 8 + g;\n"
           "        b[j][0] = __float_as_uint(Bs[buf][col][ks + t]);\n"
           "        b[j][1] = __float_as_uint(Bs[buf][col][ks + t + 4]);\n"
           "      }\n"
           "      for (int i = 0; i < 2; ++i)\n"
           "        for (int j = 0; j < 4; ++j) shoal_warp_mma_tf32(acc[i][j], a[i], b[j]);\n"
           "    }\n";
  // 16-bit formats: the shared tiles hold the operands already packed two to a word (word w
  // of a row: reduction steps 2w and 2w + 1), so each fragment register is one load.
  return "    {\n"
         "      unsigned a[2][4], b[4][2];\n"
         "      for (int i = 0; i < 2; ++i) {\n"
         "        const int r = wm * 32 + i * 16 + g;\n"
         "        a[i][0] = As[buf][r][t];\n"
         "        a[i][1] = As[buf][r + 8][t];\n"
         "        a[i][2] = As[buf][r][t + 4];\n"
         "        a[i][3] = As[buf][r + 8][t + 4];\n"
         "      }\n"
         "      for (int j = 0; j < 4; ++j) {\n"
         "        const int col = wn * 32 + j * 8 + g;\n"
         "        b[j][0] = Bs[buf][col][t];\n"
         "        b[j][1] = Bs[buf][col][t + 4];\n"
         "      }\n"
         "      for (int i = 0; i < 2; ++i)\n"
         "        for (int j = 0; j < 4; ++j) shoal_warp_mma_16bit(acc[i][j], a[i], b[j], " +
         std::string(m == TensorCoreMath::Bf16 ? "true" : "false") +
         ");\n"
         "    }\n";
}

}  // namespace

int64_t implicitGemmSplits(int64_t rows, int64_t cols, int64_t red) {
  const int64_t tiles = ((rows + 127) / 128) * ((cols + 63) / 64);
  return std::clamp<int64_t>((kTargetBlocks + tiles - 1) / tiles, 1, std::max<int64_t>(1, red / 256));
}

Expected<void> emitImplicitGemm(NodeEmitter& em, const ImplicitGemm& spec) {
  if (spec.rows <= 0 || spec.cols <= 0) return {};
  const int64_t rowTiles = (spec.rows + 127) / 128, colTiles = (spec.cols + 63) / 64;
  const int64_t splits = std::max<int64_t>(1, spec.splits);
  // Reduction steps of 16 per slice (whole steps, so slices never share one).
  const int64_t steps = (spec.red + 15) / 16;
  const int64_t perSlice = (steps + splits - 1) / splits * 16;
  if (rowTiles * splits > int64_t(0x7fffffff) || colTiles > 65535)
    return em.unsupported("an implicit GEMM too large for one grid");
  auto R = [&](const std::string& x) { return roundTo(spec.math, x); };
  // Registers ra<set>, rb<set>: gathered for the tile at `kt`; stored, rounded (16-bit: packed),
  // into shared buffer `nb` with 16-byte stores.
  auto gather = [&](const std::string& set) {
    return gatherCode("ra" + set, 8, "arow", "ak", spec.aGroup, spec.aLoad) +
           gatherCode("rb" + set, 4, "brow", "bk", spec.bGroup, spec.bLoad);
  };
  const bool packed = spec.math == TensorCoreMath::Bf16 || spec.math == TensorCoreMath::Fp16;
  const std::string bf16 = spec.math == TensorCoreMath::Bf16 ? "true" : "false";
  auto storeTile = [&](const std::string& set, const std::string& nb) {
    const std::string a = "ra" + set, b = "rb" + set;
    if (packed) {
      auto pack = [&](const std::string& r, int at) {
        return "shoal_pack_16bit(" + r + "[" + std::to_string(at) + "], " + r + "[" + std::to_string(at + 1) + "], " +
               bf16 + ")";
      };
      return "      *reinterpret_cast<uint4*>(&As[" + nb + "][ar][ak / 2]) = make_uint4(" + pack(a, 0) + ", " +
             pack(a, 2) + ", " + pack(a, 4) + ", " + pack(a, 6) + ");\n" +
             "      *reinterpret_cast<uint2*>(&Bs[" + nb + "][br][bk / 2]) = make_uint2(" + pack(b, 0) + ", " +
             pack(b, 2) + ");\n";
    }
    auto four = [&](const std::string& r, int at) {
      return R(r + "[" + std::to_string(at) + "]") + ", " + R(r + "[" + std::to_string(at + 1) + "]") + ", " +
             R(r + "[" + std::to_string(at + 2) + "]") + ", " + R(r + "[" + std::to_string(at + 3) + "]");
    };
    return "      *reinterpret_cast<float4*>(&As[" + nb + "][ar][ak]) = make_float4(" + four(a, 0) + ");\n" +
           "      *reinterpret_cast<float4*>(&As[" + nb + "][ar][ak + 4]) = make_float4(" + four(a, 4) + ");\n" +
           "      *reinterpret_cast<float4*>(&Bs[" + nb + "][br][bk]) = make_float4(" + four(b, 0) + ");\n";
  };
  Vars v = {{"I", em.I()},
            {"M", intLit(spec.rows)},
            {"N", intLit(spec.cols)},
            {"K", intLit(spec.red)},
            {"ROW_TILES", intLit(rowTiles)},
            {"PER_SLICE", intLit(perSlice)},
            {"SPLITS", intLit(splits)},
            {"A_SETUP", spec.aRowSetup},
            {"B_SETUP", spec.bRowSetup},
            {"GATHER0", gather("0")},
            {"STORE0_TO0", storeTile("0", "0")},
            {"STORE0_TO_NEXT", storeTile("0", "buf ^ 1")},
            {"MMA_STEPS", mmaSteps(spec.math)},
            // TF32: floats, rows padded to 20 (a warp's fragment reads hit 32 banks); 16-bit:
            // packed pairs, rows padded to 12 words (likewise).
            {"SHARED_TILES", packed ? "  __shared__ __align__(16) unsigned As[2][128][12];\n"
                                      "  __shared__ __align__(16) unsigned Bs[2][64][12];\n"
                                    : "  __shared__ __align__(16) float As[2][128][20];\n"
                                      "  __shared__ __align__(16) float Bs[2][64][20];\n"}};
  const bool split = splits > 1;
  v.push_back({"STORE", split ? "        partial[((${I})slice * ${M} + m) * ${N} + o] = s;\n" : spec.epilogue});
  const std::string params = spec.params + (split ? ", float* __restrict__ partial" : "");
  // Two shared buffers: while the warps multiply the tiles in one, the next tiles' elements
  // are loaded into registers (their latency hidden behind the products) and then stored into
  // the other; one barrier per 16 reduction steps. (Loading two tiles ahead, in two register
  // sets, measured slower in TF32 on the H200: docs/PERF.md.)
  std::string body = fill(fill(
      "${SHARED_TILES}"
      "  const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;\n"
      "  const int wm = warp >> 1, wn = warp & 1, g = lane >> 2, t = lane & 3;\n"
      "  const int slice = (int)(blockIdx.x / ${ROW_TILES});\n"
      "  const ${I} m0 = (${I})(blockIdx.x % ${ROW_TILES}) * 128;\n"
      "  const int o0 = (int)blockIdx.y * 64;\n"
      "  const int kBegin = slice * ${PER_SLICE};\n"
      "  const int kEnd = kBegin + ${PER_SLICE} < ${K} ? kBegin + ${PER_SLICE} : ${K};\n"
      "  // This thread gathers row ar of the A tile (columns ak..ak+7) and row br of the B tile\n"
      "  // (columns bk..bk+3).\n"
      "  const int ar = tid >> 1, ak = (tid & 1) * 8, br = tid >> 2, bk = (tid & 3) * 4;\n"
      "  const ${I} am = m0 + ar;\n"
      "  const bool arow = am < ${M};\n"
      "${A_SETUP}"
      "  const int bo = o0 + br;\n"
      "  const bool brow = bo < ${N};\n"
      "${B_SETUP}"
      "  float acc[2][4][4];\n"
      "  for (int i = 0; i < 2; ++i)\n"
      "    for (int j = 0; j < 4; ++j)\n"
      "      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;\n"
      "  float ra0[8], rb0[4];\n"
      "  {\n"
      "    const int kt = kBegin;\n"
      "${GATHER0}"
      "${STORE0_TO0}"
      "  }\n"
      "  __syncthreads();\n"
      "  int buf = 0;\n"
      "  for (int k0 = kBegin; k0 < kEnd; k0 += 16) {\n"
      "    const bool more = k0 + 16 < kEnd;\n"
      "    if (more) {\n"
      "      const int kt = k0 + 16;\n"
      "${GATHER0}"
      "    }\n"
      "${MMA_STEPS}"
      "    if (more) {\n"
      "${STORE0_TO_NEXT}"
      "    }\n"
      "    __syncthreads();\n"
      "    buf ^= 1;\n"
      "  }\n"
      "  for (int i = 0; i < 2; ++i)\n"
      "    for (int j = 0; j < 4; ++j)\n"
      "      for (int q = 0; q < 4; ++q) {\n"
      "        const ${I} m = m0 + wm * 32 + i * 16 + g + (q >= 2 ? 8 : 0);\n"
      "        const int o = o0 + wn * 32 + j * 8 + 2 * t + (q & 1);\n"
      "        if (m >= ${M} || o >= ${N}) continue;\n"
      "        const float s = acc[i][j][q];\n"
      "${STORE}"
      "      }\n",
      v), v);
  std::vector<CudaArg> args = spec.args;
  if (split) args.push_back(NodeEmitter::scratch());
  em.kernel("tc", params, body, args, unsigned(rowTiles * splits), unsigned(colTiles));
  if (!split) return {};
  em.needScratch(splits * spec.rows * spec.cols * int64_t(sizeof(float)));
  // The slices' sums, added in slice order (deterministic), then the epilogue.
  std::vector<CudaArg> sumArgs = spec.args;
  sumArgs.push_back(NodeEmitter::scratch());
  const Vars sv = {{"I", em.I()},
                   {"M", intLit(spec.rows)},
                   {"N", intLit(spec.cols)},
                   {"SPLITS", intLit(splits)},
                   {"EPILOGUE", spec.epilogue}};
  em.elementwise("tc_sum", params,
                 fill(fill("    const ${I} m = i / ${N};\n"
                           "    const int o = (int)(i % ${N});\n"
                           "    double total = 0.0;\n"
                           "    for (int slice = 0; slice < ${SPLITS}; ++slice)\n"
                           "      total += (double)partial[((${I})slice * ${M} + m) * ${N} + o];\n"
                           "    const float s = (float)total;\n"
                           "${EPILOGUE}",
                           sv),
                      sv),
                 std::move(sumArgs), spec.rows * spec.cols);
  return {};
}

}  // namespace shoal::cudagen
