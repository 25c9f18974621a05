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
/// A convolution's operands: input 0 float NCHW, input 1 a rank-4 weight of the same element
/// type (`weightLayout` names its layout in the error: "OIHW", "[C, O/groups, kh, kw]").
Expected<Types> requireConvOperands(const Node& n, std::string_view weightLayout);
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
// ir/shape_rules_norm.cpp
Expected<Types> shapeBatchNorm(const Node& n);
Expected<Types> shapeBatchNormTrain(const Node& n);
Expected<Types> shapeBatchNormTrainWeightGrad(const Node& n);
Expected<Types> shapeBatchNormStats(const Node& n);
Expected<Types> shapeBatchNormUpdate(const Node& n);
Expected<Types> shapeBatchNormScale(const Node& n);
Expected<Types> shapeLayerNorm(const Node& n);
Expected<Types> shapeGroupNorm(const Node& n);
/// batchnorm_train_grad, layernorm_grad, groupnorm_grad: (x, dy, [weight]) -> dx.
Expected<Types> shapeNormGrad(const Node& n);
Expected<Types> shapeDropout(const Node& n);
Expected<Types> shapeDropoutTrain(const Node& n);
// (end of family norm)

// ==== family conv: convolution and pooling ====
// ir/shape_rules_conv.cpp (conv2d, the pools and their gradients keep theirs in shape_inference.cpp).
Expected<Types> shapeConvTranspose2d(const Node& n);
Expected<Types> shapeGlobalAvgPool(const Node& n);
// (end of family conv)

// ==== family shape: shape and data movement, batched matmul, attention ====
// ir/shape_rules_shape.cpp (the index geometry itself is ir/shape_geometry.h).
Expected<Types> shapeConcat(const Node& n);
Expected<Types> shapeSlice(const Node& n);
Expected<Types> shapeSliceGrad(const Node& n);
Expected<Types> shapeTranspose(const Node& n);
Expected<Types> shapePad(const Node& n);
Expected<Types> shapePadGrad(const Node& n);
Expected<Types> shapeGather(const Node& n);
Expected<Types> shapeGatherGrad(const Node& n);
Expected<Types> shapeExpand(const Node& n);
Expected<Types> shapeSqueeze(const Node& n);
Expected<Types> shapeUnsqueeze(const Node& n);
Expected<Types> shapeBatchMatMul(const Node& n);
Expected<Types> shapeCausalMask(const Node& n);
// (end of family shape)

// ==== family train: losses and optimizers ====
/// sgd_update, sgd_momentum_update, adam_update: float parameter; gradient and state of its
/// type; scalar step, learning rate and grad_scale.
Expected<Types> shapeUpdate(const Node& n);
/// bce_with_logits (-> scalar) and bce_with_logits_grad (-> the logits' type): float logits,
/// targets of their type, a scalar loss gradient.
Expected<Types> shapeBceWithLogits(const Node& n);
/// one_hot: [N] integer labels -> [N, classes] of the dtype attribute (f32 or f64).
Expected<Types> shapeOneHot(const Node& n);
/// global_sum_squares: operands of one float dtype, any shapes -> a scalar of that dtype.
Expected<Types> shapeGlobalSumSquares(const Node& n);
Expected<Types> shapeLossScaleUpdate(const Node& n);
Expected<Types> shapeAllReduce(const Node& n);
// (end of family train)


}  // namespace shoal::shape
