// Small fp32 matrix products as generated kernels instead of cuBLAS calls.
//
// cuBLAS's first call for a product costs the host tens of milliseconds (its heuristics, the
// lazy load of the kernel it picks: 110 ms before the seed CNN's first training step on an
// H200), and for the products of small models it launches a split-K kernel and a reduction
// where one block row would do. A product of at most kSmallGemmMacs multiply-adds in exact
// fp32 is emitted here instead. At most 1024 outputs: a warp per output (lanes over the inner
// dimension, a butterfly sum). Otherwise 64 x 64 output tiles, 256 threads of 4 x 4 outputs each
// (32 x 32 and 2 x 2 when 64-tiles would not give every SM a block), the operands staged 16 deep
// (64 for 32-tiles) through shared memory (coalesced for either transposition); when
// the tiles are too few to fill the GPU and the inner dimension is long, the inner dimension
// is split into slices whose sums go to scratch and a second kernel adds them in slice order
// (deterministic) before alpha and beta. Every output sums its terms in fp32 with FMA, in
// order within a slice, as cuBLAS's SIMT kernels do.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

constexpr int64_t kSmallGemmMacs = int64_t(1) << 28;
constexpr int64_t kTile = 64, kDepth = 16;
// Blocks worth filling the GPU with (one per SM of a 132-SM H100/H200).
constexpr int64_t kFillBlocks = 132;
// Products of at most this many outputs take a warp per output; of at most kBlockDotOutputs
// with an inner dimension of at least kBlockDotDepth, a block per output (the 5408-term rows
// of the seed CNN's first dense layer at batch 1: 169 dependent terms a lane took 6.1 us on
// an H200 with a warp per output, 64 warps on as many SMs).
constexpr int64_t kDotOutputs = 1024, kBlockDotOutputs = 512, kBlockDotDepth = 1024;
// Warps of a block that add a split product's slices together (each every kSliceWarps-th
// slice of 32 outputs), from 2 * kSliceWarps slices up.
constexpr int64_t kSliceWarps = 8;
// The widest hidden layer emitSmallMlpRows holds in a block (its sums take 36 KB of shared
// memory at 1024: 8 warps' partial rows and the finished row).
constexpr int64_t kMlpRowsHidden = 1024;

std::string lit(double v) { return literal(v, DType::F32); }

// How a small product is cut: a warp per output (dot), or tiles of `tile` outputs square,
// staged `depth` terms at a time, the inner dimension in `slices` slices of `slice` terms.
struct SmallGemmPlan {
  bool dot = false;
  bool blockDot = false;  ///< dot with a block of 8 warps per output (its lanes over the terms)
  int64_t tile = kTile, depth = kDepth, tilesM = 1, tilesN = 1, slices = 1, slice = 0;
};

