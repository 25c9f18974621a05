// IR round-trip test graphs per op: a node of the op with its operands and every schema
// attribute set. Each op family's test file registers its ops with SHOAL_ROUND_TRIP_CASE
// (elementwise ops need none: a generic case covers them); tests/ir/printer_parser_test.cpp
// prints and parses each one back.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir_builders.h"
#include "op_case_registry.h"

namespace shoal::test {

// Where a round-trip case's nodes come from ("ops.mmd"). Its own name: tests/runtime/
// interpreter_cases.h has an at() naming another file, and both headers can meet in one
// translation unit.
inline Location roundTripAt(int line, const std::string& node) { return Location{"ops.mmd", line, 3, node}; }

inline Value* addInput(Graph& g, const std::string& name, TensorType type) {
  Attrs a;
  a.set("name", name);
  return g.addNode(OpKind::Input, {}, a, {{name, std::move(type)}}, roundTripAt(1, name))->result();
}

inline Value* addParam(Graph& g, const std::string& name, TensorType type) {
  Attrs a;
  a.set("init", std::string("glorot_uniform"));
  a.set("fan_in", int64_t(8));
  a.set("fan_out", int64_t(3));
  return g.addNode(OpKind::Param, {}, a, {{name, std::move(type)}}, roundTripAt(2, "d"))->result();
}

inline Value* addState(Graph& g, const std::string& name, TensorType type) {
  Attrs a;
  a.set("init", std::string("zeros"));
  return g.addNode(OpKind::State, {}, a, {{name, std::move(type)}}, Location{"", 0, 0, "opt"})->result();
}

struct RoundTripTag {};
/// Sets up the operands `ins`, attributes `a` and `results` of a node of `kind` in `g`;
/// false when it cannot.
using RoundTripRegistry = OpCaseRegistry<RoundTripTag, bool(OpKind kind, Graph& g, std::vector<Value*>& ins, Attrs& a,
                                                            std::vector<ResultSpec>& results)>;

/// Registers the following body as the round-trip case of the listed ops; it sees `kind`,
/// `g`, `ins`, `a` and `results` (preset to one f32[2,3] result "y") and returns true.
#define SHOAL_ROUND_TRIP_CASE(id, ...)                                                                      \
  static bool shoalRoundTripCase_##id(OpKind kind, Graph& g, std::vector<Value*>& ins, Attrs& a,            \
                                      std::vector<ResultSpec>& results);                                    \
  SHOAL_OP_CASES_REGISTER(::shoal::test::RoundTripRegistry, shoalRoundTripCase_##id, __VA_ARGS__);          \
  static bool shoalRoundTripCase_##id([[maybe_unused]] OpKind kind, [[maybe_unused]] Graph& g,              \
                                      [[maybe_unused]] std::vector<Value*>& ins, [[maybe_unused]] Attrs& a, \
                                      [[maybe_unused]] std::vector<ResultSpec>& results)

}  // namespace shoal::test
