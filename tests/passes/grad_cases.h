// Gradient-check cases per op: small float64 graphs whose loss depends on the op, checked by
// central differences against the autodiff pass. Each op family's test file registers its
// ops' cases with SHOAL_GRAD_CASES; tests/passes/autodiff_test.cpp runs them and fails for a
// differentiable op without cases (or a non-differentiable op with some).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <random>

#include "ir/printer.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "ir_builders.h"
#include "op_case_registry.h"
#include "passes/autodiff.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"

namespace shoal::test {

/// How a test param's (or constant's) values are drawn.
enum class Fill {
  Uniform,       ///< U(-1, 1)
  AwayFromZero,  ///< ±U(0.5, 1.5): no relu kink within reach, safe divisors
  Distinct,      ///< a shuffled ramp, steps of 0.05: no max-pool ties within reach
  Dyadic,        ///< k/256: exact in f32 too
};

// A forward graph under construction, with the values its params and inputs start from.
class TestGraph {
 public:
  explicit TestGraph(DType dtype = DType::F64, uint64_t seed = 42) : dtype_(dtype), rng_(seed) {}

  Graph g{"test"};
  TensorMap params;  ///< initial param values by name
  TensorMap inputs;  ///< input tensors by input name

  DType dtype() const { return dtype_; }

  std::vector<double> draw(int64_t count, Fill fill) {
    std::vector<double> v(static_cast<size_t>(count));
    std::uniform_real_distribution<double> u(-1.0, 1.0), mag(0.5, 1.5), jitter(0.0, 0.01);
    std::uniform_int_distribution<int> k(-200, 200), coin(0, 1);
    for (int64_t i = 0; i < count; ++i) {
      switch (fill) {
        case Fill::Uniform:
          v[size_t(i)] = u(rng_);
          break;
        case Fill::AwayFromZero:
          v[size_t(i)] = (coin(rng_) ? 1.0 : -1.0) * mag(rng_);
          break;
        case Fill::Distinct:
          v[size_t(i)] = -1.0 + 0.05 * double(i) + jitter(rng_);
          break;
        case Fill::Dyadic:
          v[size_t(i)] = double(k(rng_)) / 256.0;
          break;
      }
    }
    if (fill == Fill::Distinct) std::shuffle(v.begin(), v.end(), rng_);
    return v;
  }

  Value* input(const std::string& name, TensorType t, Location loc = {}) {
    return g.addNode(OpKind::Input, {}, attrs({{"name", name}}), {{name, t}}, loc)->result();
  }
  /// An input fed with the given values.
  Value* input(const std::string& name, TensorType t, const std::vector<double>& values) {
    inputs[name] = Tensor::fromDoubles(t.dtype, t.shape, values);
    return input(name, t);
  }
  Value* param(const std::string& name, Shape shape, Fill fill = Fill::Uniform, Location loc = {}) {
    params[name] = Tensor::fromDoubles(dtype_, shape, draw(numElements(shape), fill));
    Node* n = g.addNode(OpKind::Param, {}, attrs({{"init", std::string("zeros")}}), {{name, {dtype_, shape}}}, loc);
    fillDefaultAttrs(*n);
    return n->result();
  }
  Value* constant(const std::string& name, Shape shape, std::vector<double> values, DType dt) {
    return g
        .addNode(OpKind::Constant, {}, attrs({{"value", TensorLiteral{shape, std::move(values)}}}),
                 {{name, {dt, shape}}})
        ->result();
  }
  Value* op(OpKind kind, std::vector<Value*> ins, Attrs a = {}, std::string name = "", Location loc = {}) {
    if (name.empty()) name = std::string(opName(kind));
    Node* n = g.addNode(kind, std::move(ins), std::move(a), {{name, {dtype_, {}}}}, std::move(loc));
    fillDefaultAttrs(*n);
    auto types = inferResultTypes(*n);
    if (!types) {
      ADD_FAILURE() << "building the test graph: " << types.error().str();
      return n->result();
    }
    n->result()->setType((*types)[0]);
    return n->result();
  }
  void output(Value* v, const std::string& name, Location loc = {}) {
    g.addNode(OpKind::Output, {v}, attrs({{"name", name}}), {}, std::move(loc));
  }
  /// mse(y, random constant target), as the output "loss".
  void mseLoss(Value* y, Fill fill = Fill::Uniform) {
    Value* target = constant("target", y->type().shape, draw(y->type().numElements(), fill), y->type().dtype);
    output(op(OpKind::Mse, {y, target}, {}, "loss"), "loss");
  }

