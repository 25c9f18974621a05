// The generated CUDA kernels checked against the CPU interpreter on a machine with no GPU:
// the module is compiled for the host and run on the fiber emulator of cuda_emulator.h (real
// block barriers and warp shuffles, one thread at a time). Covers every op in f32 and f64,
// a training step of the MNIST CNN, and the error reports kernels make through the status
// words. The GPU itself is tested in tests/runtime/cuda_executor_test.cpp.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <unordered_set>

#include "codegen/cuda_emulator.h"
#include "codegen/cuda_test_graphs.h"
#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "runtime/cpu/interpreter.h"

namespace shoal {
namespace {

// |emulated - cpu| <= atol + rtol·(|cpu| + max|cpu|): the emulator runs the generated
// arithmetic on the host, so only summation order separates it from the interpreter.
::testing::AssertionResult closeTo(const std::string& what, const Tensor& got, const Tensor& want, double rtol,
                                   double atol) {
  if (got.type() != want.type())
    return ::testing::AssertionFailure() << what << ": type " << got.type().str() << " vs " << want.type().str();
  double scale = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) scale = std::max(scale, std::abs(want.at(i)));
  for (int64_t i = 0; i < want.numElements(); ++i) {
    double g = got.at(i), w = want.at(i);
    double bound = atol + rtol * (std::abs(w) + scale);
    if (!((std::isnan(g) && std::isnan(w)) || g == w || std::abs(g - w) <= bound))
      return ::testing::AssertionFailure() << what << "[" << i << "]: emulated " << g << ", cpu " << w;
  }
  return ::testing::AssertionSuccess();
}

struct Runners {
  Program program;  // the emulator's; must outlive it
  std::unique_ptr<CpuExecutable> cpu;
  std::unique_ptr<test::EmulatedExecutable> emu;
};

std::unique_ptr<Runners> makeRunners(const Graph& g, const CompileOptions& opts) {
  auto r = std::make_unique<Runners>();
  auto p1 = compileProgram(g.clone(), opts);
  auto p2 = compileProgram(g.clone(), opts);
  EXPECT_TRUE(p1 && p2) << (p1 ? "" : p1.error().message());
  if (!p1 || !p2) return nullptr;
  r->program = std::move(*p2);
  auto cpu = CpuExecutable::create(std::move(*p1));
  auto emu = test::EmulatedExecutable::create(r->program);
  EXPECT_TRUE(emu.has_value()) << (emu ? "" : emu.error().message());
  if (!cpu || !emu) return nullptr;
  r->cpu = std::move(*cpu);
  r->emu = std::move(*emu);
  r->cpu->initializeParameters(3);
  r->emu->writePersistent(r->cpu->readPersistent());
  return r;
}

// r's program on the emulator again, generated with codegen options `o`, holding the CPU
// runner's parameters.
std::unique_ptr<test::EmulatedExecutable> emulatedWith(Runners& r, const CudaCodegenOptions& o) {
  auto emu = test::EmulatedExecutable::create(r.program, o);
  EXPECT_TRUE(emu.has_value()) << (emu ? "" : emu.error().message());
  if (!emu) return nullptr;
  (*emu)->writePersistent(r.cpu->readPersistent());
  return std::move(*emu);
}

void compareRuns(Runners& r, const TensorMap& inputs, double rtol, double atol, const std::string& what) {
  auto want = r.cpu->run(inputs);
  ASSERT_TRUE(want.has_value()) << want.error().message();
  auto got = r.emu->run(inputs);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  for (const auto& [name, t] : *want) EXPECT_TRUE(closeTo(what + " " + name, got->at(name), t, rtol, atol));
  TensorMap gp = r.emu->readPersistent();
  for (const auto& [name, t] : r.cpu->readPersistent())
    EXPECT_TRUE(closeTo(what + " persistent " + name, gp.at(name), t, rtol, atol));
}

// Adds node `kind` over `ins` to `g`, its result typed by the op's shape rule.
Value* addTyped(Graph& g, OpKind kind, std::vector<Value*> ins, Attrs attrs, const std::string& name) {
  Node* n = g.addNode(kind, std::move(ins), std::move(attrs), {{name, TensorType{}}}, Location{});
  fillDefaultAttrs(*n);
  auto types = inferResultTypes(*n);
  EXPECT_TRUE(types.has_value()) << name << ": " << (types ? "" : types.error().message());
  n->result()->setType(types ? (*types)[0] : TensorType{});
  return n->result();
}

// The interpreter's output `output` of r's (fused) program on `feed`, after checking that it is
// bit for bit the output of `graph` compiled without the fusion pass `pass`.
std::optional<Tensor> fusedBitsAsUnfused(const Graph& graph, Runners& r, const TensorMap& feed, const char* pass,
                                         const std::string& output) {
  CompileOptions unfused;
  unfused.disabledPasses = {pass};
  auto program = compileProgram(graph.clone(), unfused);
  EXPECT_TRUE(program.has_value()) << program.error().message();
  if (!program) return std::nullopt;
  auto cpu = CpuExecutable::create(std::move(*program));
  EXPECT_TRUE(cpu.has_value());
  if (!cpu || !(*cpu)->writePersistent(r.cpu->readPersistent())) return std::nullopt;
  auto want = (*cpu)->run(feed);
  auto got = r.cpu->run(feed);
  EXPECT_TRUE(want && got);
  if (!want || !got) return std::nullopt;
  const Tensor& a = want->at(output);
  const Tensor& b = got->at(output);
  EXPECT_EQ(a.byteSize(), b.byteSize());
  EXPECT_TRUE(a.byteSize() == b.byteSize() && std::memcmp(a.raw(), b.raw(), a.byteSize()) == 0) << output;
  return b;
}

// Small fp32 products as generated kernels (not cuBLAS), every transposition both ways: tiled
// with a long inner dimension split into slices (the last one short, not a multiple of the
// 16-deep stage), and a warp per output for few outputs; dense layers whose bias is
// accumulated into (beta 1) both ways; a batched product with alpha and two column tiles;
// tiles cut by m and n. Against the interpreter's products within fp32 rounding of their terms.
// The emulator's device memory ends in a guard (GuardedRegion): a write one byte past a region
// is seen (and a run naming the kernel fails), a write inside it is not.
TEST(CudaEmulation, GuardsSeeWritesPastARegionsEnd) {
  test::GuardedRegion r;
  r.assign(100);
  EXPECT_EQ(r.bytes(), 100u);
  r.data()[0] = 1;
  r.data()[99] = 1;
  EXPECT_EQ(r.firstDamaged(), -1);
  r.data()[100 + 17] = 0;
  EXPECT_EQ(r.firstDamaged(), 17);
  r.assign(0);
  EXPECT_EQ(r.firstDamaged(), -1);
  r.data()[0] = 0;
  EXPECT_EQ(r.firstDamaged(), 0);
}

TEST(CudaEmulation, SmallProductsAsKernelsMatchTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  test::OpGraphBuilder b("small_gemms", DType::F32);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (auto [m, n, k, name] : {std::tuple<int64_t, int64_t, int64_t, const char*>{40, 30, 700, "split"},
                                   {4, 6, 300, "dot"}, {3, 5, 1300, "longdot"}}) {
        Attrs t;
        t.set("transpose_a", int64_t(ta));
        t.set("transpose_b", int64_t(tb));
        Value* x = b.input(fmt::format("{}a{}{}", name, ta, tb), ta ? Shape{k, m} : Shape{m, k});
        Value* y = b.input(fmt::format("{}b{}{}", name, ta, tb), tb ? Shape{n, k} : Shape{k, n});
        b.op(OpKind::MatMul, {x, y}, t, fmt::format("{}{}{}", name, ta, tb));
      }
  b.op(OpKind::Dense, {b.input("dx", {3, 300}), b.input("dw", {9, 300}), b.input("db", {9})}, {}, "dense_dot");
  b.op(OpKind::Dense, {b.input("sx", {40, 300}), b.input("sw", {30, 300}), b.input("sb", {30})}, {}, "dense_split");
  // A long inner dimension and few outputs (batch-1 inference): a block per output, with the
  // bias and activation in its store.
  Attrs relu;
  relu.set("activation", std::string("relu"));
  b.op(OpKind::FusedDense, {b.input("lx", {2, 1100}), b.input("lw", {7, 1100}), b.input("lb", {7})}, relu,
       "dense_longdot");
  // Bias and activation applied as the tiles store (fused_dense over one unsplit product).
  Attrs sigmoid;
  sigmoid.set("activation", std::string("sigmoid"));
  b.op(OpKind::FusedDense, {b.input("tx", {70, 20}), b.input("tw", {130, 20}), b.input("tbias", {130})}, sigmoid,
       "dense_tile");
  Attrs alpha;
  alpha.set("alpha", 0.5);
  b.op(OpKind::BatchMatMul, {b.input("ba", {3, 5, 200}), b.input("bb", {3, 200, 70})}, alpha, "batched");
  b.op(OpKind::MatMul, {b.input("wa", {70, 20}), b.input("wb", {20, 130})}, {}, "wide");
  // 21 and 18 slices (the last short): a block's 8 warps add every 8th slice of 32 outputs,
  // 1200 and 2640 of them (the last block partly past the end), with relu and a bias, and
  // across two products of a batch.
  b.op(OpKind::FusedDense, {b.input("mx", {40, 1300}), b.input("mw", {30, 1300}), b.input("mb", {30})}, relu,
       "dense_many_slices");
  b.op(OpKind::BatchMatMul, {b.input("na", {2, 33, 1100}), b.input("nb", {2, 1100, 40})}, {}, "batched_many_slices");
  // 11 x 12 tiles of 64 (enough for every SM): the 64 x 64 form; the products above take 32 x 32.
  Attrs tb;
  tb.set("transpose_b", int64_t(1));
  b.op(OpKind::MatMul, {b.input("ga", {700, 24}), b.input("gb", {740, 24})}, tb, "big");
  auto g = b.take();
  auto both = test::cpuAndEmulated(*g);
  ASSERT_TRUE(both) << both.error().str();
  // The products are kernels, some split into slices (else this tests cuBLAS's stand-in).
  auto src = generateCudaSource(*both->program);
  ASSERT_TRUE(src.has_value());
  int calls = 0, slices = 0, dots = 0, blockDots = 0, warpSliceSums = 0;
  std::set<unsigned> bigGrids;
  for (const CudaStep& s : src->steps) calls += s.kind == CudaStepKind::Gemm;
  for (const CudaStep* k : test::kernelSteps(*src)) {
    slices += k->kernel.ends_with("_gemm_slices");
    warpSliceSums += k->kernel.ends_with("_gemm_slices") && k->body.find("sums[warp][lane]") != std::string::npos;
    dots += k->kernel.ends_with("_dot");
    // A block per output: as many blocks as outputs (a warp per output packs eight a block).
    const std::string& node = k->node->result()->name();
    if (node.starts_with("longdot")) blockDots += k->grid[0] == 15u;
    if (node == "dense_longdot") blockDots += k->grid[0] == 14u;
    if (k->kernel.ends_with("_gemm") && k->node->result()->name() == "big") bigGrids.insert(k->grid[0]);
  }
  EXPECT_EQ(bigGrids, std::set<unsigned>{132u});  // 11 x 12 tiles of 64 x 64
  // The dense layers' biases and the fused activation are in the products' kernels: no
  // separate bias or epilogue kernel.
  int fusedDense = 0;
  for (const CudaStep* k : test::kernelSteps(*src)) {
    fusedDense += k->node->kind() == OpKind::FusedDense;
    EXPECT_FALSE(k->kernel.ends_with("_bias") || k->kernel.ends_with("_epilogue")) << k->kernel;
  }
  EXPECT_EQ(fusedDense, 4);  // dense_longdot; dense_tile; dense_many_slices, its product and its slices
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(slices, 8);  // the four 40 x 30 x 700, dense_split, the batched products, dense_many_slices
  EXPECT_EQ(warpSliceSums, 2);  // dense_many_slices, batched_many_slices
  EXPECT_EQ(dots, 10);   // the four 4 x 6 x 300, dense_dot, the four 3 x 5 x 1300, dense_longdot
  EXPECT_EQ(blockDots, 5);
  TensorMap feed = test::randomInputs(*g, 17);
  auto want = both->cpu->run(feed);
  auto got = both->emu->run(feed);
  ASSERT_TRUE(want && got);
  ASSERT_EQ(want->size(), 21u);
  // Terms of about 1 in magnitude: 700 of them round to a few ulps of their sum in fp32.
  for (const auto& [name, t] : *want) EXPECT_TRUE(closeTo(name, got->at(name), t, 1e-5, 1e-4));
}

// Products that go to cuBLAS (smallGemms off) with dense's bias, and fused_dense's bias and
// ReLU, in cuBLASLt's epilogue (gemmEpilogues): one Gemm step each carrying the bias and the
// activation, no bias or epilogue kernel; a sigmoid (which cuBLASLt has not) keeps its
// epilogue kernel, as every one does with gemmEpilogues off. Both forms against the
// interpreter (the emulator stands in for cuBLASLt with the same arithmetic: the product, then
// + bias, then the activation). The GPU tests check cuBLASLt itself.
TEST(CudaEmulation, DenseBiasAndReluGoIntoCublasLtsEpilogue) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  test::OpGraphBuilder b("lt_epilogues", DType::F32);
  Attrs relu, sigmoid;
  relu.set("activation", std::string("relu"));
  sigmoid.set("activation", std::string("sigmoid"));
  b.op(OpKind::Dense, {b.input("ax", {33, 70}), b.input("aw", {45, 70}), b.input("ab", {45})}, {}, "dense_bias");
  b.op(OpKind::FusedDense, {b.input("bx", {33, 70}), b.input("bw", {20, 70}), b.input("bb", {20})}, relu, "relu_bias");
  b.op(OpKind::FusedDense, {b.input("cx", {12, 70}), b.input("cw", {20, 70})}, relu, "relu_only");
  b.op(OpKind::FusedDense, {b.input("dx", {12, 70}), b.input("dw", {20, 70}), b.input("db", {20})}, sigmoid,
       "sigmoid_bias");
  b.op(OpKind::Dense, {b.input("ex", {12, 70}), b.input("ew", {20, 70})}, {}, "plain");
  auto g = b.take();
  for (bool epilogues : {true, false}) {
    SCOPED_TRACE(epilogues ? "cuBLASLt epilogues" : "epilogue kernels");
    CudaCodegenOptions o;
    o.smallGemms = false;
    o.gemmEpilogues = epilogues;
    auto both = test::cpuAndEmulated(*g, o);
    ASSERT_TRUE(both) << both.error().str();
    auto src = generateCudaSource(*both->program, o);
    ASSERT_TRUE(src.has_value());
    std::map<std::string, std::string> gemms;  // result -> "bias activation"
    int biasKernels = 0, epilogueKernels = 0;
    for (const CudaStep& s : src->steps) {
      if (s.kind == CudaStepKind::Gemm)
        gemms[s.node->result()->name()] = std::string(s.gemm.bias.value ? "bias" : "-") + " " + s.gemm.activation;
      if (s.kind != CudaStepKind::Kernel) continue;
      biasKernels += s.kernel.ends_with("_bias");
      epilogueKernels += s.kernel.ends_with("_epilogue");
    }
    const std::map<std::string, std::string> want =
        epilogues ? std::map<std::string, std::string>{{"dense_bias", "bias "}, {"relu_bias", "bias relu"},
                                                       {"relu_only", "- relu"}, {"sigmoid_bias", "- "}, {"plain", "- "}}
                  : std::map<std::string, std::string>{{"dense_bias", "- "}, {"relu_bias", "- "}, {"relu_only", "- "},
                                                       {"sigmoid_bias", "- "}, {"plain", "- "}};
    EXPECT_EQ(gemms, want);
    EXPECT_EQ(biasKernels, epilogues ? 0 : 1);
    EXPECT_EQ(epilogueKernels, epilogues ? 1 : 3);
    EXPECT_EQ(src->source.find("cuBLASLt epilogue") != std::string::npos, epilogues);
    TensorMap feed = test::randomInputs(*g, 23);
    auto want_ = both->cpu->run(feed);
    auto got = both->emu->run(feed);
    ASSERT_TRUE(want_ && got);
    ASSERT_EQ(want_->size(), 5u);
    for (const auto& [name, t] : *want_) EXPECT_TRUE(closeTo(name, got->at(name), t, 1e-5, 1e-5));
  }
}

