// The interpreter's per-op test cases: a small graph around one op, the inputs fed and the
// values expected (hand-computed), in the case's float type. Each op family's test file
// registers its cases with SHOAL_INTERPRETER_CASES; tests/runtime/interpreter_test.cpp runs
// them all, in float64 and float32, and fails for an op without cases.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "frontend/layers.h"
#include "ir/graph.h"
#include "ir_builders.h"
#include "op_case_registry.h"
#include "runtime/executable.h"

namespace shoal::test {

// ---- building one test case -------------------------------------------------------------

inline std::vector<double> ramp(int64_t count, double first = 1.0) {
  std::vector<double> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[size_t(i)] = first + double(i);
  return v;
}

/// A value the test expects after a run: a graph output or a param/state (by name).
struct Expect {
  std::string name;
  Shape shape;
  std::vector<double> values;
};

/// One evaluateGraph call: the inputs fed, the values expected afterwards.
struct Run {
  TensorMap inputs;
  std::vector<Expect> expect;
};

/// A graph around one op plus the runs to make on it (params/state carry over between runs).
struct OpCase {
  std::string label;
  DType dtype = DType::F64;
  std::unique_ptr<Graph> graph;
  TensorMap persistent;  ///< initial param/state values
  std::vector<Run> runs;
  bool broken = false;  ///< building failed (already reported)
};

// Internal linkage: tests/ir/round_trip_cases.h has an at() of the same signature (see there).
namespace {
inline Location at(int line, const std::string& node) { return Location{"interp.mmd", line, 3, node}; }
}  // namespace

// Builds an OpCase; `dt` is the float type of the case (F64 or F32).
class CaseBuilder {
 public:
  CaseBuilder(std::string label, DType dt) {
    c_.label = std::move(label);
    c_.dtype = dt;
    c_.graph = std::make_unique<Graph>("case");
    c_.runs.emplace_back();
  }
  DType dt() const { return c_.dtype; }

  /// An input of the given type fed with `values`.
  Value* input(const std::string& name, TensorType t, const std::vector<double>& values) {
    return inputFed(name, t, Tensor::fromDoubles(t.dtype, t.shape, values));
  }
  /// A float (dt) input.
  Value* fin(const std::string& name, Shape s, const std::vector<double>& values) {
    return input(name, {dt(), std::move(s)}, values);
  }
  /// An input declared as `t` but fed `fed` (another dtype, say).
  Value* inputFed(const std::string& name, TensorType t, Tensor fed) {
    c_.runs.back().inputs[name] = std::move(fed);
    return layers::input(*c_.graph, name, std::move(t), at(++line_, name));
  }
  /// A float param whose value comes from the persistent map.
  Value* param(const std::string& name, Shape s, const std::vector<double>& values) {
    c_.persistent[name] = Tensor::fromDoubles(dt(), s, values);
    return layers::param(*c_.graph, name, {dt(), s}, "zeros", at(++line_, name));
  }
  /// A float param that is not in the persistent map (initialised by `init`).
  Value* paramInit(const std::string& name, Shape s, const std::string& init) {
    return layers::param(*c_.graph, name, {dt(), std::move(s)}, init, at(++line_, name));
  }
  Value* state(const std::string& name, Shape s, const std::vector<double>* values = nullptr) {
    if (values) c_.persistent[name] = Tensor::fromDoubles(dt(), s, *values);
    Node* n = c_.graph->addNode(OpKind::State, {}, {}, {{name, {dt(), s}}}, at(++line_, name));
    fillDefaultAttrs(*n);
    return n->result();
  }
  Value* constant(const std::string& name, DType t, Shape s, std::vector<double> values) {
    return layers::constant(*c_.graph, name, t, TensorLiteral{std::move(s), std::move(values)}, at(++line_, name));
  }
  /// The op under test (or a helper op); the node's pipeline id is `name`.
  Value* op(OpKind kind, std::vector<Value*> ins, Attrs a = {}, const std::string& name = "y") {
    auto v = layers::addOp(*c_.graph, kind, std::move(ins), std::move(a), name, at(++line_, name));
    if (!v) {
      ADD_FAILURE() << c_.label << ": building " << opName(kind) << ": " << v.error().str();
      c_.broken = true;
      return nullptr;
    }
    return *v;
  }
  void output(Value* v, const std::string& name = "y") {
    if (v) layers::output(*c_.graph, v, name, at(++line_, name));
  }
  /// Expects `name` (an output, else a param/state) to hold `values` after the current run.
  void expect(const std::string& name, Shape s, std::vector<double> values) {
    c_.runs.back().expect.push_back({name, std::move(s), std::move(values)});
  }
  /// Starts another run, feeding the previous inputs with `changed` replacing some.
  void nextRun(const TensorMap& changed) {
    Run r;
    r.inputs = c_.runs.back().inputs;
    for (const auto& [name, t] : changed) r.inputs[name] = t;
    c_.runs.push_back(std::move(r));
  }
  Tensor tensor(Shape s, const std::vector<double>& values) const { return Tensor::fromDoubles(dt(), s, values); }