 private:
  DType dtype_;
  std::mt19937_64 rng_;
};

inline std::string verifyMessage(const Graph& g) {
  auto ok = verifyGraph(g);
  return ok ? std::string() : ok.error().str() + "\n" + printGraph(g);
}

inline int countOps(const Graph& g, OpKind kind) {
  return int(std::count_if(g.nodes().begin(), g.nodes().end(), [&](Node* n) { return n->kind() == kind; }));
}

inline const Node* inputNamed(const Graph& g, const std::string& name) {
  for (Node* n : g.inputNodes())
    if (n->attrs().getString("name") == name) return n;
  return nullptr;
}

// ---- finite differences ----------------------------------------------------------------

/// Analytic gradients (appendGradients, run by evaluateGraph) against central differences of
/// the loss, for every param of `t` (f64).
inline void checkGradients(TestGraph& t, double h = 1e-6, double tol = 1e-6) {
  ASSERT_EQ(verifyMessage(t.g), "");
  auto withGrads = t.g.clone();
  auto ok = appendGradients(*withGrads, "loss");
  ASSERT_TRUE(ok) << ok.error().str();
  ASSERT_EQ(verifyMessage(*withGrads), "");
  TensorMap persistent;
  for (auto& [name, value] : t.params) persistent[name] = value.clone();
  auto analytic = evaluateGraph(*withGrads, t.inputs, persistent, 1);
  ASSERT_TRUE(analytic) << analytic.error().str() << "\n" << printGraph(*withGrads);

  CompileOptions opts;
  opts.disabledPasses = {"fold-constants", "dce"};
  opts.verifyEach = true;
  auto program = compileProgram(t.g.clone(), opts);
  ASSERT_TRUE(program) << program.error().str();
  auto exe = CpuExecutable::create(std::move(*program));
  ASSERT_TRUE(exe) << exe.error().str();
  ASSERT_TRUE((*exe)->writePersistent(t.params));
  auto lossAt = [&](const std::string& name, const Tensor& value) {
    EXPECT_TRUE((*exe)->writePersistent({{name, value}}));
    auto out = (*exe)->run(t.inputs);
    EXPECT_TRUE(out) << out.error().str();
    return out ? out->at("loss").at(0) : NAN;
  };

  for (const auto& [name, base] : t.params) {
    auto it = analytic->find("grad:" + name);
    ASSERT_NE(it, analytic->end()) << "no gradient output for " << name;
    const Tensor& grad = it->second;
    ASSERT_EQ(grad.shape(), base.shape()) << name;
    int failures = 0;
    for (int64_t j = 0; j < base.numElements(); ++j) {
      Tensor plus = base.clone(), minus = base.clone();
      plus.set(j, base.at(j) + h);
      minus.set(j, base.at(j) - h);
      double numeric = (lossAt(name, plus) - lossAt(name, minus)) / (2 * h);
      double a = grad.at(j);
      double err = std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), 1e-3});
      if (err >= tol && ++failures <= 5)
        ADD_FAILURE() << name << "[" << j << "]: analytic " << a << ", numeric " << numeric << ", relative error "
                      << err;
    }
    EXPECT_EQ(failures, 0) << name;
    lossAt(name, base);
  }
}

struct GradCase {
  std::string label;
  std::function<void(TestGraph&)> build;  ///< a graph with params and an output "loss"
  double h = 1e-6;
};

// mse(op(params...)) for one op.
inline std::vector<GradCase> binaryCases(OpKind kind) {
  Fill bFill = kind == OpKind::Div ? Fill::AwayFromZero : Fill::Uniform;
  auto make = [=](Shape a, Shape b) {
    return [=](TestGraph& t) { t.mseLoss(t.op(kind, {t.param("a", a), t.param("b", b, bFill)})); };
  };
  return {{"same shape", make({2, 3}, {2, 3})},
          {"b broadcast [3,1] to [2,3,4]", make({2, 3, 4}, {3, 1})},
          {"b scalar", make({2, 3}, {})},
          {"both broadcast", make({3, 1}, {2, 1, 4})}};
}

/// The finite-difference cases of an op; empty exactly for the ops with no gradient rule.
struct GradCasesTag {};
/// The gradient-check cases of an op.
using GradCaseRegistry = OpCaseRegistry<GradCasesTag, std::vector<GradCase>(OpKind kind)>;

/// Registers the following body (returning std::vector<GradCase>; it sees `kind`) as the
/// gradient-check cases of the listed ops.
#define SHOAL_GRAD_CASES(id, ...)                                                             \
  static std::vector<::shoal::test::GradCase> shoalGradCases_##id(OpKind kind);               \
  SHOAL_OP_CASES_REGISTER(::shoal::test::GradCaseRegistry, shoalGradCases_##id, __VA_ARGS__); \
  static std::vector<::shoal::test::GradCase> shoalGradCases_##id([[maybe_unused]] OpKind kind)

}  // namespace shoal::test
