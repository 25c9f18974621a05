// The CLI on ONNX models: check, dump, run with --input (.pb and .npy), and conformance over
// test-case folders (PASS / FAIL / SKIP lines, the closing count, the exit status).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "frontend/onnx/onnx_import.h"
#include "frontend/onnx_test_models.h"
#include "runtime/data/npy.h"
#include "test_util.h"

namespace {

using namespace shoal;
using namespace shoal::test;
namespace fs = std::filesystem;

// ONNX's own backend test data (Debian's libonnx-testdata), when installed.
const std::string kOnnxData = "/usr/include/onnx/backend/test/data";

#if SHOAL_HAVE_ONNX

TEST(OnnxCli, CheckAndDumpAModel) {
  std::string path = gemmReluModel().save(tempDir());
  auto r = runCli("check " + path);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, path + ": ok (6 ops)\n");
  r = runCli("dump " + path);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("%fc.weight = param()"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dense(%x, %fc.weight, %fc.bias)"), std::string::npos) << r.out;
  r = runCli("dump " + path + " --format mermaid");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.rfind("flowchart", 0), 0u) << r.out;
}

TEST(OnnxCli, RunFeedsPbAndNpyInputs) {
  std::string dir = tempDir();
  std::string path = gemmReluModel().save(dir);
  Tensor x = f32Tensor({2, 3}, {1, 2, 3, -1, 0.5, 4});
  writeFile(dir + "/x.npy", encodeNpy(x));
  ASSERT_TRUE(writeOnnxTensorFile(dir + "/x.pb", "x", x));
  std::vector<double> want = gemmReluReference(x.toDoubles());
  for (std::string input : {"x=" + dir + "/x.npy", dir + "/x.pb"}) {
    auto r = runCli("run " + path + " --device cpu --input " + input + " --report " + dir + "/r.json");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(r.err, "device: cpu\n");
    auto report = nlohmann::json::parse(readFile(dir + "/r.json"));
    EXPECT_EQ(report["device"], "cpu");
    auto y = report["outputs"]["y"];
    ASSERT_EQ(y.size(), 2u);
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(y[i / 2][i % 2].get<double>(), want[i], 1e-6) << i;
    EXPECT_EQ(r.out.rfind("y = [[", 0), 0u) << r.out;
  }
  // --repeat times the runs.
  auto r = runCli("run " + path + " --device cpu --input x=" + dir + "/x.npy --repeat 3 --report " + dir + "/t.json");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto report = nlohmann::json::parse(readFile(dir + "/t.json"));
  EXPECT_EQ(report["runs"], 3);
  EXPECT_GE(report["run_ms_median"].get<double>(), 0.0);
}

TEST(OnnxCli, RunSaysWhatIsMissing) {
  std::string dir = tempDir();
  std::string path = gemmReluModel().save(dir);
  auto r = runCli("run " + path + " --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: no tensor for model input 'x': give --input x=FILE (.pb or .npy)\n");
  r = runCli("run " + path + " --device cpu --input y=" + dir + "/x.npy");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("the model has no input 'y' (its inputs: x)"), std::string::npos) << r.err;
  writeFile(dir + "/wide.npy", encodeNpy(f32Tensor({1, 4}, {1, 2, 3, 4})));
  r = runCli("run " + path + " --device cpu --input x=" + dir + "/wide.npy");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("input 'x' has extent 3 in dimension 1 in the model, the given tensor 4"), std::string::npos)
      << r.err;
  r = runCli("run " + path + " --epochs 2");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("apply to pipelines, not to an ONNX model"), std::string::npos) << r.err;
}

