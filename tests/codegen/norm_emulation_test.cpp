// The norm family's generated CUDA on the CPU emulator (tests/codegen/cuda_emulator.h) against
// the interpreter: dropout's masks bit for bit, a training step of a model with every norm
// layer (running statistics included), and a folded conv + batchnorm inference program.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "codegen/cuda_emulator.h"
#include "codegen/cuda_test_graphs.h"
#include "frontend/pipeline_loader.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/init.h"

namespace shoal {
namespace {

// The interpreter and the emulated GPU over one program each, same params and state.
struct NormPair {
  Program program;  // the emulator's (it must outlive it)
  std::unique_ptr<CpuExecutable> cpu;
  std::unique_ptr<test::EmulatedExecutable> gpu;
};

std::unique_ptr<NormPair> makeNormPair(const Graph& g, const CompileOptions& opts) {
  auto pair = std::make_unique<NormPair>();
  auto forCpu = compileProgram(g.clone(), opts);
  auto forGpu = compileProgram(g.clone(), opts);
  EXPECT_TRUE(forCpu && forGpu) << (forCpu ? "" : forCpu.error().str());
  if (!forCpu || !forGpu) return nullptr;
  pair->program = std::move(*forGpu);
  auto cpu = CpuExecutable::create(std::move(*forCpu));
  auto gpu = test::EmulatedExecutable::create(pair->program);
  EXPECT_TRUE(cpu && gpu) << (gpu ? "" : gpu.error().str());
  if (!cpu || !gpu) return nullptr;
  pair->cpu = std::move(*cpu);
  pair->gpu = std::move(*gpu);
  pair->cpu->initializeParameters(7);
  pair->gpu->writePersistent(pair->cpu->readPersistent());
  return pair;
}

::testing::AssertionResult close(const std::string& what, const Tensor& got, const Tensor& want, double rtol,
                                 double atol) {
  if (got.type() != want.type())
    return ::testing::AssertionFailure() << what << ": " << got.type().str() << " vs " << want.type().str();
  for (int64_t i = 0; i < want.numElements(); ++i) {
    const double g = got.at(i), w = want.at(i);
    if (!(g == w || std::abs(g - w) <= atol + rtol * std::abs(w)))
      return ::testing::AssertionFailure() << what << "[" << i << "]: emulated " << g << ", cpu " << w;
  }
  return ::testing::AssertionSuccess();
}

void compareStep(NormPair& p, const TensorMap& feed, double rtol, double atol, const std::string& what) {
  auto want = p.cpu->run(feed);
  auto got = p.gpu->run(feed);
  ASSERT_TRUE(want) << want.error().str();
  ASSERT_TRUE(got) << got.error().str();
  for (const auto& [name, t] : *want) EXPECT_TRUE(close(what + " " + name, got->at(name), t, rtol, atol));
  TensorMap gp = p.gpu->readPersistent();
  for (const auto& [name, t] : p.cpu->readPersistent())
    EXPECT_TRUE(close(what + " " + name, gp.at(name), t, rtol, atol));
}

// The GPU kernel and the interpreter drop the same elements and scale the others by the same
// factor: bitwise equal outputs, f32 and f64, over several steps and seeds (4099 elements: a
// partial last group of four; counters past 2^10 blocks).
TEST(NormEmulation, DropoutMasksAreBitwiseTheInterpreters) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    test::OpGraphBuilder b("dropout_masks", dt);
    Value* step = b.input("step", TensorType{DType::F32, {}});
    Value* x = b.input("x", Shape{4099});
    b.op(OpKind::DropoutTrain, {x, step}, test::attrs({{"rate", 0.3}, {"seed", int64_t(1)}}), "a");
    b.op(OpKind::DropoutTrain, {x, step}, test::attrs({{"rate", 0.3}, {"seed", int64_t(0x5eed0000cafe)}}), "b");
    b.op(OpKind::DropoutTrain, {x, step}, test::attrs({{"rate", 0.9}, {"seed", int64_t(3)}}), "c");
    auto g = b.take();
    auto p = makeNormPair(*g, test::opTestCompileOptions());
    ASSERT_NE(p, nullptr);
    for (int s = 1; s <= 3; ++s) {
      TensorMap feed = test::randomInputs(*g, uint64_t(s), s);
      auto want = p->cpu->run(feed);
      auto got = p->gpu->run(feed);
      ASSERT_TRUE(want && got);
      for (const char* name : {"a", "b", "c"}) {
        const Tensor& w = want->at(name);
        const Tensor& e = got->at(name);
        ASSERT_EQ(w.byteSize(), e.byteSize());
        EXPECT_EQ(std::memcmp(w.raw(), e.raw(), w.byteSize()), 0) << name << " at step " << s;
        int dropped = 0;
        for (int64_t i = 0; i < w.numElements(); ++i) dropped += w.at(i) == 0;
        const double rate = std::string(name) == "c" ? 0.9 : 0.3;
        EXPECT_NEAR(double(dropped) / 4099, rate, 0.03) << name;
      }
    }
  }
}

