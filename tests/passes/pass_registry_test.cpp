// The pass registry: names, factories, the default pipeline built from it, groups.
#include <gtest/gtest.h>

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
  EXPECT_EQ(training.passNames(), knownPassNames());
  std::vector<std::string> withoutAutodiff = knownPassNames();
  std::erase(withoutAutodiff, "autodiff");
  EXPECT_EQ(inference.passNames(), withoutAutodiff);
}

TEST(PassRegistry, GroupsAreSharedPrefixes) {
  EXPECT_EQ(passGroups(), std::vector<std::string>{"fuse"});
  EXPECT_TRUE(isKnownPassSelector("fuse"));
  EXPECT_TRUE(isKnownPassSelector("fold-constants"));
  EXPECT_FALSE(isKnownPassSelector("fold"));  // one pass is no group
  EXPECT_FALSE(isKnownPassSelector("fuse-"));
}

}  // namespace
}  // namespace shoal
