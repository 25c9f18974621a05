// GPU tests of the CUDA executor against the CPU interpreter (the reference): every op and
// gradient in f32 and f64 on random inputs, user errors reported from kernels, parameter
// sharing, CUDA-graph replay, and a few training steps of the MNIST CNN. Each test skips
// itself when probeCudaDevice finds no usable GPU (the CPU CI machine).
//
// Tolerances: fp32 rtol 1e-4, atol 1e-5 (design.md). Where an op sums many terms (GEMMs,
// convolution gradients, long sum_to), the GPU and OpenBLAS add in different orders (the
// GPU in double), so the bound there is rtol relative to the output's largest magnitude,
// not to each element: an element that is small because its terms cancel carries the
// rounding of the large terms. fp64: rtol 1e-9 on the same terms.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "codegen/cuda_test_graphs.h"
#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "runtime/data/datasets.h"
#include "runtime/trainer.h"
#include "test_util.h"

namespace shoal {
namespace {

#define SHOAL_REQUIRE_GPU()                                                                     \
  do {                                                                                          \
    if (!test::haveGpu()) GTEST_SKIP() << "no usable GPU: " << probeCudaDevice(0).error().message(); \
  } while (0)

struct Tolerance {
  double rtol = 1e-4, atol = 1e-5;
  bool scaled = false;  ///< rtol relative to max|expected| too (long sums)
};

// Ops whose outputs are long sums: their f32 error scales with the largest magnitude. Every
// other op is compared elementwise.
const std::set<OpKind>& longSumOps() {
  static const std::set<OpKind> ops = {OpKind::Conv2d,         OpKind::Conv2dBackwardData, OpKind::Conv2dBackwardWeight,
                                       OpKind::Dense,          OpKind::MatMul,             OpKind::SumTo,
                                       OpKind::SoftmaxGrad,    OpKind::LogSoftmaxGrad,     OpKind::AvgPool2d,
                                       OpKind::FusedConv2d,    OpKind::FusedConv2dPool,    OpKind::FusedDense,
                                       OpKind::FusedMlp};
  return ops;
}

Tolerance toleranceFor(OpKind kind, DType dt) {
  Tolerance t;
  if (dt == DType::F64) t = {1e-9, 1e-12, false};
  t.scaled = longSumOps().count(kind) != 0;
  return t;
}

::testing::AssertionResult gpuCloseTo(const std::string& what, const Tensor& gpu, const Tensor& cpu, Tolerance tol) {
  if (gpu.type() != cpu.type())
    return ::testing::AssertionFailure() << what << ": type " << gpu.type().str() << " vs " << cpu.type().str();
  double scale = 0;
  for (int64_t i = 0; i < cpu.numElements(); ++i) scale = std::max(scale, std::abs(cpu.at(i)));
  for (int64_t i = 0; i < cpu.numElements(); ++i) {
    double g = gpu.at(i), c = cpu.at(i);
    double bound = tol.atol + tol.rtol * (std::abs(c) + (tol.scaled ? scale : 0.0));
    bool same = (std::isnan(g) && std::isnan(c)) || g == c || std::abs(g - c) <= bound;
    if (!same)
      return ::testing::AssertionFailure() << what << "[" << i << "]: gpu " << g << ", cpu " << c << " (bound " << bound
                                           << ", max|cpu| " << scale << ")";
  }
  return ::testing::AssertionSuccess();
}

struct Pair {
  std::unique_ptr<CpuExecutable> cpu;
  std::unique_ptr<CudaExecutable> gpu;
};

Pair makePair(const Graph& g, const CompileOptions& opts, CudaExecutableOptions gopts = {}, uint64_t seed = 7) {
  Pair pair;
  auto p1 = compileProgram(g.clone(), opts);
  EXPECT_TRUE(p1.has_value()) << (p1 ? "" : p1.error().message());
  auto p2 = compileProgram(g.clone(), opts);
  if (!p1 || !p2) return pair;
  auto cpu = CpuExecutable::create(std::move(*p1));
  EXPECT_TRUE(cpu.has_value());
  auto gpu = CudaExecutable::create(std::move(*p2), gopts);
  EXPECT_TRUE(gpu.has_value()) << (gpu ? "" : gpu.error().message());
  if (!cpu || !gpu) return pair;
  pair.cpu = std::move(*cpu);
  pair.gpu = std::move(*gpu);
  pair.cpu->initializeParameters(seed);
  pair.gpu->initializeParameters(seed);
  return pair;
}

void expectSameMaps(const std::string& what, const TensorMap& gpu, const TensorMap& cpu, Tolerance tol) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (const auto& [name, t] : cpu) {
    auto it = gpu.find(name);
    ASSERT_NE(it, gpu.end()) << what << ": no '" << name << "' from the GPU";
    EXPECT_TRUE(gpuCloseTo(what + " " + name, it->second, t, tol));
  }
}

// SHOAL_CUDA_FP32_GEMM_MIN_MACS: an integer sets the exact-fp32 GEMM's threshold (negative:
// never); anything else keeps codegen's default and says so on stderr, once a process.
TEST(CudaExecutableOptions, Fp32GemmThresholdFromTheEnvironment) {
  const char* old = std::getenv("SHOAL_CUDA_FP32_GEMM_MIN_MACS");
  const std::string saved = old ? old : "";
  setenv("SHOAL_CUDA_FP32_GEMM_MIN_MACS", "-1", 1);
  EXPECT_EQ(CudaExecutableOptions::fromEnvironment().fp32ConvGemmMinMacs, -1);
  setenv("SHOAL_CUDA_FP32_GEMM_MIN_MACS", "4096", 1);
  EXPECT_EQ(CudaExecutableOptions::fromEnvironment().codegenOptions("sm_90").fp32ConvGemmMinMacs, 4096);
  setenv("SHOAL_CUDA_FP32_GEMM_MIN_MACS", "16M", 1);
  testing::internal::CaptureStderr();
  const int64_t first = CudaExecutableOptions::fromEnvironment().fp32ConvGemmMinMacs;
  const int64_t second = CudaExecutableOptions::fromEnvironment().fp32ConvGemmMinMacs;
  const std::string err = testing::internal::GetCapturedStderr();
  old ? setenv("SHOAL_CUDA_FP32_GEMM_MIN_MACS", saved.c_str(), 1) : unsetenv("SHOAL_CUDA_FP32_GEMM_MIN_MACS");
  EXPECT_EQ(first, CudaCodegenOptions{}.fp32ConvGemmMinMacs);
  EXPECT_EQ(second, first);
  EXPECT_EQ(err, "shoal: warning: SHOAL_CUDA_FP32_GEMM_MIN_MACS=16M is not an integer; the default (16777216) stays\n");
}

// SHOAL_PROFILE_LAUNCHES: how many slowest launches the profile lists; a value that is not a
// positive integer keeps 12 and says so.
TEST(CudaExecutableOptions, ProfileLaunchesFromTheEnvironment) {
  const char* old = std::getenv("SHOAL_PROFILE_LAUNCHES");
  const std::string saved = old ? old : "";
  setenv("SHOAL_PROFILE_LAUNCHES", "40", 1);
  EXPECT_EQ(CudaExecutableOptions::fromEnvironment().profileLaunches, 40);
  setenv("SHOAL_PROFILE_LAUNCHES", "0", 1);
  testing::internal::CaptureStderr();
  const int64_t zero = CudaExecutableOptions::fromEnvironment().profileLaunches;
  const std::string err = testing::internal::GetCapturedStderr();
  old ? setenv("SHOAL_PROFILE_LAUNCHES", saved.c_str(), 1) : unsetenv("SHOAL_PROFILE_LAUNCHES");
  EXPECT_EQ(zero, 12);
  EXPECT_EQ(err, "shoal: warning: SHOAL_PROFILE_LAUNCHES=0 is not a positive integer; the default (12) stays\n");
}

// The 16-bit channels-last convolutions are on by default (SHOAL_CUDA_CL16=0 turns them off), their
// copies shared (SHOAL_CUDA_CL16_SHARE=0: each reader its own), their overlapped stages off
// (SHOAL_CUDA_CL16_OVERLAP=1 turns them on), and so the wide, swapped, tap-reuse and producer
// options (SHOAL_CUDA_CL16_WIDE, _WS, _SWAP, _L1, _PRODUCER), the stem's (_STEM), the copy
// engine's (_TMA, on by default; _TMA_BLOCKS) and TF32's
// (SHOAL_CUDA_CL32); each reaches the codegen options.
TEST(CudaExecutableOptions, SixteenBitChannelsLastFromTheEnvironment) {
  std::map<std::string, std::optional<std::string>> saved;
  for (const char* name :
       {"SHOAL_CUDA_CL16", "SHOAL_CUDA_CL16_OVERLAP", "SHOAL_CUDA_CL16_SHARE", "SHOAL_CUDA_CL16_WIDE",
        "SHOAL_CUDA_CL16_WS", "SHOAL_CUDA_CL16_SWAP", "SHOAL_CUDA_CL16_L1", "SHOAL_CUDA_CL16_PRODUCER",
        "SHOAL_CUDA_CL16_STEM", "SHOAL_CUDA_CL16_TMA", "SHOAL_CUDA_CL16_TMA_BLOCKS", "SHOAL_CUDA_CL32"}) {
    const char* v = std::getenv(name);
    saved[name] = v ? std::optional<std::string>(v) : std::nullopt;
    unsetenv(name);
  }
  const CudaExecutableOptions byDefault = CudaExecutableOptions::fromEnvironment();
  setenv("SHOAL_CUDA_CL16", "0", 1);
  setenv("SHOAL_CUDA_CL16_OVERLAP", "1", 1);
  setenv("SHOAL_CUDA_CL16_SHARE", "0", 1);
  setenv("SHOAL_CUDA_CL16_WIDE", "1", 1);
  setenv("SHOAL_CUDA_CL16_WS", "1", 1);
  setenv("SHOAL_CUDA_CL32", "1", 1);
  setenv("SHOAL_CUDA_CL16_SWAP", "1", 1);
  setenv("SHOAL_CUDA_CL16_L1", "1", 1);
  setenv("SHOAL_CUDA_CL16_PRODUCER", "1", 1);
  setenv("SHOAL_CUDA_CL16_STEM", "1", 1);
  setenv("SHOAL_CUDA_CL16_TMA", "0", 1);
  setenv("SHOAL_CUDA_CL16_TMA_BLOCKS", "2", 1);
  const CudaExecutableOptions on = CudaExecutableOptions::fromEnvironment();
  for (const auto& [name, v] : saved) v ? setenv(name.c_str(), v->c_str(), 1) : unsetenv(name.c_str());
  EXPECT_TRUE(byDefault.conv16ChannelsLast);
  EXPECT_FALSE(byDefault.halfStageOverlap);
  EXPECT_TRUE(byDefault.shareConvertedCopies);
  EXPECT_TRUE(byDefault.codegenOptions("sm_90").shareConvertedCopies);
  EXPECT_FALSE(on.shareConvertedCopies);
  EXPECT_FALSE(on.codegenOptions("sm_90").shareConvertedCopies);
  EXPECT_TRUE(byDefault.codegenOptions("sm_90").conv16ChannelsLast);
  EXPECT_FALSE(on.conv16ChannelsLast);
  EXPECT_TRUE(on.halfStageOverlap);
  EXPECT_FALSE(on.codegenOptions("sm_90").conv16ChannelsLast);
  EXPECT_TRUE(on.codegenOptions("sm_90").halfStageOverlap);
  EXPECT_FALSE(byDefault.halfWideTile);
  EXPECT_FALSE(byDefault.codegenOptions("sm_90").halfWideTile);
  EXPECT_TRUE(on.codegenOptions("sm_90").halfWideTile);
  const CudaCodegenOptions plain = byDefault.codegenOptions("sm_90"), set = on.codegenOptions("sm_90");
  EXPECT_FALSE(plain.halfSwappedTile || plain.halfTapReuse || plain.halfCopyInProducer || plain.halfProducerWarps ||
               plain.tf32ChannelsLast || plain.halfStem || set.halfTma);
  EXPECT_TRUE(set.halfSwappedTile && set.halfTapReuse && set.halfCopyInProducer && set.halfProducerWarps &&
              set.tf32ChannelsLast && set.halfStem && plain.halfTma);
  EXPECT_EQ(plain.halfTmaBlocks, 0);
  EXPECT_EQ(set.halfTmaBlocks, 2);
}

TEST(CudaExecutor, EveryOpMatchesTheInterpreter) {
  SHOAL_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::F64}) {
    for (OpKind kind : allOps()) {
      SCOPED_TRACE(std::string(opName(kind)) + " " + std::string(dtypeName(dt)));
      auto g = test::buildCudaOpGraph(kind, dt);
      ASSERT_NE(g, nullptr);
      Pair pair = makePair(*g, test::opTestCompileOptions());
      ASSERT_TRUE(pair.gpu && pair.cpu);
      const Tolerance tol = toleranceFor(kind, dt);
      expectSameMaps("initial params", pair.gpu->readPersistent(), pair.cpu->readPersistent(), {0, 0, false});
      // Three runs on fresh inputs: the first launches step by step, the others replay the
      // captured graph; updates accumulate in the optimizer state across them.
      for (int run = 0; run < 3; ++run) {
        TensorMap inputs = test::randomInputs(*g, 1000 * uint64_t(kind) + uint64_t(run), /*step=*/run + 1);
        auto want = pair.cpu->run(inputs);
        ASSERT_TRUE(want.has_value()) << want.error().message();
        auto got = pair.gpu->run(inputs);
        ASSERT_TRUE(got.has_value()) << got.error().message();
        expectSameMaps("run " + std::to_string(run) + " output", *got, *want, tol);
        expectSameMaps("run " + std::to_string(run) + " persistent", pair.gpu->readPersistent(),
                       pair.cpu->readPersistent(), tol);
      }
      EXPECT_TRUE(pair.gpu->replaysGraph()) << pair.gpu->graphCaptureError();
    }
  }
}

