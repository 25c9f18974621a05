// The training progress line of `shoal run` on a terminal: a pure function of the numbers,
// so tests can check it by hand.
#pragma once

#include <cstdint>
#include <string>

namespace shoal {

struct ProgressFigures {
  int64_t epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;  ///< steps is 0 when the epoch's length is unknown (no bar, no ETA)
  double runningLoss = 0;       ///< NaN: not read yet (left out)
  double imagesPerSecond = 0;   ///< 0 or less: unknown (left out)
  double etaSeconds = -1;       ///< below 0: unknown (left out)
  int barWidth = 20;
};

/// "epoch 2/5 [=========>          ] 61/125  loss 0.2143  5120 img/s  ETA 0:03"; without a
/// known step count "epoch 2/5 61  loss ...". The bar holds floor(width * step / steps)
/// characters of progress, the last of them a '>' until the epoch is complete.
std::string formatProgressLine(const ProgressFigures& f);

/// A duration for an ETA: "0:07", "12:05", "1:02:03" (rounded to the second).
std::string formatEta(double seconds);

/// The seconds left of a run from the time spent so far: `elapsed` for `done` of `total`
/// steps; below 0 when it cannot be told (no step done, or the total unknown).
double etaSeconds(double elapsed, int64_t done, int64_t total);

}  // namespace shoal
