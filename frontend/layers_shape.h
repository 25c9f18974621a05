// Layer constructors of the shape family, shared by the pipeline lowering and the C++ builder:
// split (slices), embedding (a gather from a weight), scaled dot-product attention and
// multi-head attention (compositions of batch_matmul, causal_mask, softmax, dense, reshape,
// transpose), each adding its ops to a graph with shapes inferred as it goes.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace shoal::layers {

/// x cut along `axis` into consecutive parts of `sizes` (which must add up to the axis) or,
/// with `sizes` empty, into `parts` equal parts (torch.split / torch.chunk with an exact
/// divisor). Lowered to slices named `<id>.0`, `<id>.1`, ...: the IR keeps one result per op.
Expected<std::vector<Value*>> split(Graph& g, Value* x, const std::string& id, int64_t axis,
                                    const std::vector<int64_t>& sizes, int64_t parts, const Location& loc);

/// An embedding table `<id>.weight` [vocab, dim] (Keras's uniform ±0.05 initialisation) read
/// at integer `ids` of any shape: the result is ids.shape + [dim] (torch.nn.Embedding).
Expected<Value*> embedding(Graph& g, Value* ids, const std::string& id, int64_t vocab, int64_t dim, const Location& loc);

/// Learned positions: a parameter `<id>.weight` [tokens, dim] (uniform ±0.05, as `embedding`)
/// added to x [batch, tokens, dim], broadcast over the batch (a ViT's `x + pos_embed`).
/// `tokens` and `dim` (when positive) must match x; 0 takes them from x.
Expected<Value*> positionEmbedding(Graph& g, Value* x, const std::string& id, int64_t tokens, int64_t dim,
                                   const Location& loc);

/// softmax(scale · q kᵀ [+ causal mask]) v over q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]
/// (batch axes broadcast), as torch.nn.functional.scaled_dot_product_attention without
/// dropout; `scale` <= 0 means 1/sqrt(D). The causal mask hides key j from query i when j > i.
Expected<Value*> scaledDotProductAttention(Graph& g, Value* q, Value* k, Value* v, const std::string& id, bool causal,
                                           double scale, const Location& loc);

/// torch.nn.MultiheadAttention(E, heads, batch_first=True) over query [B, Tq, E] and key, value
/// [B, Tk, E] (the same value for self-attention), with its parameters and their PyTorch names:
/// `<id>.in_proj_weight` [3E, E], `<id>.in_proj_bias` [3E], `<id>.out_proj.weight` [E, E],
/// `<id>.out_proj.bias` [E] (biases only when `bias`). Returns the attention output [B, Tq, E]
/// (not the averaged weights).
Expected<Value*> multiHeadAttention(Graph& g, Value* query, Value* key, Value* value, const std::string& id,
                                    int64_t heads, bool causal, bool bias, const Location& loc);

}  // namespace shoal::layers
