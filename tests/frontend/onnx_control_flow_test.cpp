// ONNX control flow resolved at import (frontend/onnx/onnx_ops_control.cpp): If's branch chosen
// by a condition known at import, Loop and Scan unrolled — values by hand, gradients through an
// unrolled loop by central differences, and what needs a run-time decision refused by name.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include "frontend/onnx/onnx_import.h"
#include "onnx_test_models.h"
#include "passes/grad_cases.h"
#include "test_util.h"

namespace {

using namespace shoal;
using namespace shoal::test;

#if SHOAL_HAVE_ONNX

// A value info of ONNX element type `elem` (onnx::TensorProto::FLOAT, BOOL, ...).
void cfValueInfo(onnx::ValueInfoProto* vi, const std::string& name, int32_t elem, const std::vector<int64_t>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

onnx::NodeProto& cfNode(onnx::GraphProto& g, const std::string& op, const std::vector<std::string>& ins,
                        const std::vector<std::string>& outs) {
  auto* n = g.add_node();
  n->set_op_type(op);
  for (const auto& i : ins) n->add_input(i);
  for (const auto& o : outs) n->add_output(o);
  return *n;
}

void cfGraphAttr(onnx::NodeProto& n, const std::string& name, const onnx::GraphProto& g) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = g;
}

constexpr int32_t kF32 = onnx::TensorProto::FLOAT, kI64 = onnx::TensorProto::INT64, kBool = onnx::TensorProto::BOOL;

// A Loop's surroundings with a trip count of 5 and a condition input (true): input x [2],
// output acc_final [2], initializers M, go and acc0 (zeros); the test adds the node.
void conditionedLoopModel(OnnxModelBuilder& b) {
  b.input("x", DType::F32, {int64_t(2)});
  b.output("acc_final", DType::F32, {int64_t(2)});
  b.initializer("M", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{5}));
  Tensor t(DType::Bool, {});
  t.set(0, 1);
  b.initializer("go", t);
  b.initializer("acc0", f32Tensor({2}, {0, 0}));
}

// The branch a constant condition selects, reading an outer value; the other branch (of another
// shape) is never lowered. A condition computed at run time is refused with its origin.
TEST(OnnxControlFlow, IfTakesTheBranchItsConditionSelects) {
  for (bool cond : {true, false}) {
    OnnxModelBuilder b(16);
    b.input("x", DType::F32, {int64_t(3)});
    b.output("y", DType::F32, {int64_t(3)});
    Tensor c(DType::Bool, {});
    c.set(0, cond ? 1 : 0);
    b.initializer("cond", c);
    onnx::GraphProto thenG, elseG;
    thenG.set_name("then");
    elseG.set_name("else");
    cfNode(thenG, "Add", {"x", "x"}, {"doubled"});
    cfValueInfo(thenG.add_output(), "doubled", kF32, {3});
    cfNode(elseG, "Neg", {"x"}, {"negated"});
    cfValueInfo(elseG.add_output(), "negated", kF32, {3});
    auto& n = b.node("If", {"cond"}, {"y"}, "choose");
    cfGraphAttr(n, "then_branch", thenG);
    cfGraphAttr(n, "else_branch", elseG);
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor({3}, {1, -2, 3})}});
    EXPECT_EQ(out["y"].toDoubles(), cond ? (std::vector<double>{2, -4, 6}) : (std::vector<double>{-1, 2, -3}));
  }
  OnnxModelBuilder b(16);
  b.input("x", DType::F32, {int64_t(3)});
  b.output("y", DType::F32, {int64_t(3)});
  constantNode(b, "zero", f32Tensor({}, {0}));
  b.node("ReduceSum", {"x"}, {"s"}, "sum");
  b.node("Greater", {"s", "zero"}, {"positive"}, "is_positive");
  onnx::GraphProto g;
  g.set_name("branch");
  cfNode(g, "Identity", {"x"}, {"same"});
  cfValueInfo(g.add_output(), "same", kF32, {3});
  auto& n = b.node("If", {"positive"}, {"y"}, "choose");
  cfGraphAttr(n, "then_branch", g);
  cfGraphAttr(n, "else_branch", g);
  auto p = importOnnxFile(b.save(tempDir()), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().error.message().find("the condition ('positive') is computed at run time"), std::string::npos)
      << p.error().error.str();
  EXPECT_NE(p.error().error.message().find("graph input 'x'"), std::string::npos) << p.error().error.str();
}

