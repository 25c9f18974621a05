// CUDA codegen, convolution: direct 2-D convolution (grouped, depthwise) and its two gradients,
// conv_transpose2d, fused conv (+ activation, + max pool), and the gathers and epilogues of the
// tensor-core implicit GEMMs (whose tiling is cuda_kernels_igemm.cpp's).
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <limits>
#include <numeric>

#include "codegen/cuda_emit.h"
#include "ir/conv_geometry.h"

namespace shoal::cudagen {

namespace {

// Geometry of a conv2d: input [n,c,h,w], weight [o,cg,kh,kw], output [n,o,oh,ow]; `groups`
// groups of cg = c/groups channels and og = o/groups filters.
struct ConvGeom {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int64_t sh, sw, pt, pl, dh, dw;
  int64_t groups, cg, og;
};

ConvGeom convGeom(const Attrs& a, const Shape& x, const Shape& w) {
  ConvGeom g{};
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.o = w[0], g.kh = w[2], g.kw = w[3];
  const auto& s = a.getInts("stride");
  const auto& p = a.getInts("padding");
  const auto& d = a.getInts("dilation");
  g.sh = s[0], g.sw = s[1], g.pt = p[0], g.pl = p[1], g.dh = d[0], g.dw = d[1];
  g.oh = (g.h + p[0] + p[2] - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  g.ow = (g.w + p[1] + p[3] - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  g.groups = a.getInt("groups", 1);
  g.cg = g.c / g.groups, g.og = g.o / g.groups;
  return g;
}

// True when some window tap falls outside the image (padding), so kernels need bounds checks.
bool tapsLeaveImage(const ConvGeom& g) {
  return g.pt > 0 || g.pl > 0 || (g.oh - 1) * g.sh + g.dh * (g.kh - 1) >= g.h + g.pt ||
         (g.ow - 1) * g.sw + g.dw * (g.kw - 1) >= g.w + g.pl;
}

Vars convVars(const NodeEmitter& em, const ConvGeom& g) {
  return {{"T", em.T()},          {"I", em.I()},          {"N", intLit(g.n)},   {"C", intLit(g.c)},
          {"H", intLit(g.h)},     {"W", intLit(g.w)},     {"O", intLit(g.o)},   {"KH", intLit(g.kh)},
          {"KW", intLit(g.kw)},   {"OH", intLit(g.oh)},   {"OW", intLit(g.ow)}, {"SH", intLit(g.sh)},
          {"SW", intLit(g.sw)},   {"PT", intLit(g.pt)},   {"PL", intLit(g.pl)}, {"DH", intLit(g.dh)},
          {"DW", intLit(g.dw)},   {"KK", intLit(g.kh * g.kw)}, {"CG", intLit(g.cg)}, {"OG", intLit(g.og)},
          // Input row/column of output (oy, ox) at tap (ki, kj), and its inverse's numerator.
          {"IY", linear({{"oy", g.sh}, {"ki", g.dh}}, -g.pt)},
          {"IX", linear({{"ox", g.sw}, {"kj", g.dw}}, -g.pl)},
          {"TY", linear({{"iy", 1}, {"ki", -g.dh}}, g.pt)},
          {"TX", linear({{"ix", 1}, {"kj", -g.dw}}, g.pl)},
          // The input's element type and the function its loads go through (fused_conv2d_pool's
          // input_expr: `pro`); else T, and a plain load.
          {"XT", em.T()},
          {"PRO", ""}};
}

void setVar(Vars& v, const std::string& key, std::string value) {
  for (auto& [k, val] : v)
    if (k == key) {
      val = std::move(value);
      return;
    }
  v.push_back({key, std::move(value)});
}

}  // namespace

// One thread per output element; the reduction over (c, ki, kj) runs in T like the
// interpreter's gemm. The MNIST conv (C=1, 3x3) is memory-bound, so a direct kernel serves.
namespace {

// The direct conv kernel; `activation` (relu|sigmoid|tanh, or "" for none) is applied to each
// output as it is stored (fused_conv2d).
// The direct convolution's sum for output (n, o, oy, ox) into `acc`, indented by `ind`. The
// conv kernels and fused_conv2d_pool share it, so they add the same terms in the same order.
// Filter o reads the CG channels of its group (all C without groups; one when depthwise).
std::string convSumLoop(const std::string& ind, bool padded, bool grouped) {
  std::string s = ind + "${T} acc = (${T})0;\n";
  if (grouped) s += ind + "const int c0 = (o / ${OG}) * ${CG};\n";
  s += ind + "for (int c = 0; c < ${CG}; ++c) {\n";
  s += ind + (grouped ? "  const ${XT}* xc = x + (n * ${C} + c0 + c) * (${I})(${H} * ${W});\n"
                      : "  const ${XT}* xc = x + (n * ${C} + c) * (${I})(${H} * ${W});\n");
  s += ind + "  const ${T}* wc = w + (o * ${CG} + c) * ${KK};\n";
  s += "#pragma unroll\n";
  s += ind + "  for (int ki = 0; ki < ${KH}; ++ki) {\n";
  s += ind + "    const int iy = ${IY};\n";
  if (padded) s += ind + "    if (iy < 0 || iy >= ${H}) continue;\n";
  s += "#pragma unroll\n";
  s += ind + "    for (int kj = 0; kj < ${KW}; ++kj) {\n";
  s += ind + "      const int ix = ${IX};\n";
  if (padded) s += ind + "      if (ix < 0 || ix >= ${W}) continue;\n";
  s += ind + "      acc += ${PRO}(xc[iy * ${W} + ix]) * wc[ki * ${KW} + kj];\n";
  s += ind + "    }\n";
  s += ind + "  }\n";
  s += ind + "}\n";
  return s;
}

// ---- convolutions as implicit GEMMs on tensor cores (TF32; CudaCodegenOptions::
// tensorCores): each states its gathers and epilogue, emitImplicitGemm tiles.

// fused_conv2d's output_expr (fuse-conv-epilogue): the statements, indented by `ind`, that
// compute its program over r0 = `sum` (the biased sum) and r1, r2, ... = operands 3, 4, ... at
// element `at`, then store the result into y[at] -- what the fused_elementwise kernel it replaces
// computed from the stored conv output. The operands are kernel parameters e1, e2, ...
// (outputExprParams).
Expected<std::string> outputExprStore(const NodeEmitter& em, const std::string& sum, const std::string& at,
                                      const std::string& ind) {
  const Node& n = em.node();
  auto program = parseElementwiseExpr(n.attrs().getString("output_expr"), int(n.numInputs()) - 2);
  if (!program) return fail("output_expr: " + program.error().message());
  const std::string T = cudaType(em.computeType());
  std::string code = ind + "const " + T + " r0 = " + sum + ";\n";
  for (size_t i = 3; i < n.numInputs(); ++i)
    code += ind + fmt::format("const {} r{} = e{}[{}];\n", T, i - 2, i - 2, at);
  auto result = elementwiseProgramCode(*program, em.computeType(), ind, code);
  if (!result) return Unexpected(result.error());
  return code + ind + "y[" + at + "] = " + *result + ";\n";
}
bool hasOutputExpr(const Node& n) {
  return n.kind() == OpKind::FusedConv2d && !n.attrs().getString("output_expr", "").empty();
}
// The parameters "const T* __restrict__ e1, ..." of operands 3.. and their arguments.
std::string outputExprParams(const NodeEmitter& em) {
  std::string out;
  if (!hasOutputExpr(em.node())) return out;
  for (size_t i = 3; i < em.node().numInputs(); ++i)
    out += fmt::format("const {}* __restrict__ e{}, ", cudaType(em.computeType()), i - 2);
  return out;
}
void addOutputExprArgs(const NodeEmitter& em, std::vector<CudaArg>& args) {
  if (!hasOutputExpr(em.node())) return;
  for (size_t i = 3; i < em.node().numInputs(); ++i) args.push_back(em.in(i));
}

// Whether the implicit-GEMM form serves this convolution: f32, one group, reductions and
// extents that fit the kernel's int indices, and either tensor cores on or, in exact fp32, a
// product of at least CudaCodegenOptions::fp32ConvGemmMinMacs multiply-adds and filters and a
// reduction of at least fp32ConvGemmMinWidth (the CUDA cores' fp32 FMAs; ImplicitGemm::math
// Off). Else the direct kernels.
bool useTensorCores(const NodeEmitter& em, const ConvGeom& g) {
  const int64_t limit = std::numeric_limits<int>::max();
  if (em.computeType() != DType::F32 || g.groups != 1 || g.c * g.kh * g.kw >= limit || g.o * g.kh * g.kw >= limit ||
      g.n * g.oh * g.ow >= limit)
    return false;
  if (em.options().tensorCores != TensorCoreMath::Off) return true;
  const int64_t minMacs = em.options().fp32ConvGemmMinMacs;
  const double macs = double(g.n * g.oh * g.ow) * double(g.o) * double(g.c * g.kh * g.kw);
  const int64_t minWidth = em.options().fp32ConvGemmMinWidth;
  return minMacs >= 0 && macs >= double(minMacs) && g.o >= minWidth && g.c * g.kh * g.kw >= minWidth;
}

// conv vars with ${I} kept for emitImplicitGemm to fill.
Vars tcVars(const NodeEmitter& em, const ConvGeom& g) {
  Vars v = convVars(em, g);
  for (auto& [k, val] : v)
    if (k == "I") val = "${I}";
  v.push_back({"CKK", intLit(g.c * g.kh * g.kw)});
  v.push_back({"OKK", intLit(g.o * g.kh * g.kw)});
  return v;
}

// Forward: rows are output pixels (n, oy, ox), columns filters, the reduction (c, ki, kj); the
// epilogue adds the bias and applies the activation (fused_conv2d).
// With `intoScratch` the output goes to the module's scratch buffer instead (for a fused
// pooling kernel to read), and the reduction is not split (the slices would need the scratch).
// `input`: where x is read (default: operand 0).
Expected<void> convForwardTensorCore(NodeEmitter& em, const ConvGeom& g, const std::string& activation,
                                     bool intoScratch = false, std::optional<CudaArg> input = std::nullopt) {
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
  ChannelsLastCopy xCopy;
  if (half) {
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

// The taps of one axis that reach the input pixels of phase p (those at p + s * i'): the
// window positions ki * d - pad + s * oy that land on them are ki = first + j * step
// (j < count), at output row oy = i' + offset - j * skip. Stride 1 has one phase and every tap.
struct PhaseTaps {
  int64_t pixels = 0;  // input pixels of the phase along the axis
  int64_t first = 0, count = 0, step = 1, offset = 0, skip = 0;
};

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

// A stride-1 3 x 3 convolution's Winograd form (emitWinogradConv's, without its store): the
// forward's input x [n, c, h, w] and filters [o, c, 3, 3], or the data gradient's input dy [n,
// o, oh, ow] and the filters rotated and transposed (padding 2 - p). m = 0 where it does not
// serve (winogradTile).
struct WinogradChoice {
  WinogradConv spec;
  int m = 0;
};
WinogradChoice winogradFor(const NodeEmitter& em, const ConvGeom& g, bool dataGradient) {
  WinogradChoice out;
  if (g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1 || g.groups != 1) return out;
  WinogradConv& s = out.spec;
  s.n = g.n;
  if (dataGradient) {
    s.c = g.o, s.h = g.oh, s.w = g.ow, s.k = g.c, s.oh = g.h, s.ow = g.w, s.pt = 2 - g.pt, s.pl = 2 - g.pl;
  } else {
    s.c = g.c, s.h = g.h, s.w = g.w, s.k = g.o, s.oh = g.oh, s.ow = g.ow, s.pt = g.pt, s.pl = g.pl;
  }
  s.dataGradient = dataGradient;
  s.input = em.in(0);
  s.weight = em.in(1);
  out.m = winogradTile(em, s);
  return out;
}

// The forward in Winograd's form: the bias, then the activation or fused_conv2d's program, in
// the output transform's store (whose reads of the program's operands are coalesced).
Expected<void> convForwardWinograd(NodeEmitter& em, WinogradChoice choice, const std::string& activation) {
  const Node& n = em.node();
  const bool bias = n.numInputs() >= 3;
  WinogradConv& s = choice.spec;
  s.store = std::string("      const float sb = s") + (bias ? " + bias[o]" : "") + ";\n";
  if (hasOutputExpr(n)) {
    auto code = outputExprStore(em, "sb", "at", "      ");
    if (!code) return em.unsupported(code.error().message());
    s.store += *code;
  } else if (!activation.empty()) {
    std::string act = activationCode(activation, "float", "sb", "act", "      ");
    if (act.empty()) return em.unsupported("unknown activation '" + activation + "'");
    s.store += "      float act;\n" + act + "      y[at] = act;\n";
  } else {
    s.store += "      y[at] = sb;\n";
  }
  s.storeParams =
      std::string(bias ? "const float* __restrict__ bias, " : "") + outputExprParams(em) + "float* __restrict__ y";
  if (bias) s.storeArgs.push_back(em.in(2));
  addOutputExprArgs(em, s.storeArgs);
  s.storeArgs.push_back(em.out());
  return emitWinogradConv(em, s, choice.m);
}

Expected<void> convForward(NodeEmitter& em, const std::string& activation) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported(std::string(n.opName()) + " needs float operands");
  ConvGeom g = convGeom(n.attrs(), em.inShape(0), em.inShape(1));
  if (WinogradChoice wg = winogradFor(em, g, false); wg.m > 0) return convForwardWinograd(em, wg, activation);
  if (useTensorCores(em, g)) return convForwardTensorCore(em, g, activation);
  const bool bias = n.numInputs() >= 3;
  const bool padded = tapsLeaveImage(g);
  Vars v = convVars(em, g);
  v.push_back({"BIAS", bias ? "const ${T}* __restrict__ bias, " + outputExprParams(em) : ""});
  v.push_back({"TOTAL", intLit(g.n * g.o * g.oh * g.ow)});
  v.push_back({"SUM_LOOP", convSumLoop("    ", padded, g.groups > 1)});
  if (hasOutputExpr(n)) {
    auto code = outputExprStore(em, "acc + bias[o]", "i", "    ");
    if (!code) return em.unsupported(code.error().message());
    v.push_back({"STORE", *code});
  } else if (activation.empty()) {
    v.push_back({"STORE", bias ? "    y[i] = acc + bias[o];\n" : "    y[i] = acc;\n"});
  } else {
    std::string act = activationCode(activation, "${T}", "s", "r", "    ");
    if (act.empty()) return em.unsupported("unknown activation '" + activation + "'");
    v.push_back({"STORE", std::string(bias ? "    const ${T} s = acc + bias[o];\n" : "    const ${T} s = acc;\n") +
                              "    ${T} r;\n" + act + "    y[i] = r;\n"});
  }
  std::string params = fill(fill("const ${XT}* __restrict__ x, const ${T}* __restrict__ w, ${BIAS}${T}* __restrict__ y", v), v);
  std::string body = fill(fill(
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${TOTAL}; i += (${I})gridDim.x * blockDim.x) {\n"
      "    const int ox = (int)(i % ${OW});\n"
      "    const int oy = (int)((i / ${OW}) % ${OH});\n"
      "    const int o = (int)((i / (${OW} * ${OH})) % ${O});\n"
      "    const ${I} n = i / ((${I})${OW} * ${OH} * ${O});\n"
      "${SUM_LOOP}"
      "${STORE}"
      "  }\n",
      v), v);
  std::vector<CudaArg> args = {em.in(0), em.in(1)};
  if (bias) args.push_back(em.in(2));
  addOutputExprArgs(em, args);
  args.push_back(em.out());
  em.kernel("", params, body, args, gridFor(g.n * g.o * g.oh * g.ow));
  return {};
}

}  // namespace

namespace {

// ---- fused_conv2d_pool, register-blocked ------------------------------------------------
// One thread per (n, block of F filters, pooled py, px): it loads the input patch its window's
// conv outputs read (PR x PC values a channel, e.g. 4 x 4 for a 3x3 conv under a 2x2 pool of
// stride 2) into registers once, then each filter's taps once, and accumulates the F x (window
// cells) conv outputs there: 16 + 9F loads a channel where the thread-per-output form makes
// 72 per output (a 3x3 conv under a 2x2 pool). Each conv output is still the direct kernel's
// sum, term for term in the same order (channel, then ki, kj), so the results are those of
// conv + bias + activation + max-pool, bitwise. F grows (1..16, dividing the filters of a
// group) while enough threads remain to fill the GPU: large batches then share each filter
// tap load among F x cells multiply-adds; small ones keep a thread per filter.
// Whether `activation` names an op with the monotone trait (relu).
bool monotoneActivation(const std::string& activation) {
  auto kind = opKindFromName(activation);
  return kind && opInfo(*kind).traits.isMonotone;
}

struct ConvPoolBlocking {
  int64_t filters = 1;           ///< F
  int64_t patchH = 0, patchW = 0;  ///< PR x PC
};

std::optional<ConvPoolBlocking> convPoolBlocking(const CudaCodegenOptions& options, const ConvGeom& g,
                                                 const std::vector<int64_t>& pk, int64_t poolH, int64_t poolW) {
  ConvPoolBlocking b;
  b.patchH = (pk[0] - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  b.patchW = (pk[1] - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  const int64_t cells = pk[0] * pk[1];
  // Registers: the patch, F x cells sums; unrolled code: F x taps x cells multiply-adds.
  if (b.patchH * b.patchW > 64 || cells > 16 || g.kh * g.kw > 49) return std::nullopt;
  const int64_t positions = g.n * poolH * poolW;
  constexpr int64_t kFillThreads = 132 * 1024;  // an H100/H200's SMs, two 512-thread blocks each
  auto fits = [&](int64_t f) { return f <= 16 && g.og % f == 0 && f * cells <= 64 && f * cells * g.kh * g.kw <= 2048; };
  if (options.convPoolFilters > 0) {
    // Forced (tests): the largest power of two up to it that fits.
    while (b.filters * 2 <= options.convPoolFilters && fits(b.filters * 2)) b.filters *= 2;
    return b;
  }
  while (fits(b.filters * 2) && positions * (g.o / (b.filters * 2)) >= kFillThreads) b.filters *= 2;
  return b;
}

std::string convPoolBlockedBody(const Vars& convV, const ConvGeom& g, const ConvPoolBlocking& b, int64_t poolH,
                                int64_t poolW, const std::vector<int64_t>& pk, const std::vector<int64_t>& ps,
                                const std::vector<int64_t>& pp, bool padded, bool poolPadded, bool bias,
                                const std::string& act, bool monotone) {
  Vars v = convV;
  setVar(v, "TOTAL", intLit(g.n * (g.o / b.filters) * poolH * poolW));
  setVar(v, "F", intLit(b.filters));
  setVar(v, "OB", intLit(g.o / b.filters));
  setVar(v, "PR", intLit(b.patchH));
  setVar(v, "PC", intLit(b.patchW));
  setVar(v, "PKH", intLit(pk[0]));
  setVar(v, "PKW", intLit(pk[1]));
  setVar(v, "CELLS", intLit(pk[0] * pk[1]));
  std::string s;
  s += "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${TOTAL}; i += (${I})gridDim.x * blockDim.x) {\n";
  s += "    const int px = (int)(i % ${POW});\n";
  s += "    const int py = (int)((i / ${POW}) % ${POH});\n";
  s += "    const int o0 = (int)((i / (${POW} * ${POH})) % ${OB}) * ${F};\n";
  s += "    const ${I} n = i / ((${I})${POW} * ${POH} * ${OB});\n";
  s += "    const int ys = " + linear({{"py", ps[0]}}, -pp[0]) + ", xs = " + linear({{"px", ps[1]}}, -pp[1]) + ";\n";
  s += "    const int iy0 = " + linear({{"ys", g.sh}}, -g.pt) + ", ix0 = " + linear({{"xs", g.sw}}, -g.pl) + ";\n";
  s += "    ${T} acc[${F}][${CELLS}];\n";
  s += "#pragma unroll\n    for (int f = 0; f < ${F}; ++f)\n";
  s += "#pragma unroll\n      for (int e = 0; e < ${CELLS}; ++e) acc[f][e] = (${T})0;\n";
  s += g.groups > 1 ? "    const int cb = (o0 / ${OG}) * ${CG};\n" : "    const int cb = 0;\n";
  s += "    for (int c = 0; c < ${CG}; ++c) {\n";
  s += "      const ${XT}* xc = x + (n * ${C} + cb + c) * (${I})(${H} * ${W});\n";
  s += "      ${T} p[${PR}][${PC}];\n";
  const bool guard = padded || poolPadded;
  if (padded) s += "      bool in[${PR}][${PC}];\n";
  s += "#pragma unroll\n      for (int r = 0; r < ${PR}; ++r)\n";
  s += "#pragma unroll\n        for (int q = 0; q < ${PC}; ++q) {\n";
  if (guard) {
    // Taps off the image (padding) and the rows and columns of a pool window's cells past the
    // conv output (pool padding, ceil mode; those cells are never pooled) read nothing.
    s += "          const int iy = iy0 + r, ix = ix0 + q;\n";
    s += "          const bool ok = iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W};\n";
    s += "          p[r][q] = ok ? ${PRO}(xc[iy * ${W} + ix]) : (${T})0;\n";
    if (padded) s += "          in[r][q] = ok;\n";
  } else {
    s += "          p[r][q] = ${PRO}(xc[(iy0 + r) * ${W} + ix0 + q]);\n";
  }
  s += "        }\n";
  s += "#pragma unroll\n      for (int f = 0; f < ${F}; ++f) {\n";
  s += "        const ${T}* wc = w + ((o0 + f) * ${CG} + c) * ${KK};\n";
  s += "#pragma unroll\n        for (int ki = 0; ki < ${KH}; ++ki)\n";
  s += "#pragma unroll\n          for (int kj = 0; kj < ${KW}; ++kj) {\n";
  s += "            const ${T} wv = wc[ki * ${KW} + kj];\n";
  s += "#pragma unroll\n            for (int wy = 0; wy < ${PKH}; ++wy)\n";
  s += "#pragma unroll\n              for (int wx = 0; wx < ${PKW}; ++wx) {\n";
  const std::string r = linear({{"wy", g.sh}, {"ki", g.dh}}, 0), q = linear({{"wx", g.sw}, {"kj", g.dw}}, 0);
  // A tap off the image is skipped, as the direct kernel's `continue` does (not added as 0 * w).
  s += std::string("                ") + (padded ? "if (in[" + r + "][" + q + "]) " : "") + "acc[f][wy * ${PKW} + wx] += p[" +
       r + "][" + q + "] * wv;\n";
  s += "              }\n";
  s += "          }\n";
  s += "      }\n";
  s += "    }\n";
  s += "#pragma unroll\n    for (int f = 0; f < ${F}; ++f) {\n";
  s += "      const int o = o0 + f;\n";
  s += "      ${T} best = shoal_neg_inf((${T})0);\n";
  s += "      bool found = false;\n";
  s += "#pragma unroll\n      for (int wy = 0; wy < ${PKH}; ++wy)\n";
  s += "#pragma unroll\n        for (int wx = 0; wx < ${PKW}; ++wx) {\n";
  if (poolPadded) {
    s += "          const int oy = ys + wy, ox = xs + wx;\n";
    s += "          if (oy < 0 || oy >= ${OH} || ox < 0 || ox >= ${OW}) continue;\n";
  }
  const std::string sum = bias ? "acc[f][wy * ${PKW} + wx] + bias[o]" : "acc[f][wy * ${PKW} + wx]";
  if (monotone) {
    // The activation is monotone (its op's trait): the window's largest sum, then bias and
    // activation once -- the same bits as the maximum of the activated outputs, with one
    // activation instead of one a cell (rounding of the bias add is monotone too).
    s += "          const ${T} v = acc[f][wy * ${PKW} + wx];\n";
    s += "          if (v > best || v != v || !found) { best = v; found = true; }\n";
    s += "        }\n";
    s += "      if (found) {\n";
    s += bias ? "        const ${T} s = best + bias[o];\n" : "        const ${T} s = best;\n";
    s += "        ${T} r;\n";
    s += act;
    s += "        best = r;\n";
    s += "      }\n";
  } else {
    s += "          const ${T} s = " + sum + ";\n";
    s += "          ${T} r;\n";
    s += act;
    s += "          if (r > best || r != r || !found) { best = r; found = true; }\n";
    s += "        }\n";
  }
  s += "      y[((n * ${O} + o) * ${POH} + py) * (${I})${POW} + px] = best;  // -inf when the window held padding only\n";
  s += "    }\n";
  s += "  }\n";
  return fill(fill(s, v), v);
}

}  // namespace

Expected<void> emitConv2d(NodeEmitter& em) { return convForward(em, ""); }

Expected<void> emitFusedConv2d(NodeEmitter& em) {
  return convForward(em, em.node().attrs().getString("activation", "relu"));
}

// fused_conv2d_pool: one thread per pooled output (n, o, py, px). It computes the conv outputs
// (oy, ox) of its pool window one by one -- the same sum, in the same order, as the direct conv
// kernel above, then bias and activation -- and keeps their first maximum (a NaN is taken, a
// window of padding only gives -inf), as emitMaxPool2d does. The conv output is never stored.
Expected<void> emitFusedConv2dPool(NodeEmitter& em) {
  const Node& n = em.node();
  const Attrs& a = n.attrs();
  // input_expr (fuse-conv-prologue): the input's raw values go through `pro` as they load --
  // converted to T, then the program, as the fused_elementwise kernel it replaces computes them.
  const std::string& inputExpr = a.getString("input_expr", "");
  std::string prologue, prologueCode;
  if (inputExpr.empty()) {
    if (!isFloatNode(n)) return em.unsupported("fused_conv2d_pool needs float operands");
  } else {
    if (!isFloat(n.input(1)->type().dtype) || !convertsOnLoad(n.input(0)->type().dtype))
      return em.unsupported("fused_conv2d_pool with input_expr reads u8, i8, i32, f32 or f64 into float weights");
    auto program = parseElementwiseExpr(inputExpr, 1);
    if (!program) return em.unsupported("input_expr: " + program.error().message());
    std::string code;  // over r0, the value converted to T
    auto result = elementwiseProgramCode(*program, em.computeType(), "    ", code);
    if (!result) return em.unsupported(result.error().message());
    prologue = "  auto pro = [](const ${XT} raw) -> ${T} {\n    const ${T} r0 = (${T})raw;\n" + code + "    return " +
               *result + ";\n  };\n";
    prologueCode = code + "    y[i] = " + *result + ";\n";
  }
  ConvGeom g = convGeom(a, em.inShape(0), em.inShape(1));
  const bool bias = n.numInputs() == 3;
  const bool padded = tapsLeaveImage(g);
  const auto& pk = a.getInts("pool_kernel");
  const auto& ps = a.getInts("pool_stride");
  const auto& pp = a.getInts("pool_padding");
  const bool poolCeil = a.getInt("pool_ceil_mode", 0) != 0;
  const int64_t poolH = poolOutputSize(g.oh, pk[0], ps[0], pp[0], pp[2], poolCeil);
  const int64_t poolW = poolOutputSize(g.ow, pk[1], ps[1], pp[1], pp[3], poolCeil);
  // Windows that may leave the conv output need clipping.
  const bool poolPadded = pp[0] > 0 || pp[1] > 0 || pp[2] > 0 || pp[3] > 0 || poolCeil;
  std::string activation = a.getString("activation", "relu");
  std::string act = activationCode(activation, "${T}", "s", "r", "        ");
  if (act.empty()) return em.unsupported("unknown activation '" + activation + "'");
  const int64_t total = g.n * g.o * poolH * poolW;
  Vars v = convVars(em, g);
  if (!inputExpr.empty()) {
    setVar(v, "XT", cudaType(n.input(0)->type().dtype));
    setVar(v, "PRO", "pro");
  }
  v.push_back({"BIAS", bias ? "const ${T}* __restrict__ bias, " : ""});
  v.push_back({"TOTAL", intLit(total)});
  v.push_back({"POH", intLit(poolH)});
  v.push_back({"POW", intLit(poolW)});
  v.push_back({"PKH", intLit(pk[0])});
  v.push_back({"PKW", intLit(pk[1])});
  v.push_back({"SUM_LOOP", convSumLoop("        ", padded, g.groups > 1)});
  v.push_back({"SUM", bias ? "        const ${T} s = acc + bias[o];\n" : "        const ${T} s = acc;\n"});
  v.push_back({"ACT", act});
  // The window's conv rows and columns, unrolled: `in` says whether (oy, ox) lies in the conv
  // output (always, unless the pool pads or rounds up), so every tap's load is issued before the
  // comparisons (loops bounded by the window's in-image part made each load wait for the one
  // before it: ResNet-18's stem pool, padded, read its conv output at ~1.8 TB/s).
  v.push_back({"WINDOW", std::string(poolPadded ? "    const int ys = " + linear({{"py", ps[0]}}, -pp[0]) +
                                                   ", xs = " + linear({{"px", ps[1]}}, -pp[1]) + ";\n"
                                             : "") +
                             "#pragma unroll\n"
                             "    for (int wy = 0; wy < ${PKH}; ++wy)\n"
                             "#pragma unroll\n"
                             "      for (int wx = 0; wx < ${PKW}; ++wx) {\n" +
                             (poolPadded ? "        const int oy = ys + wy, ox = xs + wx;\n"
                                        "        const bool in = oy >= 0 && oy < ${OH} && ox >= 0 && ox < ${OW};\n"
                                      : "        const int oy = " + linear({{"py", ps[0]}, {"wy", 1}}, 0) + ";\n"
                                        "        const int ox = " + linear({{"px", ps[1]}, {"wx", 1}}, 0) + ";\n"
                                        "        const bool in = true;\n")});
  const int64_t inputElems = g.n * g.c * g.h * g.w;
  // With input_expr the tensor-core kernels need the input's values first (they copy operands
  // into shared memory as they are, by cp.async): written into this node's own output buffer,
  // when it is large enough (the pooling writes it last), else the direct kernels serve.
  const bool prologueFits = inputExpr.empty() || total >= inputElems;
  if (prologueFits && useTensorCores(em, g)) {
    std::optional<CudaArg> input;
    if (!inputExpr.empty()) {
      em.elementwise("prologue", fill("const ${XT}* __restrict__ x, ${T}* __restrict__ y", v),
                     fill("    const ${T} r0 = (${T})x[i];\n" + prologueCode, v), {em.in(0), em.out()}, inputElems);
      input = em.out();
    }
    // On tensor cores the convolution (bias and activation in its epilogue) is one implicit
    // GEMM into scratch, and a second kernel takes the window maxima from there.
    if (auto ok = convForwardTensorCore(em, g, activation, /*intoScratch=*/true, input); !ok) return ok;
    std::string body = fill(fill(
        "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${TOTAL}; i += (${I})gridDim.x * blockDim.x) {\n"
        "    const int px = (int)(i % ${POW});\n"
        "    const int py = (int)((i / ${POW}) % ${POH});\n"
        "    const ${I} plane = i / ((${I})${POW} * ${POH});\n"
        "    const float* cp = conv + plane * (${I})(${OH} * ${OW});\n"
        "    float best = shoal_neg_inf(0.0f);\n"
        "    bool found = false;\n"
        "${WINDOW}"
        "        const float r = in ? cp[oy * ${OW} + ox] : 0.0f;\n"
        "        if (in && (r > best || r != r || !found)) { best = r; found = true; }\n"
        "      }\n"
        "    y[i] = best;  // -inf when the window held padding only\n"
        "  }\n",
        v), v);
    em.kernel("pool", "const float* __restrict__ conv, float* __restrict__ y", body, {NodeEmitter::scratch(), em.out()},
              gridFor(total));
    return {};
  }
  std::string params = fill(fill("const ${XT}* __restrict__ x, const ${T}* __restrict__ w, ${BIAS}${T}* __restrict__ y", v), v);
  std::vector<CudaArg> args = {em.in(0), em.in(1)};
  if (bias) args.push_back(em.in(2));
  args.push_back(em.out());
  if (auto blocked = convPoolBlocking(em.options(), g, pk, poolH, poolW)) {
    em.kernel("", params,
              fill(fill(prologue, v), v) + convPoolBlockedBody(v, g, *blocked, poolH, poolW, pk, ps, pp, padded,
                                                               poolPadded, bias, act, monotoneActivation(activation)),
              args,
              gridFor(g.n * (g.o / blocked->filters) * poolH * poolW));
    return {};
  }
  std::string body = fill(fill(
      prologue +
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${TOTAL}; i += (${I})gridDim.x * blockDim.x) {\n"
      "    const int px = (int)(i % ${POW});\n"
      "    const int py = (int)((i / ${POW}) % ${POH});\n"
      "    const int o = (int)((i / (${POW} * ${POH})) % ${O});\n"
      "    const ${I} n = i / ((${I})${POW} * ${POH} * ${O});\n"
      "    ${T} best = shoal_neg_inf((${T})0);\n"
      "    bool found = false;\n"
      "${WINDOW}"
      "        if (!in) continue;  // a cell past the conv output (pool padding, ceil mode)\n"
      "${SUM_LOOP}"
      "${SUM}"
      "        ${T} r;\n"
      "${ACT}"
      "        if (r > best || r != r || !found) { best = r; found = true; }\n"
      "      }\n"
      "    y[i] = best;  // -inf when the window held padding only\n"
      "  }\n",
      v), v);
  em.kernel("", params, body, args, gridFor(total));
  return {};
}

// dx by gathering, one thread per input pixel: the sum over every (o, ki, kj) of its group
// whose window position lands on it. No atomics, so the result is reproducible. The same
// kernel is conv_transpose2d's forward (x in the role of dy, the output in dx's, plus its bias):
// the output extents of the convolution are read off operand 0, which output_padding may
// make differ from what the padding alone gives.
Expected<void> emitConv2dBackwardData(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported(std::string(n.opName()) + " needs float operands");
  ConvGeom g = convGeom(n.attrs(), em.outShape(), em.inShape(1));
  g.oh = em.inShape(0)[2], g.ow = em.inShape(0)[3];
  const bool bias = n.numInputs() == 3;
  const bool grouped = g.groups > 1;
  // conv_transpose2d's operands keep their own names in the kernel: x in, y out.
  const bool transpose = n.kind() == OpKind::ConvTranspose2d;
  if (WinogradChoice wg = winogradFor(em, g, true); wg.m > 0) {
    // The filters rotated and transposed, the padding 2 - p: the same form as a forward.
    wg.spec.store = std::string("      out[at] = s") + (bias ? " + bias[o]" : "") + ";\n";
    wg.spec.storeParams = std::string(bias ? "const float* __restrict__ bias, " : "") + "float* __restrict__ out";
    if (bias) wg.spec.storeArgs.push_back(em.in(2));
    wg.spec.storeArgs.push_back(em.out());
    return emitWinogradConv(em, wg.spec, wg.m);
  }
  if (useTensorCores(em, g) && g.n * g.h * g.w < std::numeric_limits<int>::max())
    return convBackwardDataTensorCore(em, g, transpose, bias);
  Vars v = convVars(em, g);
  v.push_back({"TOTAL", intLit(g.n * g.c * g.h * g.w)});
  v.push_back({"YSTRIDE", g.sh == 1 ? "" : "        if (ty % ${SH} != 0) continue;\n"});
  v.push_back({"XSTRIDE", g.sw == 1 ? "" : "          if (tx % ${SW} != 0) continue;\n"});
  v.push_back({"BIAS", bias ? "const ${T}* __restrict__ bias, " : ""});
  v.push_back({"GRAD", transpose ? "x" : "dy"});
  v.push_back({"OUT", transpose ? "y" : "dx"});
  v.push_back({"STORE", bias ? "    ${OUT}[i] = acc + bias[c];\n" : "    ${OUT}[i] = acc;\n"});
  // Pixel channel c meets the filters of its group, at weight channel c mod CG.
  v.push_back({"FILTERS", grouped ? "    const int o0 = (c / ${CG}) * ${OG};\n"
                                    "    for (int o = o0; o < o0 + ${OG}; ++o) {\n"
                                  : "    for (int o = 0; o < ${O}; ++o) {\n"});
  v.push_back({"WC", grouped ? "c % ${CG}" : "c"});
  std::string params =
      fill(fill("const ${T}* __restrict__ ${GRAD}, const ${T}* __restrict__ w, ${BIAS}${T}* __restrict__ ${OUT}", v), v);
  std::string body = fill(fill(
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${TOTAL}; i += (${I})gridDim.x * blockDim.x) {\n"
      "    const int ix = (int)(i % ${W});\n"
      "    const int iy = (int)((i / ${W}) % ${H});\n"
      "    const int c = (int)((i / (${W} * ${H})) % ${C});\n"
      "    const ${I} n = i / ((${I})${W} * ${H} * ${C});\n"
      "    ${T} acc = (${T})0;\n"
      "${FILTERS}"
      "      const ${T}* dyp = ${GRAD} + (n * ${O} + o) * (${I})(${OH} * ${OW});\n"
      "      const ${T}* wp = w + (o * ${CG} + ${WC}) * ${KK};\n"
      "#pragma unroll\n"
      "      for (int ki = 0; ki < ${KH}; ++ki) {\n"
      "        const int ty = ${TY};\n"
      "        if (ty < 0) continue;\n"
      "${YSTRIDE}"
      "        const int oy = ty / ${SH};\n"
      "        if (oy >= ${OH}) continue;\n"
      "#pragma unroll\n"
      "        for (int kj = 0; kj < ${KW}; ++kj) {\n"
      "          const int tx = ${TX};\n"
      "          if (tx < 0) continue;\n"
      "${XSTRIDE}"
      "          const int ox = tx / ${SW};\n"
      "          if (ox >= ${OW}) continue;\n"
      "          acc += dyp[oy * ${OW} + ox] * wp[ki * ${KW} + kj];\n"
      "        }\n"
      "      }\n"
      "    }\n"
      "${STORE}"
      "  }\n",
      v), v);
  std::vector<CudaArg> args = {em.in(0), em.in(1)};
  if (bias) args.push_back(em.in(2));
  args.push_back(em.out());
  em.kernel("", params, body, args, gridFor(g.n * g.c * g.h * g.w));
  return {};
}

// dw[o,c,ki,kj] = Σ_{n,oy,ox} dy[n,o,oy,ox] · x[n,c,iy,ix]: a long reduction (N·OH·OW terms)
// for few outputs. One block per (o, c) (c over the CG weight channels; x's channel is the one
// of o's group) and split s of the reduction, each thread keeping KH·KW double accumulators;
// fixed-order block sums; when split, a second kernel adds the splits in order. No atomics:
// bitwise reproducible.
Expected<void> emitConv2dBackwardWeight(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported("conv2d_backward_weight needs float operands");
  ConvGeom g = convGeom(n.attrs(), em.inShape(0), em.outShape());
  const int64_t reduce = g.n * g.oh * g.ow;
  const int64_t pairs = g.o * g.cg;
  const int64_t kk = g.kh * g.kw;
  if (pairs == 0 || kk == 0) return {};  // an empty weight: nothing to write
  if (WinogradChoice wg = winogradFor(em, g, false); wg.m > 0) {
    wg.spec.weight = {};
    wg.spec.gradient = em.in(1);
    return emitWinogradWeightGradient(em, wg.spec, wg.m);
  }
  if (useTensorCores(em, g)) return convBackwardWeightTensorCore(em, g);
  int64_t splits = std::clamp<int64_t>((kTargetBlocks + pairs - 1) / std::max<int64_t>(pairs, 1), 1,
                                       std::max<int64_t>(1, reduce / 2048));
  splits = std::min<int64_t>(splits, 65535);
  const int64_t chunk = (reduce + splits - 1) / std::max<int64_t>(splits, 1);
  const bool padded = tapsLeaveImage(g);
  Vars v = convVars(em, g);
  v.push_back({"REDUCE", intLit(reduce)});
  v.push_back({"CHUNK", intLit(chunk)});
  v.push_back({"SPLITS", intLit(splits)});
  v.push_back({"CHECK", padded ? "        if (iy < 0 || iy >= ${H} || ix < 0 || ix >= ${W}) continue;\n" : ""});
  v.push_back({"RESULT", splits == 1 ? "${T}* __restrict__ dw" : "double* __restrict__ partial"});
  v.push_back({"STORE", splits == 1 ? "dw[(o * ${CG} + c) * ${KK} + k] = (${T})s;"
                                    : "partial[((o * ${CG} + c) * ${SPLITS} + blockIdx.y) * ${KK} + k] = s;"});
  v.push_back({"XC", g.groups > 1 ? "(o / ${OG}) * ${CG} + c" : "c"});
  v.push_back({"RK", std::to_string(std::min<int64_t>(kk, 32))});
  v.push_back({"WARPS", std::to_string(kWarpsPerBlock)});
  std::string params = fill(fill("const ${T}* __restrict__ x, const ${T}* __restrict__ dy, ${RESULT}", v), v);
  std::string body = fill(fill(
      "  __shared__ double red[${RK} * ${WARPS}];\n"
      "  const int c = (int)(blockIdx.x % ${CG});\n"
      "  const int o = (int)(blockIdx.x / ${CG});\n"
      "  const ${I} begin = (${I})blockIdx.y * ${CHUNK};\n"
      "  const ${I} end = begin + ${CHUNK} < ${REDUCE} ? begin + ${CHUNK} : ${REDUCE};\n"
      "  double acc[${KK}];\n"
      "#pragma unroll\n"
      "  for (int k = 0; k < ${KK}; ++k) acc[k] = 0.0;\n"
      "#pragma unroll 4  // four terms' loads in flight at once (the loop is latency-bound)\n"
      "  for (${I} r = begin + threadIdx.x; r < end; r += blockDim.x) {\n"
      "    const int ox = (int)(r % ${OW});\n"
      "    const int oy = (int)((r / ${OW}) % ${OH});\n"
      "    const ${I} n = r / (${OW} * ${OH});\n"
      "    const double g = (double)dy[((n * ${O} + o) * ${OH} + oy) * ${OW} + ox];\n"
      "    const ${T}* xc = x + (n * ${C} + ${XC}) * (${I})(${H} * ${W});\n"
      "#pragma unroll\n"
      "    for (int ki = 0; ki < ${KH}; ++ki) {\n"
      "#pragma unroll\n"
      "      for (int kj = 0; kj < ${KW}; ++kj) {\n"
      "        const int iy = ${IY};\n"
      "        const int ix = ${IX};\n"
      "${CHECK}"
      "        acc[ki * ${KW} + kj] += g * (double)xc[iy * ${W} + ix];\n"
      "      }\n"
      "    }\n"
      "  }\n"
      // The KK block sums together: every accumulator's warp sum (independent shuffles), one
      // barrier, then thread k adds the warps' sums of accumulator k in warp order; RK
      // accumulators at a time (the shared array's size). Nine sequential block sums, two
      // barriers each, had been most of this kernel's time for a 3 x 3 kernel.
      "  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;\n"
      "#pragma unroll\n"
      "  for (int k0 = 0; k0 < ${KK}; k0 += ${RK}) {\n"
      "#pragma unroll\n"
      "    for (int kr = 0; kr < ${RK}; ++kr) {\n"
      "      if (k0 + kr < ${KK}) {\n"
      "        const double s = shoal_warp_sum(acc[k0 + kr]);\n"
      "        if (lane == 0) red[kr * ${WARPS} + warp] = s;\n"
      "      }\n"
      "    }\n"
      "    __syncthreads();\n"
      "    if (threadIdx.x < ${RK} && k0 + (int)threadIdx.x < ${KK}) {\n"
      "      const int k = k0 + (int)threadIdx.x;\n"
      "      double s = 0.0;\n"
      "      for (int w = 0; w < ${WARPS}; ++w) s += red[threadIdx.x * ${WARPS} + w];\n"
      "      ${STORE}\n"
      "    }\n"
      "    __syncthreads();  // red is written again by the next round\n"
      "  }\n",
      v), v);
  std::vector<CudaArg> args = {em.in(0), em.in(1), splits == 1 ? em.out() : NodeEmitter::scratch()};
  em.kernel(splits == 1 ? "" : "partial", params, body, args, unsigned(pairs), unsigned(splits));
  if (splits > 1) {
    em.needScratch(pairs * splits * kk * int64_t(sizeof(double)));
    const int64_t outputs = pairs * kk;
    em.elementwise("sum", fill("const double* __restrict__ partial, ${T}* __restrict__ dw", v),
                   fill("    const ${I} pair = i / ${KK}, k = i % ${KK};\n"
                        "    double s = 0.0;\n"
                        "    for (int split = 0; split < ${SPLITS}; ++split) s += partial[(pair * ${SPLITS} + split) * ${KK} + k];\n"
                        "    dw[i] = (${T})s;\n",
                        v),
                   {NodeEmitter::scratch(), em.out()}, outputs);
  }
  return {};
}

}  // namespace shoal::cudagen
