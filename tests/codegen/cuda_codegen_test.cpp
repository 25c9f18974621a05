// Tests of the CUDA codegen, no GPU needed: every example pipeline (inference and training)
// and every op's test graph generate deterministic source with a commented kernel per step,
// and NVRTC compiles it for sm_90 and sm_80; an NVRTC error quotes the generated line.
#include "codegen/cuda_codegen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "codegen/cuda_test_graphs.h"
#include "codegen/nvrtc.h"
#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "test_util.h"

namespace shoal {
namespace {

Program compileOrDie(std::unique_ptr<Graph> g, const CompileOptions& opts) {
  auto p = compileProgram(std::move(g), opts);
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message());
  if (!p) return {};
  return std::move(*p);
}

// IR text compiled with elementwise fusion off, so each op keeps a kernel of its own.
Program compileIrUnfused(const char* text, const char* file) {
  DiagnosticEngine diags;
  auto g = parseGraph(text, file, diags);
  if (!g) throw std::runtime_error(diags.render());
  CompileOptions opts;
  opts.disabledPasses = {"fuse-elementwise"};
  return compileOrDie(std::move(g), opts);
}

// The structural promises of a generated module: same bytes twice, each kernel step's entry
// point defined once after a comment naming its node, the status words sized by the sites.
void expectWellFormed(const Program& program) {
  auto a = generateCudaSource(program);
  ASSERT_TRUE(a.has_value()) << a.error().message();
  auto b = generateCudaSource(program);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->source, b->source) << "codegen is not deterministic";
  EXPECT_EQ(a->kernelNames, b->kernelNames);
  std::set<std::string> names(a->kernelNames.begin(), a->kernelNames.end());
  EXPECT_EQ(names.size(), a->kernelNames.size()) << "kernel names must be unique";
  std::set<std::string> launched;
  for (const CudaStep& s : a->steps) {
    ASSERT_NE(s.node, nullptr);
    if (s.kind != CudaStepKind::Kernel) continue;
    // A kernel whose text repeats an earlier step's launches that one (shareKernels): defined
    // once, where the first step that launches it is, and a comment in the later node's place.
    const bool sharedLaunch = s.parts.empty() && !launched.insert(s.kernel).second;
    if (sharedLaunch) {
      EXPECT_NE(a->source.find(": the same kernel as " + s.kernel + ", launched under its name"), std::string::npos)
          << s.kernel;
      continue;
    }
    std::string def = "void __launch_bounds__(256) " + s.kernel + "(";
    size_t at = a->source.find(def);
    ASSERT_NE(at, std::string::npos) << s.kernel;
    EXPECT_EQ(a->source.find(def, at + 1), std::string::npos) << s.kernel << " defined twice";
    // One pointer argument per parameter (the executor passes exactly these).
    const size_t open = at + def.size(), close = a->source.find(')', open);
    ASSERT_NE(close, std::string::npos);
    const std::string params = a->source.substr(open, close - open);
    EXPECT_EQ(size_t(std::count(params.begin(), params.end(), ',')) + 1, s.args.size()) << s.kernel << "(" << params << ")";
    // Each kernel's text comes after its node's comment block.
    auto expectHeader = [&](const Node* node, size_t at, const std::string& kernel) {
      size_t comment = a->source.rfind("// ---- node ", at);
      ASSERT_NE(comment, std::string::npos) << kernel;
      std::string header = a->source.substr(comment, at - comment);
      EXPECT_NE(header.find(std::string(node->opName())), std::string::npos) << header;
      if (node->numResults()) {
        EXPECT_NE(header.find(node->result()->name()), std::string::npos) << header;
      }
    };
    if (s.parts.empty()) {
      expectHeader(s.node, at, s.kernel);
    } else {  // a grouped launch: each part a body, defined once, after its own node's comment
      EXPECT_NE(a->source.rfind("// One launch, blocks side by side:", at), std::string::npos) << s.kernel;
      EXPECT_EQ(s.node, s.parts.front().node);
      unsigned blocks = 0;
      for (const CudaStep& part : s.parts) {
        const std::string body = "void " + part.kernel + "_body(";
        const size_t bodyAt = a->source.find(body);
        ASSERT_NE(bodyAt, std::string::npos) << part.kernel;
        EXPECT_EQ(a->source.find(body, bodyAt + 1), std::string::npos) << part.kernel << " defined twice";
        EXPECT_EQ(a->source.find("void __launch_bounds__(256) " + part.kernel + "("), std::string::npos)
            << part.kernel << " is also a kernel of its own";
        expectHeader(part.node, bodyAt, part.kernel);
        blocks += part.grid[0];
      }
      EXPECT_EQ(s.grid[0], blocks);
    }
    EXPECT_GE(s.grid[0], 1u);
    EXPECT_GE(s.grid[1], 1u);
    EXPECT_EQ(s.block, 256u);
  }
  EXPECT_EQ(a->statusWords(), 1 + 2 * int64_t(a->errorSites.size()));
  // Every kernel is in exactly one NVRTC unit, which defines it.
  std::map<std::string, int> inUnits;
  for (const CudaUnit& u : a->units)
    for (const std::string& k : u.kernelNames) {
      ++inUnits[k];
      EXPECT_NE(u.source.find("void __launch_bounds__(256) " + k + "("), std::string::npos) << k << " in " << u.name;
    }
  for (const std::string& k : a->kernelNames) EXPECT_EQ(inUnits[k], 1) << k;
  EXPECT_EQ(inUnits.size(), a->kernelNames.size());
}

