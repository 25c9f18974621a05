// CUDA codegen, elementwise family: cast, scale, normalize, activations and their gradients,
// broadcasting binary ops, mse_grad, and the optimizer updates (sgd, adam).
#include <fmt/format.h>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// Extent of `s` along dimension d of a rank-`rank` shape, right-aligned (1 if missing).
int64_t alignedExtent(const Shape& s, size_t d, size_t rank) {
  size_t lead = rank - s.size();
  return d < lead ? 1 : s[d - lead];
}

// The broadcast walk of `out` for operands a and b: dims of extent 1 dropped, neighbours that
// broadcast the same way merged (as the interpreter's planLoops does). Per operand, the
// strides (0 where the operand repeats) of each merged dimension.
struct BroadcastPlan {
  std::vector<Dim> a, b;
};

BroadcastPlan planBroadcast(const Shape& out, const Shape& as, const Shape& bs) {
  const size_t rank = out.size();
  std::vector<int64_t> extent;
  std::vector<bool> repA, repB;
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    bool ra = alignedExtent(as, d, rank) == 1, rb = alignedExtent(bs, d, rank) == 1;
    if (!extent.empty() && repA.back() == ra && repB.back() == rb) {
      extent.back() *= out[d];
    } else {
      extent.push_back(out[d]);
      repA.push_back(ra);
      repB.push_back(rb);
    }
  }
  BroadcastPlan plan;
  plan.a.resize(extent.size());
  plan.b.resize(extent.size());
  int64_t runA = 1, runB = 1;
  for (size_t d = extent.size(); d-- > 0;) {
    plan.a[d] = {extent[d], repA[d] ? 0 : runA};
    plan.b[d] = {extent[d], repB[d] ? 0 : runB};
    if (!repA[d]) runA *= extent[d];
    if (!repB[d]) runB *= extent[d];
  }
  return plan;
}

// "x[i]" when the operand walks with the output, "x[0]" for a scalar, else through `off`.
std::string operandIndex(const std::string& name, const std::vector<Dim>& dims, int64_t count, int64_t n,
                         std::string& code, const std::string& I) {
  if (count == n) return name + "[i]";
  if (count == 1) return name + "[0]";
  std::string off = "o" + name;
  code += "    " + I + " " + off + " = 0;\n";
  code += offsetCode(I, "i", dims, off, "    ");
  return name + "[" + off + "]";
}

}  // namespace

Expected<void> emitBinary(NodeEmitter& em) {
  const Node& n = em.node();
  const std::string& T = em.T();
  const Shape& out = em.outShape();
  const int64_t count = numElements(out);
  if (n.input(0)->type().dtype != em.computeType() || n.input(1)->type().dtype != em.computeType())
    return em.unsupported("operands of different element types");
  BroadcastPlan plan = planBroadcast(out, em.inShape(0), em.inShape(1));
  std::string code;
  std::string a = operandIndex("a", plan.a, numElements(em.inShape(0)), count, code, em.I());
  std::string b = operandIndex("b", plan.b, numElements(em.inShape(1)), count, code, em.I());
  const OpKind k = n.kind();
  if (k != OpKind::Add && k != OpKind::Sub && k != OpKind::Mul && k != OpKind::Div)
    return em.unsupported("not a binary op");
  const std::string op = k == OpKind::Add ? "+" : k == OpKind::Sub ? "-" : k == OpKind::Mul ? "*" : "/";
  code += "    y[i] = " + a + " " + op + " " + b + ";\n";
  em.elementwise("", fill("const ${T}* __restrict__ a, const ${T}* __restrict__ b, ${T}* __restrict__ y", {{"T", T}}),
                 code, {em.in(0), em.in(1), em.out()}, count);
  return {};
}

Expected<void> emitNormalize(NodeEmitter& em) {
  const Node& n = em.node();
  auto mean = n.attrs().getFloats("mean");
  auto stdv = n.attrs().getFloats("std");
  const Shape& s = em.outShape();
  const int64_t count = numElements(s);
  int64_t channels = mean.size() == 1 ? 1 : (s.size() > 1 ? s[1] : 1);
  if (int64_t(mean.size()) != channels || int64_t(stdv.size()) != channels)
    return em.unsupported("mean/std must have one entry or one per channel");
  int64_t inner = 1;
  for (size_t d = 2; d < s.size(); ++d) inner *= s[d];
  std::string code;
  if (channels == 1) {
    code = fill("    y[i] = (${T})(((double)x[i] - ${M}) / ${S});\n",
                {{"T", em.T()}, {"M", literal(mean[0], DType::F64)}, {"S", literal(stdv[0], DType::F64)}});
  } else {
    std::string means, stds;
    for (int64_t c = 0; c < channels; ++c) {
      means += (c ? ", " : "") + literal(mean[size_t(c)], DType::F64);
      stds += (c ? ", " : "") + literal(stdv[size_t(c)], DType::F64);
    }
    code = fill(
        "    const double mean[${C}] = {${MEANS}};\n"
        "    const double stdv[${C}] = {${STDS}};\n"
        "    const int c = (int)((i / ${INNER}) % ${C});\n"
        "    y[i] = (${T})(((double)x[i] - mean[c]) / stdv[c]);\n",
        {{"T", em.T()}, {"C", intLit(channels)}, {"MEANS", means}, {"STDS", stds}, {"INNER", intLit(inner)}});
  }
  em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", {{"T", em.T()}}), code,
                 {em.in(0), em.out()}, count);
  return {};
}