TEST(CudaExecutor, GraphReplayRepeatsTheFirstRunBitForBit) {
  SHOAL_REQUIRE_GPU();
  auto g = test::buildAllOpsGraph(DType::F32);
  ASSERT_NE(g, nullptr);
  Pair pair = makePair(*g, test::opTestCompileOptions());
  ASSERT_TRUE(pair.gpu && pair.cpu);
  TensorMap a = test::randomInputs(*g, 1), b = test::randomInputs(*g, 2);
  EXPECT_FALSE(pair.gpu->replaysGraph());
  auto first = pair.gpu->run(a);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  EXPECT_TRUE(pair.gpu->replaysGraph()) << pair.gpu->graphCaptureError();
  size_t kernelSteps = 0;
  for (const CudaStep& s : pair.gpu->module().steps) kernelSteps += s.kind == CudaStepKind::Kernel;
  EXPECT_GT(kernelSteps, 50u);
  EXPECT_GE(pair.gpu->graphNodes(), kernelSteps + 1);  // + the status reset
  auto other = pair.gpu->run(b);
  ASSERT_TRUE(other.has_value()) << other.error().message();
  auto want = pair.cpu->run(b);
  ASSERT_TRUE(want.has_value());
  for (const auto& [name, t] : *want) {
    const std::string op = name.substr(0, name.find("__"));
    auto kind = opKindFromName(op);
    ASSERT_TRUE(kind.has_value()) << name;
    EXPECT_TRUE(gpuCloseTo("replay " + name, other->at(name), t, toleranceFor(*kind, DType::F32)));
  }
  auto again = pair.gpu->run(a);
  ASSERT_TRUE(again.has_value());
  for (const auto& [name, t] : *first) {
    const Tensor& r = again->at(name);
    ASSERT_EQ(r.byteSize(), t.byteSize());
    EXPECT_EQ(std::memcmp(r.raw(), t.raw(), t.byteSize()), 0) << name << " differs between the first run and the replay";
  }
}

// Profiling times every launch: the step runs one launch at a time (no graph), the results
// stay those of the unprofiled run bit for bit, and the summary names the ops and the slowest
// launches with their nodes.
TEST(CudaExecutor, ProfilingTimesEveryLaunchWithoutChangingResults) {
  SHOAL_REQUIRE_GPU();
  auto g = test::buildAllOpsGraph(DType::F32);
  ASSERT_NE(g, nullptr);
  Pair plain = makePair(*g, test::opTestCompileOptions()), profiled = makePair(*g, test::opTestCompileOptions());
  ASSERT_TRUE(plain.gpu && profiled.gpu);
  profiled.gpu->setProfiling(true);
  TensorMap a = test::randomInputs(*g, 1);
  auto want = plain.gpu->run(a);
  ASSERT_TRUE(want.has_value()) << want.error().message();
  for (int i = 0; i < 2; ++i) {
    auto got = profiled.gpu->run(a);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    for (const auto& [name, t] : *want)
      EXPECT_EQ(std::memcmp(got->at(name).raw(), t.raw(), t.byteSize()), 0) << name << " differs when profiled";
  }
  EXPECT_FALSE(profiled.gpu->replaysGraph());
  const std::string summary = profiled.gpu->profileSummary();
  EXPECT_NE(summary.find("conv2d"), std::string::npos) << summary;
  EXPECT_NE(summary.find("total in ops"), std::string::npos) << summary;
  EXPECT_NE(summary.find("slowest launches"), std::string::npos) << summary;
  EXPECT_EQ(plain.gpu->profileSummary(), "");
}

// Precision bf16 / fp16 reaches cuBLAS (cublasGemmEx, 16-bit operands, fp32 accumulation): a
// dense layer's outputs stay within the format's bound of float64 and differ from exact fp32
// (the rounding is visible); tf32 likewise within TF32's.
TEST(CudaExecutor, PrecisionRoundsTheGemmOperandsToItsFormat) {
  SHOAL_REQUIRE_GPU();
  const int64_t rows = 16, inner = 256, cols = 32;
  test::OpGraphBuilder b("gemm16", DType::F32);
  Value* x = b.input("x", Shape{rows, inner});
  Node* d = b.graph().addNode(OpKind::Dense, {x, b.param("d.weight", {cols, inner})}, Attrs{},
                              {{"d", TensorType{DType::F32, {rows, cols}}}});
  Attrs out;
  out.set("name", std::string("y"));
  b.graph().addNode(OpKind::Output, {d->result()}, out, {});
  auto g = b.take();
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  Tensor xt(DType::F32, {rows, inner}), wt(DType::F32, {cols, inner});
  for (int64_t i = 0; i < xt.numElements(); ++i) xt.set(i, u(rng));
  for (int64_t i = 0; i < wt.numElements(); ++i) wt.set(i, u(rng));
  for (TensorCoreMath math : {TensorCoreMath::Tf32, TensorCoreMath::Bf16, TensorCoreMath::Fp16}) {
    SCOPED_TRACE(std::string(tensorCoreMathName(math)));
    auto program = compileProgram(g->clone(), test::opTestCompileOptions());
    ASSERT_TRUE(program);
    auto exe = CudaExecutable::create(std::move(*program), CudaExecutableOptions::fromEnvironment().withPrecision(math));
    ASSERT_TRUE(exe) << exe.error().message();
    ASSERT_TRUE((*exe)->writePersistent({{"d.weight", wt}}));
    auto got = (*exe)->run({{"x", xt}});
    ASSERT_TRUE(got) << got.error().message();
    const Tensor& y = got->at("y");
    const double unit = std::ldexp(1.0, math == TensorCoreMath::Fp16 ? -11 : math == TensorCoreMath::Bf16 ? -8 : -10);
    double worstFp32 = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        double want = 0, mag = 0;
        for (int64_t k = 0; k < inner; ++k) {
          want += xt.at(r * inner + k) * wt.at(c * inner + k);
          mag += std::abs(xt.at(r * inner + k) * wt.at(c * inner + k));
        }
        const double err = std::abs(y.at(r * cols + c) - want);
        ASSERT_LE(err, 2 * unit * mag + double(inner) * std::ldexp(1.0, -23) * mag + 1e-6) << r << "," << c;
        worstFp32 = std::max(worstFp32, err / (double(inner) * std::ldexp(1.0, -24) * mag + 1e-12));
      }
    EXPECT_GT(worstFp32, 1.0) << "no element differs from exact fp32 by more than fp32's own error";
  }
}

// dense's bias and fused_dense's bias and ReLU in cuBLASLt's epilogue (gemmEpilogues, the
// products on cuBLAS: smallGemms off) against the interpreter, in exact fp32, TF32 and bfloat16, and
// the same with the epilogues in kernels of their own; odd shapes (rows of 45 and 21 floats,
// so C's rows are not 16-byte aligned); three runs, the later ones replaying the graph.
TEST(CudaExecutor, GemmEpiloguesInCublasLtMatchTheInterpreter) {
  SHOAL_REQUIRE_GPU();
  test::OpGraphBuilder b("lt_epilogues", DType::F32);
  Attrs relu, sigmoid;
  relu.set("activation", std::string("relu"));
  sigmoid.set("activation", std::string("sigmoid"));
  b.op(OpKind::Dense, {b.input("ax", {257, 300}), b.input("aw", {45, 300}), b.input("ab", {45})}, {}, "dense_bias");
  b.op(OpKind::FusedDense, {b.input("bx", {257, 300}), b.input("bw", {128, 300}), b.input("bb", {128})}, relu,
       "relu_bias");
  b.op(OpKind::FusedDense, {b.input("cx", {64, 301}), b.input("cw", {21, 301})}, relu, "relu_only");
  b.op(OpKind::FusedDense, {b.input("dx", {64, 300}), b.input("dw", {32, 300}), b.input("db", {32})}, sigmoid,
       "sigmoid_bias");
  auto g = b.take();
  for (TensorCoreMath math : {TensorCoreMath::Off, TensorCoreMath::Tf32, TensorCoreMath::Bf16})
    for (bool epilogues : {true, false}) {
      SCOPED_TRACE(std::string(tensorCoreMathName(math)) + (epilogues ? " cuBLASLt epilogues" : " epilogue kernels"));
      CudaExecutableOptions o = CudaExecutableOptions::fromEnvironment().withPrecision(math);
      o.smallGemms = false;
      o.gemmEpilogues = epilogues;
      Pair pair = makePair(*g, test::opTestCompileOptions(), o);
      ASSERT_TRUE(pair.gpu && pair.cpu);
      // TF32 and bfloat16: operands with 10 and 7 mantissa bits, terms of magnitude ~1, 300 of them.
      const Tolerance tol = math == TensorCoreMath::Off    ? Tolerance{1e-4, 1e-5, true}
                            : math == TensorCoreMath::Tf32 ? Tolerance{4e-3, 1e-4, true}
                                                           : Tolerance{3e-2, 1e-3, true};
      for (int run = 0; run < 3; ++run) {
        TensorMap inputs = test::randomInputs(*g, 40 + uint64_t(run));
        auto want = pair.cpu->run(inputs);
        ASSERT_TRUE(want.has_value()) << want.error().message();
        auto got = pair.gpu->run(inputs);
        ASSERT_TRUE(got.has_value()) << got.error().message();
        expectSameMaps("run " + std::to_string(run), *got, *want, tol);
        // ReLU's results are never negative and many are exactly zero (a tolerance alone could
        // hide a missing activation).
        for (const char* name : {"relu_bias", "relu_only"}) {
          const Tensor& y = got->at(name);
          int64_t zeros = 0, negatives = 0;
          for (int64_t i = 0; i < y.numElements(); ++i) zeros += y.at(i) == 0, negatives += y.at(i) < 0;
          EXPECT_EQ(negatives, 0) << name;
          EXPECT_GT(zeros, y.numElements() / 4) << name;
        }
      }
      EXPECT_TRUE(pair.gpu->replaysGraph()) << pair.gpu->graphCaptureError();
    }
}

