// Layer constructors of conv_transpose2d and adaptive average pooling.
#include "frontend/layers_conv.h"

#include <fmt/format.h>

#include <tuple>

#include "frontend/layers.h"

namespace shoal::layers {

std::pair<std::vector<int64_t>, std::vector<int64_t>> transposeSamePadding(int64_t kh, int64_t kw, int64_t sh,
                                                                           int64_t sw, int64_t dh, int64_t dw) {
  std::vector<int64_t> pad(4, 0), outPad(2, 0);
  const int64_t k[2] = {kh, kw}, s[2] = {sh, sw}, d[2] = {dh, dw};
  for (int axis = 0; axis < 2; ++axis) {
    const int64_t crop = d[axis] * (k[axis] - 1) + 1 - s[axis];
    if (crop >= 0) {
      pad[size_t(axis)] = crop / 2;
      pad[size_t(axis) + 2] = crop - crop / 2;
    } else {
      outPad[size_t(axis)] = -crop;
    }
  }
  return {pad, outPad};
}

Expected<Value*> convTranspose2d(Graph& g, Value* x, const std::string& id, const ConvTranspose2dSpec& s,
                                 const Location& loc) {
  const std::string who = "conv_transpose2d '" + id + "'";
  if (!isActivationName(s.activation)) return activation(g, x, s.activation, id, loc);
  if (auto ok = checkConvSpec(who, s, x, loc); !ok) return Unexpected(ok.error());
  const Shape& xs = x->type().shape;
  std::vector<int64_t> pad = {0, 0, 0, 0}, outPad = s.outputPadding;
  if (s.padding == "same") {
    if (outPad != std::vector<int64_t>{0, 0})
      return fail(fmt::format("{}: padding=same sets the output padding itself; drop output_padding", who), loc);
    std::tie(pad, outPad) = transposeSamePadding(s.kernelH, s.kernelW, s.strideH, s.strideW, s.dilationH, s.dilationW);
  } else if (s.padding == "explicit") {
    pad = s.explicitPadding;
  } else if (s.padding != "valid") {
    return fail(fmt::format("{}: padding must be valid, same, or numbers, got '{}'", who, s.padding), loc);
  }
  DType dt = x->type().dtype;
  Value* w = param(g, id + ".weight", {dt, {xs[1], s.filters / s.groups, s.kernelH, s.kernelW}}, "glorot_uniform", loc);
  std::vector<Value*> ins = {x, w};
  if (s.bias) ins.push_back(param(g, id + ".bias", {dt, {s.filters}}, "zeros", loc));
  Attrs a;
  a.set("stride", std::vector<int64_t>{s.strideH, s.strideW});
  a.set("padding", pad);
  a.set("output_padding", outPad);
  a.set("dilation", std::vector<int64_t>{s.dilationH, s.dilationW});
  a.set("groups", s.groups);
  bool hasAct = !(s.activation.empty() || s.activation == "none" || s.activation == "linear");
  auto y = addOp(g, OpKind::ConvTranspose2d, ins, a, hasAct ? id + ".conv" : id, loc);
  if (!y) return y;
  return activation(g, *y, s.activation, id, loc);
}

Expected<Value*> adaptiveAvgPool2d(Graph& g, Value* x, const std::string& id, int64_t outH, int64_t outW,
                                   const Location& loc) {
  const std::string who = "adaptive_avgpool '" + id + "'";
  if (outH <= 0 || outW <= 0) return fail(fmt::format("{}: size must be positive, got {}x{}", who, outH, outW), loc);
  const Shape& xs = x->type().shape;
  if (xs.size() != 4)
    return fail(fmt::format("{}: input must be NCHW (rank 4), got {}", who, x->type().str()), loc);
  if (outH == 1 && outW == 1) return addOp(g, OpKind::GlobalAvgPool, {x}, {}, id, loc);
  if (xs[2] % outH != 0 || xs[3] % outW != 0)
    return fail(fmt::format("{}: size {}x{} must divide the input's {}x{} plane (windows of one size); use size=1 for "
                            "global average pooling",
                            who, outH, outW, xs[2], xs[3]),
                loc);
  std::vector<int64_t> window = {xs[2] / outH, xs[3] / outW};
  return pool2d(g, OpKind::AvgPool2d, x, id, window, window, {0, 0, 0, 0}, loc);
}

}  // namespace shoal::layers
