// CUDA codegen, dense layers: dense, fused_dense, fused_mlp and matmul through cuBLAS (with
// cuBLASLt's epilogues where they apply) or the small products of cuda_kernels_gemm.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <limits>
#include <numeric>

#include "codegen/cuda_emit.h"
#include "ir/conv_geometry.h"

namespace shoal::cudagen {

namespace {

bool fitsInt(int64_t v) { return v >= 0 && v <= int64_t(std::numeric_limits<int32_t>::max()); }

// The call for C[m,n] = op(A)·op(B) (+ C when `accumulate`) into the node's result, for
// nonempty products within cuBLAS's int range (else nullopt).
std::optional<CudaGemmCall> gemmCall(NodeEmitter& em, bool transA, bool transB, int64_t m, int64_t n, int64_t k,
                                     CudaArg a, CudaArg b, bool accumulate) {
  if (!fitsInt(m) || !fitsInt(n) || !fitsInt(k) || m == 0 || n == 0 || k == 0) return std::nullopt;
  CudaGemmCall call;
  call.dtype = em.computeType();
  call.transA = transA;
  call.transB = transB;
  call.m = int(m), call.n = int(n), call.k = int(k);
  call.lda = int(transA ? m : k);
  call.ldb = int(transB ? k : n);
  call.ldc = int(n);
  call.alpha = 1;
  call.beta = accumulate ? 1 : 0;
  call.a = a, call.b = b, call.c = em.out();
  return call;
}

// C[m,n] = op(A)·op(B) (+ C when `accumulate`), or zeros/nothing for empty products.
Expected<void> addGemm(NodeEmitter& em, bool transA, bool transB, int64_t m, int64_t n, int64_t k, CudaArg a, CudaArg b,
                       bool accumulate) {
  if (!fitsInt(m) || !fitsInt(n) || !fitsInt(k)) return em.unsupported("matrix extents exceed cuBLAS's int range");
  if (m == 0 || n == 0) return {};
  if (k == 0) {  // the product is empty; C keeps its bias, or is zero
    if (!accumulate)
      em.elementwise("zero", fill("${T}* __restrict__ y", {{"T", em.T()}}), fill("    y[i] = (${T})0;\n", {{"T", em.T()}}),
                     {em.out()}, m * n);
    return {};
  }
  em.gemm(*gemmCall(em, transA, transB, m, n, k, a, b, accumulate));
  return {};
}

// `call` given cuBLASLt's epilogue (bias, activation) when it can take it: an fp32 product that
// goes to cuBLAS (not a small one) with an epilogue cuBLASLt has (bias, relu).
bool withLtEpilogue(NodeEmitter& em, CudaGemmCall& call, CudaArg bias, const std::string& activation) {
  if (!em.options().gemmEpilogues || em.T() != "float") return false;
  if (!activation.empty() && activation != "relu") return false;
  if (!bias.value && activation.empty()) return false;
  if (smallGemmApplies(em.options(), call)) return false;
  call.bias = bias;
  call.activation = activation;
  return true;
}

// A dense layer's product `call` (into call.c at call.offsetC) with its bias (bias.value null:
// none) and activation ("" none) applied as the product stores each output: a small fp32 product
// does so in its last kernel; a larger one in cuBLASLt's epilogue (gemmEpilogues: fp32, bias,
// relu). False, nothing emitted, when neither takes them: the caller adds them in a kernel of
// their own (broadcastBias before, or epilogueKernel after, the product).
bool productWithEpilogue(NodeEmitter& em, CudaGemmCall call, CudaArg bias, const std::string& activation) {
  if (em.gemmWithEpilogue(call, {bias, activation})) return true;
  if (!withLtEpilogue(em, call, bias, activation)) return false;
  em.gemm(call);
  return true;
}

// The element `i` of a layer's destination: `y` from element `at` on.
std::string layerElement(int64_t at) { return at ? fmt::format("y[(long long){} + i]", intLit(at)) : "y[i]"; }

// y[at + i] = b[i % width] for the `count` elements of a layer's destination `y` (width outputs a
// row): the bias a product then adds to (beta = 1), dense's order.
void broadcastBias(NodeEmitter& em, CudaArg bias, CudaArg y, int64_t at, int64_t count, int64_t width) {
  em.elementwise("bias", fill("const ${T}* __restrict__ b, ${T}* __restrict__ y", {{"T", em.T()}}),
                 fill("    ${Y} = b[i % ${OUT}];\n", {{"Y", layerElement(at)}, {"OUT", intLit(width)}}), {bias, y},
                 count);
}

// y[at + i] = act(y[at + i] + b[i % width]) over a finished product (fused_dense's order: the bias
// added to the product, then the activation); no bias when bias.value is null.
void epilogueKernel(NodeEmitter& em, CudaArg bias, const std::string& activation, CudaArg y, int64_t at, int64_t count,
                    int64_t width) {
  const Vars v = {{"T", em.T()}, {"Y", layerElement(at)}, {"OUT", intLit(width)}};
  const std::string code = fill(bias.value ? "    const ${T} s = ${Y} + b[i % ${OUT}];\n" : "    const ${T} s = ${Y};\n", v) +
                           fill("    ${T} r;\n", v) + activationCode(activation, em.T(), "s", "r", "    ") +
                           fill("    ${Y} = r;\n", v);
  if (bias.value)
    em.elementwise("epilogue", fill("const ${T}* __restrict__ b, ${T}* __restrict__ y", v), code, {bias, y}, count);
  else
    em.elementwise("epilogue", fill("${T}* __restrict__ y", v), code, {y}, count);
}

}  // namespace

// y = x·wᵀ + b: the bias is broadcast into y by a small kernel, then cuBLAS adds the product
// (beta = 1), the interpreter's order. A small fp32 product adds the bias as it stores each
// output instead, and a larger one has cuBLASLt add it (gemmEpilogues): the same sum, one
// kernel fewer.
Expected<void> emitDense(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n) || n.input(0)->type().dtype != n.input(1)->type().dtype)
    return em.unsupported("dense needs operands of one float type");
  const Shape& x = em.inShape(0);
  const Shape& w = em.inShape(1);
  const bool bias = n.numInputs() == 3;
  if (bias)
    if (auto call = gemmCall(em, false, true, x[0], w[0], x[1], em.in(0), em.in(1), false))
      if (productWithEpilogue(em, *call, em.in(2), "")) return {};
  if (bias) broadcastBias(em, em.in(2), em.out(), 0, x[0] * w[0], w[0]);
  return addGemm(em, false, true, x[0], w[0], x[1], em.in(0), em.in(1), bias);
}