  OpCase done() { return std::move(c_); }

 private:
  OpCase c_;
  int line_ = 0;
};

// ---- the cases, one or more per op -------------------------------------------------------

using Cases = std::vector<OpCase>;

// x -> binary op with y (broadcast), for add/sub/mul/div; `results` lists the expected values
// of the scenarios in order: row vector, column vector, scalar right, scalar left, outer
// ([2,1] op [1,3]), equal shapes.
inline Cases binaryCases(OpKind kind, DType dt, const std::vector<std::vector<double>>& results) {
  // A = [[1,2,3],[4,5,6]], R = [1,2,4], C = [[2],[4]], S = 2, a = [[1],[2]], b = [[1,2,4]],
  // A2 = [[6,5,4],[3,2,1]].
  const std::vector<double> A = {1, 2, 3, 4, 5, 6};
  struct Scenario {
    const char* label;
    Shape lhsShape;
    std::vector<double> lhs;
    Shape rhsShape;
    std::vector<double> rhs;
    Shape out;
  };
  const std::vector<Scenario> scenarios = {
      {"row vector [3]", {2, 3}, A, {3}, {1, 2, 4}, {2, 3}},
      {"column vector [2,1]", {2, 3}, A, {2, 1}, {2, 4}, {2, 3}},
      {"scalar on the right", {2, 3}, A, {}, {2}, {2, 3}},
      {"scalar on the left", {}, {2}, {2, 3}, A, {2, 3}},
      {"outer [2,1] with [1,3]", {2, 1}, {1, 2}, {1, 3}, {1, 2, 4}, {2, 3}},
      {"equal shapes", {2, 3}, A, {2, 3}, {6, 5, 4, 3, 2, 1}, {2, 3}},
  };
  Cases out;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const Scenario& s = scenarios[i];
    CaseBuilder b(std::string(opName(kind)) + " " + s.label, dt);
    b.output(b.op(kind, {b.fin("a", s.lhsShape, s.lhs), b.fin("b", s.rhsShape, s.rhs)}));
    b.expect("y", s.out, results.at(i));
    out.push_back(b.done());
  }
  return out;
}

struct InterpreterCasesTag {};
/// The interpreter cases of an op, built in float type `dt`.
using InterpreterCaseRegistry = OpCaseRegistry<InterpreterCasesTag, Cases(OpKind kind, DType dt)>;

/// ln 2 and ln 3, for hand-computed values.
inline const double ln2 = std::log(2.0), ln3 = std::log(3.0);

/// Registers the following body as the interpreter cases of the listed ops. The body sees
/// `kind`, `dt` (the float type to build in), `out` (the cases so far) and `add(b)`, which
/// appends CaseBuilder b's case.
#define SHOAL_INTERPRETER_CASES(id, ...)                                                                            \
  static void shoalInterpreterCasesBody_##id(OpKind kind, DType dt, ::shoal::test::Cases& out,                      \
                                             const std::function<void(::shoal::test::CaseBuilder&)>& add);          \
  static ::shoal::test::Cases shoalInterpreterCases_##id(OpKind kind, DType dt) {                                   \
    ::shoal::test::Cases out;                                                                                       \
    shoalInterpreterCasesBody_##id(kind, dt, out, [&](::shoal::test::CaseBuilder& b) { out.push_back(b.done()); }); \
    return out;                                                                                                     \
  }                                                                                                                 \
  SHOAL_OP_CASES_REGISTER(::shoal::test::InterpreterCaseRegistry, shoalInterpreterCases_##id, __VA_ARGS__);         \
  static void shoalInterpreterCasesBody_##id(                                                                       \
      [[maybe_unused]] OpKind kind, [[maybe_unused]] DType dt, [[maybe_unused]] ::shoal::test::Cases& out,          \
      [[maybe_unused]] const std::function<void(::shoal::test::CaseBuilder&)>& add)

}  // namespace shoal::test
