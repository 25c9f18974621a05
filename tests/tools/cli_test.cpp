// The `shoal` CLI contract: commands, exit statuses, outputs, reports, round trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include <shoal/shoal.h>

#include "runtime/cuda/device.h"
#include "test_util.h"

namespace fs = std::filesystem;
using shoal::test::runCli;
using shoal::test::readFile;
using shoal::test::writeFile;

namespace {

const std::vector<std::string> kCliExamples = {"examples/seed_pipeline.mmd", "examples/mnist_cnn.mmd", "examples/mlp.mmd",
                                            "examples/matmul.mmd", "examples/conv.mmd", "examples/attention.mmd"};

TEST(Cli, HelpOnEveryCommand) {
  for (std::string cmd : {"", "check ", "dump ", "compile ", "run "}) {
    auto r = runCli(cmd + "--help");
    EXPECT_EQ(r.exitCode, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd << r.out;
  }
}

TEST(Cli, BadUsageExitsOne) {
  EXPECT_EQ(runCli("").exitCode, 1);
  EXPECT_EQ(runCli("frobnicate").exitCode, 1);
  EXPECT_EQ(runCli("run examples/matmul.mmd --bogus").exitCode, 1);
  EXPECT_EQ(runCli("dump examples/matmul.mmd --format svg").exitCode, 1);
  auto r = runCli("run examples/matmul.mmd --device tpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: --device must be auto, cpu or gpu (or cuda), got 'tpu'\n");
  r = runCli("dump examples/matmul.mmd --after bogus");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("unknown pass 'bogus'"), std::string::npos) << r.err;
  // The list names every registered pass and the groups.
  EXPECT_NE(r.err.find("(passes: infer-shapes, canonicalize, training-forms, fold-constants, autodiff, fold-batchnorm, "
                       "fuse-conv-activation, fuse-conv-pool, fuse-pool-relu-grad, fuse-dense-activation, fuse-dense-pair, "
                       "fuse-transpose-matmul, "
                       "fuse-elementwise, fuse-conv-prologue, fuse-conv-epilogue, dce, "
                       "schedule; "
                       "groups: fold, fuse)"),
            std::string::npos)
      << r.err;
  r = runCli("dump examples/matmul.mmd --after autodiff");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: pass 'autodiff' is not part of this pipeline (autodiff runs only when training: --train)\n");
  // Disabling a training-only pass is valid for an inference dump (nothing to disable there).
  EXPECT_EQ(runCli("dump examples/matmul.mmd --disable-pass autodiff").exitCode, 0);
}

TEST(Cli, CheckExamples) {
  for (const auto& ex : kCliExamples) {
    auto r = runCli("check " + ex);
    EXPECT_EQ(r.exitCode, 0) << ex << r.err;
    EXPECT_NE(r.out.find(ex + ": ok"), std::string::npos) << r.out;
  }
}

TEST(Cli, RunMatmulAndConvPrintTheSeedsCorrectAnswers) {
  auto r = runCli("run examples/matmul.mmd --device cpu");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "C = [[22,28],[64,73],[106,118]]\n");
  r = runCli("run examples/conv.mmd --device cpu");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "Y = [[[[35,40,45],[60,65,70],[85,90,95]]]]\n");
}

TEST(Cli, RunReportHasDeviceAndOutputs) {
  std::string dir = shoal::test::tempDir();
  auto r = runCli("run examples/matmul.mmd --device cpu --report '" + dir + "/r.json'");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto j = nlohmann::json::parse(readFile(dir + "/r.json"));
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["outputs"]["C"], nlohmann::json::parse("[[22.0,28.0],[64.0,73.0],[106.0,118.0]]"));
}

TEST(Cli, DumpRoundTripsForEveryExample) {
  std::string dir = shoal::test::tempDir();
  for (const auto& ex : kCliExamples) {
    for (std::string train : {"", " --train"}) {
      if (!train.empty() && (ex == "examples/matmul.mmd" || ex == "examples/conv.mmd")) continue;
      auto a = runCli("dump " + ex + train);
      ASSERT_EQ(a.exitCode, 0) << ex << train << a.err;
      writeFile(dir + "/a.ir", a.out);
      auto b = runCli("dump '" + dir + "/a.ir'");
      ASSERT_EQ(b.exitCode, 0) << ex << train << b.err;
      EXPECT_EQ(a.out, b.out) << ex << train;
    }
  }
}

