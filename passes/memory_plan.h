// Memory planning: every value of a scheduled graph gets an offset in one arena.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "ir/graph.h"

namespace shoal {

/// Where one value lives. Persistent values (params, state) live in their own region that
/// survives across runs; everything else in the transient arena.
struct BufferAssignment {
  int64_t offset = 0;   ///< bytes from the start of its region
  int64_t bytes = 0;
  int firstUse = 0;     ///< index in program order of the defining node
  int lastUse = 0;      ///< index of the last reader (== firstUse when unused)
  bool persistent = false;
};

/// The plan: a region size for transient values, one for persistent ones, and a slot per
/// value. Executors allocate exactly these two regions and address every value through here.
struct MemoryPlan {
  int64_t arenaBytes = 0;        ///< transient region
  int64_t persistentBytes = 0;   ///< params + state region
  int64_t peakLiveBytes = 0;     ///< largest total of simultaneously live transient buffers
  int64_t naiveBytes = 0;        ///< sum of all transient buffers
  std::unordered_map<const Value*, BufferAssignment> buffers;

  const BufferAssignment& at(const Value* v) const { return buffers.at(v); }
};

/// Alignment of every buffer (bytes): enough for 16-byte vector loads and cache lines.
inline constexpr int64_t kBufferAlignment = 256;

/// Live ranges (first def, last use in program order) of every value of a scheduled graph.
std::unordered_map<const Value*, std::pair<int, int>> liveRanges(const Graph& g);

/// The trivial planner: one slot per value, nothing shared. A later planner packs by liveness;
/// executors already address memory only through the plan.
MemoryPlan planMemoryTrivial(const Graph& g);

/// Checks that no two simultaneously live buffers overlap; returns a description of the
/// first conflict, or "" when the plan is sound.
std::string checkMemoryPlan(const Graph& g, const MemoryPlan& plan);

/// JSON: arena_bytes, persistent_bytes, peak_live_bytes, naive_bytes, buffers[{value, offset,
/// bytes, first, last, persistent}].
std::string memoryPlanJson(const Graph& g, const MemoryPlan& plan);

}  // namespace shoal