// examples/mnist_onnx_finetune.mmd imports a CNN that PyTorch trained and exported: before any
// step it scores what PyTorch scored (91.80% of the 2,000 test images, printed by
// examples/onnx/export_mnist_cnn.py), and a train stage fine-tunes it.
TEST(OnnxCli, APipelineScoresAndFineTunesAPyTorchExport) {
  auto r = runCli("check examples/mnist_onnx_finetune.mmd");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "examples/mnist_onnx_finetune.mmd: ok (17 ops, trains)\n");
  r = runCli("run examples/mnist_onnx_finetune.mmd --device cpu --epochs 0");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("test accuracy 0.9180\n"), std::string::npos) << r.out;
  std::string dir = tempDir();
  r = runCli("run examples/mnist_onnx_finetune.mmd --device cpu --epochs 1 --seed 0 --report " + dir + "/r.json");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  auto report = nlohmann::json::parse(readFile(dir + "/r.json"));
  EXPECT_GT(report["test_accuracy"].get<double>(), 0.918) << r.out;
}

// A test case folder as ONNX lays them out: model.onnx and test_data_set_0/{input,output}_0.pb.
void writeCase(const std::string& dir, OnnxModelBuilder model, const Tensor& x, const Tensor& y) {
  fs::create_directories(dir + "/test_data_set_0");
  model.save(dir);
  ASSERT_TRUE(writeOnnxTensorFile(dir + "/test_data_set_0/input_0.pb", "x", x));
  ASSERT_TRUE(writeOnnxTensorFile(dir + "/test_data_set_0/output_0.pb", "y", y));
}

TEST(OnnxCli, ConformanceReportsPassFailAndSkip) {
  std::string root = tempDir() + "/cases";
  Tensor x = f32Tensor({2, 3}, {1, 2, 3, -1, 0.5, 4});
  std::vector<double> want = gemmReluReference(x.toDoubles());
  writeCase(root + "/test_good", gemmReluModel(), x, f32Tensor({2, 2}, want));
  std::vector<double> wrong = want;
  wrong[3] += 0.01;
  writeCase(root + "/test_wrong", gemmReluModel(), x, f32Tensor({2, 2}, wrong));
  OnnxModelBuilder uniqueModel(13);
  uniqueModel.input("x", DType::F32, {int64_t(2), int64_t(3)});
  uniqueModel.output("y", DType::F32, {int64_t(2), int64_t(3)});
  uniqueModel.node("Unique", {"x"}, {"y"}, "unique");
  writeCase(root + "/test_unsupported", uniqueModel, x, x);

  auto r = runCli("conformance " + root + " --report " + root + "/../conf.json");
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_EQ(r.out,
            "PASS cases/test_good\n"
            "SKIP cases/test_unsupported  node 'unique' (Unique, domain ai.onnx, opset 13): unsupported: shoal has "
            "no mapping for op Unique\n"
            "FAIL cases/test_wrong  output 'y': 1 of 4 elements differ, largest error 0.01 (at flat index 3: got 0, "
            "expected 0.01; tolerance 1e-07 + 0.001*|expected|)\n"
            "1 passed, 1 failed, 1 skipped\n");
  auto report = nlohmann::json::parse(readFile(root + "/../conf.json"));
  EXPECT_EQ(report["failed"], 1);
  EXPECT_EQ(report["categories"]["cases"]["passed"], 1);
  // Three cases at once: the same lines, in case order, and the same report.
  auto parallel = runCli("conformance " + root + " --jobs 3 --report " + root + "/../conf3.json");
  EXPECT_EQ(parallel.exitCode, 1) << parallel.err;
  EXPECT_EQ(parallel.out, r.out);
  EXPECT_EQ(nlohmann::json::parse(readFile(root + "/../conf3.json"))["cases"], report["cases"]);
  auto both = runCli("conformance " + root + " --jobs 2 --no-isolate");
  EXPECT_EQ(both.exitCode, 1);
  EXPECT_NE(both.err.find("--jobs runs cases in processes of their own"), std::string::npos) << both.err;
  // Without the wrong case nothing fails: exit status 0, skips included.
  fs::remove_all(root + "/test_wrong");
  r = runCli("conformance " + root);
  EXPECT_EQ(r.exitCode, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 passed, 0 failed, 1 skipped\n"), std::string::npos) << r.out;
  // One case folder by itself.
  r = runCli("conformance " + root + "/test_good");
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.out, "PASS cases/test_good\n1 passed, 0 failed, 0 skipped\n");
  r = runCli("conformance " + root + "/nowhere");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("is not a folder of ONNX test cases"), std::string::npos);
}

