// CUDA codegen, tensor cores: a GEMM over gathered operands (an implicit GEMM) in TF32,
// bfloat16 or float16 with fp32 accumulation, through mma.sync m16n8k8 (TF32) or m16n8k16
// (the prelude's shoal_warp_mma_tf32 and shoal_warp_mma_16bit). The
// convolutions (forward, both gradients, the transposed convolution) describe their gathers
// and epilogues in codegen/cuda_conv_gemm.cpp; this file owns the tiling.
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
//
// The parts, declared in codegen/cuda_igemm.h: the tiles and the cost model's choice among them
// (cuda_igemm_tiles.cpp), the forms of copies (cuda_igemm_copies.cpp), the ways of multiplying
// (cuda_igemm_multiply.cpp); this file puts a kernel together from them (emitImplicitGemm).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

#include "codegen/cuda_emit.h"
#include "codegen/cuda_igemm.h"

namespace shoal::cudagen {

Expected<void> emitImplicitGemm(NodeEmitter& em, const ImplicitGemm& spec) {
  using namespace igemm;
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
  // CudaCodegenOptions::halfTma: a forward's stages as the copy engine's boxes (im2colMaps),
  // issued by one thread of one producer warp, where its geometry fits the engine's limits.
  std::vector<CudaTensorMap> maps;
  const bool tma = em.options().halfTma && spec.aIm2col &&
                   ((half64 && !spec.bPacked.empty() && !spec.aIm2col->mn) ||
                    (halfMN && spec.aIm2col->mn && tile.bm % 64 == 0 && tile.bn % 64 == 0)) &&
                   im2colMaps(*spec.aIm2col, spec, tile, (spec.red + rowSteps - 1) / rowSteps * rowSteps, maps);
  const bool producers = half && (em.options().halfProducerWarps || tma);
  const int copiers = producers ? kProducerThreads : int(kBlock);
  const std::string copier = producers ? "ptid" : "tid";
  // With producers, one block an SM: as many slots as 192 KB holds, at most 7 (two named
  // barriers a slot, 15 in all) -- 6 of 128 x 128, 7 of 128 x 64, 4 of the 48 KB tiles.
  const int halfStageBytes = (tile.bm + tile.bn) * 128;
  // With the copy engine, two blocks an SM where halfTmaBlocks asks and a slot is at most 32 KB
  // (three slots each: one block's epilogue and first fill under the other's products). Chosen
  // (halfTmaBlocks 0): where a block's slice is at most 18 stages and the grid fills two blocks an
  // SM -- measured so on an H200 (docs/PERF.md, 2026-12-05 (session 5)): two blocks won layers 1-2
  // (9-18 stages: 316 -> 321, 474 -> 520 TFLOP/s over one block's 256, 470), one block layers 3-4
  // (36-72 stages: 541 and 590 over 528 and 490) and every grid smaller than the SMs (batch 1).
  const int64_t sliceStages = perSlice / kstep, blocks = rowTiles * colTiles * splits * spec.batch;
  const bool tmaTwo = tma && halfStageBytes <= 32768 &&
                      (em.options().halfTmaBlocks == 2 ||
                       (em.options().halfTmaBlocks == 0 && sliceStages <= 18 && blocks >= kTargetBlocks));
  const int stages = tmaTwo      ? 98304 / halfStageBytes
                     : producers ? std::min(7, 196608 / halfStageBytes)
                     : overlap   ? 4
                     : half      ? (tile.bn == 128 ? 3 : 4)
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
            {"THREADS", std::to_string(kBlock + (tma ? 32 : kProducerThreads))},
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
  // The multiplying warps of a ring that others fill (producer warps, the copy engine): wait for
  // the step's slot (`waitFull`), multiply, and hand the slot of the step before back once its
  // products are done -- only for the slots that will be filled again, so every generation of
  // `empty` completes.
  auto multiplyingWarps = [&tail](const std::string& waitFull) {
    return "${FRAGMENT_ADDRESSES}"
           "${ACC}"
           "  for (int step = 0, cur = 0, prev = kStages - 1; step < tiles; ++step) {\n" +
           waitFull +
           "${MMA_STEPS}"
           "    shoal_wgmma_wait<1>();  // the step before's products are done: its slot is free\n"
           "${HOLD}"
           "    if (step > 0 && step - 1 + kStages < tiles) shoal_bar_arrive(1 + kStages + prev, kThreads);\n"
           "    prev = cur;\n"
           "    cur = cur + 1 == kStages ? 0 : cur + 1;\n"
           "  }\n"
           "${DRAIN}" +
           tail;
  };
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
                 "  }\n" +
                 multiplyingWarps("    shoal_bar_sync(1 + cur, kThreads);  // this step's stage has landed\n"),
             v),
        v);
  // With the copy engine (CudaCodegenOptions::halfTma): one producer warp, lane 0 of which
  // issues each stage as two boxes completing on the slot's mbarrier (8 bytes a slot after the
  // ring; phase k of slot s is its k-th stage), which the multiplying warps wait at; the slots'
  // `empty` barriers stay named ones, of the multiplying warps and the producer warp.
  if (tma) {
    const ImplicitGemm::Im2col& g = *spec.aIm2col;
    const bool swapped = isHalfSwapped(tile);
    Vars tv = v;
    // The boxes read the copies and the packing through the maps: no views of scratch but the
    // slices' sums.
    for (auto& [key, value] : tv)
      if (key == "VIEWS") value = split ? "  float* partial = scratch + " + intLit(reserved + scratchPack) + ";\n" : "";
    tv.insert(tv.end(), {{"CORNERS", intLit(g.cornersH * g.cornersW)},
                         {"CORNERS_W", intLit(g.cornersW)},
                         {"SW", intLit(g.sw)},
                         {"SH", intLit(g.sh)},
                         {"LOWER_W", intLit(g.lowerW)},
                         {"LOWER_H", intLit(g.lowerH)},
                         {"TAP_CHANNEL", g.tapChannel},
                         {"A_AT", std::to_string(swapped ? tile.bn * 128 : 0)},
                         {"B_AT", std::to_string(swapped ? 0 : tile.bm * 128)},
                         {"STAGE_BYTES", std::to_string((tile.bm + tile.bn) * 128)}});
    // halfMN: a stage's 64 corners (its reduction indices) from kt, and each atom a box of its
    // own: A's at the atom's tap and channels (fixed for the block), B's 64 columns of the copy;
    // the atoms past the rows or columns neither copied nor expected.
    std::string atoms;
    if (g.mn) {
      atoms =
          "        const int tpix = kt % ${CORNERS}, tn = kt / ${CORNERS};\n"
          "        const int tw = (tpix % ${CORNERS_W}) * ${SW} + ${LOWER_W}, th = (tpix / ${CORNERS_W}) * ${SH} + "
          "${LOWER_H};\n"
          "        shoal_mbar_arrive_expect_tx(bar, atomBytes);\n";
      for (int a = 0; a < tile.bm / 64; ++a)
        atoms += fmt::format(
            "        if (m0 + {0} < ${{M}}) shoal_tma_im2col4(stage + {1}, &amap, bar, ac[{2}], tw, th, tn, "
            "(unsigned short)atox[{2}], (unsigned short)atoy[{2}]);\n",
            64 * a, a * 8192, a);
      for (int b = 0; b < tile.bn / 64; ++b)
        atoms += fmt::format("        if (o0 + {0} < ${{N}}) shoal_tma_tile2(stage + {1}, &bmap, bar, o0 + {0}, kt);\n",
                             64 * b, tile.bm * 128 + b * 8192);
      std::string setup = fmt::format("    int ac[{0}], atox[{0}], atoy[{0}];\n", tile.bm / 64);
      for (int a = 0; a < tile.bm / 64; ++a)
        setup += fmt::format(
            "    {{\n"
            "      const ${{I}} mo = m0 + {0};\n"
            "{1}"
            "      ac[{2}] = c, atox[{2}] = tox, atoy[{2}] = toy;\n"
            "    }}\n",
            64 * a, g.atomTap, a);
      setup += fmt::format(
          "    const unsigned atomBytes = 8192u * (unsigned)((m0 + {0} <= ${{M}} ? {1} : (${{M}} - m0) / 64) + "
          "(o0 + {2} <= ${{N}} ? {3} : (${{N}} - o0) / 64));\n",
          tile.bm, tile.bm / 64, tile.bn, tile.bn / 64);
      tv.push_back({"ATOM_SETUP", setup});
      tv.push_back({"ATOMS", atoms});
    }
    const std::string origin =
        g.mn ? "${ATOM_SETUP}"
             : "    const int tpix = (int)(m0 % ${CORNERS}), tn = (int)(m0 / ${CORNERS});\n"
               "    const int tw = (tpix % ${CORNERS_W}) * ${SW} + ${LOWER_W}, th = (tpix / ${CORNERS_W}) * ${SH} + "
               "${LOWER_H};\n";
    const std::string issue =
        g.mn ? "${ATOMS}"
             : "${TAP_CHANNEL}"
               "        shoal_mbar_arrive_expect_tx(bar, ${STAGE_BYTES});\n"
               "        shoal_tma_im2col4(stage + ${A_AT}, &amap, bar, c, tw, th, tn, (unsigned short)tox, "
               "(unsigned short)toy);\n"
               "        shoal_tma_tile2(stage + ${B_AT}, &bmap, bar, kt, o0);\n";
    body = fill(
        fill(
            head("  constexpr int kStages = ${STAGES}, kStageFloats = ${STAGE_FLOATS}, kThreads = ${THREADS};\n") +
                "  const shoal_saddr bars = sbase + kStages * (kStageFloats * 4);  // slot s's mbarrier: bars + 8 * s\n"
                "  if (tid == 0) {\n"
                "    for (int s = 0; s < kStages; ++s) shoal_mbar_init(bars + 8 * s, 1);\n"
                "    shoal_mbar_fence_init();\n"
                "  }\n"
                "  __syncthreads();\n"
                "  if (warp >= 8) {\n"
                "    // The producer warp: stage `step` into slot step % kStages once its products of\n"
                "    // kStages steps before are done -- A's rows an im2col box (the block's pixels from\n"
                "    // the filter corner of its first one, at the stage's tap), B's a tile of the packed\n"
                "    // rows -- both completing on the slot's mbarrier, which expects their bytes.\n" +
                origin +
                "    for (int step = 0, slot = 0; step < tiles; ++step) {\n"
                "      if (step >= kStages) shoal_bar_sync(1 + kStages + slot, kThreads);\n"
                "      if (lane == 0) {\n"
                "        const int kt = kBegin + step * ${KSTEP};\n"
                "        const shoal_saddr stage = sbase + slot * (kStageFloats * 4), bar = bars + 8 * slot;\n" +
                issue +
                "      }\n"
                "      slot = slot + 1 == kStages ? 0 : slot + 1;\n"
                "    }\n"
                "    return;\n"
                "  }\n" +
                multiplyingWarps(
                    "    shoal_mbar_wait(bars + 8 * cur, (unsigned)(step / kStages) & 1u);  // this step's "
                    "stage has landed\n"),
            tv),
        tv);
    // The maps' bases: A's copy (a view of scratch or a converted block), B's packing.
    auto argIndex = [&](const CudaArg& a) {
      for (size_t i = 0; i < args.size(); ++i)
        if (args[i].kind == a.kind && args[i].value == a.value && args[i].offset == a.offset) return int(i);
      return -1;
    };
    maps[0].baseArg = argIndex(g.copy);
    maps[0].offset = g.offset;
    maps[1].baseArg = g.mn ? argIndex(g.bCopy) : argIndex(prepareB ? preparedB : NodeEmitter::scratch());
    maps[1].offset = g.mn ? g.bOffset : prepareB ? 0 : reserved * int64_t(sizeof(float));
    if (maps[0].baseArg < 0 || maps[1].baseArg < 0)
      return em.unsupported("halfTma: a tensor map's base is not one of the kernel's arguments");
  }
  em.kernel(spec.name + "tc", params, body, args, unsigned(rowTiles * splits), unsigned(colTiles * spec.batch),
            unsigned(stages * stageFloats * sizeof(float) + (tma ? 8 * stages : 0)),
            tma         ? kBlock + 32
            : producers ? kBlock + kProducerThreads
                        : kBlock);
  if (tma) em.setTensorMaps(std::move(maps));
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
  if ((columns && spec.aColumnBits == 32 && !simt) || (simt && isSimtTile(tile)) || (half && !wideTile && !producers) ||
      tmaTwo)
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

