// CUDA codegen, pooling: max and average pooling and their gradients (gather formulations: no
// atomics), global average pooling.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <limits>
#include <numeric>

#include "codegen/cuda_emit.h"
#include "ir/conv_geometry.h"

namespace shoal::cudagen {

namespace {

// Geometry of a pooling: input [n,c,h,w], output [n,c,oh,ow] (floor or ceil mode).
struct PoolGeom {
  int64_t n, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, oh, ow;
  bool ceilMode, countIncludePad;
};

PoolGeom poolGeom(const Attrs& a, const Shape& x) {
  PoolGeom g{};
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  const auto& k = a.getInts("kernel");
  const auto& s = a.getInts("stride");
  const auto& p = a.getInts("padding");
  g.kh = k[0], g.kw = k[1], g.sh = s[0], g.sw = s[1], g.pt = p[0], g.pl = p[1], g.pb = p[2], g.pr = p[3];
  g.ceilMode = a.getInt("ceil_mode", 0) != 0;
  g.countIncludePad = a.getInt("count_include_pad", 1) != 0;
  g.oh = poolOutputSize(g.h, g.kh, g.sh, g.pt, g.pb, g.ceilMode);
  g.ow = poolOutputSize(g.w, g.kw, g.sw, g.pl, g.pr, g.ceilMode);
  return g;
}

Vars poolVars(const NodeEmitter& em, const PoolGeom& g) {
  return {{"T", em.T()},      {"I", em.I()},        {"H", intLit(g.h)},   {"W", intLit(g.w)},
          {"KH", intLit(g.kh)}, {"KW", intLit(g.kw)}, {"SH", intLit(g.sh)}, {"SW", intLit(g.sw)},
          {"PT", intLit(g.pt)}, {"PL", intLit(g.pl)}, {"OH", intLit(g.oh)}, {"OW", intLit(g.ow)},
          {"PB", intLit(g.pb)}, {"PR", intLit(g.pr)},
          {"PLANES", intLit(g.n * g.c)},
          {"YS", linear({{"oy", g.sh}}, -g.pt)},  {"XS", linear({{"ox", g.sw}}, -g.pl)}};
}

// The divisor of average window (oy, ox), as an int expression over its start (ys, xs) and
// in-image bounds [y0, y1) x [x0, x1): the interpreter's avgPoolSpan rule. Whole kernels in
// floor mode with padding counted (PyTorch's defaults): the constant kh·kw.
std::string avgPoolDivisor(const PoolGeom& g) {
  if (!g.countIncludePad) return "(y1 - y0) * (x1 - x0)";
  if (!g.ceilMode) return intLit(g.kh * g.kw);
  return "((ys + ${KH} < ${H} + ${PB} ? ys + ${KH} : ${H} + ${PB}) - ys) * "
         "((xs + ${KW} < ${W} + ${PR} ? xs + ${KW} : ${W} + ${PR}) - xs)";
}

// The first output row (or column) `v`Lo whose window covers input row `x`: the least v with
// x < v·s - p + k, at least 0.
std::string coveringFirst(const std::string& v, const char* x, int64_t p, int64_t k, int64_t s) {
  std::string code = "    const int " + v + "t = " + linear({{x, 1}}, p - k + 1) + ";\n";
  code += "    const int " + v + "Lo = " + v + "t <= 0 ? 0 : " +
          (s == 1 ? v + "t" : "(" + v + "t + " + std::to_string(s - 1) + ") / " + std::to_string(s)) + ";\n";
  return code;
}

// The last output row (or column) `v`Hi whose window covers input row `x`: the greatest v with
// v·s - p <= x, at most out - 1.
std::string coveringLast(const std::string& v, const char* x, int64_t p, int64_t s, int64_t out) {
  std::string hi = linear({{x, 1}}, p);
  if (s != 1) hi = "(" + hi + ") / " + std::to_string(s);
  std::string code = "    const int " + v + "HiRaw = " + hi + ";\n";
  code += "    const int " + v + "Hi = " + v + "HiRaw < " + std::to_string(out - 1) + " ? " + v + "HiRaw : " +
          std::to_string(out - 1) + ";\n";
  return code;
}

// The range [lo, hi] of output rows (or columns) `v` whose window covers input row `x`:
// v·s - p <= x < v·s - p + k, clamped to [0, out).
std::string coveringWindows(const char* v, const char* x, int64_t p, int64_t k, int64_t s, int64_t out) {
  return coveringFirst(v, x, p, k, s) + coveringLast(v, x, p, s, out);
}

// The first maximum of window (oy, ox) of plane `xp`, as the interpreter's windowArgmax
// (a NaN is taken; -1 for a window of padding only). Declares `best` and `bestIdx`. The taps
// are compared in row-major order, each where it lies in the image. Windows of up to 64 taps
// are unrolled with every tap loaded first (a predicated load each) into `tap`, so the loads
// are all issued before the comparisons: loops bounded by the window's in-image part made each
// load wait for the comparison before it (ResNet-18's stem pool read its 411 MB at ~1.6 TB/s).
// Larger windows load each tap as they compare it. Either way the same tap wins.
std::string windowArgmax(const PoolGeom& g) {
  const bool unrolled = g.kh * g.kw <= 64;
  const std::string unroll = unrolled ? "#pragma unroll\n" : "";
  const std::string in = "iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W}";
  std::string s = "    const int ys = ${YS}, xs = ${XS};\n";
  if (unrolled)
    s += "    ${T} tap[${KH} * ${KW}];\n"
         "#pragma unroll\n"
         "    for (int ki = 0; ki < ${KH}; ++ki)\n"
         "#pragma unroll\n"
         "      for (int kj = 0; kj < ${KW}; ++kj) {\n"
         "        const int iy = ys + ki, ix = xs + kj;\n"
         "        tap[ki * ${KW} + kj] = " + in + " ? xp[iy * ${W} + ix] : (${T})0;\n"
         "      }\n";
  return s + "    ${T} best = shoal_neg_inf((${T})0);\n"
             "    int bestIdx = -1;\n" +
         unroll + "    for (int ki = 0; ki < ${KH}; ++ki)\n" + unroll +
         "      for (int kj = 0; kj < ${KW}; ++kj) {\n"
         "        const int iy = ys + ki, ix = xs + kj;\n"
         "        if (!(" + in + ")) continue;\n"
         "        const ${T} v = " + (unrolled ? "tap[ki * ${KW} + kj]" : "xp[iy * ${W} + ix]") + ";\n"
         "        if (v > best || v != v || bestIdx < 0) {\n"
         "          best = v;\n"
         "          bestIdx = iy * ${W} + ix;\n"
         "        }\n"
         "      }\n";
}

}  // namespace

// One thread per output window; the first maximum wins ties, NaN propagates.
Expected<void> emitMaxPool2d(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported("maxpool2d needs a float operand");
  PoolGeom g = poolGeom(n.attrs(), em.inShape(0));
  Vars v = poolVars(em, g);
  v.push_back({"ARGMAX", fill(windowArgmax(g), v)});
  const int64_t total = g.n * g.c * g.oh * g.ow;
  em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v),
                 fill("    const int ox = (int)(i % ${OW});\n"
                      "    const int oy = (int)((i / ${OW}) % ${OH});\n"
                      "    const ${T}* xp = x + (i / (${OW} * ${OH})) * (${I})(${H} * ${W});\n"
                      "${ARGMAX}"
                      "    y[i] = bestIdx < 0 ? shoal_neg_inf((${T})0) : best;\n",
                      v),
                 {em.in(0), em.out()}, total);
  return {};
}

