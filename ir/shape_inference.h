// Shape rules: the result types of an op from its operands' types and its attributes.
#pragma once

#include <vector>

#include "support/diagnostics.h"
#include "ir/graph.h"

namespace shoal {

/// The result types `node` must have, computed by the op's shape rule (named in ir/ops.def).
/// Errors carry the node's location and name the pipeline node and the shapes involved.
Expected<std::vector<TensorType>> inferResultTypes(const Node& node);

/// NumPy broadcasting of two shapes; nullopt when they are incompatible.
std::optional<Shape> broadcastShapes(const Shape& a, const Shape& b);

/// Output extent of a sliding window (conv, pool), floor mode; <= 0 when the window does not fit.
int64_t windowOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padBefore, int64_t padAfter,
                         int64_t dilation = 1);

/// "same" padding [top,left,bottom,right] for a stride/kernel/dilation (TensorFlow's rule: the
/// extra pixel goes after).
std::vector<int64_t> samePadding(int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                                 int64_t dw);

}  // namespace shoal