TEST(CudaEmulation, EveryOpMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = test::buildAllOpsGraph(dt);
    ASSERT_NE(g, nullptr);
    auto r = makeRunners(*g, test::opTestCompileOptions());
    ASSERT_NE(r, nullptr);
    const double rtol = dt == DType::F32 ? 1e-5 : 1e-12, atol = dt == DType::F32 ? 1e-6 : 1e-14;
    for (int run = 0; run < 2; ++run)
      compareRuns(*r, test::randomInputs(*g, uint64_t(run + 1), /*step=*/run + 1), rtol, atol,
                  "run " + std::to_string(run));
  }
}

// In-place fused_elementwise (result in operand 0's or 1's buffer) and relu, f32 and f64.
TEST(CudaEmulation, InPlaceKernelsMatchTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = test::buildInPlaceGraph(dt);
    auto r = makeRunners(*g, test::inPlaceCompileOptions());
    ASSERT_NE(r, nullptr);
    const double rtol = dt == DType::F32 ? 1e-5 : 1e-12, atol = dt == DType::F32 ? 1e-6 : 1e-14;
    for (int run = 0; run < 2; ++run)
      compareRuns(*r, test::randomInputs(*g, uint64_t(run + 10)), rtol, atol, "run " + std::to_string(run));
  }
}

