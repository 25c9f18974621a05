// fold-batchnorm: batchnorm(conv2d | dense) -> conv2d | dense with a scaled weight and a
// shifted bias (see fold_batchnorm.h).
#include "passes/fold_batchnorm.h"

#include "ir/shape_inference.h"

namespace shoal {

namespace {

// The layer a batchnorm may fold into: a conv2d or dense whose result only the batchnorm reads.
Node* foldableProducer(const Graph& g, const Node& bn) {
  Node* p = bn.input(0)->def();
  if (!p || (p->kind() != OpKind::Conv2d && p->kind() != OpKind::Dense)) return nullptr;
  if (g.users(p->result()).size() != 1) return nullptr;  // another op (or an output) needs it unnormalised
  // dense folds only over its [N, out] result (batchnorm's channels are its features).
  if (p->kind() == OpKind::Dense && p->result()->type().rank() != 2) return nullptr;
  return p;
}

class FoldBatchNormPass : public Pass {
 public:
  std::string_view name() const override { return "fold-batchnorm"; }
  std::string_view summary() const override {
    return "batchnorm after conv2d/dense folded into the layer's weight and bias (inference)";
  }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    if (ctx.train) return false;  // a training step normalises with batch statistics
    bool changed = false;
    std::vector<Node*> nodes = g.nodes();
    for (Node* bn : nodes) {
      if (bn->kind() != OpKind::BatchNorm) continue;
      Node* layer = foldableProducer(g, *bn);
      if (!layer) continue;
      auto folded = fold(g, *bn, *layer);
      if (!folded) return Unexpected(folded.error());
      changed = true;
    }
    return changed;
  }

 private:
  // Inserts `kind(inputs) {attrs}` before `pos`, named `name`, typed by its shape rule; it
  // carries `pos`'s location unless given another.
  static Expected<Value*> add(Graph& g, Node* pos, OpKind kind, std::vector<Value*> inputs, Attrs attrs,
                              const std::string& name, const Location* loc = nullptr) {
    Node* n = g.insertNodeBefore(pos, kind, std::move(inputs), std::move(attrs), {{name, TensorType{}}},
                                 loc ? *loc : pos->loc());
    fillDefaultAttrs(*n);
    auto types = inferResultTypes(*n);
    if (!types) return Unexpected(types.error());
    n->result()->setType((*types)[0]);
    return n->result();
  }

  static Expected<void> fold(Graph& g, Node& bn, Node& layer) {
    const std::string name = bn.result()->name();
    Value* mean = bn.input(1);
    Value* var = bn.input(2);
    Value* gamma = bn.numInputs() > 3 ? bn.input(3) : nullptr;
    Value* beta = bn.numInputs() > 4 ? bn.input(4) : nullptr;
    Value* weight = layer.input(1);
    Value* bias = layer.numInputs() > 2 ? layer.input(2) : nullptr;
    const int64_t c = mean->type().shape[0];
    const DType dt = mean->type().dtype;
    auto attrs = [](std::initializer_list<std::pair<const char*, AttrValue>> kv) {
      Attrs a;
      for (const auto& [k, v] : kv) a.set(k, v);
      return a;
    };
    if (!gamma) {
      Attrs ones = attrs({{"value", TensorLiteral{{c}, std::vector<double>(size_t(c), 1.0)}}});
      gamma =
          g.insertNodeBefore(&bn, OpKind::Constant, {}, ones, {{name + ".fold_ones", {dt, {c}}}}, bn.loc())->result();
    }
    // s = gamma / sqrt(var + eps); weight * s per output channel (axis 0 of OIHW or [out, in]).
    auto s = add(g, &bn, OpKind::BatchNormScale, {gamma, var}, attrs({{"eps", bn.attrs().getFloat("eps")}}),
                 name + ".fold_scale");
    if (!s) return Unexpected(s.error());
    Shape column(size_t(weight->type().rank()), 1);
    column[0] = c;
    auto sColumn = add(g, &bn, OpKind::Reshape, {*s}, attrs({{"shape", column}}), name + ".fold_scale_column");
    if (!sColumn) return Unexpected(sColumn.error());
    auto newWeight = add(g, &bn, OpKind::Mul, {weight, *sColumn}, {}, name + ".fold_weight");
    if (!newWeight) return Unexpected(newWeight.error());
    // (bias - mean) * s + beta, a missing bias counting as 0.
    auto shift = bias ? add(g, &bn, OpKind::Sub, {bias, mean}, {}, name + ".fold_shift")
                      : add(g, &bn, OpKind::Neg, {mean}, {}, name + ".fold_shift");
    if (!shift) return Unexpected(shift.error());
    auto newBias = add(g, &bn, OpKind::Mul, {*shift, *s}, {}, name + (beta ? ".fold_shift_scaled" : ".fold_bias"));
    if (!newBias) return Unexpected(newBias.error());
    if (beta) {
      newBias = add(g, &bn, OpKind::Add, {*newBias, beta}, {}, name + ".fold_bias");
      if (!newBias) return Unexpected(newBias.error());
    }
    auto out = add(g, &bn, layer.kind(), {layer.input(0), *newWeight, *newBias}, layer.attrs(), name + ".folded",
                   &layer.loc());
    if (!out) return Unexpected(out.error());
    g.replaceAllUsesWith(bn.result(), *out);
    g.eraseNode(&bn);
    g.eraseNode(&layer);
    g.renameValue(*out, name);
    return {};
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldBatchNormPass() { return std::make_unique<FoldBatchNormPass>(); }

}  // namespace shoal
