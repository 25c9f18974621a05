// The embedding example: install shoal, build examples/embed against the installed package
// with find_package(shoal CONFIG) as C++20 (the documented standard), run it: it trains on
// tensors it generates, saves, reloads, runs at another batch size and checks its numbers.
#include <gtest/gtest.h>

#include "sanitizer.h"
#include "test_util.h"

TEST(Embed, BuildsAgainstTheInstalledPackageAsCpp20AndRuns) {
#if defined(SHOAL_TEST_ASAN)
  GTEST_SKIP() << "the sanitizer build's libshoal needs the sanitizer runtime in the app too";
#endif
  std::string prefix = shoal::test::tempDir();
  std::string build = shoal::test::tempDir();
  auto install = shoal::test::runShell("cmake --install '" + std::string(SHOAL_BINARY_DIR) + "' --prefix '" + prefix + "'");
  ASSERT_EQ(install.exitCode, 0) << install.out << install.err;
  // The exported target asks its consumers for C++20, no more.
  std::string targets = shoal::test::readFile(prefix + "/lib/cmake/shoal/shoalTargets.cmake");
  EXPECT_NE(targets.find("cxx_std_20"), std::string::npos) << targets;
  EXPECT_EQ(targets.find("cxx_std_23"), std::string::npos);
  auto configure = shoal::test::runShell("cmake -S examples/embed -B '" + build + "' -DCMAKE_PREFIX_PATH='" + prefix +
                                         "' -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON");
  ASSERT_EQ(configure.exitCode, 0) << configure.out << configure.err;
  auto compile = shoal::test::runShell("cmake --build '" + build + "'");
  ASSERT_EQ(compile.exitCode, 0) << compile.out << compile.err;
  std::string commands = shoal::test::readFile(build + "/compile_commands.json");
  EXPECT_NE(commands.find("-std=c++20"), std::string::npos) << commands;
  auto run = shoal::test::runShell("'" + build + "/embed_spirals' '" + build + "/spirals.safetensors'");
  EXPECT_EQ(run.exitCode, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("device: "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("validation accuracy "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("weights saved to " + build + "/spirals.safetensors (6 tensors)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("reloaded: batch of 5 -> logits f32[5,2]"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("max error vs double reference"), std::string::npos) << run.out;
}

TEST(Embed, NoCudaLibraryIsALinkTimeDependency) {
  // The same libshoal must start where no CUDA library is installed (it loads NVRTC and
  // cuBLAS when a GPU is used, and falls back to the CPU without them).
  auto r = shoal::test::runShell("readelf -d '" + std::string(SHOAL_BINARY_DIR) + "/libshoal.so' '" +
                                 std::string(SHOAL_CLI_PATH) + "'");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("NEEDED"), std::string::npos);
  for (const char* lib : {"libcuda.so", "libcudart", "libnvrtc", "libcublas", "libcublasLt"})
    EXPECT_EQ(r.out.find(lib), std::string::npos) << lib << " is NEEDED:\n" << r.out;
}