// fused_mlp against the interpreter: the seed CNN's head at batch 64 (a first product split
// into 85 slices: its tiles, then a block a row) and, on cuBLAS (smallGemms off), layers whose
// hidden value lives in scratch, with the epilogues in cuBLASLt or in kernels of their own. And
// the block-a-row form against the unfused kernels it replaces (fuse-dense-pair off): the same
// sums in the same order, so the same bits.
TEST(CudaExecutor, FusedMlpMatchesTheInterpreterAndTheUnfusedKernels) {
  SHOAL_REQUIRE_GPU();
  const std::string text = R"(graph head {
  %x = input() {name="x"} : f32[64,5408]
  %w1 = input() {name="w1"} : f32[64,5408]
  %b1 = input() {name="b1"} : f32[64]
  %w2 = input() {name="w2"} : f32[10,64]
  %b2 = input() {name="b2"} : f32[10]
  %h = fused_dense(%x, %w1, %b1) {activation="relu"} : f32[64,64]
  %y = dense(%h, %w2, %b2) : f32[64,10]
  %sx = input() {name="sx"} : f32[300,700]
  %sw1 = input() {name="sw1"} : f32[200,700]
  %sb1 = input() {name="sb1"} : f32[200]
  %sw2 = input() {name="sw2"} : f32[30,200]
  %sb2 = input() {name="sb2"} : f32[30]
  %sh = fused_dense(%sx, %sw1, %sb1) {activation="sigmoid"} : f32[300,200]
  %sy = dense(%sh, %sw2, %sb2) : f32[300,30]
  output(%y) {name="y"}
  output(%sy) {name="sy"}
}
)";
  DiagnosticEngine diags;
  auto g = parseGraph(text, "head.ir", diags);
  ASSERT_TRUE(g) << diags.render();
  auto countMlps = [](const CudaExecutable& exe) {
    int n = 0;
    for (const Node* node : exe.program().graph->nodes()) n += node->kind() == OpKind::FusedMlp;
    return n;
  };
  for (bool small : {true, false})
    for (bool epilogues : {true, false}) {
      SCOPED_TRACE(std::string(small ? "small products" : "cuBLAS") + (epilogues ? ", cuBLASLt epilogues" : ""));
      CudaExecutableOptions o = CudaExecutableOptions::fromEnvironment().withPrecision(TensorCoreMath::Off);
      o.smallGemms = small;
      o.gemmEpilogues = epilogues;
      Pair fused = makePair(*g, test::opTestCompileOptions(), o);
      CompileOptions off = test::opTestCompileOptions();
      off.disabledPasses.insert("fuse-dense-pair");
      Pair unfused = makePair(*g, off, o);
      ASSERT_TRUE(fused.gpu && fused.cpu && unfused.gpu);
      EXPECT_EQ(countMlps(*fused.gpu), 2);
      EXPECT_EQ(countMlps(*unfused.gpu), 0);
      bool rows = false;
      for (const CudaStep& s : fused.gpu->module().steps) rows |= s.kernel.find("rows") != std::string::npos;
      EXPECT_EQ(rows, small) << "the seed head's block-a-row form";
      for (int run = 0; run < 3; ++run) {
        TensorMap inputs = test::randomInputs(*g, 70 + uint64_t(run));
        auto want = fused.cpu->run(inputs);
        ASSERT_TRUE(want.has_value()) << want.error().message();
        auto got = fused.gpu->run(inputs);
        ASSERT_TRUE(got.has_value()) << got.error().message();
        expectSameMaps("run " + std::to_string(run), *got, *want, Tolerance{1e-4, 1e-5, true});
        auto before = unfused.gpu->run(inputs);
        ASSERT_TRUE(before.has_value()) << before.error().message();
        if (small) {  // the rows kernel's sums are the unfused kernels' sums
          const Tensor& a = got->at("y");
          const Tensor& b = before->at("y");
          for (int64_t i = 0; i < a.numElements(); ++i) ASSERT_EQ(a.at(i), b.at(i)) << "y[" << i << "]";
        }
      }
      EXPECT_TRUE(fused.gpu->replaysGraph()) << fused.gpu->graphCaptureError();
    }
}

// A dense classifier trained with Adam: x[4,5] → dense(3) → logits.
std::unique_ptr<Graph> tinyClassifier(int64_t batch) {
  test::OpGraphBuilder b("tiny", DType::F32);
  Value* x = b.input("x", Shape{batch, 5});
  Attrs none;
  Node* d = b.graph().addNode(OpKind::Dense, {x, b.param("d.weight", {3, 5}), b.param("d.bias", {3})}, none,
                              {{"d", TensorType{DType::F32, {batch, 3}}}});
  Attrs out;
  out.set("name", std::string("logits"));
  b.graph().addNode(OpKind::Output, {d->result()}, out, {});
  return b.take();
}

TEST(CudaExecutor, BadLabelsAreErrorsLikeTheInterpreterAndUpdateNothing) {
  SHOAL_REQUIRE_GPU();
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions opts;
  opts.train = &cfg;
  auto g = tinyClassifier(4);
  Pair pair = makePair(*g, opts);
  ASSERT_TRUE(pair.gpu && pair.cpu);
  TensorMap feed = test::randomInputs(*pair.cpu->program().graph, 3);
  feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1});
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 7, 1, -1});
  TensorMap before = pair.gpu->readPersistent();
  auto want = pair.cpu->run(feed);
  ASSERT_FALSE(want.has_value());
  auto got = pair.gpu->run(feed);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().message(), want.error().message());
  EXPECT_NE(got.error().message().find("label 7 in row 1 is outside [0, 3)"), std::string::npos)
      << got.error().message();
  expectSameMaps("params after the failed step", pair.gpu->readPersistent(), before, {0, 0, false});
  // The next step with good labels runs, replays, and trains like the interpreter.
  for (int step = 1; step <= 3; ++step) {
    feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, 2});
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    auto w = pair.cpu->run(feed);
    auto r = pair.gpu->run(feed);
    ASSERT_TRUE(w.has_value()) << w.error().message();
    ASSERT_TRUE(r.has_value()) << r.error().message();
    expectSameMaps("step " + std::to_string(step), *r, *w, {1e-4, 1e-5, false});
  }
  expectSameMaps("trained params", pair.gpu->readPersistent(), pair.cpu->readPersistent(), {1e-4, 1e-5, false});
  // And the error path works from inside a replayed graph too.
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 1, 300, 2});
  ASSERT_TRUE(pair.gpu->replaysGraph());
  auto bad = pair.gpu->run(feed);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("label 300 in row 2 is outside [0, 3)"), std::string::npos)
      << bad.error().message();
}

TEST(CudaExecutor, AdamStepBelowOneIsAnError) {
  SHOAL_REQUIRE_GPU();
  auto g = test::buildCudaOpGraph(OpKind::AdamUpdate, DType::F32);
  Pair pair = makePair(*g, test::opTestCompileOptions());
  ASSERT_TRUE(pair.gpu && pair.cpu);
  TensorMap feed = test::randomInputs(*g, 5, /*step=*/0);
  auto want = pair.cpu->run(feed);
  auto got = pair.gpu->run(feed);
  ASSERT_FALSE(want.has_value());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().message(), want.error().message());
  EXPECT_NE(got.error().message().find("step must be >= 1, got 0"), std::string::npos) << got.error().message();
}

TEST(CudaExecutor, ParametersRoundTripAndShare) {
  SHOAL_REQUIRE_GPU();
  TrainConfig cfg;
  CompileOptions opts;
  opts.train = &cfg;
  auto big = compileProgram(tinyClassifier(4), opts);
  auto small = compileProgram(tinyClassifier(2), opts);
  ASSERT_TRUE(big && small);
  auto a = CudaExecutable::create(std::move(*big), {});
  auto b = CudaExecutable::create(std::move(*small), {});
  ASSERT_TRUE(a.has_value()) << a.error().message();
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ((*a)->deviceName().rfind("cuda:0 ", 0), 0u) << (*a)->deviceName();
  (*a)->initializeParameters(11);
  TensorMap params = (*a)->readPersistent();
  ASSERT_EQ(params.count("d.weight"), 1u);
  // writePersistent converts types and checks shapes.
  TensorMap update = {{"d.weight", params["d.weight"].cast(DType::F64)}, {"unknown", Tensor(DType::F32, {1})}};
  update["d.weight"].set(0, 0.5);
  ASSERT_TRUE((*a)->writePersistent(update).has_value());
  EXPECT_EQ((*a)->readPersistent()["d.weight"].at(0), 0.5);
  auto wrong = (*a)->writePersistent({{"d.weight", Tensor(DType::F32, {5, 3})}});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().message().find("tensor 'd.weight' has shape 5x3, the model expects 3x5"), std::string::npos)
      << wrong.error().message();
  // b trains a's parameters.
  ASSERT_TRUE((*b)->shareParameters(**a).has_value());
  EXPECT_EQ((*b)->readPersistent()["d.weight"].at(0), 0.5);
  TensorMap feed = test::randomInputs(*(*b)->program().graph, 9);
  feed["labels"] = Tensor::fromDoubles(DType::I64, {2}, std::vector<double>{0, 2});
  feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1});
  ASSERT_TRUE((*b)->run(feed).has_value());
  EXPECT_NE((*a)->readPersistent()["d.weight"].at(0), 0.5);
  // Sharing with the interpreter is refused.
  auto cpuProgram = compileProgram(tinyClassifier(4), opts);
  auto cpu = CpuExecutable::create(std::move(*cpuProgram));
  auto mixed = (*a)->shareParameters(**cpu);
  ASSERT_FALSE(mixed.has_value());
}