void expectCompiles(const std::string& source, const std::string& name,
                    std::initializer_list<const char*> archs = {"sm_90", "sm_80"}) {
#if SHOAL_HAVE_CUDA
  for (const char* arch : archs) {
    // Uncached, so NVRTC's log is read: generated code compiles without a warning.
    auto k = compileKernel(KernelSource{name, source}, arch, {}, nullptr);
    EXPECT_TRUE(k.has_value()) << name << " for " << arch << ":\n" << (k ? "" : k.error().message());
    if (k) {
      EXPECT_GT(k->cubin.size(), 1000u);
      EXPECT_EQ(k->log, "") << name << " for " << arch;
    }
  }
#else
  (void)source;
  (void)name;
  (void)archs;
#endif
}

TEST(CudaCodegen, EveryOpHasATestGraphThatGeneratesDeterministicSource) {
  for (DType dt : {DType::F32, DType::F64}) {
    for (OpKind kind : allOps()) {
      SCOPED_TRACE(std::string(opName(kind)) + " " + std::string(dtypeName(dt)));
      auto g = test::buildCudaOpGraph(kind, dt);
      ASSERT_NE(g, nullptr) << "add a case for this op to tests/codegen/cuda_test_graphs.h";
      Program p = compileOrDie(std::move(g), test::opTestCompileOptions());
      ASSERT_TRUE(p.graph);
      expectWellFormed(p);
      // The op itself is in the program and has work on the GPU (sources excepted).
      auto src = generateCudaSource(p);
      ASSERT_TRUE(src.has_value());
      bool hasNode = false;
      for (const Node* n : p.graph->nodes()) hasNode |= n->kind() == kind;
      EXPECT_TRUE(hasNode);
      if (!isSource(kind) && kind != OpKind::Output) {
        bool hasStep = false;
        for (const CudaStep& s : src->steps) hasStep |= s.node->kind() == kind;
        EXPECT_TRUE(hasStep);
      }
    }
  }
}

// fused_mlp's test graph (tests/codegen/cuda_op_cases.cpp) exercises both forms: the "rows"
// case's first product splits into 16 slices, so it runs as tiles then a block a row with no
// product kernel of its own for the second layer; the small unsplit cases run each layer's
// kernels, the hidden layer in scratch.
TEST(CudaCodegen, FusedMlpTakesTheRowKernelWhereTheFirstProductSplits) {
  Program p = compileOrDie(test::buildCudaOpGraph(OpKind::FusedMlp, DType::F32), test::opTestCompileOptions());
  auto src = generateCudaSource(p);
  ASSERT_TRUE(src.has_value());
  std::map<std::string, std::vector<std::string>> kernels;  // node -> its kernels
  for (const CudaStep* s : test::kernelSteps(*src)) kernels[s->node->result()->name()].push_back(s->kernel);
  auto has = [&](const std::string& node, const std::string& part) {
    for (const std::string& k : kernels[node])
      if (k.find(part) != std::string::npos) return true;
    return false;
  };
  ASSERT_EQ(kernels["rows"].size(), 2u) << "tiles, then the row kernel";
  EXPECT_TRUE(has("rows", "_rows"));
  EXPECT_FALSE(has("rows", "_slices"));
  for (const char* node : {"m", "t"}) {
    SCOPED_TRACE(node);
    EXPECT_FALSE(has(node, "_rows"));
    EXPECT_GE(kernels[node].size(), 2u);  // a kernel (or more) a layer
  }
}

TEST(CudaCodegen, AllOpsCompileWithNvrtcForSm90AndSm80) {
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    auto g = test::buildAllOpsGraph(dt);
    ASSERT_NE(g, nullptr);
    Program p = compileOrDie(std::move(g), test::opTestCompileOptions());
    ASSERT_TRUE(p.graph);
    expectWellFormed(p);
    auto src = generateCudaSource(p);
    ASSERT_TRUE(src.has_value()) << src.error().message();
    expectCompiles(src->source, src->name);
  }
}

