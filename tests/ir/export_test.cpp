// Graphviz DOT and Mermaid export: exact output for small graphs, escaping, folding.
#include "ir/export.h"

#include <gtest/gtest.h>

#include "ir/graph.h"
#include "ir_builders.h"

namespace shoal {
namespace {

using test::f32;

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
            "  %% shoal IR graph tiny: each node holds IR ops (a param or state folded into the op that reads it), "
            "edges carry values; shoal loads this file back\n"
            "  n0([\"#37;x = input()<br/>{name=#quot;x#quot;}<br/>: f32[2,3]\"])\n"
            "  n1[\"#37;d.weight = param()<br/>{init=#quot;glorot_uniform#quot;}<br/>: f32[4,3]<br/>"
            "#37;d = dense(#37;x, #37;d.weight)<br/>: f32[2,4]\"]\n"
            "  n2[\"#37;r = relu(#37;d)<br/>: f32[2,4]\"]\n"
            "  n3(\"output(#37;r)<br/>{name=#quot;logits#quot;}\")\n"
            "  n0 -->|\"f32[2,3]\"| n1\n"
            "  n1 -->|\"f32[2,4]\"| n2\n"
            "  n2 -->|\"f32[2,4]\"| n3\n");
}

// Optimizer state folds into the update's label (it is declared right before the update); an
// unused param is still drawn; names with quotes and Mermaid's special characters are escaped;
// a constant is a source shape.
std::unique_ptr<Graph> trickyGraph() {
  auto g = std::make_unique<Graph>("t\"ricky");
  Attrs p;
  p.set("init", std::string("zeros"));
  g->addNode(OpKind::Param, {}, p, {{"unused", f32({1})}});
  Attrs c;
  c.set("value", TensorLiteral{{2}, {0.5, 0.5}});
  Value* grad = g->addNode(OpKind::Constant, {}, c, {{"g", f32({2})}})->result();
  Attrs in;
  in.set("name", std::string("数据 \"q\" #1 <b> & 50% a|b `t`"));  // every character Mermaid treats specially
  Value* step = g->addNode(OpKind::Input, {}, in, {{"step", {DType::I64, {}}}})->result();
  in.set("name", std::string("lr"));
  Value* lr = g->addNode(OpKind::Input, {}, in, {{"lr", {DType::F64, {}}}})->result();
  Value* w = g->addNode(OpKind::Param, {}, p, {{"w", f32({2})}})->result();
  Value* m = g->addNode(OpKind::State, {}, p, {{"w.m", f32({2})}})->result();
  Value* v = g->addNode(OpKind::State, {}, p, {{"w.v", f32({2})}})->result();
  Attrs a;
  a.set("eps", 1e-8);
  g->addNode(OpKind::AdamUpdate, {w, grad, m, v, step, lr}, a, {},
             Location{"t.mmd", 9, 1, "数据 \"q\" #1 <b> & 50% a|b `t`"});
  return g;
}

TEST(Export, MermaidFoldsStateAndEscapesLabels) {
  EXPECT_EQ(toMermaid(*trickyGraph()),
            "flowchart TD\n"
            "  %% shoal IR graph \"t\\\"ricky\": each node holds IR ops (a param or state folded into the op that "
            "reads it), edges carry values; shoal loads this file back\n"
            "  n0[(\"#37;unused = param()<br/>{init=#quot;zeros#quot;}<br/>: f32[1]\")]\n"
            "  n1([\"#37;g = constant()<br/>{value=tensor#lt;2#gt;[0.5,0.5]}<br/>: f32[2]\"])\n"
            "  n2([\"#37;step = input()<br/>{name=#quot;数据 \\#quot;q\\#quot; #35;1 #lt;b#gt; #amp; 50#37; a#124;b "
            "#96;t#96;#quot;}<br/>: i64[]\"])\n"
            "  n3([\"#37;lr = input()<br/>{name=#quot;lr#quot;}<br/>: f64[]\"])\n"
            "  n4[\"#37;w = param()<br/>{init=#quot;zeros#quot;}<br/>: f32[2]<br/>#37;w.m = state()<br/>"
            "{init=#quot;zeros#quot;}<br/>: f32[2]<br/>#37;w.v = state()<br/>{init=#quot;zeros#quot;}<br/>: f32[2]<br/>"
            "adam_update(#37;w, #37;g, #37;w.m, #37;w.v, #37;step, #37;lr)<br/>{eps=1e-08}\"]\n"
            "  n1 -->|\"f32[2]\"| n4\n"
            "  n2 -->|\"i64[]\"| n4\n"
            "  n3 -->|\"f64[]\"| n4\n");
}

TEST(Export, DotEscapesQuotes) {
  std::string dot = toDot(*trickyGraph());
  EXPECT_EQ(dot.substr(0, dot.find('\n')), "digraph \"t\\\"ricky\" {");
  EXPECT_NE(dot.find("  n7 [shape=box, label=\"adam_update\\n数据 \\\"q\\\" #1 <b> & 50% a|b `t`\"];\n"),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("  n4 -> n7 [label=\"w\\nf32[2]\"];\n  n1 -> n7 [label=\"g\\nf32[2]\"];\n"), std::string::npos)
      << dot;
  EXPECT_NE(dot.find("  n0 [shape=note, label=\"param\\nunused\\nf32[1]\"];\n"), std::string::npos) << dot;
  EXPECT_NE(dot.find("  n2 [shape=ellipse, label=\"input\\nstep\\ni64[]\"];\n"), std::string::npos) << dot;
}

}  // namespace
}  // namespace shoal