TEST(Cli, DumpFormatsAndPassSelection) {
  auto r = runCli("dump examples/mnist_cnn.mmd --format dot");
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.out.rfind("digraph", 0), 0u) << r.out.substr(0, 100);
  r = runCli("dump examples/mnist_cnn.mmd --format mermaid");
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.out.rfind("flowchart TD", 0), 0u) << r.out.substr(0, 100);
  r = runCli("dump examples/mnist_cnn.mmd --train --after-all");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  for (std::string pass : {"infer-shapes", "canonicalize", "fold-constants", "autodiff", "dce", "schedule"})
    EXPECT_NE(r.out.find("// ---- after " + pass), std::string::npos) << pass;
  r = runCli("dump examples/mnist_cnn.mmd --train --after autodiff");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("adam_update(%c1.weight, %c1.weight.grad, %c1.weight.m, %c1.weight.v, %step, %lr)"), std::string::npos);
  r = runCli("dump examples/mnist_cnn.mmd --train --disable-pass autodiff");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.find("adam_update"), std::string::npos);
  r = runCli("dump examples/mnist_cnn.mmd --memory");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["arena_bytes"].get<int64_t>(), 0);
  EXPECT_GE(j["naive_bytes"].get<int64_t>(), j["peak_live_bytes"].get<int64_t>());
  EXPECT_EQ(j["gpu"]["precision"], "fp32");
  // The GPU module's own memory beside the plan: a bf16 training step on sm_90 splits its
  // weight gradients' reductions into slices summed from scratch; the total is every block.
  r = runCli("dump examples/resnet_mnist.mmd --train --memory --precision bf16 --arch sm_90");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  const auto& gpu = j["gpu"];
  EXPECT_EQ(gpu["precision"], "bf16");
  EXPECT_EQ(gpu["arch"], "sm_90");
  EXPECT_GT(gpu["scratch_bytes"].get<int64_t>(), 0);
  EXPECT_GT(gpu["status_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(gpu["device_bytes"].get<int64_t>(),
            j["arena_bytes"].get<int64_t>() + j["persistent_bytes"].get<int64_t>() +
                gpu["scratch_bytes"].get<int64_t>() + gpu["prepared_bytes"].get<int64_t>() +
                gpu["converted_bytes"].get<int64_t>() + gpu["status_bytes"].get<int64_t>());
  // Inference prepares the convolutions' weights (packed for the tensor cores) once, in a
  // block of its own.
  r = runCli("dump examples/mnist_cnn.mmd --memory --precision tf32 --arch sm_90");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["gpu"]["prepared_bytes"].get<int64_t>(), 0);
  EXPECT_TRUE(nlohmann::json::parse(r.out)["gpu"]["prepared_values"].empty());  // no batch norm to fold
  // resnet_mnist's folded batch norms are computed there too, once (CudaModuleSource::hoisted):
  // listed in program order, a scale's column sharing its scale's block.
  r = runCli("dump examples/resnet_mnist.mmd --memory --precision tf32 --arch sm_90");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  {
    const auto values = nlohmann::json::parse(r.out)["gpu"]["prepared_values"];
    ASSERT_EQ(values.size(), 24u);
    EXPECT_EQ(values[0]["value"], "bn0.fold_scale");
    EXPECT_EQ(values[1]["value"], "bn0.fold_scale_column");
    EXPECT_EQ(values[1]["offset"], values[0]["offset"]);
    for (const auto& v : values) EXPECT_NE(v["value"].get<std::string>().find(".fold_"), std::string::npos) << v;
  }
  // 16-bit channels-last copies (on by default; said here all the same): mobilenet_mnist's training step converts the
  // gradient of its 64-filter pointwise convolution for its data gradient.
  r = shoal::test::runShell("SHOAL_CUDA_CL16=1 '" + std::string(SHOAL_CLI_PATH) +
                            "' dump examples/mobilenet_mnist.mmd --train --memory --precision bf16 --arch sm_90");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  {
    const auto gpu = nlohmann::json::parse(r.out)["gpu"];
    ASSERT_EQ(gpu["converted"].size(), 1u) << gpu["converted"];
    EXPECT_EQ(gpu["converted"][0]["value"], "pw2.grad");
    EXPECT_EQ(gpu["converted"][0]["first"], "conv2d_backward_data 'pw2'");
    EXPECT_EQ(gpu["converted_bytes"], gpu["converted"][0]["bytes"]);
    EXPECT_EQ(gpu["converted"][0]["bytes"].get<int64_t>(), 64 * 64 * 7 * 7 * 2);  // batch 64, bf16
  }
  // A model whose GPU module codegen refuses still gets its plan, the reason beside it: a
  // 1 x 1 convolution of 9,000,000 filters, whose tensor-core product would need more than a
  // grid's 65,535 column tiles (the plan, ~1.8 TB, is only printed: --memory-limit 0).
  {
    const std::string dir = shoal::test::tempDir();
    writeFile(dir + "/wide.mmd",
              "flowchart TD\n  x[input: mnist path=data/mnist-10k batch=64] --> "
              "pre[preprocess: scale=1/255] --> c[conv2d: filters=9000000 kernel=1x1 bias=false] "
              "--> out[output: name=y]\n");
    r = runCli("dump '" + dir + "/wide.mmd' --memory --precision tf32 --arch sm_90 --memory-limit 0");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["arena_bytes"].get<int64_t>(), int64_t(1) << 40);
    EXPECT_EQ(j["gpu"]["precision"], "tf32");
    EXPECT_EQ(j["gpu"]["unsupported"], "conv2d 'c': no CUDA kernel: an implicit GEMM too large for one grid");
    EXPECT_FALSE(j["gpu"].contains("device_bytes"));
  }
  // Without --cuda or --memory a precision or an architecture means nothing: refused.
  for (std::string opt : {"--precision bf16", "--arch sm_90"}) {
    r = runCli("dump examples/resnet_mnist.mmd " + opt);
    EXPECT_EQ(r.exitCode, 1) << opt;
    EXPECT_NE(r.err.find("goes with --cuda or --memory"), std::string::npos) << r.err;
  }
}