// sgd_update: PyTorch SGD without dampening or Nesterov, as the interpreter's sgdUpdate.
Expected<void> emitSgd(NodeEmitter& em) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  const int64_t count = n.input(0)->type().numElements();
  const double momentum = n.attrs().getFloat("momentum");
  const bool velocity = n.numInputs() == 3;
  if (momentum != 0 && !velocity) return em.unsupported("momentum needs a velocity operand");
  Vars v = {{"T", em.T()},
            {"LR", literal(n.attrs().getFloat("lr"), dt)},
            {"MOM", literal(momentum, dt)},
            {"WD", literal(n.attrs().getFloat("weight_decay"), dt)}};
  std::string params = fill("${T}* __restrict__ w, const ${T}* __restrict__ g, ", v);
  std::vector<CudaArg> args = {em.in(0), em.in(1)};
  if (velocity) {
    params += fill("${T}* __restrict__ vel, ", v);
    args.push_back(em.in(2));
  }
  params += "const u64* __restrict__ status";
  args.push_back(NodeEmitter::status());
  std::string code = momentum == 0 ? "    w[i] -= ${LR} * (g[i] + ${WD} * w[i]);\n"
                                   : "    const ${T} gi = g[i] + ${WD} * w[i];\n"
                                     "    vel[i] = ${MOM} * vel[i] + gi;\n"
                                     "    w[i] -= ${LR} * vel[i];\n";
  std::string body = fill(
      "  if (status[0] != 0) return;  // an earlier kernel of this step reported an error: update nothing\n"
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x) {\n"
      "${CODE}"
      "  }\n",
      {{"I", em.I()}, {"N", intLit(count)}, {"CODE", fill(code, v)}});
  em.kernel("", params, body, args, gridFor(count));
  return {};
}

// adam_update: bias-corrected Adam in the same operation order as the interpreter's
// adamUpdate (torch.optim.Adam's single-tensor path). The step count is read on the device.
Expected<void> emitAdam(NodeEmitter& em) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  const int64_t count = n.input(0)->type().numElements();
  int site = em.errorSite(CudaErrorKind::AdamStep);
  Vars v = {{"T", em.T()},
            {"S", cudaType(n.input(4)->type().dtype)},
            {"I", em.I()},
            {"N", intLit(count)},
            {"SITE", std::to_string(site)},
            {"LR", literal(n.attrs().getFloat("lr"), dt)},
            {"B1", literal(n.attrs().getFloat("beta1"), dt)},
            {"B2", literal(n.attrs().getFloat("beta2"), dt)},
            {"EPS", literal(n.attrs().getFloat("eps"), dt)},
            {"WD", literal(n.attrs().getFloat("weight_decay"), dt)}};
  std::string params = fill(
      "${T}* __restrict__ w, const ${T}* __restrict__ g, ${T}* __restrict__ m, ${T}* __restrict__ v, "
      "const ${S}* __restrict__ step, u64* __restrict__ status",
      v);
  std::string body = fill(
      "  if (status[0] != 0) return;  // an earlier kernel of this step reported an error: update nothing\n"
      "  const double stepValue = (double)step[0];\n"
      "  const long long t = llrint(round(stepValue));\n"
      "  if (t < 1) {\n"
      "    if (blockIdx.x == 0 && threadIdx.x == 0) shoal_report_value(status, ${SITE}, stepValue);\n"
      "    return;\n"
      "  }\n"
      "  const ${T} lr = ${LR}, beta1 = ${B1}, beta2 = ${B2}, eps = ${EPS}, l2 = ${WD};\n"
      "  const double bc1 = 1.0 - pow((double)beta1, (double)t);\n"
      "  const double bc2 = 1.0 - pow((double)beta2, (double)t);\n"
      "  const ${T} stepSize = (${T})((double)lr / bc1);\n"
      "  const ${T} bc2Sqrt = (${T})sqrt(bc2);\n"
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x) {\n"
      "    const ${T} gi = g[i] + l2 * w[i];\n"
      "    const ${T} mi = beta1 * m[i] + ((${T})1 - beta1) * gi;\n"
      "    const ${T} vi = beta2 * v[i] + ((${T})1 - beta2) * gi * gi;\n"
      "    m[i] = mi;\n"
      "    v[i] = vi;\n"
      "    w[i] -= stepSize * mi / (shoal_sqrt(vi) / bc2Sqrt + eps);\n"
      "  }\n",
      v);
  em.kernel("", params, body, {em.in(0), em.in(1), em.in(2), em.in(3), em.in(4), NodeEmitter::status()},
            gridFor(count));
  return {};
}

