// CUDA codegen, tensor cores: a GEMM over gathered operands (an implicit GEMM) in TF32,
// bfloat16 or float16 with fp32 accumulation, through mma.sync m16n8k8 (TF32) or m16n8k16
// (the prelude's shoal_warp_mma_tf32 and shoal_warp_mma_16bit). The
// convolutions (forward, both gradients, the transposed convolution) describe their gathers
// and epilogues in codegen/cuda_kernels_conv.cpp; this file owns the tiling.
//
// A block of 8 warps computes a 128 x 128 tile of the output (2 x 4 warps), or 256 x 64 when
// there are at most 64 columns (4 x 2 warps); each warp 64 x 32 as 4 x 4 mma products. The
// reduction runs in steps of 16 through a ring of kStages shared-memory stages: every thread
// gathers its elements of a stage with cp.async (4-byte copies, zero-filled where the gather
// is out of range), so the copies of the next kStages - 1 stages are in flight while the warps
// multiply the current one, and one barrier per step. The stages hold fp32, each row's 16
// columns XOR-swizzled so that a warp's fragment reads hit 32 different banks; the operands
// are rounded to the format as the fragments are read (every fragment an ldmatrix; TF32 then
// cvt.rna, 16-bit a pair of words converted and packed per register). Shared addresses are
// 32-bit values computed once per thread (shoal_saddr). A gather is per element, or
// (ImplicitGemm::aGroup / bGroup) does its index arithmetic once per 8 (or 4) elements and then
// only strides -- equally spaced groups (aStride) as one predicate and pointer; B may instead
// be packed by a first kernel into scratch (ImplicitGemm::bPacked: the weights in the GEMM's
// order) and, like a contiguous B (bVector), copied 16 bytes at a time.
//
// On sm_90a (CudaCodegenOptions::wgmma) the same copies and ring feed Hopper's warpgroup MMA
// instead: the block's two warpgroups each multiply half of the tile's rows by all of its
// columns (wgmmaPath: TF32 with both operands read from the stage through matrix descriptors,
// the stage's swizzle being PTX's 64-byte mode; wgmma16Path: bfloat16 / float16 with A's
// fragments in registers and the packed B as 16-bit stage rows; halfPath:
// both operands 16-bit in the stage, 64 reduction steps a stage as 128-byte rows in PTX's
// 128-byte swizzle, K-major -- A a channels-last input, B the packed weights -- or both
// MN-major, the weight gradient's channels-last x and dy). MultiplyPath holds what the
// ways of multiplying differ in; wgmmaPrelude (codegen/cuda_wgmma_prelude.cpp) the helpers and
// their CPU emulation.
// Exact fp32 (ImplicitGemm::math Off) multiplies by fmaf on the CUDA cores instead (simtPath), with
// a third tile, 128 x 64 at two blocks an SM, for grids the larger tiles leave part-empty.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

/// Stages of the shared-memory ring (one in use, the others' copies in flight).
constexpr int kStages = 4;
// CudaCodegenOptions::halfProducerWarps: the producer warpgroup's threads, after the block's
// kBlock multiplying ones.
constexpr int kProducerThreads = 128;

struct Tile {
  int bm, bn;        // block tile rows x columns
  int warpsM;        // warps along the rows (8 / warpsM along the columns)
};

// The tensor cores' two tiles: 128 x 128 (2 x 4 warps) and 256 x 64 (4 x 2); the cost model
// takes 256 x 64 for 64 columns or fewer, where 128 x 128 would leave half its columns empty.
// Exact fp32 (simtPath) has a third, 128 x 64: 32 accumulators a thread, so two blocks an SM
// (256 threads at 128 registers, where the larger tiles' 64 accumulators and two sets of B
// columns take ~250: one block). It is chosen over the larger tile by their grid costs
// (simtGridCost): where the larger tile's grid would leave a wave part-empty.
constexpr Tile kSquare{128, 128, 2}, kTall{256, 64, 4}, kSimt{128, 64, 2};
// ImplicitGemm::aHalf64's tiles: 128 x 128 and, for at most 64 columns, 128 x 64 (kSimt's
// extents; a stage of 64 steps is 128-byte rows, so 256 rows of A would take 32 KB a stage).
constexpr Tile kHalfNarrow = kSimt;
// And, for more than 128 columns, 128 x 256 (CudaCodegenOptions::halfWideTile): each warpgroup
// one m64n256 product, four stages of 48 KB (one block an SM), overlapped across the barrier.
constexpr Tile kHalfWide{128, 256, 2};
bool isHalfWide(const Tile& t) { return t.bm == kHalfWide.bm && t.bn == kHalfWide.bn; }
// And, for aHalf64's products of 65-128 columns (ResNet-18's layer 2), 256 x 128 multiplied
// the other way round (CudaCodegenOptions::halfSwappedTile): the warpgroups' m64 rows are the
// columns (64 filters each) and their n256 the tile's 256 rows (pixels), so each m64n256k16
// reads 64 + 256 rows of operands as kHalfWide's does; the stage holds B's 128 rows first, then
// A's 256. Four stages of 48 KB, overlapped, one block an SM.
constexpr Tile kHalfSwapped{256, 128, 2};
bool isHalfSwapped(const Tile& t) { return t.bm == kHalfSwapped.bm && t.bn == kHalfSwapped.bn; }
// The most slices a reduction of `red` steps may be cut in: each at least minSlice long.
int64_t mostSplits(int64_t red, int64_t minSlice) { return std::max<int64_t>(1, red / std::max<int64_t>(minSlice, 16)); }

