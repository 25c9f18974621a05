// Fusion passes: small declarative rewrite rules (pattern -> replacement), one named pass each.
//   fuse-conv-activation    conv2d (+ bias) -> relu|sigmoid|tanh   => fused_conv2d
//   fuse-conv-pool          fused_conv2d -> maxpool2d              => fused_conv2d_pool
//   fuse-pool-relu-grad     relu_grad(x, maxpool2d_grad(x, dy))     => maxpool2d_grad (relu_mask)
//   fuse-dense-activation   dense (+ bias)  -> relu|sigmoid|tanh   => fused_dense (GEMM epilogue)
//   fuse-dense-pair         fused_dense (+ bias) -> dense (+ bias)  => fused_mlp (two layers, no hidden value)
//   fuse-elementwise        chains of same-shape elementwise ops    => fused_elementwise
//   fuse-conv-prologue      fused_elementwise (one operand) -> fused_conv2d_pool
//                                                                   => fused_conv2d_pool (input_expr)
//   fuse-conv-epilogue      conv2d (+ bias) -> fused_elementwise    => fused_conv2d (output_expr)
// A rule fires only when the intermediate value has no other reader, so nothing that a later
// op (a backward op, an output) needs is folded away.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "ir/elementwise.h"
#include "ir/shape_inference.h"
#include "passes/pass.h"

namespace shoal {

namespace {

// Number of readers of every value (outputs and in-place updates count as readers).
std::unordered_map<const Value*, int> useCounts(const Graph& g) {
  std::unordered_map<const Value*, int> uses;
  for (Node* n : g.nodes())
    for (Value* in : n->inputs()) ++uses[in];
  return uses;
}

// ---- the pattern language ---------------------------------------------------------------

/// A node pattern: one of `kinds`, whose operands match `operands` (a prefix; operands past it
/// are free), bound under `bind`. `singleUse` asks that the matched node's result have
/// exactly one reader (the node matched above it).
struct Pattern {
  std::vector<OpKind> kinds;
  std::string bind;
  std::vector<Pattern> operands;
  bool singleUse = false;
};

using Bindings = std::map<std::string, Node*>;

bool matchPattern(Node* n, const Pattern& p, const std::unordered_map<const Value*, int>& uses, Bindings& out) {
  if (std::find(p.kinds.begin(), p.kinds.end(), n->kind()) == p.kinds.end()) return false;
  if (p.singleUse) {
    auto it = uses.find(n->result());
    if (it == uses.end() || it->second != 1) return false;
  }
  if (p.operands.size() > n->numInputs()) return false;
  for (size_t i = 0; i < p.operands.size(); ++i) {
    Node* def = n->input(i)->def();
    if (!def || !matchPattern(def, p.operands[i], uses, out)) return false;
  }
  if (!p.bind.empty()) out[p.bind] = n;
  return true;
}

/// A rewrite rule: when `pattern` matches at a node, `rewrite` builds the replacement (it
/// returns the node whose result replaces the root's) or declines with nullptr.
struct Rule {
  std::string_view name;
  std::string_view summary;
  Pattern pattern;
  std::function<Node*(Graph&, Bindings&)> rewrite;
};

// Replaces the root's result by `replacement`'s (which takes over its name), then drops the
// matched nodes that nothing reads any more.
void commit(Graph& g, Node* root, Node* replacement, const Bindings& matched) {
  std::string name = root->result()->name();
  g.replaceAllUsesWith(root->result(), replacement->result());
  std::vector<Node*> order;
  for (auto& [k, n] : matched) order.push_back(n);
  std::sort(order.begin(), order.end(), [&](Node* a, Node* b) { return g.indexOf(a) > g.indexOf(b); });
  for (Node* n : order)
    if (n != replacement && g.users(n->result()).empty()) g.eraseNode(n);
  g.renameValue(replacement->result(), name);
}

class RulePass : public Pass {
 public:
  explicit RulePass(Rule rule) : rule_(std::move(rule)) {}
  std::string_view name() const override { return rule_.name; }
  std::string_view summary() const override { return rule_.summary; }
  Expected<bool> run(Graph& g, PassContext&) override {
    bool changed = false;
    // One walk in program order; a rewrite restarts the walk from a fresh snapshot.
    for (bool again = true; again;) {
      again = false;
      auto uses = useCounts(g);
      for (Node* n : g.nodes()) {
        Bindings b;
        if (!matchPattern(n, rule_.pattern, uses, b)) continue;
        Node* replacement = rule_.rewrite(g, b);
        if (!replacement) continue;
        commit(g, n, replacement, b);
        changed = again = true;
        break;
      }
    }
    return changed;
  }

