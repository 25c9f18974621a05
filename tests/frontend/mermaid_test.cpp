// Tests for the Mermaid syntax layer: accepted syntax, node/edge trees, diagnostics, robustness.
#include "frontend/mermaid.h"

#include <gtest/gtest.h>

#include <functional>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frontend/label.h"

namespace shoal::mermaid {
namespace {

// Parses and expects success; prints the diagnostics otherwise.
Document parseOk(std::string_view text) {
  DiagnosticEngine diags;
  auto doc = parse(text, "t.mmd", diags);
  EXPECT_TRUE(doc.has_value()) << diags.render();
  EXPECT_EQ(diags.errorCount(), 0) << diags.render();
  return doc ? *doc : Document{};
}

// The first rendered line of the first diagnostic (`file:line:col: error: message`).
std::string firstError(std::string_view text, DiagnosticEngine* out = nullptr) {
  DiagnosticEngine local;
  DiagnosticEngine& diags = out ? *out : local;
  auto doc = parse(text, "t.mmd", diags);
  EXPECT_FALSE(doc.has_value());
  if (diags.diagnostics().empty()) return "<no diagnostic>";
  std::string r = diags.render(diags.diagnostics().front());
  return r.substr(0, r.find('\n'));
}

std::string edgeString(const Edge& e) { return e.from + "->" + e.to + (e.hasLabel ? "|" + e.label + "|" : ""); }

std::vector<std::string> edgeStrings(const Document& d) {
  std::vector<std::string> out;
  for (const Edge& e : d.edges) out.push_back(edgeString(e));
  return out;
}

std::vector<std::string> nodeIds(const Document& d) {
  std::vector<std::string> out;
  for (const NodeDecl& n : d.nodes) out.push_back(n.id);
  return out;
}

using Strings = std::vector<std::string>;

// The seed article's section 2.4 diagram, in Chinese.
constexpr std::string_view kSeed =
    "graph TD\n"
    "    A[数据输入] --> B[数据预处理]\n"
    "    B --> C{是否使用GPU}\n"
    "    C -->|是| D[加载到GPU内存]\n"
    "    C -->|否| E[加载到CPU内存]\n"
    "    D --> F[执行卷积操作]\n"
    "    E --> F\n"
    "    F --> G[执行矩阵乘法]\n"
    "    G --> H[模型推断或训练]\n"
    "    H --> I[结果输出]\n";

TEST(MermaidParse, SeedDiagram) {
  Document d = parseOk(kSeed);
  EXPECT_EQ(d.kind, "graph");
  EXPECT_EQ(d.direction, "TD");
  EXPECT_EQ(nodeIds(d), (Strings{"A", "B", "C", "D", "E", "F", "G", "H", "I"}));
  EXPECT_EQ(edgeStrings(d), (Strings{"A->B", "B->C", "C->D|是|", "C->E|否|", "D->F", "E->F", "F->G", "G->H", "H->I"}));
  const NodeDecl* c = d.findNode("C");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->shape, NodeShape::Decision);
  EXPECT_EQ(c->label, "是否使用GPU");
  EXPECT_FALSE(c->quoted);
  EXPECT_EQ(c->loc.node, "C");  // node locations name their node, for the IR ops built from them
  EXPECT_EQ(c->labelLoc.node, "C");
  EXPECT_EQ(c->loc.line, 3);
  EXPECT_EQ(c->loc.col, 11);  // "    B --> C{": C is byte 11
  EXPECT_EQ(c->labelLoc.col, 13);
  const NodeDecl* dnode = d.findNode("D");
  ASSERT_NE(dnode, nullptr);
  EXPECT_EQ(dnode->label, "加载到GPU内存");
  EXPECT_EQ(dnode->shape, NodeShape::Rect);
  // "    C -->|是| D[加载到GPU内存]": '-' at 7, '是' at 11 (3 bytes), D at 16, label at 18.
  EXPECT_EQ(dnode->loc.line, 4);
  EXPECT_EQ(dnode->loc.col, 16);
  EXPECT_EQ(dnode->labelLoc.col, 18);
  const Edge& yes = d.edges[2];
  EXPECT_EQ(yes.loc.line, 4);
  EXPECT_EQ(yes.loc.col, 7);
  EXPECT_EQ(yes.labelLoc.col, 11);
  EXPECT_EQ(yes.loc.file, "t.mmd");
  // F is first mentioned bare? No: declared on line 6, referenced bare on line 7.
  EXPECT_EQ(d.findNode("F")->label, "执行卷积操作");
  EXPECT_EQ(d.findNode("F")->loc.line, 6);
  EXPECT_EQ(d.findNode("I")->label, "结果输出");
}

TEST(MermaidParse, DesignMnistPipeline) {
  Document d = parseOk(
      "%% The MNIST CNN of the seed article, section 5.2\n"
      "flowchart TD\n"
      "  x[input: mnist path=data/mnist-10k batch=64] --> pre[preprocess: scale=1/255]\n"
      "  pre --> dev{device: auto}\n"
      "  dev -->|gpu| c1[conv2d: filters=32 kernel=3x3 activation=relu]\n"
      "  dev -->|cpu| c1\n"
      "  c1 --> p1[maxpool: size=2x2] --> f[flatten]\n"
      "  f --> d1[dense: units=64 activation=relu] --> d2[dense: units=10]\n"
      "  d2 --> t[train: loss=softmax_cross_entropy optimizer=adam lr=0.001 epochs=5]\n"
      "  t --> out[output: metrics=accuracy]\n");
  EXPECT_EQ(d.kind, "flowchart");
  EXPECT_EQ(nodeIds(d), (Strings{"x", "pre", "dev", "c1", "p1", "f", "d1", "d2", "t", "out"}));
  EXPECT_EQ(edgeStrings(d), (Strings{"x->pre", "pre->dev", "dev->c1|gpu|", "dev->c1|cpu|", "c1->p1", "p1->f", "f->d1",
                                     "d1->d2", "d2->t", "t->out"}));
  EXPECT_EQ(d.findNode("x")->label, "input: mnist path=data/mnist-10k batch=64");
  EXPECT_EQ(d.findNode("p1")->label, "maxpool: size=2x2");
  EXPECT_EQ(d.findNode("p1")->loc.line, 7);
  EXPECT_EQ(d.findNode("p1")->loc.col, 10);
  EXPECT_EQ(d.findNode("p1")->labelLoc.col, 13);
  EXPECT_EQ(d.findNode("dev")->shape, NodeShape::Decision);
}

TEST(MermaidParse, ChainsAndFans) {
  Document d = parseOk("flowchart LR\n  a & b --> c & d --> e\n  e --> f --> g\n");
  EXPECT_EQ(d.direction, "LR");
  EXPECT_EQ(nodeIds(d), (Strings{"a", "b", "c", "d", "e", "f", "g"}));
  EXPECT_EQ(edgeStrings(d), (Strings{"a->c", "a->d", "b->c", "b->d", "c->e", "d->e", "e->f", "f->g"}));
  // Every edge of one arrow shares the arrow's location.
  EXPECT_EQ(d.edges[0].loc.col, 9);
  EXPECT_EQ(d.edges[3].loc.col, 9);
  EXPECT_EQ(d.edges[4].loc.col, 19);
}

TEST(MermaidParse, FanWithLabelsAndDeclarations) {
  Document d = parseOk("flowchart TD\n  a[x] & b[y] -->|lhs| c[add]\n");
  EXPECT_EQ(edgeStrings(d), (Strings{"a->c|lhs|", "b->c|lhs|"}));
  EXPECT_EQ(d.findNode("b")->label, "y");
  EXPECT_EQ(d.findNode("c")->label, "add");
}

TEST(MermaidParse, EdgeLabelForms) {
  Document d = parseOk(
      "flowchart LR\n"
      "  a -->|lhs| b\n"
      "  a -- rhs --> c\n"
      "  a -. dotted .-> d\n"
      "  a == thick ==> e\n"
      "  a -- open --- f\n"
      "  a -->|\"two words\"| g\n"
      "  a -- \"quoted inline\" --> h\n"
      "  a --> | spaced | i\n"
      "  a --x-y--> j\n"
      "  a ---|o| k\n");
  EXPECT_EQ(edgeStrings(d), (Strings{"a->b|lhs|", "a->c|rhs|", "a->d|dotted|", "a->e|thick|", "a->f|open|",
                                     "a->g|two words|", "a->h|quoted inline|", "a->i|spaced|", "a->j|x-y|",
                                     "a->k|o|"}));
  // "  a -- rhs --> c": the arrow starts at 5, the label at 8.
  EXPECT_EQ(d.edges[1].loc.col, 5);
  EXPECT_EQ(d.edges[1].labelLoc.col, 8);
  EXPECT_EQ(d.edges[1].labelLoc.line, 3);
  // "  a -->|\"two words\"| g": the text starts after the quote, at 10.
  EXPECT_EQ(d.edges[5].labelLoc.col, 10);
  EXPECT_EQ(d.edges[7].labelLoc.col, 11);  // leading spaces trimmed
}

TEST(MermaidParse, ArrowKinds) {
  Document d = parseOk(
      "flowchart LR\n"
      "  a --> b\n  a --- c\n  a -.-> d\n  a ==> e\n  a ---> f\n  a -.- g\n  a === h\n  a -..-> i\n"
      "  a ~~~ z\n"
      "  a-->j\n  a===>k\n");
  EXPECT_EQ(edgeStrings(d), (Strings{"a->b", "a->c", "a->d", "a->e", "a->f", "a->g", "a->h", "a->i", "a->j", "a->k"}));
  EXPECT_NE(d.findNode("z"), nullptr);  // `~~~` is layout only: the node exists, no edge
}

TEST(MermaidParse, EveryShape) {
  Document d = parseOk(
      "flowchart LR\n"
      "  a[rect] --> b(round) --> c([stadium]) --> d((circle))\n"
      "  e{decision} --> f[[subroutine]] --> g[(cylinder)] --> h{{hexagon}}\n");
  struct Want {
    const char* id;
    NodeShape shape;
    const char* label;
  };
  const Want want[] = {{"a", NodeShape::Rect, "rect"},         {"b", NodeShape::Round, "round"},
                       {"c", NodeShape::Stadium, "stadium"},   {"d", NodeShape::Circle, "circle"},
                       {"e", NodeShape::Decision, "decision"}, {"f", NodeShape::Subroutine, "subroutine"},
                       {"g", NodeShape::Cylinder, "cylinder"}, {"h", NodeShape::Hexagon, "hexagon"}};
  ASSERT_EQ(d.nodes.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(d.nodes[i].id, want[i].id);
    EXPECT_EQ(d.nodes[i].shape, want[i].shape) << want[i].id;
    EXPECT_EQ(d.nodes[i].label, want[i].label);
    EXPECT_TRUE(d.nodes[i].hasLabel);
  }
  // "  a[rect] --> b(round) --> c([stadium])": c's label starts after the two-byte opener.
  EXPECT_EQ(d.nodes[2].labelLoc.col, 31);
  EXPECT_EQ(nodeShapeName(NodeShape::Cylinder), "cylinder");
}

TEST(MermaidParse, QuotedLabels) {
  Document d = parseOk(
      "flowchart TD\n"
      "  w[\"constant: value=[[1,2],[3,4]]\"] --> s[\"say #quot;hi#quot; (politely) #35;1 #amp; {x}\"]\n"
      "  r((\"round: a=(1)\")) --> s\n"
      "  q[\"  spaced  \" ] --> s\n");
  const NodeDecl* w = d.findNode("w");
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(w->quoted);
  EXPECT_EQ(w->label, "constant: value=[[1,2],[3,4]]");
  EXPECT_EQ(w->labelLoc.col, 6);  // just after the quote
  EXPECT_EQ(d.findNode("s")->label, "say \"hi\" (politely) #1 & {x}");
  EXPECT_EQ(d.findNode("r")->label, "round: a=(1)");
  EXPECT_EQ(d.findNode("r")->shape, NodeShape::Circle);
  EXPECT_EQ(d.findNode("q")->label, "  spaced  ");  // quoted text is kept as written
}

TEST(MermaidParse, UnquotedLabelIsTrimmed) {
  Document d = parseOk("flowchart TD\n  a[   dense: units=64  ] --> b\n");
  EXPECT_EQ(d.nodes[0].label, "dense: units=64");
  EXPECT_EQ(d.nodes[0].labelLoc.col, 8);
  EXPECT_FALSE(d.nodes[0].quoted);
  EXPECT_FALSE(d.nodes[1].hasLabel);
}

TEST(MermaidParse, CommentsBlankLinesAndTerminators) {
  Document d = parseOk(
      "%% leading comment\n"
      "\n"
      "%%{init: {'theme': 'dark'}}%%\n"
      "graph TD;\n"
      "   %% indented comment\n"
      "\n"
      "  a --> b;\n"
      "  b --> c; c --> d;;\n"
      "\t d\t-->\te\n");
  EXPECT_EQ(edgeStrings(d), (Strings{"a->b", "b->c", "c->d", "d->e"}));
  EXPECT_EQ(d.nodes[0].loc.line, 7);
}

TEST(MermaidParse, HeaderForms) {
  for (std::string dir : {"TD", "TB", "BT", "LR", "RL"}) {
    Document d = parseOk("flowchart " + dir + "\n  a --> b\n");
    EXPECT_EQ(d.direction, dir);
  }
  Document none = parseOk("flowchart\n  a --> b\n");
  EXPECT_EQ(none.direction, "");
  Document inline_ = parseOk("graph LR; a --> b; b --> c\n");
  EXPECT_EQ(edgeStrings(inline_), (Strings{"a->b", "b->c"}));
  Document headerOnly = parseOk("flowchart TD\n");
  EXPECT_TRUE(headerOnly.nodes.empty());
}

TEST(MermaidParse, LineEndingsBomAndFrontMatter) {
  Document crlf = parseOk("flowchart TD\r\n  a[x] --> b\r\n");
  EXPECT_EQ(crlf.nodes[0].label, "x");
  EXPECT_EQ(edgeStrings(crlf), (Strings{"a->b"}));
  Document bom = parseOk("\xEF\xBB\xBF" "flowchart TD\n  a --> b\n");
  EXPECT_EQ(bom.kind, "flowchart");
  Document fm = parseOk("---\ntitle: MNIST (v2)\n---\nflowchart TD\n  a --> b\n");
  EXPECT_EQ(edgeStrings(fm), (Strings{"a->b"}));
  EXPECT_EQ(fm.nodes[0].loc.line, 5);
}

TEST(MermaidParse, StylingStatementsAreIgnored) {
  Document d = parseOk(
      "flowchart TD\n"
      "  a[x]:::hot --> b\n"
      "  classDef hot fill:#f96,stroke:#333,stroke-width:4px\n"
      "  class a,b hot\n"
      "  style b fill:#bbf\n"
      "  linkStyle 0 stroke:#ff3,stroke-width:4px\n"
      "  click a \"https://example.com\" \"tooltip\"\n"
      "  accTitle: The title\n"
      "  accDescr {\n"
      "    a long (description) --> with [brackets]\n"
      "  }\n"
      "  b --> c:::cool-class\n");
  EXPECT_EQ(edgeStrings(d), (Strings{"a->b", "b->c"}));
  EXPECT_EQ(d.findNode("a")->label, "x");
}

TEST(MermaidParse, Subgraphs) {
  Document d = parseOk(
      "flowchart TD\n"
      "  x --> a\n"
      "  subgraph feat [Feature extractor]\n"
      "    direction LR\n"
      "    a[conv2d: filters=8] --> b[relu]\n"
      "    subgraph inner\n"
      "      b --> c\n"
      "    end\n"
      "    c --> a2\n"
      "  end\n"
      "  a2 --> y\n");
  EXPECT_EQ(nodeIds(d), (Strings{"x", "a", "b", "c", "a2", "y"}));
  ASSERT_EQ(d.subgraphs.size(), 2u);
  EXPECT_EQ(d.subgraphs[0].id, "feat");
  EXPECT_EQ(d.subgraphs[0].title, "[Feature extractor]");
  EXPECT_EQ(d.subgraphs[0].nodes, (Strings{"a", "b", "c", "a2"}));
  EXPECT_EQ(d.subgraphs[0].loc.line, 3);
  EXPECT_EQ(d.subgraphs[1].id, "inner");
  EXPECT_EQ(d.subgraphs[1].nodes, (Strings{"b", "c"}));
}

TEST(MermaidParse, DeclarationsAndReferences) {
  // A bare mention first, the labelled declaration later: the node keeps its first position in
  // the order, and its location moves to the declaration.
  Document d = parseOk("flowchart TD\n  a --> b\n  b[dense: units=10]\n  b[dense: units=10] --> c\n");
  EXPECT_EQ(nodeIds(d), (Strings{"a", "b", "c"}));
  const NodeDecl* b = d.findNode("b");
  EXPECT_TRUE(b->hasLabel);
  EXPECT_EQ(b->loc.line, 3);
  EXPECT_EQ(b->labelLoc.col, 5);
}

TEST(MermaidParse, UnicodeIds) {
  Document d = parseOk("flowchart TD\n  数据 --> 处理[预处理] --> α_1 --> Ünïcode\n");
  EXPECT_EQ(nodeIds(d), (Strings{"数据", "处理", "α_1", "Ünïcode"}));
  EXPECT_EQ(d.nodes[1].loc.col, 14);  // "  数据 --> ": 2 + 6 + 5 bytes before
  EXPECT_EQ(d.nodes[1].labelLoc.col, 21);
}

TEST(MermaidParse, RegistersSourceForCarets) {
  DiagnosticEngine diags;
  EXPECT_FALSE(parse("flowchart TD\n  a -> b\n", "p.mmd", diags));
  EXPECT_EQ(diags.render(),
            "p.mmd:2:5: error: expected an edge ('-->'), '&' or end of statement, got '->'\n"
            "  a -> b\n"
            "    ^\n");
}

// --- malformed input: the exact first diagnostic -------------------------------------------------

TEST(MermaidErrors, EmptyFile) {
  EXPECT_EQ(firstError(""), "t.mmd:1:1: error: file is empty: expected 'graph' or 'flowchart' header");
  EXPECT_EQ(firstError("\n  \n%% only a comment\n"),
            "t.mmd:1:1: error: file is empty: expected 'graph' or 'flowchart' header");
}

TEST(MermaidErrors, BinaryGarbage) {
  using namespace std::string_literals;
  DiagnosticEngine diags;
  EXPECT_EQ(firstError("flowchart TD\n  a --> b\0\x01\x02garbage"s, &diags),
            "t.mmd:2:10: error: input is not valid UTF-8 text");
  EXPECT_EQ(diags.errorCount(), 1);  // reported once, then parsing stops
  EXPECT_EQ(firstError("\x7F" "ELF\x02\x01\x01"s), "t.mmd:1:1: error: input is not valid UTF-8 text");
  EXPECT_EQ(firstError("flowchart TD\n  a[\xE6\x95] --> b\n"), "t.mmd:2:5: error: input is not valid UTF-8 text");
  EXPECT_EQ(firstError("flowchart TD\n  a[\xC0\xAF] --> b\n"), "t.mmd:2:5: error: input is not valid UTF-8 text");
  EXPECT_EQ(firstError("flowchart TD\n  a[\xED\xA0\x80] --> b\n"), "t.mmd:2:5: error: input is not valid UTF-8 text");
  EXPECT_EQ(firstError("\xFF\xFE" "f\0l\0"s), "t.mmd:1:1: error: input is not valid UTF-8 text");
}

TEST(MermaidErrors, BadHeader) {
  EXPECT_EQ(firstError("grph TD\n  a --> b\n"), "t.mmd:1:1: error: expected 'graph' or 'flowchart', got 'grph'");
  EXPECT_EQ(firstError("  sequenceDiagram\n"), "t.mmd:1:3: error: expected 'graph' or 'flowchart', got 'sequenceDiagram'");
  EXPECT_EQ(firstError("a --> b\n"), "t.mmd:1:1: error: expected 'graph' or 'flowchart', got 'a'");
  EXPECT_EQ(firstError("--> b\n"), "t.mmd:1:1: error: expected 'graph' or 'flowchart', got '-->'");
  EXPECT_EQ(firstError("flowchart XY\n  a --> b\n"), "t.mmd:1:11: error: unknown direction 'XY'");
  EXPECT_EQ(firstError("flowchart td\n"), "t.mmd:1:11: error: unknown direction 'td'");
  EXPECT_EQ(firstError("flowchart TD a --> b\n"), "t.mmd:1:14: error: expected end of line after the header, got 'a'");
  EXPECT_EQ(firstError("flowchart TD %% note\n"), "t.mmd:1:14: error: a '%%' comment must be on a line of its own");
  EXPECT_EQ(firstError("---\ntitle: x\nflowchart TD\n"), "t.mmd:1:1: error: front matter opened with '---' is not closed");
}

TEST(MermaidErrors, NodeLabels) {
  EXPECT_EQ(firstError("flowchart TD\n  a[dense units=64 --> b\n"),
            "t.mmd:2:25: error: expected ']' to close node label");
  EXPECT_EQ(firstError("flowchart TD\n  a([x)] --> b\n"), "t.mmd:2:7: error: unexpected ')' in unquoted node label; quote the label: a([\"...\"])");
  EXPECT_EQ(firstError("flowchart TD\n  a[\"constant: value=[1,2] --> b\n"), "t.mmd:2:5: error: unterminated quoted label");
  EXPECT_EQ(firstError("flowchart TD\n  a[\"x\"y] --> b\n"), "t.mmd:2:8: error: expected ']' to close node label");
  EXPECT_EQ(firstError("flowchart TD\n  a[conv (3x3)] --> b\n"),
            "t.mmd:2:10: error: unexpected '(' in unquoted node label; quote the label: a[\"...\"]");
  EXPECT_EQ(firstError("flowchart TD\n  c{x [1]} --> b\n"),
            "t.mmd:2:7: error: unexpected '[' in unquoted node label; quote the label: c{\"...\"}");
  EXPECT_EQ(firstError("flowchart TD\n  a[say \"hi\"] --> b\n"),
            "t.mmd:2:9: error: unexpected '\"' in unquoted node label; quote the label: a[\"...\"]");
  EXPECT_EQ(firstError("flowchart TD\n  a[] --> b\n"), "t.mmd:2:4: error: empty node label");
  EXPECT_EQ(firstError("flowchart TD\n  a[  ] --> b\n"), "t.mmd:2:4: error: empty node label");
  EXPECT_EQ(firstError("flowchart TD\n  a[\"\"] --> b\n"), "t.mmd:2:5: error: empty node label");
  EXPECT_EQ(firstError("flowchart TD\n  a [x] --> b\n"), "t.mmd:2:4: error: unexpected space between node id 'a' and its label");
  EXPECT_EQ(firstError("flowchart TD\n  a(((x))) --> b\n"),
            "t.mmd:2:4: error: unsupported node shape '((('; use id[...], id(...), id([...]), id((...)), id{...}, "
            "id[[...]], id[(...)] or id{{...}}");
  EXPECT_EQ(firstError("flowchart TD\n  a[/x/] --> b\n").substr(0, 46), "t.mmd:2:4: error: unsupported node shape '[/';");
}

TEST(MermaidErrors, UnclosedLabelHasNote) {
  DiagnosticEngine diags;
  EXPECT_EQ(firstError("flowchart TD\n  a[[x --> b\n", &diags), "t.mmd:2:13: error: expected ']]' to close node label");
  ASSERT_EQ(diags.diagnostics().size(), 2u);
  EXPECT_EQ(diags.render(diags.diagnostics()[1]), "t.mmd:2:4: note: to match this '[['\n  a[[x --> b\n   ^\n");
  EXPECT_EQ(firstError("flowchart TD\n  a[[x] --> b\n"),
            "t.mmd:2:7: error: unexpected ']' in unquoted node label; quote the label: a[[\"...\"]]");
}

TEST(MermaidErrors, Edges) {
  EXPECT_EQ(firstError("flowchart TD\n  a -> b\n"), "t.mmd:2:5: error: expected an edge ('-->'), '&' or end of statement, got '->'");
  EXPECT_EQ(firstError("flowchart TD\n  a --> --> b\n"), "t.mmd:2:9: error: expected a node id, got '-->'");
  EXPECT_EQ(firstError("flowchart TD\n  a -->\n"), "t.mmd:2:8: error: expected a node id, got end of line");
  EXPECT_EQ(firstError("flowchart TD\n  a & --> b\n"), "t.mmd:2:7: error: expected a node id, got '-->'");
  EXPECT_EQ(firstError("flowchart TD\n  a -->|lhs b\n"), "t.mmd:2:8: error: edge label not closed with '|'");
  EXPECT_EQ(firstError("flowchart TD\n  a -->|\"lhs\" b\n"), "t.mmd:2:8: error: edge label not closed with '|'");
  EXPECT_EQ(firstError("flowchart TD\n  a -->|| b\n"), "t.mmd:2:8: error: empty edge label");
  EXPECT_EQ(firstError("flowchart TD\n  a -->|f(x)| b\n"),
            "t.mmd:2:10: error: unexpected '(' in edge label; quote the label: -->|\"...\"|");
  EXPECT_EQ(firstError("flowchart TD\n  a -- lhs b\n"), "t.mmd:2:5: error: edge label not closed with '-->'");
  EXPECT_EQ(firstError("flowchart TD\n  a == lhs b\n"), "t.mmd:2:5: error: edge label not closed with '==>'");
  EXPECT_EQ(firstError("flowchart TD\n  a -. lhs b\n"), "t.mmd:2:5: error: edge label not closed with '.->'");
  EXPECT_EQ(firstError("flowchart TD\n  a -- x -- y --> b\n"),
            "t.mmd:2:10: error: expected '-->' to close edge label, got '--'");
  EXPECT_EQ(firstError("flowchart TD\n  a -- x -->|y| b\n"), "t.mmd:2:13: error: edge already has a label");
  EXPECT_EQ(firstError("flowchart TD\n  a <--> b\n"),
            "t.mmd:2:5: error: unsupported edge '<-->'; shoal edges are -->, ---, -.-> and ==>");
  EXPECT_EQ(firstError("flowchart TD\n  a --x b\n"),
            "t.mmd:2:5: error: unsupported edge '--x'; shoal edges are -->, ---, -.-> and ==>");
  EXPECT_EQ(firstError("flowchart TD\n  a ---ob\n"),
            "t.mmd:2:5: error: unsupported edge '---o'; shoal edges are -->, ---, -.-> and ==>");
  EXPECT_EQ(firstError("flowchart TD\n  a --> b c --> d\n"),
            "t.mmd:2:11: error: expected an edge ('-->'), '&' or end of statement, got 'c'");
  EXPECT_EQ(firstError("flowchart TD\n  a --> b %% trailing\n"), "t.mmd:2:11: error: a '%%' comment must be on a line of its own");
}

TEST(MermaidErrors, ConflictingDeclaration) {
  DiagnosticEngine diags;
  EXPECT_EQ(firstError("flowchart TD\n  a[dense: units=64] --> b\n  a[dense: units=32] --> c\n", &diags),
            "t.mmd:3:3: error: node 'a' is already declared with a different label");
  ASSERT_EQ(diags.diagnostics().size(), 2u);
  EXPECT_EQ(diags.render(diags.diagnostics()[1]),
            "t.mmd:2:3: note: previous declaration of 'a' is here\n  a[dense: units=64] --> b\n  ^\n");
  EXPECT_EQ(firstError("flowchart TD\n  a[relu] --> b\n  b --> a(relu)\n"),
            "t.mmd:3:9: error: node 'a' is already declared with a different shape");
}

TEST(MermaidErrors, KeywordsAndSubgraphs) {
  EXPECT_EQ(firstError("flowchart TD\n  end --> b\n"), "t.mmd:2:3: error: 'end' is a Mermaid keyword and cannot be a node id");
  EXPECT_EQ(firstError("flowchart TD\n  a --> style\n"), "t.mmd:2:9: error: 'style' is a Mermaid keyword and cannot be a node id");
  EXPECT_EQ(firstError("flowchart TD\n  a --> b\n  end\n"), "t.mmd:3:3: error: 'end' without a matching 'subgraph'");
  EXPECT_EQ(firstError("flowchart TD\n  subgraph one\n  a --> b\n"), "t.mmd:2:3: error: subgraph not closed with 'end'");
  EXPECT_EQ(firstError("flowchart TD\n  a:::\n"), "t.mmd:2:7: error: expected a class name after ':::', got end of line");
  EXPECT_EQ(firstError("flowchart TD\n  😀 --> b\n"), "t.mmd:2:3: error: expected a node id, got '😀'");
  EXPECT_EQ(firstError("flowchart TD\n  A：B --> C\n"),
            "t.mmd:2:4: error: expected an edge ('-->'), '&' or end of statement, got '：'");
}

TEST(MermaidErrors, RecoversAtNextLine) {
  DiagnosticEngine diags;
  auto doc = parse(
      "flowchart TD\n"
      "  a -> b\n"
      "  c --> d\n"
      "  e[unclosed --> f\n"
      "  g -->|x h\n"
      "  i --> j; k ->> l\n",
      "t.mmd", diags);
  EXPECT_FALSE(doc);
  ASSERT_EQ(diags.errorCount(), 4);
  std::vector<std::string> lines;
  for (const Diagnostic& d : diags.diagnostics())
    if (d.severity == Severity::Error) lines.push_back(d.loc.str() + " " + d.message);
  EXPECT_EQ(lines, (Strings{"t.mmd:2:5 expected an edge ('-->'), '&' or end of statement, got '->'",
                            "t.mmd:4:19 expected ']' to close node label", "t.mmd:5:8 edge label not closed with '|'",
                            "t.mmd:6:14 expected an edge ('-->'), '&' or end of statement, got '->>'"}));
}

// --- robustness: huge inputs stay linear -------------------------------------------------------

void run(const std::function<void()>& f) { f(); }

constexpr size_t kTenMB = 10 * 1024 * 1024;

// Huge inputs end in the right diagnostic (no quadratic blow-up, no crash). How long they take
// is measured by bench/frontend_bench, not asserted here: a loaded CI machine fails time limits.

TEST(MermaidRobustness, TenMegabyteGarbageLine) {
  // Printable garbage: every token class the lexer knows, repeated.
  std::string text = "flowchart TD\n";
  const std::string_view pattern = "#&--> [(|\"x.-=~<{}%%";
  while (text.size() < kTenMB) text += pattern;
  std::string first;
  run([&] { first = firstError(text); });
  EXPECT_EQ(first, "t.mmd:2:1: error: expected a node id, got '#'");

  // Ten megabytes of arrows: the message quotes a clipped token.
  std::string arrows = "flowchart TD\n  a --> ";
  while (arrows.size() < kTenMB) arrows += "-->";
  run([&] { first = firstError(arrows); });
  EXPECT_EQ(first, "t.mmd:2:9: error: expected a node id, got '" + arrows.substr(21, 40) + "...'");

  // Random bytes (a fixed LCG, so the test is reproducible).
  std::string random = "flowchart TD\n";
  uint32_t state = 12345;
  while (random.size() < kTenMB) {
    state = state * 1664525u + 1013904223u;
    random += char(state >> 24);
  }
  run([&] { first = firstError(random); });
  EXPECT_NE(first.find("error: input is not valid UTF-8 text"), std::string::npos) << first;

  // Random printable ASCII without newlines: one error for the one line, whatever it is.
  std::string printable = "flowchart TD\n";
  while (printable.size() < kTenMB) {
    state = state * 1664525u + 1013904223u;
    printable += char(' ' + (state >> 24) % 95);
  }
  DiagnosticEngine diags;
  run([&] { EXPECT_FALSE(parse(printable, "t.mmd", diags)); });
  EXPECT_EQ(diags.errorCount(), 1);
}

TEST(MermaidRobustness, TenMegabyteLabel) {
  std::string big(kTenMB, 'x');
  std::string text = "flowchart TD\n  a[" + big + "] --> b\n";
  std::optional<Document> doc;
  DiagnosticEngine diags;
  run([&] { doc = parse(text, "t.mmd", diags); });
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->nodes[0].label.size(), kTenMB);
  run([&] {
    auto label = parseLabel(doc->nodes[0].label, doc->nodes[0].labelLoc, diags);
    ASSERT_TRUE(label);
    EXPECT_EQ(label->op.size(), kTenMB);
  });