Tile tileFor(int64_t cols) { return cols <= 64 ? kTall : kSquare; }
Tile tileOf(const ProductTile& t) {
  if (t.bm == kHalfSwapped.bm && t.bn == kHalfSwapped.bn) return kHalfSwapped;
  return t.bm == kTall.bm ? kTall : t.bn == kSimt.bn ? kSimt : t.bn == kHalfWide.bn ? kHalfWide : kSquare;
}
bool isSimtTile(const Tile& t) { return t.bm == kSimt.bm && t.bn == kSimt.bn; }

// The cost model, in units of one block's 16-step (~0.5 us on an H100/H200): a grid of `s`
// slices runs `waves` waves, each as long as a slice's steps plus ~6 for filling the stages and
// the epilogue; splitting adds the slices' sums (written, then read and added: 8 bytes per
// element and slice at ~3 TB/s).
double gridCost(double waves, int64_t rows, int64_t cols, int64_t red, int64_t s) {
  return waves * (double(((red + 15) / 16 + s - 1) / s) + 6.0) +
         (s > 1 ? double(s) * double(rows) * double(cols) / 187500.0 : 0.0);
}

// The slices (1 .. mostSplits(red, minSlice)) of least cost(s), the fewest among equals.
template <typename Cost>
int64_t cheapestSplits(int64_t red, int64_t minSlice, const Cost& cost) {
  int64_t best = 1;
  double bestCost = cost(1);
  for (int64_t s = 2; s <= mostSplits(red, minSlice); ++s)
    if (const double c = cost(s); c < bestCost) best = s, bestCost = c;
  return best;
}

// The cost model's slices for `tile`, each at least minSlice steps (see ImplicitGemm::splits):
// the grid runs in waves of `wave` blocks (ImplicitGemm::waveBlocks); a grid of 1.1 waves costs
// two. Forwards and data gradients count one block an SM: with two, the model split products
// the autotuner measured faster whole (ResNet-18 TF32 on an H200: layer 4's 3 x 3 at batch
// 256 0.496 ms in two slices, 0.370 in one; layer 3's at batch 32 0.105 -> 0.079; the
// training step's layer-3 data gradients 0.331 -> 0.215). Weight gradients count two: with
// one, their fewer, longer slices made the batch-128 training step 18.8 -> 22.5 ms.
int64_t splitsFor(const Tile& tile, int64_t rows, int64_t cols, int64_t red, int64_t minSlice, int64_t wave,
                  int64_t batch = 1) {
  const int64_t tiles = ((rows + tile.bm - 1) / tile.bm) * ((cols + tile.bn - 1) / tile.bn) * batch;
  return cheapestSplits(red, minSlice, [&](int64_t s) {
    return gridCost(double((tiles * s + wave - 1) / wave), rows * batch, cols, red, s);
  });
}

// Exact fp32's choice between kSimt (two blocks an SM) and a larger tile (one), by gridCost at
// the SMs' real residency: a wave of kTargetBlocks / 2 blocks of the larger tile costs its
// steps; kSimt's waves hold kTargetBlocks blocks, each wave-step costing kSimtWaveStep of the
// larger tile's, and a last wave of at most one block an SM kSimtHalfWave of a full one (its
// blocks run alone on their SMs). Measured on an H200 (ResNet-18 fp32,
// bench/results/2026-12-04-h200-fp32-simt-tile): with many waves kSimt was 1.07x slower (batch
// 256, 29.0 against 27.2 ms: its 8 x 4 accumulators read 0.375 floats of shared memory a
// multiply-add, the 8 x 8 tiles 0.25, and Nsight Compute had its shared memory pipe 74 %
// busy); layer 2's 3 x 3 at batch 32, 392 blocks of kSimt against 196 of 128 x 128 (1.48 waves
// each), took 296 against 340 us: (1 + h) x 1.07 / 2 = 0.87, h = 0.63.
constexpr double kSimtWaveStep = 1.07, kSimtHalfWave = 0.63;
double simtGridCost(const Tile& tile, int64_t rows, int64_t cols, int64_t red, int64_t s, int64_t batch = 1) {
  const int64_t blocks = ((rows + tile.bm - 1) / tile.bm) * ((cols + tile.bn - 1) / tile.bn) * s * batch;
  if (!isSimtTile(tile))
    return gridCost(double((blocks + kTargetBlocks / 2 - 1) / (kTargetBlocks / 2)), rows * batch, cols, red, s);
  const int64_t rest = blocks % kTargetBlocks;
  const double last = rest == 0 ? 0.0 : rest <= kTargetBlocks / 2 ? kSimtHalfWave : 1.0;
  return gridCost((double(blocks / kTargetBlocks) + last) * kSimtWaveStep, rows * batch, cols, red, s);
}

