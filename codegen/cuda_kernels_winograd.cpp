// CUDA codegen, exact fp32: 3 x 3 stride-1 convolutions in Winograd's minimal filtering
// F(m x m, 3 x 3) (Lavin and Gray, 2016), m = 2 or 4, a = m + 2. A tile of m x m outputs
// needs an a x a input patch d; with U = G g G^T (the filter, a x a) and V = B^T d B, the tile
// is A^T (U * V) A, where * multiplies element by element. Over the channels the a^2 elements
// of U * V are a^2 independent matrix products:
//
//   M[t][k][p] = sum_c U[t][k][c] V[t][c][p]     (t < a^2, k filters, c channels, p tiles)
//
// so a convolution becomes three kernels: the input transform (x -> V in scratch, a thread per
// channel and tile), the a^2 products as one batch of implicit GEMMs on the CUDA cores
// (emitImplicitGemm with ImplicitGemm::batch; the filters' transform is its packing of B, a
// prepared block at inference), and the output transform (M -> y, a thread per filter and tile,
// with the convolution's epilogue: bias, activation or fused_conv2d's program). F(4 x 4, 3 x 3)
// does 36 multiplies a tile and channel where the direct sum does 144 (4x fewer; F(2 x 2) 16 for
// 36, 2.25x); the transforms cost memory traffic (V and M are a^2 / m^2 times x and y) and the
// products' reductions are only the channels long. The data gradient of a stride-1 3 x 3
// convolution is the same form: dy convolved with the filters rotated by 180 degrees and
// transposed, padding 2 - p. The weight gradient is the transposed algorithm, F(3 x 3, m x m)
// (emitWinogradWeightGradient): x's transform as the forward's, dy's by A, the products summed
// over the tiles -- long reductions, split into slices -- and G^T M G.
//
// Numerics: not the direct sum's. The transforms' coefficients (F(2): +-1, +-1/2; F(4): up to 5,
// 8 and 1/24) add rounding of their own: each output's error is bounded by the unit roundoff
// times the number of additions on its path (the channels plus the transforms') times the same
// algorithm run on the operands' magnitudes (tests/codegen/conv_winograd_test.cpp checks that
// bound against float64). CudaCodegenOptions::fp32Winograd 0 keeps every sum the direct one.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// B^T (a x a), A^T (m x a): the input and output transforms (G, the filters', is in the
// prelude: shoal_winograd_weight). Points 0, +-1, infinity (m = 2); 0, +-1, +-2, infinity (4).
const std::vector<std::vector<int>>& inputTransform(int m) {
  static const std::vector<std::vector<int>> b2 = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static const std::vector<std::vector<int>> b4 = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                                   {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  return m == 2 ? b2 : b4;
}
const std::vector<std::vector<int>>& outputTransform(int m) {
  static const std::vector<std::vector<int>> a2 = {{1, 1, 1, 0}, {0, 1, -1, -1}};
  static const std::vector<std::vector<int>> a4 = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
  return m == 2 ? a2 : a4;
}

// sum_j row[j] * term(j) as C, the terms in order, without the zero ones: "4.0f * d[0][q] -
// 5.0f * d[2][q] + d[4][q]".
template <typename Term>
std::string combination(const std::vector<int>& row, const Term& term) {
  std::string out;
  for (size_t j = 0; j < row.size(); ++j) {
    const int c = row[j];
    if (c == 0) continue;
    const int mag = c < 0 ? -c : c;
    const std::string t = (mag == 1 ? "" : std::to_string(mag) + ".0f * ") + term(int(j));
    out += out.empty() ? (c < 0 ? "-" + t : t) : (c < 0 ? " - " : " + ") + t;
  }
  return out.empty() ? "0.0f" : out;
}

// The first pass of a transform L X R^T, as code: dst[u][q] = sum_j rows[u][j] src[j][q] for
// every row u of L and column q < `width`.
std::string rowsPass(const std::vector<std::vector<int>>& rows, const char* src, const char* dst, const char* width) {
  std::string out = fmt::format("#pragma unroll\n    for (int q = 0; q < {}; ++q) {{\n", width);
  for (size_t u = 0; u < rows.size(); ++u)
    out += fmt::format("      {}[{}][q] = {};\n", dst, u,
                       combination(rows[u], [src](int j) { return fmt::format("{}[{}][q]", src, j); }));
  return out + "    }\n";
}

}  // namespace

