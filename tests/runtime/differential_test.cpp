// The differential check: the float64 twin of a graph, node-by-node comparison against it, a
// planted wrong kernel found at its node, and `shoal run --check` end to end.
#include "runtime/differential.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "codegen/cuda_codegen.h"
#include "frontend/pipeline_loader.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/precision.h"
#include "runtime/cuda/device.h"
#include "test_util.h"

namespace shoal {
namespace {

std::unique_ptr<Graph> parse(const std::string& text) {
  DiagnosticEngine diags;
  auto g = parseGraph(text, "d.ir", diags);
  EXPECT_TRUE(g && !diags.hasErrors()) << diags.render();
  return g;
}

// x -> relu -> dense(w) -> y; argmax and accuracy-free, with a cast of the labels-like input.
const char* kModel = R"(graph m {
  %x = input() {name="x"} : f32[2,3]
  %w = param() {init="glorot_uniform"} : f32[4,3]
  %h = relu(%x) : f32[2,3] loc("m.mmd":3:5 node="h")
  %y = dense(%h, %w) : f32[2,4] loc("m.mmd":4:5 node="y")
  %k = argmax(%y) {axis=-1} : i64[2] loc("m.mmd":5:5 node="k")
  %c = cast(%k) {dtype="f32"} : f32[2] loc("m.mmd":6:5 node="c")
  output(%y) {name="y"}
  output(%c) {name="c"}
}
)";

// kModel with its weight computed from the parameter (a prepare step on the GPU, its value in the
// prepared region: CudaModuleSource::hoisted).
const char* kDerived = R"(graph m {
  %x = input() {name="x"} : f32[2,3]
  %w = param() {init="glorot_uniform"} : f32[4,3]
  %wn = neg(%w) : f32[4,3]
  %h = relu(%x) : f32[2,3]
  %y = dense(%h, %wn) : f32[2,4]
  output(%y) {name="y"}
}
)";

Program compileSeparate(std::unique_ptr<Graph> g) {
  CompileOptions opts;
  opts.planner = PlannerOptions{.inPlace = false, .reuse = false};
  auto p = compileProgram(std::move(g), opts);
  EXPECT_TRUE(p) << (p ? "" : p.error().str());
  return p ? std::move(*p) : Program{};
}

TEST(PromoteToF64, FloatsBecomeF64AndFixedTypesStay) {
  auto g = parse(kModel);
  auto p = promoteFloatsToF64(*g);
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ((*p)->findValue("x")->type().str(), "f64[2,3]");
  EXPECT_EQ((*p)->findValue("w")->type().str(), "f64[4,3]");
  EXPECT_EQ((*p)->findValue("y")->type().str(), "f64[2,4]");
  EXPECT_EQ((*p)->findValue("k")->type().str(), "i64[2]") << "argmax fixes i64";
  EXPECT_EQ((*p)->findValue("c")->type().str(), "f64[2]") << "a cast to f32 becomes a cast to f64";
  EXPECT_EQ((*p)->findValue("c")->def()->attrs().getString("dtype"), "f64");
  ASSERT_EQ((*p)->size(), g->size());
  for (size_t i = 0; i < g->size(); ++i) EXPECT_EQ((*p)->nodes()[i]->opName(), g->nodes()[i]->opName());
  EXPECT_EQ(g->findValue("y")->type().str(), "f32[2,4]") << "the original is untouched";
}

TEST(DifferentialChecker, MatchesWithoutAFaultAndFindsAPlantedOne) {
  Tensor x = Tensor::fromDoubles(DType::F32, {2, 3}, std::vector<double>{1.5, -2, 0.25, 3, 0.5, -0.125});
  for (double amount : {0.0, 1e-6, 1e-3}) {
    SCOPED_TRACE(amount);
    auto exe = CpuExecutable::create(compileSeparate(parse(kModel)));
    ASSERT_TRUE(exe) << exe.error().str();
    (*exe)->initializeParameters(7);
    if (amount > 0) (*exe)->setPerturbation("relu", amount);
    auto checker = DifferentialChecker::create(**exe);
    ASSERT_TRUE(checker) << checker.error().str();
    auto div = (*checker)->runAndCheck({{"x", x}}, 1);
    ASSERT_TRUE(div) << div.error().str();
    if (amount < 1e-4) {
      // Below rtol: y·(1 + 1e-6) + 1e-6 is within atol 1e-5 + rtol 1e-4·|y|.
      EXPECT_FALSE(div->has_value()) << (*div)->describe();
      EXPECT_EQ((*checker)->nodesChecked(), 4);  // relu, dense, argmax, cast (sources and outputs compute nothing)
      continue;
    }
    ASSERT_TRUE(div->has_value());
    const Divergence& d = **div;
    EXPECT_EQ(d.step, 1);
    EXPECT_EQ(d.node, "relu 'h'");
    EXPECT_EQ(d.op, "relu");
    EXPECT_EQ(d.value, "h");
    EXPECT_EQ(d.loc.str(), "m.mmd:3:5");
    EXPECT_EQ(d.elements, 6);
    EXPECT_EQ(d.badElements, 6) << "every element moved by at least 1e-3";
    // The worst element (error over tolerance) is the first zero, relu(-2): 0 -> 0.001 against
    // atol 1e-5 (3 -> 3.004 is off by 13 times its tolerance 1e-5 + 1e-4·3, the zero by 100).
    EXPECT_EQ(d.index, "[0,1]");
    EXPECT_NEAR(d.got, 0.001, 1e-9);
    EXPECT_DOUBLE_EQ(d.want, 0.0);
    EXPECT_NEAR(d.error, 0.001, 1e-9);
    EXPECT_DOUBLE_EQ(d.tolerance, 1e-5);
    EXPECT_EQ(d.describe(), "step 1: relu 'h' (m.mmd:3:5), value %h: 6 of 6 elements beyond tolerance; worst at [0,1]: "
                            "device 0.00100000005, float64 0 (error 0.001, tolerance 1e-05)");
  }
}

