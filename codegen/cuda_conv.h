// Convolutions' shared parts (internal to codegen): a conv2d's geometry and template variables,
// fused_conv2d's output_expr, and the implicit-GEMM forms (cuda_conv_gemm.cpp) that the
// emitters of cuda_kernels_conv.cpp choose among.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen::conv {

// Geometry of a conv2d: input [n,c,h,w], weight [o,cg,kh,kw], output [n,o,oh,ow]; `groups`
// groups of cg = c/groups channels and og = o/groups filters.
struct ConvGeom {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int64_t sh, sw, pt, pl, dh, dw;
  int64_t groups, cg, og;
};
ConvGeom convGeom(const Attrs& a, const Shape& x, const Shape& w);
// True when some window tap falls outside the image (padding), so kernels need bounds checks.
bool tapsLeaveImage(const ConvGeom& g);
// The template variables of a conv2d's kernels (T, I, the extents, IY / IX: the input row and
// column of output (oy, ox) at tap (ki, kj), ...).
Vars convVars(const NodeEmitter& em, const ConvGeom& g);
// Sets `key` in v (added where absent).
void setVar(Vars& v, const std::string& key, std::string value);

// fused_conv2d's output_expr (fuse-conv-epilogue): the statements, indented by `ind`, that
// store its program over `sum` into y[at] (outputExprStore), its operands' parameters and
// arguments.
Expected<std::string> outputExprStore(const NodeEmitter& em, const std::string& sum, const std::string& at,
                                      const std::string& ind);
bool hasOutputExpr(const Node& n);
std::string outputExprParams(const NodeEmitter& em);
void addOutputExprArgs(const NodeEmitter& em, std::vector<CudaArg>& args);

// The implicit-GEMM forms (cuda_conv_gemm.cpp): the forward (into scratch with `intoScratch`,
// reading x from `input` where given), the data gradient (and conv_transpose2d), the weight
// gradient.
Expected<void> convForwardTensorCore(NodeEmitter& em, const ConvGeom& g, const std::string& activation,
                                     bool intoScratch = false, std::optional<CudaArg> input = std::nullopt);
Expected<void> convBackwardDataTensorCore(NodeEmitter& em, const ConvGeom& g, bool transpose, bool bias);
Expected<void> convBackwardWeightTensorCore(NodeEmitter& em, const ConvGeom& g);

}  // namespace shoal::cudagen::conv
