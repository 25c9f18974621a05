// IR text: print/parse round trips for every op, golden text, locations, names, attribute
// values, and the exact diagnostics for malformed IR.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ir/graph.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "ir/round_trip_cases.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_ROUND_TRIP_CASE(Input, OpKind::Input) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  a.set("name", std::string("x"));
  results = {{"x", u8({2, 1, 28, 28})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Param, OpKind::Param) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  a.set("init", std::string("glorot_uniform"));
  a.set("fan_in", int64_t(9));
  a.set("fan_out", int64_t(288));
  results = {{"c1.weight", f32({32, 1, 3, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(State, OpKind::State) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  results = {{"c1.weight.adam_m", f32({32, 1, 3, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Constant, OpKind::Constant) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  a.set("value", TensorLiteral{{2, 2}, {1.0, 2.5, -3.0, 0.1}});
  results = {{"k", f32({2, 2})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Output, OpKind::Output) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 10}))};
  a.set("name", std::string("logits"));
  results = {};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Cast, OpKind::Cast) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", u8(img))};
  a.set("dtype", std::string("f32"));
  results = {{"y", f32(img)}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Scale, OpKind::Scale) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img))};
  a.set("scale", 1.0 / 255.0);
  a.set("shift", -0.5);
  results = {{"y", f32(img)}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Normalize, OpKind::Normalize) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img))};
  a.set("mean", std::vector<double>{0.1307});
  a.set("std", std::vector<double>{0.3081});
  results = {{"y", f32(img)}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Flatten, OpKind::Flatten) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 4, 3, 3}))};
  results = {{"f", f32({2, 36})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Reshape, OpKind::Reshape) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 36}))};
  a.set("shape", std::vector<int64_t>{-1, 4, 3, 3});
  results = {{"r", f32({2, 4, 3, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Dense, OpKind::Dense) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 8})), addParam(g, "d.weight", f32({3, 8})), addParam(g, "d.bias", f32({3}))};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(FusedDense, OpKind::FusedDense) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 8})), addParam(g, "d.weight", f32({3, 8})), addParam(g, "d.bias", f32({3}))};
  a.set("activation", std::string("sigmoid"));
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(FusedMlp, OpKind::FusedMlp) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 8})), addParam(g, "d1.weight", f32({5, 8})), addParam(g, "d1.bias", f32({5})),
         addParam(g, "d2.weight", f32({3, 5})), addParam(g, "d2.bias", f32({3}))};
  a.set("activation", std::string("tanh"));
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(FusedElementwise, OpKind::FusedElementwise) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "a", f32({2, 3})), addInput(g, "b", f32({2, 3}))};
  a.set("expr", std::string("a0 a1 mul 0.5 add relu"));
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(MatMul, OpKind::MatMul) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "a", f32({2, 8})), addInput(g, "b", f32({3, 8}))};
  a.set("transpose_b", int64_t(1));
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Relu, OpKind::Relu, OpKind::Sigmoid, OpKind::Tanh) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 3}))};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(ReluGrad, OpKind::ReluGrad, OpKind::SigmoidGrad, OpKind::TanhGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 3})), addInput(g, "dy", f32({2, 3}))};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Add, OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "a", f32({2, 3})), addInput(g, "b", f32({3}))};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(SumTo, OpKind::SumTo) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "dy", f32({2, 3}))};
  a.set("shape", std::vector<int64_t>{3});
  results = {{"db", f32({3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Softmax, OpKind::Softmax, OpKind::LogSoftmax) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 10}))};
  results = {{"y", f32({2, 10})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(SoftmaxGrad, OpKind::SoftmaxGrad, OpKind::LogSoftmaxGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "y", f32({2, 10})), addInput(g, "dy", f32({2, 10}))};
  a.set("axis", int64_t(1));
  results = {{"dx", f32({2, 10})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(ArgMax, OpKind::ArgMax) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 10}))};
  results = {{"cls", i64({2})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Accuracy, OpKind::Accuracy, OpKind::SoftmaxCrossEntropy) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "logits", f32({2, 10})), addInput(g, "labels", i64({2}))};
  results = {{"loss", f32({})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(SoftmaxCrossEntropyGrad, OpKind::SoftmaxCrossEntropyGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "logits", f32({2, 10})), addInput(g, "labels", i64({2})), addInput(g, "dloss", f32({}))};
  results = {{"dlogits", f32({2, 10})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Mse, OpKind::Mse) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "pred", f32({2, 3})), addInput(g, "target", f32({2, 3}))};
  results = {{"loss", f32({})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(MseGrad, OpKind::MseGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "pred", f32({2, 3})), addInput(g, "target", f32({2, 3})), addInput(g, "dloss", f32({}))};
  results = {{"dpred", f32({2, 3})}};
  return true;
  return false;
}

