// CUDA codegen of the conv family's own ops: global_avgpool. (conv2d, conv_transpose2d and the
// pools are emitted by codegen/cuda_kernels_nn.cpp.)
#include <algorithm>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

// The mean of each plane, its sum in double in a fixed order (reproducible). Many planes (the
// end of a CNN: N·C planes of H·W): one warp per plane, each lane a strided slice, a butterfly
// over the lanes. Fewer planes than would fill the GPU with warps: one block per plane, so a
// long plane is read by 256 threads.
Expected<void> emitGlobalAvgPool(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("global_avgpool needs a float operand");
  const Shape& x = em.inShape(0);
  const int64_t planes = x[0] * x[1], size = x[2] * x[3];
  if (planes == 0) return {};
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"PLANES", intLit(planes)},
            {"SIZE", intLit(size)},
            {"WARPS", std::to_string(kWarpsPerBlock)}};
  const std::string params = fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v);
  if (planes < kTargetBlocks * int64_t(kWarpsPerBlock)) {
    std::string body = fill(
        "  __shared__ double red[32];\n"
        "  for (${I} plane = blockIdx.x; plane < ${PLANES}; plane += gridDim.x) {\n"
        "    const ${T}* xp = x + plane * (${I})${SIZE};\n"
        "    double s = 0.0;\n"
        "    for (${I} j = threadIdx.x; j < ${SIZE}; j += blockDim.x) s += (double)xp[j];\n"
        "    s = shoal_block_sum(s, red);\n"
        "    if (threadIdx.x == 0) y[plane] = (${T})(s / (double)${SIZE});\n"
        "  }\n",
        v);
    em.kernel("", params, body, {em.in(0), em.out()}, unsigned(std::min<int64_t>(planes, kMaxGrid)));
    return {};
  }
  std::string body = fill(
      "  const int lane = threadIdx.x & 31;\n"
      "  for (${I} plane = (${I})blockIdx.x * ${WARPS} + (threadIdx.x >> 5); plane < ${PLANES};\n"
      "       plane += (${I})gridDim.x * ${WARPS}) {\n"
      "    const ${T}* xp = x + plane * (${I})${SIZE};\n"
      "    double s = 0.0;\n"
      "    for (${I} j = lane; j < ${SIZE}; j += 32) s += (double)xp[j];\n"
      "    s = shoal_warp_sum(s);\n"
      "    if (lane == 0) y[plane] = (${T})(s / (double)${SIZE});\n"
      "  }\n",
      v);
  const int64_t blocks = (planes + kWarpsPerBlock - 1) / kWarpsPerBlock;
  em.kernel("", params, body, {em.in(0), em.out()}, unsigned(std::min<int64_t>(blocks, kMaxGrid)));
  return {};
}

}  // namespace shoal::cudagen
