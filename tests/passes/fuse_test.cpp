// Fusion passes: golden IR (input -> IR after one pass, including the cases that must not
// fuse), and fused vs unfused programs computing the same numbers on the interpreter.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/init.h"
#include "test_util.h"

namespace shoal {
namespace {

const std::set<std::string> kFusion = {"fuse-conv-activation", "fuse-conv-pool",   "fuse-pool-relu-grad",
                                       "fuse-dense-activation", "fuse-dense-pair", "fuse-elementwise",
                                       "fuse-conv-prologue"};

struct GoldenCase {
  const char* file;
  const char* pass;
  bool changes;
};

class FuseGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(FuseGolden, MatchesTheExpectedIr) {
  const GoldenCase& c = GetParam();
  std::string dir = test::sourcePath("tests/passes/golden/fuse/");
  std::string inPath = dir + c.file + ".in.ir";
  DiagnosticEngine diags;
  auto g = parseGraph(test::readFile(inPath), inPath, diags);
  ASSERT_TRUE(g) << diags.render();
  std::string before = printGraph(*g);
  PassManager pm;
  pm.add(createPass(c.pass));
  pm.setVerifyEach(true);
  pm.setCheckUnchanged(true);  // a pass that says "unchanged" must leave the text alone
  bool changed = false;
  pm.setObserver([&](std::string_view, bool ch, const Graph&) { changed = ch; });
  PassContext ctx;
  auto ok = pm.run(*g, ctx);
  ASSERT_TRUE(ok) << ok.error().str();
  std::string after = printGraph(*g);
  EXPECT_EQ(changed, c.changes);
  if (!c.changes) {
    EXPECT_EQ(after, before);
    return;
  }
  std::string outPath = dir + c.file + ".out.ir";
  if (std::getenv("SHOAL_UPDATE_GOLDEN")) test::writeFile(outPath, after);
  EXPECT_EQ(after, test::readFile(outPath)) << "golden: " << outPath;
}

INSTANTIATE_TEST_SUITE_P(Fuse, FuseGolden,
                         ::testing::Values(GoldenCase{"conv_relu", "fuse-conv-activation", true},
                                           GoldenCase{"elementwise_decode", "fuse-elementwise", true},
                                           GoldenCase{"elementwise_mixed_f64", "fuse-elementwise", true},
                                           GoldenCase{"conv_relu_input_used_elsewhere", "fuse-conv-activation", false},
                                           GoldenCase{"conv_output_needed_by_backward", "fuse-conv-activation", false},
                                           GoldenCase{"dense_sigmoid", "fuse-dense-activation", true},
                                           GoldenCase{"dense_read_twice", "fuse-dense-activation", false},
                                           GoldenCase{"dense_pair", "fuse-dense-pair", true},
                                           GoldenCase{"dense_pair_hidden_read_twice", "fuse-dense-pair", false},
                                           GoldenCase{"dense_pair_no_bias", "fuse-dense-pair", false},
                                           GoldenCase{"dense_sigmoid", "fuse-dense-pair", false},
                                           GoldenCase{"elementwise_chain", "fuse-elementwise", true},
                                           GoldenCase{"elementwise_shared_intermediate", "fuse-elementwise", true},
                                           GoldenCase{"conv_relu", "fuse-elementwise", false},
                                           GoldenCase{"dense_sigmoid", "fuse-conv-activation", false},
                                           GoldenCase{"conv_pool", "fuse-conv-pool", true},
                                           GoldenCase{"conv_pool_needed_by_backward", "fuse-conv-pool", false},
                                           GoldenCase{"conv_pool_output_read_twice", "fuse-conv-pool", false},
                                           GoldenCase{"conv_relu", "fuse-conv-pool", false},
                                           GoldenCase{"pool_relu_grad", "fuse-pool-relu-grad", true},
                                           GoldenCase{"pool_relu_grad_other_mask", "fuse-pool-relu-grad", false},
                                           GoldenCase{"pool_relu_grad_read_twice", "fuse-pool-relu-grad", false},
                                           GoldenCase{"pool_relu_grad_masked_twice", "fuse-pool-relu-grad", false},
                                           GoldenCase{"conv_pool_needed_by_backward", "fuse-pool-relu-grad", false},
                                           GoldenCase{"conv_prologue", "fuse-conv-prologue", true},
                                           GoldenCase{"conv_prologue_unary", "fuse-conv-prologue", true},
                                           GoldenCase{"conv_prologue_read_twice", "fuse-conv-prologue", false},
                                           GoldenCase{"conv_prologue_two_operands", "fuse-conv-prologue", false},
                                           GoldenCase{"conv_pool", "fuse-conv-prologue", false},
                                           GoldenCase{"conv_epilogue", "fuse-conv-epilogue", true},
                                           GoldenCase{"conv_epilogue_second_operand", "fuse-conv-epilogue", true},
                                           GoldenCase{"conv_epilogue_no_bias", "fuse-conv-epilogue", false},
                                           GoldenCase{"conv_epilogue_read_twice", "fuse-conv-epilogue", false},
                                           GoldenCase{"elementwise_chain", "fuse-conv-epilogue", false}),
                         [](const auto& info) { return std::string(info.param.file) + "_" + std::to_string(info.index); });

Tensor fuseRandomTensor(const TensorType& t, Rng& rng) {
  Tensor x(t);
  for (int64_t i = 0; i < x.numElements(); ++i)
    x.set(i, isFloat(t.dtype) ? 2 * rng.uniform() - 1 : double(rng.below(t.dtype == DType::U8 ? 256 : 10)));
  return x;
}

// Runs `g` compiled with and without fusion on the same inputs for `steps` runs and expects the
// same outputs and the same params/state afterwards.
void expectFusedMatchesUnfused(const Graph& g, const TrainConfig* train, int steps) {
  std::unique_ptr<CpuExecutable> exes[2];
  for (int fused = 0; fused < 2; ++fused) {
    CompileOptions opts;
    opts.train = train;
    opts.verifyEach = true;
    if (!fused) opts.disabledPasses = kFusion;
    auto program = compileProgram(g.clone(), opts);
    ASSERT_TRUE(program) << program.error().str();
    auto exe = CpuExecutable::create(std::move(*program));
    ASSERT_TRUE(exe) << exe.error().str();
    exes[fused] = std::move(*exe);
    exes[fused]->initializeParameters(3);
  }
  Rng rng(11);
  for (int s = 0; s < steps; ++s) {
    TensorMap feed;
    for (Node* n : exes[0]->graph().inputNodes()) {
      const std::string& name = n->attrs().getString("name");
      Tensor t = fuseRandomTensor(n->result()->type(), rng);
      if (name == "step") t.set(0, s + 1);
      feed[name] = t;
    }
    auto a = exes[0]->run(feed);
    auto b = exes[1]->run(feed);
    ASSERT_TRUE(a && b);
    for (auto& [name, t] : *a)
      for (int64_t i = 0; i < t.numElements(); ++i)
        ASSERT_NEAR(t.at(i), b->at(name).at(i), 1e-6 * (1 + std::abs(t.at(i)))) << name << "[" << i << "] step " << s;
  }
  TensorMap pa = exes[0]->readPersistent(), pb = exes[1]->readPersistent();
  for (auto& [name, t] : pa)
    for (int64_t i = 0; i < t.numElements(); ++i)
      ASSERT_NEAR(t.at(i), pb.at(name).at(i), 1e-6 * (1 + std::abs(t.at(i)))) << name << "[" << i << "]";
}

TEST(Fuse, FusedAndUnfusedProgramsAgreeOnEveryExample) {
  for (const char* ex : {"examples/mnist_cnn.mmd", "examples/seed_pipeline.mmd", "examples/mlp.mmd", "examples/matmul.mmd",
                         "examples/conv.mmd"}) {
    SCOPED_TRACE(ex);
    DiagnosticEngine diags;
    auto p = loadPipelineFile(test::sourcePath(ex), diags);
    ASSERT_TRUE(p) << diags.render();
    expectFusedMatchesUnfused(*p->model, nullptr, 1);
    if (p->train) expectFusedMatchesUnfused(*p->model, &*p->train, 3);
  }
}

TEST(Fuse, FusedAndUnfusedAgreeOnTheGoldenGraphs) {
  for (const char* f : {"conv_relu", "dense_sigmoid", "dense_pair", "elementwise_chain", "elementwise_shared_intermediate",
                        "elementwise_decode", "elementwise_mixed_f64", "conv_pool",
                        "conv_pool_output_read_twice", "pool_relu_grad", "pool_relu_grad_read_twice"}) {
    SCOPED_TRACE(f);
    std::string path = test::sourcePath(std::string("tests/passes/golden/fuse/") + f + ".in.ir");
    DiagnosticEngine diags;
    auto g = parseGraph(test::readFile(path), path, diags);
    ASSERT_TRUE(g) << diags.render();
    expectFusedMatchesUnfused(*g, nullptr, 2);
  }
}

// Inference: conv2d + relu + maxpool2d become one fused_conv2d_pool. Training: maxpool2d_grad
// reads the conv output, so the step keeps fused_conv2d and maxpool2d.
TEST(Fuse, ConvPoolFusesForInferenceOnly) {
  DiagnosticEngine diags;
  auto p = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(p) << diags.render();
  auto count = [](const Program& prog, OpKind k) {
    int c = 0;
    for (const Node* n : prog.graph->nodes()) c += n->kind() == k;
    return c;
  };
  CompileOptions infer;
  infer.verifyEach = true;
  auto inference = compileProgram(p->model->clone(), infer);
  ASSERT_TRUE(inference) << inference.error().str();
  EXPECT_EQ(count(*inference, OpKind::FusedConv2dPool), 1);
  EXPECT_EQ(count(*inference, OpKind::FusedConv2d), 0);
  EXPECT_EQ(count(*inference, OpKind::MaxPool2d), 0);
  CompileOptions train = infer;
  train.train = &*p->train;
  auto step = compileProgram(p->model->clone(), train);
  ASSERT_TRUE(step) << step.error().str();
  EXPECT_EQ(count(*step, OpKind::FusedConv2dPool), 0);
  EXPECT_EQ(count(*step, OpKind::FusedConv2d), 1);
  EXPECT_EQ(count(*step, OpKind::MaxPool2d), 1);
  EXPECT_EQ(count(*step, OpKind::MaxPool2dGrad), 1);
  // ...and the conv's relu_grad goes into the pool's gradient (d1's stays).
  EXPECT_EQ(count(*step, OpKind::ReluGrad), 1);
  for (const Node* n : step->graph->nodes()) {
    if (n->kind() == OpKind::MaxPool2dGrad) {
      EXPECT_EQ(n->attrs().getInt("relu_mask"), 1);
    }
  }
}

TEST(Fuse, DumpAfterFuseShowsTheFusedOpsAndDisablingWorks) {
  auto r = test::runCli("dump examples/mnist_cnn.mmd --after fuse");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  // The input's decode (u8 -> f32, / 255) is read by the conv as it loads (fuse-conv-prologue).
  EXPECT_NE(r.out.find("%p1 = fused_conv2d_pool(%x, %c1.weight, %c1.bias) {activation=\"relu\", dilation=[1,1], "
                       "groups=1, input_expr=\"a0 scale(0.00392156862745098,0.0)\", padding=[0,0,0,0], pool_ceil_mode=0, "
                       "pool_kernel=[2,2], pool_padding=[0,0,0,0], pool_stride=[2,2], stride=[1,1]}"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("%pre = "), std::string::npos) << r.out;
  r = test::runCli("dump examples/mnist_cnn.mmd --after fuse --disable-pass fuse-conv-prologue");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("%p1 = fused_conv2d_pool(%pre, %c1.weight, %c1.bias) {activation=\"relu\", dilation=[1,1], "
                       "groups=1, padding=[0,0,0,0], pool_ceil_mode=0, pool_kernel=[2,2], pool_padding=[0,0,0,0], "
                       "pool_stride=[2,2], stride=[1,1]}"),
            std::string::npos)
      << r.out;
  r = test::runCli("dump examples/mnist_cnn.mmd --after fuse --disable-pass fuse-conv-pool");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("%c1 = fused_conv2d(%pre, %c1.weight, %c1.bias) {activation=\"relu\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("fused_conv2d_pool"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("%d2 = fused_mlp(%f, %d1.weight, %d1.bias, %d2.weight, %d2.bias) {activation=\"relu\"}"),
            std::string::npos)
      << r.out;
  r = test::runCli("dump examples/mnist_cnn.mmd --after fuse --disable-pass fuse-dense-pair");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("%d1 = fused_dense(%f, %d1.weight, %d1.bias) {activation=\"relu\"}"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("fused_mlp"), std::string::npos) << r.out;
  r = test::runCli("dump examples/mnist_cnn.mmd --train --disable-pass fuse-conv-activation");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.find("fused_conv2d"), std::string::npos);
  EXPECT_NE(r.out.find("fused_dense"), std::string::npos);
  r = test::runCli("dump examples/mnist_cnn.mmd --train --disable-pass fuse");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.find("fused_"), std::string::npos);
}

}  // namespace
}  // namespace shoal