// The horizontally fused update kernels against the interpreter, and bit for bit against the
// per-parameter kernels, over three steps.
TEST(CudaEmulation, HorizontallyFusedUpdatesMatchPerParameterKernels) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = test::buildUpdateGroupGraph(dt);
    auto r = makeRunners(*g, test::opTestCompileOptions());
    ASSERT_NE(r, nullptr);
    CudaCodegenOptions off;
    off.horizontalUpdates = false;
    auto perParameter = emulatedWith(*r, off);
    ASSERT_NE(perParameter, nullptr);
    ASSERT_LT(r->emu->module().kernelNames.size(), perParameter->module().kernelNames.size());
    const double rtol = dt == DType::F32 ? 1e-5 : 1e-12, atol = dt == DType::F32 ? 1e-6 : 1e-14;
    for (int step = 1; step <= 3; ++step) {
      TensorMap feed = test::randomInputs(*g, uint64_t(step + 20), step);
      compareRuns(*r, feed, rtol, atol, "step " + std::to_string(step));
      ASSERT_TRUE(perParameter->run(feed).has_value());
      TensorMap a = r->emu->readPersistent(), b = perParameter->readPersistent();
      for (const auto& [name, t] : a) {
        ASSERT_EQ(t.byteSize(), b.at(name).byteSize());
        EXPECT_EQ(std::memcmp(t.raw(), b.at(name).raw(), t.byteSize()), 0) << name << " at step " << step;
      }
    }
  }
}

// Elementwise chains that read operands of other types (folded casts): u8 pixels and an i32
// mask into an f32 chain; an i32 and an f32 multiplied in an f64 chain. Against the
// interpreter, and each fused node computing in its result's type.
TEST(CudaEmulation, ChainsOverOtherTypesMatchTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (const char* name : {"elementwise_decode", "elementwise_mixed_f64"}) {
    SCOPED_TRACE(name);
    const std::string path = test::sourcePath(std::string("tests/passes/golden/fuse/") + name + ".in.ir");
    DiagnosticEngine diags;
    auto g = parseGraph(test::readFile(path), path, diags);
    ASSERT_TRUE(g) << diags.render();
    auto both = test::cpuAndEmulated(*g);
    ASSERT_TRUE(both) << both.error().str();
    int mixed = 0;
    for (const Node* n : both->program->graph->nodes())
      if (n->kind() == OpKind::FusedElementwise)
        for (const Value* in : n->inputs()) mixed += in->type().dtype != n->result()->type().dtype;
    EXPECT_GE(mixed, 2);
    TensorMap feed;
    for (const Node* n : both->program->graph->nodes()) {
      if (n->kind() != OpKind::Input) continue;
      Tensor t(n->result()->type());
      for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, double((i * 7 + 3) % 11) * (i % 2 ? 1 : 0.5));
      feed[n->attrs().getString("name")] = t;
    }
    auto want = both->cpu->run(feed);
    auto got = both->emu->run(feed);
    ASSERT_TRUE(want.has_value()) << want.error().message();
    ASSERT_TRUE(got.has_value()) << got.error().message();
    for (const auto& [out, t] : *want) EXPECT_TRUE(closeTo(out, got->at(out), t, 1e-6, 1e-6));
    if (std::string(name) == "elementwise_mixed_f64") {
      // x * y in double (an i32 and an f32 read as doubles), then the scale: by hand.
      const Tensor& n = want->at("n");
      for (int64_t i = 0; i < n.numElements(); ++i) {
        const double x = feed["x"].at(i), y = feed["y"].at(i);
        EXPECT_NEAR(n.at(i), x * y * 1.0000000000000009, 1e-12 * (1 + std::abs(x * y))) << i;
      }
    }
  }
}