std::optional<Pipeline> pipelineFrom(const std::string& text) {
  DiagnosticEngine diags;
  auto p = loadPipelineText(text, "norm.mmd", diags);
  EXPECT_TRUE(p) << diags.render();
  return p;
}

// Two Adam steps of a CNN with batchnorm, groupnorm, dropout and layernorm: outputs, params,
// optimizer state, running statistics and the batch count agree. (The conv has no bias, as
// before a batchnorm in PyTorch: the loss does not depend on it, so its gradient is rounding
// noise, which Adam would scale up to steps of lr whose signs differ between the backends.)
TEST(NormEmulation, TrainingStepWithEveryNormLayerMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  auto p = pipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=4x2x8x8] --> c[conv2d: filters=6 kernel=3x3 bias=false] --> bn[batchnorm] --> r[relu]\n"
      "  r --> gn[groupnorm: groups=3] --> m[maxpool: size=2x2] --> f[flatten] --> dr[dropout: rate=0.25]\n"
      "  dr --> d[dense: units=5] --> ln[layernorm] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  TrainConfig cfg;
  cfg.seed = 4;
  CompileOptions opts;
  opts.train = &cfg;
  opts.verifyEach = true;
  auto pair = makeNormPair(*p->model, opts);
  ASSERT_NE(pair, nullptr);
  for (int step = 1; step <= 2; ++step) {
    Rng rng{uint64_t(step)};
    Tensor x(DType::F32, {4, 2, 8, 8});
    for (int64_t i = 0; i < x.numElements(); ++i) x.set(i, 2 * rng.uniform() - 1);
    TensorMap feed = {{"x", x},
                      {"labels", Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 3, 1, 4})},
                      {"step", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)})},
                      {"lr", Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr})}};
    compareStep(*pair, feed, 1e-4, 1e-5, "step " + std::to_string(step));
  }
  EXPECT_EQ(pair->gpu->readPersistent().at("bn.num_batches_tracked").at(0), 2);
}

// conv + batchnorm + relu + maxpool folded and fused into one fused_conv2d_pool, with running
// statistics away from their initial values.
TEST(NormEmulation, FoldedConvBatchNormInferenceMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  auto p = pipelineFrom(
      "flowchart TD\n"
      "  x[input: shape=3x2x9x9] --> c[conv2d: filters=4 kernel=3x3 padding=same] --> bn[batchnorm: eps=1e-3]\n"
      "  bn --> r[relu] --> m[maxpool: size=2x2] --> out[output: name=logits]\n");
  ASSERT_TRUE(p);
  auto pair = makeNormPair(*p->model, CompileOptions{});
  ASSERT_NE(pair, nullptr);
  int fused = 0;
  for (const Node* n : pair->program.graph->nodes()) fused += n->kind() == OpKind::FusedConv2dPool;
  EXPECT_EQ(fused, 1);
  TensorMap stats = {{"bn.running_mean", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{0.1, -0.2, 0.3, 0})},
                     {"bn.running_var", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{0.5, 2, 1.5, 0.25})},
                     {"bn.weight", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{1.5, -1, 0.5, 2})},
                     {"bn.bias", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{0.1, 0.2, -0.3, 0.4})}};
  ASSERT_TRUE(pair->cpu->writePersistent(stats));
  pair->gpu->writePersistent(stats);
  Rng rng(8);
  Tensor x(DType::F32, {3, 2, 9, 9});
  for (int64_t i = 0; i < x.numElements(); ++i) x.set(i, 2 * rng.uniform() - 1);
  compareStep(*pair, {{"x", x}}, 1e-4, 1e-5, "inference");
}

}  // namespace
}  // namespace shoal