TEST(Cli, DumpWritesFilesAtomically) {
  std::string dir = shoal::test::tempDir();
  auto r = runCli("dump examples/matmul.mmd -o '" + dir + "/m.ir'");
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(readFile(dir + "/m.ir").rfind("// shoal IR", 0), 0u);
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos);
}

TEST(Cli, DeviceGpuWithoutGpuIsAClearError) {
  auto probe = runCli("run examples/matmul.mmd --device auto");
  ASSERT_EQ(probe.exitCode, 0) << probe.err;
  if (probe.err.find("device: cpu (no usable GPU") == std::string::npos) GTEST_SKIP() << "a GPU is present";
  // Pipelines say gpu; the CLI takes gpu, and cuda as a synonym, and echoes what was typed.
  for (std::string spelling : {"gpu", "cuda"}) {
    auto r = runCli("run examples/matmul.mmd --device " + spelling);
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_EQ(r.err.rfind("error: --device " + spelling + ": no usable GPU (", 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

// A pipeline with a literal input and a dense layer: its parameters come from --weights.
const char* kLiteralDense =
    "flowchart TD\n"
    "  x[\"constant: value=[[1,2]]\"] --> d[dense: units=2]\n"
    "  d --> out[output: name=y]\n";

TEST(Cli, WeightsAreLoadedOrRefusedForLiteralInputs) {
  std::string dir = shoal::test::tempDir();
  writeFile(dir + "/p.mmd", kLiteralDense);
  // A missing file is an error, not a silent random initialisation.
  auto missing = runCli("run '" + dir + "/p.mmd' --device cpu --weights '" + dir + "/nope.safetensors'");
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.err.find(dir + "/nope.safetensors"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.out, "");
  // d.weight = [[1,0],[0,1]], d.bias = [10,20]: y = [1,2] W^T + b = [11,22].
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({1, 2}));
  b.output("y", b.dense(x, 2, {.name = "d"}));
  auto session = shoal::Session::create(*b.build(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session);
  ASSERT_TRUE(session->setParameters(
      {{"d.weight", shoal::Tensor::fromDoubles(shoal::DType::F32, {2, 2}, std::vector<double>{1, 0, 0, 1})},
       {"d.bias", shoal::Tensor::fromDoubles(shoal::DType::F32, {2}, std::vector<double>{10, 20})}}));
  ASSERT_TRUE(session->saveWeights(dir + "/w.safetensors"));
  auto r = runCli("run '" + dir + "/p.mmd' --device cpu --weights '" + dir + "/w.safetensors'");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "y = [[11,22]]\n");
  // A model without parameters has nothing to load into.
  auto none = runCli("run examples/matmul.mmd --device cpu --weights '" + dir + "/w.safetensors'");
  EXPECT_EQ(none.exitCode, 1);
  EXPECT_NE(none.err.find("error: --weights: 'examples/matmul.mmd' has no parameters to load"), std::string::npos) << none.err;
}

TEST(Cli, EpochsAndProfileAreNotIgnoredForInference) {
  auto epochs = runCli("run examples/matmul.mmd --device cpu --epochs 3");
  EXPECT_EQ(epochs.exitCode, 1);
  EXPECT_EQ(epochs.err, "error: --epochs: 'examples/matmul.mmd' has no train stage (it runs inference)\n");
  auto profile = runCli("run examples/matmul.mmd --device cpu --profile");
  ASSERT_EQ(profile.exitCode, 0) << profile.err;
  EXPECT_EQ(profile.out, "C = [[22,28],[64,73],[106,118]]\n");
  EXPECT_NE(profile.err.find("time per op:\n"), std::string::npos) << profile.err;
  EXPECT_NE(profile.err.find("total in ops"), std::string::npos) << profile.err;
}

TEST(Cli, PrecisionIsForTheGpuAndChecked) {
  // Not a format: CLI11's message, exit status nonzero, nothing run.
  auto bogus = runCli("run examples/matmul.mmd --device cpu --precision fp8");
  EXPECT_NE(bogus.exitCode, 0);
  EXPECT_NE(bogus.err.find("--precision"), std::string::npos) << bogus.err;
  EXPECT_EQ(bogus.out, "");
  auto both = runCli("run examples/matmul.mmd --device cpu --tf32 --precision bf16");
  EXPECT_EQ(both.exitCode, 1);
  EXPECT_EQ(both.err, "error: --tf32 and --precision bf16 disagree: choose one\n");
  auto tune = runCli("run examples/matmul.mmd --device cpu --autotune");
  EXPECT_EQ(tune.exitCode, 1);
  EXPECT_NE(tune.err.find("autotune times the GPU's convolution tiles; the CPU has none to time"), std::string::npos)
      << tune.err;
  EXPECT_EQ(tune.out, "");
  auto check = runCli("run examples/matmul.mmd --device cpu --check --precision tf32");
  EXPECT_EQ(check.exitCode, 1);
  EXPECT_NE(check.err.find("--check compares with the float64 interpreter"), std::string::npos) << check.err;
  // The CPU computes in fp32: a 16-bit precision there is refused, not ignored.
  auto cpu = runCli("run examples/matmul.mmd --device cpu --precision bf16");
  EXPECT_EQ(cpu.exitCode, 1);
  EXPECT_NE(cpu.err.find("precision bf16 is for the GPU's tensor cores; the CPU computes in fp32"), std::string::npos)
      << cpu.err;
  EXPECT_EQ(cpu.out, "");
  // fp32 is the default, spelled out or not.
  auto fp32 = runCli("run examples/matmul.mmd --device cpu --precision fp32");
  ASSERT_EQ(fp32.exitCode, 0) << fp32.err;
  EXPECT_EQ(fp32.out, "C = [[22,28],[64,73],[106,118]]\n");
}

TEST(Cli, DumpAndCompileShowTheKernelsOfAPrecision) {
  // The CUDA source for --precision tf32 holds the convolutions' tensor-core kernels (and
  // their mma.sync products); fp32's holds none. --precision without --cuda (or --memory) is
  // refused.
  auto fp32 = runCli("dump examples/conv.mmd --cuda");
  ASSERT_EQ(fp32.exitCode, 0) << fp32.err;
  EXPECT_EQ(fp32.out.find("_tc("), std::string::npos);
  auto tf32 = runCli("dump examples/conv.mmd --cuda --precision tf32");
  ASSERT_EQ(tf32.exitCode, 0) << tf32.err;
  EXPECT_NE(tf32.out.find("_tc("), std::string::npos);
  EXPECT_NE(tf32.out.find("shoal_warp_mma_tf32(acc"), std::string::npos);
  auto bf16 = runCli("dump examples/conv.mmd --cuda --precision bf16");
  ASSERT_EQ(bf16.exitCode, 0) << bf16.err;
  EXPECT_NE(bf16.out.find("shoal_warp_mma_16bit(acc"), std::string::npos);
  auto alone = runCli("dump examples/conv.mmd --precision tf32");
  EXPECT_NE(alone.exitCode, 0);
  EXPECT_NE(alone.err.find("--precision goes with --cuda or --memory"), std::string::npos) << alone.err;
  EXPECT_EQ(alone.out, "");
}

TEST(Cli, EpochsMustBeAWholeNumberAndZeroOnlyEvaluates) {
  auto negative = runCli("run examples/mlp.mmd --device cpu --epochs -1");
  EXPECT_EQ(negative.exitCode, 1);
  EXPECT_NE(negative.err.find("must be a whole number, 0 or more, got '-1'"), std::string::npos) << negative.err;
  EXPECT_LT(negative.err.size(), 200u) << negative.err;
  std::string dir = shoal::test::tempDir();
  auto zero = runCli("run examples/mlp.mmd --device cpu --epochs 0 --report '" + dir + "/r.json'");
  ASSERT_EQ(zero.exitCode, 0) << zero.err;
  EXPECT_NE(zero.out.find("test accuracy 0."), std::string::npos) << zero.out;
  EXPECT_NE(zero.out.find("(0 steps, "), std::string::npos) << zero.out;
  auto j = nlohmann::json::parse(readFile(dir + "/r.json"));
  EXPECT_EQ(j["epochs"].size(), 0u);
  EXPECT_EQ(j["steps"], 0);
}

TEST(Cli, ThreadsMustBePositiveAndDoNotChangeResults) {
  for (std::string bad : {"0", "-1", "two"}) {
    auto r = runCli("run examples/mlp.mmd --device cpu --threads " + bad);
    EXPECT_EQ(r.exitCode, 1) << bad;
    EXPECT_NE(r.err.find("--threads: must be a whole number, 1 or more, got '" + bad + "'"), std::string::npos)
        << r.err;
  }
  auto conformance = runCli("conformance tests --threads 0");
  EXPECT_EQ(conformance.exitCode, 1);
  EXPECT_NE(conformance.err.find("--threads: must be a whole number, 1 or more, got '0'"), std::string::npos)
      << conformance.err;
  // The same loss, accuracy and test accuracy, to the last bit, at 1 and 3 threads (a small
  // CNN: conv, pool, dense, Adam).
  std::string dir = shoal::test::tempDir();
  writeFile(dir + "/cnn.mmd",
            "flowchart TD\n"
            "  x[input: mnist path=data/mnist-10k batch=64] --> pre[preprocess: scale=1/255]\n"
            "  pre --> c1[conv2d: filters=4 kernel=3x3 activation=relu]\n"
            "  c1 --> p1[maxpool: size=2x2] --> f[flatten] --> d1[dense: units=10]\n"
            "  d1 --> t[train: optimizer=adam lr=0.002 epochs=1]\n  t --> out[output: metrics=accuracy]\n");
  auto one = runCli("run '" + dir + "/cnn.mmd' --device cpu --seed 3 --threads 1 --report '" + dir + "/1.json'");
  auto three = runCli("run '" + dir + "/cnn.mmd' --device cpu --seed 3 --threads 3 --report '" + dir + "/3.json'");
  ASSERT_EQ(one.exitCode, 0) << one.err;
  ASSERT_EQ(three.exitCode, 0) << three.err;
  auto a = nlohmann::json::parse(readFile(dir + "/1.json")), b = nlohmann::json::parse(readFile(dir + "/3.json"));
  EXPECT_EQ(a["epochs"][0]["loss"], b["epochs"][0]["loss"]);
  EXPECT_EQ(a["epochs"][0]["accuracy"], b["epochs"][0]["accuracy"]);
  EXPECT_EQ(a["test_accuracy"], b["test_accuracy"]);
}

TEST(Cli, VerboseRunSaysWhereTheTimeWent) {
  auto r = runCli("run examples/mlp.mmd --device cpu --epochs 1 --verbose");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  size_t at = r.err.find("shoal: where the time went (wall seconds):\n");
  ASSERT_NE(at, std::string::npos) << r.err;
  std::string table = r.err.substr(at);
  for (const char* phase :
       {"passes (compile the program)", "training", "evaluation (test set)", "total", "data loading (IDX files)"})
    EXPECT_NE(table.find(phase), std::string::npos) << phase << " missing in\n" << table;
  EXPECT_NE(table.find("(on another thread, overlapped)"), std::string::npos) << table;
  // Without --verbose: no table.
  auto quiet = runCli("run examples/mlp.mmd --device cpu --epochs 1");
  ASSERT_EQ(quiet.exitCode, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("where the time went"), std::string::npos) << quiet.err;
}

// The MLP example, not the seed CNN: an epoch of the CNN took 29 s under ASan to check one line.
TEST(Cli, TrainingWithDeviceAutoSaysWhichDeviceItPicked) {
  auto r = runCli("run examples/mlp.mmd --device auto --epochs 1");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  // Without a usable GPU auto falls back to the interpreter and says why; with one it names the card.
  bool cpu = r.err.find("device: cpu (no usable GPU (") != std::string::npos;
  bool gpu = r.err.find("device: cuda:0 ") != std::string::npos;
  EXPECT_TRUE(cpu || gpu) << r.err;
  EXPECT_NE(r.out.find("test accuracy 0."), std::string::npos) << r.out;
}

// Training: one short run exercises progress lines, reports, checkpoints and reloading.
class CliTraining : public ::testing::Test {
 protected:
  std::string dir_ = shoal::test::tempDir();
  std::string pipeline(const std::string& train, const std::string& output) {
    return "flowchart TD\n"
           "  x[input: mnist path=data/mnist-10k batch=64] --> pre[preprocess: scale=1/255]\n"
           "  pre --> c1[conv2d: filters=8 kernel=3x3 activation=relu]\n"
           "  c1 --> p1[maxpool: size=2x2] --> f[flatten] --> d1[dense: units=10]\n" +
           (train.empty() ? "  d1 --> out[output: " + output + "]\n"
                          : "  d1 --> t[train: " + train + "]\n  t --> out[output: " + output + "]\n");
  }
};

TEST_F(CliTraining, TrainsReportsCheckpointsAndReloads) {
  writeFile(dir_ + "/small.mmd", pipeline("optimizer=adam lr=0.002 epochs=1 validation=0.1",
                                          "metrics=accuracy checkpoint=" + dir_ + "/w.safetensors plot=" + dir_ + "/curve.svg"));
  auto r = runCli("run '" + dir_ + "/small.mmd' --device cpu --seed 1 --report '" + dir_ + "/r.json'");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 1/1  loss "), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(readFile(dir_ + "/r.json"));
  EXPECT_EQ(j["device"], "cpu");
  ASSERT_EQ(j["epochs"].size(), 1u);
  EXPECT_TRUE(j["epochs"][0].contains("validation_accuracy"));
  double acc = j["test_accuracy"];
  EXPECT_GT(acc, 0.80);
  EXPECT_GT(j["train_seconds"].get<double>(), 0);
  EXPECT_GT(j["step_ms_median"].get<double>(), 0);
  EXPECT_EQ(readFile(dir_ + "/curve.svg").rfind("<svg", 0), 0u);
  ASSERT_TRUE(fs::exists(dir_ + "/w.safetensors"));

  // Reload for inference: the same test accuracy.
  writeFile(dir_ + "/eval.mmd", pipeline("", "metrics=accuracy"));
  auto e = runCli("run '" + dir_ + "/eval.mmd' --device cpu --weights '" + dir_ + "/w.safetensors' --report '" + dir_ + "/e.json'");
  ASSERT_EQ(e.exitCode, 0) << e.err;
  auto je = nlohmann::json::parse(readFile(dir_ + "/e.json"));
  EXPECT_DOUBLE_EQ(je["test_accuracy"].get<double>(), acc);

  // A checkpoint whose shapes do not match is refused, naming the tensor.
  writeFile(dir_ + "/other.mmd", "flowchart TD\n  x[input: mnist] --> pre[preprocess] --> c1[conv2d: filters=4 kernel=3x3]\n"
                                 "  c1 --> f[flatten] --> d1[dense: units=10] --> out[output]\n");
  auto bad = runCli("run '" + dir_ + "/other.mmd' --device cpu --weights '" + dir_ + "/w.safetensors'");
  EXPECT_EQ(bad.exitCode, 1);
  EXPECT_NE(bad.err.find("checkpoint tensor 'c1.weight' has shape [8,1,3,3], the model expects [4,1,3,3]"), std::string::npos)
      << bad.err;
}

TEST_F(CliTraining, EvaluateScoresTheCheckpointWithoutTraining) {
  writeFile(dir_ + "/p.mmd", pipeline("optimizer=sgd lr=0.05 epochs=1", "metrics=accuracy checkpoint=" + dir_ + "/w.safetensors"));
  auto trained = runCli("run '" + dir_ + "/p.mmd' --device cpu --report '" + dir_ + "/a.json'");
  ASSERT_EQ(trained.exitCode, 0) << trained.err;
  auto eval = runCli("run '" + dir_ + "/p.mmd' --device cpu --evaluate --report '" + dir_ + "/e.json'");
  ASSERT_EQ(eval.exitCode, 0) << eval.err;
  EXPECT_EQ(eval.out.find("epoch "), std::string::npos) << eval.out;
  EXPECT_EQ(eval.out.find("trained in"), std::string::npos) << eval.out;
  auto ja = nlohmann::json::parse(readFile(dir_ + "/a.json"));
  auto je = nlohmann::json::parse(readFile(dir_ + "/e.json"));
  EXPECT_DOUBLE_EQ(je["test_accuracy"].get<double>(), ja["test_accuracy"].get<double>());
  EXPECT_EQ(je["epochs"].size(), 0u);
  // Without weights anywhere there is nothing to evaluate.
  writeFile(dir_ + "/q.mmd", pipeline("epochs=1", "metrics=accuracy"));
  auto none = runCli("run '" + dir_ + "/q.mmd' --device cpu --evaluate");
  EXPECT_EQ(none.exitCode, 1);
  EXPECT_NE(none.err.find("nothing to evaluate: no weights"), std::string::npos) << none.err;
}

TEST_F(CliTraining, MeanAndStdWithoutScaleIsWarnedAbout) {
  std::string p = pipeline("epochs=1", "metrics=accuracy");
  p.replace(p.find("preprocess: scale=1/255"), 23, "preprocess: mean=0.1307 std=0.3081");
  writeFile(dir_ + "/p.mmd", p);
  auto r = runCli("run '" + dir_ + "/p.mmd' --device cpu --epochs 0");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.err.find(dir_ + "/p.mmd:2:56: warning: preprocess maps the pixels 0..255 to [-0.4242, 827.2]"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("add scale=1/255"), std::string::npos) << r.err;
  // With the scale first the values stay small: no warning.
  p.replace(p.find("preprocess: mean"), 16, "preprocess: scale=1/255 mean");
  writeFile(dir_ + "/q.mmd", p);
  auto ok = runCli("run '" + dir_ + "/q.mmd' --device cpu --epochs 0");
  ASSERT_EQ(ok.exitCode, 0) << ok.err;
  EXPECT_EQ(ok.err.find("warning"), std::string::npos) << ok.err;
}

TEST_F(CliTraining, CurveHasALegendAboveThePlotAndTheValidationAccuracy) {
  writeFile(dir_ + "/p.mmd", pipeline("optimizer=sgd lr=0.05 epochs=2 validation=0.1", "metrics=accuracy plot=" + dir_ + "/c.svg"));
  auto r = runCli("run '" + dir_ + "/p.mmd' --device cpu");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::string svg = readFile(dir_ + "/c.svg");
  EXPECT_NE(svg.find("<polyline class=\"validation-accuracy\""), std::string::npos) << svg;
  EXPECT_NE(svg.find(">validation accuracy</text>"), std::string::npos);
  // The plot starts at y=70; every legend entry sits above it.
  std::regex legend("<g class=\"legend\"><line x1=\"[0-9.]+\" y1=\"([0-9.]+)\"");
  int entries = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), legend); it != std::sregex_iterator(); ++it, ++entries)
    EXPECT_LT(std::stod((*it)[1]), 70.0);
  EXPECT_EQ(entries, 3);
  EXPECT_NE(svg.find("<rect x=\"64\" y=\"70\""), std::string::npos);
  // The accuracy axis starts near the accuracies, not at 0%.
  EXPECT_EQ(svg.find(">0%</text>"), std::string::npos) << svg;
}