// fused_conv2d_pool's register-blocked kernel with 2 and 4 filters a thread against one a
// thread (what these small shapes get by default), bit for bit, and against the interpreter:
// strided, dilated, padded, grouped convs; overlapping, padded and ceil-mode pools.
TEST(CudaEmulation, ConvPoolFilterBlocksMatchOneFilterAThread) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    test::OpGraphBuilder b("conv_pool_blocks", dt);
    ASSERT_TRUE(test::addCudaOpCase(b, OpKind::FusedConv2dPool));
    auto g = b.take();
    auto r = makeRunners(*g, test::opTestCompileOptions());
    ASSERT_NE(r, nullptr);
    const double rtol = dt == DType::F32 ? 1e-5 : 1e-12, atol = dt == DType::F32 ? 1e-6 : 1e-14;
    TensorMap feed = test::randomInputs(*g, 31);
    compareRuns(*r, feed, rtol, atol, "one filter a thread");
    EXPECT_EQ(r->emu->module().source.find("acc[2]["), std::string::npos);
    auto one = r->emu->run(feed);
    ASSERT_TRUE(one.has_value()) << one.error().message();
    for (int filters : {2, 4}) {
      SCOPED_TRACE(filters);
      CudaCodegenOptions o;
      o.convPoolFilters = filters;
      auto blocked = emulatedWith(*r, o);
      ASSERT_NE(blocked, nullptr);
      // Cases with 2 and 4 filters a group take the blocks.
      EXPECT_NE(blocked->module().source.find("acc[" + std::to_string(filters) + "]["), std::string::npos);
      auto got = blocked->run(feed);
      ASSERT_TRUE(got.has_value()) << got.error().message();
      ASSERT_EQ(got->size(), one->size());
      for (const auto& [name, t] : *one) {
        const Tensor& u = got->at(name);
        ASSERT_EQ(t.byteSize(), u.byteSize()) << name;
        EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.byteSize()), 0) << name;
      }
    }
  }
}

// fuse-conv-prologue: an input's decode -- a cast from u8 or i32 and a scale, or a scale of
// f32 -- read by the fused conv-pool as each tap loads, on the emulator against the
// interpreter. The scale's shift of 1 would show if a padding tap took the program's value at
// 0 instead of 0. Both kernels: register-blocked (3 x 3 conv under a 2 x 2 pool) and a thread
// per output (7 x 7, stride 2, under a padded 3 x 3 pool of stride 2). The interpreter's fused
// and unfused programs give the same bits.
TEST(CudaEmulation, ConvPoolReadsItsInputThroughItsDecode) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  struct Case {
    DType in;
    int64_t k, stride, pad, pool, poolStride, poolPad;
  };
  for (const Case& c : {Case{DType::U8, 3, 1, 1, 2, 2, 0}, Case{DType::I32, 7, 2, 3, 3, 2, 1},
                        Case{DType::F32, 3, 1, 1, 2, 2, 0}}) {
    SCOPED_TRACE(std::string(dtypeName(c.in)) + " input, " + std::to_string(c.k) + "x" + std::to_string(c.k));
    test::OpGraphBuilder b("conv_prologue", DType::F32);
    Graph& g = b.graph();
    auto add = [&](OpKind kind, std::vector<Value*> ins, Attrs attrs, const std::string& name) {
      return addTyped(g, kind, std::move(ins), std::move(attrs), name);
    };
    Value* x = b.input("x", TensorType{c.in, {2, 3, 11, 11}});
    Value* v = x;
    if (c.in != DType::F32) {
      Attrs cast;
      cast.set("dtype", std::string("f32"));
      v = add(OpKind::Cast, {x}, cast, "xf");
    }
    Attrs scale;
    scale.set("scale", c.in == DType::U8 ? 1.0 / 255 : 0.5);
    scale.set("shift", 1.0);
    v = add(OpKind::Scale, {v}, scale, "pre");
    Attrs conv;
    conv.set("stride", std::vector<int64_t>{c.stride, c.stride});
    conv.set("padding", std::vector<int64_t>{c.pad, c.pad, c.pad, c.pad});
    v = add(OpKind::Conv2d, {v, b.param("w", {16, 3, c.k, c.k}), b.param("b", {16})}, conv, "c");
    v = add(OpKind::Relu, {v}, {}, "r");
    Attrs pool;
    pool.set("kernel", std::vector<int64_t>{c.pool, c.pool});
    pool.set("stride", std::vector<int64_t>{c.poolStride, c.poolStride});
    pool.set("padding", std::vector<int64_t>{c.poolPad, c.poolPad, c.poolPad, c.poolPad});
    b.output(add(OpKind::MaxPool2d, {v}, pool, "p"));
    auto graph = b.take();
    auto r = makeRunners(*graph, CompileOptions{});
    ASSERT_NE(r, nullptr);
    // One kernel: the conv-pool reads the raw input.
    const Graph& fused = *r->program.graph;
    int convPool = 0, others = 0;
    for (const Node* n : fused.nodes()) {
      if (n->kind() == OpKind::FusedConv2dPool) {
        ++convPool;
        EXPECT_EQ(n->input(0)->name(), "x");
        EXPECT_NE(n->attrs().getString("input_expr"), "");
      } else {
        others += n->kind() != OpKind::Input && n->kind() != OpKind::Param && n->kind() != OpKind::Output;
      }
    }
    EXPECT_EQ(convPool, 1);
    EXPECT_EQ(others, 0);
    EXPECT_NE(r->emu->module().source.find("auto pro = []"), std::string::npos);
    const TensorMap feed = test::randomInputs(*graph, 5);
    compareRuns(*r, feed, 1e-5, 1e-6, "fused");
    const std::optional<Tensor> interpreted = fusedBitsAsUnfused(*graph, *r, feed, "fuse-conv-prologue", "p");
    ASSERT_TRUE(interpreted.has_value());
    const Tensor& bt = *interpreted;
    // On tensor cores (TF32): the decode runs first into the node's output buffer, which the
    // implicit GEMM reads, then the pooling writes it -- when that buffer holds the input (16
    // x 5 x 5 outputs an image for 3 x 11 x 11 inputs); else (the 7 x 7 case: 16 x 3 x 3) the
    // direct kernel. Within TF32's rounding of up to 147 products.
    CudaCodegenOptions tc;
    tc.tensorCores = TensorCoreMath::Tf32;
    auto onTc = emulatedWith(*r, tc);
    ASSERT_NE(onTc, nullptr);
    const bool fits = bt.numElements() >= feed.at("x").numElements();
    EXPECT_EQ(fits, c.k == 3);
    EXPECT_EQ(onTc->module().source.find("_p_prologue(") != std::string::npos, fits);
    EXPECT_EQ(onTc->module().source.find("auto pro = []") != std::string::npos, !fits);
    auto tf32 = onTc->run(feed);
    ASSERT_TRUE(tf32.has_value()) << tf32.error().message();
    EXPECT_TRUE(closeTo("tf32", tf32->at("p"), bt, 5e-3, 5e-3));
  }
}

