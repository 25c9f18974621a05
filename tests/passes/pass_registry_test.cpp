// The pass registry: names, factories, the default pipeline built from it, groups.
#include <gtest/gtest.h>

#include <algorithm>

#include "ir/pipeline.h"
#include "passes/program.h"

namespace shoal {
namespace {

TEST(PassRegistry, EveryPassIsCreatedByItsName) {
  for (const PassRegistration& r : passRegistry()) {
    auto pass = createPass(r.name);
    ASSERT_TRUE(pass) << r.name;
    EXPECT_EQ(pass->name(), r.name);
    EXPECT_FALSE(pass->summary().empty()) << r.name;
  }
  EXPECT_EQ(createPass("bogus"), nullptr);
}

TEST(PassRegistry, TheDefaultPipelinesFollowTheRegistry) {
  PassManager inference, training;
  CompileOptions opts;
  buildPipeline(inference, opts);
  TrainConfig train;
  opts.train = &train;
  buildPipeline(training, opts);
  std::vector<std::string> trainingPasses, inferencePasses;
  for (const PassRegistration& r : passRegistry()) {
    if (!r.inferenceOnly) trainingPasses.emplace_back(r.name);
    if (!r.trainingOnly) inferencePasses.emplace_back(r.name);
  }
  EXPECT_EQ(training.passNames(), trainingPasses);
  EXPECT_EQ(inference.passNames(), inferencePasses);
  for (const char* name : {"training-forms", "autodiff"})
    EXPECT_EQ(std::count(inferencePasses.begin(), inferencePasses.end(), name), 0) << name;
  EXPECT_EQ(std::count(trainingPasses.begin(), trainingPasses.end(), "fold-batchnorm"), 0);
}

TEST(PassRegistry, GroupsAreSharedPrefixes) {
  EXPECT_EQ(passGroups(), (std::vector<std::string>{"fold", "fuse"}));
  EXPECT_TRUE(isKnownPassSelector("fuse"));
  EXPECT_TRUE(isKnownPassSelector("fold"));  // fold-constants and fold-batchnorm
  EXPECT_TRUE(isKnownPassSelector("fold-constants"));
  EXPECT_FALSE(isKnownPassSelector("training"));  // one pass is no group
  EXPECT_FALSE(isKnownPassSelector("fuse-"));
}

}  // namespace
}  // namespace shoal
