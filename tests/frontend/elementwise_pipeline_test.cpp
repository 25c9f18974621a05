// The elementwise family's pipeline spellings: `gelu` and `gelu: approximate=tanh`, `where`
// with labelled or ordered edges, reductions with axes/keepdim, comparisons and the plain
// ops with attributes; and the errors a wrong spelling gets.
#include <gtest/gtest.h>

#include "frontend/pipeline_loader.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

std::optional<Pipeline> loadElementwise(const std::string& body, DiagnosticEngine& diags) {
  return loadPipelineText("flowchart TD\n" + body, "p.mmd", diags);
}

// The node whose result is named `name` (a pipeline node id).
const Node* node(const Graph& g, const std::string& name) {
  for (const Node* n : g.nodes())
    if (n->numResults() == 1 && n->result()->name() == name) return n;
  return nullptr;
}

TEST(ElementwisePipeline, GeluTakesPyTorchsApproximateArgument) {
  DiagnosticEngine diags;
  auto p = loadElementwise(
      "  x[input: shape=2x3] --> a[gelu] --> oa[output: name=a]\n"
      "  x --> b[gelu: approximate=tanh] --> ob[output: name=b]\n"
      "  x --> c[gelu: approximate=none] --> oc[output: name=c]\n"
      "  x --> d[gelu_tanh] --> od[output: name=d]\n",
      diags);
  ASSERT_TRUE(p) << diags.render();
  EXPECT_EQ(node(*p->model, "a")->kind(), OpKind::Gelu);
  EXPECT_EQ(node(*p->model, "b")->kind(), OpKind::GeluTanh);
  EXPECT_EQ(node(*p->model, "c")->kind(), OpKind::Gelu);
  EXPECT_EQ(node(*p->model, "d")->kind(), OpKind::GeluTanh);

  DiagnosticEngine bad;
  EXPECT_FALSE(loadElementwise("  x[input: shape=2] --> g[gelu: approximate=erf] --> o[output]\n", bad));
  EXPECT_NE(bad.render().find("error: 'approximate' must be none or tanh, got \"erf\""), std::string::npos)
      << bad.render();
  DiagnosticEngine typo;
  EXPECT_FALSE(loadElementwise("  x[input: shape=2] --> g[gelu: aproximate=tanh] --> o[output]\n", typo));
  EXPECT_NE(typo.render().find("gelu does not take 'aproximate' (did you mean 'approximate'?)"), std::string::npos)
      << typo.render();
}

TEST(ElementwisePipeline, WhereOperandsByEdgeLabelOrOrder) {
  DiagnosticEngine diags;
  // Labelled in an order that is not the operand order.
  auto p = loadElementwise(
      "  q[input: shape=4] -->|b| w[where]\n"
      "  r[input: shape=4] -->|a| w\n"
      "  c[input: shape=4 dtype=bool] -->|cond| w\n"
      "  w --> o[output: name=y]\n",
      diags);
  ASSERT_TRUE(p) << diags.render();
  const Node* w = node(*p->model, "w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->kind(), OpKind::Where);
  EXPECT_EQ(w->input(0)->name(), "c");
  EXPECT_EQ(w->input(1)->name(), "r");
  EXPECT_EQ(w->input(2)->name(), "q");
  // Unlabelled edges fill the places in order; a comparison feeds the condition.
  auto u = loadElementwise(
      "  x[input: shape=4] -->|lhs| g[greater]\n"
      "  z[\"constant: value=0\"] -->|rhs| g\n"
      "  g --> w[where]\n"
      "  x --> w\n"
      "  z --> w\n"
      "  w --> o[output: name=y]\n",
      diags);
  ASSERT_TRUE(u) << diags.render();
  const Node* uw = node(*u->model, "w");
  EXPECT_EQ(uw->input(0)->name(), "g");
  EXPECT_EQ(uw->input(1)->name(), "x");
  EXPECT_EQ(uw->input(2)->name(), "z");
  TensorMap persistent;
  auto out = evaluateGraph(*u->model, {{"x", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{-1, 2, 0, 3})}},
                           persistent);
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("y").toDoubles(), (std::vector<double>{0, 2, 0, 3}));

  DiagnosticEngine two;
  EXPECT_FALSE(
      loadElementwise("  c[input: shape=4 dtype=bool] --> w[where]\n  a[input: shape=4] --> w\n  w --> o[output]\n", two));
  EXPECT_NE(two.render().find("error: where 'w' takes three inputs (label the edges cond, a and b), got 2"),
            std::string::npos)
      << two.render();
  DiagnosticEngine label;
  EXPECT_FALSE(loadElementwise("  c[input: shape=4 dtype=bool] -->|maybe| w[where]\n  w --> o[output]\n", label));
  EXPECT_NE(label.render().find("where 'w': edge label 'maybe' names no operand (cond, a or b)"), std::string::npos)
      << label.render();
  DiagnosticEngine twice;
  EXPECT_FALSE(
      loadElementwise("  c[input: shape=4 dtype=bool] -->|cond| w[where]\n  a[input: shape=4] -->|a| w\n"
           "  b[input: shape=4] -->|a| w\n  w --> o[output]\n",
           twice));
  EXPECT_NE(twice.render().find("where 'w': two edges name operand a"), std::string::npos) << twice.render();
  DiagnosticEngine notBool;
  EXPECT_FALSE(
      loadElementwise("  c[input: shape=4] -->|cond| w[where]\n  a[input: shape=4] -->|a| w\n  b[input: shape=4] -->|b| w\n"
           "  w --> o[output]\n",
           notBool));
  EXPECT_NE(notBool.render().find("where 'w': condition must be bool, got f32[4] (compare first, or cast)"),
            std::string::npos)
      << notBool.render();
}