  // The same label never closed: the error points just past the end of the 10 MB line.
  std::string first;
  run([&] { first = firstError("flowchart TD\n  a[" + big + " --> b\n"); });
  EXPECT_EQ(first, "t.mmd:2:" + std::to_string(4 + kTenMB + 6 + 1) + ": error: expected ']' to close node label");

  // A quoted 10 MB tensor literal parses, and its label parses to a [N] tensor.
  std::string tensor = "[";
  while (tensor.size() < kTenMB) tensor += "1.5,";
  tensor.back() = ']';
  std::string quoted = "flowchart TD\n  c[\"constant: value=" + tensor + "\"] --> d\n";
  run([&] {
    doc = parse(quoted, "t.mmd", diags);
    ASSERT_TRUE(doc);
    auto label = parseLabel(doc->nodes[0].label, doc->nodes[0].labelLoc, diags);
    ASSERT_TRUE(label);
    const auto& t = std::get<TensorLiteral>(label->args[0].value);
    EXPECT_EQ(t.shape, (Shape{int64_t((tensor.size() - 1) / 4)}));
  });
}

TEST(MermaidRobustness, ManyLinesManyErrors) {
  std::string text = "flowchart TD\n";
  for (int i = 0; i < 200000; ++i) text += "a -> b\n";
  DiagnosticEngine diags;
  run([&] { EXPECT_FALSE(parse(text, "t.mmd", diags)); });
  EXPECT_EQ(diags.errorCount(), 200000);
  EXPECT_EQ(diags.diagnostics().size(), size_t(DiagnosticEngine::kMaxErrors));
}