int winogradTile(const NodeEmitter& em, const WinogradConv& s) {
  const CudaCodegenOptions& o = em.options();
  const int m = o.fp32Winograd;
  if ((m != 2 && m != 4) || o.tensorCores != TensorCoreMath::Off || em.computeType() != DType::F32) return 0;
  if (s.c % 8 != 0 || s.c < o.fp32WinogradMinChannels || s.k < o.fp32WinogradMinChannels) return 0;
  const double macs = double(s.n * s.oh * s.ow) * double(s.k) * double(s.c * 9);
  if (macs < double(o.fp32WinogradMinMacs)) return 0;
  const int64_t a = m + 2, tiles = s.n * ((s.oh + m - 1) / m) * ((s.ow + m - 1) / m);
  // The products index V and M (a^2 x channels x tiles) in the node's index type.
  const int64_t largest = a * a * std::max(s.c, s.k) * tiles;
  if (em.I() == "int" && largest >= int64_t(std::numeric_limits<int>::max())) return 0;
  return m;
}

namespace {

// The kernels' variables: the extents, the tiles (P of them, rows PS floats apart in V and the
// weight gradient's transformed dy: P, or P rounded up to 4 with zeros past P).
Vars winogradVars(const NodeEmitter& em, const WinogradConv& s, int m, int64_t rowStride) {
  const int64_t th = (s.oh + m - 1) / m, tw = (s.ow + m - 1) / m;
  return {{"I", em.I()},
          {"M", std::to_string(m)},
          {"A", std::to_string(m + 2)},
          {"C", intLit(s.c)},
          {"K", intLit(s.k)},
          {"H", intLit(s.h)},
          {"W", intLit(s.w)},
          {"OH", intLit(s.oh)},
          {"OW", intLit(s.ow)},
          {"TH", intLit(th)},
          {"TW", intLit(tw)},
          {"P", intLit(s.n * th * tw)},
          {"PS", intLit(rowStride)},
          {"PT", intLit(s.pt)},
          {"PL", intLit(s.pl)}};
}
// Tile p's column and row, and its image.
constexpr const char* kTileOf =
    "    const int tx = (int)(p % ${TW}), ty = (int)((p / ${TW}) % ${TH});\n"
    "    const ${I} img = p / ((${I})${TW} * ${TH});\n";

// The input transform into scratch at 0: thread (c, p) reads its tile's a x a patch of x (zeros
// outside the image) and writes the a^2 elements of B^T d B, V[t][c][p], each to its product's
// rows: consecutive threads, consecutive tiles, so the writes are coalesced. Rows of PS > P
// floats get zeros past P.
void emitInputTransform(NodeEmitter& em, const WinogradConv& s, int m, const Vars& v, int64_t rowStride) {
  const int a = m + 2;
  const auto& bt = inputTransform(m);
  std::string in = std::string(
                       "    const ${I} p = i % ${PS};\n"
                       "    const int c = (int)(i / ${PS});\n"
                       "    float* vc = scratch + (${I})c * ${PS} + p;\n") +
                   (rowStride > s.n * ((s.oh + m - 1) / m) * ((s.ow + m - 1) / m)
                        ? "    if (p >= ${P}) {\n"
                          "#pragma unroll\n"
                          "      for (int t = 0; t < ${A} * ${A}; ++t) vc[(${I})t * ${C} * ${PS}] = 0.0f;\n"
                          "      continue;\n"
                          "    }\n"
                        : "") +
                   kTileOf +
                   "    const float* xc = x + (img * ${C} + c) * ((${I})${H} * ${W});\n"
                   "    const int y0 = ty * ${M} - ${PT}, x0 = tx * ${M} - ${PL};\n"
                   "    float d[${A}][${A}], t[${A}][${A}];\n"
                   "#pragma unroll\n"
                   "    for (int r = 0; r < ${A}; ++r)\n"
                   "#pragma unroll\n"
                   "      for (int q = 0; q < ${A}; ++q) {\n"
                   "        const int iy = y0 + r, ix = x0 + q;\n"
                   "        d[r][q] = iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W} ? xc[iy * ${W} + ix] : 0.0f;\n"
                   "      }\n" +
                   rowsPass(bt, "d", "t", "${A}");
  for (int r = 0; r < a; ++r)
    for (int q = 0; q < a; ++q)
      in += fmt::format("    vc[(${{I}}){} * ${{C}} * ${{PS}}] = {};\n", r * a + q,
                        combination(bt[size_t(q)], [r](int j) { return fmt::format("t[{}][{}]", r, j); }));
  em.elementwise("wg_in", "const float* __restrict__ x, float* __restrict__ scratch", fill(fill(in, v), v),
                 {s.input, NodeEmitter::scratch()}, s.c * rowStride);
}

}  // namespace

