// CUDA codegen, convolution: direct 2-D convolution (grouped, depthwise) and its two gradients,
// conv_transpose2d, fused conv (+ activation, + max pool), Winograd's F(4 x 4, 3 x 3), and the
// choice among them and the implicit GEMMs (whose gathers and epilogues are cuda_conv_gemm.cpp's,
// their tiling cuda_kernels_igemm.cpp's). Shared parts: codegen/cuda_conv.h.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <limits>
#include <numeric>

#include "codegen/cuda_conv.h"
#include "codegen/cuda_emit.h"
#include "ir/conv_geometry.h"

namespace shoal::cudagen {

namespace conv {

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

}  // namespace conv

Expected<void> emitConv2d(NodeEmitter& em) { return conv::convForward(em, ""); }

Expected<void> emitFusedConv2d(NodeEmitter& em) {
  using namespace conv;
  return convForward(em, em.node().attrs().getString("activation", "relu"));
}

// fused_conv2d_pool: one thread per pooled output (n, o, py, px). It computes the conv outputs
// (oy, ox) of its pool window one by one -- the same sum, in the same order, as the direct conv
// kernel above, then bias and activation -- and keeps their first maximum (a NaN is taken, a
// window of padding only gives -inf), as emitMaxPool2d does. The conv output is never stored.
Expected<void> emitFusedConv2dPool(NodeEmitter& em) {
  using namespace conv;
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
  using namespace conv;
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
  using namespace conv;
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