// Inference computes its folded batch norms' weights and bias from the parameters once, in
// prepare steps (CudaModuleSource::hoisted), and again after every change of them: a training
// step of a program sharing them, or a write. In fp32 and in TF32 every run must be bit for bit
// what the same program computing them in every step gives, and fp32 match the interpreter.
TEST(CudaExecutor, ParameterDerivedValuesFollowEveryParameterChange) {
  SHOAL_REQUIRE_GPU();
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/resnet_mnist.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  auto g = rebatchGraph(*pipeline->model, 4);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  CompileOptions trainOpts;
  trainOpts.train = &*pipeline->train;
  auto trainProgram = compileProgram((*g)->clone(), trainOpts);
  ASSERT_TRUE(trainProgram) << trainProgram.error().message();
  auto trainer = CudaExecutable::create(std::move(*trainProgram), {});
  ASSERT_TRUE(trainer) << trainer.error().message();
  (*trainer)->initializeParameters(5);
  auto cpuProgram = compileProgram((*g)->clone());
  ASSERT_TRUE(cpuProgram);
  auto cpu = CpuExecutable::create(std::move(*cpuProgram));
  ASSERT_TRUE(cpu);
  for (TensorCoreMath math : {TensorCoreMath::Off, TensorCoreMath::Tf32}) {
    SCOPED_TRACE(std::string(tensorCoreMathName(math)));
    CudaExecutableOptions o;
    o.tensorCores = math;
    auto p1 = compileProgram((*g)->clone()), p2 = compileProgram((*g)->clone());
    ASSERT_TRUE(p1 && p2);
    auto prepared = CudaExecutable::create(std::move(*p1), o);
    o.prepareParameters = false;
    auto inStep = CudaExecutable::create(std::move(*p2), o);
    ASSERT_TRUE(prepared && inStep) << (prepared ? inStep.error().message() : prepared.error().message());
    EXPECT_EQ((*prepared)->module().hoisted.size(), 24u);
    EXPECT_TRUE((*inStep)->module().hoisted.empty());
    ASSERT_TRUE((*prepared)->shareParameters(**trainer));
    ASSERT_TRUE((*inStep)->shareParameters(**trainer));
    uint64_t seed = 20;
    auto check = [&](const std::string& what) {
      SCOPED_TRACE(what);
      ASSERT_TRUE((*cpu)->writePersistent((*trainer)->readPersistent()));
      const TensorMap feed = test::randomInputs(*(*prepared)->program().graph, ++seed);
      auto want = (*cpu)->run(feed);
      auto got = (*prepared)->run(feed);
      auto same = (*inStep)->run(feed);
      ASSERT_TRUE(want && got && same);
      for (const auto& [name, t] : *want) {
        EXPECT_EQ(got->at(name).toDoubles(), same->at(name).toDoubles()) << name;
        if (math == TensorCoreMath::Off) {
          EXPECT_TRUE(gpuCloseTo(name, got->at(name), t, {1e-4, 1e-4, true}));
        }
      }
    };
    check("first run");
    check("second run");
    TensorMap trainFeed = test::randomInputs(*(*trainer)->program().graph, 3);
    ASSERT_TRUE((*trainer)->run(trainFeed));
    check("after a training step");
    TensorMap params = (*trainer)->readPersistent();
    std::mt19937 rng{11};
    std::uniform_real_distribution<double> uni(0.5, 1.5);
    for (auto& [name, t] : params)
      if (name.find("running_var") != std::string::npos || name.find("n1.weight") != std::string::npos)
        for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, uni(rng));
    ASSERT_TRUE((*prepared)->writePersistent(params));
    check("after a write");
  }
}

// `steps` steps from inputs of seed `seed` + step on pair's GPU executable and on other's (other
// options, the same arithmetic): every output and parameter bit for bit the same in both, the
// outputs within bfloat16's reach of the interpreter's.
void expectSameBitsNearTheInterpreter(Pair& pair, Pair& other, int seed, int steps) {
  for (int step = 1; step <= steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const TensorMap feed = test::randomInputs(*pair.gpu->program().graph, seed + step, step);
    auto want = pair.cpu->run(feed);
    auto got = pair.gpu->run(feed);
    auto same = other.gpu->run(feed);
    ASSERT_TRUE(want && got && same);
    for (const auto& [name, t] : *want) {
      EXPECT_EQ(got->at(name).toDoubles(), same->at(name).toDoubles()) << name;
      EXPECT_TRUE(gpuCloseTo(name, got->at(name), t, {2e-2, 1e-3, true}));
    }
    const TensorMap pa = pair.gpu->readPersistent(), pb = other.gpu->readPersistent();
    for (const auto& [name, t] : pa) EXPECT_EQ(t.toDoubles(), pb.at(name).toDoubles()) << name;
  }
}

// On an sm_90 device, a training step on 16-bit channels-last convolutions whose copies are
// converted once for all their readers (CudaCodegenOptions::shareConvertedCopies) computes bit
// for bit what each node converting its own computes, step after step, within bfloat16's reach
// of the interpreter. (CudaEmulation.SixteenBitCopiesAreConvertedOnceForAllTheirReaders: the
// same on the emulator, with the conversions counted.)
TEST(CudaExecutor, SixteenBitCopiesSharedOrOwnAgreeBitForBit) {
  SHOAL_REQUIRE_GPU();
  auto dev = probeCudaDevice(0);
  ASSERT_TRUE(dev);
  CudaExecutableOptions shared;
  shared.tensorCores = TensorCoreMath::Bf16;
  shared.conv16ChannelsLast = true;
  if (!shared.codegenOptions(dev->arch()).wgmma) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  CudaExecutableOptions own = shared;
  own.shareConvertedCopies = false;
  DiagnosticEngine diags;
  const std::string text = test::sharedCopiesPipeline(/*batch=*/16, /*pool=*/2, /*filters=*/128);
  auto pipeline = loadPipelineText(text, "shared_copies.mmd", diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  CompileOptions opts;
  opts.train = &*pipeline->train;
  Pair pair = makePair(*pipeline->model, opts, shared, /*seed=*/9);
  Pair other = makePair(*pipeline->model, opts, own, /*seed=*/9);
  ASSERT_TRUE(pair.gpu && pair.cpu && other.gpu);
  EXPECT_LT(pair.gpu->module().converted.size(), other.gpu->module().converted.size());
  expectSameBitsNearTheInterpreter(pair, other, 70, 3);
}

// The 16-bit copies written by the forwards that produce them (CudaExecutableOptions::
// halfCopyInProducer) on the device: a relu'd convolution's epilogue and, at batch 32 (outputs
// past 2^18 elements), a residual program's second kernel writing through shared memory --
// three training steps bit for bit the same as with the readers' conversions, within bfloat16's
// reach of the interpreter. (CudaEmulation.SixteenBitCopiesWrittenByTheirProducers*: the same
// on the emulator, the conversions counted.)
TEST(CudaExecutor, SixteenBitCopiesWrittenByTheirProducersAgreeBitForBit) {
  SHOAL_REQUIRE_GPU();
  auto dev = probeCudaDevice(0);
  ASSERT_TRUE(dev);
  CudaExecutableOptions readers;
  readers.tensorCores = TensorCoreMath::Bf16;
  readers.conv16ChannelsLast = true;
  if (!readers.codegenOptions(dev->arch()).wgmma) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  CudaExecutableOptions producers = readers;
  producers.halfCopyInProducer = true;
  DiagnosticEngine diags;
  auto pipeline = loadPipelineText(test::producerCopiesPipeline(/*batch=*/32), "producer_copies.mmd", diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  CompileOptions opts;
  opts.train = &*pipeline->train;
  Pair pair = makePair(*pipeline->model, opts, producers, /*seed=*/9);
  Pair other = makePair(*pipeline->model, opts, readers, /*seed=*/9);
  ASSERT_TRUE(pair.gpu && pair.cpu && other.gpu);
  const auto& steps = pair.gpu->module().steps;
  EXPECT_TRUE(
      std::any_of(steps.begin(), steps.end(), [](const CudaStep& s) { return s.kernel.ends_with("_epilogue_cl16"); }));
  expectSameBitsNearTheInterpreter(pair, other, 80, 3);
}

TEST(CudaExecutor, InputsAreCheckedLikeTheInterpreter) {
  SHOAL_REQUIRE_GPU();
  auto g = test::buildCudaOpGraph(OpKind::Relu, DType::F32);
  Pair pair = makePair(*g, test::opTestCompileOptions());
  ASSERT_TRUE(pair.gpu && pair.cpu);
  auto missing = pair.gpu->run({}), wantMissing = pair.cpu->run({});
  ASSERT_FALSE(missing.has_value());
  ASSERT_FALSE(wantMissing.has_value());
  EXPECT_EQ(missing.error().message(), wantMissing.error().message());
  TensorMap wrong = {{"x", Tensor(DType::F32, {2, 2})}};
  auto gotWrong = pair.gpu->run(wrong), wantWrong = pair.cpu->run(wrong);
  ASSERT_FALSE(gotWrong.has_value());
  ASSERT_FALSE(wantWrong.has_value());
  EXPECT_EQ(gotWrong.error().message(), wantWrong.error().message());
  // Another element type is converted, as on the CPU.
  TensorMap ints = {{"x", Tensor::fromDoubles(DType::I32, {3, 50}, std::vector<double>(150, -3.0))}};
  ints["x"].set(7, 4.0);
  auto got = pair.gpu->run(ints);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->at("y").at(7), 4.0);
  EXPECT_EQ(got->at("y").at(6), 0.0);
}

// In-place kernels (a fused_elementwise writing over operand 0 or 1, a relu over its dying
// input) on the GPU, against the interpreter.
TEST(CudaExecutor, InPlaceKernelsMatchTheInterpreter) {
  SHOAL_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = test::buildInPlaceGraph(dt);
    Pair pair = makePair(*g, test::inPlaceCompileOptions());
    ASSERT_TRUE(pair.gpu && pair.cpu);
    for (int run = 0; run < 3; ++run) {
      TensorMap inputs = test::randomInputs(*g, uint64_t(40 + run));
      auto want = pair.cpu->run(inputs);
      auto got = pair.gpu->run(inputs);
      ASSERT_TRUE(want.has_value()) << want.error().message();
      ASSERT_TRUE(got.has_value()) << got.error().message();
      expectSameMaps("run " + std::to_string(run), *got, *want, toleranceFor(OpKind::FusedElementwise, dt));
    }
  }
}

// One kernel for a run of Adam (or SGD) updates gives bitwise the parameters and state of
// one kernel per update, and both follow the interpreter.
TEST(CudaExecutor, HorizontallyFusedUpdatesAreBitwiseThePerParameterKernels) {
  SHOAL_REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = test::buildUpdateGroupGraph(dt);
    Pair pair = makePair(*g, test::opTestCompileOptions());
    ASSERT_TRUE(pair.gpu && pair.cpu);
    auto program = compileProgram(g->clone(), test::opTestCompileOptions());
    ASSERT_TRUE(program.has_value());
    CudaExecutableOptions off;
    off.horizontalUpdates = false;
    auto perParameter = CudaExecutable::create(std::move(*program), off);
    ASSERT_TRUE(perParameter.has_value()) << perParameter.error().message();
    (*perParameter)->initializeParameters(7);
    EXPECT_LT(pair.gpu->module().kernelNames.size(), (*perParameter)->module().kernelNames.size());
    for (int step = 1; step <= 3; ++step) {
      TensorMap feed = test::randomInputs(*g, uint64_t(60 + step), step);
      auto want = pair.cpu->run(feed);
      ASSERT_TRUE(want.has_value()) << want.error().message();
      ASSERT_TRUE(pair.gpu->run(feed).has_value());
      ASSERT_TRUE((*perParameter)->run(feed).has_value());
      TensorMap fused = pair.gpu->readPersistent(), single = (*perParameter)->readPersistent();
      for (const auto& [name, t] : fused) {
        ASSERT_EQ(t.byteSize(), single.at(name).byteSize());
        EXPECT_EQ(std::memcmp(t.raw(), single.at(name).raw(), t.byteSize()), 0) << name << " at step " << step;
      }
      expectSameMaps("step " + std::to_string(step), fused, pair.cpu->readPersistent(),
                     toleranceFor(OpKind::AdamUpdate, dt));
    }
  }
}