// When windows cannot overlap (stride >= kernel in both axes), one kernel: a thread per window
// finds its first maximum (the forward's scan) and writes its whole cell -- the window and the
// gap after it, the last row and column of cells reaching the image's edge, so the cells tile
// the image -- dy at the maximum (if > 0 with relu_mask: the maximum is x there), 0 elsewhere.
// Otherwise two kernels, no atomics: one thread per window writes the index of its first
// maximum (the interpreter's rule) into scratch -- with relu_mask (relu_grad fused) -1 where
// that maximum is not > 0, as ReluGrad's formula on the pixel that holds it would zero its
// gradient; then one thread per input pixel adds, in the interpreter's row-major window order,
// the dy of each covering window whose maximum it is. The second kernel reads no x: the
// windows' indices say all it needs (ResNet-18's stem pool at batch 128, 411 MB a step).
Expected<void> emitMaxPool2dGrad(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported("maxpool2d_grad needs float operands");
  PoolGeom g = poolGeom(n.attrs(), em.inShape(0));
  Vars v = poolVars(em, g);
  v.push_back({"ARGMAX", fill(windowArgmax(g), v)});
  v.push_back({"ROWS", coveringWindows("oy", "py", g.pt, g.kh, g.sh, g.oh)});
  v.push_back({"COLS", coveringWindows("ox", "px", g.pl, g.kw, g.sw, g.ow)});
  const bool reluMask = n.attrs().getInt("relu_mask", 0) != 0;
  v.push_back({"KEEP", reluMask ? fill(" && best > (${T})0", v) : ""});
  const int64_t pixels = g.n * g.c * g.h * g.w;
  if (g.sh >= g.kh && g.sw >= g.kw && g.oh > 0 && g.ow > 0) {
    em.elementwise("", fill("const ${T}* __restrict__ x, const ${T}* __restrict__ dy, ${T}* __restrict__ dx", v),
                   fill(fill("    const int ox = (int)(i % ${OW});\n"
                             "    const int oy = (int)((i / ${OW}) % ${OH});\n"
                             "    const ${I} plane = i / (${OW} * ${OH});\n"
                             "    const ${T}* xp = x + plane * (${I})(${H} * ${W});\n"
                             "${ARGMAX}"
                             "    const ${T} g = bestIdx >= 0${KEEP} ? dy[i] : (${T})0;\n"
                             "    const int cy0 = oy == 0 ? 0 : oy * ${SH} - ${PT};\n"
                             "    const int cy1 = oy == ${OH} - 1 || (oy + 1) * ${SH} - ${PT} > ${H} ? ${H} : (oy + 1) * ${SH} - ${PT};\n"
                             "    const int cx0 = ox == 0 ? 0 : ox * ${SW} - ${PL};\n"
                             "    const int cx1 = ox == ${OW} - 1 || (ox + 1) * ${SW} - ${PL} > ${W} ? ${W} : (ox + 1) * ${SW} - ${PL};\n"
                             "    ${T}* dxp = dx + plane * (${I})(${H} * ${W});\n"
                             "    for (int iy = cy0; iy < cy1; ++iy)\n"
                             "      for (int ix = cx0; ix < cx1; ++ix) dxp[iy * ${W} + ix] = iy * ${W} + ix == bestIdx ? g : (${T})0;\n",
                             v),
                        v),
                   {em.in(0), em.in(1), em.out()}, g.n * g.c * g.oh * g.ow);
    return {};
  }
  const std::string pixel =
      "    const int px = (int)(i % ${W});\n"
      "    const int py = (int)((i / ${W}) % ${H});\n"
      "    const ${I} plane = i / (${W} * ${H});\n"
      "    const ${T}* dyp = dy + plane * (${I})(${OH} * ${OW});\n";
  const int64_t windows = g.n * g.c * g.oh * g.ow;
  em.needScratch(windows * int64_t(sizeof(int)));
  em.elementwise("argmax", fill("const ${T}* __restrict__ x, int* __restrict__ argmax", v),
                 fill("    const int ox = (int)(i % ${OW});\n"
                      "    const int oy = (int)((i / ${OW}) % ${OH});\n"
                      "    const ${T}* xp = x + (i / (${OW} * ${OH})) * (${I})(${H} * ${W});\n"
                      "${ARGMAX}"
                      "    argmax[i] = bestIdx >= 0${KEEP} ? bestIdx : -1;\n",
                      v),
                 {em.in(0), NodeEmitter::scratch()}, windows);
  // Then the pixels' kernels read those and dy.
  const std::string pixelParams = fill("const ${T}* __restrict__ dy, ${T}* __restrict__ dx, const int* __restrict__ argmax", v);
  const std::vector<CudaArg> pixelArgs = {em.in(1), em.out(), NodeEmitter::scratch()};
  // A thread per strip of PX pixels of a row: every window that covers any of them (at most
  // RW rows by CW columns of windows) has its maximum's index and its dy loaded up front, with no
  // load waiting on a comparison; each pixel then adds, in the same row-major window order, the dy
  // of the windows whose maximum it is (a window's maximum lies inside it, so the strip's extra
  // windows never match) and the strip is stored at once. A thread per pixel, covering windows
  // in loops of the pixel's own bounds, ran the stem pool's 617 MB at ~1 TB/s.
  const int64_t rw = (g.kh - 1) / g.sh + 1;
  int64_t px = 4, cw = 0;
  for (; px > 1; px /= 2) {
    cw = (g.kw - 1 + px - 1) / g.sw + 1;
    if (g.w % px == 0 && rw * cw <= 16) break;
  }
  if (px > 1) {
    v.push_back({"PX", intLit(px)});
    v.push_back({"RW", intLit(rw)});
    v.push_back({"CW", intLit(cw)});
    v.push_back({"GW", intLit(g.w / px)});
    v.push_back({"FIRST", coveringFirst("ox", "px", g.pl, g.kw, g.sw)});
    v.push_back({"LAST", coveringLast("ox", "pxe", g.pl, g.sw, g.ow)});
    const bool quad = px == 4 && em.T() == "float";
    v.push_back({"STORE", quad ? "    if ((((unsigned long long)dxp) & 15) == 0) {\n"
                                 "      float4 q;\n"
                                 "      q.x = acc[0], q.y = acc[1], q.z = acc[2], q.w = acc[3];\n"
                                 "      *reinterpret_cast<float4*>(dxp) = q;\n"
                                 "    } else {\n"
                                 "#pragma unroll\n"
                                 "      for (int j = 0; j < 4; ++j) dxp[j] = acc[j];\n"
                                 "    }\n"
                               : "#pragma unroll\n"
                                 "    for (int j = 0; j < ${PX}; ++j) dxp[j] = acc[j];\n"});
    em.elementwise("", pixelParams,
                   fill(fill("    const int px = (int)(i % ${GW}) * ${PX};\n"
                             "    const int pxe = px + ${PX} - 1;\n"
                             "    const int py = (int)((i / ${GW}) % ${H});\n"
                             "    const ${I} plane = i / (${GW} * ${H});\n"
                             "    const ${T}* dyp = dy + plane * (${I})(${OH} * ${OW});\n"
                             "    const int* ap = argmax + plane * (${I})(${OH} * ${OW});\n"
                             "${ROWS}"
                             "${FIRST}"
                             "${LAST}"
                             "    int am[${RW} * ${CW}];\n"
                             "    ${T} gv[${RW} * ${CW}];\n"
                             "#pragma unroll\n"
                             "    for (int a = 0; a < ${RW}; ++a)\n"
                             "#pragma unroll\n"
                             "      for (int b = 0; b < ${CW}; ++b) {\n"
                             "        const int oy = oyLo + a, ox = oxLo + b;\n"
                             "        const bool in = oy <= oyHi && ox <= oxHi;\n"
                             "        am[a * ${CW} + b] = in ? ap[oy * ${OW} + ox] : -1;\n"
                             "        gv[a * ${CW} + b] = in ? dyp[oy * ${OW} + ox] : (${T})0;\n"
                             "      }\n"
                             "    ${T} acc[${PX}];\n"
                             "#pragma unroll\n"
                             "    for (int j = 0; j < ${PX}; ++j) {\n"
                             "      const int at = py * ${W} + px + j;\n"
                             "      acc[j] = (${T})0;\n"
                             "#pragma unroll\n"
                             "      for (int k = 0; k < ${RW} * ${CW}; ++k)\n"
                             "        if (am[k] == at) acc[j] += gv[k];\n"
                             "    }\n"
                             "    ${T}* dxp = dx + plane * (${I})(${H} * ${W}) + py * ${W} + px;\n"
                             "${STORE}",
                             v),
                        v),
                   pixelArgs, pixels / px);
    return {};
  }
  em.elementwise("", pixelParams,
                 fill(pixel +
                          "    const int* ap = argmax + plane * (${I})(${OH} * ${OW});\n"
                          "${ROWS}"
                          "${COLS}"
                          "    ${T} acc = (${T})0;\n"
                          "    for (int oy = oyLo; oy <= oyHi; ++oy)\n"
                          "      for (int ox = oxLo; ox <= oxHi; ++ox)\n"
                          "        if (ap[oy * ${OW} + ox] == py * ${W} + px) acc += dyp[oy * ${OW} + ox];\n"
                          "    dx[i] = acc;\n",
                      v),
                 pixelArgs, pixels);
  return {};
}