 private:
  Rule rule_;
};

// Builds `fused` from the producer's operands and attributes plus the activation's name,
// placed where the activation was (every operand is defined before it).
Node* fuseWithActivation(Graph& g, Bindings& b, const char* producer, OpKind fused) {
  Node* prod = b.at(producer);
  Node* act = b.at("act");
  Attrs attrs = prod->attrs();
  attrs.set("activation", std::string(act->opName()));
  Node* n = g.insertNodeBefore(act, fused, prod->inputs(), attrs, {{act->result()->name() + ".fused", act->result()->type()}},
                               prod->loc());
  fillDefaultAttrs(*n);
  return n;
}

Rule convActivationRule() {
  Pattern conv{{OpKind::Conv2d}, "conv", {}, /*singleUse=*/true};
  return {"fuse-conv-activation", "conv2d (+ bias) followed by relu/sigmoid/tanh becomes one fused_conv2d",
          Pattern{{OpKind::Relu, OpKind::Sigmoid, OpKind::Tanh}, "act", {conv}},
          [](Graph& g, Bindings& b) { return fuseWithActivation(g, b, "conv", OpKind::FusedConv2d); }};
}

// Only inference graphs meet it: in a training step maxpool2d_grad (and the activation's
// gradient) read the conv output, so the pair stays unfused there.
Rule convPoolRule() {
  Pattern conv{{OpKind::FusedConv2d}, "conv", {}, /*singleUse=*/true};
  return {"fuse-conv-pool", "fused_conv2d followed by maxpool2d becomes one fused_conv2d_pool",
          Pattern{{OpKind::MaxPool2d}, "pool", {conv}}, [](Graph& g, Bindings& b) {
            Node* conv = b.at("conv");
            Node* pool = b.at("pool");
            if (!conv->attrs().getString("output_expr", "").empty()) return static_cast<Node*>(nullptr);
            Attrs attrs = conv->attrs();
            attrs.erase("output_expr");  // fused_conv2d's alone
            attrs.set("pool_kernel", pool->attrs().getInts("kernel"));
            attrs.set("pool_stride", pool->attrs().getInts("stride"));
            if (pool->attrs().has("padding")) attrs.set("pool_padding", pool->attrs().getInts("padding"));
            attrs.set("pool_ceil_mode", pool->attrs().getInt("ceil_mode", 0));
            Node* n = g.insertNodeBefore(pool, OpKind::FusedConv2dPool, conv->inputs(), attrs,
                                         {{pool->result()->name() + ".fused", pool->result()->type()}}, conv->loc());
            fillDefaultAttrs(*n);
            return n;
          }};
}

// A one-operand elementwise chain read only by a fused_conv2d_pool (an input's decode and
// scale: u8 pixels -> f32 / 255) is applied by the conv as each tap loads its input: the
// chain's kernel and its tensor go. The chain must compute in the conv's type. The pattern has
// no operand form for "any elementwise op", so the producer is found and checked here.
Rule convPrologueRule() {
  return {"fuse-conv-prologue", "a one-operand elementwise chain read only by a fused_conv2d_pool is applied as it loads",
          Pattern{{OpKind::FusedConv2dPool}, "conv", {}}, [](Graph& g, Bindings& b) -> Node* {
            Node* conv = b.at("conv");
            Node* pre = conv->input(0)->def();
            if (!pre || !conv->attrs().getString("input_expr", "").empty() || pre->numInputs() != 1 ||
                pre->numResults() != 1 || g.users(pre->result()).size() != 1)
              return nullptr;
            std::string expr;
            if (pre->kind() == OpKind::FusedElementwise) {
              expr = pre->attrs().getString("expr");
            } else if (isElementwise(pre->kind()) && opInfo(pre->kind()).minInputs == 1) {
              expr = "a0 " + exprToken(pre->kind(), formulaParams(*pre));
            } else {
              return nullptr;
            }
            const TensorType& seen = pre->result()->type();
            if (seen.dtype != conv->input(1)->type().dtype || !convertsOnLoad(pre->input(0)->type().dtype)) return nullptr;
            Attrs attrs = conv->attrs();
            attrs.set("input_expr", expr);
            std::vector<Value*> inputs = conv->inputs();
            inputs[0] = pre->input(0);
            Node* n = g.insertNodeBefore(conv, OpKind::FusedConv2dPool, inputs, attrs,
                                         {{conv->result()->name() + ".prologue", conv->result()->type()}}, conv->loc());
            fillDefaultAttrs(*n);
            b["pre"] = pre;
            return n;
          }};
}

// `expr` with its operand tokens renumbered: operand `first` becomes a0, the others a1, a2, ...
// in their order.
std::string renumberOperands(const std::string& expr, size_t first) {
  std::string out;
  for (size_t pos = 0; pos < expr.size();) {
    size_t end = expr.find(' ', pos);
    if (end == std::string::npos) end = expr.size();
    std::string tok = expr.substr(pos, end - pos);
    if (tok.size() > 1 && tok[0] == 'a' && std::all_of(tok.begin() + 1, tok.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
      const size_t k = size_t(std::stoul(tok.substr(1)));
      tok = "a" + std::to_string(k == first ? 0 : k < first ? k + 1 : k);
    }
    out += (out.empty() ? "" : " ") + tok;
    pos = end + 1;
  }
  return out;
}

// A fused_elementwise with an operand made by a conv2d with a bias and read by nothing else,
// every operand of that result's type (no broadcast, no conversion): the conv computes the
// program as it stores each output (a ResNet block's residual add and relu), so the conv's
// output is never stored and the elementwise kernel goes. The conv's operands stay first; the
// elementwise op's other operands follow the bias.
Rule convEpilogueRule() {
  return {"fuse-conv-epilogue", "conv2d (+ bias) read only by a fused_elementwise computes its program as it stores",
          Pattern{{OpKind::FusedElementwise}, "ew", {}}, [](Graph& g, Bindings& b) -> Node* {
            Node* ew = b.at("ew");
            const TensorType& out = ew->result()->type();
            // Operands: x, w, bias and the program's others; fused_conv2d takes at most 8.
            if (ew->numInputs() + 2 > 8) return nullptr;
            for (Value* in : ew->inputs())
              if (in->type() != out) return nullptr;
            for (size_t k = 0; k < ew->numInputs(); ++k) {
              Value* v = ew->input(k);
              Node* conv = v->def();
              if (!conv || conv->kind() != OpKind::Conv2d || conv->numInputs() != 3 || g.users(v).size() != 1 ||
                  std::count(ew->inputs().begin(), ew->inputs().end(), v) != 1)
                continue;
              Attrs attrs = conv->attrs();
              attrs.set("activation", std::string());
              attrs.set("output_expr", renumberOperands(ew->attrs().getString("expr"), k));
              std::vector<Value*> inputs = conv->inputs();
              for (size_t i = 0; i < ew->numInputs(); ++i)
                if (i != k) inputs.push_back(ew->input(i));
              Node* n = g.insertNodeBefore(ew, OpKind::FusedConv2d, inputs, attrs,
                                           {{ew->result()->name() + ".fused", out}}, conv->loc());
              fillDefaultAttrs(*n);
              b["conv"] = conv;
              return n;
            }
            return nullptr;
          }};
}

// relu_grad(x, maxpool2d_grad(x, dy)): the mask is the pooled tensor itself (a relu's output
// pooled, the training step of conv -> relu -> maxpool), so the gradient kernel applies it
// as it writes dx: one pass over the pooled tensor's size instead of two. The pattern has
// no operand form for "any value", so the pool is found and checked here.
Rule poolReluGradRule() {
  return {"fuse-pool-relu-grad", "relu_grad of maxpool2d_grad over the pooled tensor becomes one maxpool2d_grad (relu_mask)",
          Pattern{{OpKind::ReluGrad}, "act", {}}, [](Graph& g, Bindings& b) -> Node* {
            Node* act = b.at("act");
            Node* pool = act->input(1)->def();
            if (!pool || pool->kind() != OpKind::MaxPool2dGrad || pool->attrs().getInt("relu_mask", 0) != 0 ||
                act->input(0) != pool->input(0) || g.users(pool->result()).size() != 1)
              return nullptr;
            b["pool"] = pool;
            Attrs attrs = pool->attrs();
            attrs.set("relu_mask", int64_t(1));
            Node* n = g.insertNodeBefore(act, OpKind::MaxPool2dGrad, pool->inputs(), attrs,
                                         {{act->result()->name() + ".fused", act->result()->type()}}, pool->loc());
            fillDefaultAttrs(*n);
            return n;
          }};
}

Rule denseActivationRule() {
  Pattern dense{{OpKind::Dense}, "dense", {}, /*singleUse=*/true};
  return {"fuse-dense-activation", "dense (+ bias) followed by relu/sigmoid/tanh becomes one fused_dense",
          Pattern{{OpKind::Relu, OpKind::Sigmoid, OpKind::Tanh}, "act", {dense}},
          [](Graph& g, Bindings& b) { return fuseWithActivation(g, b, "dense", OpKind::FusedDense); }};
}

// Two dense layers (both with a bias) with the first one's activation between them: an
// inference graph's classifier head. The hidden layer stops being a value; on the GPU a small
// batch's hidden rows are finished and read by the same block (emitFusedMlp). A training step
// reads the hidden layer again (its activation's gradient), so the pair stays unfused there.
Rule densePairRule() {
  Pattern first{{OpKind::FusedDense}, "first", {}, /*singleUse=*/true};
  return {"fuse-dense-pair", "fused_dense (+ bias) read only by a dense (+ bias) becomes one fused_mlp",
          Pattern{{OpKind::Dense}, "second", {first}}, [](Graph& g, Bindings& b) {
            Node* first = b.at("first");
            Node* second = b.at("second");
            // Both with a bias, neither layer empty (no product to fuse).
            if (first->numInputs() != 3 || second->numInputs() != 3) return static_cast<Node*>(nullptr);
            const Shape& x = first->input(0)->type().shape;
            const Shape& h = first->result()->type().shape;
            if (x.size() != 2 || h.size() != 2 || x[1] == 0 || h[1] == 0) return static_cast<Node*>(nullptr);
            Attrs attrs;
            attrs.set("activation", first->attrs().getString("activation"));
            Node* n = g.insertNodeBefore(second, OpKind::FusedMlp,
                                         {first->input(0), first->input(1), first->input(2), second->input(1), second->input(2)},
                                         attrs, {{second->result()->name() + ".fused", second->result()->type()}},
                                         first->loc());
            fillDefaultAttrs(*n);
            return n;
          }};
}

// ---- elementwise chains -----------------------------------------------------------------

// An elementwise op joins a chain when it computes floats from operands of its result's
// type (no broadcasting inside a fused chain).
bool fusibleElementwise(const Node& n) {
  if (!isElementwise(n.kind()) || n.numResults() != 1) return false;
  const TensorType& t = n.result()->type();
  if (!isFloat(t.dtype)) return false;
  for (Value* in : n.inputs())
    if (in->type() != t) return false;
  return true;
}

// A cast a chain may read through: a float result of the chain's type, from a type a
// fused_elementwise converts on load exactly as cast does (convertsOnLoad).
bool foldableCast(const Node& n, const TensorType& chain) {
  if (n.kind() != OpKind::Cast || n.result()->type() != chain) return false;
  const DType d = n.input(0)->type().dtype;
  return d != chain.dtype && convertsOnLoad(d);
}

class FuseElementwisePass : public Pass {
 public:
  std::string_view name() const override { return "fuse-elementwise"; }
  std::string_view summary() const override { return "chains of same-shape elementwise ops become one fused_elementwise"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    auto uses = useCounts(g);
    // Each fusible node joins the group of an operand's producer when that producer is
    // fusible and this node is its only reader; a group is a tree rooted at its last node.
    // Groups are kept as a union-find forest (the root of a set is its newest member), so a
    // chain of n ops groups in O(n), not O(n^2).
    std::unordered_map<Node*, Node*> parent;
    std::function<Node*(Node*)> find = [&](Node* n) {
      Node* root = n;
      while (parent[root] != root) root = parent[root];
      while (parent[n] != root) n = std::exchange(parent[n], root);
      return root;
    };
    for (Node* n : g.nodes()) {
      if (!fusibleElementwise(*n)) continue;
      parent[n] = n;
      for (Value* in : n->inputs()) {
        Node* p = in->def();
        if (!p || !parent.count(p) || uses[in] != 1) continue;
        Node* other = find(p);
        if (other != n) parent[other] = n;
      }
    }
    std::unordered_map<Node*, std::vector<Node*>> members;
    for (Node* n : g.nodes())
      if (parent.count(n)) members[find(n)].push_back(n);  // in program order
    // A cast read only by a group's member folds into the group (the operand is then read
    // as its source type and converted): decoding and scaling an input in one kernel.
    auto castOperand = [&](Value* v, const TensorType& chain) -> Node* {
      Node* d = v->def();
      return d && uses[v] == 1 && foldableCast(*d, chain) ? d : nullptr;
    };
    bool changed = false;
    std::vector<Node*> roots;
    for (auto& [root, ms] : members) {
      bool casts = false;
      for (Node* m : ms)
        for (Value* in : m->inputs()) casts = casts || castOperand(in, root->result()->type());
      if (ms.size() >= 2 || casts) roots.push_back(root);
    }
    std::sort(roots.begin(), roots.end(), [&](Node* a, Node* b) { return g.indexOf(a) < g.indexOf(b); });
    for (Node* root : roots) {
      const std::vector<Node*>& group = members[root];
      std::unordered_set<Node*> inGroup(group.begin(), group.end());
      const TensorType chain = root->result()->type();
      std::vector<Node*> folded;  // casts read through
      std::vector<Value*> operands;
      std::string expr;
      // Postfix over the tree below the root, with an explicit stack (chains can be long).
      struct Frame {
        Value* v;
        bool expanded;
      };
      std::vector<Frame> stack = {{root->result(), false}};
      while (!stack.empty()) {
        Frame f = stack.back();
        stack.pop_back();
        Node* d = f.v->def();
        if (!d || !inGroup.count(d)) {
          Value* operand = f.v;
          if (Node* cast = castOperand(f.v, chain)) {
            operand = cast->input(0);
            if (std::find(folded.begin(), folded.end(), cast) == folded.end()) folded.push_back(cast);
          }
          auto it = std::find(operands.begin(), operands.end(), operand);
          size_t idx = it - operands.begin();
          if (it == operands.end()) operands.push_back(operand);
          expr += (expr.empty() ? "" : " ") + fmt::format("a{}", idx);
          continue;
        }
        if (f.expanded) {
          expr += " " + exprToken(d->kind(), formulaParams(*d));
          continue;
        }
        stack.push_back({f.v, true});
        for (size_t i = d->numInputs(); i-- > 0;) stack.push_back({d->input(i), false});
      }
      if (operands.size() > 8) continue;  // the op table allows up to 8 operands
      Attrs attrs;
      attrs.set("expr", expr);
      attrs.set("dtype", std::string(dtypeName(chain.dtype)));  // operands may have others
      std::string name = root->result()->name();
      Node* fused = g.insertNodeBefore(root, OpKind::FusedElementwise, operands, attrs,
                                       {{name + ".fused", chain}}, root->loc());
      g.replaceAllUsesWith(root->result(), fused->result());
      g.eraseNodes(group);  // every member's result was read only inside the group
      g.eraseNodes(folded);  // each cast's result was read only by the group
      g.renameValue(fused->result(), name);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createFuseConvActivationPass() { return std::make_unique<RulePass>(convActivationRule()); }
std::unique_ptr<Pass> createFuseConvPoolPass() { return std::make_unique<RulePass>(convPoolRule()); }
std::unique_ptr<Pass> createFusePoolReluGradPass() { return std::make_unique<RulePass>(poolReluGradRule()); }
std::unique_ptr<Pass> createFuseDenseActivationPass() { return std::make_unique<RulePass>(denseActivationRule()); }
std::unique_ptr<Pass> createFuseDensePairPass() { return std::make_unique<RulePass>(densePairRule()); }
std::unique_ptr<Pass> createFuseElementwisePass() { return std::make_unique<FuseElementwisePass>(); }
std::unique_ptr<Pass> createFuseConvProloguePass() { return std::make_unique<RulePass>(convPrologueRule()); }
std::unique_ptr<Pass> createFuseConvEpiloguePass() { return std::make_unique<RulePass>(convEpilogueRule()); }

}  // namespace shoal
