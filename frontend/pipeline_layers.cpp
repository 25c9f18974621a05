// The op families' pipeline layers (norms, transposed convolution and adaptive pooling, split,
// permute, embeddings, attention, gelu, where): each lowers one Mermaid node to IR ops through
// frontend/layers*.h, reporting bad arguments at the argument. Declared in the family blocks of
// Lowering (frontend/pipeline_lowering.h); the layer table is in frontend/pipeline_loader.cpp.
#include <fmt/format.h>

#include <algorithm>

#include "frontend/layers.h"
#include "frontend/layers_conv.h"
#include "frontend/layers_shape.h"
#include "frontend/pipeline_lowering.h"
#include "ir/shape_inference.h"

namespace shoal::pipeline_lowering {

// ---- the op families' lowering functions (declared in the family blocks of Lowering) ----

// ==== family elementwise: elementwise math, comparisons, where, reductions ====

// `gelu` (PyTorch's exact GELU) or `gelu: approximate=tanh` (gelu_tanh), as nn.GELU spells it.
void Lowering::lowerGelu(PNode& p, std::vector<Value*>& ins) {
  Value* x = needOne(p, ins);
  if (!x) return;
  auto approximate = stringArg(p, "approximate", "none");
  if (!approximate) return void(p.poisoned = true);
  if (*approximate != "none" && *approximate != "tanh")
    return badArg(*arg(p, "approximate"), "none or tanh"), void(p.poisoned = true);
  OpKind kind = *approximate == "tanh" ? OpKind::GeluTanh : OpKind::Gelu;
  p.value = fromResult(p, layers::addOp(*pipe_.model, kind, {x}, {}, p.decl->id, p.loc));
}

// where(cond, a, b): the edges say which input is which (cond/condition/mask; a/x/lhs/true;
// b/y/rhs/false); unlabelled edges fill the remaining places in edge order.
void Lowering::lowerWhere(PNode& p, std::vector<Value*>& ins) {
  const std::string& id = p.decl->id;
  std::vector<Value*> slots(3, nullptr);
  std::vector<Value*> unlabelled;
  for (const mermaid::Edge* e : p.inEdges) {
    const PNode& src = nodes_[e->from];
    if (!src.value) continue;
    int slot = -1;
    if (e->hasLabel && src.role != Role::Decision) {
      const std::string l = lower(e->label);
      if (l == "cond" || l == "condition" || l == "mask" || l == "c") slot = 0;
      else if (l == "a" || l == "x" || l == "lhs" || l == "true" || l == "then") slot = 1;
      else if (l == "b" || l == "y" || l == "rhs" || l == "false" || l == "else") slot = 2;
      else
        return error(e->labelLoc.known() ? e->labelLoc : p.loc,
                     fmt::format("where '{}': edge label '{}' names no operand (cond, a or b)", id, e->label)),
               void(p.poisoned = true);
    }
    if (slot < 0) {
      unlabelled.push_back(src.value);
      continue;
    }
    if (slots[size_t(slot)] && slots[size_t(slot)] != src.value)
      return error(p.loc, fmt::format("where '{}': two edges name operand {}", id, slot == 0 ? "cond" : slot == 1 ? "a" : "b")),
             void(p.poisoned = true);
    slots[size_t(slot)] = src.value;
  }
  for (Value*& s : slots)
    if (!s && !unlabelled.empty()) {
      s = unlabelled.front();
      unlabelled.erase(unlabelled.begin());
    }
  if (!slots[0] || !slots[1] || !slots[2] || !unlabelled.empty())
    return error(p.loc, fmt::format("where '{}' takes three inputs (label the edges cond, a and b), got {}", id,
                                    ins.size())),
           void(p.poisoned = true);
  p.value = fromResult(p, layers::addOp(*pipe_.model, OpKind::Where, slots, {}, id, p.loc));
}
// (end of family elementwise)

// ==== family norm: normalisation, dropout ====

Value* Lowering::normInput(PNode& p, const std::vector<Value*>& ins, int64_t minRank) {
  Value* x = needOne(p, ins);
  if (!x) return nullptr;
  const TensorType& t = x->type();
  if (!isFloat(t.dtype) || t.rank() < minRank) {
    error(p.loc, fmt::format("{} '{}': input must be a float tensor {}, got {}", p.op, p.decl->id,
                             minRank >= 2 ? "[N, C, ...]" : "of rank >= 1", t.str()));
    p.poisoned = true;
    return nullptr;
  }
  return x;
}

Value* Lowering::addState(const std::string& name, TensorType type, const std::string& init, const Location& loc) {
  Attrs a;
  a.set("init", init);
  return pipe_.model->addNode(OpKind::State, {}, std::move(a), {{name, std::move(type)}}, loc)->result();
}

// bn[batchnorm: momentum=0.1 eps=1e-5 affine=true]: params <id>.weight (ones) and <id>.bias
// (zeros), state <id>.running_mean (zeros), <id>.running_var (ones) and
// <id>.num_batches_tracked (i64), PyTorch's BatchNorm names, so checkpoints interoperate.
void Lowering::lowerBatchNorm(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  auto momentum = floatArg(p, "momentum", 0.1);
  auto eps = floatArg(p, "eps", 1e-5);
  auto affine = boolArg(p, "affine", true);
  if (!momentum || !eps || !affine) return void(p.poisoned = true);
  Value* x = normInput(p, ins, 2);
  if (!x) return;
  const DType dt = x->type().dtype;
  const Shape c{x->type().shape[1]};
  std::vector<Value*> operands = {x, addState(id + ".running_mean", {dt, c}, "zeros", p.loc),
                                  addState(id + ".running_var", {dt, c}, "ones", p.loc)};
  addState(id + ".num_batches_tracked", {DType::I64, {}}, "zeros", p.loc);
  if (*affine) {
    operands.push_back(layers::param(g, id + ".weight", {dt, c}, "ones", p.loc));
    operands.push_back(layers::param(g, id + ".bias", {dt, c}, "zeros", p.loc));
  }
  Attrs a;
  a.set("momentum", *momentum);
  a.set("eps", *eps);
  p.value = fromResult(p, layers::addOp(g, OpKind::BatchNorm, operands, a, id, p.loc));
}

// ln[layernorm: dims=1 eps=1e-5 affine=true] over the last `dims` extents (or shape=AxB, the
// normalized shape itself); params <id>.weight (ones) and <id>.bias (zeros) of that shape.
void Lowering::lowerLayerNorm(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  auto dims = intArg(p, "dims", 1);
  auto eps = floatArg(p, "eps", 1e-5);
  auto affine = boolArg(p, "affine", true);
  if (!dims || !eps || !affine) return void(p.poisoned = true);
  Value* x = normInput(p, ins, 1);
  if (!x) return;
  const Shape& xs = x->type().shape;
  if (const LabelArg* shape = arg(p, "shape")) {
    Shape want;
    if (auto* i = std::get_if<int64_t>(&shape->value)) want = {*i};
    else if (auto* is = std::get_if<std::vector<int64_t>>(&shape->value)) want = *is;
    bool trailing = !want.empty() && want.size() <= xs.size() &&
                    std::equal(want.begin(), want.end(), xs.end() - ptrdiff_t(want.size()));
    if (arg(p, "dims")) {
      error(shape->loc, fmt::format("layernorm '{}' takes dims or shape, not both", id));
      return void(p.poisoned = true);
    }
    if (!trailing) {
      badArg(*shape,
             fmt::format("the last extents of the input {} (like {})", x->type().str(), shapeString({xs.back()})));
      return void(p.poisoned = true);
    }
    *dims = int64_t(want.size());
  }
  if (*dims > int64_t(xs.size())) {
    badArg(*arg(p, "dims"), fmt::format("at most the rank of the input {}", x->type().str()));
    return void(p.poisoned = true);
  }
  const Shape norm(xs.end() - *dims, xs.end());
  std::vector<Value*> operands = {x};
  if (*affine) {
    operands.push_back(layers::param(g, id + ".weight", {x->type().dtype, norm}, "ones", p.loc));
    operands.push_back(layers::param(g, id + ".bias", {x->type().dtype, norm}, "zeros", p.loc));
  }
  Attrs a;
  a.set("dims", *dims);
  a.set("eps", *eps);
  p.value = fromResult(p, layers::addOp(g, OpKind::LayerNorm, operands, a, id, p.loc));
}

// gn[groupnorm: groups=8 eps=1e-5 affine=true]: params <id>.weight (ones), <id>.bias (zeros) [C].
void Lowering::lowerGroupNorm(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  if (!arg(p, "groups")) {
    error(p.label.opLoc, fmt::format("groupnorm '{}' needs groups=N", id));
    return void(p.poisoned = true);
  }
  auto groups = intArg(p, "groups", 1);
  auto eps = floatArg(p, "eps", 1e-5);
  auto affine = boolArg(p, "affine", true);
  if (!groups || !eps || !affine) return void(p.poisoned = true);
  Value* x = normInput(p, ins, 2);
  if (!x) return;
  const int64_t c = x->type().shape[1];
  if (c % *groups != 0) {
    badArg(*arg(p, "groups"), fmt::format("a divisor of the {} channels of the input {}", c, x->type().str()));
    return void(p.poisoned = true);
  }
  std::vector<Value*> operands = {x};
  if (*affine) {
    operands.push_back(layers::param(g, id + ".weight", {x->type().dtype, {c}}, "ones", p.loc));
    operands.push_back(layers::param(g, id + ".bias", {x->type().dtype, {c}}, "zeros", p.loc));
  }
  Attrs a;
  a.set("groups", *groups);
  a.set("eps", *eps);
  p.value = fromResult(p, layers::addOp(g, OpKind::GroupNorm, operands, a, id, p.loc));
}

// (end of family norm)

// ==== family conv: convolution and pooling ====

std::optional<std::pair<std::string, std::vector<int64_t>>> Lowering::convPaddingArg(PNode& p) {
  const LabelArg* pad = arg(p, "padding");
  if (!pad) return std::pair<std::string, std::vector<int64_t>>{"valid", {0, 0, 0, 0}};
  if (auto* str = std::get_if<std::string>(&pad->value); str && (*str == "valid" || *str == "same"))
    return std::pair<std::string, std::vector<int64_t>>{*str, {0, 0, 0, 0}};
  if (auto* i = std::get_if<int64_t>(&pad->value); i && *i >= 0)
    return std::pair<std::string, std::vector<int64_t>>{"explicit", {*i, *i, *i, *i}};
  if (auto* is = std::get_if<std::vector<int64_t>>(&pad->value);
      is && (is->size() == 2 || is->size() == 4) && std::all_of(is->begin(), is->end(), [](int64_t v) { return v >= 0; }))
    return std::pair<std::string, std::vector<int64_t>>{
        "explicit", is->size() == 2 ? std::vector<int64_t>{(*is)[0], (*is)[1], (*is)[0], (*is)[1]} : *is};
  badArg(*pad, "valid, same, N, HxW or top,left,bottom,right");
  return std::nullopt;
}

// `u[conv_transpose2d: filters=16 kernel=2x2 stride=2]`: params u.weight [C, filters/groups,
// kh, kw] and u.bias; or, with an edge labelled weight, the bare op over the given weight.
void Lowering::lowerConvTranspose2d(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  const std::string& id = p.decl->id;
  auto stride = pairArg(p, "stride", {1, 1});
  auto dil = pairArg(p, "dilation", {1, 1});
  auto groups = intArg(p, "groups", 1);
  auto padding = convPaddingArg(p);
  std::vector<int64_t> outPad = {0, 0};
  if (const LabelArg* a = arg(p, "output_padding")) {
    auto* i = std::get_if<int64_t>(&a->value);
    auto* is = std::get_if<std::vector<int64_t>>(&a->value);
    if (i && *i >= 0) outPad = {*i, *i};
    else if (is && is->size() == 2 && (*is)[0] >= 0 && (*is)[1] >= 0) outPad = *is;
    else return badArg(*a, "N or HxW, not negative"), void(p.poisoned = true);
  }
  if (!stride || !dil || !groups || !padding) return void(p.poisoned = true);
  if (ins.size() == 2) {
    if (arg(p, "filters") || arg(p, "kernel") || arg(p, "activation") || arg(p, "bias") || padding->first == "same")
      return error(p.label.opLoc, fmt::format("conv_transpose2d '{}' with a weight input takes only stride, explicit "
                                              "padding, output_padding, dilation and groups",
                                              id)),
             void(p.poisoned = true);
    Attrs a;
    a.set("stride", *stride);
    a.set("padding", padding->second);
    a.set("output_padding", outPad);
    a.set("dilation", *dil);
    a.set("groups", *groups);
    p.value = fromResult(p, layers::addOp(g, OpKind::ConvTranspose2d, ins, a, id, p.loc));
    return;
  }
  Value* x = needOne(p, ins);
  if (!x) return;
  if (!arg(p, "filters"))
    return error(p.label.opLoc, fmt::format("conv_transpose2d '{}' needs filters=N", id)), void(p.poisoned = true);
  auto filters = intArg(p, "filters", 0);
  auto kernel = pairArg(p, "kernel", {3, 3});
  auto act = stringArg(p, "activation", "");
  auto bias = boolArg(p, "bias", true);
  if (!filters || !kernel || !act || !bias) return void(p.poisoned = true);
  layers::ConvTranspose2dSpec s;
  s.filters = *filters, s.kernelH = (*kernel)[0], s.kernelW = (*kernel)[1];
  s.strideH = (*stride)[0], s.strideW = (*stride)[1], s.dilationH = (*dil)[0], s.dilationW = (*dil)[1];
  s.groups = *groups, s.padding = padding->first, s.explicitPadding = padding->second, s.outputPadding = outPad;
  s.activation = *act, s.bias = *bias;
  p.value = fromResult(p, layers::convTranspose2d(g, x, id, s, p.loc));
}

// `a[adaptive_avgpool: size=1]`: global average pooling (or a divisible output size).
void Lowering::lowerAdaptiveAvgPool(PNode& p, std::vector<Value*>& ins) {
  Graph& g = *pipe_.model;
  Value* x = needOne(p, ins);
  if (!x) return;
  auto size = pairArg(p, "size", {1, 1});
  if (!size) return void(p.poisoned = true);
  p.value = fromResult(p, layers::adaptiveAvgPool2d(g, x, p.decl->id, (*size)[0], (*size)[1], p.loc));
}

// (end of family conv)

// ==== family shape: shape and data movement, batched matmul, attention ====

// `s[split: axis=1 sizes=2,3]` or `parts=N`: slices `s.0`, `s.1`, ...; each edge out of the
// node picks one (`-->|part 1|`, see operands()).
void Lowering::lowerSplit(PNode& p, std::vector<Value*>& ins) {
  Value* x = needOne(p, ins);
  if (!x) return;
  auto axis = intArg(p, "axis", 0, /*positive=*/false);
  auto parts = intArg(p, "parts", 2);
  std::vector<int64_t> sizes;
  if (const LabelArg* a = arg(p, "sizes")) {
    if (auto* i = std::get_if<int64_t>(&a->value)) sizes = {*i};
    else if (auto* is = std::get_if<std::vector<int64_t>>(&a->value)) sizes = *is;
    else return badArg(*a, "a list of extents like 2,3"), void(p.poisoned = true);
    if (arg(p, "parts")) return error(a->loc, "give sizes or parts, not both"), void(p.poisoned = true);
  }
  if (!axis || !parts) return void(p.poisoned = true);
  auto out = layers::split(*pipe_.model, x, p.decl->id, *axis, sizes, *parts, p.loc);
  if (!out) {
    error(out.error().location().known() ? out.error().location() : p.loc, out.error().message());
    return void(p.poisoned = true);
  }
  p.parts = *out;
}

// `t[permute: perm=0,2,1]`: PyTorch's name for transpose with a permutation.
void Lowering::lowerPermute(PNode& p, std::vector<Value*>& ins) {
  Value* x = needOne(p, ins);
  if (!x) return;
  const LabelArg* a = arg(p, "perm");
  if (!a) return error(p.label.opLoc, fmt::format("permute '{}' needs perm=...", p.decl->id)), void(p.poisoned = true);
  auto perm = attrFromArg(*a, *opInfo(OpKind::Transpose).findAttr("perm"));
  if (!perm) return void(p.poisoned = true);
  Attrs attrs;
  attrs.set("perm", *perm);
  p.value = fromResult(p, layers::addOp(*pipe_.model, OpKind::Transpose, {x}, attrs, p.decl->id, p.loc));
}

// `e[embedding: vocab=1000 dim=64]` over integer ids: param `e.weight` [vocab, dim].
void Lowering::lowerEmbedding(PNode& p, std::vector<Value*>& ins) {
  Value* ids = needOne(p, ins);
  if (!ids) return;
  if (!arg(p, "vocab") || !arg(p, "dim"))
    return error(p.label.opLoc, fmt::format("embedding '{}' needs vocab=N and dim=N", p.decl->id)),
           void(p.poisoned = true);
  auto vocab = intArg(p, "vocab", 0);
  auto dim = intArg(p, "dim", 0);
  if (!vocab || !dim) return void(p.poisoned = true);
  p.value = fromResult(p, layers::embedding(*pipe_.model, ids, p.decl->id, *vocab, *dim, p.loc));
}

// `pos[position_embedding: tokens=16 dim=64]` over [batch, tokens, dim]: adds param
// `pos.weight` [tokens, dim]; tokens and dim are optional (taken from the input), checked when given.
void Lowering::lowerPositionEmbedding(PNode& p, std::vector<Value*>& ins) {
  Value* x = needOne(p, ins);
  if (!x) return;
  auto tokens = intArg(p, "tokens", 0);
  auto dim = intArg(p, "dim", 0);
  if (!tokens || !dim) return void(p.poisoned = true);
  p.value = fromResult(p, layers::positionEmbedding(*pipe_.model, x, p.decl->id, *tokens, *dim, p.loc));
}

// `s[sdpa: causal=true]` with edges q, k, v (labels q/k/v or 0/1/2).
void Lowering::lowerScaledDotProductAttention(PNode& p, std::vector<Value*>& ins) {
  if (ins.size() != 3)
    return error(p.loc, fmt::format("{} '{}' takes q, k and v (label the edges q, k, v), got {} input{}", p.op,
                                    p.decl->id, ins.size(), ins.size() == 1 ? "" : "s")),
           void(p.poisoned = true);
  auto causal = boolArg(p, "causal", false);
  auto scale = floatArg(p, "scale", 0.0);
  if (!causal || !scale) return void(p.poisoned = true);
  if (arg(p, "scale") && *scale <= 0) return badArg(*arg(p, "scale"), "a positive number"), void(p.poisoned = true);
  p.value = fromResult(p, layers::scaledDotProductAttention(*pipe_.model, ins[0], ins[1], ins[2], p.decl->id, *causal,
                                                            *scale, p.loc));
}

// `a[attention: heads=4]`: torch.nn.MultiheadAttention over [batch, tokens, embed]; one input
// (self-attention) or three (query, key, value: labels q/k/v or 0/1/2).
void Lowering::lowerMultiHeadAttention(PNode& p, std::vector<Value*>& ins) {
  if (ins.size() != 1 && ins.size() != 3)
    return error(p.loc, fmt::format("attention '{}' takes one input (self-attention) or three (query, key, value: "
                                    "label the edges q, k, v), got {}",
                                    p.decl->id, ins.size())),
           void(p.poisoned = true);
  if (!arg(p, "heads"))
    return error(p.label.opLoc, fmt::format("attention '{}' needs heads=N", p.decl->id)), void(p.poisoned = true);
  auto heads = intArg(p, "heads", 1);
  auto causal = boolArg(p, "causal", false);
  auto bias = boolArg(p, "bias", true);
  if (!heads || !causal || !bias) return void(p.poisoned = true);
  Value* q = ins[0];
  Value* k = ins.size() == 3 ? ins[1] : q;
  Value* v = ins.size() == 3 ? ins[2] : q;
  p.value = fromResult(p, layers::multiHeadAttention(*pipe_.model, q, k, v, p.decl->id, *heads, *causal, *bias, p.loc));
}

// (end of family shape)

// ==== family train: losses and optimizers ====
// (end of family train)

}  // namespace shoal::pipeline_lowering
