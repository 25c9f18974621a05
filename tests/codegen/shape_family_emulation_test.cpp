// Whole training steps of attention models on the CUDA emulator against the interpreter: an
// embedding + causal multi-head attention classifier and a cross-attention one, after
// autodiff, fusion and memory planning (batched GEMMs with broadcast batches, slices,
// transposes, gathers, scatter-add gradients, softmax over the last axis, in-place masks).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "codegen/cuda_emulator.h"
#include "frontend/layers.h"
#include "frontend/layers_shape.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

// |emulated - cpu| <= atol + rtol·(|cpu| + max|cpu|), as cuda_emulation_test.cpp compares.
::testing::AssertionResult familyCloseTo(const std::string& what, const Tensor& got, const Tensor& want, double rtol,
                                   double atol) {
  if (got.type() != want.type())
    return ::testing::AssertionFailure() << what << ": type " << got.type().str() << " vs " << want.type().str();
  double scale = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) scale = std::max(scale, std::abs(want.at(i)));
  for (int64_t i = 0; i < want.numElements(); ++i) {
    const double g = got.at(i), w = want.at(i);
    if (!(g == w || std::abs(g - w) <= atol + rtol * (std::abs(w) + scale)))
      return ::testing::AssertionFailure() << what << "[" << i << "]: emulated " << g << ", cpu " << w;
  }
  return ::testing::AssertionSuccess();
}

// Compiles `g` for training twice (interpreter, emulator), runs `steps` steps of `feed` on
// both and compares every output and every parameter after each step.
void compareTraining(const Graph& g, TensorMap feed, int steps) {
  TrainConfig cfg;
  cfg.lr = 0.01;
  CompileOptions opts;
  opts.train = &cfg;
  auto p1 = compileProgram(g.clone(), opts);
  auto p2 = compileProgram(g.clone(), opts);
  ASSERT_TRUE(p1.has_value()) << p1.error().str();
  ASSERT_TRUE(p2.has_value()) << p2.error().str();
  Program program = std::move(*p2);
  auto cpu = CpuExecutable::create(std::move(*p1));
  ASSERT_TRUE(cpu.has_value()) << cpu.error().str();
  auto emu = test::EmulatedExecutable::create(program);
  ASSERT_TRUE(emu.has_value()) << emu.error().str();
  (*cpu)->initializeParameters(3);
  (*emu)->writePersistent((*cpu)->readPersistent());
  for (int step = 1; step <= steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{cfg.lr});
    auto want = (*cpu)->run(feed);
    ASSERT_TRUE(want.has_value()) << want.error().str();
    auto got = (*emu)->run(feed);
    ASSERT_TRUE(got.has_value()) << got.error().str();
    for (const auto& [name, t] : *want) EXPECT_TRUE(familyCloseTo(name, got->at(name), t, 1e-4, 1e-5));
    TensorMap gp = (*emu)->readPersistent();
    for (const auto& [name, t] : (*cpu)->readPersistent()) EXPECT_TRUE(familyCloseTo(name, gp.at(name), t, 1e-4, 1e-5));
  }
}

Tensor familyRandomTensor(TensorType t, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor out(t);
  for (int64_t i = 0; i < out.numElements(); ++i) out.set(i, std::uniform_real_distribution<double>(-1, 1)(rng));
  return out;
}

