// Malformed pipelines: every file under tests/frontend/invalid/ names, on its first line, the
// diagnostic `shoal check` must print first (`%% expect: LINE:COL: error: MESSAGE`).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test_util.h"

namespace fs = std::filesystem;
using shoal::test::runCli;

namespace {

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

TEST(InvalidPipelines, EachFileProducesItsDiagnostic) {
  int checked = 0;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(shoal::test::sourcePath("tests/frontend/invalid")))
    if (entry.path().extension() == ".mmd") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& path : files) {
    std::string text = shoal::test::readFile(path.string());
    const std::string tag = "%% expect: ";
    ASSERT_EQ(text.rfind(tag, 0), 0u) << path << " must start with '" << tag << "'";
    std::string expect = firstLine(text).substr(tag.size());
    std::string rel = "tests/frontend/invalid/" + path.filename().string();
    auto r = runCli("check '" + rel + "'");
    EXPECT_EQ(r.exitCode, 1) << rel << "\n" << r.err;
    EXPECT_EQ(firstLine(r.err), rel + ":" + expect) << rel;
    EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << r.err;
    ++checked;
  }
  EXPECT_GE(checked, 25);
}

TEST(InvalidPipelines, TenMegabyteLineIsReportedNotFatal) {
  std::string dir = shoal::test::tempDir();
  std::string big = "flowchart TD\n  a[" + std::string(10 << 20, 'x') + "] --> b[output]\n";
  shoal::test::writeFile(dir + "/big.mmd", big);
  auto r = runCli("check '" + dir + "/big.mmd'");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(firstLine(r.err), dir + "/big.mmd:2:5: error: unknown op '" + std::string(40, 'x') + "...'");
  EXPECT_LT(r.err.size(), 2000u) << "the diagnostic must clip the 10 MB line";
}

TEST(InvalidPipelines, SeveralErrorsInOneRun) {
  std::string dir = shoal::test::tempDir();
  shoal::test::writeFile(dir + "/three.mmd",
                         "flowchart TD\n"
                         "  x[input: mnist] --> c[conv2d: filter=3]\n"
                         "  c --> d[dense: unit=0]\n"
                         "  d --> t[train: optimizer=rmsprop]\n");
  auto r = runCli("check '" + dir + "/three.mmd'");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("three.mmd:2:33: error: conv2d does not take 'filter' (did you mean 'filters'?)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("three.mmd:3:18: error: dense does not take 'unit' (did you mean 'units'?)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("three.mmd:4:28: error: unknown optimizer 'rmsprop' (adam, adamw or sgd)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 errors"), std::string::npos) << r.err;
  // Each diagnostic quotes its line with a caret under the column.
  EXPECT_NE(r.err.find("  c --> d[dense: unit=0]\n                 ^\n"), std::string::npos) << r.err;
}

TEST(InvalidPipelines, MissingAndUnreadableFiles) {
  auto r = runCli("check no/such/file.mmd");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(firstLine(r.err), "error: cannot open 'no/such/file.mmd': No such file or directory");
  r = runCli("check examples");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(firstLine(r.err), "error: cannot open 'examples': Is a directory");
}

}  // namespace