// A residual block's tail (conv + bias, add the identity, relu) and a projection block's (two
// convolutions added): fuse-conv-epilogue makes each one fused_conv2d whose stores compute the
// add and relu (output_expr), the conv output never stored. The interpreter's fused program
// gives the unfused one's bits; the direct CUDA kernel matches the interpreter, and so does the
// tensor-core kernel (TF32, split over the reduction for the 64-channel case) within TF32's
// rounding; removing the epilogue's operand would fail both.
TEST(CudaEmulation, ConvResidualEpilogueMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (int64_t channels : {8, 64}) {
    SCOPED_TRACE(std::to_string(channels) + " channels");
    test::OpGraphBuilder b("conv_epilogue", DType::F32);
    Graph& g = b.graph();
    auto add = [&](OpKind kind, std::vector<Value*> ins, Attrs attrs, const std::string& name) {
      return addTyped(g, kind, std::move(ins), std::move(attrs), name);
    };
    Value* x = b.input("x", TensorType{DType::F32, {2, channels, 9, 9}});
    Attrs same;
    same.set("padding", std::vector<int64_t>{1, 1, 1, 1});
    Value* c1 = add(OpKind::Conv2d, {x, b.param("w1", {channels, channels, 3, 3}), b.param("b1", {channels})}, same, "c1");
    Value* r1 = add(OpKind::Relu, {c1}, {}, "r1");
    Value* c2 = add(OpKind::Conv2d, {r1, b.param("w2", {channels, channels, 3, 3}), b.param("b2", {channels})}, same, "c2");
    Value* s = add(OpKind::Relu, {add(OpKind::Add, {c2, x}, {}, "sum")}, {}, "out");
    // A projection block: the shortcut is a 1 x 1 convolution, itself read only by the add.
    Value* c3 = add(OpKind::Conv2d, {s, b.param("w3", {channels, channels, 3, 3}), b.param("b3", {channels})}, same, "c3");
    Value* proj = add(OpKind::Conv2d, {s, b.param("wp", {channels, channels, 1, 1}), b.param("bp", {channels})}, {}, "proj");
    b.output(add(OpKind::Relu, {add(OpKind::Add, {c3, proj}, {}, "sum2")}, {}, "y"));
    auto graph = b.take();
    auto r = makeRunners(*graph, CompileOptions{});
    ASSERT_NE(r, nullptr);
    int epilogues = 0;
    for (const Node* n : r->program.graph->nodes()) {
      EXPECT_NE(n->kind(), OpKind::FusedElementwise) << n->describe();
      if (n->kind() == OpKind::FusedConv2d && !n->attrs().getString("output_expr").empty()) {
        ++epilogues;
        EXPECT_EQ(n->attrs().getString("output_expr"), "a0 a1 add relu");
        EXPECT_EQ(n->numInputs(), 4u);
      }
    }
    EXPECT_EQ(epilogues, 2);
    EXPECT_NE(r->emu->module().source.find("const float r1 = e1[i];"), std::string::npos);
    const TensorMap feed = test::randomInputs(*graph, 7);
    compareRuns(*r, feed, 1e-5, 1e-6, "fused");
    const std::optional<Tensor> interpreted = fusedBitsAsUnfused(*graph, *r, feed, "fuse-conv-epilogue", "y");
    ASSERT_TRUE(interpreted.has_value());
    const Tensor& fused = *interpreted;
    // On tensor cores: the program in the stores (small outputs), or the biased sums stored and
    // a second kernel running it over them (large outputs; forced here by the option).
    for (bool inStore : {true, false}) {
      SCOPED_TRACE(inStore ? "tf32, the program in the stores" : "tf32, the program in a second kernel");
      CudaCodegenOptions tc;
      tc.tensorCores = TensorCoreMath::Tf32;
      if (!inStore) tc.convEpilogueInStoreOutputs = 0;
      auto onTc = emulatedWith(*r, tc);
      ASSERT_NE(onTc, nullptr);
      const std::string& src = onTc->module().source;
      EXPECT_EQ(src.find("const float r1 = e1[at];") != std::string::npos, inStore);
      EXPECT_EQ(src.find("_tc_epilogue(") == std::string::npos && src.find("_epilogue(") != std::string::npos, !inStore);
      auto tf32 = onTc->run(feed);
      ASSERT_TRUE(tf32.has_value()) << tf32.error().message();
      EXPECT_TRUE(closeTo("tf32", tf32->at("y"), fused, 2e-2, 2e-2));
    }
  }
}

// The MNIST CNN's inference program, fused (conv + relu + maxpool; the two dense layers one
// fused_mlp; the input's u8 decode read by the conv as it loads) on the emulator.
TEST(CudaEmulation, MnistCnnFusedInferenceMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  auto g = rebatchGraph(*pipeline->model, 3);
  ASSERT_TRUE(g.has_value());
  auto r = makeRunners(**g, CompileOptions{});
  ASSERT_NE(r, nullptr);
  int convPool = 0, dense = 0;
  for (const Node* n : r->program.graph->nodes()) {
    convPool += n->kind() == OpKind::FusedConv2dPool && !n->attrs().getString("input_expr").empty();
    dense += n->kind() == OpKind::FusedMlp;
  }
  EXPECT_EQ(convPool, 1);
  EXPECT_EQ(dense, 1);
  TensorMap feed;
  feed["x"] = Tensor(DType::U8, {3, 1, 28, 28});
  std::mt19937 rng{7};
  for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double(rng() % 256));
  compareRuns(*r, feed, 1e-4, 1e-5, "inference");
}

TEST(CudaEmulation, MnistCnnTrainingStepMatchesTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  auto g = rebatchGraph(*pipeline->model, 4);
  ASSERT_TRUE(g.has_value());
  CompileOptions opts;
  opts.train = &*pipeline->train;
  auto r = makeRunners(**g, opts);
  ASSERT_NE(r, nullptr);
  for (int step = 1; step <= 2; ++step) {
    TensorMap feed;
    feed["x"] = Tensor(DType::U8, {4, 1, 28, 28});
    std::mt19937 rng{uint32_t(step)};
    for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double(rng() % 256));
    feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{3, 1, 4, 1});
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{pipeline->train->lr});
    compareRuns(*r, feed, 1e-4, 1e-5, "step " + std::to_string(step));
  }
}

