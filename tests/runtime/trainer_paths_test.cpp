// The trainer refuses an unwritable checkpoint path before it trains (issue "Hardening" 7),
// for API users as for the CLI.
#include <gtest/gtest.h>

#include "frontend/pipeline_loader.h"
#include "runtime/trainer.h"
#include "test_util.h"

namespace shoal {
namespace {

TEST(TrainerPaths, CheckpointInAMissingDirectoryFailsBeforeTraining) {
  std::string dir = test::tempDir();
  std::string text = "flowchart TD\n"
                     "  x[input: mnist path=data/mnist-10k batch=64] --> pre[preprocess: scale=1/255]\n"
                     "  pre --> f[flatten] --> d1[dense: units=10]\n"
                     "  d1 --> t[train: epochs=1]\n"
                     "  t --> out[output: checkpoint=" + dir + "/gone/w.safetensors]\n";
  DiagnosticEngine diags;
  auto p = loadPipelineText(text, "p.mmd", diags);
  ASSERT_TRUE(p) << diags.render();
  TrainOptions opts;
  opts.device = DeviceKind::Cpu;
  int steps = 0;
  opts.onStep = [&](const StepProgress&) { ++steps; };
  auto r = trainPipeline(*p, opts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "cannot write '" + dir + "/gone/w.safetensors': directory '" + dir + "/gone' does not exist");
  EXPECT_EQ(r.error().location().str(), "p.mmd:5:13");
  EXPECT_EQ(steps, 0) << "no step may run before the path is known to be writable";
}

}  // namespace
}  // namespace shoal