// The tensor-core convolution (TF32 mma.sync on sm_80 and later; the shuffle form below)
// compiles with NVRTC for each, inside a whole example's training step (whose forward
// convolutions are conv2d nodes; for inference the seed CNN's conv, relu and pool fuse into
// one direct kernel).
TEST(CudaCodegen, TensorCoreConvolutionsCompileWithNvrtc) {
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile("examples/mnist_cnn.mmd", diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  CompileOptions opts;
  opts.train = &*pipeline->train;
  Program p = compileOrDie(pipeline->model->clone(), opts);
  EXPECT_EQ(generateCudaSource(p)->source.find("shoal_warp_mma_tf32(acc"), std::string::npos);
  for (TensorCoreMath math : {TensorCoreMath::Tf32, TensorCoreMath::Bf16, TensorCoreMath::Fp16}) {
    SCOPED_TRACE(std::string(tensorCoreMathName(math)));
    CudaCodegenOptions tc;
    tc.tensorCores = math;
    auto src = generateCudaSource(p, tc);
    ASSERT_TRUE(src.has_value()) << src.error().message();
    EXPECT_NE(src->source.find(math == TensorCoreMath::Tf32 ? "shoal_warp_mma_tf32(acc[i][j], a[i], b[j])"
                                                            : "shoal_warp_mma_16bit(acc[i][j], a, b[j]"),
              std::string::npos);
    expectCompiles(src->source, src->name, {"sm_90", "sm_80", "sm_75"});
    // A training step changes its weights every step: their packing stays in the step.
    EXPECT_EQ(std::count_if(src->steps.begin(), src->steps.end(), [](const CudaStep& s) { return s.prepare; }), 0);
    EXPECT_EQ(src->preparedBytes, 0);
  }
  // Inference packs them once, in a step of its own that the executor runs when the
  // parameters change (a Prepared block, not scratch).
  Program infer = compileOrDie(pipeline->model->clone(), CompileOptions{});
  CudaCodegenOptions tc;
  tc.tensorCores = TensorCoreMath::Tf32;
  auto src = generateCudaSource(infer, tc);
  ASSERT_TRUE(src.has_value()) << src.error().message();
  const auto prepare = std::find_if(src->steps.begin(), src->steps.end(), [](const CudaStep& s) { return s.prepare; });
  ASSERT_NE(prepare, src->steps.end());
  EXPECT_EQ(prepare->args.size(), 2u);
  EXPECT_EQ(prepare->args[1].kind, CudaArgKind::Prepared);
  // 32 filters x 3 kernel rows padded to 8 taps (24 steps, rounded up to 32), fp32.
  EXPECT_EQ(src->preparedBytes, 32 * 32 * 4);
  expectCompiles(src->source, src->name, {"sm_90"});
  // sm_90a's kernels (CudaCodegenOptions::wgmma), for the training step (the three kinds of
  // convolution), compiled for sm_90a, whose PTX issues wgmma.mma_async (the hardware branch,
  // not the emulator's). TF32: warpgroup MMA everywhere, no mma.sync. bfloat16: the forward and
  // data-gradient products on 16-bit wgmma (A from registers, the packed B from the stage), the
  // weight gradient (x and dy gathered) on TF32's wgmma -- or, with wgmmaTf32Gathered16 off, on
  // 16-bit mma.sync.
  EXPECT_EQ(cudaTargetArch(tc, "sm_90"), "sm_90");
  struct WgmmaCase {
    TensorCoreMath math;
    bool tf32WeightGradient;  // CudaCodegenOptions::wgmmaTf32Gathered16
    const char* product;      // the wgmma call in the source
    const char* mmaSync;      // the mma.sync call that must (or must not) remain
    bool keepsMmaSync;
    const char* ptx;          // the instruction in the PTX
    bool compile = true;      // NVRTC and the PTX checks (the 16-bit weight gradient's kernels
                              // are the sm_80 module's and the case before's: source only)
  };
  const char* bf16Product = "shoal_wgmma_16bit_n64(acc[i], a[i], bd, true)";
  const char* bf16MmaSync = "shoal_warp_mma_16bit(acc[i][j], a, b[j], true)";
  const char* bf16Ptx = "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16";
  for (const WgmmaCase& c :
       {WgmmaCase{TensorCoreMath::Tf32, true, "shoal_wgmma_tf32_n64(acc[i]", "shoal_warp_mma_tf32(acc", false,
                  "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32"},
        WgmmaCase{TensorCoreMath::Bf16, true, bf16Product, bf16MmaSync, false, bf16Ptx},
        WgmmaCase{TensorCoreMath::Bf16, false, bf16Product, bf16MmaSync, true, bf16Ptx, false}}) {
    SCOPED_TRACE("wgmma " + std::string(tensorCoreMathName(c.math)) + (c.tf32WeightGradient ? "" : ", 16-bit weight gradient"));
    CudaCodegenOptions wg;
    wg.tensorCores = c.math;
    wg.wgmma = true;
    wg.wgmmaTf32Gathered16 = c.tf32WeightGradient;
    EXPECT_EQ(cudaTargetArch(wg, "sm_90"), "sm_90a");
    auto wsrc = generateCudaSource(p, wg);
    ASSERT_TRUE(wsrc.has_value()) << wsrc.error().message();
    EXPECT_NE(wsrc->source.find(c.product), std::string::npos);
    EXPECT_EQ(wsrc->source.find(c.mmaSync) != std::string::npos, c.keepsMmaSync);
    EXPECT_EQ(wsrc->source.find("shoal_wgmma_tf32_n64(acc[i]") != std::string::npos, c.tf32WeightGradient);
    if (!c.compile) continue;
    expectCompiles(wsrc->source, wsrc->name, {"sm_90a"});
#if SHOAL_HAVE_CUDA
    auto ptx = compileCudaToPtx(wsrc->source, wsrc->name, "sm_90a");
    ASSERT_TRUE(ptx.has_value()) << ptx.error().message();
    EXPECT_NE(ptx->find(c.ptx), std::string::npos);
    EXPECT_NE(ptx->find("fence.proxy.async.shared::cta"), std::string::npos);
#endif
  }
}

// The 16-bit channels-last kernels (CudaCodegenOptions::conv16ChannelsLast) of a whole training
// step and inference program -- examples/resnet_mnist.mmd widened to 64 and 128 filters, so that
// every convolution but the stem takes them -- NVRTC-compiled for sm_90a, whose PTX issues both
// forms of the 16-bit wgmma from shared memory: K-major operands (forwards, data gradients) and
// MN-major ones, transposed (weight gradients).
TEST(CudaCodegen, SixteenBitChannelsLastCompilesToBothWgmmaForms) {
  std::ifstream in(test::sourcePath("examples/resnet_mnist.mmd"));
  std::stringstream text;
  text << in.rdbuf();
  std::string wide = text.str();
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"filters=16", "filters=64"}, {"filters=32", "filters=128"}})
    for (size_t at = wide.find(from); at != std::string::npos; at = wide.find(from, at))
      wide.replace(at, from.size(), to);
  DiagnosticEngine diags;
  auto pipeline = loadPipelineText(wide, "wide_resnet.mmd", diags);
  ASSERT_TRUE(pipeline.has_value()) << diags.render();
  for (bool train : {false, true}) {
    SCOPED_TRACE(train ? "training step" : "inference");
    CompileOptions opts;
    if (train) opts.train = &*pipeline->train;
    Program p = compileOrDie(pipeline->model->clone(), opts);
    CudaCodegenOptions o;
    o.tensorCores = TensorCoreMath::Bf16;
    o.wgmma = true;
    o.conv16ChannelsLast = true;
    auto src = generateCudaSource(p, o);
    ASSERT_TRUE(src.has_value()) << src.error().message();
    EXPECT_NE(src->source.find("_cl16("), std::string::npos);
    EXPECT_NE(src->source.find("shoal_wgmma_ss16_n128(acc[0]"), std::string::npos);
    EXPECT_EQ(src->source.find("shoal_wgmma_ss16mn_n64(acc[0]") != std::string::npos, train);
    expectCompiles(src->source, src->name, {"sm_90a"});
#if SHOAL_HAVE_CUDA
    auto ptx = compileCudaToPtx(src->source, src->name, "sm_90a");
    ASSERT_TRUE(ptx.has_value()) << ptx.error().message();
    EXPECT_NE(ptx->find("p, 1, 1, 0, 0;"), std::string::npos);
    EXPECT_EQ(ptx->find("p, 1, 1, 1, 1;") != std::string::npos, train);
#endif
  }
}

