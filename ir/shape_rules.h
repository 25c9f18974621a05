// Private to ir/: the helpers shape rules share, and the shape rules of the op families that
// live in their own files (ir/shape_rules_<family>.cpp). A row of ir/ops.def names its rule;
// inferResultTypes (ir/shape_inference.cpp) dispatches to it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "support/diagnostics.h"

namespace shoal::shape {

using Types = std::vector<TensorType>;

/// "<op 'id'>: msg" at the node's location.
Error shapeError(const Node& n, const std::string& msg);
/// A value's type as IR text: "f32[2,3]".
std::string sh(const Value* v);
/// An error unless `v` is f32 or f64 ("<what> must be f32 or f64, got ...").
Expected<Types> requireFloat(const Node& n, const Value* v, std::string_view what);
/// An error unless `v` has rank `rank`.
Expected<Types> requireRank(const Node& n, const Value* v, int64_t rank, std::string_view what);
/// An error unless `a` and `b` have one element type.
Expected<Types> requireSameDType(const Node& n, const Value* a, const Value* b);
/// Attribute `key` (ints) with exactly `len` values.
Expected<std::vector<int64_t>> intsOfLen(const Node& n, const std::string& key, size_t len);

#define SHOAL_SHAPE_TRY(expr)                                                \
  do {                                                                       \
    auto shoalTryResult_ = (expr);                                           \
    if (!shoalTryResult_) return ::shoal::Unexpected(shoalTryResult_.error()); \
  } while (0)

// ---- the op families' shape rules (one block per family) ---------------------------------

// ==== family elementwise: elementwise math, comparisons, where, reductions ====
// (ir/shape_rules_elementwise.cpp)

/// (x, dy) -> the type of x: both f32 or f64, the same type (the *_grad rows of unary ops).
Expected<Types> shapeSameFloatPair(const Node& n);
/// Float operands of one element type, broadcast together (pow and the 3-operand gradients).
Expected<Types> shapeBroadcastFloat(const Node& n);
/// Two operands of one element type (any), broadcast together: bool.
Expected<Types> shapeCompare(const Node& n);
/// (cond bool, a, b), a and b of one element type, broadcast together: a's element type.
Expected<Types> shapeWhere(const Node& n);
/// reduce_*: a float input, `axes` distinct and in [-rank, rank), `keepdim` 0 or 1; max and
/// min also need a non-empty range for every output.
Expected<Types> shapeReduce(const Node& n);
// (end of family elementwise)

// ==== family norm: normalisation, dropout ====
// (end of family norm)

// ==== family conv: convolution and pooling ====
// (end of family conv)

// ==== family shape: shape and data movement, batched matmul, attention ====
// (end of family shape)

// ==== family train: losses and optimizers ====
// (end of family train)


}  // namespace shoal::shape