// What a product may be computed with: the cost model's tile and slices first, then the other
// tile (with the model's slices for it), then the model's tile with twice and half the slices
// (where the caller leaves them open), each once, each within one grid's limits. Exact fp32
// compares kSimt with the tensor cores' tile for its columns (simtGridCost). The 16-bit
// channels-last products of more than 128 columns have kHalfWide as well: last, or (`wide`:
// CudaCodegenOptions::halfWideTile) first, 128 x 128 then the other; aHalf64's of 65-128
// columns kHalfSwapped the same way (`swapped`: CudaCodegenOptions::halfSwappedTile).
std::vector<ProductTile> productCandidates(const ImplicitGemm& spec, bool wide, bool swapped) {
  std::vector<ProductTile> out;
  auto add = [&](const Tile& t, int64_t splits) {
    const ProductTile c{t.bm, t.bn, splits};
    const int64_t rowTiles = (spec.rows + t.bm - 1) / t.bm, colTiles = (spec.cols + t.bn - 1) / t.bn;
    if (splits < 1 || (spec.splits == 0 && splits > mostSplits(spec.red, spec.minSlice))) return;
    if (rowTiles * splits > int64_t(0x7fffffff) || colTiles * spec.batch > 65535) return;
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  const bool simt = spec.math == TensorCoreMath::Off;
  Tile model = tileFor(spec.cols), other = model.bm == kTall.bm ? kSquare : kTall;
  const bool half = spec.aHalf64 || spec.halfMN, wideToo = half && spec.cols > 128;
  const bool swappedToo = spec.aHalf64 && spec.cols > 64 && spec.cols <= 128;
  if (half) {  // 64-step stages: 128 x 128 or 128 x 64 (kHalfNarrow)
    model = spec.cols <= 64 ? kHalfNarrow : kSquare;
    other = spec.cols <= 64 ? kSquare : kHalfNarrow;
    if (wideToo && wide) model = kHalfWide, other = kSquare;
    if (swappedToo && swapped) model = kHalfSwapped, other = kSquare;
  }
  // kSimt's slices by its own grid cost; the larger tiles' as the tensor cores' (waveBlocks;
  // kHalfWide's blocks one an SM).
  auto slices = [&](const Tile& t) {
    if (spec.splits > 0) return spec.splits;
    if (isHalfWide(t) || isHalfSwapped(t))
      return splitsFor(t, spec.rows, spec.cols, spec.red, spec.minSlice, kTargetBlocks / 2, spec.batch);
    if (!isSimtTile(t)) return splitsFor(t, spec.rows, spec.cols, spec.red, spec.minSlice, spec.waveBlocks, spec.batch);
    return cheapestSplits(spec.red, spec.minSlice,
                          [&](int64_t s) { return simtGridCost(t, spec.rows, spec.cols, spec.red, s, spec.batch); });
  };
  if (simt) {
    other = model;
    if (simtGridCost(kSimt, spec.rows, spec.cols, spec.red, slices(kSimt), spec.batch) <
        simtGridCost(model, spec.rows, spec.cols, spec.red, slices(model), spec.batch))
      model = kSimt;
    else
      other = kSimt;
  }
  add(model, slices(model));
  add(other, slices(other));
  if (spec.splits == 0 && !out.empty()) {
    add(model, slices(model) * 2);
    add(model, slices(model) / 2);
  }
  if (wideToo && !wide) add(kHalfWide, slices(kHalfWide));
  if (swappedToo && !swapped) add(kHalfSwapped, slices(kHalfSwapped));
  return out;
}

// Whether `code` uses the identifier `name` (not as part of a longer one).
bool mentions(const std::string& code, const std::string& name) {
  auto word = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (size_t at = code.find(name); at != std::string::npos; at = code.find(name, at + 1))
    if ((at == 0 || !word(code[at - 1])) && (at + name.size() == code.size() || !word(code[at + name.size()])))
      return true;
  return false;
}

// One operand's copies into the stage at shared address `stage` for the tile at reduction
// index `kt`: `passes` passes of rows (128 per pass when `group` is 8, 64 when 4), each thread
// a row and `group` consecutive reduction steps. `rowSetup` declares what the gathers need for
// row `rowVar`. Three forms of gather:
//  - `stride` set (a grouped gather whose elements are equally spaced): `groupSetup` declares
//    `gvalid` and `goff`; element e is base[goff + e * stride], all of the group valid or none
//    (the caller guarantees the alignment), so one predicate and one pointer serve the group;
//  - `vector`: `load` sets `src` and `ok` for the 4 elements from k (one 16-byte copy;
//    `aligned`: src is known to be 16-byte aligned);
//  - else per element: `load` sets `src` and `ok` (false before it) for element `k`, after
//    `groupSetup` if any.
// The destinations are computed once per row: within a row's 16 columns a thread's group of
// 8 lands at two runs of 4 (the swizzle flips bits 2 and 3 of the column), a group of 4 at one.
struct CopySpec {
  int passes = 1, group = 8;
  bool vector = false, aligned = false;
  bool cached = false;  // aligned vectors through L1 too (their neighbours read them again)
  bool wholeGroups = false;  // a group's elements all before the slice's end or none (no check each)
  // With `stride`: the 16 steps of a stage row are equally spaced too, so 4 threads share a row
  // and each copies every fourth step (k = kc + 4e): a warp's copy then writes 8 rows x 4
  // columns, 32 different banks (a thread's 8 consecutive steps meet 4-way bank conflicts).
  bool interleaved = false;
  int rowBase = 0;
  std::string rowVar, rowOk, rowLimit, rowType, rowOrigin, rowSetup, groupSetup, load, base, stride;
  // The caller's copies of a group of 8 (ImplicitGemm::aGroupCopies), after groupSetup.
  std::string groupCopies;
};

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

// What differs between the two ways of multiplying a stage: the warps' roles and their
// accumulators, the per-step products, what a step waits for before its barrier, the wait
// after the loop, and the epilogue loop's (m, o, s) for each accumulator (its body follows).
struct MultiplyPath {
  std::string warpRoles, fragmentAddresses, accumulators, stageReady, steps, drain, epilogueLoop;
  /// The epilogue loop visits a thread's rows outermost, running ${EPILOGUE_ROW} (ImplicitGemm::
  /// epilogueRow) once for each; epilogueEnd closes what it opened past the element's block.
  /// Otherwise the row code runs with each element's.
  bool rowsOuter = false;
  std::string epilogueEnd;
};

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
      "    roff_s[p] = roff + ch * {7};\n"
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
      tile.bm / rows, spec.aTapMask(), spec.aRowSetup, tile.bn / rows, ct, rows, rowElement(spec), chunkElements(spec));
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
          "(aoff + ch * 8)) + (ok ? kofs : 0)), ok);\n"
          "        }}\n",
          64 * a, spec.aAtom, spec.aInside, a * 8192 + pass * rows * 128, spec.aBase);
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

}  // namespace