// A small graph holding one `kind` op with its operands and every schema attribute set, from
// its registered case (elementwise ops: f32[2,3] operands and every float attribute 0.75, or
// its default); nullptr for an op without a case.
std::unique_ptr<Graph> buildOpGraph(OpKind kind) {
  auto g = std::make_unique<Graph>("op_" + std::string(opName(kind)));
  std::vector<Value*> ins;
  Attrs a;
  std::vector<ResultSpec> results{{"y", f32({2, 3})}};
  if (auto* fn = RoundTripRegistry::find(kind)) {
    if (!fn(kind, *g, ins, a, results)) return nullptr;
  } else if (isElementwise(kind)) {
    const char* names[] = {"a", "b", "c"};
    for (int i = 0; i < opInfo(kind).minInputs; ++i) ins.push_back(addInput(*g, names[i], f32({2, 3})));
    for (const AttrSpec& spec : opInfo(kind).attrs)
      a.set(spec.name, spec.defaultValue ? *spec.defaultValue : AttrValue(0.75));
  } else {
    return nullptr;
  }
  Node* n = g->addNode(kind, ins, a, results, roundTripAt(7, "op"));
  fillDefaultAttrs(*n);
  return g;
}

// Same nodes, names, operands, attributes, types and locations.
void expectSameGraph(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.name(), b.name());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const Node& x = *a.nodes()[i];
    const Node& y = *b.nodes()[i];
    SCOPED_TRACE(printNode(x));
    EXPECT_EQ(x.kind(), y.kind());
    ASSERT_EQ(x.numInputs(), y.numInputs());
    for (size_t j = 0; j < x.numInputs(); ++j) {
      EXPECT_EQ(x.input(j)->name(), y.input(j)->name());
      EXPECT_EQ(b.indexOf(y.input(j)->def()), a.indexOf(x.input(j)->def()));
    }
    ASSERT_EQ(x.numResults(), y.numResults());
    for (size_t j = 0; j < x.numResults(); ++j) {
      EXPECT_EQ(x.result(j)->name(), y.result(j)->name());
      EXPECT_EQ(x.result(j)->type(), y.result(j)->type());
    }
    EXPECT_TRUE(x.attrs() == y.attrs());
    EXPECT_EQ(x.loc().file, y.loc().file);
    EXPECT_EQ(x.loc().line, y.loc().line);
    EXPECT_EQ(x.loc().col, y.loc().col);
    EXPECT_EQ(x.loc().node, y.loc().node);
  }
}

std::unique_ptr<Graph> parseIrOk(const std::string& text) {
  DiagnosticEngine diags;
  auto g = parseGraph(text, "t.ir", diags);
  EXPECT_TRUE(g) << diags.render() << "\nin:\n" << text;
  EXPECT_FALSE(diags.hasErrors());
  return g;
}

TEST(IrText, EveryOpRoundTrips) {
  ASSERT_EQ(int(allOps().size()), kNumOps);
  for (OpKind kind : allOps()) {
    SCOPED_TRACE(std::string(opName(kind)));
    auto g = buildOpGraph(kind);
    ASSERT_NE(g, nullptr) << "add a case for this op to buildOpGraph";
    const Node& op = *g->nodes().back();
    // The case above is a valid use of the op: arity, results and every schema attribute.
    ASSERT_EQ(op.kind(), kind);
    EXPECT_GE(int(op.numInputs()), op.info().minInputs);
    EXPECT_LE(int(op.numInputs()), op.info().maxInputs);
    EXPECT_EQ(int(op.numResults()), op.info().numResults);
    for (const AttrSpec& spec : op.info().attrs) {
      ASSERT_TRUE(op.attrs().has(spec.name)) << spec.name;
      EXPECT_EQ(attrKindOf(*op.attrs().find(spec.name)), spec.kind) << spec.name;
    }

    std::string text = printGraph(*g);
    EXPECT_NE(text.find(std::string(opName(kind)) + "("), std::string::npos) << text;
    auto parsed = parseIrOk(text);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(printGraph(*parsed), text);
    expectSameGraph(*g, *parsed);
  }
}