// One thread per output window: the in-image sum in double, over the window's divisor
// (avgPoolDivisor: PyTorch's count_include_pad and ceil_mode rules).
Expected<void> emitAvgPool2d(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported("avgpool2d needs a float operand");
  PoolGeom g = poolGeom(n.attrs(), em.inShape(0));
  Vars v = poolVars(em, g);
  v.push_back({"DIVISOR", avgPoolDivisor(g)});
  const int64_t total = g.n * g.c * g.oh * g.ow;
  em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v),
                 fill(fill("    const int ox = (int)(i % ${OW});\n"
                           "    const int oy = (int)((i / ${OW}) % ${OH});\n"
                           "    const ${T}* xp = x + (i / (${OW} * ${OH})) * (${I})(${H} * ${W});\n"
                           "    const int ys = ${YS}, xs = ${XS};\n"
                           "    const int y0 = ys < 0 ? 0 : ys, y1 = ys + ${KH} < ${H} ? ys + ${KH} : ${H};\n"
                           "    const int x0 = xs < 0 ? 0 : xs, x1 = xs + ${KW} < ${W} ? xs + ${KW} : ${W};\n"
                           "    double acc = 0.0;\n"
                           "    for (int iy = y0; iy < y1; ++iy)\n"
                           "      for (int ix = x0; ix < x1; ++ix) acc += (double)xp[iy * ${W} + ix];\n"
                           "    y[i] = (${T})(acc / (double)(${DIVISOR}));\n",
                           v),
                      v),
                 {em.in(0), em.out()}, total);
  return {};
}