std::optional<SmallGemmPlan> planSmallGemm(const CudaCodegenOptions& options, const CudaGemmCall& g) {
  if (!options.smallGemms || g.dtype != DType::F32 || g.batch < 1) return std::nullopt;
  const int64_t m = g.m, n = g.n, k = g.k, batch = g.batch;
  if (m <= 0 || n <= 0 || k <= 0 || m * n * k * batch > kSmallGemmMacs) return std::nullopt;
  SmallGemmPlan p;
  if (m * n * batch <= kDotOutputs && k >= 32) {
    p.dot = true;
    p.blockDot = m * n * batch <= kBlockDotOutputs && k >= kBlockDotDepth;
    return p;
  }
  // 64 x 64 tiles, or 32 x 32 (each thread 2 x 2 outputs) when 64-tiles would leave SMs
  // without a block: four times the blocks, each a quarter of the work per stage.
  const int64_t big = ((m + kTile - 1) / kTile) * ((n + kTile - 1) / kTile) * batch;
  p.tile = big < kFillBlocks ? kTile / 2 : kTile;
  // A 32-tile stages 64 terms at once (18 KB of shared memory; a 64-tile stages 16 in 9 KB): a
  // slice of 64 terms is then one round of loads, all in flight together, and one barrier.
  // (A short inner dimension stages only what it has, rounded up to 16.)
  p.depth = p.tile == kTile ? kDepth : std::min<int64_t>(4 * kDepth, (k + kDepth - 1) / kDepth * kDepth);
  p.tilesM = (m + p.tile - 1) / p.tile, p.tilesN = (n + p.tile - 1) / p.tile;
  const int64_t tiles = p.tilesM * p.tilesN * batch;
  // Slices of the inner dimension (multiples of the staging depth) when the tiles alone
  // leave most of the GPU idle and each slice keeps at least 64 terms (a 32-tile is a quarter
  // of the work: four of them per SM fill it as one 64-tile does).
  const int64_t fillBlocks = kFillBlocks * (kTile / p.tile) * (kTile / p.tile);
  p.slice = k;
  if (tiles < fillBlocks / 2 && k >= 128) {
    p.slices = std::min<int64_t>((k + 63) / 64, std::max<int64_t>(1, fillBlocks / tiles));
    p.slice = ((k + p.slices - 1) / p.slices + p.depth - 1) / p.depth * p.depth;
    p.slices = (k + p.slice - 1) / p.slice;
  }
  if (tiles / batch > (int64_t(1) << 31) - 1 || p.slices * batch > 65535) return std::nullopt;
  return p;
}

// The statements that store output `at` (column j) from the product's value `value`: alpha,
// beta, then the epilogue's bias and activation, indented by `ind`.
std::string storeOutput(const CudaGemmCall& g, const CudaGemmEpilogue* e, const std::string& value,
                        const std::string& ind) {
  std::string v = (g.alpha == 1 ? value : lit(g.alpha) + " * " + value) +
                  (g.beta != 0 ? " + " + lit(g.beta) + " * c[at]" : std::string());
  if (!e || (!e->bias.value && e->activation.empty())) return ind + "c[at] = " + v + ";\n";
  std::string out = ind + "const float e0 = " + v + (e->bias.value ? " + bias[j]" : "") + ";\n";
  if (e->activation.empty()) return out + ind + "c[at] = e0;\n";
  return out + ind + "float e1;\n" + activationCode(e->activation, "float", "e0", "e1", ind) + ind + "c[at] = e1;\n";
}