Expected<void> emitWinogradConv(NodeEmitter& em, const WinogradConv& s, int m) {
  const int a = m + 2;
  const int64_t th = (s.oh + m - 1) / m, tw = (s.ow + m - 1) / m, tiles = s.n * th * tw;
  // Scratch: V [a^2][c][tiles], then M [a^2][k][tiles] (16-byte aligned).
  const int64_t vFloats = int64_t(a) * a * s.c * tiles, mAt = (vFloats + 3) / 4 * 4;
  const int64_t mFloats = int64_t(a) * a * s.k * tiles;
  Vars v = winogradVars(em, s, m, tiles);
  v.push_back({"MAT", intLit(mAt)});
  const std::string tile = kTileOf;
  const auto& at = outputTransform(m);

  // 1. The input transform.
  emitInputTransform(em, s, m, v, tiles);

  // 2. The a^2 products, one batch: rows the tiles, columns the filters, the reduction the
  // channels; A is V (its 8 steps of a group channel planes apart, the tiles contiguous), B the
  // transformed filters (packed by shoal_winograd_weight), the epilogue stores M.
  ImplicitGemm g;
  g.name = "wg_";
  g.rows = tiles;
  g.cols = s.k;
  g.red = s.c;
  g.batch = int64_t(a) * a;
  g.splits = 1;
  g.aBase = "wv";
  g.scratchViews = {{"wv", 0}};
  g.scratchReserved = mAt + mFloats;
  g.aGroup = fill(
      "        const bool gvalid = true;\n"
      "        const ${I} goff = ((${I})bz * ${C} + kg) * ${P} + am;\n",
      v);
  g.aStride = fill("(${I})${P}", v);
  g.aStride16 = s.c % 16 == 0;
  g.bPacked = s.dataGradient ? fill("shoal_winograd_weight(w + ((${I})k * ${K} + o) * 9, bz, ${M}, true)", v)
                             : fill("shoal_winograd_weight(w + ((${I})o * ${C} + k) * 9, bz, ${M}, false)", v);
  g.bSource = s.weight;
  g.epilogue = fill("        scratch[${MAT} + ((${I})bz * ${K} + o) * ${P} + m] = s;\n", v);
  g.params = "const float* __restrict__ w";
  g.args = {s.weight};
  g.math = TensorCoreMath::Off;
  if (auto ok = emitImplicitGemm(em, g); !ok) return ok;

  // 3. The output transform: thread (k, p) reads its tile's a^2 sums and stores the m x m
  // outputs of A^T M A inside the output, each through the caller's store.
  std::string out =
      "    const ${I} p = i % ${P};\n"
      "    const int o = (int)(i / ${P});\n" +
      tile +
      "    const float* mo = scratch + ${MAT} + (${I})o * ${P} + p;\n"
      "    float e[${A}][${A}], t[${M}][${A}];\n"
      "#pragma unroll\n"
      "    for (int r = 0; r < ${A}; ++r)\n"
      "#pragma unroll\n"
      "      for (int q = 0; q < ${A}; ++q) e[r][q] = mo[(${I})(r * ${A} + q) * ${K} * ${P}];\n" +
      rowsPass(at, "e", "t", "${A}") + "    const ${I} plane = (img * ${K} + o) * ((${I})${OH} * ${OW});\n";
  for (int r = 0; r < m; ++r)
    for (int q = 0; q < m; ++q)
      out += fmt::format(
                 "    if (ty * ${{M}} + {0} < ${{OH}} && tx * ${{M}} + {1} < ${{OW}}) {{\n"
                 "      const ${{I}} at = plane + (ty * ${{M}} + {0}) * ${{OW}} + tx * ${{M}} + {1};\n"
                 "      const float s = {2};\n",
                 r, q, combination(at[size_t(q)], [r](int j) { return fmt::format("t[{}][{}]", r, j); })) +
             s.store + "    }\n";
  std::vector<CudaArg> args = {NodeEmitter::scratch()};
  args.insert(args.end(), s.storeArgs.begin(), s.storeArgs.end());
  em.elementwise("wg_out", "const float* __restrict__ scratch, " + s.storeParams, fill(fill(out, v), v), args,
                 s.k * tiles);
  return {};
}

