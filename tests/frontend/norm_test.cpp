// The norm family's pipeline layers: what bn[batchnorm], ln[layernorm], gn[groupnorm] and
// dr[dropout] lower to (params and state under PyTorch's names, attributes), and their
// argument errors (the malformed files in tests/frontend/invalid/ cover the rest).
#include <gtest/gtest.h>

#include "frontend/pipeline_loader.h"
#include "ir/printer.h"

namespace shoal {
namespace {

std::optional<Pipeline> loadNorm(const std::string& layers, DiagnosticEngine& diags) {
  return loadPipelineText("flowchart TD\n  x[input: shape=8x6x4x4] --> " + layers + " --> out[output: name=y]\n",
                          "n.mmd", diags);
}

const Node* nodeOf(const Graph& g, OpKind kind) {
  for (const Node* n : g.nodes())
    if (n->kind() == kind) return n;
  return nullptr;
}

// name -> "op type init" of every param and state.
std::map<std::string, std::string> persistent(const Graph& g) {
  std::map<std::string, std::string> out;
  for (const Node* n : g.nodes())
    if (isPersistentSource(n->kind()))
      out[n->result()->name()] =
          std::string(n->opName()) + " " + n->result()->type().str() + " " + n->attrs().getString("init");
  return out;
}

TEST(NormLayers, BatchNormHasPyTorchsParamsAndState) {
  DiagnosticEngine diags;
  auto p = loadNorm("bn[batchnorm: momentum=0.2 eps=1e-3]", diags);
  ASSERT_TRUE(p) << diags.render();
  EXPECT_EQ(persistent(*p->model), (std::map<std::string, std::string>{
                                       {"bn.weight", "param f32[6] ones"},
                                       {"bn.bias", "param f32[6] zeros"},
                                       {"bn.running_mean", "state f32[6] zeros"},
                                       {"bn.running_var", "state f32[6] ones"},
                                       {"bn.num_batches_tracked", "state i64[] zeros"},
                                   }));
  const Node* bn = nodeOf(*p->model, OpKind::BatchNorm);
  ASSERT_NE(bn, nullptr);
  EXPECT_EQ(printNode(*bn),
            "%bn = batchnorm(%x, %bn.running_mean, %bn.running_var, %bn.weight, %bn.bias) {eps=0.001, momentum=0.2} : "
            "f32[8,6,4,4] loc(\"n.mmd\":2:34 node=\"bn\")");

  auto plain = loadNorm("bn[batchnorm: affine=false]", diags);
  ASSERT_TRUE(plain) << diags.render();
  EXPECT_EQ(nodeOf(*plain->model, OpKind::BatchNorm)->numInputs(), 3u);
  EXPECT_EQ(nodeOf(*plain->model, OpKind::BatchNorm)->attrs().getFloat("momentum"), 0.1);
  EXPECT_EQ(persistent(*plain->model).count("bn.weight"), 0u);
}

TEST(NormLayers, LayerNormTakesDimsOrTheNormalizedShape) {
  DiagnosticEngine diags;
  auto last = loadNorm("ln[layernorm]", diags);
  ASSERT_TRUE(last) << diags.render();
  EXPECT_EQ(nodeOf(*last->model, OpKind::LayerNorm)->attrs().getInt("dims"), 1);
  EXPECT_EQ(persistent(*last->model).at("ln.weight"), "param f32[4] ones");
  for (const char* spelling : {"ln[layernorm: dims=3]", "ln[layernorm: shape=6x4x4]"}) {
    SCOPED_TRACE(spelling);
    auto p = loadNorm(spelling, diags);
    ASSERT_TRUE(p) << diags.render();
    EXPECT_EQ(nodeOf(*p->model, OpKind::LayerNorm)->attrs().getInt("dims"), 3);
    EXPECT_EQ(persistent(*p->model).at("ln.bias"), "param f32[6,4,4] zeros");
  }
  auto plain = loadNorm("ln[layernorm: affine=false eps=0.1]", diags);
  ASSERT_TRUE(plain) << diags.render();
  EXPECT_TRUE(persistent(*plain->model).empty());
  EXPECT_EQ(nodeOf(*plain->model, OpKind::LayerNorm)->attrs().getFloat("eps"), 0.1);

  DiagnosticEngine errors;
  EXPECT_FALSE(loadNorm("ln[layernorm: dims=1 shape=4]", errors));
  EXPECT_NE(errors.render().find("layernorm 'ln' takes dims or shape, not both"), std::string::npos) << errors.render();
  DiagnosticEngine tooMany;
  EXPECT_FALSE(loadNorm("ln[layernorm: dims=5]", tooMany));
  EXPECT_NE(tooMany.render().find("'dims' must be at most the rank of the input f32[8,6,4,4], got 5"),
            std::string::npos)
      << tooMany.render();
}

TEST(NormLayers, GroupNormAndDropout) {
  DiagnosticEngine diags;
  auto p = loadNorm("gn[groupnorm: groups=3] --> dr[dropout: rate=0.1] --> dd[dropout]", diags);
  ASSERT_TRUE(p) << diags.render();
  EXPECT_EQ(nodeOf(*p->model, OpKind::GroupNorm)->attrs().getInt("groups"), 3);
  EXPECT_EQ(persistent(*p->model).at("gn.weight"), "param f32[6] ones");
  std::vector<double> rates;
  for (const Node* n : p->model->nodes())
    if (n->kind() == OpKind::Dropout) rates.push_back(n->attrs().getFloat("rate"));
  EXPECT_EQ(rates, (std::vector<double>{0.1, 0.5}));  // PyTorch's default p is 0.5
}

}  // namespace
}  // namespace shoal
