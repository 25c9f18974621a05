// The embedding example: install shoal, build examples/embed against the installed package
// with find_package(shoal CONFIG), run it (it checks its own numbers against a double reference).
#include <gtest/gtest.h>

#include "test_util.h"

TEST(Embed, BuildsAgainstTheInstalledPackageAndRuns) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the sanitizer build's libshoal needs the sanitizer runtime in the app too";
#endif
  std::string prefix = shoal::test::tempDir();
  std::string build = shoal::test::tempDir();
  auto install = shoal::test::runShell("cmake --install '" + std::string(SHOAL_BINARY_DIR) + "' --prefix '" + prefix + "'");
  ASSERT_EQ(install.exitCode, 0) << install.out << install.err;
  auto configure = shoal::test::runShell("cmake -S examples/embed -B '" + build + "' -DCMAKE_PREFIX_PATH='" + prefix +
                                         "' -DCMAKE_BUILD_TYPE=Release");
  ASSERT_EQ(configure.exitCode, 0) << configure.out << configure.err;
  auto compile = shoal::test::runShell("cmake --build '" + build + "'");
  ASSERT_EQ(compile.exitCode, 0) << compile.out << compile.err;
  auto run = shoal::test::runShell("'" + build + "/embed_mlp'");
  EXPECT_EQ(run.exitCode, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("device: "), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("max error vs double reference"), std::string::npos) << run.out;
}

TEST(Embed, LibcudaIsNotALinkTimeDependency) {
  // The same libshoal must start on machines with no GPU driver (it falls back to the CPU).
  auto r = shoal::test::runShell("readelf -d '" + std::string(SHOAL_BINARY_DIR) + "/libshoal.so'");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("NEEDED"), std::string::npos);
  EXPECT_EQ(r.out.find("libcuda.so"), std::string::npos) << r.out;
}
