// Memory planning: live ranges, the trivial planner, the overlap checker, JSON.
#include "passes/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace shoal {

namespace {
int64_t alignUp(int64_t n) { return (n + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment; }
}  // namespace

std::unordered_map<const Value*, std::pair<int, int>> liveRanges(const Graph& g) {
  std::unordered_map<const Value*, std::pair<int, int>> ranges;
  const auto& nodes = g.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (Value* in : nodes[i]->inputs())
      if (ranges.count(in)) ranges[in].second = int(i);
    for (size_t r = 0; r < nodes[i]->numResults(); ++r) ranges[nodes[i]->result(r)] = {int(i), int(i)};
  }
  // Graph outputs are read after the last node.
  for (Node* out : g.outputNodes())
    if (ranges.count(out->input(0))) ranges[out->input(0)].second = int(nodes.size());
  return ranges;
}

MemoryPlan planMemoryTrivial(const Graph& g) {
  MemoryPlan plan;
  auto ranges = liveRanges(g);
  for (Node* n : g.nodes()) {
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      BufferAssignment a;
      a.bytes = int64_t(v->type().byteSize());
      a.firstUse = ranges[v].first;
      a.lastUse = ranges[v].second;
      a.persistent = isPersistentSource(n->kind());
      int64_t& region = a.persistent ? plan.persistentBytes : plan.arenaBytes;
      a.offset = region;
      region += alignUp(std::max<int64_t>(a.bytes, 1));
      if (!a.persistent) plan.naiveBytes += a.bytes;
      plan.buffers[v] = a;
    }
  }
  // Peak of simultaneously live transient bytes, for comparison with smarter planners.
  std::vector<int64_t> live(g.size() + 2, 0);
  for (auto& [v, a] : plan.buffers) {
    if (a.persistent) continue;
    for (int t = a.firstUse; t <= a.lastUse; ++t) live[size_t(t)] += a.bytes;
  }
  plan.peakLiveBytes = live.empty() ? 0 : *std::max_element(live.begin(), live.end());
  return plan;
}

std::string checkMemoryPlan(const Graph& g, const MemoryPlan& plan) {
  std::vector<std::pair<const Value*, BufferAssignment>> all(plan.buffers.begin(), plan.buffers.end());
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [va, a] = all[i];
    if (a.offset < 0 || a.offset + a.bytes > (a.persistent ? plan.persistentBytes : plan.arenaBytes))
      return fmt::format("%{} [{}, {}) lies outside its region", va->name(), a.offset, a.offset + a.bytes);
    for (size_t j = i + 1; j < all.size(); ++j) {
      const auto& [vb, b] = all[j];
      if (a.persistent != b.persistent) continue;
      bool timeOverlap = a.firstUse <= b.lastUse && b.firstUse <= a.lastUse;
      bool spaceOverlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      if (timeOverlap && spaceOverlap && a.bytes > 0 && b.bytes > 0)
        return fmt::format("%{} [{}, {}) live {}..{} overlaps %{} [{}, {}) live {}..{}", va->name(), a.offset,
                           a.offset + a.bytes, a.firstUse, a.lastUse, vb->name(), b.offset, b.offset + b.bytes,
                           b.firstUse, b.lastUse);
    }
  }
  return "";
}

std::string memoryPlanJson(const Graph& g, const MemoryPlan& plan) {
  nlohmann::ordered_json j;
  j["arena_bytes"] = plan.arenaBytes;
  j["persistent_bytes"] = plan.persistentBytes;
  j["peak_live_bytes"] = plan.peakLiveBytes;
  j["naive_bytes"] = plan.naiveBytes;
  nlohmann::ordered_json bufs = nlohmann::ordered_json::array();
  for (Node* n : g.nodes())
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      const BufferAssignment& a = plan.at(v);
      nlohmann::ordered_json b;
      b["value"] = v->name();
      b["offset"] = a.offset;
      b["bytes"] = a.bytes;
      b["first"] = a.firstUse;
      b["last"] = a.lastUse;
      b["persistent"] = a.persistent;
      bufs.push_back(b);
    }
  j["buffers"] = bufs;
  return j.dump(2) + "\n";
}

}  // namespace shoal