// runAccumulate sums weight × loss and accuracy on the device, bit for bit what the host
// makes of each step's run() outputs, trains the same parameters, and finds the first
// non-finite loss; takeAccumulated resets.
TEST(CudaExecutor, RunAccumulateSumsWhatRunReturns) {
  SHOAL_REQUIRE_GPU();
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions opts;
  opts.train = &cfg;
  auto g = tinyClassifier(4);
  auto p1 = compileProgram(g->clone(), opts), p2 = compileProgram(g->clone(), opts);
  ASSERT_TRUE(p1 && p2);
  auto sync = CudaExecutable::create(std::move(*p1), {});
  auto async = CudaExecutable::create(std::move(*p2), {});
  ASSERT_TRUE(sync.has_value()) << sync.error().message();
  ASSERT_TRUE(async.has_value()) << async.error().message();
  (*sync)->initializeParameters(5);
  (*async)->initializeParameters(5);
  std::mt19937 rng{11};
  auto feedFor = [&](int step) {
    TensorMap feed = test::randomInputs(*(*sync)->program().graph, uint64_t(100 + step));
    feed["labels"] = Tensor(DType::I64, {4});
    for (int64_t i = 0; i < 4; ++i) feed["labels"].set(i, double(rng() % 3));
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    return feed;
  };
  for (int round = 0; round < 2; ++round) {
    double loss = 0, accuracy = 0, weight = 0;
    for (int s = 1; s <= 7; ++s) {
      const int step = round * 7 + s;
      TensorMap feed = feedFor(step);
      const double w = 1 + (step % 3);
      auto out = (*sync)->run(feed);
      ASSERT_TRUE(out.has_value()) << out.error().message();
      loss += out->at("loss").at(0) * w;
      accuracy += out->at("accuracy").at(0) * w;
      weight += w;
      auto ok = (*async)->runAccumulate(feed, {"loss", "accuracy"}, w, step);
      ASSERT_TRUE(ok.has_value()) << ok.error().message();
    }
    auto acc = (*async)->takeAccumulated();
    ASSERT_TRUE(acc.has_value()) << acc.error().message();
    EXPECT_EQ(acc->sums["loss"], loss) << "round " << round;
    EXPECT_EQ(acc->sums["accuracy"], accuracy) << "round " << round;
    EXPECT_EQ(acc->weight, weight);
    EXPECT_FALSE(acc->firstNonFinite.has_value());
    EXPECT_TRUE((*async)->replaysGraph()) << (*async)->graphCaptureError();
  }
  TensorMap a = (*sync)->readPersistent(), b = (*async)->readPersistent();
  for (const auto& [name, t] : a)
    EXPECT_EQ(std::memcmp(t.raw(), b.at(name).raw(), t.byteSize()), 0) << name << " differs after training";
  // Nothing accumulated since the last take: an empty result, no error.
  auto empty = (*async)->takeAccumulated();
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->weight, 0);
  // A NaN input at step 23 makes that step's loss NaN: reported with its index and value.
  for (int step = 21; step <= 25; ++step) {
    TensorMap feed = feedFor(step);
    if (step == 23) feed["x"].set(3, std::nan(""));
    ASSERT_TRUE((*async)->runAccumulate(feed, {"loss"}, 1.0, step).has_value());
  }
  auto bad = (*async)->takeAccumulated();
  ASSERT_TRUE(bad.has_value()) << bad.error().message();
  ASSERT_TRUE(bad->firstNonFinite.has_value());
  EXPECT_EQ(*bad->firstNonFinite, 23);
  EXPECT_TRUE(std::isnan(bad->nonFiniteValue));
  EXPECT_EQ(bad->weight, 5);
  // An unknown output is an error at once.
  auto unknown = (*async)->runAccumulate(feedFor(30), {"nope"}, 1.0, 30);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message().find("no output named 'nope'"), std::string::npos) << unknown.error().message();
}

// A bad label inside accumulated steps comes back from takeAccumulated, worded like run()'s
// error and naming the step; the accumulators are reset for the next epoch.
TEST(CudaExecutor, RunAccumulateReportsKernelErrorsAtTake) {
  SHOAL_REQUIRE_GPU();
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions opts;
  opts.train = &cfg;
  auto g = tinyClassifier(4);
  Pair pair = makePair(*g, opts);
  ASSERT_TRUE(pair.gpu && pair.cpu);
  TensorMap feed = test::randomInputs(*pair.cpu->program().graph, 3);
  feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1});
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 1, 2, 1});
  ASSERT_TRUE(pair.gpu->runAccumulate(feed, {"loss"}, 4, 1).has_value());
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 7, 1, -1});
  auto want = pair.cpu->run(feed);
  ASSERT_FALSE(want.has_value());
  ASSERT_TRUE(pair.gpu->runAccumulate(feed, {"loss"}, 4, 2).has_value());  // no sync: not seen yet
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{2, 1, 2, 1});
  ASSERT_TRUE(pair.gpu->runAccumulate(feed, {"loss"}, 4, 3).has_value());
  auto taken = pair.gpu->takeAccumulated();
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().message(), want.error().message() + " (training step 2)");
  ASSERT_TRUE(pair.gpu->runAccumulate(feed, {"loss"}, 4, 4).has_value());
  auto next = pair.gpu->takeAccumulated();
  ASSERT_TRUE(next.has_value()) << next.error().message();
  EXPECT_EQ(next->weight, 4);
}

// Steps whose batches are gathered on the device from a resident data set (u8 images into
// the MNIST CNN's f32 input, i64 labels) train exactly as steps fed the same batches from the
// host: the same accumulated loss and accuracy and the same parameters, bit for bit, over two
// epochs of different orders and a remainder batch of its own executable. A row out of range
// in an order is an error naming it.
TEST(CudaExecutor, RunAccumulateRowsIsRunAccumulateOnTheSameBatches) {
  SHOAL_REQUIRE_GPU();
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  CompileOptions opts;
  opts.train = &*pipeline->train;
  auto build = [&](int64_t batch) {
    auto g = rebatchGraph(*pipeline->model, batch);
    EXPECT_TRUE(g.has_value());
    auto p = compileProgram((*g)->clone(), opts);
    EXPECT_TRUE(p.has_value());
    auto e = CudaExecutable::create(std::move(*p), {});
    EXPECT_TRUE(e.has_value()) << e.error().message();
    return std::move(*e);
  };
  auto hostFed = build(8), gathered = build(8), hostRest = build(3), gatheredRest = build(3);
  hostFed->initializeParameters(9);
  gathered->initializeParameters(9);
  ASSERT_TRUE(hostRest->shareParameters(*hostFed).has_value());
  ASSERT_TRUE(gatheredRest->shareParameters(*gathered).has_value());
  const int64_t n = 19;  // two batches of 8, one of 3
  TensorMap data;
  data["x"] = Tensor(DType::U8, {n, 1, 28, 28});
  data["labels"] = Tensor(DType::I64, {n});
  std::mt19937 rng{5};
  for (int64_t i = 0; i < data["x"].numElements(); ++i) data["x"].set(i, double(rng() % 256));
  for (int64_t i = 0; i < n; ++i) data["labels"].set(i, double(rng() % 10));
  auto resident = gathered->makeResident(data);
  ASSERT_TRUE(resident.has_value()) << resident.error().message();
  ASSERT_NE(*resident, nullptr);
  EXPECT_EQ((*resident)->rows(), n);
  int64_t step = 0;
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    std::shuffle(order.begin(), order.end(), rng);
    ASSERT_TRUE((*resident)->setOrder(order).has_value());
    for (int64_t first = 0; first < n;) {
      const int64_t rows = std::min<int64_t>(8, n - first);
      ++step;
      TensorMap scalars;
      scalars["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
      scalars["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{pipeline->train->lr});
      TensorMap feed = scalars;
      for (const char* name : {"x", "labels"}) {
        auto b = gatherRows(data[name], std::span(order).subspan(size_t(first), size_t(rows)), name);
        ASSERT_TRUE(b.has_value());
        feed[name] = *b;
      }
      CudaExecutable& host = rows == 8 ? *hostFed : *hostRest;
      CudaExecutable& dev = rows == 8 ? *gathered : *gatheredRest;
      ASSERT_TRUE(host.runAccumulate(feed, {"loss", "accuracy"}, double(rows), step).has_value());
      auto ok = dev.runAccumulateRows(**resident, first, rows, scalars, {"loss", "accuracy"}, double(rows), step);
      ASSERT_TRUE(ok.has_value()) << ok.error().message();
      first += rows;
    }
    for (auto pair : {std::make_pair(hostFed.get(), gathered.get()), std::make_pair(hostRest.get(), gatheredRest.get())}) {
      auto want = pair.first->takeAccumulated();
      auto got = pair.second->takeAccumulated();
      ASSERT_TRUE(want.has_value() && got.has_value());
      EXPECT_EQ(got->sums["loss"], want->sums["loss"]) << "epoch " << epoch;
      EXPECT_EQ(got->sums["accuracy"], want->sums["accuracy"]) << "epoch " << epoch;
      EXPECT_EQ(got->weight, want->weight);
    }
  }
  EXPECT_TRUE(gathered->replaysGraph()) << gathered->graphCaptureError();
  TensorMap a = hostFed->readPersistent(), b = gathered->readPersistent();
  for (const auto& [name, t] : a)
    EXPECT_EQ(std::memcmp(t.raw(), b.at(name).raw(), t.byteSize()), 0) << name << " differs after two epochs";
  std::vector<int64_t> bad = {0, 1, n};
  auto refused = (*resident)->setOrder(bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("row 19 (at 2 of the epoch's order) is out of range"), std::string::npos)
      << refused.error().message();
}

// The pipeline trainer on the GPU: with the training set gathered in device memory (the
// default) and fed from the host (SHOAL_RESIDENT_DATA=0), two epochs of the seed CNN at batch
// 96 (a remainder batch of 32 each epoch, its own executable) give the same losses,
// accuracies and weights, bit for bit.
TEST(CudaExecutor, PipelineTrainsTheSameFromGpuMemoryAndFromTheHost) {
  SHOAL_REQUIRE_GPU();
  DiagnosticEngine diags;
  auto p = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(p.has_value()) << diags.render();
  p->data->path = test::sourcePath("data/mnist-10k");
  p->output.checkpoint.clear();
  p->output.plot.clear();
  TrainOptions opts;
  opts.device = DeviceKind::Cuda;
  opts.epochs = 2;
  opts.batch = 96;
  auto run = [&](const char* resident) {
    const char* old = std::getenv("SHOAL_RESIDENT_DATA");
    std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
    ::setenv("SHOAL_RESIDENT_DATA", resident, 1);
    auto r = trainPipeline(*p, opts);
    if (saved) ::setenv("SHOAL_RESIDENT_DATA", saved->c_str(), 1);
    else ::unsetenv("SHOAL_RESIDENT_DATA");
    return r;
  };
  auto gathered = run("1"), uploaded = run("0");
  ASSERT_TRUE(gathered.has_value()) << gathered.error().message();
  ASSERT_TRUE(uploaded.has_value()) << uploaded.error().message();
  EXPECT_EQ(gathered->steps, 2 * 84);
  ASSERT_EQ(gathered->epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(gathered->epochs[e].loss, uploaded->epochs[e].loss) << "epoch " << e + 1;
    EXPECT_EQ(gathered->epochs[e].accuracy, uploaded->epochs[e].accuracy) << "epoch " << e + 1;
  }
  EXPECT_EQ(gathered->testAccuracy, uploaded->testAccuracy);
  for (const auto& [name, t] : uploaded->parameters)
    EXPECT_EQ(std::memcmp(t.raw(), gathered->parameters.at(name).raw(), t.byteSize()), 0) << name;
}

// Three Adam steps of the seed's MNIST CNN at batch 8 on random images, GPU vs CPU. The
// loss of each step and the parameters after the last must agree. (Adam divides by
// sqrt(v): a gradient element whose value is all rounding noise could move ±lr either way,
// so params are compared by norm and by the count of outliers, not element by element.)
TEST(CudaExecutor, MnistCnnTrainingStepsMatchTheCpu) {
  SHOAL_REQUIRE_GPU();
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  auto g = rebatchGraph(*pipeline->model, 8);
  ASSERT_TRUE(g.has_value()) << g.error().message();
  CompileOptions opts;
  opts.train = &*pipeline->train;
  Pair pair = makePair(**g, opts, {}, /*seed=*/42);
  ASSERT_TRUE(pair.gpu && pair.cpu);
  for (int step = 1; step <= 3; ++step) {
    TensorMap feed;
    feed["x"] = Tensor(DType::U8, {8, 1, 28, 28});
    std::mt19937 rng{uint32_t(step)};
    for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double(rng() % 256));
    feed["labels"] = Tensor(DType::I64, {8});
    for (int64_t i = 0; i < 8; ++i) feed["labels"].set(i, double(rng() % 10));
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{pipeline->train->lr});
    auto want = pair.cpu->run(feed);
    auto got = pair.gpu->run(feed);
    ASSERT_TRUE(want.has_value()) << want.error().message();
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_TRUE(gpuCloseTo("loss at step " + std::to_string(step), got->at("loss"), want->at("loss"), {1e-4, 1e-5, false}));
    EXPECT_TRUE(gpuCloseTo("logits at step " + std::to_string(step), got->at("logits"), want->at("logits"), {1e-4, 1e-4, true}));
    EXPECT_EQ(got->at("accuracy").at(0), want->at("accuracy").at(0));
  }
  TensorMap gp = pair.gpu->readPersistent(), cp = pair.cpu->readPersistent();
  ASSERT_EQ(gp.size(), cp.size());
  for (const auto& [name, c] : cp) {
    const Tensor& t = gp.at(name);
    double diff2 = 0, ref2 = 0, maxDiff = 0;
    int64_t outliers = 0;
    for (int64_t i = 0; i < c.numElements(); ++i) {
      double d = std::abs(t.at(i) - c.at(i));
      diff2 += d * d;
      ref2 += c.at(i) * c.at(i);
      maxDiff = std::max(maxDiff, d);
      outliers += d > 1e-5 + 1e-4 * std::abs(c.at(i));
    }
    EXPECT_LE(std::sqrt(diff2), 1e-4 * std::sqrt(ref2) + 1e-6) << name << " (max diff " << maxDiff << ")";
    EXPECT_LE(outliers, std::max<int64_t>(1, c.numElements() / 10000)) << name << " (max diff " << maxDiff << ")";
  }
}

