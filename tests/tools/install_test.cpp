// The installed package: relocatable (data found from the library's own location, after the
// prefix is moved and with no source tree in reach) and runnable without any CUDA library.
#include <gtest/gtest.h>

#include <filesystem>

#include "sanitizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using shoal::test::runShell;

namespace {

// A small MNIST pipeline naming its data the way examples do (relative: data/mnist-10k).
const char* kPipeline =
    "flowchart TD\n"
    "  x[input: mnist path=data/mnist-10k batch=100] --> pre[preprocess: scale=1/255]\n"
    "  pre --> f[flatten] --> d[dense: units=10]\n"
    "  d --> t[train: optimizer=sgd lr=0.1 epochs=1]\n"
    "  t --> out[output: metrics=accuracy]\n";

class Installed : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(SHOAL_TEST_ASAN)
    GTEST_SKIP() << "the sanitizer build's binaries need the sanitizer runtime first in the library list";
#endif
    // Install, then move the prefix somewhere else: nothing may point at the old place.
    std::string first = shoal::test::tempDir() + "/prefix";
    auto install = runShell("cmake --install '" + std::string(SHOAL_BINARY_DIR) + "' --prefix '" + first + "'");
    ASSERT_EQ(install.exitCode, 0) << install.out << install.err;
    prefix_ = shoal::test::tempDir() + "/moved";
    fs::rename(first, prefix_);
    // A working directory with the pipeline and no data/ folder in it or above it.
    work_ = shoal::test::tempDir();
    shoal::test::writeFile(work_ + "/tiny.mmd", kPipeline);
  }
  std::string cli() const { return "'" + prefix_ + "/bin/shoal'"; }
  std::string inWork(const std::string& command) const { return "cd '" + work_ + "' && " + command; }

  std::string prefix_, work_;
};

TEST_F(Installed, FindsItsDataAfterThePrefixMoved) {
  auto r = runShell(inWork(cli() + " run tiny.mmd --device cpu --verbose"));
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("data: " + fs::canonical(prefix_).string() + "/share/shoal/mnist-10k\n"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("test accuracy 0."), std::string::npos) << r.out;
}

TEST_F(Installed, NoBuildOrToolkitPathIsCompiledIntoTheLinks) {
  auto r = runShell("readelf -d '" + prefix_ + "/lib/libshoal.so' '" + prefix_ + "/bin/shoal'");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  for (const char* lib : {"libcuda", "libnvrtc", "libcublas"}) EXPECT_EQ(r.out.find(lib), std::string::npos) << lib << r.out;
  EXPECT_EQ(r.out.find(SHOAL_BINARY_DIR), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("/usr/local"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("$ORIGIN/../lib"), std::string::npos) << r.out;
}

TEST_F(Installed, RunsOnTheCpuWhereNoCudaLibraryLoads) {
  // The preload module fails every dlopen of libcuda, libnvrtc and libcublas, as on a machine
  // without CUDA: the CLI starts, picks the CPU and trains; NVRTC's absence is a clear error.
  std::string hide = "LD_PRELOAD='" + std::string(SHOAL_HIDE_CUDA_PATH) + "' ";
  auto r = runShell(inWork(hide + cli() + " run tiny.mmd --device auto"));
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("device: cpu (no usable GPU (", 0), 0u) << r.err;
  EXPECT_NE(r.out.find("test accuracy 0."), std::string::npos) << r.out;
  auto gpu = runShell(inWork(hide + cli() + " run tiny.mmd --device gpu"));
  EXPECT_EQ(gpu.exitCode, 1);
  EXPECT_EQ(gpu.err.rfind("error: --device gpu: no usable GPU (", 0), 0u) << gpu.err;
  auto compile = runShell(hide + cli() + " compile examples/matmul.mmd");
  EXPECT_EQ(compile.exitCode, 1) << compile.out;
#if SHOAL_HAVE_CUDA
  EXPECT_NE(compile.err.find("error: cannot load NVRTC: "), std::string::npos) << compile.err;
  EXPECT_NE(compile.err.find("libnvrtc.so"), std::string::npos) << compile.err;
#else
  // Built without the CUDA toolkit: no NVRTC to look for, and the error says why.
  EXPECT_EQ(compile.err.rfind("error: shoal was built without CUDA support (SHOAL_HAVE_CUDA=0): NVRTC is not available", 0), 0u)
      << compile.err;
#endif
#if SHOAL_HAVE_CUDA
  // Without the module the same command finds NVRTC: the module is what hid it.
  auto visible = runShell(cli() + " compile examples/matmul.mmd");
  EXPECT_EQ(visible.exitCode, 0) << visible.err;
#endif
}

}  // namespace
