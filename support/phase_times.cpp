// Phase timing for the start-up breakdown.
#include "support/phase_times.h"

#include <time.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace shoal {

namespace {

struct Record {
  std::mutex mutex;
  std::vector<PhaseTime> entries;
};

Record& record() {
  static Record r;
  return r;
}

std::thread::id& mainThread() {
  static std::thread::id id = std::this_thread::get_id();
  return id;
}

thread_local PhaseTimer* innermost = nullptr;

}  // namespace

PhaseTimes& PhaseTimes::global() {
  static PhaseTimes times;
  return times;
}

void PhaseTimes::add(std::string_view phase, double seconds, bool background) {
  Record& r = record();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (PhaseTime& e : r.entries)
    if (e.phase == phase && e.background == background) {
      e.seconds += seconds;
      ++e.count;
      return;
    }
  r.entries.push_back(PhaseTime{std::string(phase), seconds, 1, background});
}

std::vector<PhaseTime> PhaseTimes::entries() const {
  Record& r = record();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.entries;
}

void PhaseTimes::clear() {
  Record& r = record();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.entries.clear();
}

void markMainThread() { mainThread() = std::this_thread::get_id(); }

PhaseTimer::PhaseTimer(const char* phase) : phase_(phase), parent_(innermost), resumed_(Clock::now()) {
  if (parent_) parent_->seconds_ += std::chrono::duration<double>(resumed_ - parent_->resumed_).count();
  innermost = this;
}

PhaseTimer::~PhaseTimer() {
  auto now = Clock::now();
  seconds_ += std::chrono::duration<double>(now - resumed_).count();
  PhaseTimes::global().add(phase_, seconds_, std::this_thread::get_id() != mainThread());
  innermost = parent_;
  if (parent_) parent_->resumed_ = now;
}

double secondsSinceProcessStart() {
  // Field 22 of /proc/self/stat: the start time in clock ticks after boot (so to 10 ms).
  std::ifstream statFile("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(statFile)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long startTicks = 0;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) startTicks = std::stoull(field);
  timespec now{};
  if (clock_gettime(CLOCK_BOOTTIME, &now) != 0 || startTicks == 0) return -1;
  const double uptime = double(now.tv_sec) + double(now.tv_nsec) * 1e-9;
  long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return -1;
  return uptime - double(startTicks) / double(ticks);
}

}  // namespace shoal
