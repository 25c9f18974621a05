// The implicit GEMM's copies into the ring's stages: per element, grouped, column-wise, and
// the 16-bit (and TF32) channels-last forms of 128-byte rows (cuda_igemm.h; the overview is
// cuda_kernels_igemm.cpp's).
#include <fmt/format.h>

#include <cctype>
#include <limits>

#include "codegen/cuda_igemm.h"

namespace shoal::cudagen::igemm {

namespace {

// Whether `code` uses the identifier `name` (not as part of a longer one).
bool mentions(const std::string& code, const std::string& name) {
  auto word = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (size_t at = code.find(name); at != std::string::npos; at = code.find(name, at + 1))
    if ((at == 0 || !word(code[at - 1])) && (at + name.size() == code.size() || !word(code[at + name.size()])))
      return true;
  return false;
}



// The shared addresses d0 / d1 of a thread's group of 8 (elements 0-3 at d0 + 4e, 4-7 at d1 +
// 4e) in row `r` of a stage at `stage`, its first column kc 0 or 8 (below); d1 only when
// `copies`, the statements that follow, use it (NVRTC warns of an unused variable otherwise:
// groups whose elements 4-7 are all holes).
std::string groupOf8Destinations(const std::string& copies) {
  return mentions(copies, "d1") ? "        const shoal_saddr d0 = row + 4 * ((kc ^ (swz & 8)) + (swz & 4)), "
                                  "d1 = row + 4 * ((kc ^ (swz & 8)) - (swz & 4));\n"
                                : "        const shoal_saddr d0 = row + 4 * ((kc ^ (swz & 8)) + (swz & 4));\n";
}

// Thread tid's row r of a stage in pass p and the first reduction column kc it copies, as c's
// copies (and holeZeros) take them.
std::string threadRow(const CopySpec& c, int p) {
  const int perRow = c.interleaved ? 4 : 16 / c.group;  // threads per row
  return fmt::format("        const int r = {} * {} + tid / {}, kc = (tid % {}) * {};\n", p, 256 / perRow, perRow,
                     perRow, c.interleaved ? 1 : c.group);
}
// Row r's swizzle (its 16-byte chunks XORed by bits 1-2 of r) and shared address in `stage`.
std::string rowAddress(const CopySpec& c) {
  return fmt::format("        const int swz = (((r >> 1) & 3) << 2);\n"
                     "        const shoal_saddr row = stage + ({} + r) * 64;\n",
                     c.rowBase);
}

}  // namespace

// Zeros copied once, before the first stage, into elements `holes` of each of this thread's
// groups of 8 in every stage of the ring: the elements c's group copies never write
// (ImplicitGemm::aHoles). Part of the first commit group, so complete when the first stage is.
std::string holeZeros(const CopySpec& c, const std::vector<int>& holes) {
  if (holes.empty()) return "";
  std::string s = "  for (int hs = 0; hs < kStages; ++hs) {  // the gathers' holes, zero for good\n"
                  "    const shoal_saddr stage = sbase + hs * (kStageFloats * 4);\n";
  for (int p = 0; p < c.passes; ++p) {
    std::string copies;
    for (int e : holes)
      copies += fmt::format("        shoal_cp_async_f32({} + {}, {}, false);\n", e < 4 ? "d0" : "d1", 4 * e, c.base);
    s += "    {\n" + threadRow(c, p) + rowAddress(c) + groupOf8Destinations(copies) + copies + "    }\n";
  }
  return s + "  }\n";
}

std::string copyCode(const CopySpec& c) {
  std::string s;
  for (int p = 0; p < c.passes; ++p) {
    const Vars v = {{"ROWV", c.rowVar}, {"ROW_OK", c.rowOk}, {"LIMIT", c.rowLimit}, {"RT", c.rowType},
                    {"ORIGIN", c.rowOrigin}, {"BASE", c.base}, {"STRIDE", c.stride}};
    s += "      {\n" + threadRow(c, p) +
         fill("        const ${RT} ${ROWV} = ${ORIGIN} + r;\n"
              "        const bool ${ROW_OK} = ${ROWV} < ${LIMIT};\n",
              v);
    s += c.rowSetup;
    s += fill("        const int kg = kt + kc;\n"
              "        const bool gok = ${ROW_OK} && kg < kEnd;\n",
              v) +
         rowAddress(c);
    if (!c.groupSetup.empty()) s += c.groupSetup;
    // Destination of element e (bytes): groups of 8 at kc = 0 or 8, so (kc + e) ^ swz is
    // (kc ^ (swz & 8)) + (e ^ (swz & 4)); groups of 4 at kc = 0, 4, 8, 12: (kc ^ swz) + e.
    // (A group of 8's declaration goes in once its copies are written: groupOf8Destinations.)
    const size_t destinationsAt = s.size();
    if (c.interleaved)
      s += "        const shoal_saddr d0 = row + 4 * kc;\n        const int sc = swz >> 2;\n";
    else if (c.group != 8)
      s += "        const shoal_saddr d0 = row + 4 * (kc ^ swz);\n";
    // Interleaved: step kc + 4e sits in column chunk e ^ (swz >> 2), word kc.
    auto dst = [&](int e) {
      return c.interleaved ? "d0 + 16 * (" + std::to_string(e) + " ^ sc)"
                           : std::string(e < 4 ? "d0" : "d1") + " + " + std::to_string(4 * e);
    };
    const int step = c.interleaved ? 4 : 1;  // reduction steps between a thread's elements
    if (!c.groupCopies.empty()) {
      s += c.groupCopies;
    } else if (!c.stride.empty()) {
      s += fill("        const bool ok = gok && gvalid;\n"
                "        const float* gsrc = ok ? ${BASE} + goff : ${BASE};\n",
                v);
      for (int e = 0; e < c.group; ++e)
        s += "        shoal_cp_async_f32(" + dst(e) + ", gsrc + " +
             (e == 0 ? "0" : std::to_string(e * step) + " * (" + c.stride + ")") + ", ok);\n";
    } else {
      const std::string copy = !c.vector   ? "shoal_cp_async_f32"
                               : c.cached  ? "shoal_cp_async_f32x4_cached"
                               : c.aligned ? "shoal_cp_async_f32x4_aligned"
                                           : "shoal_cp_async_f32x4";
      // `e`: the element's reduction steps past kg (every fourth step when interleaved); `k`,
      // its reduction index, declared where the bound or the load reads it.
      const bool usesK = !c.wholeGroups || mentions(c.load, "k");
      for (int e = 0; e < c.group; e += c.vector ? 4 : 1) {
        s += fill("        {\n"
                  "          const int e = " + std::to_string(e * step) + (usesK ? ", k = kg + e" : "") + ";\n"
                  "          const float* src = ${BASE};\n"
                  "          bool ok = false;\n",
                  v);
        s += "          if (gok" + std::string(c.wholeGroups ? "" : " && k < kEnd") + ") {\n";
        s += c.load;
        s += "          }\n          " + copy + "(" + dst(e) + ", src, ok);\n        }\n";
      }
    }
    if (!c.interleaved && c.group == 8) s.insert(destinationsAt, groupOf8Destinations(s.substr(destinationsAt)));
    s += "      }\n";
  }
  return s;
}

// Column-wise copies of A (ImplicitGemm::aColumnRow / aColumn): thread tid copies column
// tid % 16 of rows tid / 16 + 16 p, p < BM / 16. The rows' offsets and tap bits (aRoff, aRbit:
// 0 for a row past the end) are set once before the loop (columnRows); each stage computes its
// column's offset and mask once, then each row is an address and a copy that tests the bit
// itself (shoal_cp_async_f32_if). A warp writes two whole rows: 32 banks.
std::string columnRows(const ImplicitGemm& spec, const Tile& tile) {
  const std::string p = std::to_string(tile.bm / 16), mask = spec.columnMaskType();
  return "  int aRoff[" + p + "];\n  " + mask + " aRbit[" + p + "];\n"
         "#pragma unroll\n"
         "  for (int p = 0; p < " + p + "; ++p) {\n"
         "    const ${I} am = m0 + p * 16 + (tid >> 4);\n"
         "    const bool arow = am < ${M};\n" +
         spec.aColumnRow +
         "    aRoff[p] = arow ? roff : 0;\n"
         "    aRbit[p] = arow ? (" + mask + ")1 << rbit : 0;\n"
         "  }\n";
}

std::string columnCopies(const ImplicitGemm& spec, const Tile& tile) {
  return "      {\n"
         "        const int kc = tid & 15, tr = tid >> 4;\n"
         "        const int k = kt + kc;\n" +
         spec.aColumn +
         "        const " + std::string(spec.columnMaskType()) + " km = k < kEnd ? kmask : 0u;\n"
         "        const shoal_saddr d = stage + tr * 64 + 4 * (kc ^ (((tr >> 1) & 3) << 2));\n"
         "#pragma unroll\n"
         "        for (int p = 0; p < " + std::to_string(tile.bm / 16) + "; ++p) shoal_cp_async_f32_if(d + p * 1024, " + spec.aBase +
         " + (kofs + aRoff[p]), km, aRbit[p]);  // outside x where a tap leaves the image: not read\n"
         "      }\n";
}

// wgmma16's copies of B: the BN packed 16-bit rows of the stage's 16 steps (32 bytes each, in
// the 32-byte swizzle mode: a row's two 16-byte chunks swap on rows 4-7 of every 8), two
// 16-byte copies a row, after the BM rows of A. Packed rows hold whole 16-steps (zeros past
// the reduction), so a stage never reads past them.
std::string packed16Copies(const Tile& tile) {
  std::string s;
  for (int pass = 0; pass * 128 < tile.bn; ++pass)
    s += fmt::format("      {{\n"
                     "        const int r = {0} + (tid >> 1), ch = tid & 1;\n"
                     "        if (r < {1}) {{\n"
                     "          const int bo = o0 + r;\n"
                     "          const bool ok = bo < ${{N}};\n"
                     "          const unsigned short* src = (const unsigned short*)packed + (ok ? (${{I}})bo * ${{KP}} + kt + ch * 8 : 0);\n"
                     "          shoal_cp_async_f32x4_aligned(stage + {2} + r * 32 + ((ch ^ ((r >> 2) & 1)) << 4), (const float*)src, ok);\n"
                     "        }}\n"
                     "      }}\n",
                     pass * 128, tile.bn, tile.bm * 64);
  return s;
}

// aHalf64's copies (both operands 16-bit, 64 reduction steps a stage: 128-byte rows, chunk j
// of row r at chunk j ^ (r & 7), PTX's 128-byte swizzle): 8 threads a row, one 16-byte chunk
// each, so a warp copies 4 whole rows (4 x 128 contiguous bytes); the `copiers` threads (the
// block's 256, or its 128 producers: thread `ct`) copy A's BM rows copiers / 8 at a time, then
// B's BN packed rows. What depends on the row alone -- its origin, which of its taps lie inside,
// B's row pointer, the thread's chunk in shared memory -- is kept from before the loop
// (half64Rows); a stage computes its tap once (aTap), then each A row is a shift, an add and a
// select, each B row an add.
// aHalf64's row elements: fp32 for TF32 (CudaCodegenOptions::tf32ChannelsLast), else 16-bit;
// and how many fill a 16-byte chunk.
const char* rowElement(const ImplicitGemm& spec) {
  return spec.math == TensorCoreMath::Tf32 ? "float" : "unsigned short";
}
int chunkElements(const ImplicitGemm& spec) { return spec.math == TensorCoreMath::Tf32 ? 4 : 8; }

std::string half64Copies(const ImplicitGemm& spec, const Tile& tile, int copiers) {
  // kHalfSwapped: B's rows first (the warpgroups' m64 operand), then A's.
  const bool swapped = isHalfSwapped(tile);
  const int aAt = swapped ? tile.bn * 128 : 0, bAt = swapped ? 0 : tile.bm * 128, rows = copiers / 8;
  const char* one = spec.aTaps > 32 ? "1ull" : "1u";
  std::string s = "      {\n" + spec.aTap;
  for (int p = 0; p < tile.bm / rows; ++p)
    s += fmt::format(
        "        {{\n"
        "          const bool ok = (rtaps_s[{0}] >> tap) & {1};\n"
        "          shoal_cp_async_f32x4_{2}(stage + {3} + cdst, (const float*)((const {5}*){4} + (ok ? "
        "roff_s[{0}] + toff : 0)), ok);\n"
        "        }}\n",
        p, one, spec.aCached ? "cached" : "aligned", aAt + p * rows * 128, spec.aBase, rowElement(spec));
  for (int p = 0; p < tile.bn / rows; ++p)
    s += fmt::format(
        "        shoal_cp_async_f32x4_aligned(stage + {0} + cdst, (const float*)(brow_s[{1}] + kt), (brows >> {1}) & "
        "1u);\n",
        bAt + p * rows * 128, p);
  return s + "      }\n";
}

bool im2colMaps(const ImplicitGemm::Im2col& g, const ImplicitGemm& spec, const Tile& tile, int64_t kp,
                std::vector<CudaTensorMap>& maps) {
  const int eb = g.bytes, perRow = eb == 2 || eb == 4 ? 128 / eb : 0;
  (void)spec;
  if (perRow == 0 || g.c % perRow != 0 || g.cornersH < 1 || g.cornersW < 1) return false;
  // The bounding box of the filter's corners: from the first to the last, as offsets from the
  // image's first and last pixels (the engine's 4-D limits: [-128, 127]).
  const int64_t lowW = g.lowerW, lowH = g.lowerH;
  const int64_t upW = g.lowerW + (g.cornersW - 1) * g.sw - (g.w - 1),
                upH = g.lowerH + (g.cornersH - 1) * g.sh - (g.h - 1);
  auto corner = [](int64_t v) { return v >= -128 && v <= 127; };
  if (!corner(lowW) || !corner(lowH) || !corner(upW) || !corner(upH) || g.sw < 1 || g.sw > 8 || g.sh < 1 || g.sh > 8 ||
      g.spanW < 0 || g.spanW > 255 || g.spanH < 0 || g.spanH > 255 || tile.bm > 256 || tile.bn > 256)
    return false;
  CudaTensorMap a;
  a.name = "amap";
  a.elementBytes = eb;
  a.rank = 4;
  a.im2col = true;
  const int64_t dims[4] = {g.c, g.w, g.h, g.n};
  for (int d = 0; d < 4; ++d) a.dims[d] = dims[d];
  a.strides[0] = g.c * eb;
  a.strides[1] = g.w * a.strides[0];
  a.strides[2] = g.h * a.strides[1];
  a.channels = perRow;
  a.pixels = g.mn ? 64 : tile.bm;
  a.lower[0] = int(lowW), a.lower[1] = int(lowH);
  a.upper[0] = int(upW), a.upper[1] = int(upH);
  a.stride[0] = g.sw, a.stride[1] = g.sh;
  CudaTensorMap b;
  b.name = "bmap";
  b.elementBytes = eb;
  b.rank = 2;
  if (g.mn) {  // the copy's rows (every image's corners) of bWidth values; 64 x 64 atoms
    b.dims[0] = g.bWidth;
    b.dims[1] = g.n * g.cornersH * g.cornersW;
    b.strides[0] = g.bWidth * eb;
    b.box[0] = perRow;
    b.box[1] = 64;
  } else {
    b.dims[0] = kp;
    b.dims[1] = spec.cols;
    b.strides[0] = kp * eb;
    b.box[0] = perRow;
    b.box[1] = tile.bn;
  }
  maps = {a, b};
  return true;
}

// Before aHalf64's loop (the copying threads: `ct` of `copiers`): each of the thread's A rows'
// offset at its first tap plus its chunk (roff_s, by pass) and its taps inside the input
// (rtaps_s: none for a row past the end); each of its B rows' pointer at its chunk (row 0's for
// a row past the end: always a valid address) and whether it exists (bit p of brows); `cdst`,
// the thread's chunk in each of its rows of the stage (rows a multiple of 8 apart: the same
// swizzle).
std::string half64Rows(const ImplicitGemm& spec, const Tile& tile, int copiers, const std::string& ct) {
  const int rows = copiers / 8;
  return fmt::format(
      "  const int ch = {4} & 7, cdst = ({4} >> 3) * 128 + ((ch ^ (({4} >> 3) & 7)) << 4);\n"
      "  ${{I}} roff_s[{0}];\n"
      "  {1} rtaps_s[{0}];\n"
      "#pragma unroll\n"
      "  for (int p = 0; p < {0}; ++p) {{\n"
      "    const ${{I}} am = m0 + p * {5} + ({4} >> 3);\n"
      "    const bool arow = am < ${{M}};\n"
      "{2}"
      "    roff_s[p] = roff + {8};\n"
      "    rtaps_s[p] = arow ? rtaps : 0;\n"
      "  }}\n"
      "  const {6}* brow_s[{3}];\n"
      "  unsigned brows = 0;\n"
      "#pragma unroll\n"
      "  for (int p = 0; p < {3}; ++p) {{\n"
      "    const int bo = o0 + p * {5} + ({4} >> 3);\n"
      "    brow_s[p] = (const {6}*)packed + (bo < ${{N}} ? (${{I}})bo * ${{KP}} : 0) + ch * {7};\n"
      "    if (bo < ${{N}}) brows |= 1u << p;\n"
      "  }}\n",
      tile.bm / rows, spec.aTapMask(), spec.aRowSetup, tile.bn / rows, ct, rows, rowElement(spec), chunkElements(spec),
      spec.aChunk.empty() ? fmt::format("ch * {}", chunkElements(spec)) : "(" + spec.aChunk + ")");
}

// halfMN's copies (both operands MN-major, 64 reduction steps a stage): each reduction index
// of the stage is a 128-byte row of each 64-row (column) atom, chunk j of row r at chunk
// j ^ (r & 7); atoms 8 KB apart, A's BM / 64 then B's BN / 64. 8 threads a row, one 16-byte
// chunk each; the stage's 64 indices copiers / 8 at a time (the block's 256 threads, or its
// 128 producers: thread `ct`), each pass computing its index's offsets once for all atoms
// (kRowSetup, from the index's digits kept from the stage before: kDigits), each atom's own
// part (aAtom) the same at every stage. A row's address is its atom's pointer (the same at every
// stage) plus the pass's offset; a row outside reads nothing from the operand's base.
std::string halfMNCopies(const ImplicitGemm& spec, const Tile& tile, int copiers, const std::string& ct) {
  std::string s;
  const int rows = copiers / 8;
  const size_t nd = spec.kDigits.size();
  for (int pass = 0; pass < 64 / rows; ++pass) {
    s += fmt::format(
        "      {{\n"
        "        const int k = kt + {0} + ({1} >> 3);\n"
        "        const bool kin = k < kEnd;\n",
        pass * rows, ct);
    for (size_t d = 0; d < nd; ++d)
      s += fmt::format("        const int {0} = {3}kd{1}_s[{2}]{4};\n", spec.kDigits[d].first, d, pass,
                       d + 1 < nd ? "" : "kin ? ", d + 1 < nd ? "" : " : 0");
    s += spec.kRowSetup + "        const ${I} bk = kin ? " + spec.bOffset + " : 0;\n";
    for (int a = 0; a < tile.bm / 64; ++a)
      s += fmt::format(
          "        {{\n"
          "          const ${{I}} mo = m0 + {0};\n"
          "{1}"
          "          const bool ok = kin & (mo < ${{M}}) & ({2});\n"
          "          shoal_cp_async_f32x4_aligned(stage + {3} + cdst, (const float*)(((const unsigned short*){4} + "
          "(aoff + {5})) + (ok ? kofs : 0)), ok);\n"
          "        }}\n",
          64 * a, spec.aAtom, spec.aInside, a * 8192 + pass * rows * 128, spec.aBase,
          spec.aChunk.empty() ? "ch * 8" : "(" + spec.aChunk + ")");
    for (int b = 0; b < tile.bn / 64; ++b)
      s += fmt::format(
          "        {{\n"
          "          const int no = o0 + {0};\n"
          "          shoal_cp_async_f32x4_aligned(stage + {1} + cdst, (const float*)(((const unsigned short*){2} + "
          "((no < ${{N}} ? no : 0) + ch * 8)) + bk), kin && no < ${{N}});\n"
          "        }}\n",
          64 * b, tile.bm * 128 + b * 8192 + pass * rows * 128, spec.bBase);
    // The index's digits 64 on: each digit's part of 64, plus the carry from the one inside.
    if (nd > 0) {
      int64_t inner = 1;
      s += "        {\n          int c = 0, d;\n";
      for (size_t d = 0; d < nd; ++d) {
        const auto& [name, radix] = spec.kDigits[d];
        if (d + 1 == nd) {
          s += fmt::format("          kd{}_s[{}] += {} + c;\n", d, pass, 64 / inner);
        } else {
          s += fmt::format(
              "          d = kd{0}_s[{1}] + {2} + c;\n"
              "          c = d >= {3};\n"
              "          kd{0}_s[{1}] = c ? d - {3} : d;\n",
              d, pass, 64 / inner % radix, radix);
          inner *= radix;
        }
      }
      s += "        }\n";
    }
    s += "      }\n";
  }
  return s;
}

// Before halfMN's loop (the copying threads: `ct` of `copiers`): the thread's chunk in each of
// its rows of the stage, and its reduction indices' digits at the slice's first stage
// (ImplicitGemm::kDigits: kd<d>_s[pass]).
std::string halfMNRows(const ImplicitGemm& spec, int copiers, const std::string& ct) {
  std::string s =
      fmt::format("  const int ch = {0} & 7, cdst = ({0} >> 3) * 128 + ((ch ^ (({0} >> 3) & 7)) << 4);\n", ct);
  const size_t nd = spec.kDigits.size();
  if (nd == 0) return s;
  const int passes = 64 / (copiers / 8);
  for (size_t d = 0; d < nd; ++d) s += fmt::format("  int kd{}_s[{}];\n", d, passes);
  s += fmt::format(
      "#pragma unroll\n"
      "  for (int p = 0; p < {0}; ++p) {{\n"
      "    const int k0 = kBegin + p * {1} + ({2} >> 3);\n",
      passes, copiers / 8, ct);
  int64_t inner = 1;
  for (size_t d = 0; d < nd; ++d) {
    const int64_t radix = spec.kDigits[d].second;
    const std::string q = inner == 1 ? "k0" : fmt::format("k0 / {}", inner);
    s += d + 1 == nd ? fmt::format("    kd{}_s[p] = {};\n", d, q)
                     : fmt::format("    kd{}_s[p] = {} % {};\n", d, q, radix);
    inner *= radix;
  }
  return s + "  }\n";
}

}  // namespace shoal::cudagen::igemm
