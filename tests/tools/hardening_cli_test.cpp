// Regressions of issue "Hardening" seen from the CLI: hostile sizes, endless files, atomic
// writes onto devices, FIFOs and links, output paths checked before training, checkpoints with
// tensors the model does not have.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <thread>

#include "runtime/checkpoint/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using shoal::test::readFile;
using shoal::test::runCli;
using shoal::test::writeFile;

namespace {

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

bool noSanitizerReport(const std::string& err) {
  return err.find("Sanitizer") == std::string::npos && err.find("runtime error") == std::string::npos;
}

TEST(HardeningCli, HugeShapesFailCleanly) {
  std::string dir = shoal::test::tempDir();
  // dense units=4611686018427387905 after a constant: `run` crashed with SIGSEGV.
  writeFile(dir + "/dense.mmd",
            "flowchart TD\n  A[\"constant: value=[[1,2,3,4]]\"] --> d[dense: units=4611686018427387905] --> o[output]\n");
  auto r = runCli("run '" + dir + "/dense.mmd' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(firstLine(r.err), dir + "/dense.mmd:2:42: error: dense 'd': operand %d.weight f32[4611686018427387905,4] is "
                                    "too large: its extents multiply past 2^63 elements");
  EXPECT_TRUE(noSanitizerReport(r.err)) << r.err;
  // IR text whose input overflows: used to overflow in planMemory (dump --memory).
  writeFile(dir + "/big.ir", "graph main {\n  %x = input() {name=\"x\"} : f32[4294967296,4294967296]\n"
                             "  output(%x) {name=\"o\"}\n}\n");
  for (const std::string cmd : {"check", "dump --memory"}) {
    auto ir = runCli(cmd + " '" + dir + "/big.ir'");
    EXPECT_EQ(ir.exitCode, 1) << cmd;
    EXPECT_EQ(firstLine(ir.err), "error: input 'x': result %x f32[4294967296,4294967296] is too large: its extents "
                                 "multiply past 2^63 elements")
        << cmd;
  }
  // maxpool with the largest stride and "same" padding: one window, a valid program.
  writeFile(dir + "/pool.mmd", "flowchart TD\n  x[\"constant: value=[[[[1,2],[3,4]]]]\"] --> "
                               "p[maxpool: size=2x2 stride=9223372036854775807 padding=same] --> o[output]\n");
  auto pool = runCli("run '" + dir + "/pool.mmd' --device cpu");
  EXPECT_EQ(pool.exitCode, 0) << pool.err;
  EXPECT_EQ(pool.out, "o = [[[[4]]]]\n");
}

TEST(HardeningCli, EndlessInputFilesAreCapped) {
  // Issue "Hardening" 6: `check /dev/zero` read until memory ran out.
  auto r = runCli("check /dev/zero");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(firstLine(r.err), "error: cannot read '/dev/zero': larger than 67108864 bytes, the limit for a pipeline file");
  // A pipe is read to its end (process substitution, `check -`).
  auto piped = shoal::test::runShell("cat examples/matmul.mmd | '" + std::string(SHOAL_CLI_PATH) + "' check /dev/stdin");
  EXPECT_EQ(piped.exitCode, 0) << piped.err;
}

TEST(HardeningCli, DumpOutputOntoDevicesFifosAndLinks) {
  // Issue "Hardening" 4: `dump -o /dev/null` (as root) replaced /dev/null with a regular file.
  auto r = runCli("dump examples/matmul.mmd -o /dev/null");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null must stay a character device";
  auto full = runCli("dump examples/matmul.mmd -o /dev/full");
  EXPECT_EQ(full.exitCode, 1);
  EXPECT_EQ(full.err, "error: cannot write '/dev/full': No space left on device\n");

  std::string dir = shoal::test::tempDir();
  std::string expected = runCli("dump examples/matmul.mmd").out;
  ASSERT_FALSE(expected.empty());
  // A FIFO gets the bytes and stays a FIFO.
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = readFile(dir + "/fifo"); });
  auto f = runCli("dump examples/matmul.mmd -o '" + dir + "/fifo'");
  reader.join();
  EXPECT_EQ(f.exitCode, 0) << f.err;
  EXPECT_EQ(got, expected);
  ASSERT_EQ(::lstat((dir + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  // A symbolic link: its target is written, the link stays.
  writeFile(dir + "/target.ir", "old");
  fs::create_symlink("target.ir", dir + "/link.ir");
  auto l = runCli("dump examples/matmul.mmd -o '" + dir + "/link.ir'");
  EXPECT_EQ(l.exitCode, 0) << l.err;
  EXPECT_TRUE(fs::is_symlink(dir + "/link.ir"));
  EXPECT_EQ(readFile(dir + "/target.ir"), expected);
  // A directory is refused.
  auto d = runCli("dump examples/matmul.mmd -o '" + dir + "'");
  EXPECT_EQ(d.exitCode, 1);
  EXPECT_EQ(d.err, "error: cannot write '" + dir + "': Is a directory\n");
}

// A small MNIST training pipeline (one epoch takes about a second on the CPU).
std::string smallPipeline(const std::string& output) {
  return "flowchart TD\n"
         "  x[input: mnist path=data/mnist-10k batch=64] --> pre[preprocess: scale=1/255]\n"
         "  pre --> f[flatten] --> d1[dense: units=10]\n"
         "  d1 --> t[train: optimizer=adam epochs=1]\n"
         "  t --> out[output: " +
         output + "]\n";
}

TEST(HardeningCli, OutputPathsAreCheckedBeforeTraining) {
  // Issue "Hardening" 7: a checkpoint in a missing directory was reported after the training.
  std::string dir = shoal::test::tempDir();
  writeFile(dir + "/p.mmd", smallPipeline("metrics=accuracy checkpoint=" + dir + "/missing/w.safetensors"));
  auto r = runCli("run '" + dir + "/p.mmd' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(firstLine(r.err), dir + "/p.mmd:5:13: error: cannot write '" + dir + "/missing/w.safetensors': directory '" +
                                  dir + "/missing' does not exist");
  EXPECT_EQ(r.out.find("epoch 1/1"), std::string::npos) << "nothing may be trained first:\n" << r.out;
  // The plot and --report likewise.
  writeFile(dir + "/q.mmd", smallPipeline("metrics=accuracy plot=" + dir + "/nodir/curve.svg"));
  auto plot = runCli("run '" + dir + "/q.mmd' --device cpu");
  EXPECT_EQ(plot.exitCode, 1);
  EXPECT_NE(plot.err.find("directory '" + dir + "/nodir' does not exist"), std::string::npos) << plot.err;
  EXPECT_EQ(plot.out.find("epoch 1/1"), std::string::npos);
  auto report = runCli("run examples/matmul.mmd --device cpu --report '" + dir + "/nodir/r.json'");
  EXPECT_EQ(report.exitCode, 1);
  EXPECT_EQ(report.err, "error: cannot write '" + dir + "/nodir/r.json': directory '" + dir + "/nodir' does not exist\n");
  EXPECT_EQ(report.out, "") << "nothing may run first";
}

TEST(HardeningCli, CheckpointOntoDevFullIsAnError) {
  // Issue "Hardening" 4: checkpoint=/dev/full reported success.
  std::string dir = shoal::test::tempDir();
  writeFile(dir + "/p.mmd", smallPipeline("metrics=accuracy checkpoint=/dev/full"));
  auto r = runCli("run '" + dir + "/p.mmd' --device cpu");
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("error: cannot write '/dev/full': No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("checkpoint saved"), std::string::npos) << r.out;
}

TEST(HardeningCli, UnknownCheckpointTensorsAreNamed) {
  // Issue "Hardening" 7: a checkpoint with extra tensors loaded silently.
  std::string dir = shoal::test::tempDir();
  writeFile(dir + "/p.mmd", smallPipeline("metrics=accuracy checkpoint=" + dir + "/w.safetensors"));
  auto train = runCli("run '" + dir + "/p.mmd' --device cpu");
  ASSERT_EQ(train.exitCode, 0) << train.err;
  // An inference pipeline with the dense layer only under another name, plus the same layer.
  writeFile(dir + "/e.mmd", "flowchart TD\n"
                            "  x[input: mnist path=data/mnist-10k batch=64] --> pre[preprocess: scale=1/255]\n"
                            "  pre --> f[flatten] --> d1[dense: units=10] --> out[output: metrics=accuracy]\n");
  auto quiet = runCli("run '" + dir + "/e.mmd' --device cpu --weights '" + dir + "/w.safetensors'");
  ASSERT_EQ(quiet.exitCode, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("ignored"), std::string::npos) << "Adam's state of d1 is expected:\n" << quiet.err;
  auto verbose = runCli("run '" + dir + "/e.mmd' --device cpu --verbose --weights '" + dir + "/w.safetensors'");
  ASSERT_EQ(verbose.exitCode, 0) << verbose.err;
  EXPECT_NE(verbose.err.find("note: " + dir + "/w.safetensors: ignored 4 tensors the model does not have: d1.weight.m, "),
            std::string::npos)
      << verbose.err;
  // A tensor no model has is named without --verbose.
  auto file = shoal::loadSafetensors(dir + "/w.safetensors");
  ASSERT_TRUE(file) << file.error().message();
  file->tensors.emplace_back("stray.weight", shoal::Tensor(shoal::DType::F32, {3}));
  ASSERT_TRUE(shoal::saveSafetensors(dir + "/w2.safetensors", file->tensors));
  auto stray = runCli("run '" + dir + "/e.mmd' --device cpu --weights '" + dir + "/w2.safetensors'");
  ASSERT_EQ(stray.exitCode, 0) << stray.err;
  EXPECT_NE(stray.err.find("note: " + dir + "/w2.safetensors: ignored 1 tensor the model does not have: stray.weight\n"),
            std::string::npos)
      << stray.err;
}

}  // namespace
