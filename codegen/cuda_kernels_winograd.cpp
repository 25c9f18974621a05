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
// transposed, padding 2 - p.
//
// Numerics: not the direct sum's. The transforms' coefficients (F(2): +-1, +-1/2; F(4): up to 5,
// 8 and 1/24) add rounding of their own: each output's error is bounded by the unit roundoff
// times the number of additions on its path (the channels plus the transforms') times the same
// algorithm run on the operands' magnitudes (tests/codegen/conv_winograd_test.cpp checks that
// bound against float64). CudaCodegenOptions::fp32Winograd 0 keeps every sum the direct one.
#include <fmt/format.h>

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

Expected<void> emitWinogradConv(NodeEmitter& em, const WinogradConv& s, int m) {
  const int a = m + 2;
  const int64_t th = (s.oh + m - 1) / m, tw = (s.ow + m - 1) / m, tiles = s.n * th * tw;
  // Scratch: V [a^2][c][tiles], then M [a^2][k][tiles] (16-byte aligned).
  const int64_t vFloats = int64_t(a) * a * s.c * tiles, mAt = (vFloats + 3) / 4 * 4;
  const int64_t mFloats = int64_t(a) * a * s.k * tiles;
  const Vars v = {{"I", em.I()},        {"M", std::to_string(m)}, {"A", std::to_string(a)}, {"C", intLit(s.c)},
                  {"K", intLit(s.k)},   {"H", intLit(s.h)},       {"W", intLit(s.w)},       {"OH", intLit(s.oh)},
                  {"OW", intLit(s.ow)}, {"TH", intLit(th)},       {"TW", intLit(tw)},       {"P", intLit(tiles)},
                  {"PT", intLit(s.pt)}, {"PL", intLit(s.pl)},     {"MAT", intLit(mAt)}};
  const std::string tile =
      "    const int tx = (int)(p % ${TW}), ty = (int)((p / ${TW}) % ${TH});\n"
      "    const ${I} img = p / ((${I})${TW} * ${TH});\n";
  const auto& bt = inputTransform(m);
  const auto& at = outputTransform(m);

  // 1. The input transform: thread (c, p) reads its tile's a x a patch (zeros outside the
  // image) and writes the a^2 elements of B^T d B, each to its product's rows: consecutive
  // threads, consecutive tiles, so the writes are coalesced.
  std::string in =
      "    const ${I} p = i % ${P};\n"
      "    const int c = (int)(i / ${P});\n" +
      tile +
      "    const float* xc = x + (img * ${C} + c) * ((${I})${H} * ${W});\n"
      "    const int y0 = ty * ${M} - ${PT}, x0 = tx * ${M} - ${PL};\n"
      "    float d[${A}][${A}], t[${A}][${A}];\n"
      "#pragma unroll\n"
      "    for (int r = 0; r < ${A}; ++r)\n"
      "#pragma unroll\n"
      "      for (int q = 0; q < ${A}; ++q) {\n"
      "        const int iy = y0 + r, ix = x0 + q;\n"
      "        d[r][q] = iy >= 0 && iy < ${H} && ix >= 0 && ix < ${W} ? xc[iy * ${W} + ix] : 0.0f;\n"
      "      }\n"
      "#pragma unroll\n"
      "    for (int q = 0; q < ${A}; ++q) {\n";
  for (int r = 0; r < a; ++r)
    in += fmt::format("      t[{}][q] = {};\n", r,
                      combination(bt[size_t(r)], [](int j) { return fmt::format("d[{}][q]", j); }));
  in +=
      "    }\n"
      "    float* vc = scratch + (${I})c * ${P} + p;\n";
  for (int r = 0; r < a; ++r)
    for (int q = 0; q < a; ++q)
      in += fmt::format("    vc[(${{I}}){} * ${{C}} * ${{P}}] = {};\n", r * a + q,
                        combination(bt[size_t(q)], [r](int j) { return fmt::format("t[{}][{}]", r, j); }));
  em.elementwise("wg_in", "const float* __restrict__ x, float* __restrict__ scratch", fill(fill(in, v), v),
                 {s.input, NodeEmitter::scratch()}, s.c * tiles);

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
      "      for (int q = 0; q < ${A}; ++q) e[r][q] = mo[(${I})(r * ${A} + q) * ${K} * ${P}];\n"
      "#pragma unroll\n"
      "    for (int q = 0; q < ${A}; ++q) {\n";
  for (int r = 0; r < m; ++r)
    out += fmt::format("      t[{}][q] = {};\n", r,
                       combination(at[size_t(r)], [](int j) { return fmt::format("e[{}][q]", j); }));
  out +=
      "    }\n"
      "    const ${I} plane = (img * ${K} + o) * ((${I})${OH} * ${OW});\n";
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

}  // namespace shoal::cudagen
