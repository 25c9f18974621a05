// The conv family's generated kernels in whole programs, on the CPU emulator against the
// interpreter: a depthwise-separable block with a ceil-mode pool, a transposed convolution and
// global average pooling, for inference (fused kernels) and for Adam training steps (every
// gradient kernel, over the planned memory).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "codegen/cuda_emulator.h"
#include "frontend/pipeline_loader.h"
#include "passes/program.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

constexpr const char* kBlock = R"(flowchart TD
  x[input: shape=3x4x9x9] --> dw[conv2d: filters=8 kernel=3x3 groups=4 padding=same activation=relu]
  dw --> p[maxpool: size=3x3 stride=2 padding=1 ceil_mode=true]
  p --> pw[conv2d: filters=6 kernel=1 groups=2 activation=tanh]
  pw --> up[conv_transpose2d: filters=4 kernel=3x3 stride=2 padding=1 output_padding=1 groups=2]
  up --> a[avgpool: size=3 stride=2 padding=1 ceil_mode=true count_include_pad=false]
  a --> g[global_avgpool]
  g --> o[output: name=logits]
)";

// |got - want| <= 1e-5 + 1e-4 (|want| + max |want|): only summation order differs.
void expectClose(const std::string& what, const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.type(), want.type()) << what;
  double scale = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) scale = std::max(scale, std::abs(want.at(i)));
  for (int64_t i = 0; i < want.numElements(); ++i)
    ASSERT_LE(std::abs(got.at(i) - want.at(i)), 1e-5 + 1e-4 * (std::abs(want.at(i)) + scale))
        << what << "[" << i << "]: emulated " << got.at(i) << ", cpu " << want.at(i);
}

void compareProgram(const Graph& model, const TrainConfig* train) {
  CompileOptions opts;
  opts.verifyEach = true;
  opts.train = train;
  auto forCpu = compileProgram(model.clone(), opts);
  auto forEmu = compileProgram(model.clone(), opts);
  ASSERT_TRUE(forCpu) << forCpu.error().str();
  ASSERT_TRUE(forEmu) << forEmu.error().str();
  auto cpu = CpuExecutable::create(std::move(*forCpu));
  ASSERT_TRUE(cpu) << cpu.error().str();
  auto emu = test::EmulatedExecutable::create(*forEmu);
  ASSERT_TRUE(emu) << emu.error().str();
  (*cpu)->initializeParameters(7);
  (*emu)->writePersistent((*cpu)->readPersistent());
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int step = 1; step <= 2; ++step) {
    TensorMap feed;
    for (Node* n : (*cpu)->graph().inputNodes()) {
      Tensor t(n->result()->type());
      for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, u(rng));
      if (n->attrs().getString("name") == "step") t.set(0, step);
      feed[n->attrs().getString("name")] = t;
    }
    auto want = (*cpu)->run(feed);
    ASSERT_TRUE(want) << want.error().str();
    auto got = (*emu)->run(feed);
    ASSERT_TRUE(got) << got.error().str();
    for (const auto& [name, t] : *want) expectClose(name, got->at(name), t);
  }
  TensorMap emuParams = (*emu)->readPersistent();
  for (const auto& [name, t] : (*cpu)->readPersistent()) expectClose(name, emuParams.at(name), t);
}

TEST(ConvEmulation, SeparableBlockInferenceMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  auto p = loadPipelineText(kBlock, "block.mmd", diags);
  ASSERT_TRUE(p) << diags.render();
  compareProgram(*p->model, nullptr);
}

TEST(ConvEmulation, SeparableBlockTrainingStepsMatchTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  auto p = loadPipelineText(kBlock, "block.mmd", diags);
  ASSERT_TRUE(p) << diags.render();
  TrainConfig train;
  train.loss = "mse";
  train.optimizer = "adam";
  train.lr = 0.01;
  compareProgram(*p->model, &train);
}

}  // namespace
}  // namespace shoal
