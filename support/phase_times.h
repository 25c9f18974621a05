// Where the wall time of a run goes, by named phase (CUDA context, data loading, NVRTC,
// training, ...), for `shoal run --verbose`. Phases nest: a phase's time excludes the phases
// opened inside it on the same thread, so the phases of one thread add up to its wall time.
// Phases on other threads (work overlapped with the main thread) are kept apart.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {

struct PhaseTime {
  std::string phase;
  double seconds = 0;       ///< exclusive of nested phases
  int64_t count = 0;        ///< times the phase was entered
  bool background = false;  ///< ran on another thread than the first phase recorded
};

/// The process-wide record.
class PhaseTimes {
 public:
  static PhaseTimes& global();
  /// Adds `seconds` to `phase` (background: on a thread other than the main one).
  void add(std::string_view phase, double seconds, bool background);
  /// The phases in the order they were first recorded.
  std::vector<PhaseTime> entries() const;
  void clear();
};

/// Times its scope as `phase` (exclusive of phases opened inside it on this thread). The
/// phase name must outlive the timer (a string literal).
class PhaseTimer {
 public:
  explicit PhaseTimer(const char* phase);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;
  /// Records the scope under another phase (known only at its end: a cache hit or a compile).
  void rename(const char* phase) { phase_ = phase; }

 private:
  using Clock = std::chrono::steady_clock;
  const char* phase_;
  PhaseTimer* parent_;
  Clock::time_point resumed_;
  double seconds_ = 0;
};

/// Marks the calling thread as the main one (its phases are not "background"); the CLI calls
/// it first thing.
void markMainThread();

/// Seconds between the process's start (exec, from /proc) and now; negative when unknown.
double secondsSinceProcessStart();

}  // namespace shoal