// dx by gathering: each covering window adds dy / its divisor, in window order, from zero.
Expected<void> emitAvgPool2dGrad(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported("avgpool2d_grad needs a float operand");
  PoolGeom g = poolGeom(n.attrs(), em.outShape());
  Vars v = poolVars(em, g);
  v.push_back({"ROWS", coveringWindows("oy", "py", g.pt, g.kh, g.sh, g.oh)});
  v.push_back({"COLS", coveringWindows("ox", "px", g.pl, g.kw, g.sw, g.ow)});
  v.push_back({"DIVISOR", avgPoolDivisor(g)});
  // The window's start and in-image bounds, when its divisor needs them.
  std::string bounds;
  if (g.ceilMode || !g.countIncludePad) bounds = "        const int ys = ${YS}, xs = ${XS};\n";
  if (!g.countIncludePad)
    bounds += "        const int y0 = ys < 0 ? 0 : ys, y1 = ys + ${KH} < ${H} ? ys + ${KH} : ${H};\n"
              "        const int x0 = xs < 0 ? 0 : xs, x1 = xs + ${KW} < ${W} ? xs + ${KW} : ${W};\n";
  v.push_back({"BOUNDS", bounds});
  const int64_t total = g.n * g.c * g.h * g.w;
  em.elementwise("", fill("const ${T}* __restrict__ dy, ${T}* __restrict__ dx", v),
                 fill(fill("    const int px = (int)(i % ${W});\n"
                           "    const int py = (int)((i / ${W}) % ${H});\n"
                           "    const ${T}* dyp = dy + (i / (${W} * ${H})) * (${I})(${OH} * ${OW});\n"
                           "${ROWS}"
                           "${COLS}"
                           "    ${T} acc = (${T})0;\n"
                           "    for (int oy = oyLo; oy <= oyHi; ++oy)\n"
                           "      for (int ox = oxLo; ox <= oxHi; ++ox) {\n"
                           "${BOUNDS}"
                           "        acc += dyp[oy * ${OW} + ox] / (${T})(${DIVISOR});\n"
                           "      }\n"
                           "    dx[i] = acc;\n",
                           v),
                      v),
                 {em.in(0), em.out()}, total);
  return {};
}

