// The op enum and per-op metadata, generated from ir/ops.def: names, arity, attribute
// schema, traits and elementwise formulas. Passes and backends ask the table, not a switch.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attributes.h"

namespace shoal {

enum class OpKind : uint8_t {
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc) kind,
#include "ir/ops.def"
#undef SHOAL_OP
};

/// Number of ops in the table.
inline constexpr int kNumOps = 0
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc) +1
#include "ir/ops.def"
#undef SHOAL_OP
    ;

/// Most operands an op's in-place or mutates list may name.
inline constexpr int kMaxTraitOperands = 8;

/// What passes and backends need to know about an op beyond its shape rule. Built in
/// ir/ops.def with `Traits()` and the builders below, e.g. `Traits().inPlace(1, 0)`.
struct OpTraits {
  bool isElementwise = false;     ///< one result computed per element from broadcast operands by a formula
  bool isView = false;            ///< the result is operand 0's bytes reinterpreted (reshape; same-type cast)
  bool isSource = false;          ///< no operands: fed by the caller, persistent, or a literal
  bool isPersistent = false;      ///< the value lives across runs (params, optimizer state)
  bool hasZeroGradient = false;   ///< piecewise constant (argmax, accuracy): autodiff passes no gradient
  bool isInternal = false;        ///< made by shoal (gradients, fused ops, updates, sources): no pipeline layer
  bool inPlaceAnyOperand = false; ///< any operand of the result's type may be overwritten by the result
  bool isCollective = false;      ///< talks to the other ranks of a data-parallel run: every rank runs it, never removed
  bool storageTypes = false;      ///< takes or makes the storage element types (f16, i8, ...; see storageOnly)
  bool isFused = false;           ///< several ops made one by a fuse pass; autodiff expands it back (expandFused)
  /// A unary elementwise op whose formula, as computed, is non-decreasing and keeps NaN (relu;
  /// not sigmoid or tanh, whose rounded exp need not be): max(f(x1), f(x2)) == f(max(x1, x2))
  /// bit for bit, so a fused kernel may take a pool's maximum before applying it.
  bool isMonotone = false;
  int numInPlace = 0;             ///< operands the result may overwrite, most preferred first
  std::array<int8_t, kMaxTraitOperands> inPlaceOperands{};
  int numMutated = 0;  ///< operands the op writes in place (optimizer updates)
  std::array<int8_t, kMaxTraitOperands> mutatedOperands{};

  constexpr OpTraits view() const { return set(&OpTraits::isView); }
  constexpr OpTraits source() const { return set(&OpTraits::isSource); }
  constexpr OpTraits persistent() const { return set(&OpTraits::isPersistent); }
  constexpr OpTraits zeroGradient() const { return set(&OpTraits::hasZeroGradient); }
  constexpr OpTraits internal() const { return set(&OpTraits::isInternal); }
  constexpr OpTraits inPlaceAny() const { return set(&OpTraits::inPlaceAnyOperand); }
  constexpr OpTraits collective() const { return set(&OpTraits::isCollective); }
  constexpr OpTraits storage() const { return set(&OpTraits::storageTypes); }
  constexpr OpTraits monotone() const { return set(&OpTraits::isMonotone); }
  constexpr OpTraits fused() const { return set(&OpTraits::isFused); }
  /// Set for the rows written with SHOAL_ELEMENTWISE (not used in ir/ops.def itself).
  constexpr OpTraits elementwise() const { return set(&OpTraits::isElementwise); }
  /// The result may take over operand `i`'s buffer (when the types match), in this order.
  template <typename... I>
  constexpr OpTraits inPlace(I... operands) const {
    OpTraits t = *this;
    ((t.inPlaceOperands[size_t(t.numInPlace++)] = int8_t(operands)), ...);
    return t;
  }
  /// The op writes these operands in place (it is scheduled after their other readers).
  template <typename... I>
  constexpr OpTraits mutates(I... operands) const {
    OpTraits t = *this;
    ((t.mutatedOperands[size_t(t.numMutated++)] = int8_t(operands)), ...);
    return t;
  }

 private:
  constexpr OpTraits set(bool OpTraits::*flag) const {
    OpTraits t = *this;
    t.*flag = true;
    return t;
  }
};

/// The start of every traits expression in ir/ops.def.
constexpr OpTraits Traits() { return {}; }

/// One attribute of an op's schema.
struct AttrSpec {
  std::string name;
  AttrKind kind = AttrKind::Int;
  std::optional<AttrValue> defaultValue;  ///< nullopt: required
};

/// Everything the op table says about an op.
struct OpInfo {
  OpKind kind;
  std::string_view name;  ///< text name, e.g. "conv2d"
  int minInputs;
  int maxInputs;
  int numResults;
  std::vector<AttrSpec> attrs;
  OpTraits traits;
  std::string_view gradientRule;  ///< summary of the gradient (empty: none); the builder is in passes/
  std::string_view doc;
  std::string_view formula;  ///< elementwise ops: the C++ expression of ir/ops.def (else empty)
  /// Elementwise ops: the schema's float attributes, in order; the formula's p0, p1, ...
  std::vector<std::string> formulaParams;

  bool differentiable() const { return !gradientRule.empty(); }
  const AttrSpec* findAttr(std::string_view attr) const;
};

/// Metadata of an op (the table is built once, on first use).
const OpInfo& opInfo(OpKind kind);
/// Traits of an op (constexpr data; no table build).
const OpTraits& opTraits(OpKind kind);
/// "conv2d" for OpKind::Conv2d.
std::string_view opName(OpKind kind);
/// Inverse of opName.
std::optional<OpKind> opKindFromName(std::string_view name);
/// Every op, in table order.
const std::vector<OpKind>& allOps();

/// Operand indices an op writes in place (optimizer updates); empty for pure ops.
std::vector<int> mutatedOperands(OpKind kind);
/// True for ops with no inputs whose values persist across runs (param, state).
bool isPersistentSource(OpKind kind);
/// True for input/param/state/constant.
bool isSource(OpKind kind);
/// True for ops computed per element by their ir/ops.def formula.
bool isElementwise(OpKind kind);

/// Parses one attribute value written in IR text (`3`, `1.5`, `"s"`, `[1,2]`, `[0.5]`,
/// `tensor<2x2>[...]`); identifiers are accepted as strings. nullopt on a syntax error.
std::optional<AttrValue> parseAttrValue(std::string_view text);

}  // namespace shoal