// fused_dense: y = x·wᵀ by cuBLAS (beta = 0), then one epilogue kernel y = act(y + b). The
// bias is added to the finished product, as cuBLAS's beta = 1 would (dense's order). A small
// fp32 product applies the epilogue as it stores each output (its last kernel); cuBLASLt does
// for a larger one where it has the activation (gemmEpilogues: bias and relu).
Expected<void> emitFusedDense(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n) || n.input(0)->type().dtype != n.input(1)->type().dtype)
    return em.unsupported("fused_dense needs operands of one float type");
  const Shape& x = em.inShape(0);
  const Shape& w = em.inShape(1);
  const CudaArg bias = n.numInputs() == 3 ? em.in(2) : CudaArg{};
  const std::string activation = n.attrs().getString("activation", "relu");
  if (activationCode(activation, em.T(), "s", "r", "    ").empty())
    return em.unsupported("unknown activation '" + activation + "'");
  if (x[0] == 0 || w[0] == 0) return {};
  if (auto call = gemmCall(em, false, true, x[0], w[0], x[1], em.in(0), em.in(1), false))
    if (productWithEpilogue(em, *call, bias, activation)) return {};
  if (auto ok = addGemm(em, false, true, x[0], w[0], x[1], em.in(0), em.in(1), /*accumulate=*/false); !ok) return ok;
  epilogueKernel(em, bias, activation, em.out(), 0, x[0] * w[0], w[0]);
  return {};
}

// fused_mlp: y = act(x·w1ᵀ + b1)·w2ᵀ + b2. A small batch whose first product splits over its
// inner dimension (the seed CNN's head at batch 64: 85 slices) takes emitSmallMlpRows: the
// tiles, then one kernel a row that finishes the hidden row and computes the outputs from it
// -- two kernels where fused_dense then dense launch three. Otherwise each layer as
// fused_dense and dense emit it, the hidden layer in scratch past the products' own scratch.
Expected<void> emitFusedMlp(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n)) return em.unsupported("fused_mlp needs float operands");
  const Shape& x = em.inShape(0);
  const int64_t hidden = em.inShape(1)[0], outs = em.inShape(3)[0];
  const std::string activation = n.attrs().getString("activation", "relu");
  if (activationCode(activation, em.T(), "s", "r", "    ").empty())
    return em.unsupported("unknown activation '" + activation + "'");
  if (x[0] == 0 || outs == 0) return {};
  auto first = gemmCall(em, false, true, x[0], hidden, x[1], em.in(0), em.in(1), false);
  auto second = gemmCall(em, false, true, x[0], outs, hidden, NodeEmitter::scratch(), em.in(3), false);
  if (!first || !second)  // fuse-dense-pair leaves empty layers unfused
    return em.unsupported("fused_mlp needs nonempty layers within cuBLAS's int range");
  if (emitSmallMlpRows(em, *first, {em.in(2), activation}, em.in(3), em.in(4), outs, em.out())) return {};
  const int64_t elem = int64_t(dtypeSize(em.computeType()));
  const int64_t past = std::max(smallGemmScratchBytes(em.options(), *first), smallGemmScratchBytes(em.options(), *second));
  const int64_t at = (past + 255) / 256 * 256 / elem;  // the hidden layer's first element in scratch
  em.needScratch((at + x[0] * hidden) * elem);
  first->c = NodeEmitter::scratch();
  first->offsetC = at;
  if (!productWithEpilogue(em, *first, em.in(2), activation)) {
    em.gemm(*first);
    epilogueKernel(em, em.in(2), activation, NodeEmitter::scratch(), at, x[0] * hidden, hidden);
  }
  second->offsetA = at;
  if (productWithEpilogue(em, *second, em.in(4), "")) return {};
  broadcastBias(em, em.in(4), em.out(), 0, x[0] * outs, outs);
  second->beta = 1;
  em.gemm(*second);
  return {};
}

Expected<void> emitMatMul(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloatNode(n) || n.input(0)->type().dtype != n.input(1)->type().dtype)
    return em.unsupported("matmul needs operands of one float type");
  const bool ta = n.attrs().getInt("transpose_a") != 0, tb = n.attrs().getInt("transpose_b") != 0;
  const Shape& a = em.inShape(0);
  return addGemm(em, ta, tb, em.outShape()[0], em.outShape()[1], ta ? a[0] : a[1], em.in(0), em.in(1), false);
}

}  // namespace shoal::cudagen
