// The elementwise family on the interpreter beyond the per-op cases: NaN and infinity
// semantics (PyTorch's), and the gradients PyTorch defines at kinks and ties, which central
// differences cannot check.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "frontend/layers.h"
#include "passes/autodiff.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

Attrs attrsOf(std::initializer_list<std::pair<const char*, AttrValue>> entries) {
  Attrs a;
  for (const auto& [k, v] : entries) a.set(k, v);
  return a;
}

struct Operand {
  Shape shape;
  std::vector<double> values;
  DType dtype = DType::F64;  ///< F64 means "the test's float type"
};

// `kind` over the operands (float ones in `dt`), evaluated on the interpreter.
std::vector<double> run(OpKind kind, DType dt, const std::vector<Operand>& operands, Attrs a = {}) {
  Graph g("g");
  Location loc{"t.mmd", 1, 1, "op"};
  TensorMap feed;
  std::vector<Value*> ins;
  for (size_t i = 0; i < operands.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    const DType t = operands[i].dtype == DType::F64 ? dt : operands[i].dtype;
    ins.push_back(layers::input(g, name, {t, operands[i].shape}, loc));
    feed[name] = Tensor::fromDoubles(t, operands[i].shape, operands[i].values);
  }
  auto y = layers::addOp(g, kind, ins, std::move(a), "y", loc);
  EXPECT_TRUE(y.has_value()) << (y ? "" : y.error().str());
  if (!y) return {};
  layers::output(g, *y, "y", loc);
  TensorMap persistent;
  auto out = evaluateGraph(g, feed, persistent);
  EXPECT_TRUE(out.has_value()) << (out ? "" : out.error().str());
  return out ? out->at("y").toDoubles() : std::vector<double>{};
}

// NaN matches NaN, infinities match exactly, finite values to float precision (the values
// here are exact in float64 and rounded once in float32).
::testing::AssertionResult same(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << got.size() << " values, want " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const bool ok = (std::isnan(got[i]) && std::isnan(want[i])) || got[i] == want[i] ||
                    (std::isfinite(want[i]) && std::abs(got[i] - want[i]) <= 1e-7 * std::max(1.0, std::abs(want[i])));
    if (!ok) return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want " << want[i];
  }
  return ::testing::AssertionSuccess();
}

TEST(ElementwiseSemantics, NaNPropagatesAsInPyTorch) {
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    const Operand x{{4}, {kNaN, -1, 0.5, 7}};
    EXPECT_TRUE(same(run(OpKind::Relu6, dt, {x}), {kNaN, 0, 0.5, 6}));
    EXPECT_TRUE(same(run(OpKind::Clip, dt, {x}, attrsOf({{"min", 0.0}, {"max", 1.0}})), {kNaN, 0, 0.5, 1}));
    EXPECT_TRUE(same(run(OpKind::Hardswish, dt, {x}), {kNaN, -1.0 / 3, 0.5 * 3.5 / 6, 7}));
    EXPECT_TRUE(same(run(OpKind::Hardsigmoid, dt, {x}), {kNaN, 1.0 / 3, 0.5 / 6 + 0.5, 1}));
    EXPECT_TRUE(same(run(OpKind::LeakyRelu, dt, {x}, attrsOf({{"alpha", 0.5}})), {kNaN, -0.5, 0.5, 7}));
    EXPECT_TRUE(same(run(OpKind::Abs, dt, {x}), {kNaN, 1, 0.5, 7}));
    // torch.maximum/minimum: NaN on either side wins.
    const Operand y{{4}, {1, kNaN, 0.25, 7}};
    EXPECT_TRUE(same(run(OpKind::Maximum, dt, {x, y}), {kNaN, kNaN, 0.5, 7}));
    EXPECT_TRUE(same(run(OpKind::Minimum, dt, {x, y}), {kNaN, kNaN, 0.25, 7}));
    // torch.amax/amin: a NaN anywhere in the range.
    const Operand m{{2, 3}, {1, kNaN, 3, -1, -2, -3}};
    EXPECT_TRUE(same(run(OpKind::ReduceMax, dt, {m}, attrsOf({{"axes", std::vector<int64_t>{1}}})), {kNaN, -1}));
    EXPECT_TRUE(same(run(OpKind::ReduceMin, dt, {m}, attrsOf({{"axes", std::vector<int64_t>{1}}})), {kNaN, -3}));
    EXPECT_TRUE(same(run(OpKind::ReduceSum, dt, {m}, attrsOf({{"axes", std::vector<int64_t>{0}}})), {0, kNaN, 0}));
    // IEEE comparisons: NaN equals nothing, differs from everything.
    const Operand n{{2}, {kNaN, 1}};
    const Operand n2{{2}, {kNaN, kNaN}};
    EXPECT_TRUE(same(run(OpKind::Equal, dt, {n, n2}), {0, 0}));
    EXPECT_TRUE(same(run(OpKind::NotEqual, dt, {n, n2}), {1, 1}));
    EXPECT_TRUE(same(run(OpKind::LessEqual, dt, {n, n2}), {0, 0}));
    EXPECT_TRUE(same(run(OpKind::GreaterEqual, dt, {n, n2}), {0, 0}));
  }
}