TEST_F(CliTraining, SameSeedSameRun) {
  writeFile(dir_ + "/p.mmd", pipeline("optimizer=sgd lr=0.05 momentum=0.9 epochs=1", "metrics=accuracy"));
  auto a = runCli("run '" + dir_ + "/p.mmd' --device cpu --seed 5 --report '" + dir_ + "/a.json'");
  auto b = runCli("run '" + dir_ + "/p.mmd' --device cpu --seed 5 --report '" + dir_ + "/b.json'");
  ASSERT_EQ(a.exitCode, 0) << a.err;
  ASSERT_EQ(b.exitCode, 0) << b.err;
  auto ja = nlohmann::json::parse(readFile(dir_ + "/a.json"));
  auto jb = nlohmann::json::parse(readFile(dir_ + "/b.json"));
  EXPECT_EQ(ja["epochs"][0]["loss"], jb["epochs"][0]["loss"]);
  EXPECT_EQ(ja["test_accuracy"], jb["test_accuracy"]);
}

TEST_F(CliTraining, DivergenceStopsWithTheStep) {
  writeFile(dir_ + "/nan.mmd", pipeline("optimizer=sgd lr=1e30 epochs=1", "metrics=accuracy"));
  auto r = runCli("run '" + dir_ + "/nan.mmd' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_TRUE(std::regex_search(r.err, std::regex("error: training diverged: the loss is (nan|inf|-nan) at step [0-9]+ ")))
      << r.err;
}

TEST_F(CliTraining, CorruptDataIsNamed) {
  fs::create_directories(dir_ + "/data");
  for (auto name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(shoal::test::sourcePath(std::string("data/mnist-10k/") + name), dir_ + "/data/" + name);
  std::string img = readFile(dir_ + "/data/train-images-idx3-ubyte.gz");
  writeFile(dir_ + "/data/train-images-idx3-ubyte.gz", img.substr(0, img.size() / 2));
  std::string p = pipeline("epochs=1", "metrics=accuracy");
  p.replace(p.find("data/mnist-10k"), 14, dir_ + "/data");
  writeFile(dir_ + "/p.mmd", p);
  auto r = runCli("run '" + dir_ + "/p.mmd' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find(dir_ + "/data/train-images-idx3-ubyte.gz: "), std::string::npos) << r.err;
}

}  // namespace

namespace {

// The README's diagnostic example is real: the command it shows prints what it shows.
TEST(Cli, ReadmeErrorExampleIsReproducible) {
  std::string readme = readFile(shoal::test::sourcePath("README.md"));
  const std::string prompt = "$ shoal check ";
  size_t at = readme.find(prompt);
  ASSERT_NE(at, std::string::npos) << "README has no `$ shoal check FILE` example";
  size_t lineEnd = readme.find('\n', at);
  std::string file = readme.substr(at + prompt.size(), lineEnd - at - prompt.size());
  size_t blockEnd = readme.find("```", lineEnd);
  std::string shown = readme.substr(lineEnd + 1, blockEnd - lineEnd - 1);
  ASSERT_TRUE(fs::exists(shoal::test::sourcePath(file))) << file;
  auto r = runCli("check " + file);
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out + r.err, shown);
}

}  // namespace

// ---- data parallelism (--nproc on the CPU; --gpus needs GPUs) ---------------------------------

namespace {

nlohmann::json readReport(const std::string& path) { return nlohmann::json::parse(readFile(path)); }

TEST(CliDataParallel, TwoCpuProcessesTrainWhatOneTrainsAtTheSameGlobalBatch) {
  const std::string dir = shoal::test::tempDir();
  // examples/mlp.mmd at batch 32, 40 steps: one process, then two at 16 rows each.
  auto one = runCli("run examples/mlp.mmd --device cpu --epochs 1 --seed 3 --report " + dir + "/one.json");
  ASSERT_EQ(one.exitCode, 0) << one.err;
  auto two = runCli("run examples/mlp.mmd --device cpu --epochs 1 --seed 3 --nproc 2 --report " + dir + "/two.json");
  ASSERT_EQ(two.exitCode, 0) << two.err;
  EXPECT_NE(two.err.find("[rank 0] data parallel: 2 ranks (tcp), global batch 32"), std::string::npos) << two.err;
  EXPECT_NE(two.out.find("[rank 0] epoch 1/1"), std::string::npos) << two.out;
  EXPECT_EQ(two.out.find("[rank 1] epoch"), std::string::npos) << two.out;  // rank 0 speaks for the run
  auto a = readReport(dir + "/one.json");
  auto b = readReport(dir + "/two.json");
  EXPECT_EQ(a["steps"], b["steps"]);
  // float32: the batch's gradient summed in two halves, then averaged; the loss over an epoch
  // agrees to float32 rounding, and so does the test accuracy (2,000 images: a flip is 5e-4).
  EXPECT_NEAR(a["epochs"][0]["loss"].get<double>(), b["epochs"][0]["loss"].get<double>(), 1e-4);
  EXPECT_NEAR(a["test_accuracy"].get<double>(), b["test_accuracy"].get<double>(), 1.1e-3);
  // Tiny buckets (every gradient all-reduced on its own, as soon as it is computed) change when
  // the ranks talk, not what they sum: the same run to the bit.
  auto tiny = runCli("run examples/mlp.mmd --device cpu --epochs 1 --seed 3 --nproc 2 --bucket-mb 0.0001 --report " +
                     dir + "/tiny.json");
  ASSERT_EQ(tiny.exitCode, 0) << tiny.err;
  auto c = readReport(dir + "/tiny.json");
  EXPECT_EQ(b["epochs"][0]["loss"].get<double>(), c["epochs"][0]["loss"].get<double>());
  EXPECT_EQ(b["test_accuracy"].get<double>(), c["test_accuracy"].get<double>());
}

TEST(CliDataParallel, ARankThatDiesStopsTheRun) {
  auto r = shoal::test::runShell("SHOAL_TEST_KILL_RANK=1:5 '" + std::string(SHOAL_CLI_PATH) +
                                 "' run examples/mlp.mmd --device cpu --epochs 1 --nproc 2");
  EXPECT_EQ(r.exitCode, 1) << r.err;
  // The launcher names the rank that died (first, or after a rank whose watchdog noticed it).
  EXPECT_NE(r.err.find("shoal: error: rank 1 was killed by signal 9 (Killed)"), std::string::npos) << r.err;
}

TEST(CliDataParallel, UsageErrors) {
  auto r = runCli("run examples/mlp.mmd --nproc 2");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: --nproc starts CPU ranks: give --device cpu too (for GPUs, --gpus N)\n");
  r = runCli("run examples/matmul.mmd --device cpu --nproc 2");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: --nproc: data parallelism trains a pipeline; 'examples/matmul.mmd' has no train stage\n");
  r = runCli("run examples/mlp.mmd --device cpu --nproc 3 --batch 32");
  EXPECT_EQ(r.exitCode, 1);
  // Each rank finds it; the first to say so stops the others, who repeat its reason.
  EXPECT_NE(r.err.find("the batch of 32 does not split evenly over 3 ranks (the batch is the global one: give a "
                       "multiple of 3)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("shoal: error: rank "), std::string::npos) << r.err;
  r = runCli("run examples/mlp.mmd --device cpu --bucket-mb 4");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err,
            "error: --bucket-mb applies to data-parallel training (--gpus N, --nproc N, or ranks started with RANK and "
            "WORLD_SIZE)\n");
  r = runCli("run examples/mlp.mmd --gpus 2 --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: --gpus runs on GPUs; --device cpu contradicts it (use --nproc for CPU ranks)\n");
}

TEST(CliDataParallel, GpusWithoutGpusIsAClearError) {
  if (shoal::probeCudaDevice(1)) GTEST_SKIP() << "this machine has two GPUs";
  auto r = runCli("run examples/mlp.mmd --gpus 2");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err.rfind("error: --gpus 2: ", 0), 0u) << r.err;
  EXPECT_TRUE(r.err.find("no usable GPU") != std::string::npos || r.err.find("only 1 usable GPU") != std::string::npos)
      << r.err;
}

TEST(CliDataParallel, ARankStartedByHandWithAnUnreachableRendezvousSaysSo) {
  auto r = shoal::test::runShell("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=9 SHOAL_RENDEZVOUS_TIMEOUT=1 '" +
                                 std::string(SHOAL_CLI_PATH) + "' run examples/mlp.mmd --device cpu --epochs 1");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("error: rendezvous: rank 1 could not reach rank 0 at 127.0.0.1:9 within 1 s"), std::string::npos)
      << r.err;
}

}  // namespace
