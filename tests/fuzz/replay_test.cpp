// Replays every seed (tests/fuzz/corpus/<harness>/) and every crash regression the fuzzers
// found (tests/fuzz/regressions/<harness>/) through the harness bodies: none may crash, trip a
// sanitizer (in the ASan build) or break its harness's property.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> filesIn(const std::string& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(FuzzReplay, SeedCorporaAndRegressions) {
  for (const shoal::fuzz::Target& target : shoal::fuzz::targets()) {
    auto seeds = filesIn(shoal::test::sourcePath("tests/fuzz/corpus/") + target.name);
    EXPECT_FALSE(seeds.empty()) << "no seed corpus for " << target.name;
    auto regressions = filesIn(shoal::test::sourcePath("tests/fuzz/regressions/") + target.name);
    seeds.insert(seeds.end(), regressions.begin(), regressions.end());
    for (const fs::path& file : seeds) {
      SCOPED_TRACE(file.string());
      EXPECT_EQ(target.run(shoal::test::readFile(file.string())), "");
    }
  }
}

}  // namespace
