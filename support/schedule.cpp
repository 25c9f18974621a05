// Learning-rate schedules (the public LrSchedule of <shoal/train.h>): PyTorch's closed forms.
#include <shoal/train.h>

#include <cmath>
#include <numbers>

namespace shoal {

double LrSchedule::rate(double base, int64_t t) const {
  if (warmup > 0) {
    // LinearLR(start_factor=1/W, total_iters=W-1): base·(t+1)/W, reaching base at t = W-1.
    if (t < warmup) return base * double(t + 1) / double(warmup);
    t -= warmup;  // SequentialLR: the schedule starts at its own step 0
  }
  switch (kind) {
    case ScheduleKind::Constant:
      return base;
    case ScheduleKind::Step:
      return stepSize > 0 ? base * std::pow(gamma, double(t / stepSize)) : base;
    case ScheduleKind::Cosine:
      if (tMax <= 0) return base;
      return etaMin + (base - etaMin) * (1 + std::cos(std::numbers::pi * double(t) / double(tMax))) / 2;
  }
  return base;
}

}  // namespace shoal
