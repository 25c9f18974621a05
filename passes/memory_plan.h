// Memory planning: every value of a scheduled graph gets an offset in one arena.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "support/checked.h"

namespace shoal {

/// Where one value lives. Persistent values (params, state) live in their own region that
/// survives across runs; everything else in the transient arena.
struct BufferAssignment {
  int64_t offset = 0;   ///< bytes from the start of its region
  int64_t bytes = 0;
  int firstUse = 0;     ///< index in program order of the defining node (0 for inputs)
  int lastUse = 0;      ///< index of the last reader (== firstUse when unused; graph size for outputs)
  bool persistent = false;
};

/// The plan: a region size for transient values, one for persistent ones, and a slot per
/// value. Executors allocate exactly these two regions and address every value through here.
///
/// Aliasing: a value in `aliasOf` shares the buffer of another value (same offset, same
/// bytes): either a zero-copy view (flatten, reshape, or a cast to the same dtype, whose
/// executor copy must then be skipped when source and destination coincide) or an in-place
/// result (an elementwise op writing over an operand that dies there; see inPlaceOperands).
/// An alias group is one buffer, live over the union of its members' ranges.
struct MemoryPlan {
  int64_t arenaBytes = 0;        ///< transient region
  int64_t persistentBytes = 0;   ///< params + state region
  int64_t peakLiveBytes = 0;     ///< largest total of simultaneously live transient buffers
  int peakAt = 0;                ///< program index where that peak is reached (graph size: after the last node)
  int64_t naiveBytes = 0;        ///< sum of all transient buffers
  std::unordered_map<const Value*, BufferAssignment> buffers;
  /// value -> the first-defined value of its alias group (never itself, never chained).
  std::unordered_map<const Value*, const Value*> aliasOf;

  const BufferAssignment& at(const Value* v) const { return buffers.at(v); }
  /// arenaBytes + persistentBytes, saturating at INT64_MAX (the region sizes saturate too).
  int64_t totalBytes() const { return saturatingAdd(arenaBytes, persistentBytes); }
  /// The value whose buffer `v` uses: aliasOf[v], or v itself.
  const Value* bufferOf(const Value* v) const {
    auto it = aliasOf.find(v);
    return it == aliasOf.end() ? v : it->second;
  }
};

/// Alignment of every buffer (bytes): enough for 16-byte vector loads and cache lines.
inline constexpr int64_t kBufferAlignment = 256;

/// What planMemory may do beyond giving every value its own slot.
struct PlannerOptions {
  bool inPlace = true;  ///< elementwise results overwrite a dying operand; views share their input
  bool reuse = true;    ///< values whose lifetimes do not intersect share arena bytes
};

/// The default cap on one program's memory plan (arena + persistent bytes; CompileOptions::
/// memoryLimit, `--memory-limit`): the smaller of the machine's physical memory and the
/// process's address-space and data-segment limits (RLIMIT_AS, RLIMIT_DATA), so a program
/// that could never be allocated here fails at compile time (`shoal check`) with a message
/// instead of running out of memory. 0 when none of them is known (no cap).
int64_t defaultMemoryLimit();

/// Live ranges (first def, last use in program order) of every value of a scheduled graph.
/// Inputs are written before node 0, so they start at 0; graph outputs are read after the
/// last node, so they end at g.size().
std::unordered_map<const Value*, std::pair<int, int>> liveRanges(const Graph& g);

/// True when `n`'s result can be its operand 0's buffer reinterpreted, without a copy:
/// flatten, reshape, and cast to the same dtype. Executors must skip the copy when the
/// source and destination addresses coincide.
bool isViewOp(const Node& n);

/// Operand indices whose buffer `n`'s result may take over (the kernel reads element i of
/// that operand before writing element i of the result, on CPU and GPU alike): unary
/// activations, scale/normalize, activation gradients, same-shape operands of add/sub/mul/div,
/// softmax/log_softmax (row-wise), the dy of their gradients, mse_grad. Only operands with
/// the result's exact type are listed. Preferred operand first.
std::vector<int> inPlaceOperands(const Node& n);

/// The trivial planner: one slot per value, nothing shared. For comparison and tests.
MemoryPlan planMemoryTrivial(const Graph& g);

/// The real planner: liveness over the scheduled graph, in-place results and views (alias
/// groups), then greedy-by-size best-fit packing of the groups into one transient arena.
/// Params and state get the persistent region (params first, then state, in program order;
/// the same layout planMemoryTrivial uses, so programs of one model can share it).
MemoryPlan planMemory(const Graph& g, const PlannerOptions& opts = {});

/// Checks a plan against the graph: every value has an aligned slot inside its region whose
/// recorded range covers its true live range; every alias is legal (a view of a member, or
/// an in-place write over members that all die at that node through operands the op allows);
/// no two distinct buffers (alias groups) that are live at the same time overlap; no two
/// persistent buffers overlap at all. Returns a description of the first problem, or "".
std::string checkMemoryPlan(const Graph& g, const MemoryPlan& plan);

/// JSON: arena_bytes, persistent_bytes, peak_live_bytes, naive_bytes, peak_at (program index),
/// buffers[{value, offset, bytes, first, last, persistent, alias_of (only when aliased)}].
std::string memoryPlanJson(const Graph& g, const MemoryPlan& plan);

}  // namespace shoal