// A Loop body: (i, cond, acc) -> (i < limit, acc + x · (i + 1), acc) with x from outside;
// `limit` makes the body's condition end the loop early when the condition input is given.
onnx::GraphProto accumulateBody(int64_t limit) {
  onnx::GraphProto body;
  body.set_name("body");
  cfValueInfo(body.add_input(), "i", kI64, {});
  cfValueInfo(body.add_input(), "cond_in", kBool, {});
  cfValueInfo(body.add_input(), "acc", kF32, {2});
  auto* lim = body.add_initializer();
  fillTensorProto(lim, "limit", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{double(limit)}));
  auto* one = body.add_initializer();
  fillTensorProto(one, "one", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{1}));
  cfNode(body, "Less", {"i", "limit"}, {"cond_out"});
  cfNode(body, "Add", {"i", "one"}, {"i1"});
  attrInt(cfNode(body, "Cast", {"i1"}, {"i1f"}), "to", kF32);
  cfNode(body, "Mul", {"x", "i1f"}, {"term"});
  cfNode(body, "Add", {"acc", "term"}, {"acc_out"});
  cfNode(body, "Identity", {"acc"}, {"scan_out"});
  cfValueInfo(body.add_output(), "cond_out", kBool, {});
  cfValueInfo(body.add_output(), "acc_out", kF32, {2});
  cfValueInfo(body.add_output(), "scan_out", kF32, {2});
  return body;
}

TEST(OnnxControlFlow, LoopUnrollsWithCarriedValuesAndScanOutputs) {
  // Trip count 3, no condition input (a for loop: the body's condition is ignored).
  {
    OnnxModelBuilder b(16);
    b.input("x", DType::F32, {int64_t(2)});
    b.output("acc_final", DType::F32, {int64_t(2)});
    b.output("history", DType::F32, {int64_t(3), int64_t(2)});
    b.initializer("M", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{3}));
    b.initializer("acc0", f32Tensor({2}, {0.5, 0}));
    cfGraphAttr(b.node("Loop", {"M", "", "acc0"}, {"acc_final", "history"}, "loop"), "body", accumulateBody(0));
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor({2}, {1, 10})}});
    // acc: 0.5,0 -> +1x -> +2x -> +3x = 6.5, 60; history holds acc before each step.
    EXPECT_EQ(out["acc_final"].toDoubles(), (std::vector<double>{6.5, 60}));
    EXPECT_EQ(out["history"].toDoubles(), (std::vector<double>{0.5, 0, 1.5, 10, 3.5, 30}));
  }
  // Trip count 5 and a condition: the body's i < 1 stops it after steps 0 and 1.
  {
    OnnxModelBuilder b(16);
    conditionedLoopModel(b);
    auto& n = b.node("Loop", {"M", "go", "acc0"}, {"acc_final", "unused_scan"}, "loop");
    cfGraphAttr(n, "body", accumulateBody(1));
    auto out = runOnnxOnCpu(b, {{"x", f32Tensor({2}, {1, 10})}});
    EXPECT_EQ(out["acc_final"].toDoubles(), (std::vector<double>{3, 30}));  // 1x + 2x
  }
}

// A condition the body computes from run-time values cannot be unrolled: refused by name.
TEST(OnnxControlFlow, ALoopConditionComputedAtRunTimeIsRefused) {
  OnnxModelBuilder b(16);
  conditionedLoopModel(b);
  onnx::GraphProto body;
  body.set_name("body");
  cfValueInfo(body.add_input(), "i", kI64, {});
  cfValueInfo(body.add_input(), "cond_in", kBool, {});
  cfValueInfo(body.add_input(), "acc", kF32, {2});
  cfNode(body, "Add", {"acc", "x"}, {"acc_out"});
  cfNode(body, "ReduceSum", {"acc_out"}, {"total"});
  cfNode(body, "Less", {"total", "x_limit"}, {"cond_out"});
  auto* lim = body.add_initializer();
  fillTensorProto(lim, "x_limit", f32Tensor({1}, {100}));
  cfValueInfo(body.add_output(), "cond_out", kBool, {1});
  cfValueInfo(body.add_output(), "acc_out", kF32, {2});
  cfGraphAttr(b.node("Loop", {"M", "go", "acc0"}, {"acc_final"}, "loop"), "body", body);
  auto p = importOnnxFile(b.save(tempDir()), {});
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().error.message().find("node 'loop' (Loop"), std::string::npos) << p.error().error.str();
  EXPECT_NE(p.error().error.message().find("is computed at run time; shoal unrolls loops at import"), std::string::npos)
      << p.error().error.str();
}

