// Gradient rules of the shape family: data movement moves dy back (slices of it, the inverse
// permutation, scatter-adds), batch_matmul is the matmul rule per batch summed over broadcast
// batch axes, causal_mask masks dy.
#include "ir/shape_geometry.h"
#include "passes/gradients.h"

namespace shoal {

namespace {

Unexpected<Error> internalError(const GradientArgs& g, const Error& e) {
  return fail(g.node.describe() + ": " + e.message(), g.node.loc());
}

// dy's part for operand i: the slice of the concat axis it filled.
SHOAL_GRADIENT(Concat) {
  const Shape& out = g.y()->type().shape;
  auto axis = geometry::normalizeAxis(g.attrs().getInt("axis"), int64_t(out.size()));
  if (!axis) return internalError(g, axis.error());
  int64_t start = 0;
  for (size_t i = 0; i < g.operand; ++i) start += g.input(i)->type().shape[size_t(*axis)];
  const int64_t end = start + g.x()->type().shape[size_t(*axis)];
  return g.emit(OpKind::Slice, {g.dy},
                attrsOf({{"starts", std::vector<int64_t>{start}}, {"ends", std::vector<int64_t>{end}},
                         {"axes", std::vector<int64_t>{*axis}}, {"steps", std::vector<int64_t>{1}}}));
}

SHOAL_GRADIENT(Slice) {
  return g.emit(OpKind::SliceGrad, {g.dy},
                attrsOf({{"starts", g.attrs().getInts("starts")},
                         {"ends", g.attrs().getInts("ends")},
                         {"axes", g.attrs().getInts("axes")},
                         {"steps", g.attrs().getInts("steps")},
                         {"input_shape", g.x()->type().shape}}));
}

SHOAL_GRADIENT(Transpose) {
  auto perm = geometry::permutation(g.attrs().getInts("perm"), g.x()->type().rank());
  if (!perm) return internalError(g, perm.error());
  return g.emit(OpKind::Transpose, {g.dy}, attrsOf({{"perm", geometry::inversePermutation(*perm)}}));
}

// Constant padding only moved x: its gradient is the interior slice of dy. Reflect and edge
// copied elements too; pad_grad adds those copies back.
SHOAL_GRADIENT(Pad) {
  const Shape& in = g.x()->type().shape;
  auto spec = geometry::padSpec(in, g.attrs());
  if (!spec) return internalError(g, spec.error());
  if (spec->mode != geometry::PadModeKind::Constant)
    return g.emit(OpKind::PadGrad, {g.dy},
                  attrsOf({{"pads", g.attrs().getInts("pads")}, {"mode", g.attrs().getString("mode")}}));
  std::vector<int64_t> starts, ends, axes;
  for (size_t d = 0; d < in.size(); ++d) {
    if (spec->before[d] == 0 && spec->after[d] == 0) continue;
    starts.push_back(spec->before[d]);
    ends.push_back(spec->before[d] + in[d]);
    axes.push_back(int64_t(d));
  }
  if (axes.empty()) return g.dy;  // no padding at all
  return g.emit(OpKind::Slice, {g.dy},
                attrsOf({{"starts", starts}, {"ends", ends}, {"axes", axes},
                         {"steps", std::vector<int64_t>(axes.size(), 1)}}));
}

// Only the data is differentiable; the indices are integers.
SHOAL_GRADIENT(Gather) {
  auto axis = geometry::normalizeAxis(g.attrs().getInt("axis"), g.x()->type().rank());
  if (!axis) return internalError(g, axis.error());
  return g.emit(OpKind::GatherGrad, {g.dy, g.input(1)},
                attrsOf({{"axis", *axis}, {"input_shape", g.x()->type().shape}}));
}

// A scatter-add's gradient is the gather of the same rows (ONNX's scatters lower to gather_grad,
// so their updates train).
SHOAL_GRADIENT(GatherGrad) {
  return g.emit(OpKind::Gather, {g.dy, g.input(1)}, attrsOf({{"axis", g.attrs().getInt("axis")}}));
}

SHOAL_GRADIENT(Expand) { return g.reduceToOperand(g.dy); }

Expected<Value*> reshapeToOperand(const GradientArgs& g) {
  return g.emit(OpKind::Reshape, {g.dy}, attrsOf({{"shape", g.x()->type().shape}}));
}
SHOAL_GRADIENT(Squeeze) { return reshapeToOperand(g); }
SHOAL_GRADIENT(Unsqueeze) { return reshapeToOperand(g); }

// The matmul rule (passes/gradients.cpp) per batch index, with the same alpha, then summed
// over the batch axes the operand was broadcast along.
SHOAL_GRADIENT(BatchMatMul) {
  const bool ta = g.attrs().getInt("transpose_a") != 0, tb = g.attrs().getInt("transpose_b") != 0;
  Value* a = g.input(0);
  Value* b = g.input(1);
  Value* dy = g.dy;
  const bool reduce = [&] {
    auto geo = geometry::batchMatMulGeometry(a->type().shape, b->type().shape, ta, tb);
    if (!geo) return false;
    Shape full = geo->batch;
    const Shape& x = g.x()->type().shape;
    full.push_back(x[x.size() - 2]);
    full.push_back(x.back());
    return full != x;
  }();
  auto mm = [&](Value* l, Value* r, bool tl, bool tr) {
    return g.emit(OpKind::BatchMatMul, {l, r},
                  attrsOf({{"transpose_a", int64_t(tl)}, {"transpose_b", int64_t(tr)}, {"alpha", g.attrs().getFloat("alpha")}}),
                  reduce ? ".batched" : "");
  };
  Expected<Value*> full = nullptr;
  if (g.operand == 0) {
    if (!ta && !tb) full = mm(dy, b, false, true);  // dA = dY B^T
    else if (!ta && tb) full = mm(dy, b, false, false);  // Y = A B^T: dA = dY B
    else if (ta && !tb) full = mm(b, dy, false, true);   // Y = A^T B: dA = B dY^T
    else full = mm(b, dy, true, true);                   // Y = A^T B^T: dA = B^T dY^T
  } else {
    if (!ta && !tb) full = mm(a, dy, true, false);  // dB = A^T dY
    else if (!ta && tb) full = mm(dy, a, true, false);  // Y = A B^T: dB = dY^T A
    else if (ta && !tb) full = mm(a, dy, false, false);  // Y = A^T B: dB = A dY
    else full = mm(dy, a, true, true);                   // Y = A^T B^T: dB = dY^T A^T
  }
  if (!full || !reduce) return full;
  return g.reduceToOperand(*full);
}

SHOAL_GRADIENT(CausalMask) { return g.emit(OpKind::CausalMask, {g.dy}, attrsOf({{"value", 0.0}})); }

}  // namespace

}  // namespace shoal
