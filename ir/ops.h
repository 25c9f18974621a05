// The op enum and per-op metadata, generated from ir/ops.def.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attributes.h"

namespace shoal {

enum class OpKind : uint8_t {
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, grad, doc) kind,
#include "ir/ops.def"
#undef SHOAL_OP
};

/// Number of ops in the table.
inline constexpr int kNumOps = 0
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, grad, doc) +1
#include "ir/ops.def"
#undef SHOAL_OP
    ;

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
  std::string_view gradientRule;  ///< empty: not differentiable
  std::string_view doc;

  bool differentiable() const { return !gradientRule.empty(); }
  const AttrSpec* findAttr(std::string_view attr) const;
};

/// Metadata of an op (the table is built once, on first use).
const OpInfo& opInfo(OpKind kind);
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

/// Parses one attribute value written in IR text (`3`, `1.5`, `"s"`, `[1,2]`, `[0.5]`,
/// `tensor<2x2>[...]`); identifiers are accepted as strings. nullopt on a syntax error.
std::optional<AttrValue> parseAttrValue(std::string_view text);

}  // namespace shoal
