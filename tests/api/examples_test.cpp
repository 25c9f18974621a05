// The example networks (examples/resnet_mnist.mmd, mobilenet_mnist.mmd, transformer_mnist.mmd),
// cheaply: each passes `shoal check`, compiles its training step, and fits one batch of 32
// training digits (the loss on it falls). scripts/train-examples.sh trains them in full and
// checks their test accuracy; that takes minutes, so it is not a unit test.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cstring>

#include "runtime/data/idx.h"
#include "test_util.h"

namespace {

using shoal::Tensor;

const char* const kNetworks[] = {"examples/resnet_mnist.mmd", "examples/mobilenet_mnist.mmd",
                                 "examples/transformer_mnist.mmd"};

TEST(ExampleNetworks, PassShoalCheck) {
  for (const char* file : kNetworks) {
    SCOPED_TRACE(file);
    auto r = shoal::test::runCli(std::string("check ") + file);
    EXPECT_EQ(r.exitCode, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("trains"), std::string::npos) << r.out;
  }
}

TEST(ExampleNetworks, FitOneBatch) {
  auto train = shoal::loadMnist(shoal::test::sourcePath("data/mnist-10k"), true);
  ASSERT_TRUE(train) << train.error().str();
  const int64_t n = 32;
  Tensor images(shoal::DType::U8, {n, 1, 28, 28});
  Tensor labels(shoal::DType::I64, {n});
  std::memcpy(images.raw(), train->images.raw(), images.byteSize());
  std::memcpy(labels.raw(), train->labels.raw(), labels.byteSize());
  for (const char* file : kNetworks) {
    SCOPED_TRACE(file);
    auto pipeline = shoal::loadPipeline(shoal::test::sourcePath(file));
    ASSERT_TRUE(pipeline) << pipeline.error().message();
    // The pipeline's loss and optimizer at its base rate: its schedule (cosine, warm-up) spans
    // the whole run's steps, of which this test takes twelve.
    shoal::TrainingOptions options = pipeline->trainingOptions();
    options.schedule = {};
    auto trainer = shoal::Trainer::create(pipeline->model(), options, {.device = shoal::DeviceKind::Cpu, .seed = 0});
    ASSERT_TRUE(trainer) << trainer.error().str();
    std::vector<double> losses;
    for (int i = 0; i < 12; ++i) {
      auto s = trainer->step({{"x", images}, {"labels", labels}});
      ASSERT_TRUE(s) << s.error().str();
      losses.push_back(s->loss);
    }
    // Ten classes at the start: about ln 10 = 2.3. Twelve steps on the one batch take each
    // network well below it (to 0.46, 0.58 and 0.38 of the first loss when written).
    EXPECT_GT(losses.front(), 1.5);
    EXPECT_LT(losses.back(), 0.75 * losses.front()) << "losses " << ::testing::PrintToString(losses);
  }
}

}  // namespace
