// The training progress line.
#include "runtime/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace shoal {

std::string formatEta(double seconds) {
  int64_t s = int64_t(std::llround(std::max(seconds, 0.0)));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

double etaSeconds(double elapsed, int64_t done, int64_t total) {
  if (done <= 0 || total <= 0 || !(elapsed >= 0)) return -1;
  return elapsed / double(done) * double(std::max<int64_t>(total - done, 0));
}

std::string formatProgressLine(const ProgressFigures& f) {
  std::string line = fmt::format("epoch {}/{} ", f.epoch, f.epochs);
  if (f.steps > 0) {
    const int width = std::max(f.barWidth, 1);
    const int64_t step = std::clamp<int64_t>(f.step, 0, f.steps);
    int done = int(int64_t(width) * step / f.steps);
    std::string bar(size_t(done), '=');
    if (done > 0 && step < f.steps) bar.back() = '>';
    bar.resize(size_t(width), ' ');
    line += fmt::format("[{}] {}/{}", bar, f.step, f.steps);
  } else {
    line += fmt::format("{}", f.step);
  }
  if (!std::isnan(f.runningLoss)) line += fmt::format("  loss {:.4f}", f.runningLoss);
  if (f.imagesPerSecond > 0) line += fmt::format("  {:.0f} img/s", f.imagesPerSecond);
  if (f.etaSeconds >= 0) line += "  ETA " + formatEta(f.etaSeconds);
  return line;
}

}  // namespace shoal