// The tiled product's kernel (its slices' sums into scratch when split, else the outputs with
// the epilogue); returns the variables the slices' kernel fills its text with.
Vars emitTiles(NodeEmitter& em, const CudaGemmCall& g, const SmallGemmPlan& plan, const CudaGemmEpilogue* epilogue,
               const std::string& suffix) {
  const int64_t m = g.m, n = g.n, k = g.k, batch = g.batch;
  const bool withBias = epilogue && epilogue->bias.value;
  const int64_t tile = plan.tile, per = tile / 16, depth = plan.depth;
  const int64_t tilesM = plan.tilesM, tilesN = plan.tilesN, slices = plan.slices, slice = plan.slice;
  const bool split = slices > 1;
  Vars v = {{"M", intLit(m)},
            {"N", intLit(n)},
            {"K", intLit(k)},
            {"LDA", intLit(g.lda)},
            {"LDB", intLit(g.ldb)},
            {"LDC", intLit(g.ldc)},
            {"OFFA", intLit(g.offsetA)},
            {"OFFB", intLit(g.offsetB)},
            {"OFFC", intLit(g.offsetC)},
            {"SA", intLit(g.strideA)},
            {"SB", intLit(g.strideB)},
            {"SC", intLit(g.strideC)},
            {"TN", intLit(tilesN)},
            {"TILE", intLit(tile)},
            {"STAGE", intLit(tile * depth)},
            {"DEPTH", intLit(depth)},
            {"PAD", intLit(tile + 4)},
            {"R", intLit(per)},
            {"SLICES", intLit(slices)},
            {"SLICE", intLit(slice)},
            // A tile: element e of the TILE x DEPTH stage; consecutive threads read consecutive
            // addresses of A (along p when A is m x k, along i when it is stored k x m).
            {"AI", g.transA ? "e % ${TILE}" : "e / ${DEPTH}"},
            {"AP", g.transA ? "e / ${TILE}" : "e % ${DEPTH}"},
            {"AAT", g.transA ? "(long long)gp * ${LDA} + gi" : "(long long)gi * ${LDA} + gp"},
            {"BJ", g.transB ? "e / ${DEPTH}" : "e % ${TILE}"},
            {"BP", g.transB ? "e % ${DEPTH}" : "e / ${TILE}"},
            {"BAT", g.transB ? "(long long)gj * ${LDB} + gq" : "(long long)gq * ${LDB} + gj"}};
  std::string store;
  if (split)
    store = "        part[((long long)(b * ${SLICES} + slice) * ${M} + i) * ${N} + j] = acc[r][q];\n";
  else
    store = "        const long long at = (long long)i * ${LDC} + j;\n" + storeOutput(g, epilogue, "acc[r][q]", "        ");
  v.push_back({"STORE", fill(store, v)});
  // A split product's slices go to `part`: its tiles never write C.
  v.push_back({"CPTR", split ? "" : fill("  float* c = C + ${OFFC} + (long long)b * ${SC};\n", v)});
  const std::string body = fill(
      fill("  __shared__ float As[${DEPTH}][${PAD}];  // As[p][i]: the stage of op(A), padded\n"
           "  __shared__ float Bs[${DEPTH}][${PAD}];  // Bs[p][j]: the stage of op(B)\n"
           "  const int tile = (int)blockIdx.x;\n"
           "  const int row0 = (tile / ${TN}) * ${TILE}, col0 = (tile % ${TN}) * ${TILE};\n"
           "  const int slice = (int)blockIdx.y % ${SLICES}, b = (int)blockIdx.y / ${SLICES};\n"
           "  const float* a = A + ${OFFA} + (long long)b * ${SA};\n"
           "  const float* bm = B + ${OFFB} + (long long)b * ${SB};\n"
           "${CPTR}"
           "  const int k0 = slice * ${SLICE}, k1 = k0 + ${SLICE} < ${K} ? k0 + ${SLICE} : ${K};\n"
           "  const int tx = (int)threadIdx.x % 16, ty = (int)threadIdx.x / 16;\n"
           "  float acc[${R}][${R}];\n"
           "#pragma unroll\n"
           "  for (int r = 0; r < ${R}; ++r)\n"
           "#pragma unroll\n"
           "    for (int q = 0; q < ${R}; ++q) acc[r][q] = 0.0f;\n"
           "  for (int p0 = k0; p0 < k1; p0 += ${DEPTH}) {\n"
           "    for (int e = (int)threadIdx.x; e < ${STAGE}; e += 256) {\n"
           "      const int i = ${AI}, p = ${AP};\n"
           "      const int gi = row0 + i, gp = p0 + p;\n"
           "      As[p][i] = gi < ${M} && gp < k1 ? a[${AAT}] : 0.0f;\n"
           "      const int j = ${BJ}, q = ${BP};\n"
           "      const int gj = col0 + j, gq = p0 + q;\n"
           "      Bs[q][j] = gj < ${N} && gq < k1 ? bm[${BAT}] : 0.0f;\n"
           "    }\n"
           "    __syncthreads();\n"
           "#pragma unroll\n"
           "    for (int p = 0; p < ${DEPTH}; ++p) {\n"
           "      float av[${R}], bv[${R}];\n"
           "#pragma unroll\n"
           "      for (int r = 0; r < ${R}; ++r) av[r] = As[p][ty + 16 * r];\n"
           "#pragma unroll\n"
           "      for (int q = 0; q < ${R}; ++q) bv[q] = Bs[p][tx + 16 * q];\n"
           "#pragma unroll\n"
           "      for (int r = 0; r < ${R}; ++r)\n"
           "#pragma unroll\n"
           "        for (int q = 0; q < ${R}; ++q) acc[r][q] = fmaf(av[r], bv[q], acc[r][q]);\n"
           "    }\n"
           "    __syncthreads();\n"
           "  }\n"
           "#pragma unroll\n"
           "  for (int r = 0; r < ${R}; ++r)\n"
           "#pragma unroll\n"
           "    for (int q = 0; q < ${R}; ++q) {\n"
           "      const int i = row0 + ty + 16 * r, j = col0 + tx + 16 * q;\n"
           "      if (i < ${M} && j < ${N}) {\n"
           "${STORE}"
           "      }\n"
           "    }\n",
           v),
      {{"LDA", intLit(g.lda)}, {"LDB", intLit(g.ldb)}, {"M", intLit(m)}, {"N", intLit(n)}, {"TILE", intLit(tile)},
       {"DEPTH", intLit(depth)}});
  std::vector<CudaArg> args = {g.a, g.b, g.c};
  std::string params = "const float* __restrict__ A, const float* __restrict__ B, float* C";
  if (!split && withBias) {
    params += ", const float* __restrict__ bias";
    args.push_back(epilogue->bias);
  }
  if (split) {
    params += ", float* __restrict__ part";
    args.push_back(NodeEmitter::scratch());
    em.needScratch(slices * batch * m * n * int64_t(sizeof(float)));
  }
  em.kernel(suffix, params, body, args, unsigned(tilesM * tilesN), unsigned(slices * batch));
  return v;
}