TEST(CudaCodegen, ExamplePipelinesGenerateAndCompile) {
  const std::vector<std::string> files = test::examplePipelines();
  ASSERT_GE(files.size(), 4u);
  for (const std::string& file : files) {
    DiagnosticEngine diags;
    auto pipeline = loadPipelineFile(file, diags);
    ASSERT_TRUE(pipeline.has_value()) << file << "\n" << diags.render();
    for (bool train : {false, true}) {
      if (train && !pipeline->train) continue;
      SCOPED_TRACE(file + (train ? " (training step)" : " (inference)"));
      CompileOptions opts;
      if (train) opts.train = &*pipeline->train;
      Program p = compileOrDie(pipeline->model->clone(), opts);
      ASSERT_TRUE(p.graph);
      expectWellFormed(p);
      auto src = generateCudaSource(p);
      ASSERT_TRUE(src.has_value()) << src.error().message();
      // One architecture: NVRTC takes about a second per source and there are two per
      // example; the source does not depend on the architecture, and every op's kernels
      // compile for sm_80 too (AllOpsCompileWithNvrtcForSm90AndSm80).
      expectCompiles(src->source, src->name, {"sm_90"});
    }
  }
}

// The seed CNN's training step (examples/mnist_cnn.mmd), compiled.
Program mnistTrainingStep() {
  DiagnosticEngine diags;
  auto pipeline = loadPipelineFile(test::sourcePath("examples/mnist_cnn.mmd"), diags);
  EXPECT_TRUE(pipeline.has_value()) << diags.render();
  if (!pipeline) return Program{};
  CompileOptions opts;
  opts.train = &*pipeline->train;
  return compileOrDie(pipeline->model->clone(), opts);
}

// A module's kernels cut into NVRTC units (CudaCodegenOptions::unitBytes): in launch order,
// each kernel in one unit, each unit the prelude and its kernels' definitions (a grouped
// launch with its parts' bodies), units of about equal text; 0 keeps the whole source one unit.
TEST(CudaCodegen, ModulesSplitIntoUnitsThatCompileApart) {
  Program p = mnistTrainingStep();
  ASSERT_TRUE(p.graph);
  CudaCodegenOptions whole;
  whole.unitBytes = 0;
  auto one = generateCudaSource(p, whole);
  ASSERT_TRUE(one.has_value()) << one.error().message();
  ASSERT_EQ(one->units.size(), 1u);
  EXPECT_EQ(one->units[0].source, one->source);
  EXPECT_EQ(one->units[0].name, one->name);
  EXPECT_EQ(one->units[0].kernelNames, one->kernelNames);

  CudaCodegenOptions cut;
  cut.unitBytes = 12 * 1024;
  auto split = generateCudaSource(p, cut);
  ASSERT_TRUE(split.has_value()) << split.error().message();
  EXPECT_EQ(split->source, one->source) << "the whole module's text does not depend on its units";
  const size_t preludeAt = one->source.find("// ---- shoal prelude");
  std::string prelude = one->source.substr(preludeAt, one->source.find("// ---- node ") - preludeAt);
  while (!prelude.empty() && prelude.back() == '\n') prelude.pop_back();  // the node's blank line
  // The kernels' text, apart from the prelude: how many units it makes.
  size_t kernelText = 0;
  std::vector<std::string> inOrder;
  for (const CudaUnit& u : split->units) {
    SCOPED_TRACE(u.name);
    EXPECT_EQ(u.name, split->name + "_u" + std::to_string(&u - split->units.data()));
    ASSERT_NE(u.source.find(prelude), std::string::npos) << "each unit holds the prelude";
    EXPECT_FALSE(u.kernelNames.empty());
    EXPECT_EQ(size_t(std::count_if(u.kernelNames.begin(), u.kernelNames.end(), [&](const std::string& k) {
                return u.source.find("void __launch_bounds__(256) " + k + "(") != std::string::npos;
              })),
              u.kernelNames.size());
    // Nothing but its own kernels: as many __global__ functions as names.
    size_t globals = 0;
    for (size_t at = u.source.find("__global__ void"); at != std::string::npos; at = u.source.find("__global__ void", at + 1))
      ++globals;
    EXPECT_EQ(globals, u.kernelNames.size());
    kernelText += u.source.size() - u.source.find(prelude) - prelude.size();
    inOrder.insert(inOrder.end(), u.kernelNames.begin(), u.kernelNames.end());
  }
  EXPECT_EQ(inOrder, one->kernelNames) << "units follow launch order";
  EXPECT_EQ(split->units.size(), (kernelText + cut.unitBytes - 1) / cut.unitBytes);
  ASSERT_GE(split->units.size(), 3u);
  // About equal: no unit's kernels more than twice an even share (none of these kernels is
  // near the share by itself).
  for (const CudaUnit& u : split->units)
    EXPECT_LT(u.source.size() - u.source.find(prelude) - prelude.size(), 2 * kernelText / split->units.size()) << u.name;
#if SHOAL_HAVE_CUDA
  // Each unit compiles by itself (the prelude is all a kernel needs), without a warning.
  auto compiled = compileCudaUnits(*split, "sm_90", nullptr, 2);
  ASSERT_TRUE(compiled.has_value()) << compiled.error().message();
  ASSERT_EQ(compiled->size(), split->units.size());
  for (const CompiledKernel& c : *compiled) {
    EXPECT_GT(c.cubin.size(), 1000u) << c.name;
    EXPECT_EQ(c.log, "") << c.name;
  }
#endif
}

