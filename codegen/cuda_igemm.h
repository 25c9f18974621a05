// The implicit GEMM's parts (internal to codegen): its tiles and their choice
// (cuda_igemm_tiles.cpp), the forms of its copies into the stages (cuda_igemm_copies.cpp) and
// the ways of multiplying a stage (cuda_igemm_multiply.cpp); emitImplicitGemm
// (cuda_kernels_igemm.cpp) puts them together. The overview is cuda_kernels_igemm.cpp's.
#pragma once

#include <string>
#include <vector>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen::igemm {

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
inline bool isHalfWide(const Tile& t) { return t.bm == kHalfWide.bm && t.bn == kHalfWide.bn; }
// And, for aHalf64's products of 65-128 columns (ResNet-18's layer 2), 256 x 128 multiplied
// the other way round (CudaCodegenOptions::halfSwappedTile): the warpgroups' m64 rows are the
// columns (64 filters each) and their n256 the tile's 256 rows (pixels), so each m64n256k16
// reads 64 + 256 rows of operands as kHalfWide's does; the stage holds B's 128 rows first, then
// A's 256. Four stages of 48 KB, overlapped, one block an SM.
constexpr Tile kHalfSwapped{256, 128, 2};
inline bool isHalfSwapped(const Tile& t) { return t.bm == kHalfSwapped.bm && t.bn == kHalfSwapped.bn; }
inline Tile tileOf(const ProductTile& t) {
  if (t.bm == kHalfSwapped.bm && t.bn == kHalfSwapped.bn) return kHalfSwapped;
  return t.bm == kTall.bm ? kTall : t.bn == kSimt.bn ? kSimt : t.bn == kHalfWide.bn ? kHalfWide : kSquare;
}
inline bool isSimtTile(const Tile& t) { return t.bm == kSimt.bm && t.bn == kSimt.bn; }

/// What a product may be computed with: the cost model's tile and slices first.
std::vector<ProductTile> productCandidates(const ImplicitGemm& spec, bool wide, bool swapped);

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

/// Zeros once before the first stage where c's groups leave holes (ImplicitGemm::aHoles).
std::string holeZeros(const CopySpec& c, const std::vector<int>& holes);
/// One operand's copies of a stage.
std::string copyCode(const CopySpec& c);
/// Column-wise copies of A (ImplicitGemm::aColumn): what they keep from before the loop; a stage's.
std::string columnRows(const ImplicitGemm& spec, const Tile& tile);
std::string columnCopies(const ImplicitGemm& spec, const Tile& tile);
/// wgmma16's copies of B's packed 16-bit rows.
std::string packed16Copies(const Tile& tile);
/// aHalf64's row elements ("float" for TF32, else "unsigned short") and how many fill 16 bytes.
const char* rowElement(const ImplicitGemm& spec);
int chunkElements(const ImplicitGemm& spec);
/// aHalf64's copies of a stage by `copiers` threads; what they keep from before the loop.
std::string half64Copies(const ImplicitGemm& spec, const Tile& tile, int copiers);
std::string half64Rows(const ImplicitGemm& spec, const Tile& tile, int copiers, const std::string& ct);
/// CudaCodegenOptions::halfTma: the forward's two tensor maps into `maps` -- "amap", A's im2col
/// boxes of `tile.bm` pixels of a tap's 128-byte channel run, and "bmap", B's tiles of `tile.bn`
/// packed rows of `kp` steps -- their bases unset (the caller's arguments); false, and nothing
/// set, where the geometry passes the copy engine's limits.
bool im2colMaps(const ImplicitGemm::Im2col& g, const ImplicitGemm& spec, const Tile& tile, int64_t kp,
                std::vector<CudaTensorMap>& maps);
/// halfMN's copies of a stage by `copiers` threads (thread `ct`); what they keep from before the loop.
std::string halfMNCopies(const ImplicitGemm& spec, const Tile& tile, int copiers, const std::string& ct);
std::string halfMNRows(const ImplicitGemm& spec, int copiers, const std::string& ct);

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

MultiplyPath mmaSyncPath(const Tile& tile, TensorCoreMath math, bool bRounded);
MultiplyPath simtPath(const Tile& tile);
MultiplyPath wgmmaPath(const Tile& tile);
MultiplyPath wgmma16Path(const Tile& tile, TensorCoreMath math);
MultiplyPath halfPath(const Tile& logical, TensorCoreMath math, bool mn);
/// wgmma's accumulators held across a wait (shoal_wgmma_hold), each line indented by `ind`.
std::string holdAccumulators(const Tile& tile, const std::string& ind);

}  // namespace shoal::cudagen::igemm