// A split product's second kernel: the slices' sums added in slice order, then alpha, beta
// and the epilogue.
void emitSliceSums(NodeEmitter& em, const CudaGemmCall& g, const SmallGemmPlan& plan, const CudaGemmEpilogue* epilogue,
                   const std::string& suffix, const Vars& v) {
  const int64_t m = g.m, n = g.n, batch = g.batch, slices = plan.slices;
  const bool withBias = epilogue && epilogue->bias.value;
  const std::string biasParam = withBias ? ", const float* __restrict__ bias" : "";
  auto withBiasArg = [&](std::vector<CudaArg> args) {
    if (withBias) args.push_back(epilogue->bias);
    return args;
  };
  {
    // The slices' sums added, then alpha, beta and the epilogue. Few slices: a thread per
    // output adds them in slice order. Many (the seed CNN's first dense layer at batch 64:
    // 85 slices of 64 terms): a block takes 32 outputs, each of its 8 warps every 8th slice
    // of them (a warp reads 32 consecutive partials), then the 8 sums added in warp order --
    // a fixed order, so the result is the same every run. (Unrolling the one-thread loop by
    // 8 measured slower on an H200: 3.4 -> 4.8 us at 85 slices.)
    Vars r = v;
    r.push_back({"FINISH", storeOutput(g, epilogue, "s", "    ")});
    r.push_back({"I", indexType(batch * m * n * slices)});
    const std::string locate = "    float* c = C + ${OFFC} + b * ${SC};\n"
                               "    const int j = (int)(ij % ${N});\n"
                               "    const long long at = (long long)(ij / ${N}) * ${LDC} + j;\n"
                               "${FINISH}";
    const std::string params = "const float* __restrict__ part, float* C" + biasParam;
    if (slices < kSliceWarps * 2) {
      em.elementwise(suffix + "_slices", params,
                     fill("    const ${I} b = i / (${M} * ${N}), ij = i % (${M} * ${N});\n"
                          "    float s = 0.0f;\n"
                          "    for (int slice = 0; slice < ${SLICES}; ++slice)\n"
                          "      s += part[(b * ${SLICES} + slice) * (${M} * ${N}) + ij];\n" +
                              locate,
                          r),
                     withBiasArg({NodeEmitter::scratch(), g.c}), batch * m * n);
    } else {
      r.push_back({"TOTAL", intLit(batch * m * n)});
      r.push_back({"WARPS", intLit(kSliceWarps)});
      em.kernel(suffix + "_slices", params,
                fill("  __shared__ float sums[${WARPS}][33];\n"
                     "  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32;\n"
                     "  const ${I} i = (${I})blockIdx.x * 32 + lane;\n"
                     "  const ${I} b = i / (${M} * ${N}), ij = i % (${M} * ${N});\n"
                     "  float w = 0.0f;\n"
                     "  if (i < ${TOTAL})\n"
                     "    for (int slice = warp; slice < ${SLICES}; slice += ${WARPS})\n"
                     "      w += part[(b * ${SLICES} + slice) * (${M} * ${N}) + ij];\n"
                     "  sums[warp][lane] = w;\n"
                     "  __syncthreads();\n"
                     "  if (warp == 0 && i < ${TOTAL}) {\n"
                     "    float s = sums[0][lane];\n"
                     "#pragma unroll\n"
                     "    for (int k = 1; k < ${WARPS}; ++k) s += sums[k][lane];\n" +
                         locate + "  }\n",
                     r),
                withBiasArg({NodeEmitter::scratch(), g.c}), unsigned((batch * m * n + 31) / 32));
    }
  }
}

}  // namespace

