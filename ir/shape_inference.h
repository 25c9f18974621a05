// Shape rules: the result types of an op from its operands' types and its attributes.
#pragma once

#include <optional>
#include <vector>

#include "support/diagnostics.h"
#include "ir/graph.h"

namespace shoal {

/// The result types `node` must have, computed by the op's shape rule (named in ir/ops.def).
/// Errors carry the node's location and name the pipeline node and the shapes involved.
Expected<std::vector<TensorType>> inferResultTypes(const Node& node);

/// NumPy broadcasting of two shapes; nullopt when they are incompatible.
std::optional<Shape> broadcastShapes(const Shape& a, const Shape& b);

/// Output extent of a sliding window (conv, pool), floor mode; <= 0 when the window does not
/// fit; nullopt when the dilated window or the padded input does not fit in int64, or the
/// stride is not positive.
std::optional<int64_t> windowOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padBefore,
                                        int64_t padAfter, int64_t dilation = 1);

/// "same" padding [top,left,bottom,right] for a stride/kernel/dilation (TensorFlow's rule: the
/// extra pixel goes after). Total for any arguments: a non-positive extent, kernel, stride or
/// dilation gives zero padding (the shape rules report those), and a padding too large for
/// int64 (a huge dilation) saturates, which the shape rules then reject as overflowing.
std::vector<int64_t> samePadding(int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                                 int64_t dw);

}  // namespace shoal
