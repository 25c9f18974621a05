// Gradients through the shape family's composite layers (multi-head attention, scaled
// dot-product attention, embedding, split), checked by float64 central differences, and the
// gradient graph they produce.
#include <gtest/gtest.h>

#include "frontend/layers.h"
#include "frontend/layers_shape.h"
#include "ir/printer.h"  // grad_cases.h prints graphs without including it
#include "passes/grad_cases.h"
#include "passes/memory_plan.h"

namespace shoal::test {
namespace {

// Gives every param of the graph that the test did not draw itself (the layers create theirs)
// a drawn value, so central differences and the analytic run start from the same point.
void drawLayerParams(TestGraph& t, Fill fill = Fill::Uniform) {
  for (Node* n : t.g.nodes())
    if (n->kind() == OpKind::Param && !t.params.count(n->result()->name()))
      t.params[n->result()->name()] =
          Tensor::fromDoubles(t.dtype(), n->result()->type().shape, t.draw(n->result()->type().numElements(), fill));
}

TEST(ShapeFamilyGradients, SelfAttentionMatchesCentralDifferences) {
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    TestGraph t(DType::F64, 7);
    Value* x = t.input("x", {DType::F64, {2, 3, 4}}, t.draw(24, Fill::Uniform));
    auto y = layers::multiHeadAttention(t.g, x, x, x, "a", 2, causal, /*bias=*/true, {});
    ASSERT_TRUE(y.has_value()) << y.error().str();
    drawLayerParams(t);
    t.mseLoss(*y);
    checkGradients(t);
  }
}

TEST(ShapeFamilyGradients, CrossAttentionWithoutBiasMatchesCentralDifferences) {
  TestGraph t(DType::F64, 8);
  Value* q = t.param("q", {1, 2, 4});
  Value* m = t.param("m", {1, 3, 4});
  auto y = layers::multiHeadAttention(t.g, q, m, m, "a", 4, /*causal=*/false, /*bias=*/false, {});
  ASSERT_TRUE(y.has_value()) << y.error().str();
  drawLayerParams(t);
  t.mseLoss(*y);
  checkGradients(t);
}

TEST(ShapeFamilyGradients, EmbeddingThenSplitMatchesCentralDifferences) {
  TestGraph t(DType::F64, 9);
  Value* ids = t.constant("ids", {2, 3}, {4, 0, 4, 1, 3, 4}, DType::I64);
  auto e = layers::embedding(t.g, ids, "e", 5, 4, {});
  ASSERT_TRUE(e.has_value()) << e.error().str();
  // The embedding is f32 by design; this test runs in f64, so cast through.
  Value* wide = t.op(OpKind::Cast, {*e}, attrs({{"dtype", std::string("f64")}}));
  auto parts = layers::split(t.g, wide, "s", -1, {1, 3}, 0, {});
  ASSERT_TRUE(parts.has_value()) << parts.error().str();
  Value* joined = t.op(OpKind::Concat, {(*parts)[1], t.op(OpKind::Tanh, {(*parts)[0]})}, attrs({{"axis", int64_t(-1)}}));
  t.mseLoss(joined);
  // The table is f32 (layers::embedding): dyadic values and a power-of-two step keep every
  // perturbed value exact in f32; the rest of the graph runs in f64.
  for (Node* n : t.g.nodes())
    if (n->kind() == OpKind::Param)
      t.params[n->result()->name()] = Tensor::fromDoubles(DType::F32, n->result()->type().shape,
                                                          t.draw(n->result()->type().numElements(), Fill::Dyadic));
  checkGradients(t, /*h=*/1.0 / 1024, /*tol=*/1e-4);
}

TEST(ShapeFamilyGradients, DenseOverTokensMatchesCentralDifferences) {
  TestGraph t(DType::F64, 10);
  Value* x = t.input("x", {DType::F64, {2, 3, 4}}, t.draw(24, Fill::Uniform));
  auto y = layers::dense(t.g, x, "d", 5, /*bias=*/true, "tanh", {});
  ASSERT_TRUE(y.has_value()) << y.error().str();
  EXPECT_EQ((*y)->type().shape, (Shape{2, 3, 5}));
  drawLayerParams(t);
  t.mseLoss(*y);
  checkGradients(t);
}

TEST(ShapeFamilyGradients, PositionEmbeddingMatchesCentralDifferences) {
  // Positions, then a token-wise nonlinearity mixing them with the input, so the gradient of
  // pos.weight sums over the batch (broadcast) and depends on every sample.
  TestGraph t(DType::F64, 11);
  Value* x = t.param("x", {3, 4, 2});
  auto p = layers::positionEmbedding(t.g, x, "pos", 4, 2, {});
  ASSERT_TRUE(p.has_value()) << p.error().str();
  drawLayerParams(t);
  t.mseLoss(t.op(OpKind::Tanh, {*p}));
  checkGradients(t);
}

// The backward graph of attention: no transposes of the GEMM operands are materialised (the
// batch_matmul rule flips transpose flags instead), and the causal mask's gradient is a mask.
TEST(ShapeFamilyGradients, AttentionBackwardUsesTransposeFlags) {
  TestGraph t(DType::F64, 1);
  Value* q = t.param("q", {1, 2, 3, 4});
  Value* k = t.param("k", {1, 2, 3, 4});
  Value* v = t.param("v", {1, 2, 3, 4});
  auto y = layers::scaledDotProductAttention(t.g, q, k, v, "s", /*causal=*/true, 0.0, {});
  ASSERT_TRUE(y.has_value());
  t.mseLoss(*y);
  auto g = t.g.clone();
  ASSERT_TRUE(appendGradients(*g, "loss"));
  EXPECT_EQ(countOps(*g, OpKind::Transpose), 0) << printGraph(*g);
  EXPECT_EQ(countOps(*g, OpKind::BatchMatMul), 2 + 4);  // forward 2, two gradients each
  EXPECT_EQ(countOps(*g, OpKind::CausalMask), 2);
  EXPECT_EQ(countOps(*g, OpKind::SumTo), 0);  // no batch axis was broadcast
  checkGradients(t);
}

// squeeze and unsqueeze carry the view trait: the planner gives them their operand's buffer,
// so they cost no memory and no copy; transpose moves elements and gets its own.
TEST(ShapeFamilyMemory, SqueezeAndUnsqueezeShareTheirOperandsBuffer) {
  TestGraph t(DType::F32);
  Value* x = t.input("x", {DType::F32, {3, 4}}, t.draw(12, Fill::Uniform));
  Value* r = t.op(OpKind::Relu, {x});
  Value* u = t.op(OpKind::Unsqueeze, {r}, attrs({{"axes", std::vector<int64_t>{0, 2}}}));
  Value* s = t.op(OpKind::Squeeze, {u});
  Value* tr = t.op(OpKind::Transpose, {s});
  t.output(t.op(OpKind::Tanh, {tr}), "y");
  auto program = compileProgram(t.g.clone(), CompileOptions{});
  ASSERT_TRUE(program) << program.error().str();
  const Graph& g = *program->graph;
  const MemoryPlan& plan = program->plan;
  const Value* relu = g.findValue(r->name());
  ASSERT_NE(relu, nullptr);
  EXPECT_EQ(plan.bufferOf(g.findValue(u->name())), plan.bufferOf(relu));
  EXPECT_EQ(plan.bufferOf(g.findValue(s->name())), plan.bufferOf(relu));
  EXPECT_NE(plan.bufferOf(g.findValue(tr->name())), plan.bufferOf(relu));
}

}  // namespace
}  // namespace shoal::test