TEST(DifferentialChecker, ADownstreamNodeIsJudgedOnTheDevicesOwnOperands) {
  // relu is perturbed, so dense sees a perturbed operand on the device; the reference
  // recomputes dense from that same operand, so only relu is blamed. Perturbing dense blames
  // dense (relu, before it, matches).
  auto exe = CpuExecutable::create(compileSeparate(parse(kModel)));
  ASSERT_TRUE(exe);
  (*exe)->initializeParameters(7);
  (*exe)->setPerturbation("dense", 1e-2);
  auto checker = DifferentialChecker::create(**exe);
  ASSERT_TRUE(checker);
  Tensor x = Tensor::fromDoubles(DType::F32, {2, 3}, std::vector<double>{1.5, -2, 0.25, 3, 0.5, -0.125});
  auto div = (*checker)->runAndCheck({{"x", x}}, 4);
  ASSERT_TRUE(div && div->has_value());
  EXPECT_EQ((**div).node, "dense 'y'");
  EXPECT_EQ((**div).step, 4);
}

TEST(DifferentialChecker, RefusesAPlanThatSharesMemory) {
  CompileOptions opts;  // the default planner: in-place results and reuse
  auto p = compileProgram(parse(kModel), opts);
  ASSERT_TRUE(p);
  auto exe = CpuExecutable::create(std::move(*p));
  ASSERT_TRUE(exe);
  auto checker = DifferentialChecker::create(**exe);
  ASSERT_FALSE(checker);
  EXPECT_NE(checker.error().message().find("planned with nothing shared"), std::string::npos);
}

TEST(DifferentialPipeline, TrainingStepsOfTheMlpMatch) {
  DiagnosticEngine diags;
  auto p = loadPipelineFile(test::sourcePath("examples/mlp.mmd"), diags);
  ASSERT_TRUE(p) << diags.render();
  DifferentialOptions opts;
  opts.device = DeviceKind::Cpu;
  opts.steps = 2;
  auto r = checkPipelineAgainstReference(*p, opts);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_FALSE(r->divergence.has_value()) << r->divergence->describe();
  EXPECT_TRUE(r->training);
  EXPECT_EQ(r->steps, 2);
  EXPECT_EQ(r->device, "cpu");
  EXPECT_GT(r->nodesPerStep, 10);
  EXPECT_LT(r->worstRatio, 0.5) << "fp32 kernels are well inside the tolerance: " << r->worstNode;
}