// How kernels are launched changes no bit: six training steps of the MNIST CNN at batch 64
// (graph replays included) give the same outputs and parameters with each kernel launched on
// its own, launched with programmatic stream serialization (the default on sm_90: a kernel
// that touched memory before waiting for the previous one would race here), and with
// independent kernels grouped into one launch (the default), and grouped with the module
// compiled as several NVRTC units, each a library of its own.
TEST(CudaExecutor, LaunchOptionsChangeNoBit) {
  SHOAL_REQUIRE_GPU();
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  CompileOptions opts;
  opts.train = &*pipeline->train;
  // plain, programmatic, programmatic + grouped, and that compiled as several NVRTC units
  constexpr int kConfigs = 4;
  std::unique_ptr<CudaExecutable> exes[kConfigs];
  for (int c = 0; c < kConfigs; ++c) {
    auto program = compileProgram(pipeline->model->clone(), opts);
    ASSERT_TRUE(program.has_value()) << program.error().message();
    CudaExecutableOptions o = CudaExecutableOptions::fromEnvironment();
    o.programmaticLaunch = c >= 1;
    o.groupKernels = c >= 2;
    o.unitBytes = c == 3 ? 8 * 1024 : 0;
    auto exe = CudaExecutable::create(std::move(*program), o);
    ASSERT_TRUE(exe.has_value()) << exe.error().message();
    exes[c] = std::move(*exe);
    exes[c]->initializeParameters(5);
  }
  EXPECT_LT(exes[2]->module().kernelNames.size(), exes[0]->module().kernelNames.size());
  EXPECT_EQ(exes[2]->module().units.size(), 1u);
  EXPECT_GE(exes[3]->module().units.size(), 3u);
  std::mt19937 rng{3};
  for (int step = 1; step <= 6; ++step) {
    TensorMap feed;
    feed["x"] = Tensor(DType::U8, {64, 1, 28, 28});
    for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double(rng() % 256));
    feed["labels"] = Tensor(DType::I64, {64});
    for (int64_t i = 0; i < 64; ++i) feed["labels"].set(i, double(rng() % 10));
    feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
    feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{pipeline->train->lr});
    auto plain = exes[0]->run(feed);
    ASSERT_TRUE(plain.has_value()) << plain.error().message();
    for (int c = 1; c < kConfigs; ++c) {
      auto other = exes[c]->run(feed);
      ASSERT_TRUE(other.has_value()) << other.error().message();
      for (const auto& [name, t] : *plain)
        EXPECT_EQ(std::memcmp(t.raw(), other->at(name).raw(), t.byteSize()), 0)
            << name << " at step " << step << ", configuration " << c;
    }
  }
  TensorMap a = exes[0]->readPersistent();
  for (int c = 1; c < kConfigs; ++c) {
    TensorMap b = exes[c]->readPersistent();
    for (const auto& [name, t] : a) {
      ASSERT_EQ(t.byteSize(), b.at(name).byteSize());
      EXPECT_EQ(std::memcmp(t.raw(), b.at(name).raw(), t.byteSize()), 0) << name << ", configuration " << c;
    }
  }
}

// Not a check of numbers: the step time of the MNIST CNN training step at batch 64, launched
// kernel by kernel and replayed as a CUDA graph (host wall time per run(), the figure the
// trainer reports, including the input upload, output download and the one sync).
TEST(CudaExecutorTiming, MnistCnnTrainStepMs) {
  SHOAL_REQUIRE_GPU();
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value());
  CompileOptions opts;
  opts.train = &*pipeline->train;
  TensorMap feed;
  feed["x"] = Tensor(DType::U8, {64, 1, 28, 28});
  for (int64_t i = 0; i < feed["x"].numElements(); ++i) feed["x"].set(i, double((i * 37) % 256));
  feed["labels"] = Tensor(DType::I64, {64});
  for (int64_t i = 0; i < 64; ++i) feed["labels"].set(i, double(i % 10));
  feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{pipeline->train->lr});
  for (bool graphs : {false, true}) {
    auto program = compileProgram(pipeline->model->clone(), opts);
    ASSERT_TRUE(program.has_value());
    CudaExecutableOptions o;
    o.graphs = graphs;
    auto exe = CudaExecutable::create(std::move(*program), o);
    ASSERT_TRUE(exe.has_value()) << exe.error().message();
    (*exe)->initializeParameters(1);
    std::vector<double> ms;
    for (int step = 1; step <= 60; ++step) {
      feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
      auto t0 = std::chrono::steady_clock::now();
      auto out = (*exe)->run(feed);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      ASSERT_TRUE(out.has_value()) << out.error().message();
    }
    std::vector<double> steady(ms.begin() + 10, ms.end());
    std::sort(steady.begin(), steady.end());
    double median = steady[steady.size() / 2];
    auto device = (*exe)->timeStepMs(200);
    ASSERT_TRUE(device.has_value()) << device.error().message();
    std::printf("[timing] mnist_cnn train step, batch 64, %s: run() median %.3f ms (min %.3f, first run %.3f ms, "
                "NVRTC %.1f ms); device time per step %.4f ms; on %s\n",
                graphs ? "CUDA graph replay" : "kernel by kernel", median, steady.front(), ms.front(),
                (*exe)->compileMs(), *device, (*exe)->deviceName().c_str());
    RecordProperty(graphs ? "graph_step_ms" : "eager_step_ms", std::to_string(median));
    EXPECT_EQ((*exe)->replaysGraph(), graphs) << (*exe)->graphCaptureError();
    // No time is asserted: the figures are printed; bench/shoal_bench measures them properly.
    // The trainer's form: runAccumulate every step, one takeAccumulated per 50.
    auto t0 = std::chrono::steady_clock::now();
    for (int step = 61; step <= 260; ++step) {
      feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(step)});
      ASSERT_TRUE((*exe)->runAccumulate(feed, {"loss", "accuracy"}, 64, step).has_value());
      if (step % 50 == 10) {
        ASSERT_TRUE((*exe)->takeAccumulated().has_value());
      }
    }
    double perStep = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 200;
    std::printf("[timing] mnist_cnn train step, batch 64, %s: runAccumulate %.3f ms per step (wall, 200 steps)\n",
                graphs ? "CUDA graph replay" : "kernel by kernel", perStep);
  }
}

