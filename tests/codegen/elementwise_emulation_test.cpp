// A training step built from the elementwise family, fused as the GPU gets it, on the CUDA
// emulator against the interpreter: the gradient rows, the reduce_max gradient's composite
// (equal, cast, reduce_sum), where's routing and the fused backward chains all run as
// generated kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "codegen/cuda_emulator.h"
#include "frontend/layers.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

// x [8,6] -> dense(5) -> max(gelu, silu) -> clip -> leaky_relu -> a softmax by hand (reduce_max,
// sub, exp, reduce_sum, div) -> where(q > 0.2, q, hardswish(q)) -> mean-squared error.
std::unique_ptr<Graph> familyModel(DType dt) {
  auto g = std::make_unique<Graph>("family_" + std::string(dtypeName(dt)));
  Location loc{"family.mmd", 1, 1, "n"};
  auto op = [&](OpKind kind, std::vector<Value*> ins, Attrs a, const std::string& name) {
    auto v = layers::addOp(*g, kind, std::move(ins), std::move(a), name, loc);
    EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().str());
    return v ? *v : nullptr;
  };
  auto attrs = [](std::initializer_list<std::pair<const char*, AttrValue>> kv) {
    Attrs a;
    for (const auto& [k, v] : kv) a.set(k, v);
    return a;
  };
  const Attrs rows = attrs({{"axes", std::vector<int64_t>{1}}, {"keepdim", int64_t(1)}});
  Value* x = layers::input(*g, "x", {dt, {8, 6}}, loc);
  auto d = layers::dense(*g, x, "d", 5, true, "", loc);
  EXPECT_TRUE(d.has_value());
  Value* m = op(OpKind::Maximum, {op(OpKind::Gelu, {*d}, {}, "g"), op(OpKind::Silu, {*d}, {}, "s")}, {}, "m");
  Value* c = op(OpKind::Clip, {m}, attrs({{"min", -0.5}, {"max", 1.5}}), "c");
  Value* l = op(OpKind::LeakyRelu, {c}, attrs({{"alpha", 0.1}}), "l");
  Value* shifted = op(OpKind::Sub, {l, op(OpKind::ReduceMax, {l}, rows, "top")}, {}, "shifted");
  Value* e = op(OpKind::Exp, {shifted}, {}, "e");
  Value* q = op(OpKind::Div, {e, op(OpKind::ReduceSum, {e}, rows, "total")}, {}, "q");
  Value* floor = layers::constant(*g, "floor", dt, TensorLiteral{{}, {0.2}}, loc);
  Value* y =
      op(OpKind::Where, {op(OpKind::Greater, {q, floor}, {}, "big"), q, op(OpKind::Hardswish, {q}, {}, "hs")}, {}, "y");
  layers::output(*g, y, "logits", loc);
  return g;
}

