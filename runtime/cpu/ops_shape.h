// CPU kernels of the shape family: data movement (concat, slice, transpose, pad, gather,
// expand, squeeze/unsqueeze) on any element type, batch_matmul (OpenBLAS), softmax and
// log_softmax over any axis, causal_mask; and their gradients. Runners for the interpreter's
// dispatch (NodeRunner::run), then the plain kernels they call.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/shape_geometry.h"
#include "runtime/cpu/op_context.h"

namespace shoal::cpu {

// ---- runners (T: the node's float type; data movement copies elements of any type) ------

template <typename T>
Expected<void> runConcat(OpContext& c);
template <typename T>
Expected<void> runSlice(OpContext& c);
template <typename T>
Expected<void> runSliceGrad(OpContext& c);
template <typename T>
Expected<void> runTranspose(OpContext& c);
template <typename T>
Expected<void> runPad(OpContext& c);
template <typename T>
Expected<void> runPadGrad(OpContext& c);
/// gather; an index outside [-extent, extent) is a user error naming the first one.
template <typename T>
Expected<void> runGather(OpContext& c);
template <typename T>
Expected<void> runGatherGrad(OpContext& c);
template <typename T>
Expected<void> runExpand(OpContext& c);
/// squeeze, unsqueeze: the planner aliases them, so usually there is nothing to copy.
template <typename T>
Expected<void> runView(OpContext& c);
template <typename T>
Expected<void> runBatchMatMul(OpContext& c);
/// softmax, log_softmax, softmax_grad, log_softmax_grad over the node's axis.
template <typename T>
Expected<void> runSoftmaxAxis(OpContext& c);
template <typename T>
Expected<void> runCausalMask(OpContext& c);

// ---- kernels ----------------------------------------------------------------------------

/// y (dense, view.shape) = the elements of x that `view` walks, in row-major order. Elements
/// are `elemBytes` bytes (1, 2, 4 or 8). x and y must not overlap.
void copyStrided(size_t elemBytes, const geometry::StridedView& view, const void* x, void* y);

/// The adjoint of copyStrided for a view that visits each element at most once (a slice):
/// dx (`inputCount` elements) is zeroed, then dx[walk(i)] = dy[i].
template <typename T>
void scatterStrided(const geometry::StridedView& view, const T* dy, int64_t inputCount, T* dx);

/// y = the operands joined along their axis `axis` (shapes[i] each; y is contiguous).
void concat(size_t elemBytes, const std::vector<Shape>& shapes, const std::vector<const void*>& xs, int64_t axis,
            void* y);

/// y = x padded per `pad`; `fill` is one element (elemBytes bytes) of constant mode's value.
void pad(size_t elemBytes, const Shape& inShape, const geometry::PadSpec& pad, const void* x, const void* fill, void* y);

/// Gradient of a pad: dx (inShape) = Σ of the dy elements that copied each input element,
/// accumulated in output order.
template <typename T>
void padBackward(const Shape& inShape, const geometry::PadSpec& pad, const T* dy, T* dx);

/// Index of the first element of indices[0..count) outside [-extent, extent), or -1.
/// I is int64_t, int32_t or uint8_t.
template <typename I>
int64_t firstBadIndex(int64_t count, const I* indices, int64_t extent);

/// y[o, k, i] = x[o, idx(k), i] for x = [outer, extent, inner], k < count, negative indices
/// counting from the back. Indices must be valid (firstBadIndex).
template <typename I>
void gather(size_t elemBytes, geometry::AxisSplit x, int64_t count, const I* indices, const void* xData, void* y);

/// dx = zeros [outer, extent, inner], then dx[o, idx(k), i] += dy[o, k, i] for k ascending.
template <typename T, typename I>
void gatherBackward(geometry::AxisSplit x, int64_t count, const I* indices, const T* dy, T* dx);

/// C[b] = alpha · op(A[b]) · op(B[b]) for every batch index of `g` (OpenBLAS; broadcast batch
/// axes reuse their matrix).
template <typename T>
void batchMatMul(const geometry::BatchMatMulGeometry& g, T alpha, const T* a, const T* b, T* c);

/// Softmax and log-softmax over the middle axis of [outer, extent, inner], and their
/// gradients; inner == 1 is the row kernels of kernels.h, and every other layout computes
/// the same expressions in the same order per column. y (dx) may alias x (dy).
template <typename T>
void softmaxAxis(geometry::AxisSplit s, const T* x, T* y);
template <typename T>
void logSoftmaxAxis(geometry::AxisSplit s, const T* x, T* y);
template <typename T>
void softmaxBackwardAxis(geometry::AxisSplit s, const T* y, const T* dy, T* dx);
template <typename T>
void logSoftmaxBackwardAxis(geometry::AxisSplit s, const T* y, const T* dy, T* dx);

/// y = x with `value` where j > i, over `matrices` matrices [rows, cols]. y may alias x.
template <typename T>
void causalMask(int64_t matrices, int64_t rows, int64_t cols, const T* x, T value, T* y);

}  // namespace shoal::cpu