TEST(ElementwiseSemantics, InfinitiesAndDomainsAsInPyTorch) {
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    EXPECT_TRUE(same(run(OpKind::Log, dt, {{{3}, {0, -1, kInf}}}), {-kInf, kNaN, kInf}));
    EXPECT_TRUE(same(run(OpKind::Sqrt, dt, {{{3}, {-1, 0, kInf}}}), {kNaN, 0, kInf}));
    EXPECT_TRUE(same(run(OpKind::Rsqrt, dt, {{{3}, {0, -0.0, kInf}}}), {kInf, -kInf, 0}));
    EXPECT_TRUE(same(run(OpKind::Reciprocal, dt, {{{2}, {0, -0.0}}}), {kInf, -kInf}));
    EXPECT_TRUE(same(run(OpKind::Exp, dt, {{{2}, {1000, -kInf}}}), {kInf, 0}));
    // pow: 0^-1 = inf, 0^0 = 1, NaN^0 = 1, (-8)^(1/3) = NaN, 1^NaN = 1.
    EXPECT_TRUE(same(run(OpKind::Pow, dt, {{{5}, {0, 0, kNaN, -8, 1}}, {{5}, {-1, 0, 0, 1.0 / 3, kNaN}}}),
                     {kInf, 1, 1, kNaN, 1}));
    // No overflow in the activations' tails: silu(-1000) is -0 (x / inf), gelu(-40) is -0,
    // the tanh form at +-40 saturates.
    EXPECT_TRUE(same(run(OpKind::Silu, dt, {{{2}, {-1000, 1000}}}), {0, 1000}));
    EXPECT_TRUE(same(run(OpKind::Gelu, dt, {{{2}, {-40, 40}}}), {0, 40}));
    EXPECT_TRUE(same(run(OpKind::GeluTanh, dt, {{{2}, {-40, 40}}}), {0, 40}));
    EXPECT_TRUE(same(run(OpKind::Erf, dt, {{{3}, {-kInf, 0, 30}}}), {-1, 0, 1}));
  }
}

TEST(ElementwiseSemantics, GradientRowsAtNaNFollowPyTorch) {
  // hardtanh_backward passes dy where x is NaN (neither <= 0 nor >= 6); hardswish_backward
  // does too; clamp's backward mask is false for NaN; abs's sign(NaN) is 0.
  const Operand x{{2}, {kNaN, 2}};
  const Operand dy{{2}, {5, 7}};
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    EXPECT_TRUE(same(run(OpKind::Relu6Grad, dt, {x, dy}), {5, 7}));
    EXPECT_TRUE(same(run(OpKind::HardswishGrad, dt, {x, dy}), {5, 7 * (2.0 / 3 + 0.5)}));
    EXPECT_TRUE(same(run(OpKind::ClipGrad, dt, {x, dy}, attrsOf({{"min", 0.0}, {"max", 3.0}})), {0, 7}));
    EXPECT_TRUE(same(run(OpKind::AbsGrad, dt, {x, dy}), {0, 7}));
  }
}