TEST(ElementwiseEmulation, TrainingStepMatchesTheInterpreter) {
  if (test::runShell("${CXX:-c++} --version > /dev/null 2>&1").exitCode != 0)
    GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = familyModel(dt);
    TrainConfig train;
    train.loss = "mse";
    train.optimizer = "sgd";
    train.lr = 0.5;
    CompileOptions opts;
    opts.train = &train;
    auto forCpu = compileProgram(g->clone(), opts);
    auto forEmu = compileProgram(g->clone(), opts);
    ASSERT_TRUE(forCpu && forEmu) << (forCpu ? "" : forCpu.error().str());
    int fused = 0, reduceMax = 0;
    for (const Node* n : forEmu->graph->nodes()) {
      fused += n->kind() == OpKind::FusedElementwise;
      reduceMax += n->kind() == OpKind::ReduceMax;
    }
    EXPECT_GE(fused, 2) << "the forward and backward chains should fuse";
    EXPECT_EQ(reduceMax, 1);
    auto cpu = CpuExecutable::create(std::move(*forCpu));
    ASSERT_TRUE(cpu.has_value());
    auto emu = test::EmulatedExecutable::create(*forEmu);
    ASSERT_TRUE(emu.has_value()) << emu.error().message();
    (*cpu)->initializeParameters(5);
    (*emu)->writePersistent((*cpu)->readPersistent());
    const double rtol = dt == DType::F32 ? 1e-4 : 1e-11, atol = dt == DType::F32 ? 1e-5 : 1e-13;
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> u(-2, 2);
    for (int step = 0; step < 3; ++step) {
      TensorMap feed = {{"x", Tensor(dt, {8, 6})}, {"targets", Tensor(dt, {8, 5})}};
      for (auto& [name, t] : feed)
        for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, name == "x" ? u(rng) : 0.1 * (u(rng) + 2));
      feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{train.lr});
      auto want = (*cpu)->run(feed);
      ASSERT_TRUE(want.has_value()) << want.error().message();
      auto got = (*emu)->run(feed);
      ASSERT_TRUE(got.has_value()) << got.error().message();
      auto compare = [&](const std::string& what, const Tensor& a, const Tensor& b) {
        ASSERT_EQ(a.type(), b.type()) << what;
        for (int64_t i = 0; i < a.numElements(); ++i)
          EXPECT_NEAR(a.at(i), b.at(i), atol + rtol * std::abs(b.at(i))) << what << "[" << i << "] at step " << step;
      };
      for (const auto& [name, t] : *want) compare(name, got->at(name), t);
      TensorMap gp = (*emu)->readPersistent();
      for (const auto& [name, t] : (*cpu)->readPersistent()) compare(name, gp.at(name), t);
    }
  }
}

// Integer arithmetic on the GPU: through double, truncated toward zero and wrapped, like the
// interpreter; a division by zero is reported at the node, worded as the interpreter words it.
TEST(ElementwiseEmulation, IntegerDivisionByZeroIsReportedLikeTheInterpreter) {
  if (test::runShell("${CXX:-c++} --version > /dev/null 2>&1").exitCode != 0)
    GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  Graph g("int_div");
  const Location loc{"int_div.mmd", 4, 9, "q"};
  Value* a = layers::input(g, "a", {DType::I64, {2, 3}}, loc);
  Value* b = layers::input(g, "b", {DType::I64, {3}}, loc);
  auto q = layers::addOp(g, OpKind::Div, {a, b}, {}, "q", loc);
  ASSERT_TRUE(q.has_value());
  auto w = layers::addOp(g, OpKind::Add, {*q, a}, {}, "w", loc);
  ASSERT_TRUE(w.has_value());
  layers::output(g, *w, "w", loc);
  auto both = test::cpuAndEmulated(g);
  ASSERT_TRUE(both) << both.error().str();
  CpuExecutable& cpu = *both->cpu;
  test::EmulatedExecutable& emu = *both->emu;
  TensorMap feed{{"a", Tensor::fromDoubles(DType::I64, {2, 3}, std::vector<double>{7, -7, 9, -9, 100, 5})},
                 {"b", Tensor::fromDoubles(DType::I64, {3}, std::vector<double>{2, 2, -4})}};
  auto x = cpu.run(feed);
  auto y = emu.run(feed);
  ASSERT_TRUE(x && y);
  // 7/2 = 3, -7/2 = -3 (toward zero), 9/-4 = -2; then + a.
  const std::vector<double> want{10, -10, 7, -13, 150, 4};
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(x->at("w").at(i), want[size_t(i)]) << i;
    EXPECT_EQ(y->at("w").at(i), want[size_t(i)]) << i;
  }
  feed["b"] = Tensor::fromDoubles(DType::I64, {3}, std::vector<double>{2, 0, 1});
  auto bad = cpu.run(feed);
  auto badGpu = emu.run(feed);
  ASSERT_FALSE(bad.has_value());
  ASSERT_FALSE(badGpu.has_value());
  EXPECT_EQ(bad.error().message(), "div 'q': integer division by zero");
  EXPECT_EQ(badGpu.error().message(), bad.error().message());
  EXPECT_EQ(badGpu.error().location().str(), "int_div.mmd:4:9");
}

}  // namespace
}  // namespace shoal