TEST(MermaidRobustness, LongChainIsLinear) {
  std::string text = "flowchart TD\n  n0";
  for (int i = 1; i < 50000; ++i) text += " --> n" + std::to_string(i);
  DiagnosticEngine diags;
  std::optional<Document> d;
  run([&] { d = parse(text, "t.mmd", diags); });
  ASSERT_TRUE(d);
  EXPECT_EQ(d->nodes.size(), 50000u);
  EXPECT_EQ(d->edges.size(), 49999u);
  EXPECT_EQ(edgeString(d->edges.back()), "n49998->n49999");
}

TEST(MermaidRobustness, FanOutIsBounded) {
  // 2000 x 2000 '&' fans would make four million edges from one short line.
  std::string line = "  a0";
  for (int i = 1; i < 2000; ++i) line += " & a" + std::to_string(i);
  line += " --> b0";
  for (int i = 1; i < 2000; ++i) line += " & b" + std::to_string(i);
  std::string first;
  run([&] { first = firstError("flowchart TD\n" + line + "\n"); });
  EXPECT_EQ(first, "t.mmd:2:" + std::to_string(line.find("-->") + 1) +
                       ": error: too many edges: a pipeline may have at most 1000000");

  // Ten megabytes of `a & a & ...` into one node.
  std::string amp = "flowchart TD\n  a";
  while (amp.size() < kTenMB) amp += " & a";
  amp += " --> b\n";
  run([&] { first = firstError(amp); });
  EXPECT_NE(first.find("error: too many edges"), std::string::npos) << first;
}