// d(sum(op(params)))/d(params) by autodiff on the interpreter, in float64.
class Grad {
 public:
  Grad() : g_("grad") {}
  Value* param(const std::string& name, Shape s, std::vector<double> values) {
    persistent_[name] = Tensor::fromDoubles(DType::F64, s, values);
    return layers::param(g_, name, {DType::F64, s}, "zeros", loc());
  }
  Value* op(OpKind kind, std::vector<Value*> ins, Attrs a = {}) {
    auto v = layers::addOp(g_, kind, std::move(ins), std::move(a), "v" + std::to_string(++count_), loc());
    EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().str());
    return v ? *v : nullptr;
  }
  /// The gradient of sum(y) with respect to every param, by name.
  std::map<std::string, std::vector<double>> of(Value* y) {
    auto loss = layers::addOp(g_, OpKind::ReduceSum, {y}, {}, "loss", loc());
    EXPECT_TRUE(loss.has_value());
    layers::output(g_, *loss, "loss", loc());
    auto ok = appendGradients(g_, "loss");
    EXPECT_TRUE(ok.has_value()) << (ok ? "" : ok.error().str());
    auto out = evaluateGraph(g_, {}, persistent_);
    EXPECT_TRUE(out.has_value()) << (out ? "" : out.error().str());
    std::map<std::string, std::vector<double>> grads;
    if (!out) return grads;
    for (const auto& [name, t] : *out)
      if (name.rfind("grad:", 0) == 0) grads[name.substr(5)] = t.toDoubles();
    return grads;
  }

 private:
  static Location loc() { return Location{"g.mmd", 1, 1, "n"}; }
  Graph g_;
  TensorMap persistent_;
  int count_ = 0;
};

std::map<std::string, std::vector<double>> gradOfUnary(OpKind kind, std::vector<double> x, Attrs a = {}) {
  Grad g;
  Value* p = g.param("x", {int64_t(x.size())}, x);
  return g.of(g.op(kind, {p}, std::move(a)));
}

TEST(ElementwiseGradients, KinksTakePyTorchsOneSidedValues) {
  // abs: 0 at 0. relu6: 0 at both kinks. clip: 1 on the bounds (torch.clamp's mask includes
  // them). leaky_relu: the slope at 0. hardswish: the inner piece at -3 and 3. hardsigmoid:
  // 0 at -3 and 3. sqrt: inf at 0.
  EXPECT_TRUE(same(gradOfUnary(OpKind::Abs, {-1, 0, 2})["x"], {-1, 0, 1}));
  EXPECT_TRUE(same(gradOfUnary(OpKind::Relu6, {0, 6, 3, -1, 7})["x"], {0, 0, 1, 0, 0}));
  EXPECT_TRUE(
      same(gradOfUnary(OpKind::Clip, {-1, 1, 0, 2}, attrsOf({{"min", -1.0}, {"max", 1.0}}))["x"], {1, 1, 1, 0}));
  EXPECT_TRUE(same(gradOfUnary(OpKind::LeakyRelu, {0, -1, 1}, attrsOf({{"alpha", 0.125}}))["x"], {0.125, 0.125, 1}));
  EXPECT_TRUE(same(gradOfUnary(OpKind::Hardswish, {-3, 3, -4, 4})["x"], {-0.5, 1.5, 0, 1}));
  auto hs = gradOfUnary(OpKind::Hardsigmoid, {-3, 3, 0})["x"];
  ASSERT_EQ(hs.size(), 3u);
  EXPECT_EQ(hs[0], 0);
  EXPECT_EQ(hs[1], 0);
  EXPECT_DOUBLE_EQ(hs[2], 1.0 / 6);
  EXPECT_TRUE(same(gradOfUnary(OpKind::Sqrt, {0, 4})["x"], {kInf, 0.25}));
}

