// The CLI round trips of a pipeline through its dumps: `shoal dump a.mmd > a.ir && shoal run
// a.ir` trains as `shoal run a.mmd` does (the IR carries the data, training and output
// settings; errors name the .ir), and `shoal dump --format mermaid` output loads back as the
// same graph, for every example, with and without --train.
#include <gtest/gtest.h>

#include <regex>

#include "test_util.h"

using shoal::test::readFile;
using shoal::test::runCli;
using shoal::test::writeFile;

namespace {

const std::vector<std::string> kRoundTripExamples = {"examples/seed_pipeline.mmd", "examples/mnist_cnn.mmd", "examples/mlp.mmd",
                                            "examples/matmul.mmd", "examples/conv.mmd"};

// Output lines without the figures that vary from run to run (seconds, step times).
std::string withoutTimes(const std::string& out) {
  std::string s = std::regex_replace(out, std::regex(R"(  \([0-9.]+ s\))"), "");
  return std::regex_replace(s, std::regex(R"(trained in [^\n]*\n)"), "");
}

std::string roundTripWithoutLocations(const std::string& ir) {
  return std::regex_replace(ir, std::regex(R"( loc\([^\n]*\))"), "");
}

// IR text up to its pipeline settings block.
std::string graphPart(const std::string& ir) { return ir.substr(0, ir.find("pipeline {\n")); }

TEST(RoundTripCli, ADumpedTrainingPipelineRunsFromItsIr) {
  const std::string dir = shoal::test::tempDir();
  auto dump = runCli("dump examples/mlp.mmd -o '" + dir + "/mlp.ir'");
  ASSERT_EQ(dump.exitCode, 0) << dump.err;
  const std::string ir = readFile(dir + "/mlp.ir");
  EXPECT_NE(ir.find("pipeline {\n  data {batch=32, kind=\"mnist\", path=\"data/mnist-10k\", weights=\"\"}\n"),
            std::string::npos)
      << ir;
  const std::string args = " --device cpu --epochs 1 --seed 0";
  auto fromIr = runCli("run '" + dir + "/mlp.ir'" + args);
  auto fromMmd = runCli("run examples/mlp.mmd" + args);
  ASSERT_EQ(fromIr.exitCode, 0) << fromIr.err;
  ASSERT_EQ(fromMmd.exitCode, 0) << fromMmd.err;
  EXPECT_NE(fromIr.out.find("test accuracy"), std::string::npos) << fromIr.out;
  EXPECT_EQ(withoutTimes(fromIr.out), withoutTimes(fromMmd.out));
  // Dumping the dump prints it again, settings included.
  auto again = runCli("dump '" + dir + "/mlp.ir'");
  EXPECT_EQ(again.out, ir);
}

TEST(RoundTripCli, ErrorsAboutADumpNameTheIrFile) {
  const std::string dir = shoal::test::tempDir();
  auto dump = runCli("dump examples/mlp.mmd");
  ASSERT_EQ(dump.exitCode, 0);
  std::string ir = dump.out;
  const size_t at = ir.find("path=\"data/mnist-10k\"");
  ASSERT_NE(at, std::string::npos);
  const int line = int(std::count(ir.begin(), ir.begin() + ptrdiff_t(at), '\n')) + 1;
  writeFile(dir + "/bad.ir", ir.replace(at, 21, "path=\"no/such/data\""));
  auto r = runCli("run '" + dir + "/bad.ir' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("\n" + dir + "/bad.ir:" + std::to_string(line) +
                       ":3: error: cannot open MNIST directory 'no/such/data'"),
            std::string::npos)
      << r.err;
  // A model IR without a data block: its input has no data, and the error names the .ir.
  auto bare = runCli("dump examples/mlp.mmd");
  writeFile(dir + "/bare.ir", graphPart(bare.out));
  r = runCli("run '" + dir + "/bare.ir' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err.rfind(dir + "/bare.ir: error: input 'x' (u8[32,1,28,28]) has no data", 0), 0u) << r.err;
  // A training step (dumped with --train) is not a pipeline to train again.
  auto step = runCli("dump examples/mlp.mmd --train -o '" + dir + "/step.ir'");
  ASSERT_EQ(step.exitCode, 0);
  r = runCli("run '" + dir + "/step.ir' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("holds a training step already (it was dumped with --train)"), std::string::npos) << r.err;
}

TEST(RoundTripCli, MermaidDumpsLoadBackForEveryExample) {
  const std::string dir = shoal::test::tempDir();
  for (const std::string& example : kRoundTripExamples) {
    for (const std::string train : {"", " --train"}) {
      if (!train.empty() && (example == "examples/matmul.mmd" || example == "examples/conv.mmd")) continue;
      SCOPED_TRACE(example + train);
      const std::string flowchart = dir + "/drawing.mmd";
      auto drawn = runCli("dump " + example + train + " --format mermaid -o '" + flowchart + "'");
      ASSERT_EQ(drawn.exitCode, 0) << drawn.err;
      auto ir = runCli("dump " + example + train);
      auto back = runCli("dump '" + flowchart + "' --after frontend");
      ASSERT_EQ(back.exitCode, 0) << back.err;
      EXPECT_EQ(roundTripWithoutLocations(graphPart(back.out)), roundTripWithoutLocations(graphPart(ir.out)));
      auto checked = runCli("check '" + flowchart + "'");
      EXPECT_EQ(checked.exitCode, 0) << checked.err;
    }
  }
  // A drawing of a literal pipeline runs like the pipeline.
  auto drawn = runCli("dump examples/matmul.mmd --format mermaid -o '" + dir + "/matmul.mmd'");
  ASSERT_EQ(drawn.exitCode, 0);
  auto r = runCli("run '" + dir + "/matmul.mmd' --device cpu");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "C = [[22,28],[64,73],[106,118]]\n");
}

}  // namespace