TEST(CudaEmulation, KernelsReportBadLabelsAndStepsLikeTheInterpreter) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  auto g = test::buildAllOpsGraph(DType::F32);
  auto r = makeRunners(*g, test::opTestCompileOptions());
  ASSERT_NE(r, nullptr);
  TensorMap feed = test::randomInputs(*g, 4);
  feed["softmax_cross_entropy__labels32"].set(5, 9);
  feed["softmax_cross_entropy__labels32"].set(6, -2);
  feed["softmax_cross_entropy_grad__labels"].set(2, 7);
  auto want = r->cpu->run(feed);
  auto got = r->emu->run(feed);
  ASSERT_FALSE(want.has_value());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().message(), want.error().message());
  EXPECT_NE(got.error().message().find("label 9 in row 5 is outside [0, 7)"), std::string::npos)
      << got.error().message();
  // The optimizer updates of that step were skipped, as the interpreter never reached them.
  TensorMap before = r->cpu->readPersistent(), after = r->emu->readPersistent();
  for (const auto& [name, t] : before) EXPECT_TRUE(closeTo("untouched " + name, after.at(name), t, 0, 0));

  TensorMap stepZero = test::randomInputs(*g, 5, /*step=*/0);
  auto cpuStep = r->cpu->run(stepZero);
  auto emuStep = r->emu->run(stepZero);
  ASSERT_FALSE(cpuStep.has_value());
  ASSERT_FALSE(emuStep.has_value());
  EXPECT_EQ(emuStep.error().message(), cpuStep.error().message());
}

// An inference program computes its folded batch norms (scale, weights, bias) from the
// parameters alone: the executor makes them once, in `prepare` steps, into the prepared region
// -- and with tensor cores packs the folded weights there too -- and again only after the
// parameters were written. Each set of parameters must give what the interpreter gives, and bit
// for bit what the same module computing them in every step gives.
TEST(CudaEmulation, ParameterDerivedValuesArePreparedOnceAndFollowEveryWrite) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/resnet_mnist.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  auto g = rebatchGraph(*pipeline->model, 2);
  ASSERT_TRUE(g.has_value());
  auto r = makeRunners(**g, CompileOptions{});
  ASSERT_NE(r, nullptr);
  const std::unordered_set<const Node*> derived = parameterDerivedNodes(r->program);
  ASSERT_EQ(derived.size(), 24u);  // six folded batch norms
  CudaCodegenOptions tf32, everyStep;
  tf32.tensorCores = TensorCoreMath::Tf32;
  everyStep.prepareParameters = false;
  CudaCodegenOptions tf32EveryStep = tf32;
  tf32EveryStep.prepareParameters = false;
  struct Variant {
    const char* name;
    std::unique_ptr<test::EmulatedExecutable> prepared, inStep;
  };
  std::vector<Variant> variants;
  variants.push_back({"fp32", emulatedWith(*r, {}), emulatedWith(*r, everyStep)});
  variants.push_back({"tf32", emulatedWith(*r, tf32), emulatedWith(*r, tf32EveryStep)});
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    ASSERT_TRUE(v.prepared && v.inStep);
    const CudaModuleSource& m = v.prepared->module();
    // Every folded value hoisted (the scale column shares its scale's block), every step of
    // theirs a prepare step, and no argument left pointing at their arena slots.
    std::set<int64_t> blocks;
    for (const Node* n : derived) {
      ASSERT_TRUE(m.hoisted.contains(n->result())) << n->describe();
      blocks.insert(m.hoisted.at(n->result()));
    }
    EXPECT_EQ(m.hoisted.size(), derived.size());
    std::set<const Value*> buffers;  // the plan's: the scale's column is a view of it, the bias written over it
    for (const Node* n : derived) buffers.insert(r->program.plan.bufferOf(n->result()));
    EXPECT_EQ(blocks.size(), buffers.size());
    EXPECT_LT(buffers.size(), derived.size());
    int prepares = 0, packs = 0;
    for (const CudaStep& s : m.steps) {
      prepares += s.prepare;
      packs += s.prepare && !derived.contains(s.node);
      if (derived.contains(s.node)) {
        EXPECT_TRUE(s.prepare) << s.node->describe();
      }
      for (const CudaArg& a : s.args)
        if (a.kind == CudaArgKind::Value) {
          EXPECT_FALSE(m.hoisted.contains(a.value)) << s.node->describe();
        }
    }
    EXPECT_GE(prepares, 24 - 6);  // a view of its operand's buffer may emit no step
    // With tensor cores the convolutions' packing of the folded weights is prepared too.
    EXPECT_EQ(packs, std::string(v.name) == "tf32" ? 6 : 0);  // one a convolution
    EXPECT_TRUE(v.inStep->module().hoisted.empty());
    EXPECT_GT(m.preparedBytes, v.inStep->module().preparedBytes);
  }

  std::mt19937 rng{29};
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE(round == 1 ? "first parameters" : "parameters written again");
    // Batch norms far from the identity, so that folding them matters.
    TensorMap params = r->cpu->readPersistent();
    for (auto& [name, t] : params) {
      if (t.type().dtype != DType::F32) continue;
      const bool positive = name.find("running_var") != std::string::npos;
      for (int64_t i = 0; i < t.numElements(); ++i)
        t.set(i, positive ? 0.5 + 0.5 * (uni(rng) + 1.0)
                          : (name.find(".weight") != std::string::npos && t.type().shape.size() == 1
                                 ? 1.0 + 0.5 * uni(rng)
                                 : t.at(i) + 0.1 * uni(rng)));
    }
    ASSERT_TRUE(r->cpu->writePersistent(params));
    for (Variant& v : variants) {
      v.prepared->writePersistent(params);
      v.inStep->writePersistent(params);
    }
    for (int run = 0; run < 2; ++run) {
      TensorMap feed;
      feed["x"] = Tensor(DType::U8, {2, 1, 28, 28});
      for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double(rng() % 256));
      auto want = r->cpu->run(feed);
      ASSERT_TRUE(want.has_value()) << want.error().message();
      for (Variant& v : variants) {
        SCOPED_TRACE(v.name);
        auto got = v.prepared->run(feed);
        auto same = v.inStep->run(feed);
        ASSERT_TRUE(got && same) << (got ? same.error().message() : got.error().message());
        EXPECT_EQ(v.prepared->prepareRuns(), round);
        for (const auto& [name, t] : *want) {
          EXPECT_EQ(got->at(name).toDoubles(), same->at(name).toDoubles()) << name;
          if (std::string(v.name) == "fp32") {
            EXPECT_TRUE(closeTo(name, got->at(name), t, 1e-4, 1e-5));
          }
        }
      }
    }
  }
}

