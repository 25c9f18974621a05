// Fusion of the conv family's new forms: grouped and depthwise convolutions fuse with their
// activation and a ceil-mode max pool (the fused ops carry groups and pool_ceil_mode), and the
// fused programs compute what the unfused ones do, for inference and for training steps.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "frontend/pipeline_loader.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/init.h"

namespace shoal {
namespace {

// A depthwise-separable block: depthwise 3x3 (groups 4) + relu, 3x3 stride-2 max pool in
// ceil mode, a grouped 1x1 + tanh, a transposed conv back up, global average pooling.
constexpr const char* kPipeline = R"(flowchart TD
  x[input: shape=2x4x9x9] --> dw[conv2d: filters=8 kernel=3x3 groups=4 padding=same activation=relu]
  dw --> p[maxpool: size=3x3 stride=2 padding=1 ceil_mode=true]
  p --> pw[conv2d: filters=6 kernel=1 groups=2 activation=tanh]
  pw --> up[conv_transpose2d: filters=4 kernel=2x2 stride=2 groups=2]
  up --> g[global_avgpool]
  g --> o[output: name=logits]
)";

int countConvOps(const Graph& g, OpKind kind) {
  int c = 0;
  for (const Node* n : g.nodes()) c += n->kind() == kind;
  return c;
}

const Node* findOp(const Graph& g, OpKind kind) {
  for (const Node* n : g.nodes())
    if (n->kind() == kind) return n;
  return nullptr;
}

TEST(ConvFusion, GroupedConvsFuseWithActivationAndCeilModePool) {
  DiagnosticEngine diags;
  auto p = loadPipelineText(kPipeline, "block.mmd", diags);
  ASSERT_TRUE(p) << diags.render();
  CompileOptions opts;
  opts.verifyEach = true;
  auto program = compileProgram(p->model->clone(), opts);
  ASSERT_TRUE(program) << program.error().str();
  const Graph& g = *program->graph;
  EXPECT_EQ(countConvOps(g, OpKind::FusedConv2dPool), 1);
  EXPECT_EQ(countConvOps(g, OpKind::FusedConv2d), 1);
  EXPECT_EQ(countConvOps(g, OpKind::MaxPool2d), 0);
  const Node* convPool = findOp(g, OpKind::FusedConv2dPool);
  ASSERT_NE(convPool, nullptr);
  EXPECT_EQ(convPool->attrs().getInt("groups"), 4);
  EXPECT_EQ(convPool->attrs().getInt("pool_ceil_mode"), 1);
  EXPECT_EQ(convPool->result()->type().str(), "f32[2,8,5,5]");  // floor mode would give 4x4
  const Node* pointwise = findOp(g, OpKind::FusedConv2d);
  ASSERT_NE(pointwise, nullptr);
  EXPECT_EQ(pointwise->attrs().getInt("groups"), 2);
  EXPECT_EQ(pointwise->attrs().getString("activation"), "tanh");
}

// Runs the block with and without the fuse-* passes, as inference and as SGD training steps
// (mse against a target), and expects the same outputs and parameters.
TEST(ConvFusion, FusedAndUnfusedAgree) {
  DiagnosticEngine diags;
  auto p = loadPipelineText(kPipeline, "block.mmd", diags);
  ASSERT_TRUE(p) << diags.render();
  TrainConfig train;
  train.loss = "mse";
  train.optimizer = "sgd";
  train.lr = 0.1;
  const std::vector<const TrainConfig*> configs = {nullptr, &train};
  for (const TrainConfig* config : configs) {
    SCOPED_TRACE(config ? "training" : "inference");
    std::unique_ptr<CpuExecutable> exes[2];
    for (int fused = 0; fused < 2; ++fused) {
      CompileOptions opts;
      opts.verifyEach = true;
      opts.train = config;
      if (!fused) opts.disabledPasses = {"fuse"};
      auto program = compileProgram(p->model->clone(), opts);
      ASSERT_TRUE(program) << program.error().str();
      if (fused && !config) EXPECT_EQ(countConvOps(*program->graph, OpKind::FusedConv2dPool), 1);
      auto exe = CpuExecutable::create(std::move(*program));
      ASSERT_TRUE(exe) << exe.error().str();
      exes[fused] = std::move(*exe);
      exes[fused]->initializeParameters(5);
    }
    Rng rng(9);
    for (int step = 1; step <= 3; ++step) {
      TensorMap feed;
      for (Node* n : exes[0]->graph().inputNodes()) {
        Tensor t(n->result()->type());
        for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, 2 * rng.uniform() - 1);
        if (n->attrs().getString("name") == "step") t.set(0, step);
        feed[n->attrs().getString("name")] = t;
      }
      auto a = exes[0]->run(feed);
      auto b = exes[1]->run(feed);
      ASSERT_TRUE(a) << a.error().str();
      ASSERT_TRUE(b) << b.error().str();
      for (auto& [name, t] : *a)
        for (int64_t i = 0; i < t.numElements(); ++i)
          ASSERT_NEAR(t.at(i), b->at(name).at(i), 1e-6 * (1 + std::abs(t.at(i)))) << name << "[" << i << "]";
    }
    TensorMap pa = exes[0]->readPersistent(), pb = exes[1]->readPersistent();
    for (auto& [name, t] : pa)
      for (int64_t i = 0; i < t.numElements(); ++i)
        ASSERT_NEAR(t.at(i), pb.at(name).at(i), 1e-6 * (1 + std::abs(t.at(i)))) << name << "[" << i << "]";
  }
}

}  // namespace
}  // namespace shoal
