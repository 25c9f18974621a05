// Layer constructors of the shape family: split, embedding, scaled dot-product attention and
// multi-head attention, built from IR ops.
#include "frontend/layers_shape.h"

#include <fmt/format.h>

#include <cmath>

#include "frontend/layers.h"
#include "ir/shape_geometry.h"

namespace shoal::layers {

namespace {

using Ints = std::vector<int64_t>;

Attrs attrsOf(std::initializer_list<std::pair<const char*, AttrValue>> entries) {
  Attrs a;
  for (const auto& [k, v] : entries) a.set(k, v);
  return a;
}

Expected<Value*> reshape(Graph& g, Value* x, Shape shape, const std::string& name, const Location& loc) {
  return addOp(g, OpKind::Reshape, {x}, attrsOf({{"shape", std::move(shape)}}), name, loc);
}

Expected<Value*> transpose(Graph& g, Value* x, Ints perm, const std::string& name, const Location& loc) {
  return addOp(g, OpKind::Transpose, {x}, attrsOf({{"perm", std::move(perm)}}), name, loc);
}

Expected<Value*> slice(Graph& g, Value* x, int64_t axis, int64_t start, int64_t end, const std::string& name,
                       const Location& loc) {
  return addOp(g, OpKind::Slice, {x},
               attrsOf({{"starts", Ints{start}}, {"ends", Ints{end}}, {"axes", Ints{axis}}, {"steps", Ints{1}}}), name,
               loc);
}

#define SHOAL_TRY_LAYER(var, expr)                                 \
  auto var##OrError_ = (expr);                                     \
  if (!var##OrError_) return Unexpected(var##OrError_.error()); \
  Value* var = *var##OrError_

}  // namespace

Expected<std::vector<Value*>> split(Graph& g, Value* x, const std::string& id, int64_t axis,
                                    const std::vector<int64_t>& sizes, int64_t parts, const Location& loc) {
  const std::string who = "split '" + id + "'";
  const Shape& xs = x->type().shape;
  auto a = geometry::normalizeAxis(axis, int64_t(xs.size()));
  if (!a) return fail(who + ": " + a.error().message(), loc);
  const int64_t extent = xs[size_t(*a)];
  std::vector<int64_t> lengths = sizes;
  if (lengths.empty()) {
    if (parts <= 0) return fail(fmt::format("{}: parts must be positive, got {}", who, parts), loc);
    if (extent % parts != 0)
      return fail(fmt::format("{}: axis {} of {} has {} elements, not a multiple of {} parts (give sizes=...)", who, axis,
                              x->type().str(), extent, parts),
                  loc);
    lengths.assign(size_t(parts), extent / parts);
  }
  int64_t total = 0;
  for (int64_t l : lengths) {
    if (l <= 0) return fail(fmt::format("{}: sizes must be positive, got {}", who, l), loc);
    total += l;
  }
  if (total != extent)
    return fail(fmt::format("{}: sizes add up to {}, but axis {} of {} has {}", who, total, axis, x->type().str(), extent),
                loc);
  std::vector<Value*> out;
  int64_t start = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    SHOAL_TRY_LAYER(part, slice(g, x, *a, start, start + lengths[i], id + "." + std::to_string(i), loc));
    out.push_back(part);
    start += lengths[i];
  }
  return out;
}

Expected<Value*> embedding(Graph& g, Value* ids, const std::string& id, int64_t vocab, int64_t dim, const Location& loc) {
  const std::string who = "embedding '" + id + "'";
  if (vocab <= 0 || dim <= 0) return fail(fmt::format("{}: vocab and dim must be positive, got {} and {}", who, vocab, dim), loc);
  const DType t = ids->type().dtype;
  if (t != DType::I64 && t != DType::I32 && t != DType::U8)
    return fail(fmt::format("{}: ids must be integers (i64, i32 or u8), got {}", who, ids->type().str()), loc);
  Value* w = param(g, id + ".weight", {DType::F32, {vocab, dim}}, "uniform", loc);
  return addOp(g, OpKind::Gather, {w, ids}, attrsOf({{"axis", int64_t(0)}}), id, loc);
}

Expected<Value*> positionEmbedding(Graph& g, Value* x, const std::string& id, int64_t tokens, int64_t dim,
                                   const Location& loc) {
  const std::string who = "position_embedding '" + id + "'";
  if (x->type().rank() != 3 || !isFloat(x->type().dtype))
    return fail(fmt::format("{}: input must be float [batch, tokens, dim], got {}", who, x->type().str()), loc);
  const Shape& xs = x->type().shape;
  if ((tokens > 0 && tokens != xs[1]) || (dim > 0 && dim != xs[2]))
    return fail(fmt::format("{}: tokens={} dim={} do not match the input {}", who, tokens > 0 ? tokens : xs[1],
                            dim > 0 ? dim : xs[2], x->type().str()),
                loc);
  Value* w = param(g, id + ".weight", {x->type().dtype, {xs[1], xs[2]}}, "uniform", loc);
  return addOp(g, OpKind::Add, {x, w}, {}, id, loc);
}

Expected<Value*> scaledDotProductAttention(Graph& g, Value* q, Value* k, Value* v, const std::string& id, bool causal,
                                           double scale, const Location& loc) {
  const std::string who = "scaled_dot_product_attention '" + id + "'";
  for (Value* x : {q, k, v})
    if (x->type().rank() < 2)
      return fail(fmt::format("{}: q, k and v must be [..., tokens, features], got {}", who, x->type().str()), loc);
  if (scale <= 0) scale = 1.0 / std::sqrt(double(q->type().shape.back()));
  // The scale is the GEMM's alpha: one pass over the scores fewer than scaling them after.
  SHOAL_TRY_LAYER(scores, addOp(g, OpKind::BatchMatMul, {q, k},
                                attrsOf({{"transpose_b", int64_t(1)}, {"alpha", scale}}), id + ".scores", loc));
  Value* logits = scores;
  if (causal) {
    auto masked = addOp(g, OpKind::CausalMask, {scores}, {}, id + ".masked", loc);
    if (!masked) return masked;
    logits = *masked;
  }
  SHOAL_TRY_LAYER(probs, addOp(g, OpKind::Softmax, {logits}, attrsOf({{"axis", int64_t(-1)}}), id + ".probs", loc));
  return addOp(g, OpKind::BatchMatMul, {probs, v}, {}, id, loc);
}

Expected<Value*> multiHeadAttention(Graph& g, Value* query, Value* key, Value* value, const std::string& id,
                                    int64_t heads, bool causal, bool bias, const Location& loc) {
  const std::string who = "attention '" + id + "'";
  for (Value* x : {query, key, value})
    if (x->type().rank() != 3 || !isFloat(x->type().dtype))
      return fail(fmt::format("{}: inputs must be float [batch, tokens, embed], got {}", who, x->type().str()), loc);
  const Shape& qs = query->type().shape;
  const Shape& ks = key->type().shape;
  const int64_t batch = qs[0], tq = qs[1], e = qs[2], tk = ks[1];
  if (ks[0] != batch || ks[2] != e || value->type().shape != ks || key->type().dtype != query->type().dtype ||
      value->type().dtype != query->type().dtype)
    return fail(fmt::format("{}: key and value must both be {}[{}, tokens, {}], got {} and {}", who,
                            dtypeName(query->type().dtype), batch, e, key->type().str(), value->type().str()),
                loc);
  if (heads <= 0 || e % heads != 0)
    return fail(fmt::format("{}: heads={} must divide the embedding width {}", who, heads, e), loc);
  const int64_t d = e / heads;
  const DType dt = query->type().dtype;
  // PyTorch's parameters and initialisation (xavier_uniform in-projection, zero biases); the
  // out-projection is Glorot-uniform too, the initialisation shoal's dense layers use.
  Value* inW = param(g, id + ".in_proj_weight", {dt, {3 * e, e}}, "glorot_uniform", loc);
  Value* inB = bias ? param(g, id + ".in_proj_bias", {dt, {3 * e}}, "zeros", loc) : nullptr;
  Value* outW = param(g, id + ".out_proj.weight", {dt, {e, e}}, "glorot_uniform", loc);
  Value* outB = bias ? param(g, id + ".out_proj.bias", {dt, {e}}, "zeros", loc) : nullptr;

  // q, k, v as [batch, heads, tokens, d]; head h reads features [h·d, (h+1)·d) of its
  // projection, as PyTorch splits them. Reshapes write the batch as -1 so the graph follows a
  // new batch size (rebatchGraph).
  Value* qkv[3] = {nullptr, nullptr, nullptr};
  const char* names[3] = {".q", ".k", ".v"};
  if (query == key && key == value) {
    // Self-attention: one GEMM for the three projections, one transpose to split them.
    SHOAL_TRY_LAYER(flat, reshape(g, query, {-1, e}, id + ".x", loc));
    std::vector<Value*> ins = {flat, inW};
    if (inB) ins.push_back(inB);
    SHOAL_TRY_LAYER(proj, addOp(g, OpKind::Dense, ins, {}, id + ".qkv", loc));
    SHOAL_TRY_LAYER(split5, reshape(g, proj, {-1, tq, 3, heads, d}, id + ".qkv.heads", loc));
    SHOAL_TRY_LAYER(moved, transpose(g, split5, {2, 0, 3, 1, 4}, id + ".qkv.moved", loc));
    for (int s = 0; s < 3; ++s) {
      SHOAL_TRY_LAYER(part, slice(g, moved, 0, s, s + 1, id + names[s] + ".part", loc));
      SHOAL_TRY_LAYER(squeezed, addOp(g, OpKind::Squeeze, {part}, attrsOf({{"axes", Ints{0}}}), id + names[s], loc));
      qkv[s] = squeezed;
    }
  } else {
    Value* inputs[3] = {query, key, value};
    for (int s = 0; s < 3; ++s) {
      const int64_t tokens = s == 0 ? tq : tk;
      SHOAL_TRY_LAYER(w, slice(g, inW, 0, s * e, (s + 1) * e, id + names[s] + ".weight", loc));
      std::vector<Value*> ins = {nullptr, w};
      SHOAL_TRY_LAYER(flat, reshape(g, inputs[s], {-1, e}, id + names[s] + ".x", loc));
      ins[0] = flat;
      if (inB) {
        SHOAL_TRY_LAYER(b, slice(g, inB, 0, s * e, (s + 1) * e, id + names[s] + ".bias", loc));
        ins.push_back(b);
      }
      SHOAL_TRY_LAYER(proj, addOp(g, OpKind::Dense, ins, {}, id + names[s] + ".proj", loc));
      SHOAL_TRY_LAYER(split4, reshape(g, proj, {-1, tokens, heads, d}, id + names[s] + ".heads", loc));
      SHOAL_TRY_LAYER(moved, transpose(g, split4, {0, 2, 1, 3}, id + names[s], loc));
      qkv[s] = moved;
    }
  }
  SHOAL_TRY_LAYER(attn, scaledDotProductAttention(g, qkv[0], qkv[1], qkv[2], id + ".attention", causal, 0.0, loc));
  SHOAL_TRY_LAYER(merged, transpose(g, attn, {0, 2, 1, 3}, id + ".merged", loc));
  SHOAL_TRY_LAYER(flatOut, reshape(g, merged, {-1, e}, id + ".merged.flat", loc));
  std::vector<Value*> outIns = {flatOut, outW};
  if (outB) outIns.push_back(outB);
  SHOAL_TRY_LAYER(out, addOp(g, OpKind::Dense, outIns, {}, id + ".out", loc));
  return reshape(g, out, {-1, tq, e}, id, loc);
}

#undef SHOAL_TRY_LAYER

}  // namespace shoal::layers
