// CUDA codegen, elementwise family: every elementwise op of ir/ops.def (its formula, with
// broadcasting), fused_elementwise, cast, normalize and mse_grad.
#include <fmt/format.h>

#include "codegen/cuda_emit.h"
#include "ir/elementwise.h"
#include "ir/shape_geometry.h"

namespace shoal::cudagen {

namespace {

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
    for (size_t k = 0; k < count; ++k) r[k] = geometry::alignedExtent(operands[k], d, rank) == 1;
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

namespace {

// The operands of elementwise node em.node() read along their broadcast to its result: each
// one's element expression (prefixed with `cast`), the kernel parameters (each operand in its
// own element type), the index code those expressions need, and the launch arguments.
struct BroadcastOperands {
  std::vector<std::string> exprs;
  std::string params, code;
  std::vector<CudaArg> args;
};

BroadcastOperands broadcastOperands(const NodeEmitter& em, const std::string& cast) {
  const Node& n = em.node();
  const int64_t count = numElements(em.outShape());
  std::vector<Shape> shapes;
  for (size_t i = 0; i < n.numInputs(); ++i) shapes.push_back(em.inShape(i));
  auto plan = planBroadcast(em.outShape(), shapes);
  BroadcastOperands b;
  for (size_t i = 0; i < n.numInputs(); ++i) {
    const std::string name = "a" + std::to_string(i);
    b.exprs.push_back(cast + operandIndex(name, plan[i], numElements(shapes[i]), count, b.code, em.I()));
    b.params += fill("const ${T}* __restrict__ ${A}, ", {{"T", cudaType(n.input(i)->type().dtype)}, {"A", name}});
    b.args.push_back(em.in(i));
  }
  return b;
}

// An elementwise op over integer (or bool) operands, as the interpreter's runIntegerArithmetic
// does it: every operand read as double (exact below 2^53), the op's formula in double, the
// result truncated toward zero and wrapped to the element type (bool: nonzero). A result that
// is not finite can only be an integer division by zero: reported at the first such element,
// which is left unwritten (the interpreter stops there).
Expected<void> emitIntegerElementwise(NodeEmitter& em) {
  const Node& n = em.node();
  const Shape& out = em.outShape();
  const int64_t count = numElements(out);
  const DType rt = n.result()->type().dtype;
  if (isFloat(rt) || storageOnly(rt)) return em.unsupported("integer operands with a floating-point result");
  auto [operands, params, code, args] = broadcastOperands(em, "(double)");
  const int site = em.errorSite(CudaErrorKind::IntegerDivisionByZero);
  params += fill("${T}* __restrict__ y, u64* __restrict__ status", {{"T", cudaType(rt)}});
  args.push_back(em.out());
  args.push_back(NodeEmitter::status());
  code += "    const double v = " + formulaCall(n.kind(), operands, formulaParams(n), DType::F64) + ";\n";
  code += fill("    if (!isfinite(v)) {\n      shoal_report_label(status, ${SITE}, i, 0);\n      continue;\n    }\n",
               {{"SITE", std::to_string(site)}});
  code += rt == DType::Bool ? "    y[i] = v != 0.0;\n" : fill("    y[i] = (${T})(long long)v;\n", {{"T", cudaType(rt)}});
  em.elementwise("", params, code, std::move(args), count);
  return {};
}

}  // namespace

Expected<void> emitElementwise(NodeEmitter& em) {
  const Node& n = em.node();
  const std::string& T = em.T();
  const Shape& out = em.outShape();
  const int64_t count = numElements(out);
  const DType dt = em.computeType();
  if (n.numInputs() > 0 && !isFloat(n.input(0)->type().dtype)) return emitIntegerElementwise(em);
  if (n.result()->type().dtype != dt) return em.unsupported("a result type other than the operands'");
  for (size_t i = 0; i < n.numInputs(); ++i)
    if (n.input(i)->type().dtype != dt) return em.unsupported("operands of different element types");
  auto [operands, params, code, args] = broadcastOperands(em, "");
  params += fill("${T}* __restrict__ y", {{"T", T}});
  args.push_back(em.out());
  code += "    y[i] = " + formulaCall(n.kind(), operands, formulaParams(n), dt) + ";\n";
  // A 16-bit channels-last copy a reader would convert: written here (halfCopyInProducer).
  if (auto copy = claimChannelsLastCopy(em, n.result())) {
    const auto& s = n.result()->type().shape;
    elementwiseWithChannelsLastCopy(em, "", params, code, std::move(args), *copy, s[0], s[1], s[2] * s[3]);
    return {};
  }
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

// An integer type's C name and range (as doubles, as Tensor::set compares them, and as literals).
std::string saturated(const char* type, const char* lo, const char* hi, const char* loLit, const char* hiLit) {
  return fmt::format("(v != v ? ({0})0 : v <= {1} ? ({0}){3} : v >= {2} ? ({0}){4} : ({0})v)", type, lo, hi, loLit,
                     hiLit);
}

// `v` (a double) stored as `to`, as the interpreter's Tensor::set does: floats round (float16
// and bfloat16 to nearest even, support/float16.h), integers truncate toward zero and saturate
// at the type's range (NaN is 0), bool is v != 0.
std::string storeFromDouble(DType to) {
  switch (to) {
    case DType::F32: return "(float)v";
    case DType::F64: return "v";
    case DType::F16: return "shoal_f64_to_f16(v)";
    case DType::BF16: return "shoal_f64_to_bf16(v)";
    case DType::Bool: return "(v != 0.0)";
    case DType::I32: return saturated("int", "-2147483648.0", "2147483647.0", "(-2147483647 - 1)", "2147483647");
    case DType::I64:
      return saturated("long long", "-9223372036854775808.0", "9223372036854775808.0", "(-9223372036854775807LL - 1)",
                       "9223372036854775807LL");
    case DType::U8: return saturated("unsigned char", "0.0", "255.0", "0", "255");
    case DType::I8: return saturated("signed char", "-128.0", "127.0", "-128", "127");
    case DType::I16: return saturated("short", "-32768.0", "32767.0", "-32768", "32767");
    case DType::U16: return saturated("unsigned short", "0.0", "65535.0", "0", "65535");
    case DType::U32: return saturated("unsigned int", "0.0", "4294967295.0", "0u", "4294967295u");
    case DType::U64:
      return saturated("unsigned long long", "0.0", "18446744073709551616.0", "0ULL", "18446744073709551615ULL");
  }
  return "v";
}

std::string loadAsDouble(DType from) {
  switch (from) {
    case DType::F16: return "(double)shoal_f16_to_f32(x[i])";
    case DType::BF16: return "(double)shoal_bf16_to_f32(x[i])";
    default: return "(double)x[i]";
  }
}

}  // namespace

Expected<void> emitCast(NodeEmitter& em) {
  const Node& n = em.node();
  DType from = n.input(0)->type().dtype, to = n.result()->type().dtype;
  if (from == to) {
    em.copy(n.input(0), n.result());
    return {};
  }
  // Through double, like the interpreter's Tensor::set(i, src.at(i)).
  em.elementwise("", fill("const ${A}* __restrict__ x, ${B}* __restrict__ y", {{"A", cudaType(from)}, {"B", cudaType(to)}}),
                 "    const double v = " + loadAsDouble(from) + ";\n    y[i] = " + storeFromDouble(to) + ";\n",
                 {em.in(0), em.out()}, n.result()->type().numElements());
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

// ---- fused activations and elementwise chains -------------------------------------------

std::string activationCode(std::string_view act, const std::string& T, const std::string& src, const std::string& dst,
                           const std::string& indent) {
  auto kind = opKindFromName(act);
  if (!kind || !isElementwise(*kind) || opInfo(*kind).minInputs != 1 || !opInfo(*kind).formulaParams.empty()) return "";
  return indent + dst + " = shoal_ew_" + std::string(act) + "(" + src + ");\n";
}

Expected<std::string> elementwiseProgramCode(const std::vector<ExprInstr>& program, DType dt, const std::string& indent,
                                             std::string& code) {
  const std::string T = cudaType(dt);
  std::vector<std::string> stack;
  int temps = 0;
  for (const ExprInstr& op : program) {
    switch (op.kind) {
      case ExprInstr::Kind::Operand: stack.push_back("r" + std::to_string(op.operand)); continue;
      case ExprInstr::Kind::Constant: stack.push_back("(" + literal(op.constant, dt) + ")"); continue;
      case ExprInstr::Kind::Op: break;
    }
    const int arity = op.arity();
    if (int(stack.size()) < arity) return fail("malformed fused expression");
    std::vector<std::string> operands(stack.end() - arity, stack.end());
    stack.resize(stack.size() - size_t(arity));
    const std::string t = "t" + std::to_string(temps++);
    code += indent + fill("const ${T} ${R} = ", {{"T", T}, {"R", t}}) + formulaCall(op.op, operands, op.params, dt) + ";\n";
    stack.push_back(t);
  }
  if (stack.size() != 1) return fail("malformed fused expression");
  return stack.back();
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
    if (in->type().numElements() != count)
      return em.unsupported("fused_elementwise operands must share the result's shape");
  auto program = parseElementwiseExpr(n.attrs().getString("expr"), int(n.numInputs()));
  if (!program) return em.unsupported(program.error().message());
  const std::string& T = em.T();
  std::vector<bool> used(n.numInputs(), false);
  for (const ExprInstr& op : *program)
    if (op.kind == ExprInstr::Kind::Operand) used[size_t(op.operand)] = true;
  std::string code;
  for (size_t k = 0; k < n.numInputs(); ++k)
    if (used[k])  // an operand of another type (a folded cast) converts as cast's kernel does
      code += fill(n.input(k)->type().dtype == dt ? "    const ${T} r${K} = a${K}[i];\n" : "    const ${T} r${K} = (${T})a${K}[i];\n",
                   {{"T", T}, {"K", std::to_string(k)}});
  auto result = elementwiseProgramCode(*program, dt, "    ", code);
  if (!result) return em.unsupported(result.error().message());
  code += "    y[i] = " + *result + ";\n";
  std::string params;
  std::vector<CudaArg> args;
  for (size_t k = 0; k < n.numInputs(); ++k) {
    params += fill("const ${T}* __restrict__ a${K}, ", {{"T", cudaType(n.input(k)->type().dtype)}, {"K", std::to_string(k)}});
    args.push_back(em.in(k));
  }
  params += fill("${T}* __restrict__ y", {{"T", T}});
  args.push_back(em.out());
  if (auto copy = claimChannelsLastCopy(em, n.result())) {  // (see emitElementwise)
    const auto& s = n.result()->type().shape;
    elementwiseWithChannelsLastCopy(em, "", params, code, std::move(args), *copy, s[0], s[1], s[2] * s[3]);
    return {};
  }
  em.elementwise("", params, code, std::move(args), count);
  return {};
}

}  // namespace shoal::cudagen
