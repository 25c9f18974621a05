// fuse-transpose-matmul: golden IR (what folds and what stays), and the fused program computes
// what the unfused one does.
#include <gtest/gtest.h>

#include <random>

#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"
#include "test_util.h"

namespace shoal {
namespace {

std::unique_ptr<Graph> parseGolden(const std::string& path) {
  DiagnosticEngine diags;
  auto g = parseGraph(test::readFile(path), path, diags);
  EXPECT_TRUE(g) << diags.render();
  return g;
}

TEST(FuseTransposeMatmul, MatchesTheGoldenIr) {
  const std::string dir = test::sourcePath("tests/passes/golden/fuse/");
  auto g = parseGolden(dir + "transpose_matmul.in.ir");
  ASSERT_TRUE(g);
  PassManager pm;
  pm.add(createPass("fuse-transpose-matmul"));
  pm.setVerifyEach(true);
  pm.setCheckUnchanged(true);
  bool changed = false;
  pm.setObserver([&](std::string_view, bool ch, const Graph&) { changed = ch; });
  PassContext ctx;
  auto ok = pm.run(*g, ctx);
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_TRUE(changed);
  const std::string outPath = dir + "transpose_matmul.out.ir";
  if (std::getenv("SHOAL_UPDATE_GOLDEN")) test::writeFile(outPath, printGraph(*g));
  EXPECT_EQ(printGraph(*g), test::readFile(outPath)) << "golden: " << outPath;

  // Nothing left to fold: the pass says so and leaves the text alone.
  const std::string once = printGraph(*g);
  auto again = pm.run(*g, ctx);
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_FALSE(changed);
  EXPECT_EQ(printGraph(*g), once);
}

TEST(FuseTransposeMatmul, FusedProgramComputesTheSameValues) {
  auto g = parseGolden(test::sourcePath("tests/passes/golden/fuse/transpose_matmul.in.ir"));
  ASSERT_TRUE(g);
  TensorMap inputs;
  std::mt19937 rng(5);
  for (Node* n : g->inputNodes()) {
    Tensor t(n->result()->type());
    for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, std::uniform_real_distribution<double>(-1, 1)(rng));
    inputs[n->attrs().getString("name")] = t;
  }
  auto run = [&](bool fuse) {
    CompileOptions opts;
    if (!fuse) opts.disabledPasses.insert("fuse-transpose-matmul");
    auto program = compileProgram(g->clone(), opts);
    EXPECT_TRUE(program) << program.error().str();
    int transposes = 0;
    for (Node* n : program->graph->nodes()) transposes += n->kind() == OpKind::Transpose;
    EXPECT_EQ(transposes, fuse ? 2 : 3);  // the folded keys' transpose is gone (dce)
    auto exe = CpuExecutable::create(std::move(*program));
    EXPECT_TRUE(exe);
    auto out = (*exe)->run(inputs);
    EXPECT_TRUE(out) << out.error().str();
    return *out;
  };
  TensorMap fused = run(true), plain = run(false);
  for (const auto& [name, t] : plain)
    for (int64_t i = 0; i < t.numElements(); ++i)
      EXPECT_NEAR(fused.at(name).at(i), t.at(i), 1e-5 * (1 + std::abs(t.at(i)))) << name << "[" << i << "]";
}

}  // namespace
}  // namespace shoal