// Scan: a running sum over the rows of x [3, 2] read in reverse, the outputs stacked along axis
// 1 (so [2, 3]) — 5,6 -> 8,10 -> 9,12 for rows (1,2), (3,4), (5,6).
TEST(OnnxControlFlow, ScanRunsItsBodyOverTheSteps) {
  OnnxModelBuilder b(11);
  b.input("x", DType::F32, {int64_t(3), int64_t(2)});
  b.output("sum", DType::F32, {int64_t(2)});
  b.output("partials", DType::F32, {int64_t(2), int64_t(3)});
  b.initializer("init", f32Tensor({2}, {0, 0}));
  onnx::GraphProto body;
  body.set_name("body");
  cfValueInfo(body.add_input(), "s_in", kF32, {2});
  cfValueInfo(body.add_input(), "row", kF32, {2});
  cfNode(body, "Add", {"s_in", "row"}, {"s_out"});
  cfNode(body, "Identity", {"s_out"}, {"partial"});
  cfValueInfo(body.add_output(), "s_out", kF32, {2});
  cfValueInfo(body.add_output(), "partial", kF32, {2});
  auto& n = b.node("Scan", {"init", "x"}, {"sum", "partials"}, "scan");
  cfGraphAttr(n, "body", body);
  attrInt(n, "num_scan_inputs", 1);
  attrInts(n, "scan_input_directions", {1});
  attrInts(n, "scan_output_axes", {1});
  auto out = runOnnxOnCpu(b, {{"x", f32Tensor({3, 2}, {1, 2, 3, 4, 5, 6})}});
  EXPECT_EQ(out["sum"].toDoubles(), (std::vector<double>{9, 12}));
  EXPECT_EQ(out["partials"].toDoubles(), (std::vector<double>{5, 8, 9, 6, 10, 12}));
}

// Training through an unrolled loop: acc <- acc · w + x three times, w and x parameters.
TEST(OnnxControlFlow, GradientsFlowThroughAnUnrolledLoop) {
  OnnxModelBuilder b(16);
  b.input("x", DType::F64, {int64_t(2)});
  b.output("acc_final", DType::F64, {int64_t(2)});
  b.initializer("M", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{3}));
  b.initializer("w", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.7, -1.3}));
  b.initializer("acc0", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.2, 0.4}));
  onnx::GraphProto body;
  body.set_name("body");
  cfValueInfo(body.add_input(), "i", kI64, {});
  cfValueInfo(body.add_input(), "cond_in", kBool, {});
  cfValueInfo(body.add_input(), "acc", onnx::TensorProto::DOUBLE, {2});
  cfNode(body, "Mul", {"acc", "w"}, {"scaled"});
  cfNode(body, "Add", {"scaled", "x"}, {"acc_out"});
  cfNode(body, "Identity", {"cond_in"}, {"cond_out"});
  cfValueInfo(body.add_output(), "cond_out", kBool, {});
  cfValueInfo(body.add_output(), "acc_out", onnx::TensorProto::DOUBLE, {2});
  cfGraphAttr(b.node("Loop", {"M", "", "acc0"}, {"acc_final"}, "loop"), "body", body);
  std::string path = b.save(tempDir());
  TestGraph t(DType::F64);
  Value* x = t.param("x", {2});
  auto outs = importOnnxInto(t.g, path, {x}, "m", Location{path, 0, 0, "m"});
  ASSERT_TRUE(outs) << outs.error().error.str();
  t.params = {{"x", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.3, -0.8})},
              {"w", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.7, -1.3})},
              {"acc0", Tensor::fromDoubles(DType::F64, {2}, std::vector<double>{0.2, 0.4})}};
  t.mseLoss((*outs)[0]);
  checkGradients(t);
}

#endif

}  // namespace