Expected<void> emitImplicitGemm(NodeEmitter& em, const ImplicitGemm& spec) {
  if (spec.rows <= 0 || spec.cols <= 0) return {};
  if (spec.batch < 1) return em.unsupported("an implicit GEMM's batch must be at least 1");
  // The tile and slices: an autotuner's choice for this kernel (productTiles), else the tuning
  // variant's candidate, else the cost model's.
  CudaProduct product;
  product.kernel = em.kernelName(spec.name + "tc");
  product.node = &em.node();
  product.candidates = productCandidates(spec, em.options().halfWideTile, em.options().halfSwappedTile);
  if (product.candidates.empty()) return em.unsupported("an implicit GEMM too large for one grid");
  product.chosen = product.candidates[0];
  const int variant = em.options().tuningVariant;
  if (auto it = em.options().productTiles.find(product.kernel); it != em.options().productTiles.end()) {
    if (std::find(product.candidates.begin(), product.candidates.end(), it->second) == product.candidates.end()) {
      std::string names;
      for (const ProductTile& c : product.candidates) names += (names.empty() ? "" : ", ") + c.describe();
      return em.unsupported(fmt::format("tile {} for kernel {} is not one of its candidates ({})",
                                        it->second.describe(), product.kernel, names));
    }
    product.chosen = it->second;
  } else if (variant >= 0 && size_t(variant) < product.candidates.size()) {
    product.chosen = product.candidates[size_t(variant)];
  }
  const Tile tile = tileOf(product.chosen);
  const int64_t splits = product.chosen.splits;
  em.addProduct(std::move(product));
  const int64_t rowTiles = (spec.rows + tile.bm - 1) / tile.bm, colTiles = (spec.cols + tile.bn - 1) / tile.bn;
  const bool sixteenBit = spec.math == TensorCoreMath::Bf16 || spec.math == TensorCoreMath::Fp16;
  // A and B both in 128-byte rows of the format (ImplicitGemm::aHalf64): 64 steps a stage of
  // bfloat16 / float16, or 32 of TF32's fp32 (CudaCodegenOptions::tf32ChannelsLast).
  const bool half64 = spec.aHalf64;
  const bool tf32Rows = half64 && spec.math == TensorCoreMath::Tf32;
  const int rowSteps = tf32Rows ? 32 : 64;
  if (half64 && (!em.options().wgmma || !(sixteenBit || tf32Rows) || spec.bPacked.empty() || spec.red % rowSteps != 0 ||
                 !spec.aColumn.empty() || (tile.bm != 128 && !isHalfSwapped(tile)) || spec.aTaps < 1 ||
                 spec.aTaps > 64 || spec.batch > 1 || (tf32Rows && spec.aCached)))
    return em.unsupported(
        "aHalf64 needs wgmma, a 16-bit or TF32 math, B packed, whole 128-byte rows of steps, 128-row tiles, 1-64 "
        "taps and one product");
  // Both operands 16-bit and MN-major (ImplicitGemm::halfMN).
  const bool halfMN = spec.halfMN;
  if (halfMN && (!em.options().wgmma || !sixteenBit || !spec.bPacked.empty() || half64 || spec.rows % 64 != 0 ||
                 spec.cols % 64 != 0 || !spec.aColumn.empty() || tile.bm != 128))
    return em.unsupported("halfMN needs wgmma, a 16-bit math, 64k rows and columns, no packing and 128-row tiles");
  if (!spec.kDigits.empty()) {
    int64_t inner = 1;
    for (size_t d = 0; d + 1 < spec.kDigits.size(); ++d) {
      inner *= spec.kDigits[d].second;
      if (spec.kDigits[d].second < 1 || inner > std::numeric_limits<int>::max())
        return em.unsupported("kDigits: each inner digit's radix at least 1, their product an int");
    }
    if (!halfMN) return em.unsupported("kDigits needs halfMN");
  }
  const bool half = half64 || halfMN;
  const int kstep = half ? rowSteps : 16;
  // Reduction steps of kstep per slice (whole steps, so slices never share one).
  const int64_t steps = (spec.red + kstep - 1) / kstep;
  const int64_t perSlice = (steps + splits - 1) / splits * kstep;
  // Off: exact fp32 FMAs on the CUDA cores (simtPath), the operands as they are.
  const bool simt = spec.math == TensorCoreMath::Off;
  // B packed by a first kernel into scratch as rows of kp (red rounded up to whole 16-steps,
  // zeros past red): each row's reduction steps contiguous and 16-byte aligned. A parameter's
  // packing (or a folded batch norm's weights', CudaModuleSource::hoisted) is a function of the
  // parameters alone: with prepareParameters it goes into a prepared block, which the executor
  // fills when the parameters change, not every step.
  const bool packB = !spec.bPacked.empty();
  // sm_90a (CudaCodegenOptions::wgmma): the block's two warpgroups each multiply half of the
  // tile's rows by all of its columns through wgmma -- TF32 with both operands from the stage;
  // bfloat16 and float16 with A's fragments from registers and B, packed in the format (16-bit
  // rows in the stage), from shared memory, so only where B is packed (the weights). A 16-bit
  // GEMM whose B is gathered (the weight gradient's) multiplies in TF32 through wgmma instead
  // (CudaCodegenOptions::wgmmaTf32Gathered16), else on mma.sync. Else mma.sync from ldmatrix
  // fragments.
  const bool wgmma16 = em.options().wgmma && sixteenBit && packB && !half64;
  const bool wgmma = em.options().wgmma && !halfMN &&
                     (spec.math == TensorCoreMath::Tf32 || (sixteenBit && !packB && em.options().wgmmaTf32Gathered16));
  // A stage: BM rows of 16 fp32 words (64 bytes), then BN rows of B -- 64 bytes of fp32, or 32
  // bytes of 16-bit values with wgmma16.
  // aHalf64: BM then BN rows of 64 16-bit values (128 bytes); 3 stages of 128 x 128 (32 KB
  // each) or 4 of 128 x 64 (24 KB): 96 KB, two blocks an SM.
  const int stageFloats = half ? (tile.bm + tile.bn) * 32 : tile.bm * 16 + tile.bn * (wgmma16 ? 8 : 16);
  // halfStageOverlap: four stages, two ahead -- the products of the stage before last are
  // waited for before the barrier (128 x 128: 128 KB, one block an SM).
  // kHalfWide: four stages of 48 KB, always overlapped (one block an SM: no other block's
  // products to fill the barrier's gap).
  const bool wideTile = isHalfWide(tile) || isHalfSwapped(tile);
  const bool overlap = half && (em.options().halfStageOverlap || wideTile);
  // CudaCodegenOptions::halfProducerWarps: a third warpgroup copies (thread `ptid` of 128), four
  // stages.
  const bool producers = half && em.options().halfProducerWarps;
  const int copiers = producers ? kProducerThreads : int(kBlock);
  const std::string copier = producers ? "ptid" : "tid";
  // With producers, one block an SM: as many slots as 192 KB holds, at most 7 (two named
  // barriers a slot, 15 in all) -- 6 of 128 x 128, 7 of 128 x 64, 4 of the 48 KB tiles.
  const int halfStageBytes = (tile.bm + tile.bn) * 128;
  const int stages = producers ? std::min(7, 196608 / halfStageBytes)
                     : overlap ? 4
                     : half    ? (tile.bn == 128 ? 3 : 4)
                               : kStages;
  const int ahead = overlap ? stages - 2 : stages - 1;  // stages in flight while one is multiplied
  const int64_t kp = (spec.red + kstep - 1) / kstep * kstep;
  // Floats the packed B takes (16-bit values two to a float with wgmma16 and aHalf64).
  const bool pack16 = wgmma16 || (half64 && !tf32Rows);
  const int64_t packFloats = packB ? (pack16 ? spec.batch * spec.cols * kp / 2 : spec.batch * spec.cols * kp) : 0;
  const bool batched = spec.batch > 1;
  const Value* bSource = spec.bSource.kind == CudaArgKind::Value ? spec.bSource.value : nullptr;
  const bool prepareB = packB && em.options().prepareParameters && em.madeBeforePrepare(bSource);
  const int64_t scratchPack = prepareB ? 0 : packFloats;  // floats of packed B in scratch
  const std::string bLoad =
      packB ? fill(batched ? "            src = &packed[((${I})bz * ${N} + bo) * ${KP} + k];\n            ok = true;\n"
                           : "            src = &packed[(${I})bo * ${KP} + k];\n            ok = true;\n",
                   {{"I", em.I()}, {"KP", intLit(kp)}, {"N", intLit(spec.cols)}})
            : spec.bLoad;
  CopySpec a;
  a.interleaved = !spec.aVector && !spec.aStride.empty() && spec.aStride16;
  a.vector = a.aligned = a.cached = spec.aVector;
  a.passes = tile.bm / (a.interleaved || a.vector ? 64 : 128);
  a.group = a.interleaved || a.vector ? 4 : 8;
  a.rowVar = "am", a.rowOk = "arow", a.rowLimit = intLit(spec.rows), a.rowType = em.I(), a.rowOrigin = "m0";
  a.rowSetup = spec.aRowSetup, a.load = spec.aLoad, a.base = spec.aBase;
  if (!spec.aVector) a.groupSetup = spec.aGroup, a.stride = spec.aStride;
  if (!spec.aGroupCopies.empty()) {
    // Whole groups of 8 from the caller's copies: not with the other forms.
    if (spec.aGroup.empty() || !spec.aStride.empty() || spec.aVector || !spec.aColumn.empty() || spec.red % 8 != 0)
      return em.unsupported("aGroupCopies needs aGroup, whole groups of 8 and no other form of A gather");
    a.groupCopies = spec.aGroupCopies;
  }
  for (int e : spec.aHoles)
    if (spec.aGroupCopies.empty() || e < 0 || e > 7) return em.unsupported("aHoles: elements 0-7 of aGroupCopies' groups");
  // Grouped gathers start at multiples of 8 (4), and slices end at multiples of 16 or at red;
  // vectors of 4 are whole where red is a multiple of 4 (the caller's promise).
  a.wholeGroups = spec.aVector || (!a.groupSetup.empty() && spec.red % 8 == 0);
  CopySpec b;
  b.passes = tile.bn / 64;
  b.group = 4;
  b.vector = packB || spec.bVector;
  b.aligned = packB;
  b.rowBase = tile.bm;
  b.rowVar = "bo", b.rowOk = "brow", b.rowLimit = intLit(spec.cols), b.rowType = "int", b.rowOrigin = "o0";
  b.rowSetup = spec.bRowSetup, b.groupSetup = packB ? "" : spec.bGroup, b.load = bLoad;
  b.base = packB ? "packed" : spec.bBase;
  b.interleaved = spec.bInterleaved && !b.vector;
  // Interleaved, a thread's elements span 13 steps of its 16-step tile: whole when red is too.
  b.wholeGroups = packB || (!b.groupSetup.empty() && spec.red % (b.interleaved ? 16 : 4) == 0);
  const bool columns = !spec.aColumn.empty();
  const std::string copies =
      halfMN   ? halfMNCopies(spec, tile, copiers, copier)
      : half64 ? half64Copies(spec, tile, copiers)
               : (columns ? columnCopies(spec, tile) : copyCode(a)) + (wgmma16 ? packed16Copies(tile) : copyCode(b));
  Vars v = {{"I", em.I()},
            {"M", intLit(spec.rows)},
            {"N", intLit(spec.cols)},
            {"K", intLit(spec.red)},
            {"BM", std::to_string(tile.bm)},
            {"BN", std::to_string(tile.bn)},
            {"STAGES", std::to_string(stages)},
            {"KSTEP", std::to_string(kstep)},
            {"AHEAD", std::to_string(ahead)},
            {"STAGE_FLOATS", std::to_string(stageFloats)},
            {"ROW_TILES", intLit(rowTiles)},
            {"PER_SLICE", intLit(perSlice)},
            {"KP", intLit(kp)},
            {"COPIES", copies},
            {"BEFORE_LOOP", halfMN    ? halfMNRows(spec, copiers, copier)
                            : half64  ? half64Rows(spec, tile, copiers, copier)
                            : columns ? columnRows(spec, tile)
                                      : holeZeros(a, spec.aHoles)},
            {"WARPS_M", std::to_string(tile.warpsM)},
            {"THREADS", std::to_string(kBlock + kProducerThreads)},
            {"HOLD", holdAccumulators(isHalfSwapped(tile) ? kHalfWide : tile, "    ")}};
  const MultiplyPath path = simt      ? simtPath(tile)
                            : half      ? halfPath(tile, spec.math, halfMN)
                            : wgmma   ? wgmmaPath(tile)
                            : wgmma16 ? wgmma16Path(tile, spec.math)
                                      : mmaSyncPath(tile, spec.math, packB);
  v.insert(v.end(), {{"WARP_ROLES", path.warpRoles},
                     {"FRAGMENT_ADDRESSES", path.fragmentAddresses},
                     {"ACC", path.accumulators},
                     {"STAGE_READY", overlap ? "    shoal_fence_proxy_async();\n    shoal_wgmma_wait<1>();\n" +
                                                   holdAccumulators(isHalfSwapped(tile) ? kHalfWide : tile, "    ")
                                             : path.stageReady},
                     {"MMA_STEPS", path.steps},
                     {"DRAIN", path.drain},
                     {"EPILOGUE_LOOP", path.epilogueLoop},
                     {"EPILOGUE_END", path.epilogueEnd}});
  // A batch's products side by side in the grid's columns: bz the block's product.
  v.push_back({"COLUMN_ORIGIN", batched ? "  const int bz = (int)(blockIdx.y / ${COL_TILES});  // the batch's product\n"
                                          "  const int o0 = (int)(blockIdx.y % ${COL_TILES}) * ${BN};\n"
                                        : "  const int o0 = (int)blockIdx.y * ${BN};\n"});
  v.push_back({"COL_TILES", intLit(colTiles)});
  const bool split = splits > 1;
  // The slices' sums of a batch: slice-major, then the batch's products.
  // The row's part of the epilogue once a row where the loop visits rows outermost, else with
  // each element (not for the slices' sums: the second kernel runs it).
  // (Filled here: the loop's text, which holds it, is itself a variable's value.)
  v.push_back({"EPILOGUE_ROW", path.rowsOuter && !split ? fill(spec.epilogueRow, v) : ""});
  v.push_back({"STORE", !split    ? (path.rowsOuter ? "" : spec.epilogueRow) + spec.epilogue
                        : batched ? "        partial[(((${I})slice * " + intLit(spec.batch) +
                                        " + bz) * ${M} + m) * ${N} + o] = s;\n"
                                  : "        partial[((${I})slice * ${M} + m) * ${N} + o] = s;\n"});
  // Scratch: the caller's own (its views), the packed B (unless prepared), then the slices' sums.
  const bool scratch = split || scratchPack > 0 || !spec.scratchViews.empty();
  // The caller's parameters (none where the gathers read only scratch views), then these.
  std::string params = spec.params;
  auto addParam = [&params](const char* p) { params += (params.empty() ? "" : ", ") + std::string(p); };
  if (prepareB) addParam("const float* __restrict__ packed");
  if (scratch) addParam("float* __restrict__ scratch");
  std::string views;
  const int64_t reserved = (spec.scratchReserved + 3) / 4 * 4;  // the packed B 16-byte aligned
  for (const auto& [name, at] : spec.scratchViews) views += "  const float* " + name + " = scratch + " + intLit(at) + ";\n";
  if (scratchPack) views += "  const float* packed = scratch + " + intLit(reserved) + ";\n";
  if (split) views += "  float* partial = scratch + " + intLit(reserved + scratchPack) + ";\n";
  v.push_back({"VIEWS", views});
  std::vector<CudaArg> args = spec.args;
  const CudaArg preparedB = prepareB ? em.prepared(packFloats * int64_t(sizeof(float))) : CudaArg{};
  if (prepareB) args.push_back(preparedB);
  if (scratch) args.push_back(NodeEmitter::scratch());
  if (packB) {
    // TF32: rounded here once, not as each fragment is read (16-bit formats convert pairs;
    // exact fp32 keeps the values);
    // wgmma16: converted here to the 16-bit format, each 16-step block's slots in the order of
    // A's fragments (slot 2t holds step t, 2t + 1 step t + 4, 2t + 8 step t + 8, 2t + 9 step
    // t + 12; mmaSteps), one 16-bit value a thread.
    const std::string value =
        pack16 ? std::string(spec.math == TensorCoreMath::Bf16 ? "shoal_f32_to_bf16(" : "shoal_f32_to_f16(") +
                     spec.bPacked + ")"
        : sixteenBit || simt ? spec.bPacked
                             : "__uint_as_float(shoal_to_tf32(" + spec.bPacked + "))";
    // A batch's B (ImplicitGemm::batch): product bz's rows after the previous products'.
    const Vars pv = {
        {"I", em.I()},
        {"KP", intLit(kp)},
        {"K", intLit(spec.red)},
        {"EXPR", value},
        {"AT", intLit(reserved)},
        {"N", intLit(spec.cols)},
        {"O", batched ? "(int)(i / ${KP} % ${N}), bz = (int)(i / ((${I})${N} * ${KP}))" : "(int)(i / ${KP})"}};
    // aHalf64's rows are the reduction in order (A's copies are the same steps in order).
    const std::string perElement =
        pack16 ? std::string("    const int o = ${O}, j = (int)(i % ${KP});\n") +
                     (half64 ? "    const int k = j;\n"
                             : "    const int k = (j & ~15) + (j & 8) + ((j & 7) >> 1) + (j & 1) * 4;\n") +
                     std::string(prepareB ? "    ((unsigned short*)prepared)[i]"
                                          : "    ((unsigned short*)(scratch + ${AT}))[i]") +
                     " = k < ${K} ? ${EXPR} : (unsigned short)0;\n"
               : "    const int o = ${O}, k = (int)(i % ${KP});\n" +
                     std::string(prepareB ? "    prepared[i]" : "    scratch[${AT} + i]") +
                     " = k < ${K} ? ${EXPR} : 0.0f;\n";
    const int64_t packed = pack16 ? spec.batch * spec.cols * kp : packFloats;  // elements the kernel writes
    if (prepareB) {
      em.elementwise(spec.name + "tc_b", "const float* __restrict__ w, float* __restrict__ prepared",
                     fill(fill(fill(perElement, pv), pv), pv), {spec.bSource, preparedB}, packed);
      em.markPrepare();
    } else {
      em.elementwise(spec.name + "tc_b", params, fill(fill(fill(perElement, pv), pv), pv), args, packed);
    }
  }
  // Every form's start: the ring's constants (`constants`), the thread's roles, the block's
  // tile and slice of the reduction.
  auto head = [](const std::string& constants) {
    return "  SHOAL_DYNAMIC_SHARED(float, smem);\n"
           "${VIEWS}" +
           constants +
           "  const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;\n"
           "${WARP_ROLES}"
           "  const shoal_saddr sbase = shoal_saddr_of(smem);  // the ring's shared address\n"
           "  const int slice = (int)(blockIdx.x / ${ROW_TILES});\n"
           "  const ${I} m0 = (${I})(blockIdx.x % ${ROW_TILES}) * ${BM};\n"
           "${COLUMN_ORIGIN}"
           "  const int kBegin = slice * ${PER_SLICE};\n"
           "  const int kEnd = kBegin + ${PER_SLICE} < ${K} ? kBegin + ${PER_SLICE} : ${K};\n"
           "  const int tiles = (kEnd - kBegin + ${KSTEP} - 1) / ${KSTEP};\n";
  };
  // And its end: the epilogue over the accumulators.
  const std::string tail =
      "${EPILOGUE_LOOP}"
      "${STORE}"
      "      }\n"
      "${EPILOGUE_END}";
  std::string body =
      fill(fill(head("  constexpr int kStages = ${STAGES}, kAhead = ${AHEAD}, kStageFloats = ${STAGE_FLOATS};\n") +
                    "${FRAGMENT_ADDRESSES}"
                    "${BEFORE_LOOP}"
                    "  // Stage s's copies: the A rows, then the B rows, of the tile at reduction index kt.\n"
                    "  auto load = [&](int s, int kt) {\n"
                    "    const shoal_saddr stage = sbase + s * (kStageFloats * 4);\n"
                    "${COPIES}"
                    "  };\n"
                    "${ACC}"
                    "  // The first kAhead stages in flight (a commit per stage, empty past the end, so that\n"
                    "  // waiting for all but kAhead - 1 groups always means: this step's stage landed).\n"
                    "  for (int s = 0; s < kAhead; ++s) {\n"
                    "    if (s < tiles) load(s, kBegin + s * ${KSTEP});\n"
                    "    shoal_cp_async_commit();\n"
                    "  }\n"
                    "  // cur: this step's slot of the ring; ahead: the slot kAhead on (counted round, not divided).\n"
                    "  for (int step = 0, cur = 0, ahead = kAhead % kStages; step < tiles; ++step) {\n"
                    "    shoal_cp_async_wait<kAhead - 1>();\n"
                    "${STAGE_READY}"
                    "    __syncthreads();  // this step's stage is everyone's; the one kAhead on is free\n"
                    "    if (step + kAhead < tiles) load(ahead, kBegin + (step + kAhead) * ${KSTEP});\n"
                    "    shoal_cp_async_commit();\n"
                    "${MMA_STEPS}"
                    "    cur = cur + 1 == kStages ? 0 : cur + 1;\n"
                    "    ahead = ahead + 1 == kStages ? 0 : ahead + 1;\n"
                    "  }\n"
                    "${DRAIN}"
                    "  shoal_cp_async_wait<0>();\n" +
                    tail,
                v),
           v);
  // With producer warps (CudaCodegenOptions::halfProducerWarps): warps 8-11 issue every copy
  // into the ring of kStages slots and the two multiplying warpgroups only wait and multiply.
  // Named barrier 1 + s: slot s's copies have landed (the producers arrive once their group is
  // complete and fenced for the tensor cores; the multiplying warps wait); 1 + kStages + s: its
  // products are done (the multiplying warps arrive after the next step's wgmma_wait<1>; the
  // producers wait before copying into it again -- only for the slots they will fill again,
  // so every generation completes).
  if (producers)
    body = fill(
        fill(head("  constexpr int kStages = ${STAGES}, kStageFloats = ${STAGE_FLOATS}, kThreads = ${THREADS};\n") +
                 "  if (warp >= 8) {\n"
                 "    // The producers: stage `step` into slot step % kStages, once its products of\n"
                 "    // kStages steps before are done; kStages - 1 stages' copies in flight, each handed\n"
                 "    // over once it has landed (`done`: the slot handed over next).\n"
                 "    const int ptid = tid - 256;\n"
                 "${BEFORE_LOOP}"
                 "    auto load = [&](int s, int kt) {\n"
                 "      const shoal_saddr stage = sbase + s * (kStageFloats * 4);\n"
                 "${COPIES}"
                 "    };\n"
                 "    int done = 0;\n"
                 "    for (int step = 0, slot = 0; step < tiles; ++step) {\n"
                 "      if (step >= kStages) shoal_bar_sync(1 + kStages + slot, kThreads);\n"
                 "      load(slot, kBegin + step * ${KSTEP});\n"
                 "      shoal_cp_async_commit();\n"
                 "      if (step >= kStages - 2) {\n"
                 "        shoal_cp_async_wait<kStages - 2>();\n"
                 "        shoal_fence_proxy_async();\n"
                 "        shoal_bar_arrive(1 + done, kThreads);\n"
                 "        done = done + 1 == kStages ? 0 : done + 1;\n"
                 "      }\n"
                 "      slot = slot + 1 == kStages ? 0 : slot + 1;\n"
                 "    }\n"
                 "    shoal_cp_async_wait<0>();\n"
                 "    shoal_fence_proxy_async();\n"
                 "    for (int left = tiles < kStages - 2 ? tiles : kStages - 2; left > 0; --left) {\n"
                 "      shoal_bar_arrive(1 + done, kThreads);\n"
                 "      done = done + 1 == kStages ? 0 : done + 1;\n"
                 "    }\n"
                 "    return;\n"
                 "  }\n"
                 "${FRAGMENT_ADDRESSES}"
                 "${ACC}"
                 "  for (int step = 0, cur = 0, prev = kStages - 1; step < tiles; ++step) {\n"
                 "    shoal_bar_sync(1 + cur, kThreads);  // this step's stage has landed\n"
                 "${MMA_STEPS}"
                 "    shoal_wgmma_wait<1>();  // the step before's products are done: its slot is free\n"
                 "${HOLD}"
                 "    if (step > 0 && step - 1 + kStages < tiles) shoal_bar_arrive(1 + kStages + prev, kThreads);\n"
                 "    prev = cur;\n"
                 "    cur = cur + 1 == kStages ? 0 : cur + 1;\n"
                 "  }\n"
                 "${DRAIN}" +
                 tail,
             v),
        v);
  em.kernel(spec.name + "tc", params, body, args, unsigned(rowTiles * splits), unsigned(colTiles * spec.batch),
            unsigned(stages * stageFloats * sizeof(float)), producers ? kBlock + kProducerThreads : kBlock);
  em.setFlops(spec.flops > 0 ? spec.flops
                             : 2.0 * double(spec.batch) * double(spec.rows) * double(spec.cols) * double(spec.red));
  // Two blocks an SM (their stages fit in shared memory): the column-wise copies' per-row
  // offsets and bits would otherwise take the registers just past 128 (130 for ResNet-18's
  // layer-1 weight gradient: one block an SM). Not with 64-bit masks (the 7 x 7 stem: 159
  // registers, and 128 would spill), nor in exact fp32's larger tiles, whose 64 accumulators a
  // thread and two sets of B columns spilled 68-104 bytes at 128 (the batch-128 training step
  // 44.9 ms unbounded, 46.6 bounded; H200). kSimt, exact fp32's 128 x 64, always: 128 registers
  // without spills (ptxas, every form of gather). aHalf64 and halfMN: 96 KB of stages, two
  // blocks an SM (66-126 registers without spills, ptxas on sm_90a).
  if ((columns && spec.aColumnBits == 32 && !simt) || (simt && isSimtTile(tile)) || (half && !wideTile && !producers))
    em.setMinBlocks(2);
  if (scratch)
    em.needScratch((reserved + scratchPack + (split ? splits * spec.batch * spec.rows * spec.cols : 0)) *
                   int64_t(sizeof(float)));
  if (!split) return {};
  // The slices' sums, added in slice order (deterministic), then the epilogue.
  const Vars sv = {{"I", em.I()},
                   {"M", intLit(spec.rows)},
                   {"N", intLit(spec.cols)},
                   {"SPLITS", intLit(splits)},
                   {"PARTIAL", intLit(reserved + scratchPack)},
                   {"EPILOGUE", spec.epilogueRow + spec.epilogue},
                   {"BATCH", intLit(spec.batch)}};
  // A batch's element i is product bz's (m, o): the slices' sums of bz.
  const std::string element =
      batched ? "    const ${I} m = i / ${N} % ${M};\n"
                "    const int o = (int)(i % ${N}), bz = (int)(i / ((${I})${M} * ${N}));\n"
                "    const ${I} part = ((${I})bz * ${M} + m) * ${N} + o, sliceFloats = (${I})${BATCH} * ${M} * ${N};\n"
              : "    const ${I} m = i / ${N};\n"
                "    const int o = (int)(i % ${N});\n"
                "    const ${I} part = m * ${N} + o, sliceFloats = (${I})${M} * ${N};\n";
  em.elementwise(spec.name + "tc_sum", params,
                 fill(fill(element + "    const float* partial = scratch + ${PARTIAL};\n"
                                     "    double total = 0.0;\n"
                                     "    for (int slice = 0; slice < ${SPLITS}; ++slice)\n"
                                     "      total += (double)partial[slice * sliceFloats + part];\n"
                                     "    const float s = (float)total;\n"
                                     "${EPILOGUE}",
                           sv),
                      sv),
                 args, spec.batch * spec.rows * spec.cols);
  return {};
}

}  // namespace shoal::cudagen
