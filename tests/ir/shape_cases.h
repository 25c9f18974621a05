// Shape-rule test cases per op: a valid node with its result types, and every error the
// rule reports. Each op family's test file registers its cases with SHOAL_SHAPE_CASES;
// tests/ir/shape_inference_test.cpp runs them all and fails for an op without cases.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir_builders.h"
#include "op_case_registry.h"

namespace shoal::test {

/// Where every node under test comes from: model.mmd:7:5, pipeline node "n1".
inline Location nodeLoc() { return Location{"model.mmd", 7, 5, "n1"}; }

/// `kind` over fresh inputs of the given types (schema defaults filled in). Results are
/// `results` when given (sources), else the op's result count, untyped.
inline Node* buildNode(Graph& g, OpKind kind, const std::vector<TensorType>& operands, Attrs a,
                       const std::optional<std::vector<ResultSpec>>& results = std::nullopt) {
  std::vector<Value*> ins;
  for (size_t i = 0; i < operands.size(); ++i) {
    std::string name = "in" + std::to_string(i);
    ins.push_back(g.addNode(OpKind::Input, {}, attrs({{"name", name}}), {{name, operands[i]}})->result());
  }
  std::vector<ResultSpec> rs;
  if (results)
    rs = *results;
  else
    for (int i = 0; i < opInfo(kind).numResults; ++i) rs.push_back({"r", TensorType{}});
  Node* n = g.addNode(kind, ins, std::move(a), rs, nodeLoc());
  fillDefaultAttrs(*n);
  return n;
}

/// One node the shape rule must reject, and the message (after "<op> 'n1': ").
struct ErrorCase {
  std::string label;
  std::vector<TensorType> operands;
  Attrs attrs;
  std::string message;
  std::optional<std::vector<ResultSpec>> results = std::nullopt;
};

/// A node the rule accepts, with the result types it must give.
struct ValidCase {
  std::vector<TensorType> operands;
  Attrs attrs;
  std::vector<TensorType> types;
  std::optional<std::vector<ResultSpec>> results = std::nullopt;
};

struct OpShapeCases {
  ValidCase valid;
  std::vector<ErrorCase> errors;
  std::string cannotFail = {};  ///< why `errors` is empty, for ops whose rule accepts anything
};

inline Attrs with(Attrs a, const char* key, AttrValue v) {
  a.set(key, std::move(v));
  return a;
}
inline Attrs pool(Shape k, Shape s, Shape p = {0, 0, 0, 0}) {
  return attrs({{"kernel", k}, {"stride", s}, {"padding", p}});
}

struct ShapeCasesTag {};
/// The shape-rule cases of an op.
using ShapeCaseRegistry = OpCaseRegistry<ShapeCasesTag, OpShapeCases(OpKind kind)>;

/// Registers the following body (returning OpShapeCases; it sees `kind`) as the shape-rule
/// cases of the listed ops.
#define SHOAL_SHAPE_CASES(id, ...)                                                              \
  static ::shoal::test::OpShapeCases shoalShapeCases_##id(OpKind kind);                         \
  SHOAL_OP_CASES_REGISTER(::shoal::test::ShapeCaseRegistry, shoalShapeCases_##id, __VA_ARGS__); \
  static ::shoal::test::OpShapeCases shoalShapeCases_##id([[maybe_unused]] OpKind kind)

}  // namespace shoal::test
