// The progress line of `shoal run` on a terminal, against hand-written expectations.
#include "runtime/progress.h"

#include <gtest/gtest.h>

#include <cmath>

namespace shoal {
namespace {

TEST(Progress, LineWithEveryFigure) {
  ProgressFigures f;
  f.epoch = 2, f.epochs = 5, f.step = 61, f.steps = 125;
  f.runningLoss = 0.21434;
  f.imagesPerSecond = 5120.4;
  f.etaSeconds = 3.4;
  // floor(20 * 61 / 125) = 9 characters of progress, the last a '>'.
  EXPECT_EQ(formatProgressLine(f), "epoch 2/5 [========>           ] 61/125  loss 0.2143  5120 img/s  ETA 0:03");
}

TEST(Progress, UnknownFiguresAreLeftOut) {
  ProgressFigures f;
  f.epoch = 1, f.epochs = 3, f.step = 1, f.steps = 125;
  f.runningLoss = std::nan("");
  EXPECT_EQ(formatProgressLine(f), "epoch 1/3 [                    ] 1/125");
  f.step = 125;  // complete: all '=' and no '>'
  EXPECT_EQ(formatProgressLine(f), "epoch 1/3 [====================] 125/125");
  f.steps = 0, f.step = 7;  // a batch source that does not say how long an epoch is
  f.runningLoss = 1.5;
  f.etaSeconds = 10;
  EXPECT_EQ(formatProgressLine(f), "epoch 1/3 7  loss 1.5000  ETA 0:10");
}

TEST(Progress, BarWidth) {
  ProgressFigures f;
  f.epoch = 1, f.epochs = 1, f.step = 5, f.steps = 10, f.barWidth = 4;
  f.runningLoss = std::nan("");
  EXPECT_EQ(formatProgressLine(f), "epoch 1/1 [=>  ] 5/10");
}

TEST(Progress, EtaFormatAndEstimate) {
  EXPECT_EQ(formatEta(0), "0:00");
  EXPECT_EQ(formatEta(7.4), "0:07");
  EXPECT_EQ(formatEta(59.6), "1:00");
  EXPECT_EQ(formatEta(725), "12:05");
  EXPECT_EQ(formatEta(3723), "1:02:03");
  EXPECT_EQ(formatEta(-3), "0:00");
  // 2 s for 50 of 625 steps: 0.04 s a step, 575 to go.
  EXPECT_DOUBLE_EQ(etaSeconds(2.0, 50, 625), 23.0);
  EXPECT_LT(etaSeconds(2.0, 0, 625), 0);
  EXPECT_LT(etaSeconds(2.0, 5, 0), 0);
  EXPECT_EQ(etaSeconds(2.0, 625, 625), 0.0);
}

}  // namespace
}  // namespace shoal