// Inputs and parameters in the app's GPU memory (Tensor::onDevice) are copied on the device:
// the same numbers as host tensors, in a plain run and in a training step; a wrong element
// type is an error that names the input.
TEST(CudaExecutor, DeviceResidentInputsAndParameters) {
  SHOAL_REQUIRE_GPU();
  auto ctx = CudaContext::create();
  ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
  auto upload = [&](const Tensor& t) -> void* {
    auto p = (*ctx)->allocateBuffer(t.byteSize(), "test tensor");
    EXPECT_TRUE(p.has_value());
    EXPECT_TRUE((*ctx)->copyToDevice(*p, t.raw(), t.byteSize(), "test upload").has_value());
    EXPECT_TRUE((*ctx)->synchronize("test upload").has_value());
    return *p;
  };
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions train;
  train.train = &cfg;
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training step" : "inference");
    auto g = tinyClassifier(4);
    Pair host = makePair(*g, training ? train : CompileOptions{});
    Pair dev = makePair(*g, training ? train : CompileOptions{});
    ASSERT_TRUE(host.gpu && dev.gpu);
    // Parameters from GPU memory.
    TensorMap params = host.gpu->readPersistent();
    TensorMap onDevice;
    for (const auto& [name, t] : params)
      onDevice[name] = Tensor::onDevice(t.type(), upload(t));
    ASSERT_TRUE(dev.gpu->writePersistent(onDevice).has_value());
    TensorMap back = dev.gpu->readPersistent();
    for (const auto& [name, t] : params)
      EXPECT_EQ(std::memcmp(back.at(name).raw(), t.raw(), t.byteSize()), 0) << name;
    TensorMap feed = test::randomInputs(*host.gpu->program().graph, 5);
    if (training) {
      feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, 1});
      feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1});
      feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{1e-3});
    }
    TensorMap devFeed = feed;
    devFeed["x"] = Tensor::onDevice(feed["x"].type(), upload(feed["x"]));
    if (training) devFeed["labels"] = Tensor::onDevice(feed["labels"].type(), upload(feed["labels"]));
    auto want = host.gpu->run(feed);
    auto got = dev.gpu->run(devFeed);
    ASSERT_TRUE(want.has_value()) << want.error().message();
    ASSERT_TRUE(got.has_value()) << got.error().message();
    for (const auto& [name, t] : *want)
      EXPECT_EQ(std::memcmp(got->at(name).raw(), t.raw(), t.byteSize()), 0) << name;
    TensorMap a = host.gpu->readPersistent(), b = dev.gpu->readPersistent();
    for (const auto& [name, t] : a) EXPECT_EQ(std::memcmp(b.at(name).raw(), t.raw(), t.byteSize()), 0) << name;
    // Nothing converts on the device.
    Tensor asF64 = feed["x"].cast(DType::F64);
    devFeed["x"] = Tensor::onDevice(asF64.type(), upload(asF64));
    auto wrong = dev.gpu->run(devFeed);
    ASSERT_FALSE(wrong.has_value());
    EXPECT_NE(wrong.error().message().find("input 'x' is in GPU memory as f64[4,5], the model takes f32[4,5]"),
              std::string::npos)
        << wrong.error().message();
  }
}

// A grouped launch (kernels of several nodes side by side, one launch) is profiled as one and
// listed under all of its ops and nodes, not the first one's alone.
TEST(CudaExecutor, ProfileListsAGroupedLaunchUnderAllItsNodes) {
  SHOAL_REQUIRE_GPU();
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions train;
  train.train = &cfg;
  auto g = tinyClassifier(4);
  Pair pair = makePair(*g, train);
  ASSERT_TRUE(pair.gpu);
  size_t grouped = 0;
  for (const CudaStep& s : pair.gpu->module().steps) grouped += !s.parts.empty();
  ASSERT_GT(grouped, 0u) << "no grouped launch: this tests nothing";
  pair.gpu->setProfiling(true);
  TensorMap feed = test::randomInputs(*pair.gpu->program().graph, 9);
  feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, 1});
  feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{1});
  feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{1e-3});
  ASSERT_TRUE(pair.gpu->run(feed).has_value());
  const std::string summary = pair.gpu->profileSummary();
  EXPECT_NE(summary.find("grouped: "), std::string::npos) << summary;
  EXPECT_NE(summary.find(" + "), std::string::npos) << summary;
}

// An input in GPU memory that is not aligned as the plan aligns buffers (a view one element
// into an allocation) is copied, not read in place: kernels may read 16 bytes at a time.
TEST(CudaExecutor, MisalignedDeviceInputsAreCopiedNotReadInPlace) {
  SHOAL_REQUIRE_GPU();
  auto ctx = CudaContext::create();
  ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
  auto g = tinyClassifier(4);
  Pair pair = makePair(*g, CompileOptions{});
  ASSERT_TRUE(pair.gpu && pair.cpu);
  const TensorMap feed = test::randomInputs(*g, 77);
  const Tensor& x = feed.at("x");
  auto buffer = (*ctx)->allocateBuffer(x.byteSize() + sizeof(float), "test input");
  ASSERT_TRUE(buffer.has_value());
  char* base = static_cast<char*>(*buffer);
  ASSERT_TRUE((*ctx)->copyToDevice(base + sizeof(float), x.raw(), x.byteSize(), "test upload").has_value());
  ASSERT_TRUE((*ctx)->synchronize("test upload").has_value());
  TensorMap moved = feed;
  moved["x"] = Tensor::onDevice(x.type(), base + sizeof(float));
  auto want = pair.gpu->run(feed);
  ASSERT_TRUE(want.has_value()) << want.error().message();
  for (int run = 0; run < 2; ++run) {
    auto got = pair.gpu->run(moved);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_TRUE(pair.gpu->inputsReadInPlace().empty());
    EXPECT_EQ(std::memcmp(got->at("logits").raw(), want->at("logits").raw(), want->at("logits").byteSize()), 0);
  }
  // The same bytes at an aligned address are read in place.
  moved["x"] = Tensor::onDevice(x.type(), base);
  ASSERT_TRUE((*ctx)->copyToDevice(base, x.raw(), x.byteSize(), "test upload").has_value());
  ASSERT_TRUE((*ctx)->synchronize("test upload").has_value());
  auto aligned = pair.gpu->run(moved);
  ASSERT_TRUE(aligned.has_value()) << aligned.error().message();
  EXPECT_EQ(pair.gpu->inputsReadInPlace(), std::vector<std::string>{"x"});
  EXPECT_EQ(std::memcmp(aligned->at("logits").raw(), want->at("logits").raw(), want->at("logits").byteSize()), 0);
  ASSERT_TRUE((*ctx)->freeBuffer(*buffer).has_value());
}

// Inputs in page-locked host memory (a view of a cudaMallocHost buffer) are copied straight
// from there (by the step's first kernel in inference, pinnedCopyInBytes; by DMA in a training
// step), also when they change between runs in the same buffer; one of another element type is
// converted through the staging buffer as ever. Same bits as pageable
// tensors, in inference (no status words: nothing reports) and in a training step.
TEST(CudaExecutor, PageLockedHostInputsMatchPageableOnes) {
  SHOAL_REQUIRE_GPU();
  auto ctx = CudaContext::create();
  ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions train;
  train.train = &cfg;
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training step" : "inference");
    auto g = tinyClassifier(4);
    Pair host = makePair(*g, training ? train : CompileOptions{});
    Pair pinned = makePair(*g, training ? train : CompileOptions{});
    ASSERT_TRUE(host.gpu && pinned.gpu);
    ASSERT_TRUE(pinned.gpu->writePersistent(host.gpu->readPersistent()).has_value());
    const TensorMap first = test::randomInputs(*host.gpu->program().graph, 5);
    const Tensor& x0 = first.at("x");
    auto buffer = (*ctx)->allocatePinned(x0.byteSize(), "test pinned input");
    ASSERT_TRUE(buffer.has_value()) << buffer.error().message();
    auto locked = (*ctx)->isPageLocked(buffer->data());
    ASSERT_TRUE(locked.has_value()) << locked.error().message();
    EXPECT_TRUE(*locked);
    auto pageable = (*ctx)->isPageLocked(x0.raw());
    ASSERT_TRUE(pageable.has_value()) << pageable.error().message();
    EXPECT_FALSE(*pageable);
    for (int run = 0; run < 3; ++run) {
      SCOPED_TRACE(run);
      TensorMap feed = test::randomInputs(*host.gpu->program().graph, uint64_t(7 + run));
      if (training) {
        feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, 1});
        feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(run + 1)});
        feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{1e-3});
      }
      TensorMap pinnedFeed = feed;
      if (run == 2) {
        // Another element type in page-locked memory: converted on the host first.
        Tensor asF64 = feed["x"].cast(DType::F64);
        auto wide = (*ctx)->allocatePinned(asF64.byteSize(), "test pinned f64 input");
        ASSERT_TRUE(wide.has_value());
        std::memcpy(wide->data(), asF64.raw(), asF64.byteSize());
        pinnedFeed["x"] = Tensor::view(asF64.type(), wide->data());
        auto got = pinned.gpu->run(pinnedFeed);
        auto want = host.gpu->run(feed);
        ASSERT_TRUE(want.has_value() && got.has_value());
        for (const auto& [name, t] : *want)
          EXPECT_EQ(std::memcmp(got->at(name).raw(), t.raw(), t.byteSize()), 0) << name;
        continue;
      }
      std::memcpy(buffer->data(), feed["x"].raw(), feed["x"].byteSize());
      pinnedFeed["x"] = Tensor::view(feed["x"].type(), buffer->data());
      auto want = host.gpu->run(feed);
      auto got = pinned.gpu->run(pinnedFeed);
      ASSERT_TRUE(want.has_value()) << want.error().message();
      ASSERT_TRUE(got.has_value()) << got.error().message();
      for (const auto& [name, t] : *want)
        EXPECT_EQ(std::memcmp(got->at(name).raw(), t.raw(), t.byteSize()), 0) << name;
    }
    TensorMap a = host.gpu->readPersistent(), b = pinned.gpu->readPersistent();
    for (const auto& [name, t] : a) EXPECT_EQ(std::memcmp(b.at(name).raw(), t.raw(), t.byteSize()), 0) << name;
  }
}