// The MNIST CNN's training step: what the GPU runs, named in the source and the plan.
// Its six products are cuBLAS calls with smallGemms off, generated kernels by default: four
// tiled (the first dense layer's forward product split over its 5408-long inner dimension,
// its slices added by a second kernel; 32 x 32 tiles, as 64 x 64 ones would be too few for
// the GPU), the two of 640 outputs a warp per output.
TEST(CudaCodegen, MnistTrainingStepProductsAndLabels) {
  Program p = mnistTrainingStep();
  ASSERT_TRUE(p.graph);
  {
    auto generated = generateCudaSource(p);
    ASSERT_TRUE(generated.has_value());
    int gemmKernels = 0, sliceSums = 0, dots = 0, calls = 0;
    for (const CudaStep& s : generated->steps) calls += s.kind == CudaStepKind::Gemm;
    for (const CudaStep* k : test::kernelSteps(*generated)) {
      const CudaStep& s = *k;
      const bool product = s.kernel.ends_with("_gemm");
      gemmKernels += product;
      sliceSums += s.kernel.ends_with("_gemm_slices");
      dots += s.kernel.ends_with("_dot");
      if (product && s.node->kind() == OpKind::FusedDense) {
        EXPECT_EQ(s.grid[0], 4u);   // four 32 x 32 tiles (one 64-tile would leave SMs idle) ...
        EXPECT_EQ(s.grid[1], 85u);  // ... in 85 slices of 64 terms
      }
    }
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(gemmKernels, 4);
    EXPECT_EQ(dots, 2);
    EXPECT_EQ(sliceSums, 1);
    EXPECT_GE(generated->scratchBytes, int64_t(85 * 64 * 64 * 4));
  }
  CudaCodegenOptions cublas;
  cublas.smallGemms = false;
  auto src = generateCudaSource(p, cublas);
  ASSERT_TRUE(src.has_value());
  int gemms = 0, kernels = 0, copies = 0;
  for (const CudaStep& s : src->steps) {
    gemms += s.kind == CudaStepKind::Gemm;
    kernels += s.kind == CudaStepKind::Kernel;
    copies += s.kind == CudaStepKind::Copy;
    if (s.kind == CudaStepKind::Gemm) {
      EXPECT_EQ(s.gemm.dtype, DType::F32);
      EXPECT_TRUE(s.node->kind() == OpKind::Dense || s.node->kind() == OpKind::FusedDense ||
                  s.node->kind() == OpKind::MatMul);
    }
  }
  EXPECT_EQ(gemms, 6);  // two dense layers: forward, dx, dw each
  EXPECT_EQ(kernels, int(src->kernelNames.size()));
  EXPECT_GE(copies, 2);  // flatten and its gradient's reshape
  // The loss and its gradient both check labels; the six Adam updates check the step.
  int labelSites = 0, stepSites = 0;
  for (const CudaErrorSite& e : src->errorSites) {
    labelSites += e.kind == CudaErrorKind::LabelOutOfRange;
    stepSites += e.kind == CudaErrorKind::AdamStep;
    if (e.kind == CudaErrorKind::LabelOutOfRange) {
      EXPECT_EQ(e.cols, 10);
    }
  }
  EXPECT_EQ(labelSites, 2);
  EXPECT_EQ(stepSites, 6);
  // Readable: the conv kernel names its node, pipeline location and IR text.
  EXPECT_NE(src->source.find("// ---- node"), std::string::npos);
  EXPECT_NE(src->source.find("conv2d 'c1' at "), std::string::npos);
  EXPECT_NE(src->source.find("%c1 = fused_conv2d(%pre, %c1.weight, %c1.bias)"), std::string::npos);
  EXPECT_NE(src->source.find("k7_fused_conv2d_c1"), std::string::npos);
  // The launch plan tells views from copies: flatten's result shares the pool's buffer.
  EXPECT_NE(src->source.find("view %f of %p1 (one buffer: nothing copied)"), std::string::npos);
  EXPECT_EQ(src->source.find("//   4. copy %"), std::string::npos);
  // Fusion: the conv's relu is in its kernel, the first dense's bias and relu in cuBLASLt's
  // epilogue (an epilogue kernel after its GEMM with gemmEpilogues off), the second dense's
  // bias too (a bias kernel before it), and the six Adam updates are one horizontally fused
  // kernel.
  int adamKernels = 0, epilogues = 0, reluKernels = 0, ltEpilogues = 0;
  for (const CudaStep& s : src->steps) {
    if (s.kind == CudaStepKind::Gemm && s.node->kind() == OpKind::FusedDense)
      ltEpilogues += s.gemm.bias.value && s.gemm.activation == "relu";
    if (s.kind == CudaStepKind::Gemm && s.node->kind() == OpKind::Dense) ltEpilogues += s.gemm.bias.value != nullptr;
    if (s.kind != CudaStepKind::Kernel) continue;
    adamKernels += s.node->kind() == OpKind::AdamUpdate;
    epilogues += s.node->kind() == OpKind::FusedDense || s.node->kind() == OpKind::Dense;
    reluKernels += s.node->kind() == OpKind::Relu;
  }
  EXPECT_EQ(adamKernels, 1);
  EXPECT_EQ(epilogues, 0);
  EXPECT_EQ(ltEpilogues, 2);
  EXPECT_EQ(reluKernels, 0);
  CudaCodegenOptions noLt = cublas;
  noLt.gemmEpilogues = false;
  auto kernelsAfter = generateCudaSource(p, noLt);
  ASSERT_TRUE(kernelsAfter.has_value());
  for (const CudaStep& s : kernelsAfter->steps) EXPECT_FALSE(s.kind == CudaStepKind::Gemm && s.gemm.hasEpilogue());
  auto named = [](const CudaModuleSource& m, std::string_view suffix) {  // grouped launches' parts too
    const auto steps = test::kernelSteps(m);
    return std::count_if(steps.begin(), steps.end(), [&](const CudaStep* k) { return k->kernel.ends_with(suffix); });
  };
  EXPECT_EQ(named(*kernelsAfter, "_bias"), 1);
  EXPECT_EQ(named(*kernelsAfter, "_epilogue"), 1);
  EXPECT_EQ(named(*src, "_bias") + named(*src, "_epilogue"), 0);
  EXPECT_NE(src->source.find("_adam_update_c1_weight_x6("), std::string::npos);
  CudaCodegenOptions perParameter = cublas;
  perParameter.horizontalUpdates = false;
  auto unfused = generateCudaSource(p, perParameter);
  ASSERT_TRUE(unfused.has_value());
  EXPECT_EQ(unfused->kernelNames.size(), src->kernelNames.size() + 5);
  EXPECT_EQ(unfused->errorSites.size(), src->errorSites.size());
}

