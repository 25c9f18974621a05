// Index geometry of the shape family's ops (slice, pad, transpose, squeeze, unsqueeze, expand,
// concat, gather, batch_matmul, softmax's axis), computed once from a shape and the op's
// attributes and shared by the shape rules (ir/shape_rules_shape.cpp), the CPU kernels
// (runtime/cpu/ops_shape.cpp) and the CUDA emitters (codegen/cuda_kernels_shape.cpp), so the
// three cannot disagree about which element goes where. Errors are plain messages; the shape
// rules prefix them with the node.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/attributes.h"
#include "support/diagnostics.h"

namespace shoal::geometry {

/// `axis` in [-rank, rank) as an index in [0, rank); an error naming `what` otherwise.
Expected<int64_t> normalizeAxis(int64_t axis, int64_t rank, const std::string& what = "axis");

/// Row-major element strides of `shape` (the last is 1).
std::vector<int64_t> stridesOf(const Shape& shape);

/// Extent of `s` along dimension `d` of a rank-`rank` shape, right-aligned as broadcasting
/// aligns shapes (1 where `s` has no such dimension).
inline int64_t alignedExtent(const Shape& s, size_t d, size_t rank) {
  const size_t lead = rank - s.size();
  return d < lead ? 1 : s[d - lead];
}

/// One axis of a slice, normalised like numpy and ONNX Slice: the first index read, the step
/// between reads (negative walks backwards) and how many are read.
struct SliceAxis {
  int64_t start = 0;
  int64_t step = 1;
  int64_t count = 0;
};

/// Every axis of `slice` (starts, ends, axes, steps) over an input of `shape`; axes the slice
/// does not name are whole ({0, 1, extent}). Negative starts/ends count from the back, then
/// clamp to the axis (a negative step clamps to [-1, extent-1], so ends=-extent-1 reaches
/// index 0); errors: lengths differ, a step of 0, an axis out of range or named twice, an
/// empty result.
Expected<std::vector<SliceAxis>> sliceAxes(const Shape& shape, const Attrs& attrs);

/// The slice's result shape (the counts).
Shape sliceShape(const std::vector<SliceAxis>& axes);

/// A strided view of a dense row-major tensor: element (i0, i1, ...) of a `shape`-shaped
/// walk sits at offset + Σ i_d · strides[d] in the underlying buffer.
struct StridedView {
  Shape shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;
};

/// The input elements a slice reads, as a strided view of the input.
StridedView sliceView(const Shape& input, const std::vector<SliceAxis>& axes);

/// transpose's `perm` attribute checked against `rank` (empty: the axes reversed, as numpy).
Expected<std::vector<int64_t>> permutation(const std::vector<int64_t>& perm, int64_t rank);

/// The input read by a transpose, as a strided view: result axis d walks input axis perm[d].
StridedView transposeView(const Shape& input, const std::vector<int64_t>& perm);

/// The inverse permutation: inverse[perm[d]] = d.
std::vector<int64_t> inversePermutation(const std::vector<int64_t>& perm);

/// How pad fills the border.
enum class PadModeKind { Constant, Reflect, Edge };

/// pad's attributes checked against `shape`: `pads` is [before_0, ..., before_{r-1}, after_0,
/// ..., after_{r-1}] (ONNX order), none negative; reflect needs each pad smaller than its
/// axis (PyTorch's rule: the border mirrors without repeating the edge), edge a non-empty axis.
struct PadSpec {
  PadModeKind mode = PadModeKind::Constant;
  std::vector<int64_t> before, after;
  double value = 0;  ///< the fill of constant mode
};
Expected<PadSpec> padSpec(const Shape& shape, const Attrs& attrs);

/// The padded shape.
Shape paddedShape(const Shape& shape, const PadSpec& pad);

/// The input coordinate that padded coordinate `o` (in [0, before + extent + after)) copies
/// on an axis of `extent` elements, or -1 where constant mode fills.
int64_t padSource(int64_t o, int64_t extent, int64_t before, PadModeKind mode);

/// The result shape of expanding `input` to `target` (torch.expand: -1 keeps an extent;
/// leading new axes allowed; an extent other than 1 must match).
Expected<Shape> expandShape(const Shape& input, const Shape& target);

/// The input read by expand, as a strided view of it (stride 0 on broadcast axes).
StridedView expandView(const Shape& input, const Shape& output);

/// squeeze's result: `axes` removed (each must have extent 1), or every extent-1 axis when
/// `axes` is empty.
Expected<Shape> squeezeShape(const Shape& input, const std::vector<int64_t>& axes);

/// unsqueeze's result: extent-1 axes inserted at `axes`, which index the result (ONNX).
Expected<Shape> unsqueezeShape(const Shape& input, const std::vector<int64_t>& axes);

/// outer · extent · inner split of a shape around `axis` (for concat, gather, softmax).
struct AxisSplit {
  int64_t outer = 1, extent = 1, inner = 1;
};
AxisSplit splitAt(const Shape& shape, int64_t axis);

/// Geometry of batch_matmul: op(A) [..., m, k] times op(B) [..., k, n] with the batch axes
/// broadcast (numpy.matmul for rank >= 2). Each batch index of the result reads one matrix of
/// A and of B, at `aStrides` / `bStrides` (elements, per result batch axis; 0 where that
/// operand is broadcast).
struct BatchMatMulGeometry {
  Shape batch;  ///< the result's batch axes
  int64_t m = 0, n = 0, k = 0;
  bool transA = false, transB = false;
  std::vector<int64_t> aStrides, bStrides;
  int64_t batchCount() const { return numElements(batch); }
  /// The offsets (elements) of the matrices of A and B that batch index `i` multiplies.
  int64_t aOffset(int64_t i) const;
  int64_t bOffset(int64_t i) const;
  /// The result shape: batch + [m, n].
  Shape outShape() const;
};
Expected<BatchMatMulGeometry> batchMatMulGeometry(const Shape& a, const Shape& b, bool transA, bool transB);

/// Runs of batch indices one strided-batched GEMM can take: `count` consecutive result
/// matrices from batch index `first`, whose A and B matrices sit `aStride` / `bStride`
/// elements apart (0: the same matrix). Covers the whole batch in order; one run when the
/// operands are each either dense over the batch axes or broadcast over all of them.
struct BatchRun {
  int64_t first = 0, count = 1;
  int64_t aStride = 0, bStride = 0;
};
std::vector<BatchRun> batchRuns(const BatchMatMulGeometry& g);

}  // namespace shoal::geometry
