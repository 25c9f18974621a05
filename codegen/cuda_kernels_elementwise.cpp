// CUDA codegen, elementwise family: every elementwise op of ir/ops.def (its formula, with
// broadcasting), fused_elementwise, cast, normalize, mse_grad, and the optimizer updates.
#include <fmt/format.h>

#include "codegen/cuda_emit.h"
#include "ir/elementwise.h"

namespace shoal::cudagen {

namespace {

// Extent of `s` along dimension d of a rank-`rank` shape, right-aligned (1 if missing).
int64_t alignedExtent(const Shape& s, size_t d, size_t rank) {
  size_t lead = rank - s.size();
  return d < lead ? 1 : s[d - lead];
}

// The broadcast walk of `out` for its operands: dims of extent 1 dropped, neighbours that
// broadcast the same way for every operand merged (as the interpreter's planLoops does). Per
// operand, the strides (0 where the operand repeats) of each merged dimension.
std::vector<std::vector<Dim>> planBroadcast(const Shape& out, const std::vector<Shape>& operands) {
  const size_t rank = out.size(), count = operands.size();
  std::vector<int64_t> extent;
  std::vector<std::vector<bool>> rep(count);
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    std::vector<bool> r(count);
    for (size_t k = 0; k < count; ++k) r[k] = alignedExtent(operands[k], d, rank) == 1;
    bool same = !extent.empty();
    for (size_t k = 0; k < count && same; ++k) same = rep[k].back() == r[k];
    if (same) {
      extent.back() *= out[d];
    } else {
      extent.push_back(out[d]);
      for (size_t k = 0; k < count; ++k) rep[k].push_back(r[k]);
    }
  }
  std::vector<std::vector<Dim>> plan(count, std::vector<Dim>(extent.size()));
  for (size_t k = 0; k < count; ++k) {
    int64_t run = 1;
    for (size_t d = extent.size(); d-- > 0;) {
      plan[k][d] = {extent[d], rep[k][d] ? 0 : run};
      if (!rep[k][d]) run *= extent[d];
    }
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

std::string formulaCall(OpKind kind, const std::vector<std::string>& operands, const std::vector<double>& params, DType dt) {
  std::string call = "shoal_ew_" + std::string(opName(kind)) + "(";
  for (size_t i = 0; i < operands.size(); ++i) call += (i ? ", " : "") + operands[i];
  for (double p : params) call += ", " + literal(p, dt);
  return call + ")";
}

std::string elementwiseFunctions() {
  std::string out;
  for (OpKind k : allOps()) {
    const OpInfo& info = opInfo(k);
    if (!info.traits.isElementwise) continue;
    std::string params;
    const char* names[] = {"a", "b", "c"};
    for (int i = 0; i < info.minInputs && i < 3; ++i) params += std::string(i ? ", " : "") + "T " + names[i];
    for (size_t i = 0; i < info.formulaParams.size(); ++i) params += ", T p" + std::to_string(i);
    out += fill("template <typename T>\n__device__ __forceinline__ T shoal_ew_${NAME}(${PARAMS}) { return ${F}; }\n",
                {{"NAME", std::string(info.name)}, {"PARAMS", params}, {"F", std::string(info.formula)}});
  }
  return out;
}

Expected<void> emitElementwise(NodeEmitter& em) {
  const Node& n = em.node();
  const std::string& T = em.T();
  const Shape& out = em.outShape();
  const int64_t count = numElements(out);
  const DType dt = em.computeType();
  if (n.result()->type().dtype != dt) return em.unsupported("integer elementwise arithmetic runs on the CPU only");
  std::vector<Shape> shapes;
  for (size_t i = 0; i < n.numInputs(); ++i) {
    if (n.input(i)->type().dtype != dt) return em.unsupported("operands of different element types");
    shapes.push_back(em.inShape(i));
  }
  auto plan = planBroadcast(out, shapes);
  std::string code, params;
  std::vector<std::string> operands;
  std::vector<CudaArg> args;
  for (size_t i = 0; i < n.numInputs(); ++i) {
    const std::string name = "a" + std::to_string(i);
    operands.push_back(operandIndex(name, plan[i], numElements(shapes[i]), count, code, em.I()));
    params += fill("const ${T}* __restrict__ ${A}, ", {{"T", T}, {"A", name}});
    args.push_back(em.in(i));
  }
  params += fill("${T}* __restrict__ y", {{"T", T}});
  args.push_back(em.out());
  code += "    y[i] = " + formulaCall(n.kind(), operands, formulaParams(n), dt) + ";\n";
  em.elementwise("", params, code, std::move(args), count);
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

namespace {

// The per-element update of sgd_update (`vars`: T, LR, MOM, WD), over pointers w, g, vel at
// index j. Shared by the per-parameter and the horizontally fused kernel, so both do the same
// arithmetic bit for bit.
std::string sgdElement(const Vars& vars, bool momentum, const std::string& w, const std::string& g,
                       const std::string& vel, const std::string& j, const std::string& indent) {
  Vars v = vars;
  v.push_back({"W", w + "[" + j + "]"});
  v.push_back({"G", g + "[" + j + "]"});
  v.push_back({"VEL", vel + "[" + j + "]"});
  v.push_back({"_", indent});
  return fill(momentum ? "${_}const ${T} gi = ${G} + ${WD} * ${W};\n"
                         "${_}${VEL} = ${MOM} * ${VEL} + gi;\n"
                         "${_}${W} -= ${LR} * ${VEL};\n"
                       : "${_}${W} -= ${LR} * (${G} + ${WD} * ${W});\n",
              v);
}

// Adam's per-launch prologue: skip after an error, read and check the step, bias corrections.
constexpr const char* kAdamPrologue =
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
    "  const ${T} bc2Sqrt = (${T})sqrt(bc2);\n";

// Adam's per-element update over pointers w, g, m, v at index j (after kAdamPrologue).
std::string adamElement(const std::string& w, const std::string& g, const std::string& m, const std::string& v,
                        const std::string& j, const std::string& indent) {
  auto at = [&](const std::string& p) { return p + "[" + j + "]"; };
  std::string out;
  out += indent + "const ${T} gi = " + at(g) + " + l2 * " + at(w) + ";\n";
  out += indent + "const ${T} mi = beta1 * " + at(m) + " + ((${T})1 - beta1) * gi;\n";
  out += indent + "const ${T} vi = beta2 * " + at(v) + " + ((${T})1 - beta2) * gi * gi;\n";
  out += indent + at(m) + " = mi;\n";
  out += indent + at(v) + " = vi;\n";
  out += indent + at(w) + " -= stepSize * mi / (shoal_sqrt(vi) / bc2Sqrt + eps);\n";
  return out;
}

Vars adamVars(const NodeEmitter& em, int site) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  return {{"T", em.T()},
          {"S", cudaType(n.input(4)->type().dtype)},
          {"SITE", std::to_string(site)},
          {"LR", literal(n.attrs().getFloat("lr"), dt)},
          {"B1", literal(n.attrs().getFloat("beta1"), dt)},
          {"B2", literal(n.attrs().getFloat("beta2"), dt)},
          {"EPS", literal(n.attrs().getFloat("eps"), dt)},
          {"WD", literal(n.attrs().getFloat("weight_decay"), dt)}};
}

Vars sgdVars(const NodeEmitter& em) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  return {{"T", em.T()},
          {"LR", literal(n.attrs().getFloat("lr"), dt)},
          {"MOM", literal(n.attrs().getFloat("momentum"), dt)},
          {"WD", literal(n.attrs().getFloat("weight_decay"), dt)}};
}

}  // namespace

// sgd_update: PyTorch SGD without dampening or Nesterov, as the interpreter's sgdUpdate.
Expected<void> emitSgd(NodeEmitter& em) {
  const Node& n = em.node();
  const int64_t count = n.input(0)->type().numElements();
  const double momentum = n.attrs().getFloat("momentum");
  const bool velocity = n.numInputs() == 3;
  if (momentum != 0 && !velocity) return em.unsupported("momentum needs a velocity operand");
  Vars v = sgdVars(em);
  std::string params = fill("${T}* __restrict__ w, const ${T}* __restrict__ g, ", v);
  std::vector<CudaArg> args = {em.in(0), em.in(1)};
  if (velocity) {
    params += fill("${T}* __restrict__ vel, ", v);
    args.push_back(em.in(2));
  }
  params += "const u64* __restrict__ status";
  args.push_back(NodeEmitter::status());
  std::string body = fill(
      "  if (status[0] != 0) return;  // an earlier kernel of this step reported an error: update nothing\n"
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x) {\n"
      "${CODE}"
      "  }\n",
      {{"I", em.I()}, {"N", intLit(count)}, {"CODE", sgdElement(v, momentum != 0, "w", "g", "vel", "i", "    ")}});
  em.kernel("", params, body, args, gridFor(count));
  return {};
}

// adam_update: bias-corrected Adam in the same operation order as the interpreter's
// adamUpdate (torch.optim.Adam's single-tensor path). The step count is read on the device.
Expected<void> emitAdam(NodeEmitter& em) {
  const Node& n = em.node();
  const int64_t count = n.input(0)->type().numElements();
  int site = em.errorSite(CudaErrorKind::AdamStep);
  Vars v = adamVars(em, site);
  v.push_back({"I", em.I()});
  v.push_back({"N", intLit(count)});
  std::string params = fill(
      "${T}* __restrict__ w, const ${T}* __restrict__ g, ${T}* __restrict__ m, ${T}* __restrict__ v, "
      "const ${S}* __restrict__ step, u64* __restrict__ status",
      v);
  std::string body = fill(std::string(kAdamPrologue) +
                              "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x) {\n" +
                              adamElement("w", "g", "m", "v", "i", "    ") + "  }\n",
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

// ---- horizontal fusion of optimizer updates -----------------------------------------------

bool updatesFuse(const Node& a, const Node& b) {
  if (a.kind() != b.kind() || a.numInputs() != b.numInputs()) return false;
  const DType dt = a.input(0)->type().dtype;
  if (!isFloat(dt)) return false;
  for (const Node* n : {&a, &b})
    for (size_t i = 0; i < (n->kind() == OpKind::AdamUpdate ? 4u : n->numInputs()); ++i)
      if (n->input(i)->type().dtype != dt) return false;
  auto same = [&](const char* attr) { return a.attrs().getFloat(attr) == b.attrs().getFloat(attr); };
  if (a.kind() == OpKind::AdamUpdate)
    return a.input(4) == b.input(4) && same("lr") && same("beta1") && same("beta2") && same("eps") &&
           same("weight_decay");
  if (a.kind() == OpKind::SgdUpdate) return same("lr") && same("momentum") && same("weight_decay");
  return false;
}

// One grid-stride loop over the concatenated elements of every member's parameter; an element
// finds its parameter by comparing against the (compile-time) segment ends, then runs exactly
// the per-parameter kernel's statements on that parameter's pointers.
Expected<void> emitUpdateGroup(const std::vector<NodeEmitter*>& group) {
  NodeEmitter& first = *group.front();
  const Node& n0 = first.node();
  const bool adam = n0.kind() == OpKind::AdamUpdate;
  const bool velocity = !adam && n0.numInputs() == 3;
  const bool momentum = !adam && n0.attrs().getFloat("momentum") != 0;
  if (!adam && momentum && !velocity) return first.unsupported("momentum needs a velocity operand");
  for (NodeEmitter* em : group) em->comment();
  int site = -1;
  for (NodeEmitter* em : group) {  // every member keeps its site, so the status layout is the same
    int s = adam ? em->errorSite(CudaErrorKind::AdamStep) : -1;
    if (site < 0) site = s;
  }
  int64_t total = 0;
  std::vector<int64_t> ends;
  for (NodeEmitter* em : group) {
    total += em->node().input(0)->type().numElements();
    ends.push_back(total);
  }
  Vars v = adam ? adamVars(first, site) : sgdVars(first);
  const std::string I = indexType(total);
  v.push_back({"I", I});
  v.push_back({"N", intLit(total)});
  std::string params;
  std::vector<CudaArg> args;
  for (size_t k = 0; k < group.size(); ++k) {
    const std::string s = std::to_string(k);
    NodeEmitter& em = *group[k];
    if (adam) {
      params += fill("${T}* __restrict__ w" + s + ", const ${T}* __restrict__ g" + s + ", ${T}* __restrict__ m" + s +
                         ", ${T}* __restrict__ v" + s + ", ",
                     v);
      for (size_t i = 0; i < 4; ++i) args.push_back(em.in(i));
    } else {
      params += fill("${T}* __restrict__ w" + s + ", const ${T}* __restrict__ g" + s + ", ", v);
      args.push_back(em.in(0));
      args.push_back(em.in(1));
      if (velocity) {
        params += fill("${T}* __restrict__ vel" + s + ", ", v);
        args.push_back(em.in(2));
      }
    }
  }
  if (adam) {
    params += fill("const ${S}* __restrict__ step, u64* __restrict__ status", v);
    args.push_back(first.in(4));
  } else {
    params += "const u64* __restrict__ status";
  }
  args.push_back(NodeEmitter::status());
  std::string loop = "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x) {\n";
  struct Segment {
    size_t member;
    int64_t begin, end;
  };
  std::vector<Segment> segments;  // members with elements, in order
  for (size_t k = 0, begin = 0; k < group.size(); begin = size_t(ends[k]), ++k)
    if (ends[k] > int64_t(begin)) segments.push_back({k, int64_t(begin), ends[k]});
  for (size_t x = 0; x < segments.size(); ++x) {
    const Segment& seg = segments[x];
    const std::string s = std::to_string(seg.member);
    const bool only = segments.size() == 1, last = x + 1 == segments.size();
    loop += only ? "    {\n" : x == 0 ? "    if (i < " + intLit(seg.end) + ") {\n"
                             : last   ? "    } else {\n"
                                      : "    } else if (i < " + intLit(seg.end) + ") {\n";
    loop += "      const ${I} j = i" + (seg.begin ? " - " + intLit(seg.begin) : std::string()) + ";\n";
    loop += adam ? adamElement("w" + s, "g" + s, "m" + s, "v" + s, "j", "      ")
                 : sgdElement(v, momentum, "w" + s, "g" + s, "vel" + s, "j", "      ");
  }
  if (!segments.empty()) loop += "    }\n";
  loop += "  }\n";
  std::string body =
      adam ? std::string(kAdamPrologue) + loop
           : "  if (status[0] != 0) return;  // an earlier kernel of this step reported an error: update nothing\n" + loop;
  first.kernel("x" + std::to_string(group.size()), params, fill(body, v), std::move(args), gridFor(total));
  return {};
}

// ---- fused activations and elementwise chains -------------------------------------------

std::string activationCode(std::string_view act, const std::string& T, const std::string& src, const std::string& dst,
                           const std::string& indent) {
  auto kind = opKindFromName(act);
  if (!kind || !isElementwise(*kind) || opInfo(*kind).minInputs != 1 || !opInfo(*kind).formulaParams.empty()) return "";
  return indent + dst + " = shoal_ew_" + std::string(act) + "(" + src + ");\n";
}

// One thread per element: every operand is loaded first (the result may share an operand's
// buffer, so nothing is written before all of an element's reads), then the postfix program
// runs as straight-line C on registers, each op by its formula's device function.
Expected<void> emitFusedElementwise(NodeEmitter& em) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  const int64_t count = n.result()->type().numElements();
  if (!isFloat(dt)) return em.unsupported("fused_elementwise needs float operands");
  for (Value* in : n.inputs())
    if (in->type().dtype != dt || in->type().numElements() != count)
      return em.unsupported("fused_elementwise operands must share the result's type");
  auto program = parseElementwiseExpr(n.attrs().getString("expr"), int(n.numInputs()));
  if (!program) return em.unsupported(program.error().message());
  const std::string& T = em.T();
  std::vector<bool> used(n.numInputs(), false);
  for (const ExprInstr& op : *program)
    if (op.kind == ExprInstr::Kind::Operand) used[size_t(op.operand)] = true;
  std::string code;
  for (size_t k = 0; k < n.numInputs(); ++k)
    if (used[k]) code += fill("    const ${T} r${K} = a${K}[i];\n", {{"T", T}, {"K", std::to_string(k)}});
  std::vector<std::string> stack;
  int temps = 0;
  for (const ExprInstr& op : *program) {
    switch (op.kind) {
      case ExprInstr::Kind::Operand: stack.push_back("r" + std::to_string(op.operand)); continue;
      case ExprInstr::Kind::Constant: stack.push_back("(" + literal(op.constant, dt) + ")"); continue;
      case ExprInstr::Kind::Op: break;
    }
    const int arity = op.arity();
    if (int(stack.size()) < arity) return em.unsupported("malformed fused expression");
    std::vector<std::string> operands(stack.end() - arity, stack.end());
    stack.resize(stack.size() - size_t(arity));
    const std::string t = "t" + std::to_string(temps++);
    code += fill("    const ${T} ${R} = ", {{"T", T}, {"R", t}}) + formulaCall(op.op, operands, op.params, dt) + ";\n";
    stack.push_back(t);
  }
  if (stack.size() != 1) return em.unsupported("malformed fused expression");
  code += "    y[i] = " + stack.back() + ";\n";
  std::string params;
  std::vector<CudaArg> args;
  for (size_t k = 0; k < n.numInputs(); ++k) {
    params += fill("const ${T}* __restrict__ a${K}, ", {{"T", T}, {"K", std::to_string(k)}});
    args.push_back(em.in(k));
  }
  params += fill("${T}* __restrict__ y", {{"T", T}});
  args.push_back(em.out());
  em.elementwise("", params, code, std::move(args), count);
  return {};
}

}  // namespace shoal::cudagen