// A few of ONNX's own cases, one per kind of mapping (Debian's libonnx-testdata; CI installs
// it and runs the whole suite).
TEST(OnnxCli, ConformanceOnOnnxsOwnCases) {
  if (!fs::exists(kOnnxData)) GTEST_SKIP() << "libonnx-testdata is not installed";
  std::string cases;
  for (const char* c : {"node/test_relu", "node/test_gemm_default_single_elem_vector_bias", "node/test_flatten_axis2",
                        "node/test_softmax_example", "node/test_maxpool_2d_pads", "node/test_reshape_negative_dim",
                        "pytorch-converted/test_Conv2d_dilated", "pytorch-converted/test_BatchNorm2d_eval",
                        "pytorch-operator/test_operator_addmm", "simple/test_expand_shape_model1"})
    cases += " " + kOnnxData + "/" + c;
  auto r = runCli("conformance" + cases);
  EXPECT_EQ(r.exitCode, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("10 passed, 0 failed, 0 skipped\n"), std::string::npos) << r.out;
}

// The CLI as a build without libonnx-dev makes it (the stub in place of the importer).
TEST(OnnxCli, ABuildWithoutOnnxSaysHowToGetIt) {
  std::string path = gemmReluModel().save(tempDir());
  const std::string cli = SHOAL_CLI_WITHOUT_ONNX_PATH;
  auto r = runShell(cli + " check " + path);
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "error: " + path +
                       ": this shoal was built without ONNX support: install ONNX and protobuf (apt-get "
                       "install libonnx-dev libprotobuf-dev) and rebuild\n");
  r = runShell(cli + " conformance " + tempDir());
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("apt-get install libonnx-dev libprotobuf-dev"), std::string::npos) << r.err;
  // Everything else works as in any build.
  r = runShell(cli + " run examples/matmul.mmd --device cpu");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "C = [[22,28],[64,73],[106,118]]\n");
}

#else

TEST(OnnxCli, WithoutOnnxTheCliSaysHowToGetIt) {
  auto r = runCli("check model.onnx");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("apt-get install libonnx-dev libprotobuf-dev"), std::string::npos) << r.err;
}

#endif

TEST(Npy, RoundTripsAndRejectsWhatItCannotRead) {
  Tensor t = Tensor::fromDoubles(DType::F64, {2, 3}, std::vector<double>{1, 2, 3, 4, 5, 6.5});
  auto back = parseNpy(encodeNpy(t), "t.npy");
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->type().str(), "f64[2,3]");
  EXPECT_EQ(back->toDoubles(), t.toDoubles());
  Tensor s = Tensor::fromDoubles(DType::I64, {3}, std::vector<double>{7, 8, 9});
  auto vec = parseNpy(encodeNpy(s), "s.npy");
  ASSERT_TRUE(vec);
  EXPECT_EQ(vec->type().str(), "i64[3]");
  // A header NumPy wrote (numpy.save of np.zeros((2,), np.float32)).
  std::string numpy =
      std::string("\x93NUMPY\x01\x00\x76\x00", 10) + "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  numpy.append(118 - (numpy.size() - 10) - 1, ' ');
  numpy += '\n';
  numpy.append(8, '\0');
  auto z = parseNpy(numpy, "z.npy");
  ASSERT_TRUE(z) << z.error().str();
  EXPECT_EQ(z->type().str(), "f32[2]");
  std::string fortran = numpy;
  fortran.replace(fortran.find("False"), 5, "True ");
  auto f = parseNpy(fortran, "f.npy");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("Fortran order"), std::string::npos);
  auto bad = parseNpy("not numpy", "bad.npy");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "bad.npy: not a readable .npy file: bad magic");
}

}  // namespace