TEST(ShapeFamilyEmulation, EmbeddingAttentionClassifierTrainingStep) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  Graph g("tiny_lm");
  const Location loc{"tiny.mmd", 1, 1, "m"};
  Value* ids = layers::input(g, "x", {DType::I64, {3, 5}}, loc);
  auto e = layers::embedding(g, ids, "e", 11, 8, loc);
  ASSERT_TRUE(e.has_value()) << e.error().str();
  auto a = layers::multiHeadAttention(g, *e, *e, *e, "a", 2, /*causal=*/true, /*bias=*/true, loc);
  ASSERT_TRUE(a.has_value()) << a.error().str();
  auto flat = layers::addOp(g, OpKind::Flatten, {*a}, {}, "f", loc);
  ASSERT_TRUE(flat.has_value());
  auto logits = layers::dense(g, *flat, "d", 4, true, "", loc);
  ASSERT_TRUE(logits.has_value()) << logits.error().str();
  layers::output(g, *logits, "logits", loc);
  TensorMap feed;
  feed["x"] = Tensor::fromDoubles(DType::I64, {3, 5}, std::vector<double>{1, 4, 4, 0, 10, 3, 3, 3, 9, 2, 7, 0, 1, 5, 6});
  feed["labels"] = Tensor::fromDoubles(DType::I64, {3}, std::vector<double>{2, 0, 3});
  compareTraining(g, feed, 2);
}

TEST(ShapeFamilyEmulation, CrossAttentionTrainingStep) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  Graph g("cross");
  const Location loc{"cross.mmd", 1, 1, "m"};
  Value* q = layers::input(g, "x", {DType::F32, {2, 3, 4}}, loc);
  Value* memory = layers::input(g, "memory", {DType::F32, {2, 6, 4}}, loc);
  auto a = layers::multiHeadAttention(g, q, memory, memory, "a", 2, /*causal=*/false, /*bias=*/true, loc);
  ASSERT_TRUE(a.has_value()) << a.error().str();
  auto flat = layers::addOp(g, OpKind::Flatten, {*a}, {}, "f", loc);
  ASSERT_TRUE(flat.has_value());
  auto logits = layers::dense(g, *flat, "d", 3, true, "", loc);
  ASSERT_TRUE(logits.has_value()) << logits.error().str();
  layers::output(g, *logits, "logits", loc);
  TensorMap feed;
  feed["x"] = familyRandomTensor({DType::F32, {2, 3, 4}}, 1);
  feed["memory"] = familyRandomTensor({DType::F32, {2, 6, 4}}, 2);
  feed["labels"] = Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{1, 2});
  compareTraining(g, feed, 2);
}

// A bad index: the emulated kernel reports it through the status words, worded as the
// interpreter words it (the first bad position wins on both).
TEST(ShapeFamilyEmulation, GatherReportsABadIndexLikeTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  Graph g("lookup");
  const Location loc{"lookup.mmd", 3, 7, "e"};
  Value* table = layers::input(g, "table", {DType::F32, {5, 3}}, loc);
  Value* ids = layers::input(g, "ids", {DType::I32, {2, 4}}, loc);
  auto y = layers::addOp(g, OpKind::Gather, {table, ids}, {}, "e", loc);
  ASSERT_TRUE(y.has_value());
  layers::output(g, *y, "y", loc);
  auto both = test::cpuAndEmulated(g);
  ASSERT_TRUE(both) << both.error().str();
  CpuExecutable& cpu = *both->cpu;
  test::EmulatedExecutable& emu = *both->emu;
  TensorMap feed{{"table", familyRandomTensor({DType::F32, {5, 3}}, 4)},
                 {"ids", Tensor::fromDoubles(DType::I32, {2, 4}, std::vector<double>{0, -5, 4, 9, 1, -6, 2, 3})}};
  auto want = cpu.run(feed);
  auto got = emu.run(feed);
  ASSERT_FALSE(want.has_value());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(want.error().message(), "gather 'e': index 9 at position 3 is outside [-5, 5)");
  EXPECT_EQ(got.error().message(), want.error().message());
  EXPECT_EQ(got.error().location().str(), "lookup.mmd:3:7");
  // Valid indices (negative ones count from the back) run alike.
  feed["ids"] = Tensor::fromDoubles(DType::I32, {2, 4}, std::vector<double>{0, -5, 4, -1, 1, 2, 2, 3});
  auto a = cpu.run(feed);
  auto b = emu.run(feed);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(familyCloseTo("y", b->at("y"), a->at("y"), 0, 0));
}

}  // namespace
}  // namespace shoal