// What is not hoisted though computed from parameters alone: a graph output (read from its
// plan slot after the step), a value whose buffer a value of the step takes over in place (y
// over d; u cannot take f's, its shape differs), a
// node that reports errors (every step clears the status words first) and what reads it. Each
// still computes what the interpreter computes, and the error is still reported.
TEST(CudaEmulation, HoistingLeavesOutputsSharedBuffersAndErrorReportsInTheStep) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  auto g = parseGraph(R"(graph hoist {
  %x = input() {name="x"} : f32[4]
  %x2 = input() {name="x2"} : f32[2,4]
  %w = param() {init="zeros"} : f32[4]
  %n = state() {init="zeros"} : i64[]
  %d = mul(%w, %w) : f32[4]
  %y = add(%d, %x) : f32[4]
  %z = add(%y, %x) : f32[4]
  %e = exp(%w) : f32[4]
  %q = div(%n, %n) : i64[]
  %q3 = mul(%q, %n) : i64[]
  %f = neg(%w) : f32[4]
  %u = mul(%x2, %f) : f32[2,4]
  %k = constant() {value=tensor<4>[2.0,0.5,-1.0,3.0]} : f32[4]
  %g = mul(%w, %k) : f32[4]
  %v = mul(%x2, %g) : f32[2,4]
  %h = add(%x2, %k) : f32[2,4]
  output(%z) {name="z"}
  output(%e) {name="e"}
  output(%q3) {name="q3"}
  output(%u) {name="u"}
  output(%v) {name="v"}
  output(%h) {name="h"}
})",
                      "hoist.ir", diags);
  ASSERT_TRUE(g && !diags.hasErrors()) << diags.render();
  CompileOptions opts;
  opts.disabledPasses = {"fuse-conv-activation", "fuse-pool-relu-grad", "fuse-dense-activation", "fuse-elementwise"};
  auto r = makeRunners(*g, opts);
  ASSERT_NE(r, nullptr);
  const Graph& graph = *r->program.graph;
  const Value* d = graph.findValue("d");
  ASSERT_EQ(r->program.plan.bufferOf(graph.findValue("y")), d);  // y is written over d
  const CudaModuleSource& m = r->emu->module();
  // f, and g with the literal it reads (which h reads in the step, from its prepared block).
  const std::set<const Value*> hoisted = {graph.findValue("f"), graph.findValue("g"), graph.findValue("k")};
  ASSERT_EQ(m.hoisted.size(), 3u);
  for (const Value* v : hoisted) EXPECT_TRUE(m.hoisted.contains(v)) << v->name();
  EXPECT_EQ(parameterDerivedNodes(r->program).size(), 6u);  // d, e, q, q3, f, g
  for (const CudaStep& s : m.steps) EXPECT_EQ(s.prepare, hoisted.contains(s.node->result())) << s.node->describe();

  const TensorMap state = {{"w", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{0.5, -1, 2, 0.25})},
                           {"n", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{3})}};
  ASSERT_TRUE(r->cpu->writePersistent(state));
  r->emu->writePersistent(state);
  const TensorMap feed = {
      {"x", Tensor::fromDoubles(DType::F32, {4}, std::vector<double>{1, 2, -3, 4})},
      {"x2", Tensor::fromDoubles(DType::F32, {2, 4}, std::vector<double>{1, 2, -3, 4, 0, 1, 1, 2})}};
  auto want = r->cpu->run(feed);
  auto got = r->emu->run(feed);
  ASSERT_TRUE(want && got) << (want ? got.error().message() : want.error().message());
  EXPECT_EQ(got->at("z").toDoubles(), (std::vector<double>{2.25, 5, -2, 8.0625}));
  EXPECT_EQ(got->at("u").toDoubles(), (std::vector<double>{-0.5, 2, 6, -1, 0, 1, -2, -0.5}));
  EXPECT_EQ(got->at("q3").toDoubles(), (std::vector<double>{3}));
  EXPECT_EQ(got->at("v").toDoubles(), (std::vector<double>{1, -1, 6, 3, 0, -0.5, -2, 1.5}));
  EXPECT_EQ(got->at("h").toDoubles(), (std::vector<double>{3, 2.5, -4, 7, 2, 1.5, 0, 5}));
  for (const auto& [name, t] : *want) EXPECT_TRUE(closeTo(name, got->at(name), t, 1e-6, 0));
  // n = 0: the division by zero is reported, as the interpreter reports it.
  const TensorMap zero = {{"n", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{0})}};
  ASSERT_TRUE(r->cpu->writePersistent(zero));
  r->emu->writePersistent(zero);
  auto cpuError = r->cpu->run(feed);
  auto emuError = r->emu->run(feed);
  ASSERT_FALSE(cpuError);
  ASSERT_FALSE(emuError);
  EXPECT_EQ(emuError.error().message(), cpuError.error().message());
  EXPECT_NE(emuError.error().message().find("integer division by zero"), std::string::npos);
}

// `steps` steps of r's program from inputs of seed `seed` + step on two emulated modules (other
// options, the same arithmetic): every output and parameter bit for bit the same in both, and
// within bfloat16's reach of the interpreter's.
void expectSameBitsNearTheInterpreter(Runners& r, test::EmulatedExecutable& a, test::EmulatedExecutable& b, int seed,
                                      int steps) {
  for (int step = 1; step <= steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const TensorMap feed = test::randomInputs(*r.program.graph, seed + step, step);
    auto want = r.cpu->run(feed);
    auto got = a.run(feed);
    auto same = b.run(feed);
    ASSERT_TRUE(want && got && same);
    for (const auto& [name, t] : *want) {
      EXPECT_EQ(got->at(name).toDoubles(), same->at(name).toDoubles()) << name;
      EXPECT_TRUE(closeTo(name, got->at(name), t, 2e-2, 1e-3));
    }
    const TensorMap pa = a.readPersistent(), pb = b.readPersistent(), pc = r.cpu->readPersistent();
    for (const auto& [name, t] : pc) {
      EXPECT_EQ(pa.at(name).toDoubles(), pb.at(name).toDoubles()) << name;
      EXPECT_TRUE(closeTo(name, pa.at(name), t, 2e-2, 1e-3));
    }
  }
}

// A training step on 16-bit channels-last convolutions (CudaCodegenOptions::conv16ChannelsLast)
// converts each value its products read so once, by the first node that reads it, and the rest
// read that copy (CudaModuleSource::converted): two convolutions reading one input, the forwards
// and their weight gradients, the data and weight gradients reading one gradient. 4 conversions
// where each node converting its own makes 12 -- and not one bit different, step after step,
// both within bfloat16's reach of the interpreter.
// test::sharedCopiesPipeline's training step (two convolutions reading one input, 64 filters),
// its interpreter and its program; null (with a failure) where it does not load.
std::unique_ptr<Runners> sharedCopiesTrainingStep() {
  DiagnosticEngine diags;
  const std::string text = test::sharedCopiesPipeline(/*batch=*/2, /*pool=*/4, /*filters=*/64);
  auto pipeline = loadPipelineText(text, "shared_copies.mmd", diags);
  EXPECT_TRUE(pipeline.has_value()) << diags.render();
  if (!pipeline) return nullptr;
  CompileOptions opts;
  opts.train = &*pipeline->train;
  return makeRunners(*pipeline->model, opts);
}