bool smallGemmApplies(const CudaCodegenOptions& options, const CudaGemmCall& call) {
  return planSmallGemm(options, call).has_value();
}

int64_t smallGemmScratchBytes(const CudaCodegenOptions& options, const CudaGemmCall& call) {
  const auto plan = planSmallGemm(options, call);
  if (!plan || plan->dot || plan->slices < 2) return 0;
  return plan->slices * call.batch * call.m * call.n * int64_t(sizeof(float));
}

bool emitSmallGemm(NodeEmitter& em, const CudaGemmCall& g, int ordinal, const CudaGemmEpilogue* epilogue) {
  const auto plan = planSmallGemm(em.options(), g);
  if (!plan) return false;
  if (epilogue && g.batch != 1) return false;  // the bias indexes one product's columns
  const int64_t m = g.m, n = g.n, k = g.k, batch = g.batch;
  const std::string base = ordinal ? fmt::format("gemm{}", ordinal) : "gemm";
  const bool withBias = epilogue && epilogue->bias.value;
  const std::string biasParam = withBias ? ", const float* __restrict__ bias" : "";
  auto withBiasArg = [&](std::vector<CudaArg> args) {
    if (withBias) args.push_back(epilogue->bias);
    return args;
  };
  if (plan->dot) {
    // Few outputs (batch-1 inference, a 10-class layer): a warp per output, its lanes taking
    // every 32nd term, then a butterfly sum -- one kernel, no tile mostly idle.
    Vars v = {{"M", intLit(m)},       {"N", intLit(n)},       {"K", intLit(k)},       {"LDA", intLit(g.lda)},
              {"LDB", intLit(g.ldb)}, {"LDC", intLit(g.ldc)}, {"OFFA", intLit(g.offsetA)}, {"OFFB", intLit(g.offsetB)},
              {"OFFC", intLit(g.offsetC)}, {"SA", intLit(g.strideA)}, {"SB", intLit(g.strideB)}, {"SC", intLit(g.strideC)},
              {"TOTAL", intLit(m * n * batch)},
              {"AT", g.transA ? "(long long)p * ${LDA} + i" : "(long long)i * ${LDA} + p"},
              {"BT", g.transB ? "(long long)j * ${LDB} + p" : "(long long)p * ${LDB} + j"},
              {"STORE", storeOutput(g, epilogue, "s", "    ")}};
    // Few outputs with a long inner dimension (kBlockDotOutputs, kBlockDotDepth): a block per
    // output instead, thread t taking terms t, t + 256, ...; each warp's butterfly sum, then
    // thread 0 adds the eight warps' sums in warp order (deterministic).
    const bool block = plan->blockDot;
    const std::string head =
        block ? "  const int w = (int)blockIdx.x, lane = (int)threadIdx.x & 31;\n"
              : "  const int w = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = (int)threadIdx.x & 31;\n"
                "  if (w >= ${TOTAL}) return;  // a whole warp leaves together\n";
    const std::string first = block ? "(int)threadIdx.x" : "lane", step = block ? "256" : "32";
    const std::string finish = block ? "  __shared__ float warpSums[8];\n"
                                       "  if (lane == 0) warpSums[threadIdx.x >> 5] = s;\n"
                                       "  __syncthreads();\n"
                                       "  if (threadIdx.x == 0) {\n"
                                       "    s = warpSums[0];\n"
                                       "#pragma unroll\n"
                                       "    for (int q = 1; q < 8; ++q) s += warpSums[q];\n"
                                     : "  if (lane == 0) {\n";
    const std::string body = fill(
        fill(head +
                 "  const int b = w / (${M} * ${N}), ij = w % (${M} * ${N}), i = ij / ${N}, j = ij % ${N};\n"
                 "  const float* a = A + ${OFFA} + (long long)b * ${SA};\n"
                 "  const float* bm = B + ${OFFB} + (long long)b * ${SB};\n"
                 "  float* c = C + ${OFFC} + (long long)b * ${SC};\n"
                 "  float s = 0.0f;\n"
                 "  for (int p = " + first + "; p < ${K}; p += " + step + ") s = fmaf(a[${AT}], bm[${BT}], s);\n"
                 "#pragma unroll\n"
                 "  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);\n" +
                 finish +
                 "    const long long at = (long long)i * ${LDC} + j;\n"
                 "${STORE}"
                 "  }\n",
             v),
        {{"LDA", intLit(g.lda)}, {"LDB", intLit(g.ldb)}});
    const int64_t outputs = m * n * batch;
    em.kernel(ordinal ? fmt::format("dot{}", ordinal) : "dot",
              "const float* __restrict__ A, const float* __restrict__ B, float* C" + biasParam, body,
              withBiasArg({g.a, g.b, g.c}), unsigned(block ? outputs : (outputs + kWarpsPerBlock - 1) / kWarpsPerBlock));
    return true;
  }
  const Vars v = emitTiles(em, g, *plan, epilogue, base);
  if (plan->slices > 1) emitSliceSums(em, g, *plan, epilogue, base, v);
  return true;
}

