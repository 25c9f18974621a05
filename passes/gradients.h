// Gradient rules, registered per op (as TVM registers gradients): autodiff walks the graph
// and asks this registry for the rule of each differentiable op. A rule lives next to its
// op's family in passes/gradients*.cpp:
//
//   SHOAL_GRADIENT(Relu) {  // g: GradientArgs
//     return g.emit(OpKind::ReluGrad, {g.y(), g.dy}, {});
//   }
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "support/diagnostics.h"

namespace shoal {

/// Appends single-result nodes to a graph and types them by the op's shape rule, so the
/// graph verifies after every step.
class GradientEmitter {
 public:
  explicit GradientEmitter(Graph& g) : g_(g) {}

  /// Appends `kind(inputs) {attrs}` with one result named `name`; `dtype` is the placeholder
  /// result's element type (only constants read it).
  Expected<Value*> emit(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const std::string& name,
                        const Location& loc, DType dtype = DType::F32);
  /// Appends a node with no results (an optimizer update), checked by its shape rule.
  Expected<void> emitSink(OpKind kind, std::vector<Value*> inputs, Attrs attrs, const Location& loc);
  /// `full` summed down to `operand`'s shape (sum_to) when broadcasting grew it, else itself.
  Expected<Value*> reduceToOperand(Value* full, const Value* operand, const std::string& name, const Location& loc);
  /// `dy` broadcast back up to `x`'s shape (dy + zeros), or dy when the shapes agree.
  Expected<Value*> broadcastTo(Value* dy, const Value* x, const std::string& name, const Location& loc);

  Graph& graph() { return g_; }

 private:
  Graph& g_;
};

/// Attributes from a brace list: attrsOf({{"axis", int64_t(1)}}).
Attrs attrsOf(std::initializer_list<std::pair<const char*, AttrValue>> entries);

/// What a gradient rule sees: the forward node, which operand it differentiates for, the
/// gradient of the node's result, and an emitter whose nodes carry the node's location.
struct GradientArgs {
  const Node& node;
  size_t operand;             ///< the operand whose gradient contribution is wanted
  Value* dy;                  ///< gradient of node.result()
  std::string name;           ///< name for the contribution: "<operand name>.grad"
  GradientEmitter& emitter;

  Value* x() const { return node.input(operand); }  ///< the operand
  Value* input(size_t i) const { return node.input(i); }
  Value* y() const { return node.result(); }  ///< the forward result
  const Attrs& attrs() const { return node.attrs(); }
  /// True when broadcasting made the result larger than the operand.
  bool broadcast() const { return x()->type().shape != y()->type().shape; }
  /// Appends `kind(inputs) {attrs}` named `name` (or `name + suffix` for intermediates).
  Expected<Value*> emit(OpKind kind, std::vector<Value*> inputs, Attrs a, const std::string& suffix = "") const {
    return emitter.emit(kind, std::move(inputs), std::move(a), name + suffix, node.loc());
  }
  /// Appends a constant of the operand's element type.
  Expected<Value*> constant(TensorLiteral value, const std::string& suffix) const {
    Attrs a;
    a.set("value", std::move(value));
    return emitter.emit(OpKind::Constant, {}, std::move(a), name + suffix, node.loc(), x()->type().dtype);
  }
  /// `full` reduced to the operand's shape, named `name` (or `name + suffix`).
  Expected<Value*> reduceToOperand(Value* full, const std::string& suffix = "") const {
    return emitter.reduceToOperand(full, x(), name + suffix, node.loc());
  }
};

/// The contribution of node.result()'s gradient to one operand's gradient.
using GradientRule = Expected<Value*> (*)(const GradientArgs& g);

/// The registered rule of `kind`, or null when the op has none (not differentiable).
GradientRule findGradientRule(OpKind kind);

/// Registers a rule at static initialization (use SHOAL_GRADIENT).
struct GradientRegistration {
  GradientRegistration(OpKind kind, GradientRule rule);
};

#define SHOAL_GRADIENT(kind)                                                                         \
  static Expected<Value*> shoalGradient_##kind(const GradientArgs& g);                                \
  static const GradientRegistration shoalGradientRegistration_##kind(OpKind::kind, &shoalGradient_##kind); \
  static Expected<Value*> shoalGradient_##kind(const GradientArgs& g)

}  // namespace shoal
