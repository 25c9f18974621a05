// Layer constructors shared by the pipeline lowering and the C++ builder.
#include "frontend/layers.h"

#include <fmt/format.h>

#include "ir/shape_inference.h"
#include "ir/verifier.h"

namespace shoal::layers {

Expected<Value*> addOp(Graph& g, OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& name,
                       const Location& loc) {
  std::vector<ResultSpec> results;
  for (int i = 0; i < opInfo(kind).numResults; ++i) results.push_back({name, TensorType{}});
  Node* n = g.addNode(kind, std::move(inputs), std::move(attrs), std::move(results), loc);
  fillDefaultAttrs(*n);
  DiagnosticEngine diags;
  if (!verifyNodeStructure(*n, diags)) {
    Error e = diags.firstError();
    g.eraseNode(n);
    return Unexpected(e);
  }
  auto types = inferResultTypes(*n);
  if (!types) {
    g.eraseNode(n);
    return Unexpected(types.error());
  }
  for (size_t i = 0; i < n->numResults(); ++i) n->result(i)->setType((*types)[i]);
  return n->numResults() ? n->result() : nullptr;
}

Value* input(Graph& g, const std::string& name, TensorType type, const Location& loc) {
  Attrs a;
  a.set("name", name);
  return g.addNode(OpKind::Input, {}, std::move(a), {{name, std::move(type)}}, loc)->result();
}

Value* param(Graph& g, const std::string& name, TensorType type, const std::string& init, const Location& loc) {
  Attrs a;
  a.set("init", init);
  Node* n = g.addNode(OpKind::Param, {}, std::move(a), {{name, std::move(type)}}, loc);
  fillDefaultAttrs(*n);
  return n->result();
}

Value* constant(Graph& g, const std::string& name, DType dtype, TensorLiteral value, const Location& loc) {
  TensorType t{dtype, value.shape};
  Attrs a;
  a.set("value", std::move(value));
  return g.addNode(OpKind::Constant, {}, std::move(a), {{name, t}}, loc)->result();
}

void output(Graph& g, Value* v, const std::string& name, const Location& loc) {
  Attrs a;
  a.set("name", name);
  g.addNode(OpKind::Output, {v}, std::move(a), {}, loc);
}

bool isActivationName(const std::string& name) {
  return name.empty() || name == "none" || name == "linear" || name == "relu" || name == "sigmoid" || name == "tanh" ||
         name == "softmax" || name == "log_softmax";
}

Expected<Value*> activation(Graph& g, Value* x, const std::string& act, const std::string& name, const Location& loc) {
  if (act.empty() || act == "none" || act == "linear") return x;
  OpKind k;
  if (act == "relu") k = OpKind::Relu;
  else if (act == "sigmoid") k = OpKind::Sigmoid;
  else if (act == "tanh") k = OpKind::Tanh;
  else if (act == "softmax") k = OpKind::Softmax;
  else if (act == "log_softmax") k = OpKind::LogSoftmax;
  else return fail(fmt::format("unknown activation '{}' (expected relu, sigmoid, tanh, softmax, log_softmax or none)", act), loc);
  return addOp(g, k, {x}, {}, name, loc);
}

Expected<void> checkConvSpec(const std::string& who, const Conv2dSpec& s, const Value* x, const Location& loc) {
  if (s.filters <= 0) return fail(fmt::format("{}: filters must be positive, got {}", who, s.filters), loc);
  if (s.kernelH <= 0 || s.kernelW <= 0)
    return fail(fmt::format("{}: kernel must be positive, got {}x{}", who, s.kernelH, s.kernelW), loc);
  if (s.strideH <= 0 || s.strideW <= 0)
    return fail(fmt::format("{}: stride must be positive, got {}x{}", who, s.strideH, s.strideW), loc);
  if (s.dilationH <= 0 || s.dilationW <= 0)
    return fail(fmt::format("{}: dilation must be positive, got {}x{}", who, s.dilationH, s.dilationW), loc);
  if (s.groups <= 0) return fail(fmt::format("{}: groups must be positive, got {}", who, s.groups), loc);
  const Shape& xs = x->type().shape;
  if (xs.size() != 4)
    return fail(fmt::format("{}: input must be NCHW (rank 4), got {}", who, x->type().str()), loc);
  if (xs[1] % s.groups != 0 || s.filters % s.groups != 0)
    return fail(fmt::format("{}: groups={} must divide the input's {} channels and the {} filters", who, s.groups,
                            xs[1], s.filters),
                loc);
  return {};
}

Expected<Value*> conv2d(Graph& g, Value* x, const std::string& id, const Conv2dSpec& s, const Location& loc) {
  const std::string who = "conv2d '" + id + "'";
  if (!isActivationName(s.activation)) return activation(g, x, s.activation, id, loc);
  if (auto ok = checkConvSpec(who, s, x, loc); !ok) return Unexpected(ok.error());
  const Shape& xs = x->type().shape;
  std::vector<int64_t> pad;
  if (s.padding == "valid") pad = {0, 0, 0, 0};
  else if (s.padding == "same")
    pad = samePadding(xs[2], xs[3], s.kernelH, s.kernelW, s.strideH, s.strideW, s.dilationH, s.dilationW);
  else if (s.padding == "explicit") pad = s.explicitPadding;
  else return fail(fmt::format("{}: padding must be valid, same, or numbers, got '{}'", who, s.padding), loc);
  DType dt = x->type().dtype;
  Value* w = param(g, id + ".weight", {dt, {s.filters, xs[1] / s.groups, s.kernelH, s.kernelW}}, "glorot_uniform", loc);
  std::vector<Value*> ins = {x, w};
  if (s.bias) ins.push_back(param(g, id + ".bias", {dt, {s.filters}}, "zeros", loc));
  Attrs a;
  a.set("stride", std::vector<int64_t>{s.strideH, s.strideW});
  a.set("padding", pad);
  a.set("dilation", std::vector<int64_t>{s.dilationH, s.dilationW});
  a.set("groups", s.groups);
  bool hasAct = !(s.activation.empty() || s.activation == "none" || s.activation == "linear");
  auto y = addOp(g, OpKind::Conv2d, ins, a, hasAct ? id + ".conv" : id, loc);
  if (!y) return y;
  return activation(g, *y, s.activation, id, loc);
}

Expected<Value*> dense(Graph& g, Value* x, const std::string& id, int64_t units, bool bias, const std::string& act,
                       const Location& loc) {
  const std::string who = "dense '" + id + "'";
  if (units <= 0) return fail(fmt::format("{}: units must be positive, got {}", who, units), loc);
  if (!isActivationName(act)) return activation(g, x, act, id, loc);
  const int64_t rank = x->type().rank();
  if (rank != 2 && rank != 3)
    return fail(fmt::format("{}: input must be [batch, features] or [batch, tokens, features], got {} (add a flatten "
                            "before it)",
                            who, x->type().str()),
                loc);
  DType dt = x->type().dtype;
  if (!isFloat(dt)) return fail(fmt::format("{}: input must be f32 or f64, got {}", who, x->type().str()), loc);
  const Shape xs = x->type().shape;
  const int64_t in = xs.back();
  Value* w = param(g, id + ".weight", {dt, {units, in}}, "glorot_uniform", loc);
  std::vector<Value*> ins = {x, w};
  if (bias) ins.push_back(param(g, id + ".bias", {dt, {units}}, "zeros", loc));
  bool hasAct = !(act.empty() || act == "none" || act == "linear");
  if (rank == 2) {
    auto y = addOp(g, OpKind::Dense, ins, {}, hasAct ? id + ".dense" : id, loc);
    if (!y) return y;
    return activation(g, *y, act, id, loc);
  }
  // [batch, tokens, features]: the op is rank 2, so the layer applies it to the rows of a
  // [batch·tokens, features] view and views the result back (torch.nn.Linear over the last
  // axis). The reshapes write the batch as -1, so the graph follows a new batch size; they are
  // views, which the memory planner aliases (nothing is copied).
  Attrs rows, back;
  rows.set("shape", std::vector<int64_t>{-1, in});
  back.set("shape", std::vector<int64_t>{-1, xs[1], units});
  auto flat = addOp(g, OpKind::Reshape, {x}, rows, id + ".rows", loc);
  if (!flat) return flat;
  ins[0] = *flat;
  auto y = addOp(g, OpKind::Dense, ins, {}, id + ".dense", loc);
  if (!y) return y;
  auto a = activation(g, *y, act, id + ".act", loc);
  if (!a) return a;
  return addOp(g, OpKind::Reshape, {*a}, back, id, loc);
}

Expected<Value*> pool2d(Graph& g, OpKind kind, Value* x, const std::string& id, std::vector<int64_t> kernel,
                        std::vector<int64_t> stride, std::vector<int64_t> padding, const Location& loc, bool ceilMode,
                        bool countIncludePad) {
  if (stride.empty()) stride = kernel;
  if (padding.empty()) padding = {0, 0, 0, 0};
  Attrs a;
  a.set("kernel", kernel);
  a.set("stride", stride);
  a.set("padding", padding);
  a.set("ceil_mode", int64_t(ceilMode));
  if (kind == OpKind::AvgPool2d) a.set("count_include_pad", int64_t(countIncludePad));
  return addOp(g, kind, {x}, a, id, loc);
}

}  // namespace shoal::layers
