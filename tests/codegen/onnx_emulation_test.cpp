// Imported ONNX models through the GPU path: the CUDA source generated for them runs on the
// CPU emulator (tests/codegen/cuda_emulator.h) and must give ONNX's reference outputs, as the
// interpreter does in `shoal conformance`. On a GPU, `shoal conformance --device cuda` is the
// same check on the hardware.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "cuda_emulator.h"
#include "frontend/onnx/onnx_import.h"
#include "passes/program.h"
#include "test_util.h"

namespace {

using namespace shoal;
namespace fs = std::filesystem;

const std::string kOnnxBackendData = "/usr/include/onnx/backend/test/data";

// ONNX's tolerance (rtol 1e-3, atol 1e-7), with atol widened to 1e-5 for sums the GPU orders
// differently.
void expectOnnxClose(const std::string& what, const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.type(), want.type()) << what;
  for (int64_t i = 0; i < want.numElements(); ++i) {
    double g = got.at(i), w = want.at(i);
    EXPECT_LE(std::fabs(g - w), 1e-5 + 1e-3 * std::fabs(w))
        << what << "[" << i << "]: emulated " << g << ", want " << w;
  }
}

// Imports a case folder's model for its first data set's inputs, runs the generated CUDA on
// the emulator and compares with the reference outputs.
void runCase(const std::string& dir) {
  auto info = readOnnxModelInfo(dir + "/model.onnx");
  ASSERT_TRUE(info) << info.error().error.str();
  TensorMap feeds;
  for (size_t i = 0; i < info->inputs.size(); ++i) {
    auto t = readOnnxTensorFile(dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb");
    ASSERT_TRUE(t) << t.error().error.str();
    feeds[info->inputs[i]] = t->tensor;
  }
  OnnxImportOptions opts;
  for (auto& [name, t] : feeds) opts.inputShapes[name] = t.shape();
  auto p = importOnnxFile(dir + "/model.onnx", opts);
  ASSERT_TRUE(p) << p.error().error.str();
  auto program = compileProgram(p->model->clone());
  ASSERT_TRUE(program) << program.error().message();
  auto emu = test::EmulatedExecutable::create(*program);
  ASSERT_TRUE(emu) << emu.error().message();
  (*emu)->writePersistent(p->model->parameterValues());
  auto out = (*emu)->run(feeds);
  ASSERT_TRUE(out) << out.error().message();
  for (size_t i = 0; i < info->outputs.size(); ++i) {
    auto want = readOnnxTensorFile(dir + "/test_data_set_0/output_" + std::to_string(i) + ".pb");
    ASSERT_TRUE(want);
    expectOnnxClose(dir + " " + info->outputs[i], out->at(info->outputs[i]), want->tensor);
  }
}

TEST(OnnxEmulation, ImportedModelsGiveOnnxsOutputsOnTheGpuPath) {
  if (!onnxAvailable()) GTEST_SKIP() << onnxUnavailableMessage();
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  if (!fs::exists(kOnnxBackendData)) GTEST_SKIP() << "libonnx-testdata is not installed";
  // A transposed convolution, an instance norm (group norm per channel), a PReLU composed of
  // relu, neg, mul and sub, and batch norms folded into convolutions.
  for (const char* c : {"pytorch-converted/test_ConvTranspose2d", "node/test_instancenorm_example",
                        "pytorch-converted/test_PReLU_2d_multiparam", "pytorch-converted/test_BatchNorm2d_eval"})
    runCase(kOnnxBackendData + "/" + c);
}

}  // namespace