// The weight gradient in the same form (by the transposition principle, F(3 x 3, m x m)):
// dW[k][c] = G^T (sum over tiles p of (A dy_p A^T) * (B^T d_p B)) G, where d_p is tile p's
// a x a patch of x (the forward's input transform) and dy_p its m x m outputs' gradient. So:
// V = B^T d B as the forward computes it, DY = A dy A^T (the output transform's transpose), the
// a^2 products M[t][k][c] = sum_p DY[t][k][p] V[t][c][p] -- one batch of implicit GEMMs whose
// reductions are the batch's tiles (long: split into slices as the direct weight gradient's
// are) -- and G^T M G per filter and channel, in double.
Expected<void> emitWinogradWeightGradient(NodeEmitter& em, const WinogradConv& s, int m) {
  const int a = m + 2;
  const int64_t th = (s.oh + m - 1) / m, tw = (s.ow + m - 1) / m, tiles = s.n * th * tw;
  // Tiles padded to 4 (zeros), so that both operands are rows of 16-byte aligned 4-vectors.
  const int64_t ps = (tiles + 3) / 4 * 4;
  // Scratch: V [a^2][c][ps], DY [a^2][k][ps], M [a^2][k][c].
  const int64_t dyAt = int64_t(a) * a * s.c * ps, mAt = dyAt + int64_t(a) * a * s.k * ps;
  Vars v = winogradVars(em, s, m, ps);
  v.push_back({"DYAT", intLit(dyAt)});
  v.push_back({"MAT", intLit(mAt)});
  emitInputTransform(em, s, m, v, ps);

  // dy's transform: thread (k, p) reads its tile's m x m gradients (zeros past the output) and
  // writes the a^2 elements of A dy A^T (A = (A^T)^T, a x m).
  const auto& at = outputTransform(m);
  auto column = [&](int u) {  // column u of A^T: row u of A
    std::vector<int> c;
    for (int i = 0; i < m; ++i) c.push_back(at[size_t(i)][size_t(u)]);
    return c;
  };
  std::string dt = std::string(
                       "    const ${I} p = i % ${PS};\n"
                       "    const int k = (int)(i / ${PS});\n"
                       "    float* dc = scratch + ${DYAT} + (${I})k * ${PS} + p;\n"
                       "    if (p >= ${P}) {\n"
                       "#pragma unroll\n"
                       "      for (int t = 0; t < ${A} * ${A}; ++t) dc[(${I})t * ${K} * ${PS}] = 0.0f;\n"
                       "      continue;\n"
                       "    }\n") +
                   kTileOf +
                   "    const float* gk = dy + (img * ${K} + k) * ((${I})${OH} * ${OW});\n"
                   "    float g[${M}][${M}], t[${A}][${M}];\n"
                   "#pragma unroll\n"
                   "    for (int r = 0; r < ${M}; ++r)\n"
                   "#pragma unroll\n"
                   "      for (int q = 0; q < ${M}; ++q) {\n"
                   "        const int oy = ty * ${M} + r, ox = tx * ${M} + q;\n"
                   "        g[r][q] = oy < ${OH} && ox < ${OW} ? gk[oy * ${OW} + ox] : 0.0f;\n"
                   "      }\n";
  std::vector<std::vector<int>> aRows;  // A = (A^T)^T: the columns of A^T
  for (int u = 0; u < a; ++u) aRows.push_back(column(u));
  dt += rowsPass(aRows, "g", "t", "${M}");
  for (int u = 0; u < a; ++u)
    for (int w = 0; w < a; ++w)
      dt += fmt::format("    dc[(${{I}}){} * ${{K}} * ${{PS}}] = {};\n", u * a + w,
                        combination(column(w), [u](int j) { return fmt::format("t[{}][{}]", u, j); }));
  em.elementwise("wg_dy", "const float* __restrict__ dy, float* __restrict__ scratch", fill(fill(dt, v), v),
                 {s.gradient, NodeEmitter::scratch()}, s.k * ps);

  // The a^2 products: rows the filters, columns the channels, the reduction the tiles (both
  // operands contiguous along it: 16-byte copies); slices as the cost model chooses.
  ImplicitGemm g;
  g.name = "wg_";
  g.rows = s.k;
  g.cols = s.c;
  g.red = ps;
  g.batch = int64_t(a) * a;
  g.waveBlocks = kTargetBlocks;  // two blocks an SM, as the direct weight gradient counts them
  g.aBase = "dyt";
  g.bBase = "vt";
  g.scratchViews = {{"vt", 0}, {"dyt", dyAt}};
  g.scratchReserved = mAt + int64_t(a) * a * s.k * s.c;
  g.aVector = true;
  g.aLoad = fill("            src = dyt + ((${I})bz * ${K} + am) * ${PS} + k;\n            ok = true;\n", v);
  g.bVector = true;
  g.bLoad = fill("            src = vt + ((${I})bz * ${C} + bo) * ${PS} + k;\n            ok = true;\n", v);
  g.epilogue = fill("        scratch[${MAT} + ((${I})bz * ${K} + m) * ${C} + o] = s;\n", v);  // reads only scratch
  g.math = TensorCoreMath::Off;
  if (auto ok = emitImplicitGemm(em, g); !ok) return ok;

  // dW = G^T M G for each filter and channel, in double (G's 1/6 and 1/24 are not fp32's), its
  // 3 x 3 taps stored together.
  std::string gt = "{";
  const char* rows2[] = {"{1.0, 0.0, 0.0}", "{0.5, 0.5, 0.5}", "{0.5, -0.5, 0.5}", "{0.0, 0.0, 1.0}"};
  const char* rows4[] = {"{0.25, 0.0, 0.0}",
                         "{-1.0 / 6, -1.0 / 6, -1.0 / 6}",
                         "{-1.0 / 6, 1.0 / 6, -1.0 / 6}",
                         "{1.0 / 24, 1.0 / 12, 1.0 / 6}",
                         "{1.0 / 24, -1.0 / 12, 1.0 / 6}",
                         "{0.0, 0.0, 1.0}"};
  for (int r = 0; r < a; ++r) gt += std::string(r ? ", " : "") + (m == 2 ? rows2[r] : rows4[r]);
  gt += "}";
  v.push_back({"GT", gt});
  em.elementwise("wg_dw", "const float* __restrict__ scratch, float* __restrict__ dw",
                 fill(fill("    const double G[${A}][3] = ${GT};\n"
                           "    const float* mk = scratch + ${MAT} + i;  // (k, c) = i\n"
                           "    double gm[${A}][3];  // M G\n"
                           "    for (int r = 0; r < ${A}; ++r)\n"
                           "      for (int q = 0; q < 3; ++q) {\n"
                           "        double acc = 0.0;\n"
                           "        for (int j = 0; j < ${A}; ++j) acc += (double)mk[(${I})(r * ${A} + j) * ${K} * "
                           "${C}] * G[j][q];\n"
                           "        gm[r][q] = acc;\n"
                           "      }\n"
                           "    for (int r = 0; r < 3; ++r)\n"
                           "      for (int q = 0; q < 3; ++q) {\n"
                           "        double acc = 0.0;\n"
                           "        for (int j = 0; j < ${A}; ++j) acc += G[j][r] * gm[j][q];\n"
                           "        dw[i * 9 + r * 3 + q] = (float)acc;\n"
                           "      }\n",
                           v),
                      v),
                 {NodeEmitter::scratch(), em.out()}, s.k * s.c);
  return {};
}

}  // namespace shoal::cudagen
