// Graphviz DOT and Mermaid export: exact output for small graphs, escaping, folding.
#include "ir/export.h"

#include <gtest/gtest.h>

#include "ir/graph.h"

namespace shoal {
namespace {

TensorType f32(Shape s) { return {DType::F32, std::move(s)}; }

// input x -> dense d (param d.weight) -> relu r -> output logits
std::unique_ptr<Graph> tinyGraph() {
  auto g = std::make_unique<Graph>("tiny");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g->addNode(OpKind::Input, {}, in, {{"x", f32({2, 3})}}, Location{"tiny.mmd", 2, 3, "x"})->result();
  Attrs p;
  p.set("init", std::string("glorot_uniform"));
  Value* w = g->addNode(OpKind::Param, {}, p, {{"d.weight", f32({4, 3})}}, Location{"tiny.mmd", 3, 3, "d"})->result();
  Value* d = g->addNode(OpKind::Dense, {x, w}, {}, {{"d", f32({2, 4})}}, Location{"tiny.mmd", 3, 3, "d"})->result();
  Value* r = g->addNode(OpKind::Relu, {d}, {}, {{"r", f32({2, 4})}})->result();
  Attrs out;
  out.set("name", std::string("logits"));
  g->addNode(OpKind::Output, {r}, out, {}, Location{"", 0, 0, "out"});
  return g;
}

TEST(Export, DotGolden) {
  EXPECT_EQ(toDot(*tinyGraph()),
            "digraph \"tiny\" {\n"
            "  node [fontname=\"Helvetica\", fontsize=10];\n"
            "  edge [fontname=\"Helvetica\", fontsize=9];\n"
            "  n0 [shape=ellipse, label=\"input\\nx\\nf32[2,3]\"];\n"
            "  n1 [shape=note, label=\"param\\nd.weight\\nf32[4,3]\"];\n"
            "  n2 [shape=box, label=\"dense\\nd\\nf32[2,4]\"];\n"
            "  n3 [shape=box, label=\"relu\\nr\\nf32[2,4]\"];\n"
            "  n4 [shape=box, label=\"output\\nlogits\"];\n"
            "  n0 -> n2 [label=\"x\\nf32[2,3]\"];\n"
            "  n1 -> n2 [label=\"d.weight\\nf32[4,3]\"];\n"
            "  n2 -> n3 [label=\"d\\nf32[2,4]\"];\n"
            "  n3 -> n4 [label=\"r\\nf32[2,4]\"];\n"
            "}\n");
}

TEST(Export, MermaidGolden) {
  EXPECT_EQ(toMermaid(*tinyGraph()),
            "flowchart TD\n"
            "  %% shoal IR graph tiny; param and state operands are folded into their consumers' labels\n"
            "  n0([\"input x<br/>f32[2,3]\"])\n"
            "  n1[\"dense d<br/>f32[2,4]<br/>param d.weight: f32[4,3]\"]\n"
            "  n2[\"relu r<br/>f32[2,4]\"]\n"
            "  n3[/\"output logits\"/]\n"
            "  n0 -->|\"f32[2,3]\"| n1\n"
            "  n1 -->|\"f32[2,4]\"| n2\n"
            "  n2 -->|\"f32[2,4]\"| n3\n");
}

// Optimizer state folds into the update's label; an unused param is still drawn; names with
// quotes and Mermaid's special characters are escaped; a constant is a source shape.
std::unique_ptr<Graph> trickyGraph() {
  auto g = std::make_unique<Graph>("t\"ricky");
  Attrs p;
  p.set("init", std::string("zeros"));
  Value* w = g->addNode(OpKind::Param, {}, p, {{"w", f32({2})}})->result();
  g->addNode(OpKind::Param, {}, p, {{"unused", f32({1})}});
  Value* m = g->addNode(OpKind::State, {}, p, {{"w.m", f32({2})}})->result();
  Value* v = g->addNode(OpKind::State, {}, p, {{"w.v", f32({2})}})->result();
  Attrs c;
  c.set("value", TensorLiteral{{2}, {0.5, 0.5}});
  Value* grad = g->addNode(OpKind::Constant, {}, c, {{"g", f32({2})}})->result();
  Attrs in;
  in.set("name", std::string("step"));
  Value* step = g->addNode(OpKind::Input, {}, in, {{"step", {DType::I64, {}}}})->result();
  in.set("name", std::string("lr"));
  Value* lr = g->addNode(OpKind::Input, {}, in, {{"lr", {DType::F64, {}}}})->result();
  Attrs a;
  g->addNode(OpKind::AdamUpdate, {w, grad, m, v, step, lr}, a, {},
             Location{"t.mmd", 9, 1, "数据 \"q\" #1 <b> & 50% a|b `t`"});
  return g;
}

TEST(Export, MermaidFoldsStateAndEscapesLabels) {
  EXPECT_EQ(toMermaid(*trickyGraph()),
            "flowchart TD\n"
            "  %% shoal IR graph t\"ricky; param and state operands are folded into their consumers' labels\n"
            "  n0[(\"param unused<br/>f32[1]\")]\n"
            "  n1([\"constant g<br/>f32[2]\"])\n"
            "  n2([\"input step<br/>i64[]\"])\n"
            "  n3[\"adam_update 数据 #quot;q#quot; #35;1 #lt;b#gt; #amp; 50#37; a#124;b #96;t#96;"
            "<br/>param w: f32[2]<br/>state w.m: f32[2]<br/>state w.v: f32[2]\"]\n"
            "  n1 -->|\"f32[2]\"| n3\n"
            "  n2 -->|\"i64[]\"| n3\n");
}

TEST(Export, DotEscapesQuotes) {
  std::string dot = toDot(*trickyGraph());
  EXPECT_EQ(dot.substr(0, dot.find('\n')), "digraph \"t\\\"ricky\" {");
  EXPECT_NE(dot.find("  n6 [shape=box, label=\"adam_update\\n数据 \\\"q\\\" #1 <b> & 50% a|b `t`\"];\n"),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("  n0 -> n6 [label=\"w\\nf32[2]\"];\n  n4 -> n6 [label=\"g\\nf32[2]\"];\n"), std::string::npos)
      << dot;
  EXPECT_NE(dot.find("  n1 [shape=note, label=\"param\\nunused\\nf32[1]\"];\n"), std::string::npos) << dot;
  EXPECT_NE(dot.find("  n5 [shape=ellipse, label=\"input\\nstep\\ni64[]\"];\n"), std::string::npos) << dot;
}

}  // namespace
}  // namespace shoal