// Where the memory plan runs an op in place, the kernel's pointers to the shared buffer lose
// __restrict__ (a false no-alias promise would let the compiler reorder loads and stores);
// every other pointer keeps it.
TEST(CudaCodegen, PointersIntoOneBufferAreNotRestrict) {
  auto g = test::buildInPlaceGraph(DType::F32);
  Program p = compileOrDie(std::move(g), test::inPlaceCompileOptions());
  ASSERT_TRUE(p.graph);
  // Each kernel on its own (grouped launches copy their parts' parameter lists as they are).
  CudaCodegenOptions alone;
  alone.groupKernels = false;
  auto src = generateCudaSource(p, alone);
  ASSERT_TRUE(src.has_value()) << src.error().message();
  auto valueNamed = [&](const std::string& name) -> const Value* {
    for (const Node* n : p.graph->nodes())
      for (size_t r = 0; r < n->numResults(); ++r)
        if (n->result(r)->name() == name) return n->result(r);
    return nullptr;
  };
  // The test graph is built so that the planner aliases these (else it tests nothing).
  ASSERT_TRUE(valueNamed("inplace0") && valueNamed("t") && valueNamed("inplace1") && valueNamed("u"));
  EXPECT_EQ(p.plan.bufferOf(valueNamed("inplace0")), p.plan.bufferOf(valueNamed("t")));
  EXPECT_EQ(p.plan.bufferOf(valueNamed("inplace1")), p.plan.bufferOf(valueNamed("u")));
  EXPECT_EQ(p.plan.bufferOf(valueNamed("inplace_relu")), p.plan.bufferOf(valueNamed("r")));
  auto signature = [&](const std::string& kernel) {
    size_t at = src->source.find(" " + kernel + "(");
    EXPECT_NE(at, std::string::npos) << kernel;
    if (at == std::string::npos) return std::string();
    return src->source.substr(at, src->source.find('{', at) - at);
  };
  std::string k0, k1, kr;
  for (const CudaStep& s : src->steps) {
    if (s.kind != CudaStepKind::Kernel || !s.node->numResults()) continue;
    if (s.node->result()->name() == "inplace0") k0 = signature(s.kernel);
    if (s.node->result()->name() == "inplace1") k1 = signature(s.kernel);
    if (s.node->result()->name() == "inplace_relu") kr = signature(s.kernel);
  }
  EXPECT_NE(k0.find("(const float* a0, const float* __restrict__ a1, float* y)"), std::string::npos) << k0;
  EXPECT_NE(k1.find("(const float* __restrict__ a0, const float* a1, float* y)"), std::string::npos) << k1;
  EXPECT_NE(kr.find("(const float* a0, float* y)"), std::string::npos) << kr;
  // All operands are read into registers before the element is written.
  size_t body = src->source.find(k0);
  ASSERT_NE(body, std::string::npos);
  size_t load0 = src->source.find("const float r0 = a0[i];", body), load1 = src->source.find("const float r1 = a1[i];", body);
  size_t store = src->source.find("y[i] = ", body);
  EXPECT_LT(load0, store);
  EXPECT_LT(load1, store);
  expectCompiles(src->source, src->name);
}

// Runs of updates with equal hyperparameters (and one step, rate and scale operand) become one kernel each;
// a lone update keeps its own; every member keeps its comment and error site.
TEST(CudaCodegen, OptimizerUpdatesFuseHorizontally) {
  for (DType dt : {DType::F32, DType::F64}) {
    SCOPED_TRACE(dtypeName(dt));
    Program p = compileOrDie(test::buildUpdateGroupGraph(dt), test::opTestCompileOptions());
    ASSERT_TRUE(p.graph);
    expectWellFormed(p);
    auto src = generateCudaSource(p);
    ASSERT_TRUE(src.has_value()) << src.error().message();
    std::vector<std::string> kernels;
    for (const CudaStep& s : src->steps)
      if (s.kind == CudaStepKind::Kernel) kernels.push_back(s.kernel);
    ASSERT_EQ(kernels.size(), 3u) << src->source;
    EXPECT_NE(kernels[0].find("adam_update_p0_x5"), std::string::npos) << kernels[0];
    EXPECT_NE(kernels[1].find("sgd_momentum_update_s0_x3"), std::string::npos) << kernels[1];
    EXPECT_NE(kernels[2].find("sgd_update_lone"), std::string::npos) << kernels[2];
    EXPECT_EQ(src->errorSites.size(), 5u);
    for (const std::string name : {"p0", "p1", "p2", "p3", "p4", "s0", "s1", "s2"}) {
      const bool commented = src->source.find("// adam_update(%" + name + ",") != std::string::npos ||
                             src->source.find("// sgd_momentum_update(%" + name + ",") != std::string::npos;
      EXPECT_TRUE(commented) << "no comment for the update of " << name;
    }
    CudaCodegenOptions off;
    off.horizontalUpdates = false;
    auto perParameter = generateCudaSource(p, off);
    ASSERT_TRUE(perParameter.has_value());
    EXPECT_EQ(perParameter->kernelNames.size(), 9u);
    EXPECT_EQ(perParameter->errorSites.size(), 5u);
    expectCompiles(src->source, src->name);
  }
}