Expected<void> emitCast(NodeEmitter& em) {
  const Node& n = em.node();
  DType from = n.input(0)->type().dtype, to = n.result()->type().dtype;
  if (from == to) {
    em.copy(n.input(0), n.result());
    return {};
  }
  // Through double, like the interpreter's Tensor::set(i, src.at(i)).
  em.elementwise("", fill("const ${A}* __restrict__ x, ${B}* __restrict__ y", {{"A", cudaType(from)}, {"B", cudaType(to)}}),
                 fill("    y[i] = (${B})(double)x[i];\n", {{"B", cudaType(to)}}), {em.in(0), em.out()},
                 n.result()->type().numElements());
  return {};
}

Expected<void> emitScale(NodeEmitter& em) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", {{"T", em.T()}}),
                 fill("    y[i] = x[i] * ${S} + ${SHIFT};\n",
                      {{"S", literal(n.attrs().getFloat("scale"), dt)}, {"SHIFT", literal(n.attrs().getFloat("shift"), dt)}}),
                 {em.in(0), em.out()}, n.result()->type().numElements());
  return {};
}

Expected<void> emitUnary(NodeEmitter& em) {
  const Node& n = em.node();
  const Vars t = {{"T", em.T()}};
  std::string code;
  if (n.kind() == OpKind::Relu) {
    code = "    const ${T} v = x[i];\n    y[i] = v < (${T})0 ? (${T})0 : v;  // NaN stays NaN\n";
  } else if (n.kind() == OpKind::Sigmoid) {
    code = "    const ${T} v = x[i];\n"
           "    const ${T} e = shoal_exp(-shoal_abs(v));  // never overflows\n"
           "    y[i] = v >= (${T})0 ? (${T})1 / ((${T})1 + e) : e / ((${T})1 + e);\n";
  } else if (n.kind() == OpKind::Tanh) {
    code = "    y[i] = shoal_tanh(x[i]);\n";
  } else {
    return em.unsupported("not a unary activation");
  }
  em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", t), fill(code, t), {em.in(0), em.out()},
                 n.result()->type().numElements());
  return {};
}

// (u, dy) -> dx, where u is the forward input (relu) or output (sigmoid, tanh).
Expected<void> emitUnaryGrad(NodeEmitter& em) {
  const Node& n = em.node();
  const Vars t = {{"T", em.T()}};
  std::string code;
  if (n.kind() == OpKind::ReluGrad) code = "    dx[i] = u[i] > (${T})0 ? dy[i] : (${T})0;\n";
  else if (n.kind() == OpKind::SigmoidGrad) code = "    dx[i] = dy[i] * u[i] * ((${T})1 - u[i]);\n";
  else if (n.kind() == OpKind::TanhGrad) code = "    dx[i] = dy[i] * ((${T})1 - u[i] * u[i]);\n";
  else return em.unsupported("not an activation gradient");
  em.elementwise("", fill("const ${T}* __restrict__ u, const ${T}* __restrict__ dy, ${T}* __restrict__ dx", t),
                 fill(code, t), {em.in(0), em.in(1), em.out()}, n.result()->type().numElements());
  return {};
}

Expected<void> emitMseGrad(NodeEmitter& em) {
  const Node& n = em.node();
  const int64_t count = n.result()->type().numElements();
  em.elementwise("",
                 fill("const ${T}* __restrict__ pred, const ${T}* __restrict__ target, const ${T}* __restrict__ dloss, "
                      "${T}* __restrict__ dpred",
                      {{"T", em.T()}}),
                 fill("    const ${T} scale = (${T})2 * dloss[0] / (${T})${N};\n"
                      "    dpred[i] = scale * (pred[i] - target[i]);\n",
                      {{"T", em.T()}, {"N", intLit(count)}}),
                 {em.in(0), em.in(1), em.in(2), em.out()}, count);
  return {};
}

}  // namespace shoal::cudagen