TEST(ElementwiseGradients, TiesSplitTheGradientEvenly) {
  {
    // torch.maximum / torch.minimum: half to each side of a tie.
    for (OpKind kind : {OpKind::Maximum, OpKind::Minimum}) {
      Grad g;
      Value* a = g.param("a", {3}, {1, 2, 3});
      Value* b = g.param("b", {3}, {2, 2, 1});
      auto d = g.of(g.op(kind, {a, b}));
      const bool max = kind == OpKind::Maximum;
      EXPECT_TRUE(same(d["a"], max ? std::vector<double>{0, 0.5, 1} : std::vector<double>{1, 0.5, 0})) << opName(kind);
      EXPECT_TRUE(same(d["b"], max ? std::vector<double>{1, 0.5, 0} : std::vector<double>{0, 0.5, 1})) << opName(kind);
    }
  }
  {
    // A broadcast operand collects its share from every element it met: b = 2 against
    // a = [1, 2, 3, 2] under maximum: ties at 1 and 3 give 1/2 each, a[2] > b gives 0, a[0] < b 1.
    Grad g;
    Value* a = g.param("a", {4}, {1, 2, 3, 2});
    Value* b = g.param("b", {}, {2});
    auto d = g.of(g.op(OpKind::Maximum, {a, b}));
    EXPECT_TRUE(same(d["a"], {0, 0.5, 1, 0.5}));
    EXPECT_TRUE(same(d["b"], {2}));
  }
  {
    // torch.amax/amin: the gradient of each output shared by the elements equal to it.
    for (OpKind kind : {OpKind::ReduceMax, OpKind::ReduceMin}) {
      Grad g;
      const bool max = kind == OpKind::ReduceMax;
      Value* x =
          g.param("x", {2, 3}, max ? std::vector<double>{1, 3, 3, 2, 2, 2} : std::vector<double>{-1, -3, -3, 2, 2, 2});
      auto d = g.of(g.op(kind, {x}, attrsOf({{"axes", std::vector<int64_t>{1}}})));
      ASSERT_EQ(d["x"].size(), 6u) << opName(kind);
      const std::vector<double> want = {0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3};
      for (size_t i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(d["x"][i], want[i]) << opName(kind) << " " << i;
      // Over every axis (keepdim 0): the two elements equal to the extreme share it.
      Grad h;
      Value* y =
          h.param("x", {2, 3}, max ? std::vector<double>{1, 3, 3, 2, 2, 2} : std::vector<double>{-1, -3, -3, 2, 2, 2});
      EXPECT_TRUE(same(h.of(h.op(kind, {y}))["x"], {0, 0.5, 0.5, 0, 0, 0})) << opName(kind);
    }
  }
}

TEST(ElementwiseGradients, PowZerosAndWhereRouting) {
  {
    // d/da: 0 where b = 0 (even at a = 0, where b a^(b-1) would be 0 * inf); 2 * 0^1 = 0.
    // d/db: 0 where a = 0 and b >= 0; 2^0 ln 2 at a = 2, b = 0.
    Grad g;
    Value* a = g.param("a", {3}, {0, 0, 2});
    Value* b = g.param("b", {3}, {0, 2, 0});
    auto d = g.of(g.op(OpKind::Pow, {a, b}));
    EXPECT_TRUE(same(d["a"], {0, 0, 0}));
    ASSERT_EQ(d["b"].size(), 3u);
    EXPECT_EQ(d["b"][0], 0);
    EXPECT_EQ(d["b"][1], 0);
    EXPECT_DOUBLE_EQ(d["b"][2], std::log(2.0));
  }
  {
    // where: dy to a where cond holds, to b elsewhere; a broadcast b sums its share.
    Grad g;
    Value* c = g.op(OpKind::Greater, {g.param("s", {4}, {1, -1, 2, -2}), g.param("zero", {}, {0})});
    Value* a = g.param("a", {4}, {1, 2, 3, 4});
    Value* b = g.param("b", {1}, {9});
    auto d = g.of(g.op(OpKind::Where, {c, a, b}));
    EXPECT_TRUE(same(d["a"], {1, 0, 1, 0}));
    EXPECT_TRUE(same(d["b"], {2}));
    // The comparison stops the gradient: s and zero get none (zero gradients, not errors).
    EXPECT_EQ(d.count("s"), 0u);
  }
  {
    // reduce_mean: 1/count to every element, keepdim or not.
    Grad g;
    Value* x = g.param("x", {2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
    auto d = g.of(g.op(OpKind::ReduceMean, {x}, attrsOf({{"axes", std::vector<int64_t>{-1}}})));
    EXPECT_TRUE(same(d["x"], std::vector<double>(8, 0.25)));
  }
}

}  // namespace
}  // namespace shoal