// --- the negative-test files: each one's first error is the one its first line promises --------

TEST(MermaidInvalidFiles, FirstErrorMatchesExpectation) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(SHOAL_SOURCE_DIR) / "tests/frontend/invalid";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with("syntax_") || entry.path().extension() != ".mmd") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const std::string prefix = "%% expect: ";
    ASSERT_TRUE(text.starts_with(prefix)) << name;
    std::string expect = text.substr(prefix.size(), text.find('\n') - prefix.size());
    if (!expect.empty() && expect.back() == '\r') expect.pop_back();

    // The file goes through the syntax layer, then every label through the label parser, as
    // the lowering does; the first error of the two is the one the file promises.
    std::string file = entry.path().string();
    DiagnosticEngine diags;
    auto doc = parse(text, file, diags);
    if (doc) {
      for (const NodeDecl& n : doc->nodes)
        if (n.hasLabel) parseLabel(n.label, n.labelLoc, diags);
    }
    ASSERT_FALSE(diags.diagnostics().empty()) << name << " produced no error";
    const Diagnostic& first = diags.diagnostics().front();
    std::string got = std::to_string(first.loc.line) + ":" + std::to_string(first.loc.col) + ": error: " + first.message;
    EXPECT_EQ(got, expect) << name;
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

}  // namespace
}  // namespace shoal::mermaid