TEST(CudaCodegen, UnprintableNamesStayInComments) {
  // A value name ending in a backslash must not splice the next source line into a comment.
  test::OpGraphBuilder b("names", DType::F32);
  Value* x = b.input("x", Shape{4});
  Attrs none;
  Node* relu = b.graph().addNode(OpKind::Relu, {x}, none, {{"odd\\", TensorType{DType::F32, {4}}}});
  b.output(relu->result());
  Program p = compileOrDie(b.take(), test::opTestCompileOptions());
  ASSERT_TRUE(p.graph);
  auto src = generateCudaSource(p);
  ASSERT_TRUE(src.has_value());
  for (size_t pos = 0; (pos = src->source.find("\\\n", pos)) != std::string::npos; ++pos) {
    ADD_FAILURE() << "a line ends in a backslash at byte " << pos;
  }
  expectCompiles(src->source, src->name);
}

#if SHOAL_HAVE_CUDA
TEST(CudaCodegen, NvrtcErrorsQuoteTheGeneratedLine) {
  test::OpGraphBuilder b("broken", DType::F32);
  b.op(OpKind::Relu, {b.input("x", Shape{4})}, {}, "y");
  Program p = compileOrDie(b.take(), test::opTestCompileOptions());
  ASSERT_TRUE(p.graph);
  auto src = generateCudaSource(p);
  ASSERT_TRUE(src.has_value());
  // Break one generated line the way a codegen bug would.
  std::string source = src->source;
  const std::string good = "y[i] = shoal_ew_relu(a0[i]);";
  size_t at = source.find(good);
  ASSERT_NE(at, std::string::npos);
  source.replace(at, good.size(), "y[i] = shoal_no_such_function(a0[i]);");
  int line = 1 + int(std::count(source.begin(), source.begin() + ptrdiff_t(at), '\n'));
  auto cubin = compileCuda(source, src->name, "sm_90");
  ASSERT_FALSE(cubin.has_value());
  const std::string& msg = cubin.error().message();
  EXPECT_NE(msg.find("NVRTC could not compile kernel 'broken' for sm_90"), std::string::npos) << msg;
  EXPECT_NE(msg.find("broken.cu(" + std::to_string(line) + "): error"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(line) + " |     y[i] = shoal_no_such_function(a0[i]);"), std::string::npos) << msg;
}

TEST(CudaCodegen, CompileProgramSummarizesAndUsesTheCache) {
  const char* old = std::getenv("SHOAL_CACHE_DIR");
  const std::string saved = old ? old : "";
  const std::string dir = test::tempDir();
  ::setenv("SHOAL_CACHE_DIR", dir.c_str(), 1);
  test::OpGraphBuilder b("cached", DType::F32);
  b.op(OpKind::Tanh, {b.input("x", Shape{4})}, {}, "y");
  Program p = compileOrDie(b.take(), test::opTestCompileOptions());
  ASSERT_TRUE(p.graph);
  auto first = compileCudaProgram(p, "sm_90", /*verbose=*/true);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  EXPECT_NE(first->find("cached: 1 kernels and 0 cuBLAS calls in 1 translation unit"), std::string::npos) << *first;
  EXPECT_NE(first->find("NVRTC"), std::string::npos) << *first;
  EXPECT_NE(first->find("0 hits, 1 misses"), std::string::npos) << *first;
  auto second = compileCudaProgram(p, "sm_90", /*verbose=*/true);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->find("kernel cache hit"), std::string::npos) << *second;
  EXPECT_NE(second->find("1 hits, 0 misses"), std::string::npos) << *second;
  if (old)
    ::setenv("SHOAL_CACHE_DIR", saved.c_str(), 1);
  else
    ::unsetenv("SHOAL_CACHE_DIR");
}
#endif

// Every generated kernel waits for the kernel before it first (the executor may launch it
// while that one runs: programmatic stream serialization).
TEST(CudaCodegen, EveryKernelWaitsForThePreviousOneFirst) {
  for (DType dt : {DType::F32, DType::F64}) {
    auto g = test::buildAllOpsGraph(dt);
    ASSERT_NE(g, nullptr);
    auto program = compileProgram(g->clone(), test::opTestCompileOptions());
    ASSERT_TRUE(program.has_value()) << program.error().str();
    auto src = generateCudaSource(*program);
    ASSERT_TRUE(src.has_value()) << src.error().message();
    size_t kernels = 0, waiting = 0;
    for (size_t at = 0; (at = src->source.find("__global__ void", at)) != std::string::npos; ++at) {
      ++kernels;
      const size_t open = src->source.find(") {\n", at);
      ASSERT_NE(open, std::string::npos);
      waiting += src->source.compare(open + 4, 33, "  shoal_after_previous_kernel();\n") == 0;
    }
    EXPECT_EQ(kernels, src->kernelNames.size());
    EXPECT_EQ(waiting, kernels);
  }
}