bool emitSmallMlpRows(NodeEmitter& em, const CudaGemmCall& first, const CudaGemmEpilogue& hidden, CudaArg w2, CudaArg b2,
                      int64_t outputs, CudaArg y) {
  const auto plan = planSmallGemm(em.options(), first);
  const int64_t rows = first.m, width = first.n;
  if (!plan || plan->dot || plan->slices < 2 * kSliceWarps || first.batch != 1 || first.alpha != 1 || first.beta != 0 ||
      !hidden.bias.value || width > kMlpRowsHidden || outputs < 1 || rows > (int64_t(1) << 31) - 1)
    return false;
  const Vars v = emitTiles(em, first, *plan, nullptr, "gemm");
  // A block a row: its warps add the row's slices as emitSliceSums's block form does (warp w
  // every kSliceWarps-th slice, then the warps' sums in warp order), the bias and activation
  // make the hidden row in shared memory, then warp w computes outputs w, w + kSliceWarps, ...
  // as the warp-per-output product does (lane p every 32nd term, a butterfly sum, the bias).
  // A warp's slices for a column are all loaded before the first is added (its loads in flight
  // together; the adds stay in slice order), and its second-layer weights are loaded with them
  // when they fit in registers (at most 16 a thread).
  const int64_t sliceLoads = (plan->slices + kSliceWarps - 1) / kSliceWarps;  // a warp's slices
  const int64_t chunks = (width + 31) / 32;                                   // a lane's columns
  const int64_t outsPerWarp = (outputs + kSliceWarps - 1) / kSliceWarps;
  const bool prefetch = outsPerWarp * chunks <= 16;
  Vars r = v;
  r.push_back({"H", intLit(width)});
  r.push_back({"OUTS", intLit(outputs)});
  r.push_back({"WARPS", intLit(kSliceWarps)});
  r.push_back({"SQ", intLit(sliceLoads)});
  r.push_back({"HQ", intLit(chunks)});
  r.push_back({"OQ", intLit(outsPerWarp)});
  r.push_back({"ACT", activationCode(hidden.activation, "float", "e0", "e1", "    ")});
  r.push_back({"UNROLL", chunks * sliceLoads <= 64 ? "#pragma unroll\n" : "#pragma unroll 1\n"});
  r.push_back({"WLOAD", prefetch ? "  float wv[${OQ}][${HQ}];\n"
                                   "#pragma unroll\n"
                                   "  for (int q = 0; q < ${OQ}; ++q)\n"
                                   "#pragma unroll\n"
                                   "    for (int c = 0; c < ${HQ}; ++c) {\n"
                                   "      const int o = warp + q * ${WARPS}, p = lane + 32 * c;\n"
                                   "      wv[q][c] = o < ${OUTS} && p < ${H} ? w2[(long long)o * ${H} + p] : 0.0f;\n"
                                   "    }\n"
                                 : ""});
  r.push_back({"WTERM", prefetch ? "wv[q][c]" : "w2[(long long)o * ${H} + p]"});
  r.push_back({"OLOOP", prefetch ? "#pragma unroll\n  for (int q = 0; q < ${OQ}; ++q) {\n"
                                   "    const int o = warp + q * ${WARPS};\n"
                                   "    if (o >= ${OUTS}) break;\n"
                                 : "  for (int o = warp, q = 0; o < ${OUTS}; o += ${WARPS}, ++q) {\n"});
  em.kernel("rows",
            "const float* __restrict__ part, const float* __restrict__ b1, const float* __restrict__ w2, "
            "const float* __restrict__ b2, float* __restrict__ y",
            fill(fill("  __shared__ float sums[${WARPS}][${H}];\n"
                      "  __shared__ float hid[${H}];\n"
                      "  const int lane = (int)threadIdx.x % 32, warp = (int)threadIdx.x / 32;\n"
                      "  const long long row = (long long)blockIdx.x;\n"
                      "${WLOAD}"
                      "${UNROLL}"
                      "  for (int c = 0; c < ${HQ}; ++c) {\n"
                      "    const int j = lane + 32 * c;\n"
                      "    float v[${SQ}];\n"
                      "#pragma unroll\n"
                      "    for (int q = 0; q < ${SQ}; ++q) {\n"
                      "      const int slice = warp + q * ${WARPS};\n"
                      "      v[q] = slice < ${SLICES} && j < ${H} ? part[(long long)slice * (${M} * ${N}) + row * ${H} + j] : 0.0f;\n"
                      "    }\n"
                      "    float w = 0.0f;\n"
                      "#pragma unroll\n"
                      "    for (int q = 0; q < ${SQ}; ++q)\n"
                      "      if (warp + q * ${WARPS} < ${SLICES}) w += v[q];\n"
                      "    if (j < ${H}) sums[warp][j] = w;\n"
                      "  }\n"
                      "  __syncthreads();\n"
                      "  for (int j = (int)threadIdx.x; j < ${H}; j += ${WARPS} * 32) {\n"
                      "    float s = sums[0][j];\n"
                      "#pragma unroll\n"
                      "    for (int k = 1; k < ${WARPS}; ++k) s += sums[k][j];\n"
                      "    const float e0 = s + b1[j];\n"
                      "    float e1;\n"
                      "${ACT}"
                      "    hid[j] = e1;\n"
                      "  }\n"
                      "  __syncthreads();\n"
                      "${OLOOP}"
                      "    float s = 0.0f;\n"
                      "#pragma unroll\n"
                      "    for (int c = 0; c < ${HQ}; ++c) {\n"
                      "      const int p = lane + 32 * c;\n"
                      "      if (p < ${H}) s = fmaf(hid[p], ${WTERM}, s);\n"
                      "    }\n"
                      "#pragma unroll\n"
                      "    for (int q2 = 16; q2 > 0; q2 >>= 1) s += __shfl_xor_sync(0xffffffffu, s, q2);\n"
                      "    if (lane == 0) y[row * ${OUTS} + o] = s + b2[o];\n"
                      "  }\n",
                      r),
                 r),
            {NodeEmitter::scratch(), hidden.bias, w2, b2, y}, unsigned(rows));
  return true;
}

}  // namespace shoal::cudagen