TEST(ElementwisePipeline, ReductionsTakeAxesAndKeepdim) {
  DiagnosticEngine diags;
  auto p = loadElementwise(
      "  x[input: shape=2x3x4x5] --> m[reduce_mean: axes=2,3 keepdim=1] --> om[output: name=m]\n"
      "  x --> s[reduce_sum] --> os[output: name=s]\n"
      "  x --> a[reduce_max: axes=-1 keepdim=true] --> oa[output: name=a]\n"
      "  x --> b[reduce_min: axes=1] --> ob[output: name=b]\n",
      diags);
  ASSERT_TRUE(p) << diags.render();
  EXPECT_EQ(node(*p->model, "m")->result()->type(), (TensorType{DType::F32, {2, 3, 1, 1}}));
  EXPECT_EQ(node(*p->model, "s")->result()->type(), (TensorType{DType::F32, {}}));
  EXPECT_EQ(node(*p->model, "a")->result()->type(), (TensorType{DType::F32, {2, 3, 4, 1}}));
  EXPECT_EQ(node(*p->model, "b")->result()->type(), (TensorType{DType::F32, {2, 4, 5}}));

  DiagnosticEngine bad;
  EXPECT_FALSE(loadElementwise("  x[input: shape=2x3] --> m[reduce_mean: axes=2] --> o[output]\n", bad));
  EXPECT_NE(bad.render().find("reduce_mean 'm': axis 2 is out of range for f32[2,3] (axes lie in [-2, 2))"),
            std::string::npos)
      << bad.render();
}

TEST(ElementwisePipeline, PlainOpsTakeTheirAttributes) {
  DiagnosticEngine diags;
  auto p = loadElementwise(
      "  x[input: shape=5] --> c[clip: min=0 max=6] --> oc[output: name=c]\n"
      "  x --> l[leaky_relu: alpha=0.2] --> ol[output: name=l]\n"
      "  x --> h[hardsigmoid: alpha=0.2] --> oh[output: name=h]\n"
      "  x -->|lhs| p[pow]\n"
      "  y[input: shape=5] -->|rhs| p\n"
      "  p --> op[output: name=p]\n"
      "  x -->|lhs| e[less_equal]\n"
      "  y -->|rhs| e\n"
      "  e --> f[cast: dtype=f32] --> oe[output: name=e]\n",
      diags);
  ASSERT_TRUE(p) << diags.render();
  EXPECT_EQ(node(*p->model, "c")->attrs().getFloat("min"), 0.0);
  EXPECT_EQ(node(*p->model, "c")->attrs().getFloat("max"), 6.0);
  EXPECT_EQ(node(*p->model, "l")->attrs().getFloat("alpha"), 0.2);
  EXPECT_EQ(node(*p->model, "h")->attrs().getFloat("beta"), 0.5);
  EXPECT_EQ(node(*p->model, "e")->result()->type(), (TensorType{DType::Bool, {5}}));
  TensorMap persistent;
  TensorMap feed = {{"x", Tensor::fromDoubles(DType::F32, {5}, std::vector<double>{-1, 0, 2, 7, 3})},
                    {"y", Tensor::fromDoubles(DType::F32, {5}, std::vector<double>{2, 0, 3, 1, 2})}};
  auto out = evaluateGraph(*p->model, feed, persistent);
  ASSERT_TRUE(out) << out.error().str();
  EXPECT_EQ(out->at("c").toDoubles(), (std::vector<double>{0, 0, 2, 6, 3}));
  EXPECT_EQ(out->at("p").toDoubles(), (std::vector<double>{1, 1, 8, 7, 9}));
  EXPECT_EQ(out->at("e").toDoubles(), (std::vector<double>{1, 1, 1, 0, 0}));
}

}  // namespace
}  // namespace shoal
