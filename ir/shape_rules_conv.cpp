// Shape rules of the conv family's own ops: conv_transpose2d and global_avgpool.
#include <fmt/format.h>

#include "ir/conv_geometry.h"
#include "ir/shape_rules.h"

namespace shoal::shape {

// x [N, C, H, W], w [C, O/groups, kh, kw] -> [N, O, oh, ow]. output_padding stays below the
// stride (PyTorch also accepts it below the dilation): then conv2d over the output with the
// same padding gives back exactly the input's extent, which the gradients rely on.
Expected<Types> shapeConvTranspose2d(const Node& n) {
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  SHOAL_SHAPE_TRY(requireConvOperands(n, "[C, O/groups, kh, kw]"));
  auto stride = intsOfLen(n, "stride", 2);
  if (!stride) return Unexpected(stride.error());
  auto pad = intsOfLen(n, "padding", 4);
  if (!pad) return Unexpected(pad.error());
  auto outPad = intsOfLen(n, "output_padding", 2);
  if (!outPad) return Unexpected(outPad.error());
  auto dil = intsOfLen(n, "dilation", 2);
  if (!dil) return Unexpected(dil.error());
  const int64_t groups = n.attrs().getInt("groups");
  for (int64_t s : *stride)
    if (s <= 0) return Unexpected(shapeError(n, "stride must be positive"));
  for (int64_t d : *dil)
    if (d <= 0) return Unexpected(shapeError(n, "dilation must be positive"));
  for (int64_t p : *pad)
    if (p < 0) return Unexpected(shapeError(n, "padding must not be negative"));
  for (int i = 0; i < 2; ++i)
    if ((*outPad)[size_t(i)] < 0 || (*outPad)[size_t(i)] >= (*stride)[size_t(i)])
      return Unexpected(shapeError(n, fmt::format("output_padding {}x{} must be non-negative and smaller than the stride {}x{}",
                                                  (*outPad)[0], (*outPad)[1], (*stride)[0], (*stride)[1])));
  if (groups <= 0) return Unexpected(shapeError(n, fmt::format("groups must be positive, got {}", groups)));
  const Shape& xs = x->type().shape;
  const Shape& ws = w->type().shape;
  if (xs[1] != ws[0])
    return Unexpected(shapeError(
        n, fmt::format("input has {} channels ({}) but the weight expects {} ({})", xs[1], sh(x), ws[0], sh(w))));
  if (xs[1] % groups != 0)
    return Unexpected(
        shapeError(n, fmt::format("input has {} channels ({}), not divisible by groups={}", xs[1], sh(x), groups)));
  int64_t oh = convTransposeOutputSize(xs[2], ws[2], (*stride)[0], (*pad)[0], (*pad)[2], (*dil)[0], (*outPad)[0]);
  int64_t ow = convTransposeOutputSize(xs[3], ws[3], (*stride)[1], (*pad)[1], (*pad)[3], (*dil)[1], (*outPad)[1]);
  if (oh <= 0 || ow <= 0)
    return Unexpected(shapeError(n, fmt::format("padding [{},{},{},{}] crops the whole {}x{} output ({})", (*pad)[0],
                                                (*pad)[1], (*pad)[2], (*pad)[3], oh + (*pad)[0] + (*pad)[2],
                                                ow + (*pad)[1] + (*pad)[3], sh(x))));
  const int64_t o = ws[1] * groups;
  if (n.numInputs() == 3) {
    const Value* b = n.input(2);
    if (b->type().shape != Shape{o} || b->type().dtype != x->type().dtype)
      return Unexpected(shapeError(n, fmt::format("bias must be {}[{}], got {}", dtypeName(x->type().dtype), o, sh(b))));
  }
  return Types{{x->type().dtype, {xs[0], o, oh, ow}}};
}

Expected<Types> shapeGlobalAvgPool(const Node& n) {
  const Value* x = n.input(0);
  SHOAL_SHAPE_TRY(requireFloat(n, x, "input"));
  SHOAL_SHAPE_TRY(requireRank(n, x, 4, "input (NCHW)"));
  const Shape& xs = x->type().shape;
  return Types{{x->type().dtype, {xs[0], xs[1], 1, 1}}};
}

}  // namespace shoal::shape
