// The implicit GEMM's ways of multiplying a stage: mma.sync, exact fp32 on the CUDA cores, and
// sm_90a's wgmma in TF32 and 16-bit forms (cuda_igemm.h; the overview is cuda_kernels_igemm.cpp's).
#include <fmt/format.h>

#include "codegen/cuda_igemm.h"

namespace shoal::cudagen::igemm {

namespace {

// This lane's ldmatrix addresses in a stage, in bytes (see mmaSteps), computed before the loop.
// TF32: A's four 8 x 4 blocks are rows 0-7 / 8-15 by columns c..c+3 / c+4..c+7 of a 16-row
// slab, B's blocks two 8-row slabs (j, j + 1) by the same two column blocks.
constexpr const char* tf32FragmentAddresses =
    "  const int swl = ((((lane & 7) >> 1) & 3) << 2);\n"
    "  const int arow0 = wm * 64 + (lane & 7) + ((lane >> 3) & 1) * 8, acol0 = ((lane >> 4) * 4) ^ swl;\n"
    "  const int brow0 = ${BM} + wn * 32 + (lane >> 4) * 8 + (lane & 7), bcol0 = (((lane >> 3) & 1) * 4) ^ swl;\n"
    "  const int aOff0 = (arow0 * 16 + acol0) * 4, aOff1 = (arow0 * 16 + (acol0 ^ 8)) * 4;\n"
    "  const int bOff0 = (brow0 * 16 + bcol0) * 4, bOff1 = (brow0 * 16 + (bcol0 ^ 8)) * 4;\n";
// 16-bit: A's blocks are rows 0-7 by columns c..c+3, c+4..c+7, then rows 8-15 the same; B's
// one 8-row slab by all four column blocks.
constexpr const char* sixteenBitFragmentAddresses =
    "  const int swl = ((((lane & 7) >> 1) & 3) << 2);\n"
    "  const int arow0 = wm * 64 + (lane & 7) + ((lane >> 4) & 1) * 8, acol0 = (((lane >> 3) & 1) * 4) ^ swl;\n"
    "  const int brow0 = ${BM} + wn * 32 + (lane & 7), bcol0 = ((lane >> 3) * 4) ^ swl;\n"
    "  const int aOff0 = (arow0 * 16 + acol0) * 4, aOff1 = (arow0 * 16 + (acol0 ^ 8)) * 4;\n"
    "  const int bOff0 = (brow0 * 16 + bcol0) * 4;\n";

// The warp's products over the 16 reduction steps of stage `cur`. `bRounded`: B's elements are
// TF32 already (rounded when packed).
std::string mmaSteps(TensorCoreMath m, bool bRounded) {
  const Vars v = {{"BF16", m == TensorCoreMath::Bf16 ? "true" : "false"},
                  {"ROUND_B", bRounded ? "" : "        for (int q = 0; q < 4; ++q) r[q] = shoal_to_tf32(__uint_as_float(r[q]));\n"}};
  // Every fragment is an ldmatrix.x4 (four 8 x 4 blocks of 32-bit words: lane l addresses row
  // l & 7 of block l >> 3 and receives word l & 3 of row l >> 2 of each block). The rows'
  // swizzle depends only on l & 7 (slabs start at multiples of 8), so a lane's addresses are
  // fixed but for the stage: A's slab i is 16 rows (1024 bytes) further, B's 8-row slab j 512
  // bytes, and reduction columns 8..15 flip bit 3 of the swizzled column.
  if (m == TensorCoreMath::Tf32 || m == TensorCoreMath::Off)
    return fill("    const shoal_saddr st = sbase + cur * (kStageFloats * 4);\n"
                "#pragma unroll\n"
                "    for (int ks = 0; ks < 2; ++ks) {\n"
                "      unsigned a[4][4], b[4][2];\n"
                "      const shoal_saddr ap = st + (ks ? aOff1 : aOff0), bp = st + (ks ? bOff1 : bOff0);\n"
                "#pragma unroll\n"
                "      for (int i = 0; i < 4; ++i) {\n"
                "        shoal_ldmatrix_x4(a[i], ap + i * 1024);\n"
                "        for (int q = 0; q < 4; ++q) a[i][q] = shoal_to_tf32(__uint_as_float(a[i][q]));\n"
                "      }\n"
                "#pragma unroll\n"
                "      for (int j = 0; j < 4; j += 2) {\n"
                "        unsigned r[4];\n"
                "        shoal_ldmatrix_x4(r, bp + j * 512);\n"
                "${ROUND_B}"
                "        b[j][0] = r[0];\n"
                "        b[j][1] = r[1];\n"
                "        b[j + 1][0] = r[2];\n"
                "        b[j + 1][1] = r[3];\n"
                "      }\n"
                "#pragma unroll\n"
                "      for (int i = 0; i < 4; ++i)\n"
                "#pragma unroll\n"
                "        for (int j = 0; j < 4; ++j) shoal_warp_mma_tf32(acc[i][j], a[i], b[j]);\n"
                "    }\n",
                v);
  // 16-bit formats (m16n8k16): a fragment register holds reduction slots 2t and 2t + 1 (and
  // 2t + 8, 2t + 9). The slots are mapped onto the stage's columns so that ldmatrix delivers
  // each pair as two words: slot 2t <- column t, 2t + 1 <- t + 4, 2t + 8 <- t + 8, 2t + 9 <-
  // t + 12, the same for A and B (the sum over the 16 steps is the same sum, in another order);
  // the two words are then rounded and packed into one register.
  return fill("    const shoal_saddr st = sbase + cur * (kStageFloats * 4);\n"
              "    {\n"
              "      unsigned b[4][2];\n"
              "#pragma unroll\n"
              "      for (int j = 0; j < 4; ++j) {\n"
              "        unsigned r[4];\n"
              "        shoal_ldmatrix_x4(r, st + bOff0 + j * 512);  // (g, t), (g, t+4), (g, t+8), (g, t+12)\n"
              "        b[j][0] = shoal_pack_words(r[0], r[1], ${BF16});\n"
              "        b[j][1] = shoal_pack_words(r[2], r[3], ${BF16});\n"
              "      }\n"
              "#pragma unroll\n"
              "      for (int i = 0; i < 4; ++i) {\n"
              "        unsigned lo[4], hi[4], a[4];\n"
              "        shoal_ldmatrix_x4(lo, st + aOff0 + i * 1024);  // (g, t), (g, t+4), (g+8, t), (g+8, t+4)\n"
              "        shoal_ldmatrix_x4(hi, st + aOff1 + i * 1024);  // the same 8 columns on\n"
              "        a[0] = shoal_pack_words(lo[0], lo[1], ${BF16});\n"
              "        a[1] = shoal_pack_words(lo[2], lo[3], ${BF16});\n"
              "        a[2] = shoal_pack_words(hi[0], hi[1], ${BF16});\n"
              "        a[3] = shoal_pack_words(hi[2], hi[3], ${BF16});\n"
              "#pragma unroll\n"
              "        for (int j = 0; j < 4; ++j) shoal_warp_mma_16bit(acc[i][j], a, b[j], ${BF16});\n"
              "      }\n"
              "    }\n",
              v);
}






// The warpgroup's products over stage `cur` (CudaCodegenOptions::wgmma): for each 8 of the 16
// reduction steps, one m64nBNk8 per 64 of its rows (BM / 2 of them), A's rows from the stage's
// row wg * BM / 2, B's (the tile's columns) after the BM rows of A.
std::string wgmmaSteps(const Tile& tile) {
  return fmt::format("    const shoal_saddr st = sbase + cur * (kStageFloats * 4);\n"
                     "    shoal_wgmma_fence();\n"
                     "#pragma unroll\n"
                     "    for (int ks = 0; ks < 2; ++ks) {{\n"
                     "      const shoal_wgmma_desc bd = shoal_wgmma_desc_sw64(st + {0} * 64 + ks * 32);\n"
                     "#pragma unroll\n"
                     "      for (int i = 0; i < {1}; ++i)\n"
                     "        shoal_wgmma_tf32_n{2}(acc[i], shoal_wgmma_desc_sw64(st + (wg * {3} + i * 64) * 64 + ks * 32), bd);\n"
                     "    }}\n"
                     "    shoal_wgmma_commit();\n",
                     tile.bm, tile.bm / 128, tile.bn, tile.bm / 2);
}

}  // namespace

// mma.sync: 2 x 4 (or 4 x 2) warps of 64 x 32, fragments through ldmatrix, converted to the
// format as they are read.
MultiplyPath mmaSyncPath(const Tile& tile, TensorCoreMath math, bool bRounded) {
  const bool sixteenBit = math == TensorCoreMath::Bf16 || math == TensorCoreMath::Fp16;
  MultiplyPath p;
  p.warpRoles = "  const int wm = warp % ${WARPS_M}, wn = warp / ${WARPS_M}, g = lane >> 2, t = lane & 3;\n";
  p.fragmentAddresses = fill(sixteenBit ? sixteenBitFragmentAddresses : tf32FragmentAddresses, {{"BM", std::to_string(tile.bm)}});
  p.accumulators = "  float acc[4][4][4];\n"
                   "#pragma unroll\n"
                   "  for (int i = 0; i < 4; ++i)\n"
                   "#pragma unroll\n"
                   "    for (int j = 0; j < 4; ++j)\n"
                   "#pragma unroll\n"
                   "      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;\n";
  p.steps = mmaSteps(math, bRounded);
  p.epilogueLoop = "#pragma unroll\n"
                   "  for (int i = 0; i < 4; ++i)\n"
                   "#pragma unroll\n"
                   "    for (int j = 0; j < 4; ++j)\n"
                   "#pragma unroll\n"
                   "      for (int q = 0; q < 4; ++q) {\n"
                   "        const ${I} m = m0 + wm * 64 + i * 16 + g + (q >= 2 ? 8 : 0);\n"
                   "        const int o = o0 + wn * 32 + j * 8 + 2 * t + (q & 1);\n"
                   "        if (m >= ${M} || o >= ${N}) continue;\n"
                   "        const float s = acc[i][j][q];\n";
  return p;
}

// Exact fp32 on the CUDA cores (ImplicitGemm::math Off): no tensor cores, each output the fp32
// FMAs of its products in reduction order. The block's threads are rt row threads by 256 / rt
// column threads (rt 32 in 256 x 64, else 16); thread (tr, tc) holds rows tr + rt i and columns
// tc + (256 / rt) j of the tile: 8 x 8 accumulators in 128 x 128 and 256 x 64, 8 x 4 in kSimt's
// 128 x 64 (two blocks an SM). A warp's lanes are 8 rows by 4 columns (tr = lane % 8 + 8 (warp %
// (rt / 8)), tc = lane / 8 + 4 (warp / (rt / 8))). A stage's 16 steps are read 4 at a time, one
// 16-byte shared load per row and per column: chunk c of row r sits at chunk c ^ ((r >> 1) & 3)
// (the copies' swizzle), so a warp's 8 rows (or 4 columns) hit different bank quads. A 16-byte
// load of a warp costs 4 shared-memory wavefronts however many lanes share an address (each
// serves 128 bytes of the lanes' registers), so what bounds the kernel is the floats a thread
// loads a multiply-add: (8 + 8) / 64 = 0.25 for 8 x 8 -- at the SM's 4 warp-FMAs a clock, one
// wavefront a clock, the pipe's rate -- and 0.375 for 8 x 4 (Nsight Compute on an H200: kSimt's
// shared pipe 74 % busy at 52 % of the FMA pipe). Per 4 steps a thread does ri x cj x 4 FMAs for
// ri + cj loads. The next 4 steps' B columns are loaded while these 4 multiply (two register sets):
// waiting on shared loads was 30 % of the warps' stalls without it (Nsight Compute, ResNet-18's
// layer 2 at batch 32 on an H200, one block of 8 warps an SM). The loads are plain C++ ones of
// the dynamic shared array (the compiler schedules them; the cp.async copies are ordered by the
// wait and barrier before a stage is read), not volatile asm.
MultiplyPath simtPath(const Tile& tile) {
  const int rt = tile.bm == kTall.bm && tile.bn == kTall.bn ? 32 : 16, ct = 256 / rt;
  const int ri = tile.bm / rt, cj = tile.bn / ct;
  MultiplyPath p;
  p.warpRoles = fmt::format(
      "  const int tr = (lane & 7) + 8 * (warp % {0}), tc = (lane >> 3) + 4 * (warp / {0});  // first row, column\n",
      rt / 8);
  p.fragmentAddresses = fmt::format(
      "  const int aOff = tr * 64, bOff = ({} + tc) * 64, aSw = (tr >> 1) & 3, bSw = (tc >> 1) & 3;\n", tile.bm);
  p.accumulators = fmt::format(
      "  float acc[{0}][{1}];\n"
      "#pragma unroll\n"
      "  for (int i = 0; i < {0}; ++i)\n"
      "#pragma unroll\n"
      "    for (int j = 0; j < {1}; ++j) acc[i][j] = 0.0f;\n",
      ri, cj);
  p.steps = fmt::format(
      "    const char* st = reinterpret_cast<const char*>(smem) + cur * (kStageFloats * 4);\n"
      "    float4 b[2][{1}];\n"
      "#pragma unroll\n"
      "    for (int j = 0; j < {1}; ++j) b[0][j] = *reinterpret_cast<const float4*>(st + bOff + j * {3} + 16 * bSw);\n"
      "#pragma unroll\n"
      "    for (int kc = 0; kc < 4; ++kc) {{\n"
      "      if (kc < 3) {{\n"
      "#pragma unroll\n"
      "        for (int j = 0; j < {1}; ++j)\n"
      "          b[(kc + 1) & 1][j] = *reinterpret_cast<const float4*>(st + bOff + j * {3} + 16 * ((kc + 1) ^ bSw));\n"
      "      }}\n"
      "#pragma unroll\n"
      "      for (int i = 0; i < {0}; ++i) {{\n"
      "        const float4 a = *reinterpret_cast<const float4*>(st + aOff + i * {2} + 16 * (kc ^ aSw));\n"
      "#pragma unroll\n"
      "        for (int j = 0; j < {1}; ++j) {{\n"
      "          const float4 bj = b[kc & 1][j];\n"
      "          acc[i][j] = fmaf(a.x, bj.x, acc[i][j]);\n"
      "          acc[i][j] = fmaf(a.y, bj.y, acc[i][j]);\n"
      "          acc[i][j] = fmaf(a.z, bj.z, acc[i][j]);\n"
      "          acc[i][j] = fmaf(a.w, bj.w, acc[i][j]);\n"
      "        }}\n"
      "      }}\n"
      "    }}\n",
      ri, cj, rt * 64, ct * 64);
  p.epilogueLoop = fmt::format(
      "#pragma unroll\n"
      "  for (int i = 0; i < {0}; ++i)\n"
      "#pragma unroll\n"
      "    for (int j = 0; j < {1}; ++j) {{\n"
      "        const ${{I}} m = m0 + tr + {2} * i;\n"
      "        const int o = o0 + tc + {3} * j;\n"
      "        if (m >= ${{M}} || o >= ${{N}}) continue;\n"
      "        const float s = acc[i][j];\n",
      ri, cj, rt, ct);
  return p;
}
// shoal_wgmma_hold over every accumulator, indented by `ind`.
std::string holdAccumulators(const Tile& tile, const std::string& ind) {
  return fmt::format("#pragma unroll\n"
                     "{0}for (int i = 0; i < {1}; ++i)\n"
                     "#pragma unroll\n"
                     "{0}  for (int j = 0; j < {2}; ++j) shoal_wgmma_hold(acc[i][j]);\n",
                     ind, tile.bm / 128, tile.bn / 2);
}

// wgmma (TF32 on sm_90a): two warpgroups of BM / 2 rows by all BN columns, each as BM / 128
// products of m64nBN; a warp holds 16 rows of each. Before a step's barrier the copies' writes
// are handed to the tensor cores' proxy and the previous step's products are waited for (they
// read the stage the barrier lets the ring refill).
MultiplyPath wgmmaPath(const Tile& tile) {
  const int products = tile.bm / 128, regs = tile.bn / 2;
  MultiplyPath p;
  p.warpRoles = "  const int wg = warp >> 2, w4 = warp & 3, g = lane >> 2, t = lane & 3;  // warpgroup, its warp\n";
  p.accumulators = fmt::format("  float acc[{0}][{1}];\n"
                               "#pragma unroll\n"
                               "  for (int i = 0; i < {0}; ++i)\n"
                               "#pragma unroll\n"
                               "    for (int j = 0; j < {1}; ++j) acc[i][j] = 0.0f;\n",
                               products, regs);
  p.stageReady = "    shoal_fence_proxy_async();\n    shoal_wgmma_wait<0>();\n" + holdAccumulators(tile, "    ");
  p.steps = wgmmaSteps(tile);
  p.drain = "  shoal_wgmma_wait<0>();\n" + holdAccumulators(tile, "  ");
  // A thread's rows (g and g + 8 of its warp's 16 in each product) outermost: what the
  // epilogue computes from the row alone (epilogueRow: a pixel's index arithmetic), once a row.
  p.rowsOuter = true;
  p.epilogueLoop = fmt::format(
      "#pragma unroll\n"
      "  for (int i = 0; i < {0}; ++i)\n"
      "#pragma unroll\n"
      "    for (int h = 0; h < 2; ++h) {{\n"
      "      const ${{I}} m = m0 + wg * {2} + i * 64 + w4 * 16 + g + h * 8;\n"
      "      if (m >= ${{M}}) continue;\n"
      "${{EPILOGUE_ROW}}"
      "#pragma unroll\n"
      "    for (int j = 0; j < {1}; ++j)\n"
      "#pragma unroll\n"
      "      for (int c = 0; c < 2; ++c) {{\n"
      "        const int o = o0 + j * 8 + 2 * t + c;\n"
      "        if (o >= ${{N}}) continue;\n"
      "        const float s = acc[i][4 * j + 2 * h + c];\n",
      products, tile.bn / 8, tile.bm / 2);
  p.epilogueEnd = "    }\n";
  return p;
}

// wgmma16 (bfloat16 / float16 on sm_90a, B packed): the warpgroups and accumulators of
// wgmmaPath; each warp converts its 16 rows of each m64 product from the fp32 stage into
// mma.sync's m16n8k16 A fragment (two ldmatrix, as mmaSteps), and wgmma m64nBNk16 takes A from
// those registers and B from the stage's 16-bit rows.
MultiplyPath wgmma16Path(const Tile& tile, TensorCoreMath math) {
  MultiplyPath p = wgmmaPath(tile);
  const int products = tile.bm / 128;
  const std::string bf16 = math == TensorCoreMath::Bf16 ? "true" : "false";
  p.fragmentAddresses = fmt::format(
      "  const int swl = ((((lane & 7) >> 1) & 3) << 2);\n"
      "  const int arow0 = wg * {0} + w4 * 16 + (lane & 7) + ((lane >> 4) & 1) * 8, acol0 = (((lane >> 3) & 1) * 4) ^ swl;\n"
      "  const int aOff0 = (arow0 * 16 + acol0) * 4, aOff1 = (arow0 * 16 + (acol0 ^ 8)) * 4;\n",
      tile.bm / 2);
  p.steps = fmt::format("    const shoal_saddr st = sbase + cur * (kStageFloats * 4);\n"
                        "    const shoal_wgmma_desc bd = shoal_wgmma_desc_sw32(st + {0} * 64);\n"
                        "    unsigned a[{1}][4];\n"
                        "#pragma unroll\n"
                        "    for (int i = 0; i < {1}; ++i) {{\n"
                        "      unsigned lo[4], hi[4];\n"
                        "      shoal_ldmatrix_x4(lo, st + aOff0 + i * 4096);  // (g, t), (g, t+4), (g+8, t), (g+8, t+4)\n"
                        "      shoal_ldmatrix_x4(hi, st + aOff1 + i * 4096);  // the same 8 columns on\n"
                        "      a[i][0] = shoal_pack_words(lo[0], lo[1], {3});\n"
                        "      a[i][1] = shoal_pack_words(lo[2], lo[3], {3});\n"
                        "      a[i][2] = shoal_pack_words(hi[0], hi[1], {3});\n"
                        "      a[i][3] = shoal_pack_words(hi[2], hi[3], {3});\n"
                        "    }}\n"
                        "    shoal_wgmma_fence();\n"
                        "#pragma unroll\n"
                        "    for (int i = 0; i < {1}; ++i) shoal_wgmma_16bit_n{2}(acc[i], a[i], bd, {3});\n"
                        "    shoal_wgmma_commit();\n",
                        tile.bm, products, tile.bn, bf16);
  return p;
}

// aHalf64's and halfMN's products (bfloat16 / float16 on sm_90a, both operands from the
// stage): the warpgroups and accumulators of wgmmaPath (BM 128: one m64 product a warpgroup);
// each 64-step stage is four m64nBNk16 products of the warpgroup's 64 rows of A and B's rows,
// read through 128-byte-swizzled descriptors: K-major (aHalf64; the 16-step products 32 bytes
// apart in the rows) or MN-major (halfMN, `mn`: wgmma's transposed form, shoal_wgmma_desc_mn128;
// a warpgroup's A is its 64-row atom, B's atoms 8 KB apart; 16 steps 2048 bytes on).
MultiplyPath halfPath(const Tile& logical, TensorCoreMath math, bool mn) {
  // kHalfSwapped multiplies as kHalfWide (B's 128 rows the m64 operands, A's 256 the n256), its
  // fragments' rows being columns of the product and their columns rows.
  const bool swapped = isHalfSwapped(logical);
  const Tile tile = swapped ? kHalfWide : logical;
  MultiplyPath p = wgmmaPath(tile);
  if (swapped) {
    p.rowsOuter = false;
    p.epilogueEnd.clear();
    p.epilogueLoop =
        "#pragma unroll\n"
        "  for (int j = 0; j < 32; ++j)\n"
        "#pragma unroll\n"
        "      for (int q = 0; q < 4; ++q) {\n"
        "        const int o = o0 + wg * 64 + w4 * 16 + g + (q >= 2 ? 8 : 0);\n"
        "        const ${I} m = m0 + j * 8 + 2 * t + (q & 1);\n"
        "        if (m >= ${M} || o >= ${N}) continue;\n"
        "        const float s = acc[0][4 * j + q];\n";
  }
  // The warpgroup's A and the block's B at stage 0, built once; a step adds its stage's offset,
  // each 16 steps 32 bytes (K-major) or 2048 (MN-major) more.
  auto desc = [&](const std::string& at) {
    return mn ? "shoal_wgmma_desc_mn128(sbase + " + at + ", 8192)" : "shoal_wgmma_desc_sw128(sbase + " + at + ")";
  };
  p.fragmentAddresses = fmt::format("  const shoal_wgmma_desc adesc = {}, bdesc = {};\n", desc("wg * 8192"),
                                    desc(std::to_string(tile.bm * 128)));
  // TF32 (CudaCodegenOptions::tf32ChannelsLast): a 128-byte row is 32 fp32 steps, four
  // m64nNk8 products 32 bytes apart, as the 16-bit ones' m64nNk16.
  const std::string product =
      math == TensorCoreMath::Tf32
          ? fmt::format(
                "shoal_wgmma_tf32_n{}(acc[0], shoal_wgmma_desc_add(ad, ks * 32), shoal_wgmma_desc_add(bd, ks * "
                "32))",
                tile.bn)
          : fmt::format(
                "shoal_wgmma_ss16{0}_n{1}(acc[0], shoal_wgmma_desc_add(ad, ks * {2}), shoal_wgmma_desc_add(bd, ks "
                "* {2}), {3})",
                mn ? "mn" : "", tile.bn, mn ? 2048 : 32, math == TensorCoreMath::Bf16 ? "true" : "false");
  p.steps = fmt::format(
      "    const unsigned so = cur * (kStageFloats * 4);\n"
      "    const shoal_wgmma_desc ad = shoal_wgmma_desc_add(adesc, so), bd = shoal_wgmma_desc_add(bdesc, so);\n"
      "    shoal_wgmma_fence();\n"
      "#pragma unroll\n"
      "    for (int ks = 0; ks < 4; ++ks)\n"
      "      {};\n"
      "    shoal_wgmma_commit();\n",
      product);
  return p;
}

}  // namespace shoal::cudagen::igemm