TEST(IrText, GoldenText) {
  Graph g("tiny");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g.addNode(OpKind::Input, {}, in, {{"x", f32({2, 3})}}, Location{"tiny.mmd", 2, 3, "x"})->result();
  Attrs p;
  p.set("init", std::string("glorot_uniform"));
  p.set("fan_in", int64_t(3));
  p.set("fan_out", int64_t(4));
  Value* w = g.addNode(OpKind::Param, {}, p, {{"d.weight", f32({4, 3})}}, Location{"tiny.mmd", 3, 3, "d"})->result();
  Value* d = g.addNode(OpKind::Dense, {x, w}, {}, {{"d", f32({2, 4})}}, Location{"tiny.mmd", 3, 3, "d"})->result();
  Attrs out;
  out.set("name", std::string("logits"));
  g.addNode(OpKind::Output, {d}, out, {}, Location{"", 0, 0, "out"});

  const std::string golden =
      "// shoal IR\n"
      "graph tiny {\n"
      "  %x = input() {name=\"x\"} : f32[2,3] loc(\"tiny.mmd\":2:3 node=\"x\")\n"
      "  %d.weight = param() {fan_in=3, fan_out=4, init=\"glorot_uniform\"} : f32[4,3] loc(\"tiny.mmd\":3:3 "
      "node=\"d\")\n"
      "  %d = dense(%x, %d.weight) : f32[2,4] loc(\"tiny.mmd\":3:3 node=\"d\")\n"
      "  output(%d) {name=\"logits\"} loc(node=\"out\")\n"
      "}\n";
  EXPECT_EQ(printGraph(g), golden);
  EXPECT_EQ(printNode(*g.nodes()[2]), "%d = dense(%x, %d.weight) : f32[2,4] loc(\"tiny.mmd\":3:3 node=\"d\")");

  auto parsed = parseIrOk(golden);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(printGraph(*parsed), golden);
  expectSameGraph(g, *parsed);
  EXPECT_EQ(parsed->outputValue("logits")->name(), "d");
}

TEST(IrText, PrintsScalarsNoLocationAndSeveralResults) {
  Graph g("s");
  Attrs c;
  c.set("value", TensorLiteral{{}, {2.0}});
  Value* k = g.addNode(OpKind::Constant, {}, c, {{"k", f32({})}})->result();
  EXPECT_EQ(printNode(*g.nodes()[0]), "%k = constant() {value=tensor<scalar>[2.0]} : f32[]");
  // No op in the table has two results yet; the printer still spells them out.
  Node* two = g.addNode(OpKind::Relu, {k}, {}, {{"a", f32({1})}, {"b", f32({2})}});
  EXPECT_EQ(printNode(*two), "%a, %b = relu(%k) : f32[1], f32[2]");
  Node* broken = g.addNode(OpKind::Relu, {nullptr}, {}, {{"c", f32({1})}});
  EXPECT_EQ(printNode(*broken), "%c = relu(<null>) : f32[1]");
}

