// CUDA codegen, channels-last copies in the tensor cores' format (CudaCodegenOptions::
// conv16ChannelsLast: bfloat16 / float16; tf32ChannelsLast: fp32, for TF32): a tensor [n, c, h,
// w] of fp32 as [n, h, w, c] values of the format, which the implicit GEMMs of
// codegen/cuda_conv_gemm.cpp read 128 bytes (64 or 32 channels) a stage row. A
// copy is made by the first node that reads the value so (its conversion kernel) or, with
// halfCopyInProducer, by the kernel that computes the value -- a convolution's epilogue (in
// cuda_conv_gemm.cpp), or an elementwise kernel run as this file's tile kernel -- and lives in
// the module's converted region (CudaModuleSource::converted, NodeEmitter::converted).
#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// A kernel of tiles of 32 pixels x 64 channels of one image of a tensor [n, c, hw], a block of
// 256 threads each: each element (n, c0 + r, p0 + tx) is loaded by `element` -- statements
// that set `float value` from flat index `i` (an ${I} in scope), a warp's 32 reads along the
// pixels of one channel (128 bytes) -- into a shared tile, then every pixel's 64 channels are
// written to `out` (a float pointer parameter) at float `at` as 32 pairs of 16-bit values (128
// bytes a warp), or for TF32 (channelsLastBytes 4) as 32 pairs of floats (256 bytes).
void transposeToChannelsLast(NodeEmitter& em, const std::string& suffix, const std::string& params,
                             const std::string& element, const std::vector<CudaArg>& args, int64_t n, int64_t c,
                             int64_t hw, int64_t at) {
  const bool fp32 = channelsLastBytes(em) == 4;
  const int64_t pixelTiles = (hw + 31) / 32, channelTiles = c / 64;
  const Vars v = {
      {"I", em.I()},
      {"C", intLit(c)},
      {"HW", intLit(hw)},
      {"AT", intLit(at)},
      {"PT", intLit(pixelTiles)},
      {"CT", intLit(channelTiles)},
      {"TO16", em.options().tensorCores == TensorCoreMath::Bf16 ? "shoal_f32_to_bf16" : "shoal_f32_to_f16"}};
  em.kernel(
      suffix, params,
      fill("  __shared__ float tile[64][33];\n"
           "  const int tx = (int)threadIdx.x & 31, ty = (int)threadIdx.x >> 5;\n"
           "  const int p0 = (int)(blockIdx.x % ${PT}) * 32, c0 = (int)((blockIdx.x / ${PT}) % ${CT}) * 64;\n"
           "  const ${I} n = (${I})(blockIdx.x / (${PT} * ${CT}));\n"
           "  for (int r = ty; r < 64; r += 8) {\n"
           "    const int p = p0 + tx;\n"
           "    float value = 0.0f;\n"
           "    if (p < ${HW}) {\n"
           "      const ${I} i = (n * ${C} + c0 + r) * (${I})${HW} + p;\n",
           v) +
          element +
          fill("    }\n"
               "    tile[r][tx] = value;\n"
               "  }\n"
               "  __syncthreads();\n" +
                   std::string(
                       fp32 ? "  float* xs = out + ${AT};\n"
                              "  for (int r = ty; r < 32; r += 8) {\n"
                              "    const int p = p0 + r;\n"
                              "    if (p < ${HW}) {\n"
                              "      const ${I} at = (n * ${HW} + p) * ${C} + c0 + 2 * tx;\n"
                              "      xs[at] = tile[2 * tx][r];\n"
                              "      xs[at + 1] = tile[2 * tx + 1][r];\n"
                              "    }\n"
                              "  }\n"
                            : "  unsigned* xs = reinterpret_cast<unsigned*>(out + ${AT});\n"
                              "  for (int r = ty; r < 32; r += 8) {\n"
                              "    const int p = p0 + r;\n"
                              "    if (p < ${HW})\n"
                              "      xs[((n * ${HW} + p) * ${C} + c0) / 2 + tx] =\n"
                              "          (unsigned)${TO16}(tile[2 * tx][r]) | ((unsigned)${TO16}(tile[2 * tx + 1][r]) "
                              "<< 16);\n"
                              "  }\n"),
               v),
      args, unsigned(n * pixelTiles * channelTiles));
}

}  // namespace

ChannelsLastCopy channelsLastCopy(NodeEmitter& em, const CudaArg& input, int64_t n, int64_t c, int64_t hw, int64_t at,
                                  const std::string& suffix) {
  ChannelsLastCopy copy;
  copy.bytes = channelsLastBytes(em);
  bool fresh = true;
  if (input.kind == CudaArgKind::Value && input.value) {
    copy.arg = em.converted(input.value, n * hw * c * copy.bytes, fresh);
  } else {
    copy.arg = NodeEmitter::scratch();
    copy.at = at;
  }
  if (!fresh) return copy;
  transposeToChannelsLast(em, suffix, "const float* __restrict__ x, float* __restrict__ out", "      value = x[i];\n",
                          {input, copy.arg}, n, c, hw, copy.at);
  return copy;
}

void readChannelsLastCopy(ImplicitGemm& spec, const std::string& name, const ChannelsLastCopy& copy) {
  if (copy.inScratch()) {
    spec.scratchViews.push_back({name, copy.at});
    return;
  }
  spec.params += (spec.params.empty() ? "" : ", ") + std::string("const float* __restrict__ ") + name;
  spec.args.push_back(copy.arg);
}

int channelsLastBytes(const NodeEmitter& em) { return em.options().tensorCores == TensorCoreMath::Tf32 ? 4 : 2; }

bool channelsLastCopies(const NodeEmitter& em, int64_t channels) {
  const TensorCoreMath math = em.options().tensorCores;
  const bool sixteenBit = math == TensorCoreMath::Bf16 || math == TensorCoreMath::Fp16;
  return em.options().wgmma && channels % 64 == 0 &&
         ((sixteenBit && em.options().conv16ChannelsLast) ||
          (math == TensorCoreMath::Tf32 && em.options().tf32ChannelsLast));
}

void elementwiseWithChannelsLastCopy(NodeEmitter& em, const std::string& suffix, const std::string& params,
                                     const std::string& code, std::vector<CudaArg> args, const CudaArg& copy, int64_t n,
                                     int64_t c, int64_t hw) {
  args.push_back(copy);
  transposeToChannelsLast(em, suffix.empty() ? "cl16" : suffix + "_cl16", params + ", float* __restrict__ out",
                          code + "      value = y[i];\n", args, n, c, hw, 0);
}

std::optional<CudaArg> claimChannelsLastCopy(NodeEmitter& em, const Value* out) {
  const TensorType& t = out->type();
  if (t.dtype != DType::F32 || t.shape.size() != 4 || t.shape[1] <= 0 || !channelsLastCopies(em, t.shape[1]) ||
      !em.copyWanted(out))
    return std::nullopt;
  bool fresh = false;
  const CudaArg copy = em.converted(out, t.numElements() * channelsLastBytes(em), fresh);
  if (!fresh) return std::nullopt;  // (a producer runs before its readers: never)
  return copy;
}

}  // namespace shoal::cudagen
