// The Mermaid export of IR graphs loaded back (frontend/ir_flowchart.h): every example, before
// and after the passes, with and without the training step, comes back as the same graph; a
// drawing whose edges or labels disagree with its ops is an error at the place.
#include "frontend/ir_flowchart.h"

#include <gtest/gtest.h>

#include <regex>

#include "frontend/pipeline_loader.h"
#include "ir/export.h"
#include "ir/printer.h"
#include "passes/program.h"
#include "test_util.h"

namespace shoal {
namespace {

// IR text without the loc(...) suffixes (the export leaves locations out).
std::string withoutLocations(const std::string& ir) {
  return std::regex_replace(ir, std::regex(R"( loc\([^\n]*\))"), "");
}

std::optional<Pipeline> loadText(const std::string& text, const std::string& file, DiagnosticEngine& diags) {
  return loadPipelineText(text, file, diags);
}

const std::vector<std::string> kExamples = {"examples/seed_pipeline.mmd", "examples/mnist_cnn.mmd", "examples/mlp.mmd",
                                            "examples/matmul.mmd", "examples/conv.mmd"};

TEST(IrFlowchart, EveryExampleRoundTripsWithAndWithoutTraining) {
  for (const std::string& example : kExamples) {
    DiagnosticEngine diags;
    auto p = loadPipelineFile(test::sourcePath(example), diags);
    ASSERT_TRUE(p.has_value()) << diags.render();
    for (bool train : {false, true}) {
      if (train && !p->train) continue;  // the literal examples have nothing to train
      SCOPED_TRACE(example + (train ? " --train" : ""));
      CompileOptions opts;
      opts.train = train ? &*p->train : nullptr;
      auto program = compileProgram(p->model->clone(), opts);
      ASSERT_TRUE(program.has_value()) << program.error().str();
      // After every pass, and as the frontend made it.
      for (const Graph* g : {program->graph.get(), p->model.get()}) {
        const std::string flowchart = toMermaid(*g);
        DiagnosticEngine back;
        auto loaded = loadText(flowchart, "export.mmd", back);
        ASSERT_TRUE(loaded.has_value()) << back.render() << flowchart;
        EXPECT_EQ(withoutLocations(printGraph(*loaded->model)), withoutLocations(printGraph(*g))) << flowchart;
        // Located in the drawing (the label of its node), so later errors point there.
        EXPECT_EQ(loaded->model->nodes().front()->loc().file, "export.mmd");
        EXPECT_EQ(loaded->model->nodes().front()->loc().line, 3);
        // And it is the same drawing again.
        EXPECT_EQ(toMermaid(*loaded->model), flowchart);
      }
    }
  }
}

// A small flowchart to break: x -> relu -> output.
std::string smallFlowchart() {
  Graph g("small");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g.addNode(OpKind::Input, {}, in, {{"x", {DType::F32, {2}}}})->result();
  Value* r = g.addNode(OpKind::Relu, {x}, {}, {{"r", {DType::F32, {2}}}})->result();
  Attrs out;
  out.set("name", std::string("y"));
  g.addNode(OpKind::Output, {r}, out, {});
  return toMermaid(g);
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from << " in\n" << s;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

std::string firstFlowchartError(const std::string& text) {
  DiagnosticEngine diags;
  auto p = loadText(text, "small.mmd", diags);
  EXPECT_FALSE(p.has_value()) << text;
  return diags.firstError().str();
}

TEST(IrFlowchart, TheSmallDrawing) {
  const std::string text = smallFlowchart();
  EXPECT_EQ(text,
            "flowchart TD\n"
            "  %% shoal IR graph small: each node holds IR ops (a param or state folded into the op that reads it), "
            "edges carry values; shoal loads this file back\n"
            "  n0([\"#37;x = input()<br/>{name=#quot;x#quot;}<br/>: f32[2]\"])\n"
            "  n1[\"#37;r = relu(#37;x)<br/>: f32[2]\"]\n"
            "  n2(\"output(#37;r)<br/>{name=#quot;y#quot;}\")\n"
            "  n0 -->|\"f32[2]\"| n1\n"
            "  n1 -->|\"f32[2]\"| n2\n");
  DiagnosticEngine diags;
  auto p = loadText(text, "small.mmd", diags);
  ASSERT_TRUE(p.has_value()) << diags.render();
  EXPECT_EQ(p->model->name(), "small");
  EXPECT_EQ(p->model->size(), 3u);
  EXPECT_EQ(p->model->outputValue("y")->name(), "r");
}

TEST(IrFlowchart, EdgesMustMatchTheOperands) {
  const std::string text = smallFlowchart();
  EXPECT_EQ(firstFlowchartError(replaced(text, "  n0 -->|\"f32[2]\"| n1\n", "")),
            "small.mmd:4:7: error: 'n1' reads %x of 'n0', but no edge n0 --> n1 is drawn");
  EXPECT_EQ(firstFlowchartError(text + "  n0 --> n2\n"),
            "small.mmd:8:6: error: edge n0 --> n2: no op of 'n2' reads a value of 'n0'");
}

TEST(IrFlowchart, LabelsAreIrText) {
  const std::string text = smallFlowchart();
  // An unknown op, reported in the label's line (columns past an entity such as #37; drift by its length).
  EXPECT_EQ(firstFlowchartError(replaced(text, "relu(", "rleu(")), "small.mmd:4:12: error: unknown op 'rleu'");
  // A continuation line with no op before it.
  EXPECT_EQ(firstFlowchartError(replaced(text, "n1[\"#37;r = relu(#37;x)<br/>", "n1[\"")),
            "small.mmd:4:7: error: node 'n1': ':' continues no op");
  // A shape the ops disagree with: the verifier, located at the node.
  EXPECT_EQ(
      firstFlowchartError(replaced(text, "n1[\"#37;r = relu(#37;x)<br/>: f32[2]", "n1[\"#37;r = relu(#37;x)<br/>: f32[3]")),
      "small.mmd:4:7: error: relu 'r': result %r has type f32[3], but its operands give f32[2]");
  // A node without a label.
  EXPECT_EQ(firstFlowchartError(text + "  n3\n"),
            "small.mmd:8:3: error: node 'n3' has no label: each node of an exported IR graph "
            "holds the IR text of its ops");
}

TEST(IrFlowchart, OnlyTheMarkedFlowchartsAreIr) {
  DiagnosticEngine diags;
  auto p = loadText("flowchart TD\n  %% a comment\n  x[input: shape=2 dtype=f32] --> r[relu] --> out[output]\n",
                    "p.mmd", diags);
  ASSERT_TRUE(p.has_value()) << diags.render();  // an ordinary pipeline
  EXPECT_NE(p->model->outputValue("out"), nullptr);
  EXPECT_EQ(firstFlowchartError("flowchart TD\n  %% shoal IR graph : nothing\n  n0[\"x\"]\n"),
            "small.mmd:2:3: error: expected a graph name after '%% shoal IR graph'");
}

}  // namespace
}  // namespace shoal