// The seed CNN's training step: the kernels that read the logits (loss, accuracy, the loss's
// gradient) share a launch, and so do each dense layer's three backward products and sums;
// relu_grad, which reads what the group before it wrote, starts a launch of its own.
TEST(CudaCodegen, IndependentKernelsShareALaunch) {
  Program p = mnistTrainingStep();
  auto grouped = generateCudaSource(p);
  ASSERT_TRUE(grouped.has_value()) << grouped.error().message();
  CudaCodegenOptions off;
  off.groupKernels = false;
  auto alone = generateCudaSource(p, off);
  ASSERT_TRUE(alone.has_value());
  std::vector<std::vector<std::string>> groups;
  for (const CudaStep& s : grouped->steps) {
    if (s.parts.empty()) continue;
    groups.emplace_back();
    for (const CudaStep& part : s.parts) groups.back().push_back(std::string(part.node->opName()));
  }
  const std::vector<std::vector<std::string>> want = {
      {"softmax_cross_entropy", "accuracy", "softmax_cross_entropy_grad"},
      {"matmul", "matmul", "sum_to"},
      {"matmul", "matmul", "sum_to"}};
  EXPECT_EQ(groups, want);
  EXPECT_EQ(grouped->kernelNames.size() + 6, alone->kernelNames.size());
  // The same kernels run either way, in the same order.
  std::vector<std::string> a, b;
  for (const CudaStep* k : test::kernelSteps(*grouped)) a.push_back(k->kernel);
  for (const CudaStep* k : test::kernelSteps(*alone)) b.push_back(k->kernel);
  EXPECT_EQ(a, b);
}

// Independence is decided on memory, not on values: exp writes v where the plan put t, which
// sum_to reads just before, so the two never share a launch though no value links them.
// Steps whose kernels are the same text (two blocks of the same shapes) launch one kernel,
// defined once; with shareKernels off each has its own.
TEST(CudaCodegen, IdenticalKernelsAreEmittedOnce) {
  const char* text = R"(graph repeat {
  %x = input() {name="x"} : f32[4,16]
  %a = tanh(%x) : f32[4,16]
  %b = tanh(%a) : f32[4,16]
  %c = tanh(%b) : f32[4,16]
  %d = sigmoid(%c) : f32[4,16]
  output(%d) {name="d"}
})";
  Program p = compileIrUnfused(text, "repeat.ir");
  CudaCodegenOptions off;
  off.shareKernels = false;
  auto apart = generateCudaSource(p, off);
  auto shared = generateCudaSource(p);
  ASSERT_TRUE(apart && shared);
  std::vector<std::string> launches, apartLaunches;
  for (const CudaStep& s : shared->steps)
    if (s.kind == CudaStepKind::Kernel) launches.push_back(s.kernel);
  for (const CudaStep& s : apart->steps)
    if (s.kind == CudaStepKind::Kernel) apartLaunches.push_back(s.kernel);
  ASSERT_EQ(apartLaunches.size(), 4u);
  // b and c are computed in place (the plan puts each in its operand's buffer: pointers not
  // restrict), so c's tanh is b's text and launches b's kernel; a's reads the input through
  // restrict pointers: another text, a kernel of its own.
  ASSERT_EQ(launches.size(), 4u);
  EXPECT_NE(launches[1], launches[0]);
  EXPECT_EQ(launches[2], launches[1]);
  EXPECT_EQ(launches[1], apartLaunches[1]);
  EXPECT_EQ(shared->kernelNames, (std::vector<std::string>{launches[0], launches[1], launches[3]}));
  EXPECT_EQ(apart->kernelNames, apartLaunches);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(shared->steps[i].args.size(), apart->steps[i].args.size());
  EXPECT_NE(shared->source.find("// " + apartLaunches[2] + ": the same kernel as " + launches[1]), std::string::npos);
  EXPECT_EQ(shared->source.find("__launch_bounds__(256) " + apartLaunches[2] + "("), std::string::npos);
  EXPECT_NE(apart->source.find("__launch_bounds__(256) " + apartLaunches[2] + "("), std::string::npos);
  EXPECT_LT(shared->source.size(), apart->source.size());
}

TEST(CudaCodegen, KernelsSharingMemoryDoNotShareALaunch) {
  const char* text = R"(graph reuse {
  %x1 = input() {name="x1"} : f32[4,16]
  %x2 = input() {name="x2"} : f32[4,16]
  %y = input() {name="y"} : f32[4,16]
  %t = add(%x1, %x2) : f32[4,16]
  %u = sum_to(%t) {shape=[16]} : f32[16]
  %v = exp(%y) : f32[4,16]
  %r = add(%v, %x1) : f32[4,16]
  %r2 = add(%r, %x2) : f32[4,16]
  output(%u) {name="u"}
  output(%r2) {name="r2"}
})";
  Program p = compileIrUnfused(text, "reuse.ir");
  auto valueNamed = [&](const std::string& name) -> const Value* {
    for (const Node* n : p.graph->nodes())
      if (n->numResults() && n->result()->name() == name) return n->result();
    return nullptr;
  };
  ASSERT_TRUE(valueNamed("t") && valueNamed("v"));
  // The premise: the planner reuses t's buffer for v (else this tests nothing).
  ASSERT_EQ(p.plan.at(valueNamed("t")).offset, p.plan.at(valueNamed("v")).offset);
  auto src = generateCudaSource(p);
  ASSERT_TRUE(src.has_value()) << src.error().message();
  for (const CudaStep& s : src->steps) {
    std::set<std::string> names;
    for (const CudaStep& part : s.parts) names.insert(part.node->result()->name());
    EXPECT_FALSE(names.count("u") && names.count("v")) << s.kernel;
  }
  // Each on its own, as the plan orders them.
  std::vector<std::string> launches;
  for (const CudaStep& s : src->steps) launches.push_back(s.kernel);
  // (r2's add is r's kernel, the same text: CudaCodegenOptions::shareKernels.)
  EXPECT_EQ(launches, (std::vector<std::string>{"k3_add_t", "k4_sum_to_u", "k5_exp_v", "k6_add_r", "k6_add_r"}));
}

}  // namespace
}  // namespace shoal