// An attribute left out of IR text means its schema default, so the verifier's shape rules
// always see it (a conv2d with only its dilation written used to trip an assertion).
TEST(IrText, AttributesLeftOutTakeTheirSchemaDefaults) {
  DiagnosticEngine diags;
  auto g = parseGraph(
      "graph g {\n"
      "  %x = input() {name=\"x\"} : f32[1,1,5,5]\n"
      "  %w = param() {init=\"zeros\"} : f32[2,1,3,3]\n"
      "  %y = conv2d(%x, %w) {dilation=[1,1]} : f32[1,2,3,3]\n"
      "  output(%y) {name=\"y\"}\n"
      "}\n",
      "defaults.ir", diags);
  ASSERT_NE(g, nullptr) << diags.render();
  const Node* conv = g->nodes()[2];
  EXPECT_EQ(conv->attrs().getInts("stride"), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(conv->attrs().getInts("padding"), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(conv->attrs().getInt("groups"), 1);
  EXPECT_TRUE(verifyGraph(*g, diags)) << diags.render();
}

TEST(IrText, QuotesNamesThatAreNotPlain) {
  EXPECT_EQ(printValueName("c1.weight"), "%c1.weight");
  EXPECT_EQ(printValueName("a-b_9"), "%a-b_9");
  EXPECT_EQ(printValueName("数据输入"), "%\"数据输入\"");
  EXPECT_EQ(printValueName("two words"), "%\"two words\"");
  EXPECT_EQ(printValueName("q\"b\\s"), "%\"q\\\"b\\\\s\"");

  Graph g("数据 graph");
  Attrs in;
  in.set("name", std::string("数据输入"));
  Value* x =
      g.addNode(OpKind::Input, {}, in, {{"数据输入", u8({4})}}, Location{"seed.mmd", 3, 5, "数据输入"})->result();
  Value* y = g.addNode(OpKind::Cast, {x}, {}, {{"two words", f32({4})}}, Location{"", 0, 0, "预处理"})->result();
  g.nodes()[1]->attrs().set("dtype", std::string("f32"));
  Value* z = g.addNode(OpKind::Relu, {y}, {}, {{"q\"b\\s\nl", f32({4})}})->result();
  Attrs out;
  out.set("name", std::string("结果"));
  g.addNode(OpKind::Output, {z}, out, {});

  const std::string text = printGraph(g);
  EXPECT_EQ(text,
            "// shoal IR\n"
            "graph \"数据 graph\" {\n"
            "  %\"数据输入\" = input() {name=\"数据输入\"} : u8[4] loc(\"seed.mmd\":3:5 node=\"数据输入\")\n"
            "  %\"two words\" = cast(%\"数据输入\") {dtype=\"f32\"} : f32[4] loc(node=\"预处理\")\n"
            "  %\"q\\\"b\\\\s\\nl\" = relu(%\"two words\") : f32[4]\n"
            "  output(%\"q\\\"b\\\\s\\nl\") {name=\"结果\"}\n"
            "}\n");
  auto parsed = parseIrOk(text);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(printGraph(*parsed), text);
  expectSameGraph(g, *parsed);
  EXPECT_NE(parsed->findValue("数据输入"), nullptr);
  EXPECT_NE(parsed->findValue("q\"b\\s\nl"), nullptr);
  // A plain name may also be written quoted.
  auto quoted = parseIrOk("graph g {\n  %\"x\" = input() {name=\"x\"} : f32[1]\n  output(%\"x\") {name=\"y\"}\n}\n");
  ASSERT_TRUE(quoted);
  EXPECT_EQ(printGraph(*quoted),
            "// shoal IR\ngraph g {\n  %x = input() {name=\"x\"} : f32[1]\n  output(%x) {name=\"y\"}\n}\n");
}

TEST(IrText, LocationsRoundTrip) {
  const std::vector<std::pair<Location, std::string>> cases = {
      {Location{"examples/mnist_cnn.mmd", 5, 3, "c1"}, "loc(\"examples/mnist_cnn.mmd\":5:3 node=\"c1\")"},
      {Location{"m.mmd", 12, 40, ""}, "loc(\"m.mmd\":12:40)"},
      {Location{"", 0, 0, "c1"}, "loc(node=\"c1\")"},
      {Location{"only-file.mmd", 0, 0, ""}, "loc(\"only-file.mmd\")"},
      {Location{"only-file.mmd", 0, 0, "n"}, "loc(\"only-file.mmd\" node=\"n\")"},
      {Location{"dir with space/数据.mmd", 7, 0, "是否使用GPU"},
       "loc(\"dir with space/数据.mmd\":7:0 node=\"是否使用GPU\")"},
      {Location{"q\"uote.mmd", 1, 1, "a\\b"}, "loc(\"q\\\"uote.mmd\":1:1 node=\"a\\\\b\")"},
      {Location{}, ""},
  };
  for (const auto& [loc, spelled] : cases) {
    SCOPED_TRACE(spelled);
    EXPECT_EQ(printLocation(loc), spelled);
    Graph g("locs");
    Attrs in;
    in.set("name", std::string("x"));
    g.addNode(OpKind::Input, {}, in, {{"x", f32({1})}}, loc);
    std::string text = printGraph(g);
    auto parsed = parseIrOk(text);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(printGraph(*parsed), text);
    expectSameGraph(g, *parsed);
  }
}

uint64_t bits(double d) { return std::bit_cast<uint64_t>(d); }

TEST(IrText, EveryAttributeKindRoundTrips) {
  const double third = 1.0 / 3.0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Graph g("attrs");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g.addNode(OpKind::Input, {}, in, {{"x", f32({2})}})->result();
  Attrs a;
  a.set("i_zero", int64_t(0));
  a.set("i_neg", int64_t(-42));
  a.set("i_min", std::numeric_limits<int64_t>::min());
  a.set("i_max", std::numeric_limits<int64_t>::max());
  a.set("f_tiny", 1e-07);
  a.set("f_tenth", 0.1);
  a.set("f_third", third);
  a.set("f_one", 1.0);
  a.set("f_negzero", -0.0);
  a.set("f_nan", nan);
  a.set("f_inf", inf);
  a.set("f_neginf", -inf);
  a.set("f_big", 1e300);
  a.set("f_denorm", 5e-324);
  a.set("s_plain", std::string("glorot_uniform"));
  a.set("s_empty", std::string());
  a.set("s_tricky", std::string("a \"quoted\", {braced} [x] <y> \\ back\nslash 数据"));
  a.set("is", std::vector<int64_t>{3, -1, 0});
  a.set("is_empty", std::vector<int64_t>{});
  a.set("fs", std::vector<double>{0.5, -0.0, third, 1e-07});
  a.set("t", TensorLiteral{{2, 2}, {1.0, 2.0, 3.0, 4.0}});
  a.set("t_scalar", TensorLiteral{{}, {-2.5}});
  a.set("t_empty", TensorLiteral{{0, 3}, {}});
  g.addNode(OpKind::Relu, {x}, a, {{"y", f32({2})}});

  std::string text = printGraph(g);
  std::string line = printNode(*g.nodes()[1]);
  EXPECT_EQ(line,
            "%y = relu(%x) {f_big=1e+300, f_denorm=5e-324, f_inf=inf, f_nan=nan, f_neginf=-inf, f_negzero=-0.0, "
            "f_one=1.0, f_tenth=0.1, f_third=0.3333333333333333, f_tiny=1e-07, fs=[0.5,-0.0,0.3333333333333333,1e-07], "
            "i_max=9223372036854775807, i_min=-9223372036854775808, i_neg=-42, i_zero=0, is=[3,-1,0], is_empty=[], "
            "s_empty=\"\", s_plain=\"glorot_uniform\", s_tricky=\"a \\\"quoted\\\", {braced} [x] <y> \\\\ back\\nslash "
            "数据\", "
            "t=tensor<2x2>[1.0,2.0,3.0,4.0], t_empty=tensor<0x3>[], t_scalar=tensor<scalar>[-2.5]} : f32[2]");
  auto parsed = parseIrOk(text);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(printGraph(*parsed), text);
  const Attrs& p = parsed->nodes()[1]->attrs();
  EXPECT_EQ(p.getInt("i_min"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(p.getInt("i_max"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(p.getInt("i_neg"), -42);
  EXPECT_EQ(bits(p.getFloat("f_tiny")), bits(1e-07));
  EXPECT_EQ(bits(p.getFloat("f_tenth")), bits(0.1));
  EXPECT_EQ(bits(p.getFloat("f_third")), bits(third));
  EXPECT_EQ(bits(p.getFloat("f_one")), bits(1.0));
  EXPECT_EQ(bits(p.getFloat("f_negzero")), bits(-0.0));
  EXPECT_TRUE(std::holds_alternative<double>(*p.find("f_nan")));
  EXPECT_TRUE(std::isnan(p.getFloat("f_nan")));
  EXPECT_EQ(p.getFloat("f_inf"), inf);
  EXPECT_EQ(p.getFloat("f_neginf"), -inf);
  EXPECT_EQ(bits(p.getFloat("f_big")), bits(1e300));
  EXPECT_EQ(bits(p.getFloat("f_denorm")), bits(5e-324));
  EXPECT_EQ(p.getString("s_empty"), "");
  EXPECT_EQ(p.getString("s_tricky"), a.getString("s_tricky"));
  EXPECT_EQ(p.getInts("is"), (std::vector<int64_t>{3, -1, 0}));
  EXPECT_TRUE(p.getInts("is_empty").empty());
  std::vector<double> fs = p.getFloats("fs");
  ASSERT_EQ(fs.size(), 4u);
  EXPECT_EQ(bits(fs[1]), bits(-0.0));
  EXPECT_EQ(bits(fs[2]), bits(third));
  EXPECT_TRUE(p.getTensor("t") == (TensorLiteral{{2, 2}, {1.0, 2.0, 3.0, 4.0}}));
  EXPECT_TRUE(p.getTensor("t_scalar") == (TensorLiteral{{}, {-2.5}}));
  EXPECT_TRUE(p.getTensor("t_empty") == (TensorLiteral{{0, 3}, {}}));
  // Every attribute but the NaN one compares equal as a value, too.
  for (const auto& [key, value] : a.entries())
    if (key != "f_nan") {
      EXPECT_TRUE(*p.find(key) == value) << key;
    }
}

TEST(IrText, SchemaFloatsWrittenAsIntsReadAsFloats) {
  auto g = parseIrOk(
      "graph g {\n"
      "  %x = input() {name=\"x\"} : f32[1,2]\n"
      "  %n = normalize(%x) {mean=[0, 1], std=[]} : f32[1,2]\n"
      "  %s = scale(%n) {scale=2, shift=-1} : f32[1,2]\n"
      "}\n");
  ASSERT_TRUE(g);
  const Attrs& n = g->nodes()[1]->attrs();
  EXPECT_TRUE(std::holds_alternative<std::vector<double>>(*n.find("mean")));
  EXPECT_TRUE(std::holds_alternative<std::vector<double>>(*n.find("std")));
  const Attrs& s = g->nodes()[2]->attrs();
  EXPECT_TRUE(std::holds_alternative<double>(*s.find("scale")));
  EXPECT_EQ(s.getFloat("shift"), -1.0);
  EXPECT_EQ(printNode(*g->nodes()[2]), "%s = scale(%n) {scale=2.0, shift=-1.0} : f32[1,2]");
}

TEST(IrText, AcceptsHandWrittenSpacingCommentsAndCrlf) {
  const std::string text =
      "\xEF\xBB\xBF// a model written by hand\r\n"
      "\r\n"
      "// more comments\n"
      "graph   hand{   // trailing comment\n"
      "\t%x=input( ){ name = x }:f32[ 2 , 3 ]   loc( \"h.ir\" : 4 : 2  node = \"x\" )\n"
      "  // a comment inside\n"
      "\n"
      "  %y = relu( %x ) : f32[2,3] // why not\n"
      "  output(%y) {name=\"y\"}\n"
      "}   \n"
      "// after the end\n";
  auto g = parseIrOk(text);
  ASSERT_TRUE(g);
  EXPECT_EQ(printGraph(*g),
            "// shoal IR\n"
            "graph hand {\n"
            "  %x = input() {name=\"x\"} : f32[2,3] loc(\"h.ir\":4:2 node=\"x\")\n"
            "  %y = relu(%x) : f32[2,3]\n"
            "  output(%y) {name=\"y\"}\n"
            "}\n");
}

TEST(IrText, LooksLikeIrText) {
  EXPECT_TRUE(looksLikeIrText("// shoal IR\ngraph mnist_cnn {\n}\n"));
  EXPECT_TRUE(looksLikeIrText("\n\n  graph g{\n"));
  EXPECT_TRUE(looksLikeIrText("graph \"数据\" { // c\n"));
  EXPECT_FALSE(looksLikeIrText("flowchart TD\n  a --> b\n"));
  EXPECT_FALSE(looksLikeIrText("graph TD\n  a --> b\n"));
  EXPECT_FALSE(looksLikeIrText("%% comment\ngraph g {\n"));
  EXPECT_FALSE(looksLikeIrText("graph LR;\n"));
  EXPECT_FALSE(looksLikeIrText(""));
  EXPECT_FALSE(looksLikeIrText("// only a comment\n"));
}

struct BadCase {
  const char* what;
  std::string text;
  std::string firstError;  ///< "file:line:col: error: message"
};

TEST(IrText, MalformedTextsReportExactDiagnostics) {
  const std::string head = "graph g {\n  %x = input() {name=\"x\"} : f32[2,3]\n";
  const std::vector<BadCase> cases = {
      {"unknown op", head + "  %y = frobnicate(%x) : f32[2,3]\n}\n", "bad.ir:3:8: error: unknown op 'frobnicate'"},
      {"undefined value", head + "  %y = relu(%z) : f32[2,3]\n}\n", "bad.ir:3:13: error: use of undefined value '%z'"},
      {"use before definition", "graph g {\n  %y = relu(%x) : f32[1]\n  %x = input() {name=\"x\"} : f32[1]\n}\n",
       "bad.ir:2:13: error: use of undefined value '%x'"},
      {"redefinition", head + "  %x = relu(%x) : f32[2,3]\n}\n", "bad.ir:3:3: error: redefinition of value '%x'"},
      {"repeated result", head + "  %a, %a = relu(%x) : f32[2,3], f32[2,3]\n}\n",
       "bad.ir:3:12: error: 'relu' produces 1 result, got 2"},
      {"missing }", head, "bad.ir:2:37: error: expected '}' to close graph 'g', got end of file"},
      {"bad type", head + "  %y = relu(%x) : f33[2]\n}\n", "bad.ir:3:19: error: unknown element type 'f33'"},
      {"negative extent", head + "  %y = relu(%x) : f32[2,-3]\n}\n", "bad.ir:3:25: error: negative extent -3"},
      {"bad attribute value", head + "  %y = maxpool2d(%x) {kernel=[2,,2], stride=[2,2]} : f32[1,3]\n}\n",
       "bad.ir:3:30: error: invalid value for attribute 'kernel': [2,,2]"},
      {"missing attribute value", head + "  %y = flatten(%x) {axis=} : f32[2,3]\n}\n",
       "bad.ir:3:26: error: expected a value for attribute 'axis'"},
      {"duplicate attribute", head + "  %y = flatten(%x) {axis=1, axis=2} : f32[2,3]\n}\n",
       "bad.ir:3:29: error: duplicate attribute 'axis'"},
      {"too few inputs", head + "  %y = add(%x) : f32[2,3]\n}\n", "bad.ir:3:8: error: 'add' takes 2 operands, got 1"},
      {"too many inputs", head + "  %y = conv2d(%x, %x, %x, %x) : f32[2,3]\n}\n",
       "bad.ir:3:8: error: 'conv2d' takes 2 to 3 operands, got 4"},
      {"inputs to a source", head + "  %y = param(%x) : f32[2,3]\n}\n",
       "bad.ir:3:8: error: 'param' takes no operands, got 1"},
      {"result on a sink", head + "  %y = output(%x) {name=\"y\"} : f32[2,3]\n}\n",
       "bad.ir:3:8: error: 'output' produces no results, got 1"},
      {"missing result", head + "  relu(%x) : f32[2,3]\n}\n", "bad.ir:3:3: error: 'relu' produces 1 result, got 0"},
      {"missing result type", head + "  %y = relu(%x)\n}\n",
       "bad.ir:3:16: error: expected ':' and 1 result type after the op"},
      {"too many result types", head + "  %y = relu(%x) : f32[2,3], f32[2]\n}\n",
       "bad.ir:3:17: error: expected 1 result type, got 2"},
      {"garbage line", head + "  this is not IR\n}\n", "bad.ir:3:8: error: expected '(' after 'this', got 'is'"},
      {"punctuation line", head + "  $$$\n}\n", "bad.ir:3:3: error: expected an op name or '%result =', got '$'"},
      {"junk after op", head + "  %y = relu(%x) : f32[2,3] extra\n}\n",
       "bad.ir:3:28: error: expected end of line, got 'extra'"},
      {"unterminated string", head + "  output(%x) {name=\"y}\n}\n", "bad.ir:3:20: error: unterminated string"},
      {"bad loc", head + "  %y = relu(%x) : f32[2,3] loc(\"f\":x)\n}\n",
       "bad.ir:3:36: error: expected a line number, got 'x'"},
      {"negative line", head + "  %y = relu(%x) : f32[2,3] loc(\"f\":-2:1)\n}\n",
       "bad.ir:3:36: error: line number out of range"},
      {"empty text", "", "bad.ir:1:1: error: expected 'graph NAME {', got end of file"},
      {"comments only", "// nothing here\n", "bad.ir:1:16: error: expected 'graph NAME {', got end of file"},
      {"mermaid text", "flowchart TD\n  a --> b\n", "bad.ir:1:1: error: expected 'graph NAME {', got 'flowchart'"},
      {"header without brace", "graph g\n}\n", "bad.ir:1:8: error: expected '{' after the graph name, got end of line"},
      {"text after the graph", head + "}\n%z = relu(%x) : f32[2,3]\n",
       "bad.ir:4:1: error: unexpected text after the end of graph 'g' (only a 'pipeline {' settings block may follow)"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    DiagnosticEngine diags;
    auto g = parseGraph(c.text, "bad.ir", diags);
    EXPECT_EQ(g, nullptr);
    ASSERT_TRUE(diags.hasErrors());
    EXPECT_EQ(diags.firstError().str(), c.firstError) << diags.render();
  }
}

TEST(IrText, ReportsSeveralErrorsAndDoesNotCascade) {
  const std::string text =
      "graph g {\n"
      "  %x = input() {name=\"x\"} : f32[2]\n"
      "  %a = relu(%x) : q8[2]\n"         // error 1: bad type; %a is poisoned
      "  %b = relu(%a) : f32[2]\n"        // no error: %a's own line already failed
      "  %c = sigmoid(%b) : f32[2]\n"     // no error either (depends on %b)
      "  %d = nope(%x) : f32[2]\n"        // error 2
      "  %e = relu(%missing) : f32[2]\n"  // error 3
      "  output(%c) {name=\"c\"}\n"
      "}\n";
  DiagnosticEngine diags;
  EXPECT_EQ(parseGraph(text, "multi.ir", diags), nullptr);
  ASSERT_EQ(diags.diagnostics().size(), 3u) << diags.render();
  EXPECT_EQ(Error(diags.diagnostics()[0].message, diags.diagnostics()[0].loc).str(),
            "multi.ir:3:19: error: unknown element type 'q8'");
  EXPECT_EQ(Error(diags.diagnostics()[1].message, diags.diagnostics()[1].loc).str(),
            "multi.ir:6:8: error: unknown op 'nope'");
  EXPECT_EQ(Error(diags.diagnostics()[2].message, diags.diagnostics()[2].loc).str(),
            "multi.ir:7:13: error: use of undefined value '%missing'");
  // The renderer can quote the line: the parser registered the source.
  EXPECT_NE(diags.render().find("  %d = nope(%x) : f32[2]\n       ^\n"), std::string::npos) << diags.render();
}

TEST(IrText, ErrorColumnsCountBytesOfUtf8Names) {
  DiagnosticEngine diags;
  auto g = parseGraph(
      "graph g {\n  %\"数据\" = input() {name=\"x\"} : f32[1]\n  %y = relu(%\"数据\", %\"数据\") : f32[1]\n}\n", "u.ir",
      diags);
  EXPECT_EQ(g, nullptr);
  EXPECT_EQ(diags.firstError().str(), "u.ir:3:8: error: 'relu' takes 1 operand, got 2");
}

}  // namespace
}  // namespace shoal
