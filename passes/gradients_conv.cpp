// Gradient rules of the conv family's own ops (conv2d and the pools keep theirs in gradients.cpp).
#include "passes/gradients.h"

namespace shoal {

namespace {

#define SHOAL_TRY_VALUE(var, expr)          \
  auto var##OrError_ = (expr);              \
  if (!var##OrError_) return var##OrError_; \
  Value* var = *var##OrError_

// y = conv_transpose2d(x, w) is the adjoint of x' -> conv2d(x', w) (same stride, padding,
// dilation, groups), so dx = conv2d(dy, w); and dw = conv2d_backward_weight with the roles of
// image and output gradient swapped: dw[c,o,ki,kj] = Σ x[n,c,iy,ix] dy[n,o,iy·s - p + ki·d, ...].
// output_padding < stride keeps conv2d's output extent at x's (see shapeConvTranspose2d).
SHOAL_GRADIENT(ConvTranspose2d) {
  Attrs conv = attrsOf({{"stride", g.attrs().getInts("stride")},
                        {"padding", g.attrs().getInts("padding")},
                        {"dilation", g.attrs().getInts("dilation")},
                        {"groups", g.attrs().getInt("groups")}});
  if (g.operand == 0) return g.emit(OpKind::Conv2d, {g.dy, g.input(1)}, conv);
  if (g.operand == 1) {
    conv.set("weight_shape", g.x()->type().shape);
    return g.emit(OpKind::Conv2dBackwardWeight, {g.dy, g.input(0)}, conv);
  }
  // Bias [O]: summed over N, H, W as conv2d's.
  int64_t o = g.x()->type().shape[0];
  SHOAL_TRY_VALUE(summed, g.emit(OpKind::SumTo, {g.dy}, attrsOf({{"shape", Shape{1, o, 1, 1}}}), ".sum"));
  return g.emit(OpKind::Reshape, {summed}, attrsOf({{"shape", Shape{o}}}));
}

// The mean over the plane is an average pool whose one window is the plane.
SHOAL_GRADIENT(GlobalAvgPool) {
  const Shape& x = g.x()->type().shape;
  return g.emit(OpKind::AvgPool2dGrad, {g.dy},
                attrsOf({{"kernel", Shape{x[2], x[3]}},
                         {"stride", Shape{x[2], x[3]}},
                         {"padding", Shape{0, 0, 0, 0}},
                         {"input_shape", x}}));
}

#undef SHOAL_TRY_VALUE

}  // namespace

}  // namespace shoal
