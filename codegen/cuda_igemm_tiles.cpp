// The implicit GEMM's tiles and slices: the cost model and the autotuner's candidates
// (cuda_igemm.h; the overview is cuda_kernels_igemm.cpp's).
#include <algorithm>

#include "codegen/cuda_igemm.h"

namespace shoal::cudagen::igemm {

namespace {

// The most slices a reduction of `red` steps may be cut in: each at least minSlice long.
int64_t mostSplits(int64_t red, int64_t minSlice) { return std::max<int64_t>(1, red / std::max<int64_t>(minSlice, 16)); }

Tile tileFor(int64_t cols) { return cols <= 64 ? kTall : kSquare; }


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

}  // namespace

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

}  // namespace shoal::cudagen::igemm