// The mean of each plane, its sum in double in a fixed order (reproducible). Many planes (the
// end of a CNN: N·C planes of H·W): one warp per plane, each lane a strided slice, a butterfly
// over the lanes. Fewer planes than would fill the GPU with warps: one block per plane, so a
// long plane is read by 256 threads.
Expected<void> emitGlobalAvgPool(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("global_avgpool needs a float operand");
  const Shape& x = em.inShape(0);
  const int64_t planes = x[0] * x[1], size = x[2] * x[3];
  if (planes == 0) return {};
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"PLANES", intLit(planes)},
            {"SIZE", intLit(size)},
            {"WARPS", std::to_string(kWarpsPerBlock)}};
  const std::string params = fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v);
  if (planes < kTargetBlocks * int64_t(kWarpsPerBlock)) {
    std::string body = fill(
        "  __shared__ double red[32];\n"
        "  for (${I} plane = blockIdx.x; plane < ${PLANES}; plane += gridDim.x) {\n"
        "    const ${T}* xp = x + plane * (${I})${SIZE};\n"
        "    double s = 0.0;\n"
        "    for (${I} j = threadIdx.x; j < ${SIZE}; j += blockDim.x) s += (double)xp[j];\n"
        "    s = shoal_block_sum(s, red);\n"
        "    if (threadIdx.x == 0) y[plane] = (${T})(s / (double)${SIZE});\n"
        "  }\n",
        v);
    em.kernel("", params, body, {em.in(0), em.out()}, unsigned(std::min<int64_t>(planes, kMaxGrid)));
    return {};
  }
  std::string body = fill(
      "  const int lane = threadIdx.x & 31;\n"
      "  for (${I} plane = (${I})blockIdx.x * ${WARPS} + (threadIdx.x >> 5); plane < ${PLANES};\n"
      "       plane += (${I})gridDim.x * ${WARPS}) {\n"
      "    const ${T}* xp = x + plane * (${I})${SIZE};\n"
      "    double s = 0.0;\n"
      "    for (${I} j = lane; j < ${SIZE}; j += 32) s += (double)xp[j];\n"
      "    s = shoal_warp_sum(s);\n"
      "    if (lane == 0) y[plane] = (${T})(s / (double)${SIZE});\n"
      "  }\n",
      v);
  const int64_t blocks = (planes + kWarpsPerBlock - 1) / kWarpsPerBlock;
  em.kernel("", params, body, {em.in(0), em.out()}, unsigned(std::min<int64_t>(blocks, kMaxGrid)));
  return {};
}

}  // namespace shoal::cudagen