TEST(DifferentialCli, PlantedWrongKernelIsReportedAtItsNode) {
  // A training check (examples/mlp.mmd: SGD with momentum) with relu_grad's kernel off by
  // 1e-3: reported at the relu_grad of node h, step 1, with both values, exit status 1.
  std::string dir = test::tempDir();
  auto r = test::runShell("SHOAL_TEST_PERTURB_OP=relu_grad '" + std::string(SHOAL_CLI_PATH) +
                          "' run examples/mlp.mmd --check --device cpu --report '" + dir + "/r.json'");
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_EQ(r.out, "check: cpu diverges from the float64 interpreter\n");
  EXPECT_NE(r.err.find("examples/mlp.mmd:5:28: error: diverges from float64: step 1: relu_grad 'h', value %h.dense.grad: "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("device 0.00100000005, float64 0 (error 0.001, tolerance 1e-05)"), std::string::npos) << r.err;
  auto j = nlohmann::json::parse(test::readFile(dir + "/r.json"));
  EXPECT_EQ(j["check"]["diverged"], true);
  EXPECT_EQ(j["check"]["divergence"]["node"], "h");
  EXPECT_EQ(j["check"]["divergence"]["op"], "relu_grad");
  EXPECT_EQ(j["check"]["divergence"]["location"], "examples/mlp.mmd:5:28");
  EXPECT_EQ(j["check"]["divergence"]["step"], 1);

  // An optimizer update that writes wrong params: judged by the params it leaves.
  auto adam = test::runShell("SHOAL_TEST_PERTURB_OP=adam_update '" + std::string(SHOAL_CLI_PATH) +
                             "' run examples/mnist_cnn.mmd --check --device cpu --check-steps 1");
  EXPECT_EQ(adam.exitCode, 1) << adam.err;
  EXPECT_NE(adam.err.find("step 1: adam_update 'c1', value %c1.weight: 288 of 288 elements beyond tolerance"),
            std::string::npos)
      << adam.err;

  // Without a fault: exit 0, and the steps asked for.
  auto ok = test::runCli("run examples/mlp.mmd --check --device cpu --check-steps 2");
  EXPECT_EQ(ok.exitCode, 0) << ok.err;
  EXPECT_EQ(ok.out.rfind("check: cpu matches the float64 interpreter (2 training steps, ", 0), 0u) << ok.out;
  auto literal = test::runCli("run examples/conv.mmd --check --device cpu");
  EXPECT_EQ(literal.exitCode, 0) << literal.err;
  EXPECT_EQ(literal.out.rfind("check: cpu matches the float64 interpreter (1 run, ", 0), 0u) << literal.out;
}

// ---- the CUDA path (skipped without a usable GPU) -----------------------------------------

TEST(DifferentialGpu, EveryExampleMatchesTheFloat64Interpreter) {
  if (!test::haveGpu()) GTEST_SKIP() << "no usable GPU: " << probeCudaDevice(0).error().message();
  for (const char* example : {"examples/matmul.mmd", "examples/conv.mmd", "examples/mlp.mmd", "examples/mnist_cnn.mmd"}) {
    SCOPED_TRACE(example);
    DiagnosticEngine diags;
    auto p = loadPipelineFile(test::sourcePath(example), diags);
    ASSERT_TRUE(p) << diags.render();
    DifferentialOptions opts;
    opts.device = DeviceKind::Cuda;
    opts.steps = 3;
    auto r = checkPipelineAgainstReference(*p, opts);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(r->device.rfind("cuda:", 0), 0u) << r->device;
    EXPECT_FALSE(r->divergence.has_value()) << r->divergence->describe();
  }
}

// (What the GPU test below relies on: kDerived's weight is computed by a prepare step.)
TEST(DifferentialChecker, TheDerivedModelsWeightIsHoistedOnTheGpu) {
  Program p = compileSeparate(parse(kDerived));
  ASSERT_TRUE(p.graph);
  auto src = generateCudaSource(p);
  ASSERT_TRUE(src) << src.error().str();
  ASSERT_EQ(src->hoisted.size(), 1u);
  EXPECT_EQ(src->hoisted.begin()->first->name(), "wn");
}

TEST(DifferentialGpu, ReadValueReturnsEveryPlannedValue) {
  // The CUDA readValue against the CPU's on the same no-sharing program: equal within fp32 --
  // a value the prepare steps computed (kDerived's %wn) too.
  if (!test::haveGpu()) GTEST_SKIP() << "no usable GPU: " << probeCudaDevice(0).error().message();
  for (const char* text : {kModel, kDerived}) {
    auto program = [text] { return compileSeparate(parse(text)); };
    auto gpu = createExecutable(program(), DeviceSelection{DeviceKind::Cuda, "cuda", ""});
    auto cpu = CpuExecutable::create(program());
    ASSERT_TRUE(gpu) << gpu.error().str();
    ASSERT_TRUE(cpu);
    (*gpu)->initializeParameters(3);
    (*cpu)->initializeParameters(3);
    Tensor x = Tensor::fromDoubles(DType::F32, {2, 3}, std::vector<double>{1.5, -2, 0.25, 3, 0.5, -0.125});
    ASSERT_TRUE((*gpu)->run({{"x", x}}));
    ASSERT_TRUE((*cpu)->run({{"x", x}}));
    for (Node* n : (*cpu)->graph().nodes())
      for (size_t r = 0; r < n->numResults(); ++r) {
        const Value* v = n->result(r);
        auto g = (*gpu)->readValue((*gpu)->graph().findValue(v->name()));
        ASSERT_TRUE(g) << g.error().str();
        Tensor c = (*cpu)->valueView(v);
        ASSERT_EQ(g->numElements(), c.numElements()) << v->name();
        for (int64_t i = 0; i < c.numElements(); ++i)
          EXPECT_NEAR(g->at(i), c.at(i), 1e-5 + 1e-4 * std::abs(c.at(i))) << v->name();
      }
  }
}

}  // namespace
}  // namespace shoal