TEST(CudaEmulation, SixteenBitCopiesAreConvertedOnceForAllTheirReaders) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  auto r = sharedCopiesTrainingStep();
  ASSERT_NE(r, nullptr);
  CudaCodegenOptions shared;
  shared.tensorCores = TensorCoreMath::Bf16;
  shared.wgmma = true;
  shared.conv16ChannelsLast = true;
  CudaCodegenOptions own = shared;
  own.shareConvertedCopies = false;
  auto a = emulatedWith(*r, shared);
  auto b = emulatedWith(*r, own);
  ASSERT_TRUE(a && b);
  auto conversions = [](const CudaModuleSource& m) {
    return std::count_if(m.steps.begin(), m.steps.end(), [](const CudaStep& s) {
      return s.kernel.ends_with("_cl16") || s.kernel.ends_with("_cl16_dy");
    });
  };
  const CudaModuleSource& ms = a->module();
  EXPECT_EQ(conversions(ms), 4);  // p0, ra, the sum's gradient, a's gradient
  EXPECT_EQ(conversions(b->module()), 12);
  ASSERT_EQ(ms.converted.size(), 4u);
  const Graph& g = *r->program.graph;
  auto indexOf = [&](const char* name) {
    const Value* v = g.findValue(name);
    EXPECT_NE(v, nullptr) << name;
    const auto& nodes = g.nodes();
    return v ? int(std::find(nodes.begin(), nodes.end(), v->def()) - nodes.begin()) : -1;
  };
  for (const auto& blk : ms.converted) {
    SCOPED_TRACE(blk.value->name());
    EXPECT_EQ(blk.bytes, blk.value->type().numElements() * 2);
    EXPECT_LT(blk.first, blk.last);  // read by two nodes or more
  }
  // p0's copy: from a's forward to a's weight gradient, which a's gradient's copy outlives not.
  const auto p0 = std::find_if(ms.converted.begin(), ms.converted.end(),
                               [&](const auto& blk) { return blk.value->name() == "p0"; });
  ASSERT_NE(p0, ms.converted.end());
  EXPECT_EQ(p0->first, indexOf("ra"));
  EXPECT_EQ(p0->last, indexOf("a.weight.grad"));
  EXPECT_LT(ms.convertedBytes, b->module().convertedBytes + b->module().scratchBytes + 1);
  expectSameBitsNearTheInterpreter(*r, *a, *b, 40, 2);
}

// The same training step in TF32 with its channels-last copies (CudaCodegenOptions::
// tf32ChannelsLast): the forwards and data gradients read fp32 copies (4 bytes a value), each
// value's converted once and shared -- fewer conversions than each node converting its own, not
// one bit different, within TF32's reach of the interpreter; the weight gradients keep their
// gathers (no copy of dy: TF32 has no transposed wgmma form). Also with producer warps.
TEST(CudaEmulation, Tf32ChannelsLastCopiesAreFp32AndSharedByTheirReaders) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  auto r = sharedCopiesTrainingStep();
  ASSERT_NE(r, nullptr);
  for (const bool producers : {false, true}) {
    SCOPED_TRACE(producers ? "producer warps" : "one warpgroup pair");
    CudaCodegenOptions shared;
    shared.tensorCores = TensorCoreMath::Tf32;
    shared.wgmma = true;
    shared.tf32ChannelsLast = true;
    shared.halfProducerWarps = producers;
    CudaCodegenOptions own = shared;
    own.shareConvertedCopies = false;
    auto a = emulatedWith(*r, shared);
    auto b = emulatedWith(*r, own);
    ASSERT_TRUE(a && b);
    auto conversions = [](const CudaModuleSource& m, const char* suffix) {
      return std::count_if(m.steps.begin(), m.steps.end(),
                           [&](const CudaStep& s) { return s.kernel.ends_with(suffix); });
    };
    const CudaModuleSource& ms = a->module();
    EXPECT_GT(conversions(ms, "_cl16"), 0);
    EXPECT_LT(conversions(ms, "_cl16"), conversions(b->module(), "_cl16"));
    EXPECT_EQ(conversions(ms, "_cl16_dy"), 0);
    ASSERT_FALSE(ms.converted.empty());
    for (const auto& blk : ms.converted) EXPECT_EQ(blk.bytes, blk.value->type().numElements() * 4) << blk.value->name();
    expectSameBitsNearTheInterpreter(*r, *a, *b, 50, 2);
  }
}

// A tensor-core forward whose output a later 16-bit channels-last convolution reads writes the
// copy itself (CudaCodegenOptions::halfCopyInProducer): a relu'd convolution's epilogue stores
// it beside y, a residual block's program (add, relu: fuse-conv-epilogue) in its epilogue too --
// or, with the program in a second kernel (convEpilogueInStoreOutputs 0), that kernel
// transposes it through shared memory; in training the elementwise kernels that make the
// gradients the backward convolutions read (relu_grad) write theirs the same way. Two
// conversions fewer in inference, five in a training step, every output and parameter bit for
// bit the same as with the readers' conversions over two steps, and within bfloat16's reach of
// the interpreter.
TEST(CudaEmulation, SixteenBitCopiesWrittenByTheirProducersMatchTheReadersConversions) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  DiagnosticEngine diags;
  const std::string text = test::producerCopiesPipeline(/*batch=*/2);
  auto pipeline = loadPipelineText(text, "producer_copies.mmd", diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  for (const bool train : {true, false}) {
    SCOPED_TRACE(train ? "training step" : "inference");
    CompileOptions opts;
    if (train) opts.train = &*pipeline->train;
    auto r = makeRunners(*pipeline->model, opts);
    ASSERT_NE(r, nullptr);
    CudaCodegenOptions readers;
    readers.tensorCores = TensorCoreMath::Bf16;
    readers.wgmma = true;
    readers.conv16ChannelsLast = true;
    for (int64_t inStore : {int64_t(1) << 18, int64_t(0)}) {
      SCOPED_TRACE("convEpilogueInStoreOutputs " + std::to_string(inStore));
      CudaCodegenOptions producers = readers;
      producers.halfCopyInProducer = true;
      producers.convEpilogueInStoreOutputs = inStore;
      CudaCodegenOptions plain = readers;
      plain.convEpilogueInStoreOutputs = inStore;
      auto a = emulatedWith(*r, producers);
      auto b = emulatedWith(*r, plain);
      ASSERT_TRUE(a && b);
      const CudaModuleSource& ma = a->module();
      // Each copy a producer writes is a reader's conversion kernel gone: ra's and rs's, and in
      // training three gradients' (relu_grad's outputs).
      EXPECT_EQ(test::kernelSteps(ma).size() + (train ? 5 : 2), test::kernelSteps(b->module()).size());
      EXPECT_EQ(ma.converted.size(), b->module().converted.size());
      EXPECT_NE(ma.source.find("((unsigned short*)ycl)[m * 64 + o]"), std::string::npos);
      const bool secondKernel = inStore == 0;
      EXPECT_EQ(std::any_of(ma.steps.begin(), ma.steps.end(),
                            [](const CudaStep& s) { return s.kernel.ends_with("_epilogue_cl16"); }),
                secondKernel);
      expectSameBitsNearTheInterpreter(*r, *a, *b, 60, 2);
    }
  }
}

}  // namespace
}  // namespace shoal
