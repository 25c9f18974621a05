// Shape rules of the elementwise family: gradient pairs, float broadcasting, comparisons,
// where, and the reductions.
#include <fmt/format.h>

#include <algorithm>

#include "ir/shape_inference.h"
#include "ir/shape_rules.h"

namespace shoal::shape {

namespace {

// The NumPy broadcast of every operand's shape; an error names the first pair that clashes.
Expected<Shape> broadcastAll(const Node& n, const std::vector<const Value*>& operands) {
  Shape out = operands.front()->type().shape;
  for (size_t i = 1; i < operands.size(); ++i) {
    auto b = broadcastShapes(out, operands[i]->type().shape);
    if (!b) {
      std::string shapes;
      for (size_t k = 0; k <= i; ++k) shapes += (k ? (k == i ? " and " : ", ") : "") + sh(operands[k]);
      return Unexpected(shapeError(n, fmt::format("shapes {} do not broadcast", shapes)));
    }
    out = *b;
  }
  return out;
}

std::vector<const Value*> inputsOf(const Node& n, size_t from = 0) {
  std::vector<const Value*> out;
  for (size_t i = from; i < n.numInputs(); ++i) out.push_back(n.input(i));
  return out;
}

}  // namespace

Expected<Types> shapeSameFloatPair(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, x, "operand"));
  if (n.input(1)->type() != x->type())
    return Unexpected(shapeError(n, fmt::format("gradient {} does not match operand {}", sh(n.input(1)), sh(x))));
  return Types{x->type()};
}

Expected<Types> shapeBroadcastFloat(const Node& n) {
  const Value* a = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, a, "operands"));
  for (size_t i = 1; i < n.numInputs(); ++i) SHOAL_SHAPE_TRY(requireSameDType(n, a, n.input(i)));
  auto out = broadcastAll(n, inputsOf(n));
  if (!out) return Unexpected(out.error());
  return Types{{a->type().dtype, *out}};
}

Expected<Types> shapeCompare(const Node& n) {
  SHOAL_SHAPE_TRY(requireSameDType(n, n.input(0), n.input(1)));
  auto out = broadcastAll(n, inputsOf(n));
  if (!out) return Unexpected(out.error());
  return Types{{DType::Bool, *out}};
}

Expected<Types> shapeWhere(const Node& n) {
  const Value* cond = n.input(0);
  if (cond->type().dtype != DType::Bool)
    return Unexpected(shapeError(n, fmt::format("condition must be bool, got {} (compare first, or cast)", sh(cond))));
  SHOAL_SHAPE_TRY(requireSameDType(n, n.input(1), n.input(2)));
  auto out = broadcastAll(n, inputsOf(n));
  if (!out) return Unexpected(out.error());
  return Types{{n.input(1)->type().dtype, *out}};
}

Expected<Types> shapeReduce(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, x, "input"));
  const Shape& xs = x->type().shape;
  const int64_t rank = x->type().rank();
  const int64_t keepdim = n.attrs().getInt("keepdim");
  if (keepdim != 0 && keepdim != 1)
    return Unexpected(shapeError(n, fmt::format("keepdim must be 0 or 1, got {}", keepdim)));
  const std::vector<int64_t>& axes = n.attrs().getInts("axes");
  std::vector<bool> reduced(size_t(rank), axes.empty());
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return Unexpected(
          shapeError(n, fmt::format("axis {} is out of range for {} (axes lie in [{}, {}))", a, sh(x), -rank, rank)));
    const int64_t d = a < 0 ? a + rank : a;
    if (reduced[size_t(d)]) return Unexpected(shapeError(n, fmt::format("axis {} appears twice in axes", d)));
    reduced[size_t(d)] = true;
  }
  Shape out;
  int64_t terms = 1, outputs = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (reduced[size_t(d)])
      terms *= xs[size_t(d)];
    else
      outputs *= xs[size_t(d)];
    if (!reduced[size_t(d)])
      out.push_back(xs[size_t(d)]);
    else if (keepdim)
      out.push_back(1);
  }
  // torch.amax/amin refuse an empty range: there is no maximum of nothing to report.
  const bool extremum = n.kind() == OpKind::ReduceMax || n.kind() == OpKind::ReduceMin;
  if (extremum && terms == 0 && outputs != 0)
    return Unexpected(shapeError(n, fmt::format("cannot take the {} over an empty range of {}",
                                                n.kind() == OpKind::ReduceMax ? "maximum" : "minimum", sh(x))));
  return Types{{x->type().dtype, out}};
}

}  // namespace shoal::shape
