// The elementwise family in the fusion and folding passes: its rows join fused chains with
// their attributes (golden IR), the fused program computes what the unfused one does, and
// constant folding evaluates the rows' formulas.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>

#include "ir/elementwise.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"
#include "test_util.h"

namespace shoal {
namespace {

std::unique_ptr<Graph> readGolden(const std::string& name) {
  const std::string path = test::sourcePath("tests/passes/golden/fuse/" + name);
  DiagnosticEngine diags;
  auto g = parseGraph(test::readFile(path), path, diags);
  EXPECT_TRUE(g) << diags.render();
  return g;
}

TEST(ElementwiseFuse, FamilyRowsJoinChainsWithTheirAttributes) {
  auto g = readGolden("elementwise_family_chain.in.ir");
  ASSERT_TRUE(g);
  PassManager pm;
  pm.add(createPass("fuse-elementwise"));
  pm.setVerifyEach(true);
  pm.setCheckUnchanged(true);
  PassContext ctx;
  auto ok = pm.run(*g, ctx);
  ASSERT_TRUE(ok) << ok.error().str();
  const std::string outPath = test::sourcePath("tests/passes/golden/fuse/elementwise_family_chain.out.ir");
  if (std::getenv("SHOAL_UPDATE_GOLDEN")) test::writeFile(outPath, printGraph(*g));
  EXPECT_EQ(printGraph(*g), test::readFile(outPath)) << "golden: " << outPath;
}

TEST(ElementwiseFuse, FusedAndUnfusedComputeTheSameNumbers) {
  auto g = readGolden("elementwise_family_chain.in.ir");
  ASSERT_TRUE(g);
  TensorMap feed;
  uint64_t state = 12345;  // a small LCG: inputs in [-2, 2)
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return double(state >> 11) / double(1ull << 53) * 4 - 2;
  };
  for (Node* n : g->inputNodes()) {
    Tensor t(n->result()->type());
    for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, next());
    feed[n->attrs().getString("name")] = t;
  }
  auto runWith = [&](std::set<std::string> disabled) {
    CompileOptions opts;
    opts.disabledPasses = std::move(disabled);
    auto program = compileProgram(g->clone(), opts);
    EXPECT_TRUE(program) << program.error().str();
    auto exe = CpuExecutable::create(std::move(*program));
    EXPECT_TRUE(exe);
    auto out = (*exe)->run(feed);
    EXPECT_TRUE(out) << out.error().str();
    return out->at("s");
  };
  Tensor fused = runWith({});
  Tensor unfused = runWith({"fuse-elementwise"});
  ASSERT_EQ(fused.type(), unfused.type());
  // Same formulas, same element type: the same bits.
  EXPECT_EQ(std::memcmp(fused.raw(), unfused.raw(), fused.byteSize()), 0);
}

TEST(ElementwiseFuse, ExpressionsSpellInfiniteBoundsAndParseThemBack) {
  const std::string token = exprToken(OpKind::Clip, {-std::numeric_limits<double>::infinity(), 6.0});
  EXPECT_EQ(token, "clip(-inf,6.0)");
  auto program = parseElementwiseExpr("a0 " + token + " a1 maximum leaky_relu(0.2) a0 a1 a1 pow_grad_exponent add", 2);
  ASSERT_TRUE(program) << program.error().message();
  ASSERT_EQ(program->size(), 10u);
  EXPECT_EQ((*program)[1].op, OpKind::Clip);
  EXPECT_EQ((*program)[1].params[0], -std::numeric_limits<double>::infinity());
  EXPECT_EQ((*program)[8].arity(), 3);
  EXPECT_FALSE(parseElementwiseExpr("a0 clip(1.0)", 1));  // clip takes min and max
  EXPECT_FALSE(parseElementwiseExpr("a0 a1 equal", 2));   // comparisons are not formula rows
}

TEST(ElementwiseFuse, ConstantFoldingEvaluatesTheFormulas) {
  // pow, maximum and gelu over constants become constants; the comparison is a kernel op and
  // stays (its operands are constants, but only formula rows and views fold).
  DiagnosticEngine diags;
  auto g = parseGraph(
      "graph fold {\n"
      "  %a = constant() {value=tensor<3>[2.0,0.0,-1.0]} : f64[3]\n"
      "  %b = constant() {value=tensor<3>[3.0,0.0,2.0]} : f64[3]\n"
      "  %p = pow(%a, %b) : f64[3]\n"
      "  %m = maximum(%p, %a) : f64[3]\n"
      "  %g = gelu(%m) : f64[3]\n"
      "  %k = less(%a, %b) : bool[3]\n"
      "  output(%g) {name=\"g\"}\n"
      "  output(%k) {name=\"k\"}\n"
      "}\n",
      "fold.ir", diags);
  ASSERT_TRUE(g) << diags.render();
  CompileOptions opts;
  opts.stopAfter = "fold-constants";
  auto program = compileProgram(std::move(g), opts);
  ASSERT_TRUE(program) << program.error().str();
  const std::string text = printGraph(*program->graph);
  EXPECT_EQ(text.find("pow("), std::string::npos) << text;
  EXPECT_EQ(text.find("gelu("), std::string::npos) << text;
  EXPECT_NE(text.find("less("), std::string::npos) << text;
  const Value* folded = program->graph->outputValue("g");
  ASSERT_EQ(folded->def()->kind(), OpKind::Constant);
  // pow: 8, 1, 1; maximum with a: 8, 1, 1; gelu(8) = 8 (to 1e-15), gelu(1) = 0.8413...
  const auto& v = folded->def()->attrs().getTensor("value").values;
  ASSERT_EQ(v.size(), 3u);
  EXPECT_NEAR(v[0], 8.0, 1e-14);
  EXPECT_NEAR(v[1], 0.84134474606854295, 1e-15);
  EXPECT_NEAR(v[2], 0.84134474606854295, 1e-15);
}

}  // namespace
}  // namespace shoal
