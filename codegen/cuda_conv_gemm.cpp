// CUDA codegen, convolutions as implicit GEMMs (on tensor cores, or exact fp32 on the CUDA
// cores): the forward, the data gradient (and conv_transpose2d) and the weight gradient each
// state their gathers and epilogue; emitImplicitGemm (cuda_kernels_igemm.cpp) tiles.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>

#include "codegen/cuda_conv.h"
#include "codegen/cuda_emit.h"

namespace shoal::cudagen::conv {

namespace {

// conv vars with ${I} kept for emitImplicitGemm to fill.
Vars tcVars(const NodeEmitter& em, const ConvGeom& g) {
  Vars v = convVars(em, g);
  for (auto& [k, val] : v)
    if (k == "I") val = "${I}";
  v.push_back({"CKK", intLit(g.c * g.kh * g.kw)});
  v.push_back({"OKK", intLit(g.o * g.kh * g.kw)});
  return v;
}

// The taps of one axis that reach the input pixels of phase p (those at p + s * i'): the
// window positions ki * d - pad + s * oy that land on them are ki = first + j * step
// (j < count), at output row oy = i' + offset - j * skip. Stride 1 has one phase and every tap.
struct PhaseTaps {
  int64_t pixels = 0;  // input pixels of the phase along the axis
  int64_t first = 0, count = 0, step = 1, offset = 0, skip = 0;
};

// Where a channels-last copy starts in its argument, in bytes (a view of scratch, or a converted block).
int64_t copyOffset(const ChannelsLastCopy& copy) { return copy.inScratch() ? copy.at * int64_t(sizeof(float)) : 0; }
// The copy engine's view of `copy`, an [n, h, w, c] channels-last copy (CudaCodegenOptions::halfTma);
// its corners are the caller's.
ImplicitGemm::Im2col im2colOver(const ChannelsLastCopy& copy, int64_t n, int64_t c, int64_t h, int64_t w) {
  ImplicitGemm::Im2col t;
  t.copy = copy.arg;
  t.offset = copyOffset(copy);
  t.bytes = copy.bytes;
  t.n = n, t.c = c, t.h = h, t.w = w;
  return t;
}
// Corners at a convolution's output pixels (its forward's and weight gradient's): from (-pt, -pl)
// by the strides, each tap an offset of up to the dilated kernel's extent.
ImplicitGemm::Im2col outputCorners(ImplicitGemm::Im2col t, const ConvGeom& g) {
  t.cornersH = g.oh, t.cornersW = g.ow;
  t.lowerH = int(-g.pt), t.lowerW = int(-g.pl), t.sh = int(g.sh), t.sw = int(g.sw);
  t.spanH = int((g.kh - 1) * g.dh), t.spanW = int((g.kw - 1) * g.dw);
  return t;
}

PhaseTaps phaseTaps(int64_t p, int64_t s, int64_t pad, int64_t d, int64_t k, int64_t in) {
  PhaseTaps t;
  t.pixels = p < in ? (in - p + s - 1) / s : 0;
  t.step = s / std::gcd(s, d);  // the taps meeting a pixel repeat every s / gcd(s, d)
  for (int64_t ki = 0; ki < std::min(k, t.step); ++ki)
    if (((p + pad - ki * d) % s + s) % s == 0) {
      t.first = ki;
      t.count = (k - ki + t.step - 1) / t.step;
      t.offset = (p + pad - ki * d) / s;  // exact
      t.skip = t.step * d / s;
      break;
    }
  return t;
}

// The stem's 16-bit form (CudaCodegenOptions::halfStem): at most 4 channels, kernel rows of at
// most 8 taps at an even column stride, no column dilation. A first kernel converts x into
// scratch as [n, hp, wp, 4] values of the format, x's padding written as zeros: padded pixel
// (yp, xp) is x's (yp - PT, xp - PL), and output pixel (oy, ox)'s kernel row r starts at padded
// (oy SH + r DH, ox SW) -- even, and wp is even, so its 8 pixels x 4 channels are 64 bytes at a
// 16-byte aligned address, inside the copy for every window (hp, wp cover them all). Two kernel
// rows make a 128-byte row of the product's stage: chunks 0-3 the first's 64 bytes, 4-7 the
// second's; the rows (kernel row, column < 8, channel < 4), the weights zero past KW, C and KH
// (KH rounded up to even rows).
// TF32 (wgmma's m64nNk8) the same with fp32 values: a pixel's kernel row is 8 x 4 fp32 = 128
// bytes, a whole stage row of 32 steps (aligned whatever the stride), one kernel row a stage.
struct StemCopy {
  int bytes;               // a value's: 2 (bfloat16, float16) or 4 (fp32, for TF32)
  int64_t rows;            // kernel rows a stage: 2 (16-bit: 64 steps) or 1 (TF32: 32)
  int64_t stages, hp, wp;  // the reduction's stages; the copy's rows and columns
  int64_t steps() const { return rows * 32; }
};
std::optional<StemCopy> stemCopy(const NodeEmitter& em, const ConvGeom& g) {
  const TensorCoreMath math = em.options().tensorCores;
  const bool sixteenBit = math == TensorCoreMath::Bf16 || math == TensorCoreMath::Fp16;
  StemCopy s;
  s.bytes = sixteenBit ? 2 : 4;
  s.rows = sixteenBit ? 2 : 1;
  s.stages = (g.kh + s.rows - 1) / s.rows;
  s.hp = std::max(g.pt + g.h, (g.oh - 1) * g.sh + (s.rows * s.stages - 1) * g.dh + 1);
  s.wp = (std::max(g.pl + g.w, (g.ow - 1) * g.sw + 8) + 1) / 2 * 2;
  const bool form = sixteenBit ? channelsLastCopies(em, 64) && g.sw % 2 == 0 : math == TensorCoreMath::Tf32;
  if (!em.options().halfStem || !em.options().wgmma || !form || g.groups != 1 || g.c > 4 || g.kw > 8 || g.dw != 1 ||
      s.stages > 64 || (em.I() == "int" && indexType(g.n * s.hp * s.wp * 4) != "int"))
    return std::nullopt;
  return s;
}
// Emits the kernel that writes x's padded copy into scratch at float `at`; returns the floats it
// takes. Sets HP, WP, XS_AT and TO16 in v.
int64_t emitStemCopy(NodeEmitter& em, const ConvGeom& g, const StemCopy& stem, const CudaArg& x, int64_t at, Vars& v) {
  const int64_t padded = g.n * stem.hp * stem.wp;  // pixels
  setVar(v, "HP", intLit(stem.hp));
  setVar(v, "WP", intLit(stem.wp));
  setVar(v, "XS_AT", intLit(at));
  setVar(v, "TO16", em.options().tensorCores == TensorCoreMath::Bf16 ? "shoal_f32_to_bf16" : "shoal_f32_to_f16");
  if (stem.bytes == 4) {
    em.elementwise(
        "stem32", "const float* __restrict__ x, float* __restrict__ scratch",
        fill(fill("    const ${I} xp = i % ${WP}, yp = i / ${WP} % ${HP}, n = i / ((${I})${WP} * ${HP});\n"
                  "    const int iy = (int)yp - ${PT}, ix = (int)xp - ${PL};\n"
                  "    float q[4] = {0.0f, 0.0f, 0.0f, 0.0f};\n"
                  "    if (iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W})\n"
                  "      for (int c = 0; c < ${C}; ++c) q[c] = x[((n * ${C} + c) * ${H} + iy) * (${I})${W} + ix];\n"
                  "    float4 o4;\n"
                  "    o4.x = q[0];\n"
                  "    o4.y = q[1];\n"
                  "    o4.z = q[2];\n"
                  "    o4.w = q[3];\n"
                  "    reinterpret_cast<float4*>(scratch + ${XS_AT})[i] = o4;\n",
                  v),
             {{"I", em.I()}}),
        {x, NodeEmitter::scratch()}, padded);
    return padded * 4;
  }
  em.elementwise("stem16", "const float* __restrict__ x, float* __restrict__ scratch",
                 fill(fill("    const ${I} xp = i % ${WP}, yp = i / ${WP} % ${HP}, n = i / ((${I})${WP} * ${HP});\n"
                           "    const int iy = (int)yp - ${PT}, ix = (int)xp - ${PL};\n"
                           "    unsigned q[4] = {0u, 0u, 0u, 0u};\n"
                           "    if (iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W})\n"
                           "      for (int c = 0; c < ${C}; ++c)\n"
                           "        q[c] = ${TO16}(x[((n * ${C} + c) * ${H} + iy) * (${I})${W} + ix]);\n"
                           "    unsigned* out = (unsigned*)(scratch + ${XS_AT}) + 2 * i;\n"
                           "    out[0] = q[0] | (q[1] << 16);\n"
                           "    out[1] = q[2] | (q[3] << 16);\n",
                           v),
                      {{"I", em.I()}}),
                 {x, NodeEmitter::scratch()}, padded);
  return padded * 2;  // 4 16-bit values a pixel: two floats
}

}  // namespace

// Forward: rows are output pixels (n, oy, ox), columns filters, the reduction (c, ki, kj); the
// epilogue adds the bias and applies the activation (fused_conv2d).
// With `intoScratch` the output goes to the module's scratch buffer instead (for a fused
// pooling kernel to read), and the reduction is not split (the slices would need the scratch).
// `input`: where x is read (default: operand 0).
Expected<void> convForwardTensorCore(NodeEmitter& em, const ConvGeom& g, const std::string& activation,
                                     bool intoScratch, std::optional<CudaArg> input) {
  const Node& n = em.node();
  const bool bias = n.numInputs() >= 3;
  Vars v = tcVars(em, g);
  v.push_back({"IYA", linear({{"aoy", g.sh}, {"ki", g.dh}}, -g.pt)});
  v.push_back({"IXA", linear({{"aox", g.sw}, {"kj", g.dw}}, -g.pl)});
  v.push_back({"ADD_BIAS", bias ? " + bias[o]" : ""});
  std::string store = "        y[at] = sb;\n";
  // output_expr in the store only for small outputs: a warp's MMA fragments hold 8 pixels x 4
  // filters, so its residual reads (like its stores) stride across filter planes; for large
  // ones the biased sums are stored and a second kernel runs the program over y, reading
  // coalesced (CudaCodegenOptions::convEpilogueInStoreOutputs).
  const bool epilogueInStore =
      hasOutputExpr(n) && g.n * g.o * g.oh * g.ow <= em.options().convEpilogueInStoreOutputs;
  if (epilogueInStore) {
    auto code = outputExprStore(em, "sb", "at", "        ");
    if (!code) return em.unsupported(code.error().message());
    store = *code;
  } else if (!activation.empty()) {
    std::string act = activationCode(activation, "float", "sb", "act", "        ");
    if (act.empty()) return em.unsupported("unknown activation '" + activation + "'");
    store = "        float act;\n" + act + "        y[at] = act;\n";
  }
  // The output's 16-bit channels-last copy, where a reader converts it and this convolution may
  // write it (CudaCodegenOptions::halfCopyInProducer): the epilogue stores each final value
  // into it too (`ycl`, at pixel m's filter o), or the residual program's second kernel does.
  const Value* outValue = em.node().result(0);
  CudaArg outCopy;
  bool ownCopy = false;
  if (!intoScratch && channelsLastCopies(em, g.o) && em.copyWanted(outValue)) {
    outCopy = em.converted(outValue, g.n * g.oh * g.ow * g.o * 2, ownCopy);
  }
  const bool copyInStore = ownCopy && (!hasOutputExpr(n) || epilogueInStore);
  if (copyInStore) {
    const std::string to16 =
        em.options().tensorCores == TensorCoreMath::Bf16 ? "shoal_f32_to_bf16" : "shoal_f32_to_f16";
    const std::string value = epilogueInStore ? "y[at]" : !activation.empty() ? "act" : "sb";
    store += fill(channelsLastBytes(em) == 4
                      ? "        ycl[m * ${O} + o] = " + value + ";\n"
                      : "        ((unsigned short*)ycl)[m * ${O} + o] = " + to16 + "(" + value + ");\n",
                  v);
  }
  ImplicitGemm spec;
  spec.rows = g.n * g.oh * g.ow;
  spec.cols = g.o;
  spec.red = g.c * g.kh * g.kw;
  spec.flops = 2.0 * double(spec.rows) * double(spec.cols) * double(spec.red);  // not the padding below adds
  spec.splits = intoScratch ? 1 : 0;
  spec.minSlice = kConvMinSlice;
  spec.aBase = "x";
  if (intoScratch) spec.scratchReserved = g.n * g.o * g.oh * g.ow;
  spec.aRowSetup = fill("  const int aox = (int)(am % ${OW}), aoy = (int)((am / ${OW}) % ${OH});\n"
                        "  const ${I} xbase = (am / ((${I})${OW} * ${OH})) * (${I})(${C} * ${H} * ${W});\n",
                        v);
  // Channels last (CudaCodegenOptions::convChannelsLastMinInput): a first kernel copies x into
  // scratch as [n, h, w, c4], the channels padded with zeros to a multiple of 4, and the
  // reduction (tap, channel) copies 4 channels of a pixel as one 16-byte copy: a quarter of
  // the copies of the strided gathers below, and the tap's bounds and address once per 4
  // (the stem's 3 channels become 4, the fourth's weights zero).
  const int64_t c4 = (g.c + 3) / 4 * 4, inputElems = g.n * g.c * g.h * g.w;
  // (Padding at most a third more: 3 channels, not 1 or 2; the copy indexed in the node's
  // index type, which its largest operand chose.)
  const bool channelsLast = inputElems >= em.options().convChannelsLastMinInput && 3 * c4 <= 4 * g.c &&
                            (em.I() != "int" || indexType(g.n * g.h * g.w * c4) == "int");
  // 16-bit channels last (CudaCodegenOptions::conv16ChannelsLast; sm_90a, bfloat16 or float16,
  // channels in 64s; or TF32's fp32 form, tf32ChannelsLast): a first kernel converts x into
  // scratch as [n, h, w, c] values of the format, and the implicit GEMM (ImplicitGemm::aHalf64)
  // copies a pixel's 64 (TF32: 32) channels of one tap as a stage row, 8 16-byte copies a row
  // (at most 64 taps: a row's taps inside the image are a mask).
  const bool half = channelsLastCopies(em, g.c) && g.kh * g.kw <= 64;
  const std::optional<StemCopy> stem = half ? std::nullopt : stemCopy(em, g);
  ChannelsLastCopy xCopy;
  if (stem) {
    const int64_t at = (spec.scratchReserved + 3) / 4 * 4;
    spec.scratchReserved = at + emitStemCopy(em, g, *stem, input.value_or(em.in(0)), at, v);
    spec.scratchViews = {{"xs", at}};
    spec.aHalf64 = true;
    spec.aBase = "xs";
    spec.aTaps = int(stem->stages);
    spec.red = stem->stages * stem->steps();
    setVar(v, "MASK", spec.aTapMask());
    setVar(v, "ALL_TAPS",
           stem->stages == 64
               ? "~0ull"
               : "((" + std::string(spec.aTapMask()) + ")1 << " + std::to_string(stem->stages) + ") - 1");
    // A row's origin (kernel row 0, column 0 of its window), every stage inside; a stage's two
    // kernel rows (TF32: one); a chunk's 64-byte run (TF32: the stage row's 128 bytes contiguous).
    spec.aRowSetup = fill(
        "    const int aox = (int)(am % ${OW}), aoy = (int)((am / ${OW}) % ${OH});\n"
        "    const ${MASK} rtaps = ${ALL_TAPS};\n"
        "    const ${I} roff = arow ? (((am / ((${I})${OW} * ${OH})) * ${HP} + aoy * ${SH}) * (${I})${WP} + aox * "
        "${SW}) * 4 : 0;\n",
        v);
    setVar(v, "STEM_ROWS", intLit(stem->rows));
    setVar(v, "STAGE_SHIFT", stem->bytes == 2 ? "6" : "5");
    spec.aTap = fill(
        "        const int tap = kt >> ${STAGE_SHIFT};\n"
        "        const ${I} toff = (${I})tap * (${STEM_ROWS} * ${DH} * ${WP} * 4);\n",
        v);
    if (stem->bytes == 2) spec.aChunk = fill("(ch >> 2) * (${DH} * ${WP} * 4) + (ch & 3) * 8", v);
    spec.bPacked = fill(
        "(k % 32 / 4 < ${KW} && k % 4 < ${C} && k / 32 < ${KH} ? "
        "w[(((${I})o * ${C} + k % 4) * ${KH} + k / 32) * ${KW} + k % 32 / 4] : 0.0f)",
        v);
  } else if (half) {
    const int64_t at = (spec.scratchReserved + 3) / 4 * 4, hw = g.h * g.w;
    setVar(v, "HW", intLit(hw));
    xCopy = channelsLastCopy(em, input.value_or(em.in(0)), g.n, g.c, hw, at);
    if (xCopy.inScratch()) spec.scratchReserved = at + xCopy.scratchFloats(g.n * hw * g.c);  // in floats
    spec.aHalf64 = true;
    spec.aBase = "xs";
    spec.aTaps = int(g.kh * g.kw);
    setVar(v, "MASK", spec.aTapMask());
    v.push_back({"IY0", linear({{"aoy", g.sh}}, -g.pt)});
    v.push_back({"IX0", linear({{"aox", g.sw}}, -g.pl)});
    // A row's origin: its pixel at tap (0, 0), and which of its taps lie inside the image.
    spec.aRowSetup = fill(
        "    const int aox = (int)(am % ${OW}), aoy = (int)((am / ${OW}) % ${OH}), iy0 = ${IY0}, ix0 = ${IX0};\n"
        "    ${MASK} rtaps = 0;\n"
        "#pragma unroll\n"
        "    for (int ki = 0; ki < ${KH}; ++ki)\n"
        "#pragma unroll\n"
        "      for (int kj = 0; kj < ${KW}; ++kj)\n"
        "        if (iy0 + ki * ${DH} >= 0 && iy0 + ki * ${DH} < ${H} && ix0 + kj * ${DW} >= 0 && ix0 + kj * ${DW} < "
        "${W})\n"
        "          rtaps |= (${MASK})1 << (ki * ${KW} + kj);\n"
        "    const ${I} roff = arow ? ((am / ((${I})${OW} * ${OH})) * (${I})${HW} + (${I})iy0 * ${W} + ix0) * ${C} : "
        "0;\n",
        v);
    // The reduction (tap, channel); with halfTapReuse (channel block of 64, tap, channel), A's
    // copies through L1: a block's taps read the same pixels' 128 bytes one stage after another.
    const bool blocksOuter = em.options().halfTapReuse && channelsLastBytes(em) == 2;  // (64-step blocks)
    spec.aCached = blocksOuter;
    spec.aTap =
        fill(std::string(blocksOuter ? "        const int tap = (kt >> 6) % ${KK}, c = kt / (64 * ${KK}) * 64;\n"
                                     : "        const int tap = kt / ${C}, c = kt % ${C};\n") +
                 "        const ${I} toff = ((tap / ${KW}) * ${DH} * (${I})${W} + (tap % ${KW}) * ${DW}) * ${C} + c;\n",
             v);
    spec.bPacked =
        fill(blocksOuter ? "w[((${I})o * ${C} + k / (64 * ${KK}) * 64 + (k & 63)) * ${KK} + (k >> 6) % ${KK}]"
                         : "w[((${I})o * ${C} + k % ${C}) * ${KK} + k / ${C}]",
             v);
    // The copy engine's form (CudaCodegenOptions::halfTma): the same copy as im2col boxes.
    if (em.options().halfTma && g.groups == 1) {
      ImplicitGemm::Im2col t = outputCorners(im2colOver(xCopy, g.n, g.c, g.h, g.w), g);
      t.tapChannel =
          fill(std::string(blocksOuter ? "        const int tap = (kt >> 6) % ${KK}, c = kt / (64 * ${KK}) * 64;\n"
                                       : "        const int tap = kt / ${C}, c = kt % ${C};\n") +
                   "        const int tox = tap % ${KW} * ${DW}, toy = tap / ${KW} * ${DH};\n",
               v);
      spec.aIm2col = t;
    }
  } else if (channelsLast) {
    const int64_t at = (spec.scratchReserved + 3) / 4 * 4, hw = g.h * g.w;
    spec.scratchReserved = at + g.n * hw * c4;
    spec.scratchViews = {{"xs", at}};
    spec.red = g.kh * g.kw * c4;
    setVar(v, "C4", intLit(c4));
    setVar(v, "HW", intLit(hw));
    setVar(v, "XS_AT", intLit(at));
    if (c4 == 4) {
      // A pixel's channels (3 or 4) as one 16-byte store: consecutive threads, consecutive
      // pixels, reads and writes coalesced.
      em.elementwise("nhwc", "const float* __restrict__ x, float* __restrict__ scratch",
                     fill(fill("    const ${I} p = i % ${HW}, n = i / ${HW};\n"
                               "    const float* src = x + n * ${C} * (${I})${HW} + p;\n"
                               "    float4 q;\n"
                               "    q.x = src[0];\n"
                               "    q.y = src[${HW}];\n"
                               "    q.z = src[2 * (${I})${HW}];\n"
                               "    q.w = ${C} > 3 ? src[3 * (${I})${HW}] : 0.0f;\n"
                               "    reinterpret_cast<float4*>(scratch + ${XS_AT})[i] = q;\n",
                               v),
                          {{"I", em.I()}}),
                     {input.value_or(em.in(0)), NodeEmitter::scratch()}, g.n * hw);
    } else {
      // A transpose through shared memory, a block per 32 pixels x 32 channels of an image:
      // reads along the pixels of a channel, writes along the channels of a pixel (the
      // padding channels written as zeros).
      const int64_t pixelTiles = (hw + 31) / 32, channelTiles = (c4 + 31) / 32;
      setVar(v, "PT", intLit(pixelTiles));
      setVar(v, "CT", intLit(channelTiles));
      em.kernel("nhwc", "const float* __restrict__ x, float* __restrict__ scratch",
                fill(fill("  __shared__ float tile[32][33];\n"
                          "  const int tx = (int)threadIdx.x & 31, ty = (int)threadIdx.x >> 5;\n"
                          "  const int p0 = (int)(blockIdx.x % ${PT}) * 32, c0 = (int)((blockIdx.x / ${PT}) % ${CT}) * 32;\n"
                          "  const ${I} n = (${I})(blockIdx.x / (${PT} * ${CT}));\n"
                          "  for (int r = ty; r < 32; r += 8) {\n"
                          "    const int c = c0 + r, p = p0 + tx;\n"
                          "    tile[r][tx] = c < ${C} && p < ${HW} ? x[(n * ${C} + c) * (${I})${HW} + p] : 0.0f;\n"
                          "  }\n"
                          "  __syncthreads();\n"
                          "  float* xs = scratch + ${XS_AT};\n"
                          "  for (int r = ty; r < 32; r += 8) {\n"
                          "    const int p = p0 + r, c = c0 + tx;\n"
                          "    if (p < ${HW} && c < ${C4}) xs[(n * ${HW} + p) * ${C4} + c] = tile[tx][r];\n"
                          "  }\n",
                          v),
                     {{"I", em.I()}}),
                {input.value_or(em.in(0)), NodeEmitter::scratch()}, unsigned(g.n * pixelTiles * channelTiles));
    }
    spec.aVector = true;
    spec.aRowSetup = fill("  const int aox = (int)(am % ${OW}), aoy = (int)((am / ${OW}) % ${OH});\n"
                          "  const ${I} pbase = (am / ((${I})${OW} * ${OH})) * (${I})${HW};\n",
                          v);
    spec.aLoad = fill("            const int tap = k / ${C4}, c = k % ${C4}, ki = tap / ${KW}, kj = tap % ${KW};\n"
                      "            const int iy = ${IYA}, ix = ${IXA};\n"
                      "            if (iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W}) {\n"
                      "              src = xs + (pbase + iy * ${W} + ix) * ${C4} + c;\n"
                      "              ok = true;\n"
                      "            }\n",
                      v);
    spec.bPacked = fill("(k % ${C4} < ${C} ? w[((${I})o * ${C} + k % ${C4}) * ${KK} + k / ${C4}] : 0.0f)", v);
  } else if (g.c % 8 == 0) {
    // The reduction ordered (tap, channel): a thread's 8 indices share a tap (its bounds check
    // and address once), then step by one channel plane.
    spec.aGroup = fill("        const int tap = kg / ${C}, c0 = kg % ${C};\n"
                       "        const int ki = tap / ${KW}, kj = tap % ${KW};\n"
                       "        const int iy = ${IYA}, ix = ${IXA};\n"
                       "        const bool gvalid = iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W};\n"
                       "        const ${I} goff = xbase + ((${I})c0 * ${H} + iy) * ${W} + ix;\n",
                       v);
    spec.aStride = fill("(${I})${H} * ${W}", v);  // x + 7 (interleaved: 12) planes is inside x
    spec.aStride16 = g.c % 16 == 0;
    spec.bPacked = fill("w[((${I})o * ${C} + k % ${C}) * ${KK} + k / ${C}]", v);
  } else {
    if (g.kw <= 8) {
      // Few channels (the stem): the reduction padded to rows of 8 taps, k = ((c, ki), kj)
      // with kj < 8 (B is zero past KW), so a thread's group is one kernel row: its input
      // row, bounds and address once, then each element a column on.
      spec.red = g.c * g.kh * 8;
      v.push_back({"IY_ROW", linear({{"aoy", g.sh}, {"ki", g.dh}}, -g.pt)});
      v.push_back({"IX_ROW", linear({{"aox", g.sw}}, -g.pl)});
      spec.aGroup = fill("        const int kr = kg >> 3, c = kr / ${KH}, ki = kr % ${KH}, iy = ${IY_ROW}, ix0 = ${IX_ROW};\n"
                         "        const bool rowIn = iy >= 0 && iy < ${H};\n"
                         "        const ${I} xr = xbase + ((${I})c * ${H} + iy) * ${W};\n",
                         v);
      // Paired taps (CudaCodegenOptions::convPairedTaps; ResNet's 7 x 7 stem at stride 2): at
      // stride 2 a row's first tap ix0 = 2 ox - pl has pl's parity for every pixel, so (W even)
      // its taps pair up into 8-byte aligned copies, both in the image or both out: half the
      // copies (aligned because x is a planned buffer, 256-byte aligned, and an even W starts
      // every row at an even element). With pl odd the first tap is copied alone into element 0 and element 1 is a
      // hole (zero for good, its weight zero) -- never the pixel before the window, whose NaN
      // or infinity times a zero weight would leak into the sum.
      const bool oddFirst = g.pl % 2 != 0;
      if (em.options().convPairedTaps && g.sw == 2 && g.dw == 1 && g.w % 2 == 0 && g.kw <= (oddFirst ? 7 : 8)) {
        std::string copies = "        const bool rok = gok && rowIn;\n"
                             "        const float* xrow = x + (rok ? xr : (${I})0);\n";
        auto dst = [](int e) { return fmt::format("{} + {}", e < 4 ? "d0" : "d1", 4 * e); };
        if (oddFirst) {
          copies += "        {\n"
                    "          const bool ok = rok && ix0 >= 0 && ix0 < ${W};\n"
                    "          shoal_cp_async_f32(d0, ok ? xrow + ix0 : x, ok);\n"
                    "        }\n";
          spec.aHoles.push_back(1);
        }
        // Pair j: elements e, e + 1 = taps t, t + 1 (t + 1 past the kernel row: a zero copied).
        for (int j = oddFirst ? 1 : 0; j < 4; ++j) {
          const int e = 2 * j, t = oddFirst ? e - 1 : e;
          if (t >= g.kw) {
            spec.aHoles.insert(spec.aHoles.end(), {e, e + 1});
            continue;
          }
          copies += fmt::format("        {{\n"
                                "          const int ix = ix0 + {0};\n"
                                "          const int cnt = rok && ix >= 0 && ix < ${{W}} ? {1} : 0;\n"
                                "          shoal_cp_async_f32x2({2}, cnt ? xrow + ix : x, cnt);\n"
                                "        }}\n",
                                t, t + 1 < g.kw ? 2 : 1, dst(e));
        }
        spec.aGroupCopies = fill(copies, v);
        // Element s of a group holds tap s (pl even) or s - 1 (pl odd: element 0 tap 0, 1 none).
        spec.bPacked = oddFirst ? fill("((k & 7) != 1 && (k & 7) - ((k & 7) > 0) < ${KW} ? "
                                       "w[(${I})o * ${CKK} + (k >> 3) * ${KW} + (k & 7) - ((k & 7) > 0)] : 0.0f)",
                                       v)
                                : fill("((k & 7) < ${KW} ? w[(${I})o * ${CKK} + (k >> 3) * ${KW} + (k & 7)] : 0.0f)", v);
      } else {
        spec.aLoad = fill("            const int ix = ix0 + e * ${DW};\n"
                          "            if (e < ${KW} && rowIn && ix >= 0 && ix < ${W}) { src = &x[xr + ix]; ok = true; }\n",
                          v);
        spec.bPacked = fill("((k & 7) < ${KW} ? w[(${I})o * ${CKK} + (k >> 3) * ${KW} + (k & 7)] : 0.0f)", v);
      }
    } else {
      // The reduction ordered (channel, tap): the group's first (c, ki, kj) once, then each next
      // element one tap on (the loads of a group run in order, and stop together at the end).
      spec.aGroup = fill("        const int tap0 = kg % ${KK};\n"
                         "        int c = kg / ${KK}, ki = tap0 / ${KW}, kj = tap0 % ${KW};\n",
                         v);
      spec.aLoad = fill("            if (e > 0 && ++kj == ${KW}) { kj = 0; if (++ki == ${KH}) { ki = 0; ++c; } }\n"
                        "            const int iy = ${IYA}, ix = ${IXA};\n"
                        "            if (iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W}) { src = &x[xbase + (c * ${H} + iy) * ${W} + ix]; ok = true; }\n",
                        v);
      spec.bPacked = fill("w[(${I})o * ${CKK} + k]", v);
    }
  }
  // Output pixel m's offset in y at filter 0, once a row; a filter's plane on from there.
  setVar(v, "OHW", intLit(g.oh * g.ow));
  spec.epilogueRow = fill("      const ${I} mat = (m / ${OHW}) * ((${I})${O} * ${OHW}) + m % ${OHW};\n", v);
  spec.epilogue = fill(
                      "        const ${I} at = mat + (${I})o * ${OHW};\n"
                      "        const float sb = s${ADD_BIAS};\n",
                      v) +
                  store;
  spec.params = std::string("const float* __restrict__ x, const float* __restrict__ w, ") +
                (bias ? "const float* __restrict__ bias, " : "") + (epilogueInStore ? outputExprParams(em) : "") +
                "float* __restrict__ y" + (copyInStore ? ", float* __restrict__ ycl" : "");
  spec.args = {input.value_or(em.in(0)), em.in(1)};
  spec.bSource = em.in(1);
  if (bias) spec.args.push_back(em.in(2));
  if (epilogueInStore) addOutputExprArgs(em, spec.args);
  spec.args.push_back(intoScratch ? NodeEmitter::scratch() : em.out());
  if (copyInStore) spec.args.push_back(outCopy);
  if (half) readChannelsLastCopy(spec, "xs", xCopy);
  if (intoScratch) em.needScratch(g.n * g.o * g.oh * g.ow * int64_t(sizeof(float)));
  spec.math = em.options().tensorCores;
  if (auto ok = emitImplicitGemm(em, spec); !ok) return ok;
  if (!hasOutputExpr(n) || epilogueInStore) return {};
  // The program over the stored sums, element by element (each element read before written).
  auto code = outputExprStore(em, "y[i]", "i", "    ");
  if (!code) return em.unsupported(code.error().message());
  std::vector<CudaArg> args;
  addOutputExprArgs(em, args);
  args.push_back(em.out());
  if (ownCopy && !copyInStore) {
    elementwiseWithChannelsLastCopy(em, "epilogue", outputExprParams(em) + "float* y", *code, args, outCopy, g.n, g.o,
                                    g.oh * g.ow);
    return {};
  }
  em.elementwise("epilogue", outputExprParams(em) + "float* y", *code, args, g.n * g.o * g.oh * g.ow);
  return {};
}

// The data gradient (and conv_transpose2d, the same gather plus a bias): rows are input
// pixels (n, iy, ix), columns channels, the reduction (o, ki, kj) over the taps whose output
// pixel exists. A stride of s splits the input pixels into s x s phases (iy mod sh, ix mod sw)
// that each meet their own taps only (a quarter of a 3 x 3 kernel's for stride 2): one GEMM
// per phase over its pixels and taps, so no product is spent on a tap that cannot land, and
// a phase no tap reaches (a 1 x 1 kernel's odd pixels) is written as zero (or the bias).
// 16-bit channels last (CudaCodegenOptions::conv16ChannelsLast, filters in 64s): the gradient
// converted once into scratch as [n, oh, ow, o] values of the format, each phase's GEMM
// (ImplicitGemm::aHalf64) copying a pixel's 64 filters of one tap as a stage row.
Expected<void> convBackwardDataTensorCore(NodeEmitter& em, const ConvGeom& g, bool transpose, bool bias) {
  const bool phased = g.sh > 1 || g.sw > 1;
  const bool half = channelsLastCopies(em, g.o) && g.kh * g.kw <= 64;  // (a mask of taps, as the forward's)
  const ChannelsLastCopy gradCopy =
      half ? channelsLastCopy(em, em.in(0), g.n, g.o, g.oh * g.ow, 0) : ChannelsLastCopy{};
  for (int64_t py = 0; py < std::min(g.sh, g.h); ++py)
    for (int64_t px = 0; px < std::min(g.sw, g.w); ++px) {
      const PhaseTaps ty = phaseTaps(py, g.sh, g.pt, g.dh, g.kh, g.h);
      const PhaseTaps tx = phaseTaps(px, g.sw, g.pl, g.dw, g.kw, g.w);
      Vars v = tcVars(em, g);
      v.push_back({"GRAD", transpose ? "x" : "dy"});
      v.push_back({"OUT", transpose ? "y" : "dx"});
      v.push_back({"HP", intLit(ty.pixels)});
      v.push_back({"WP", intLit(tx.pixels)});
      v.push_back({"TAPS", intLit(ty.count * tx.count)});
      v.push_back({"TXN", intLit(tx.count)});
      // The phase's pixel (iy, ix) from its row and column there; the output pixel of tap (ty, tx).
      v.push_back({"PHASE_IY", linear({{"piy", g.sh}}, py)});
      v.push_back({"PHASE_IX", linear({{"pix", g.sw}}, px)});
      v.push_back({"OYA", linear({{"aiy", 1}, {"ty", -ty.skip}}, ty.offset)});
      v.push_back({"OXA", linear({{"aix", 1}, {"tx", -tx.skip}}, tx.offset)});
      // The weight's tap (ki * KW + kj) of the phase's tap number `tap` (an expression).
      auto weightTap = [&](const std::string& tap) {
        const std::string row = "(" + tap + ") / " + std::to_string(tx.count), col = "(" + tap + ") % " + std::to_string(tx.count);
        return "(" + linear({{row.c_str(), ty.step}}, ty.first) + ") * " + std::to_string(g.kw) + " + " +
               linear({{col.c_str(), tx.step}}, tx.first);
      };
      v.push_back({"ADD_BIAS", bias ? " + bias[o]" : ""});
      const std::string name = phased ? "p" + std::to_string(py) + std::to_string(px) + "_" : "";
      const std::string params =
          fill(std::string("const float* __restrict__ ${GRAD}, const float* __restrict__ w, ") +
                   (bias ? "const float* __restrict__ bias, " : "") + "float* __restrict__ ${OUT}",
               v);
      std::vector<CudaArg> args = {em.in(0), em.in(1)};
      if (bias) args.push_back(em.in(2));
      args.push_back(em.out());
      const std::string pixel = fill("        const int ix = ${PHASE_IX}, iy = ${PHASE_IY};\n"
                                     "        ${OUT}[((pn * ${C} + o) * ${H} + iy) * (${I})${W} + ix] = ",
                                     v);
      if (ty.count == 0 || tx.count == 0) {
        // No tap lands on this phase: its pixels get nothing from dy.
        em.elementwise(name + "zero", params,
                       fill(fill("        const int pix = (int)(i % ${WP}), piy = (int)((i / ${WP}) % ${HP});\n"
                                 "        const int o = (int)((i / ((${I})${WP} * ${HP})) % ${C});\n"
                                 "        const ${I} pn = i / ((${I})${WP} * ${HP} * ${C});\n",
                                 v) +
                                pixel + (bias ? "bias[o];\n" : "0.0f;\n"),
                            {{"I", em.I()}}),
                       args, g.n * g.c * ty.pixels * tx.pixels);
        continue;
      }
      ImplicitGemm spec;
      spec.name = name;
      spec.rows = g.n * ty.pixels * tx.pixels;
      spec.cols = g.c;
      spec.red = g.o * ty.count * tx.count;
      spec.minSlice = kConvMinSlice;
      spec.aBase = transpose ? "x" : "dy";
      spec.aRowSetup = fill("  const int aix = (int)(am % ${WP}), aiy = (int)((am / ${WP}) % ${HP});\n"
                            "  const ${I} gbase = (am / ((${I})${WP} * ${HP})) * (${I})(${O} * ${OH} * ${OW});\n",
                            v);
      if (half) {
        spec.scratchReserved = gradCopy.scratchFloats(g.n * g.oh * g.ow * g.o);
        spec.aHalf64 = true;
        spec.aBase = "gs";
        spec.aTaps = int(ty.count * tx.count);
        v.push_back({"MASK", spec.aTapMask()});
        v.push_back({"OY0", linear({{"aiy", 1}}, ty.offset)});
        v.push_back({"OX0", linear({{"aix", 1}}, tx.offset)});
        v.push_back({"TYS", intLit(ty.skip)});
        v.push_back({"TXS", intLit(tx.skip)});
        v.push_back({"TYN", intLit(ty.count)});
        // A row's origin: the gradient's pixel at the phase's tap (0, 0), and which of its
        // taps (ty, tx) -- pixel (oy0 - ty * TYS, ox0 - tx * TXS) -- lie inside it.
        spec.aRowSetup = fill(
            "    const int aix = (int)(am % ${WP}), aiy = (int)((am / ${WP}) % ${HP}), oy0 = ${OY0}, ox0 = ${OX0};\n"
            "    ${MASK} rtaps = 0;\n"
            "#pragma unroll\n"
            "    for (int ty = 0; ty < ${TYN}; ++ty)\n"
            "#pragma unroll\n"
            "      for (int tx = 0; tx < ${TXN}; ++tx)\n"
            "        if (oy0 - ty * ${TYS} >= 0 && oy0 - ty * ${TYS} < ${OH} && ox0 - tx * ${TXS} >= 0 && ox0 - tx * "
            "${TXS} < ${OW})\n"
            "          rtaps |= (${MASK})1 << (ty * ${TXN} + tx);\n"
            "    const ${I} roff = arow ? ((am / ((${I})${WP} * ${HP})) * (${I})(${OH} * ${OW}) + (${I})oy0 * ${OW} + "
            "ox0) * ${O} : 0;\n",
            v);
        // (tap, filter); with halfTapReuse (filter block of 64, tap, filter), as the forward's.
        const bool blocksOuter = em.options().halfTapReuse && channelsLastBytes(em) == 2;  // (64-step blocks)
        spec.aCached = blocksOuter;
        spec.aTap = fill(
            std::string(blocksOuter ? "        const int tap = (kt >> 6) % ${TAPS}, oc = kt / (64 * ${TAPS}) * 64;\n"
                                    : "        const int tap = kt / ${O}, oc = kt % ${O};\n") +
                "        const ${I} toff = oc - ((tap / ${TXN}) * ${TYS} * (${I})${OW} + (tap % ${TXN}) * ${TXS}) * "
                "${O};\n",
            v);
        spec.bPacked = blocksOuter ? fill("w[((${I})(k / (64 * ${TAPS}) * 64 + (k & 63)) * ${C} + o) * ${KK} + ", v) +
                                         weightTap(fill("(k >> 6) % ${TAPS}", v)) + "]"
                                   : fill("w[((${I})(k % ${O}) * ${C} + o) * ${KK} + ", v) +
                                         weightTap("k / " + std::to_string(g.o)) + "]";
        // The copy engine's form (CudaCodegenOptions::halfTma): a row's filter corner is its pixel
        // at the phase's last tap, so each tap is a non-negative offset from it.
        if (em.options().halfTma && g.groups == 1) {
          ImplicitGemm::Im2col t = im2colOver(gradCopy, g.n, g.o, g.oh, g.ow);
          t.cornersH = ty.pixels, t.cornersW = tx.pixels;
          t.lowerH = int(ty.offset - (ty.count - 1) * ty.skip), t.lowerW = int(tx.offset - (tx.count - 1) * tx.skip);
          t.spanH = int((ty.count - 1) * ty.skip), t.spanW = int((tx.count - 1) * tx.skip);
          t.tapChannel = fill(
              std::string(blocksOuter ? "        const int tap = (kt >> 6) % ${TAPS}, c = kt / (64 * ${TAPS}) * 64;\n"
                                      : "        const int tap = kt / ${O}, c = kt % ${O};\n") +
                  "        const int tox = (${TXN} - 1 - tap % ${TXN}) * ${TXS}, toy = (${TYN} - 1 - tap / "
                  "${TXN}) * ${TYS};\n",
              v);
          spec.aIm2col = t;
        }
      } else if (g.o % 8 == 0) {
        // The reduction ordered (tap, filter), as the forward's (tap, channel).
        spec.aGroup = fill(fill("        const int tap = kg / ${O}, oc0 = kg % ${O};\n"
                                "        const int ty = tap / ${TXN}, tx = tap % ${TXN};\n"
                                "        const int oy = ${OYA}, ox = ${OXA};\n"
                                "        const bool gvalid = oy >= 0 && oy < ${OH} && ox >= 0 && ox < ${OW};\n"
                                "        const ${I} goff = gbase + ((${I})oc0 * ${OH} + oy) * ${OW} + ox;\n",
                                v),
                           v);
        spec.aStride = fill("(${I})${OH} * ${OW}", v);  // the gradient + 7 (12) planes is inside it
        spec.aStride16 = g.o % 16 == 0;
        spec.bPacked = fill("w[((${I})(k % ${O}) * ${C} + o) * ${KK} + ", v) + weightTap("k / " + std::to_string(g.o)) + "]";
      } else {
        spec.aLoad = fill(fill("        const int oc = k / ${TAPS}, tap = k % ${TAPS};\n"
                               "        const int ty = tap / ${TXN}, tx = tap % ${TXN};\n"
                               "        const int oy = ${OYA}, ox = ${OXA};\n"
                               "        if (oy >= 0 && oy < ${OH} && ox >= 0 && ox < ${OW})\n"
                               "          { src = &${GRAD}[gbase + ((${I})oc * ${OH} + oy) * ${OW} + ox]; ok = true; }\n",
                               v),
                          v);
        spec.bPacked = fill("w[((${I})(k / ${TAPS}) * ${C} + o) * ${KK} + ", v) + weightTap("k % " + std::to_string(ty.count * tx.count)) + "]";
      }
      // The phase's pixel m's offset in the output at channel 0, once a row; a channel's plane on.
      setVar(v, "HW", intLit(g.h * g.w));
      spec.epilogueRow =
          fill(fill("      const int pix = (int)(m % ${WP}), piy = (int)((m / ${WP}) % ${HP});\n"
                    "      const int ix = ${PHASE_IX}, iy = ${PHASE_IY};\n"
                    "      const ${I} mat = m / ((${I})${WP} * ${HP}) * ((${I})${C} * ${HW}) + iy * ${W} + ix;\n",
                    v),
               v);
      spec.epilogue = fill("        ${OUT}[mat + (${I})o * ${HW}] = s${ADD_BIAS};\n", v);
      spec.params = params;
      spec.args = args;
      if (half) readChannelsLastCopy(spec, "gs", gradCopy);
      spec.bSource = em.in(1);
      spec.math = em.options().tensorCores;
      if (auto r = emitImplicitGemm(em, spec); !r) return r;
    }
  return {};
}

// The weight gradient: rows (c, ki, kj), columns filters, the reduction over every output
// pixel (n, oy, ox) -- long, so it is split into slices (one block per tile and slice). The
// rows are the long side (a filter count of 64 would leave half of a 128-row tile empty).
Expected<void> convBackwardWeightTensorCore(NodeEmitter& em, const ConvGeom& g) {
  Vars v = tcVars(em, g);
  v.push_back({"IYA", linear({{"oy", g.sh}, {"aki", g.dh}}, -g.pt)});
  v.push_back({"IXA", linear({{"ox", g.sw}, {"akj", g.dw}}, -g.pl)});
  ImplicitGemm spec;
  spec.rows = g.c * g.kh * g.kw;
  spec.cols = g.o;
  spec.red = g.n * g.oh * g.ow;
  spec.waveBlocks = kTargetBlocks;  // two blocks an SM: measured faster for the weight gradient
  spec.aBase = "x";
  spec.bBase = "dy";
  const int64_t hw = g.oh * g.ow;
  v.push_back({"HW", intLit(hw)});
  spec.params = "const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dw";
  spec.args = {em.in(0), em.in(1), em.out()};
  spec.math = em.options().tensorCores;
  // The stem's form (CudaCodegenOptions::halfStem; stemCopy): x's padded copy and dy's 16-bit
  // channels-last copy, both MN-major (ImplicitGemm::halfMN): a 64-row atom is two kernel rows of
  // an output pixel's window -- chunks 0-3 the first's 64 bytes, 4-7 the second's (aChunk) --,
  // each inside the copy (no bounds); the rows (kernel row, column < 8, channel < 4), the
  // padding's sums not stored.
  if (const std::optional<StemCopy> stem = stemCopy(em, g); stem && stem->bytes == 2 && g.o % 64 == 0) {
    const int64_t xFloats = (emitStemCopy(em, g, *stem, em.in(0), 0, v) + 3) / 4 * 4;
    const ChannelsLastCopy gradCopy = channelsLastCopy(em, em.in(1), g.n, g.o, hw, xFloats, "cl16_dy");
    spec.halfMN = true;
    spec.rows = stem->stages * 64;
    spec.flops = 2.0 * double(g.c * g.kh * g.kw) * double(g.o) * double(spec.red);  // not the padding's
    spec.scratchReserved = xFloats + gradCopy.scratchFloats(g.n * hw * g.o);
    spec.scratchViews = {{"xs", 0}};
    readChannelsLastCopy(spec, "gs", gradCopy);
    spec.aBase = "xs";
    spec.bBase = "gs";
    spec.kDigits = {{"ox", g.ow}, {"oy", g.oh}, {"on", 0}};
    spec.kRowSetup =
        fill("        const ${I} kofs = (((${I})on * ${HP} + oy * ${SH}) * (${I})${WP} + ox * ${SW}) * 4;\n", v);
    spec.aAtom = fill("          const ${I} aoff = (${I})(mo / 64) * (2 * ${DH} * ${WP} * 4);\n", v);
    spec.aInside = "true";
    spec.aChunk = fill("(ch >> 2) * (${DH} * ${WP} * 4) + (ch & 3) * 8", v);
    spec.bOffset = fill("(${I})k * ${O}", v);
    spec.epilogueRow = fill(
        "      const int sk = (int)(m / 32), sx = (int)(m % 32 / 4), sc = (int)(m % 4);\n"
        "      const bool real = sk < ${KH} && sx < ${KW} && sc < ${C};\n"
        "      const ${I} mat = ((${I})sc * ${KH} + sk) * ${KW} + sx;\n",
        v);
    spec.epilogue = fill("        if (real) dw[(${I})o * ${CKK} + mat] = s;\n", v);
    return emitImplicitGemm(em, spec);
  }
  // (16-bit only: the operands are MN-major, which TF32's wgmma cannot read.)
  if (channelsLastCopies(em, g.c) && channelsLastBytes(em) == 2 && g.o % 64 == 0) {
    // 16-bit channels last (CudaCodegenOptions::conv16ChannelsLast, channels and filters in
    // 64s): x and dy converted into scratch as [n, h, w, c] and [n, oh, ow, o] values of the
    // format; rows ordered (tap, channel), so that each 64-row atom is one tap's 64 channels of
    // an input pixel and each 64-column atom 64 filters of an output pixel, both contiguous: the
    // operands MN-major (ImplicitGemm::halfMN), 64 output pixels a stage.
    const ChannelsLastCopy xCopy = channelsLastCopy(em, em.in(0), g.n, g.c, g.h * g.w, 0);
    const int64_t xFloats = xCopy.scratchFloats(g.n * g.h * g.w * g.c);  // a multiple of 32 (c of 64)
    const ChannelsLastCopy gradCopy = channelsLastCopy(em, em.in(1), g.n, g.o, hw, xFloats, "cl16_dy");
    spec.halfMN = true;
    spec.scratchReserved = xFloats + gradCopy.scratchFloats(g.n * hw * g.o);
    readChannelsLastCopy(spec, "xs", xCopy);
    readChannelsLastCopy(spec, "gs", gradCopy);
    spec.aBase = "xs";
    spec.bBase = "gs";
    // Output pixel k's input origin (ky, kx) and offset there, once for all atoms, from its
    // column, row and image kept from stage to stage; an atom's tap (ady, adx) and channels'
    // offset, the same at every stage.
    v.push_back({"KY", linear({{"oy", g.sh}}, -g.pt)});
    v.push_back({"KX", linear({{"ox", g.sw}}, -g.pl)});
    spec.kDigits = {{"ox", g.ow}, {"oy", g.oh}, {"on", 0}};
    spec.kRowSetup = fill(
        "        const int ky = ${KY}, kx = ${KX};\n"
        "        const ${I} kofs = (((${I})on * ${H} + ky) * ${W} + kx) * ${C};\n",
        v);
    spec.aAtom = fill(
        "          const int tap = (int)(mo / ${C}), c0 = (int)(mo % ${C}), ady = tap / ${KW} * ${DH}, adx = tap % "
        "${KW} * ${DW};\n"
        "          const ${I} aoff = ((${I})ady * ${W} + adx) * ${C} + c0;\n",
        v);
    spec.aInside = fill("((unsigned)(ky + ady) < ${H}) & ((unsigned)(kx + adx) < ${W})", v);
    spec.bOffset = fill("(${I})k * ${O}", v);
    spec.epilogueRow = fill("      const ${I} mat = (${I})(m % ${C}) * ${KK} + m / ${C};\n", v);
    spec.epilogue = fill("        dw[(${I})o * ${CKK} + mat] = s;\n", v);
    // The copy engine's form (CudaCodegenOptions::halfTma): a stage's 64 output pixels are the
    // filter corners of each A atom's box (at the atom's tap and channels), B's atoms tiles of dy's copy.
    if (em.options().halfTma && g.groups == 1) {
      ImplicitGemm::Im2col t = outputCorners(im2colOver(xCopy, g.n, g.c, g.h, g.w), g);
      t.mn = true;
      t.atomTap = fill(
          "      const int tap = (int)(mo / ${C}), c = (int)(mo % ${C}), tox = tap % ${KW} * ${DW}, toy = tap / ${KW} "
          "* "
          "${DH};\n",
          v);
      t.bCopy = gradCopy.arg;
      t.bOffset = copyOffset(gradCopy);
      t.bWidth = g.o;
      spec.aIm2col = t;
    }
    return emitImplicitGemm(em, spec);
  }
  // Column-wise (CudaCodegenOptions::weightGradientColumns): a row's offset in an image, (c,
  // ki, kj) -> (c * H + ki * DH) * W + kj * DW, and its tap as the bit of a pixel's mask (32
  // bits, or 64 for more than 31 taps: the 7 x 7 stem's 49); a pixel's offset from its first
  // tap and which of its taps lie in the image. Rows past the end (up to a tile, 256, beyond
  // C * KK) must keep the offset an int.
  const int64_t limit = std::numeric_limits<int>::max();
  if (em.options().weightGradientColumns && g.kh * g.kw <= 63 && (g.c + 256) * g.h * g.w < limit) {
    spec.aColumnBits = g.kh * g.kw <= 31 ? 32 : 64;
    v.push_back({"MASK", spec.columnMaskType()});
    v.push_back({"IYB", linear({{"oy", g.sh}}, -g.pt)});
    v.push_back({"IXB", linear({{"ox", g.sw}}, -g.pl)});
    v.push_back({"CHW", intLit(g.c * g.h * g.w)});
    spec.aColumnRow = fill("    const int ac = (int)(am / ${KK}), rbit = (int)(am % ${KK}), aki = rbit / ${KW}, akj = rbit % ${KW};\n"
                           "    const int roff = (ac * ${H} + aki * ${DH}) * ${W} + akj * ${DW};\n",
                           v);
    spec.aColumn = fill("        const int on = k / ${HW}, pq = k % ${HW}, oy = pq / ${OW}, ox = pq % ${OW};\n"
                        "        const int iyb = ${IYB}, ixb = ${IXB};\n"
                        "        const ${I} kofs = (${I})on * ${CHW} + (${I})iyb * ${W} + ixb;\n"
                        "        ${MASK} cm = 0u, kmask = 0u;\n"
                        "#pragma unroll\n"
                        "        for (int kj = 0; kj < ${KW}; ++kj) cm |= (${MASK})((unsigned)(ixb + kj * ${DW}) < ${W}u) << kj;\n"
                        "#pragma unroll\n"
                        "        for (int ki = 0; ki < ${KH}; ++ki)\n"
                        "          if ((unsigned)(iyb + ki * ${DH}) < ${H}u) kmask |= cm << (ki * ${KW});\n",
                        v);
  } else {
    // By rows: a thread's 8 consecutive output pixels of one (channel, tap) row.
    spec.aRowSetup = fill("  const int ac = (int)(am / ${KK}), atap = (int)(am % ${KK}), aki = atap / ${KW}, akj = atap % ${KW};\n", v);
    // The first pixel's image, row and column once per group, then each e columns on, wrapping
    // into the next row (and image) at most once -- so OW >= 7; smaller outputs divide per
    // element. (B's groups of 4 pixels, below, need OH * OW >= 4 either way.)
    if (g.ow >= 7) {
      // Per group: the first pixel's input row (iy0), column (ix0) and image plane (xb0), and
      // the row and plane after a wrap (iyw, xbw: the next output row, or the next image's first).
      v.push_back({"IY0", linear({{"oy0", g.sh}, {"aki", g.dh}}, -g.pt)});
      v.push_back({"IX0", linear({{"ox0", g.sw}, {"akj", g.dw}}, -g.pl)});
      v.push_back({"IY_TOP", linear({{"aki", g.dh}}, -g.pt)});
      v.push_back({"ROW_STEP", std::to_string(g.ow * g.sw)});
      std::string group = "        const int on = kg / ${HW}, p0 = kg % ${HW}, oy0 = p0 / ${OW}, ox0 = p0 % ${OW};\n"
                          "        const int iy0 = ${IY0}, ix0 = ${IX0};\n"
                          "        const ${I} xb0 = ((${I})on * ${C} + ac) * ${H} * ${W};\n";
      std::string load;
      if (g.ow % 8 == 0) {
        // The group's 8 pixels lie in one output row (p0 and OW are multiples of 8).
        group += "        const bool in0 = iy0 >= 0 && iy0 < ${H};\n"
                 "        const float* p0x = x + (xb0 + (${I})iy0 * ${W} + ix0);\n";
        load = "            const int ix = ix0 + e * ${SW};\n"
               "            ok = in0 && ix >= 0 && ix < ${W};\n"
               "            if (ok) src = p0x + e * ${SW};\n";
      } else {
        // Wrapping at most once (OW >= 7): into the next row, or (HW not a multiple of 8) the
        // next image's first row. p0x / pwx: where element e would be read from, less e * SW.
        group += hw % 8 == 0 ? "        const int iyw = iy0 + ${SH};\n        const ${I} xbw = xb0;\n"
                             : "        const bool nextImage = oy0 + 1 >= ${OH};\n"
                               "        const int iyw = nextImage ? ${IY_TOP} : iy0 + ${SH};\n"
                               "        const ${I} xbw = nextImage ? xb0 + (${I})${C} * ${H} * ${W} : xb0;\n";
        group += "        const bool in0 = iy0 >= 0 && iy0 < ${H}, inw = iyw >= 0 && iyw < ${H};\n"
                 "        const float* p0x = x + (xb0 + (${I})iy0 * ${W} + ix0);\n"
                 "        const float* pwx = x + (xbw + (${I})iyw * ${W} + ix0 - ${ROW_STEP});\n";
        load = "            const bool w = ox0 + e >= ${OW};\n"
               "            const int ix = ix0 + e * ${SW} - (w ? ${ROW_STEP} : 0);\n"
               "            ok = (w ? inw : in0) && ix >= 0 && ix < ${W};\n"
               "            if (ok) src = (w ? pwx : p0x) + e * ${SW};\n";
      }
      spec.aGroup = fill(fill(group, v), v);
      spec.aLoad = fill(fill(load, v), v);
    } else {
      spec.aLoad = fill("        const int ox = k % ${OW}, oy = (k / ${OW}) % ${OH}, on = k / ${HW};\n"
                        "        const int iy = ${IYA}, ix = ${IXA};\n"
                        "        if (iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W})\n"
                        "          { src = &x[(((${I})on * ${C} + ac) * ${H} + iy) * ${W} + ix]; ok = true; }\n",
                        v);
    }
  }
  if (hw >= 4)
    spec.bGroup = fill("        const int on = kg / ${HW}, p0 = kg % ${HW};\n"
                       "        const ${I} dof = ((${I})on * ${O} + bo) * ${HW} + p0;\n",
                       v);
  if (hw % 8 == 0) {
    // dy's 4 are contiguous within one image: one 16-byte copy.
    spec.bLoad = "            src = &dy[dof + e];\n            ok = true;\n";
    spec.bVector = true;
  } else if (hw >= 4) {
    // Wrapping into the next image at most once: e < 4, or (interleaved) e <= 12 < HW.
    spec.bLoad = fill("            src = &dy[dof + e + (p0 + e >= ${HW} ? (${I})(${O} - 1) * ${HW} : 0)];\n"
                      "            ok = true;\n",
                      v);
    spec.bInterleaved = hw >= 13;
  } else {
    spec.bLoad = fill("        const int p = k % ${HW}, on = k / ${HW};\n"
                      "        src = &dy[((${I})on * ${O} + bo) * ${HW} + p];\n"
                      "        ok = true;\n",
                      v);
  }
  spec.epilogue = fill("        dw[(${I})o * ${CKK} + m] = s;\n", v);
  return emitImplicitGemm(em, spec);
}

}  // namespace shoal::cudagen::conv