// The replayed step graph reads its input from wherever each call's is: pageable memory
// (staged), one GPU buffer or another, one page-locked buffer or another, in any order, with
// the graph captured after a call from the host or from the GPU. Every call gives the bits of
// an executable fed pageable host tensors throughout, in inference and in a training step.
// In inference the kernels read an input in GPU memory where it is (inputsInPlace), and the
// step's first kernel copies one in page-locked memory in (pinnedCopyInBytes), until the address
// has changed too often (the third order: back and forth between two buffers), then it is
// copied again; a training step always copies.
TEST(CudaExecutor, InputsFromAnywhereCallAfterCallMatchHostInputs) {
  SHOAL_REQUIRE_GPU();
  auto ctx = CudaContext::create();
  ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions train;
  train.train = &cfg;
  enum class From { Pageable, DeviceA, DeviceB, PinnedA, PinnedB };
  const std::vector<std::vector<From>> orders = {
      {From::Pageable, From::Pageable, From::DeviceA, From::PinnedA, From::PinnedB, From::Pageable, From::PinnedA},
      {From::DeviceA, From::DeviceA, From::DeviceB, From::Pageable, From::DeviceA, From::PinnedB, From::DeviceB},
      {From::DeviceA, From::DeviceB, From::DeviceA, From::DeviceB, From::DeviceA, From::DeviceB, From::DeviceA,
       From::DeviceB, From::DeviceA, From::DeviceB, From::DeviceA, From::DeviceB}};
  for (bool training : {false, true})
    for (const std::vector<From>& order : orders) {
      SCOPED_TRACE(std::string(training ? "training step" : "inference") + ", first from " +
                   (order[0] == From::Pageable ? "pageable memory" : "the GPU"));
      auto g = tinyClassifier(4);
      Pair ref = makePair(*g, training ? train : CompileOptions{});
      Pair moved = makePair(*g, training ? train : CompileOptions{});
      ASSERT_TRUE(ref.gpu && moved.gpu);
      ASSERT_TRUE(moved.gpu->writePersistent(ref.gpu->readPersistent()).has_value());
      const size_t bytes = size_t(4 * 5 * sizeof(float));
      void* deviceBuf[2];
      PinnedBuffer pinnedBuf[2];
      for (int i = 0; i < 2; ++i) {
        auto d = (*ctx)->allocateBuffer(bytes, "test input");
        ASSERT_TRUE(d.has_value());
        deviceBuf[i] = *d;
        auto h = (*ctx)->allocatePinned(bytes, "test pinned input");
        ASSERT_TRUE(h.has_value());
        pinnedBuf[i] = std::move(*h);
      }
      for (size_t call = 0; call < order.size(); ++call) {
        SCOPED_TRACE("call " + std::to_string(call));
        TensorMap feed = test::randomInputs(*ref.gpu->program().graph, uint64_t(40 + call));
        if (training) {
          feed["labels"] = Tensor::fromDoubles(DType::I64, {4}, std::vector<double>{0, 2, 1, double(call % 3)});
          feed["step"] = Tensor::fromDoubles(DType::F32, {}, std::vector<double>{double(call + 1)});
          feed["lr"] = Tensor::fromDoubles(DType::F64, {}, std::vector<double>{1e-3});
        }
        const Tensor& x = feed.at("x");
        ASSERT_EQ(x.byteSize(), bytes);
        TensorMap movedFeed = feed;
        switch (order[call]) {
          case From::Pageable: break;
          case From::DeviceA:
          case From::DeviceB: {
            void* d = deviceBuf[order[call] == From::DeviceB];
            ASSERT_TRUE((*ctx)->copyToDevice(d, x.raw(), bytes, "test upload").has_value());
            ASSERT_TRUE((*ctx)->synchronize("test upload").has_value());
            movedFeed["x"] = Tensor::onDevice(x.type(), d);
            break;
          }
          case From::PinnedA:
          case From::PinnedB: {
            PinnedBuffer& h = pinnedBuf[order[call] == From::PinnedB];
            std::memcpy(h.data(), x.raw(), bytes);
            movedFeed["x"] = Tensor::view(x.type(), h.data());
            break;
          }
        }
        auto want = ref.gpu->run(feed);
        auto got = moved.gpu->run(movedFeed);
        ASSERT_TRUE(want.has_value()) << want.error().message();
        ASSERT_TRUE(got.has_value()) << got.error().message();
        ASSERT_EQ(got->size(), want->size());
        for (const auto& [name, t] : *want)
          EXPECT_EQ(std::memcmp(got->at(name).raw(), t.raw(), t.byteSize()), 0) << name;
        EXPECT_TRUE(moved.gpu->replaysGraph()) << moved.gpu->graphCaptureError();
        const bool onGpu = order[call] == From::DeviceA || order[call] == From::DeviceB;
        const bool gaveUp = order.size() > 7 && call >= 8;  // past kMaxRebinds address changes
        EXPECT_EQ(moved.gpu->inputsReadInPlace(),
                  !training && onGpu && !gaveUp ? std::vector<std::string>{"x"} : std::vector<std::string>{});
        const bool pinned = order[call] == From::PinnedA || order[call] == From::PinnedB;  // pinnedCopyInBytes
        EXPECT_EQ(moved.gpu->inputsCopiedIn(),
                  !training && pinned ? std::vector<std::string>{"x"} : std::vector<std::string>{});
      }
      TensorMap a = ref.gpu->readPersistent(), b = moved.gpu->readPersistent();
      for (const auto& [name, t] : a) EXPECT_EQ(std::memcmp(b.at(name).raw(), t.raw(), t.byteSize()), 0) << name;
      for (void* d : deviceBuf) ASSERT_TRUE((*ctx)->freeBuffer(d).has_value());
    }
}

// pinnedCopyInBytes: the seed CNN's u8 images in mapped page-locked host memory, at most that
// many bytes, are copied in by the step's first launch (shoal_copy_in, in the replayed graph):
// the same bits as the DMA copy and as pageable input, call after call, with the buffer's
// contents changing between calls and the buffer itself changing (the graph captured again); a
// larger input or a pageable one is copied as ever, and other entry points (timeStepMs) use
// the input's own buffer as it is.
TEST(CudaExecutor, SmallPinnedInputsCopiedInByAKernelKeepTheirBits) {
  SHOAL_REQUIRE_GPU();
  auto ctx = CudaContext::create();
  ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  for (int64_t batch : {1, 64}) {
    SCOPED_TRACE(batch);
    const int64_t bytes = batch * 28 * 28;
    std::unique_ptr<CudaExecutable> exes[2];  // copied by DMA, copied in by a kernel
    for (int c = 0; c < 2; ++c) {
      auto g = rebatchGraph(*pipeline->model, batch);
      ASSERT_TRUE(g.has_value()) << g.error().message();
      auto program = compileProgram(std::move(*g), CompileOptions{});
      ASSERT_TRUE(program.has_value()) << program.error().message();
      CudaExecutableOptions o = CudaExecutableOptions::fromEnvironment();
      o.pinnedCopyInBytes = c == 0 ? 0 : 64 * 28 * 28;
      auto exe = CudaExecutable::create(std::move(*program), o);
      ASSERT_TRUE(exe.has_value()) << exe.error().message();
      exes[c] = std::move(*exe);
      exes[c]->initializeParameters(5);
    }
    PinnedBuffer pinned[2];
    for (auto& b : pinned) {
      auto h = (*ctx)->allocatePinned(size_t(bytes), "test pinned images");
      ASSERT_TRUE(h.has_value()) << h.error().message();
      b = std::move(*h);
    }
    std::mt19937 rng{11};
    for (int call = 0; call < 5; ++call) {
      SCOPED_TRACE(call);
      TensorMap feed;
      feed["x"] = Tensor(DType::U8, {batch, 1, 28, 28});
      for (int64_t i = 0; i < bytes; ++i) feed["x"].set(i, double(rng() % 256));
      PinnedBuffer& buf = pinned[call == 3];  // calls 3 and 4 from the other buffer and back
      std::memcpy(buf.data(), feed["x"].raw(), size_t(bytes));
      TensorMap pinnedFeed = {{"x", Tensor::view(feed["x"].type(), buf.data())}};
      auto want = exes[0]->run(feed);
      ASSERT_TRUE(want.has_value()) << want.error().message();
      for (int c = 0; c < 2; ++c) {
        auto got = exes[c]->run(pinnedFeed);
        ASSERT_TRUE(got.has_value()) << got.error().message();
        for (const auto& [name, t] : *want)
          EXPECT_EQ(std::memcmp(got->at(name).raw(), t.raw(), t.byteSize()), 0) << name << ", configuration " << c;
        EXPECT_EQ(exes[c]->inputsCopiedIn(), c == 1 ? std::vector<std::string>{"x"} : std::vector<std::string>{});
        EXPECT_TRUE(exes[c]->inputsReadInPlace().empty());
        EXPECT_TRUE(exes[c]->replaysGraph()) << exes[c]->graphCaptureError();
      }
      if (call < 4) continue;
      // Pageable memory is copied through the staging buffer.
      auto pageable = exes[1]->run(feed);
      ASSERT_TRUE(pageable.has_value()) << pageable.error().message();
      EXPECT_TRUE(exes[1]->inputsCopiedIn().empty());
      for (const auto& [name, t] : *want)
        EXPECT_EQ(std::memcmp(pageable->at(name).raw(), t.raw(), t.byteSize()), 0) << name;
      // Back to the pinned buffer, then a step timed on the input's own buffer: no copy in.
      ASSERT_TRUE(exes[1]->run(pinnedFeed).has_value());
      EXPECT_EQ(exes[1]->inputsCopiedIn(), std::vector<std::string>{"x"});
      auto ms = exes[1]->timeStepMs(2);
      ASSERT_TRUE(ms.has_value()) << ms.error().message();
      EXPECT_TRUE(exes[1]->inputsCopiedIn().empty());
      // Dropping the copy dropped the graph; timeStepMs captured it again, so it timed a replay.
      EXPECT_TRUE(exes[1]->replaysGraph());
      auto again = exes[1]->run(pinnedFeed);
      ASSERT_TRUE(again.has_value()) << again.error().message();
      for (const auto& [name, t] : *want)
        EXPECT_EQ(std::memcmp(again->at(name).raw(), t.raw(), t.byteSize()), 0) << name;
    }
  }
  // Over the limit: copied.
  auto g65 = rebatchGraph(*pipeline->model, 65);
  ASSERT_TRUE(g65.has_value()) << g65.error().message();
  auto program = compileProgram(std::move(*g65), CompileOptions{});
  ASSERT_TRUE(program.has_value()) << program.error().message();
  CudaExecutableOptions o = CudaExecutableOptions::fromEnvironment();
  o.pinnedCopyInBytes = 64 * 28 * 28;
  auto big = CudaExecutable::create(std::move(*program), o);
  ASSERT_TRUE(big.has_value()) << big.error().message();
  (*big)->initializeParameters(5);
  auto h = (*ctx)->allocatePinned(65 * 28 * 28, "test pinned images");
  ASSERT_TRUE(h.has_value());
  std::memset(h->data(), 7, 65 * 28 * 28);
  auto out = (*big)->run({{"x", Tensor::view(TensorType{DType::U8, {65, 1, 28, 28}}, h->data())}});
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_TRUE((*big)->inputsCopiedIn().empty());
}

// An inference program's small outputs are written by their kernels straight into pinned
// host memory: the same bits as with the copy after the step (hostOutputs off), run after
// run, from readValue too. Outputs over 64 KB, and every output of a training step (its
// accumulation reads them on the GPU), stay in GPU memory.
TEST(CudaExecutor, SmallInferenceOutputsWrittenIntoHostMemoryKeepTheirBits) {
  SHOAL_REQUIRE_GPU();
  CudaExecutableOptions copied;
  copied.hostOutputs = false;
  for (int64_t batch : {4, 6000}) {
    SCOPED_TRACE(batch);
    auto g = tinyClassifier(batch);
    Pair direct = makePair(*g, CompileOptions{});
    Pair viaCopy = makePair(*g, CompileOptions{}, copied);
    ASSERT_TRUE(direct.gpu && viaCopy.gpu);
    // 4 x 3 floats: written into host memory; 6000 x 3 (72,000 bytes): copied.
    EXPECT_EQ(direct.gpu->hostWrittenOutputs(), batch == 4 ? std::vector<std::string>{"logits"}
                                                           : std::vector<std::string>{});
    EXPECT_TRUE(viaCopy.gpu->hostWrittenOutputs().empty());
    for (int run = 0; run < 3; ++run) {
      TensorMap feed = test::randomInputs(*g, uint64_t(60 + run));
      auto want = direct.cpu->run(feed);
      auto a = direct.gpu->run(feed), b = viaCopy.gpu->run(feed);
      ASSERT_TRUE(want && a && b);
      EXPECT_EQ(std::memcmp(a->at("logits").raw(), b->at("logits").raw(), b->at("logits").byteSize()), 0) << run;
      EXPECT_TRUE(gpuCloseTo("logits", a->at("logits"), want->at("logits"), Tolerance{}));
      auto read = direct.gpu->readValue(direct.gpu->program().graph->outputValue("logits"));
      ASSERT_TRUE(read.has_value()) << read.error().message();
      EXPECT_EQ(std::memcmp(read->raw(), a->at("logits").raw(), read->byteSize()), 0);
    }
  }
  TrainConfig cfg;
  cfg.optimizer = "adam";
  CompileOptions train;
  train.train = &cfg;
  auto g = tinyClassifier(4);
  Pair training = makePair(*g, train);
  ASSERT_TRUE(training.gpu);
  EXPECT_TRUE(training.gpu->hostWrittenOutputs().empty());
}

}  // namespace
}  // namespace shoal
