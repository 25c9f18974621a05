// Memory planning: live ranges, alias rules, the trivial and the packing planners, the checker, JSON.
#include "passes/memory_plan.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "support/checked.h"

namespace shoal {

namespace {

// Sizes and offsets saturate at INT64_MAX instead of overflowing: a plan that big fails the
// memory limit (compileProgram) or its allocation, with a message, never wraps to a small one.
int64_t alignUp(int64_t n) {
  if (n > std::numeric_limits<int64_t>::max() - kBufferAlignment) return std::numeric_limits<int64_t>::max();
  return (n + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

// Bytes of a value's buffer (shape inference bounds them; this only keeps the planner total).
int64_t bufferBytes(const TensorType& t) { return checkedByteSize(t).value_or(std::numeric_limits<int64_t>::max()); }

// Params first, then state, each in program order, aligned: the same layout for every
// planner and for every program of one model (a training step and its evaluation program
// share the region by name and offset).
void layoutPersistent(const Graph& g, MemoryPlan& plan) {
  int end = int(g.size());
  for (OpKind kind : {OpKind::Param, OpKind::State})
    for (Node* n : g.nodes()) {
      if (n->kind() != kind) continue;
      for (size_t r = 0; r < n->numResults(); ++r) {
        BufferAssignment a;
        a.bytes = bufferBytes(n->result(r)->type());
        a.firstUse = 0;
        a.lastUse = end;
        a.persistent = true;
        a.offset = plan.persistentBytes;
        plan.persistentBytes = saturatingAdd(plan.persistentBytes, alignUp(std::max<int64_t>(a.bytes, 1)));
        plan.buffers[n->result(r)] = a;
      }
    }
}

// Largest total of simultaneously live transient bytes and where it is reached, counting
// each alias group once (at its root).
void computePeak(const Graph& g, MemoryPlan& plan) {
  std::unordered_map<const Value*, std::pair<int, int>> span;  // root -> union of member ranges
  for (const auto& [v, a] : plan.buffers) {
    if (a.persistent || a.bytes == 0) continue;
    auto [it, fresh] = span.try_emplace(plan.bufferOf(v), a.firstUse, a.lastUse);
    if (!fresh) {
      it->second.first = std::min(it->second.first, a.firstUse);
      it->second.second = std::max(it->second.second, a.lastUse);
    }
  }
  // 128-bit sums: many buffers near the size limit may together pass 2^63 bytes.
  std::vector<__int128> delta(g.size() + 2, 0);
  for (const auto& [root, r] : span) {
    int64_t bytes = plan.at(root).bytes;
    delta[size_t(r.first)] += bytes;
    delta[size_t(r.second) + 1] -= bytes;
  }
  plan.peakLiveBytes = 0;
  plan.peakAt = 0;
  __int128 live = 0, peak = 0;
  for (size_t t = 0; t + 1 < delta.size(); ++t) {
    live += delta[t];
    if (live > peak) peak = live, plan.peakAt = int(t);
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  plan.peakLiveBytes = peak > kMax ? kMax : int64_t(peak);
}

}  // namespace

int64_t defaultMemoryLimit() {
  static const int64_t limit = [] {
    int64_t cap = 0;
    auto lower = [&](uint64_t bytes) {
      if (bytes == 0) return;
      int64_t b = bytes > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max() : int64_t(bytes);
      cap = cap == 0 ? b : std::min(cap, b);
    };
    long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && pageSize > 0) lower(uint64_t(pages) * uint64_t(pageSize));
    for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
      rlimit rl{};
      if (::getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lower(uint64_t(rl.rlim_cur));
    }
    return cap;
  }();
  return limit;
}

std::unordered_map<const Value*, std::pair<int, int>> liveRanges(const Graph& g) {
  std::unordered_map<const Value*, std::pair<int, int>> ranges;
  const auto& nodes = g.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (Value* in : nodes[i]->inputs())
      if (ranges.count(in)) ranges[in].second = int(i);
    // Inputs are fed before node 0 runs, wherever the schedule puts their node.
    int def = nodes[i]->kind() == OpKind::Input ? 0 : int(i);
    for (size_t r = 0; r < nodes[i]->numResults(); ++r) ranges[nodes[i]->result(r)] = {def, int(i)};
  }
  // Graph outputs are read after the last node.
  for (Node* out : g.outputNodes())
    if (ranges.count(out->input(0))) ranges[out->input(0)].second = int(nodes.size());
  return ranges;
}

bool isViewOp(const Node& n) {
  if (n.numInputs() < 1 || n.numResults() != 1) return false;
  const TensorType& in = n.input(0)->type();
  const TensorType& out = n.result()->type();
  if (in.dtype != out.dtype || in.byteSize() != out.byteSize()) return false;
  return n.info().traits.isView;
}

std::vector<int> inPlaceOperands(const Node& n) {
  const OpTraits& t = n.info().traits;
  std::vector<int> candidates(t.inPlaceOperands.begin(), t.inPlaceOperands.begin() + t.numInPlace);
  if (t.inPlaceAnyOperand)
    for (size_t i = 0; i < n.numInputs(); ++i) candidates.push_back(int(i));
  std::vector<int> out;
  if (n.numResults() != 1) return out;
  for (int k : candidates)
    if (size_t(k) < n.numInputs() && n.input(size_t(k))->type() == n.result()->type()) out.push_back(k);
  return out;
}

MemoryPlan planMemoryTrivial(const Graph& g) {
  MemoryPlan plan;
  layoutPersistent(g, plan);
  auto ranges = liveRanges(g);
  for (Node* n : g.nodes()) {
    if (isPersistentSource(n->kind())) continue;
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      BufferAssignment a;
      a.bytes = bufferBytes(v->type());
      a.firstUse = ranges[v].first;
      a.lastUse = ranges[v].second;
      a.offset = plan.arenaBytes;
      plan.arenaBytes = saturatingAdd(plan.arenaBytes, alignUp(std::max<int64_t>(a.bytes, 1)));
      plan.naiveBytes = saturatingAdd(plan.naiveBytes, a.bytes);
      plan.buffers[v] = a;
    }
  }
  computePeak(g, plan);
  return plan;
}

MemoryPlan planMemory(const Graph& g, const PlannerOptions& opts) {
  MemoryPlan plan;
  layoutPersistent(g, plan);
  auto ranges = liveRanges(g);
  const auto& nodes = g.nodes();

  // 1. Alias groups, in program order. A group is one buffer: its root (first member) and
  //    the views and in-place results that took it over, live over the union of their ranges.
  struct Group {
    const Value* root = nullptr;
    int64_t bytes = 0;
    int first = 0, last = 0;
    bool holdsInput = false;  // caller data: never written over in place
    int64_t offset = 0;
  };
  std::vector<Group> groups;
  std::unordered_map<const Value*, size_t> groupOf;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = *nodes[i];
    if (isPersistentSource(n.kind())) continue;
    for (size_t r = 0; r < n.numResults(); ++r) {
      const Value* v = n.result(r);
      BufferAssignment a;
      a.bytes = bufferBytes(v->type());
      a.firstUse = ranges[v].first;
      a.lastUse = ranges[v].second;
      plan.naiveBytes = saturatingAdd(plan.naiveBytes, a.bytes);
      plan.buffers[v] = a;
      if (a.bytes == 0) continue;  // nothing to place

      std::optional<size_t> join;
      if (opts.inPlace) {
        if (isViewOp(n)) {
          // A view never writes, so the operand may stay live after it.
          auto it = groupOf.find(n.input(0));
          if (it != groupOf.end() && groups[it->second].bytes == a.bytes) join = it->second;
        } else {
          std::vector<int> allowed = inPlaceOperands(n);
          for (int k : allowed) {
            auto it = groupOf.find(n.input(size_t(k)));
            if (it == groupOf.end()) continue;
            const Group& grp = groups[it->second];
            // Every member must die here, and the op may read the buffer only through
            // operands it allows to alias its result.
            if (grp.holdsInput || grp.last != int(i) || grp.bytes != a.bytes) continue;
            bool ok = true;
            for (size_t j = 0; j < n.numInputs(); ++j) {
              auto jt = groupOf.find(n.input(j));
              if (jt != groupOf.end() && jt->second == it->second &&
                  std::find(allowed.begin(), allowed.end(), int(j)) == allowed.end())
                ok = false;
            }
            if (ok) {
              join = it->second;
              break;
            }
          }
        }
      }
      if (join) {
        Group& grp = groups[*join];
        grp.last = std::max(grp.last, a.lastUse);
        grp.first = std::min(grp.first, a.firstUse);
        plan.aliasOf[v] = grp.root;
        groupOf[v] = *join;
      } else {
        Group grp;
        grp.root = v;
        grp.bytes = a.bytes;
        grp.first = a.firstUse;
        grp.last = a.lastUse;
        grp.holdsInput = n.kind() == OpKind::Input;
        groupOf[v] = groups.size();
        groups.push_back(grp);
      }
    }
  }

  // 2. Offsets. Greedy by size: the largest buffers first (equal sizes by birth), each at the
  //    best-fitting gap (the smallest that holds it) among the already placed buffers whose
  //    lifetimes intersect its own, or on top of them.
  std::vector<size_t> order(groups.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const Group &a = groups[x], &b = groups[y];
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    // Equal sizes in order of birth: optimal for equal-sized intervals (interval colouring).
    if (a.first != b.first) return a.first < b.first;
    return a.last > b.last;
  });
  std::vector<size_t> placed;
  for (size_t gi : order) {
    Group& grp = groups[gi];
    int64_t size = alignUp(grp.bytes);
    if (!opts.reuse) {
      grp.offset = plan.arenaBytes;
      plan.arenaBytes = saturatingAdd(plan.arenaBytes, size);
      continue;
    }
    std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, end) of conflicting buffers
    for (size_t pi : placed) {
      const Group& p = groups[pi];
      if (p.first <= grp.last && grp.first <= p.last) busy.emplace_back(p.offset, saturatingAdd(p.offset, alignUp(p.bytes)));
    }
    std::sort(busy.begin(), busy.end());
    int64_t best = -1, bestGap = std::numeric_limits<int64_t>::max(), cursor = 0;
    for (auto [b, e] : busy) {
      if (b - cursor >= size && b - cursor < bestGap) best = cursor, bestGap = b - cursor;
      cursor = std::max(cursor, e);
    }
    grp.offset = best >= 0 ? best : cursor;
    plan.arenaBytes = std::max(plan.arenaBytes, saturatingAdd(grp.offset, size));
    placed.push_back(gi);
  }
  for (auto& [v, a] : plan.buffers) {
    if (a.persistent || a.bytes == 0) continue;
    a.offset = groups[groupOf.at(v)].offset;
  }
  computePeak(g, plan);
  return plan;
}

std::string checkMemoryPlan(const Graph& g, const MemoryPlan& plan) {
  auto ranges = liveRanges(g);
  std::vector<const Value*> values;  // program order
  for (Node* n : g.nodes())
    for (size_t r = 0; r < n->numResults(); ++r) values.push_back(n->result(r));

  // Every value: a slot of the right kind and size, aligned, inside its region, live at
  // least as long as the value is.
  for (const Value* v : values) {
    auto it = plan.buffers.find(v);
    if (it == plan.buffers.end()) return fmt::format("%{} has no buffer", v->name());
    const BufferAssignment& a = it->second;
    bool persistent = isPersistentSource(v->def()->kind());
    if (a.persistent != persistent)
      return fmt::format("%{} is {} but planned in the {} region", v->name(), persistent ? "a param or state" : "transient",
                         a.persistent ? "persistent" : "transient");
    if (a.bytes < int64_t(v->type().byteSize()))
      return fmt::format("%{} needs {} bytes, its buffer has {}", v->name(), v->type().byteSize(), a.bytes);
    if (a.offset < 0 || a.offset + a.bytes > (a.persistent ? plan.persistentBytes : plan.arenaBytes))
      return fmt::format("%{} [{}, {}) lies outside its region", v->name(), a.offset, a.offset + a.bytes);
    if (a.offset % kBufferAlignment != 0)
      return fmt::format("%{} at offset {} is not {}-byte aligned", v->name(), a.offset, kBufferAlignment);
    auto [first, last] = ranges.at(v);
    if (!a.persistent && (a.firstUse > first || a.lastUse < last))
      return fmt::format("%{} is live {}..{} but its buffer is reserved only {}..{}", v->name(), first, last, a.firstUse,
                         a.lastUse);
  }

  // Aliases: one level deep, transient, same slot; and legal: a member either views another
  // (no write) or is written in place over members that all die at its node, read only
  // through operands the op lets its result alias.
  std::unordered_map<const Value*, std::vector<const Value*>> members;  // root -> all members, root included
  for (const auto& [v, root] : plan.aliasOf) {
    if (v == root) return fmt::format("%{} is recorded as an alias of itself", v->name());
    if (!plan.buffers.count(v) || !plan.buffers.count(root))
      return fmt::format("alias %{} -> %{} names a value without a buffer", v->name(), root->name());
    if (plan.aliasOf.count(root))
      return fmt::format("%{} aliases %{}, which is itself an alias", v->name(), root->name());
    const BufferAssignment &a = plan.at(v), &r = plan.at(root);
    if (a.persistent || r.persistent) return fmt::format("%{} aliases %{}: params and state are never shared", v->name(), root->name());
    if (a.offset != r.offset || a.bytes != r.bytes)
      return fmt::format("%{} [{}, {}) aliases %{} but its slot differs [{}, {})", v->name(), a.offset, a.offset + a.bytes,
                         root->name(), r.offset, r.offset + r.bytes);
    members[root].push_back(v);
  }
  for (auto& [root, list] : members) {
    list.push_back(root);
    auto defIndex = [&](const Value* v) { return g.indexOf(v->def()); };
    std::sort(list.begin(), list.end(), [&](const Value* a, const Value* b) { return defIndex(a) < defIndex(b); });
    if (list.front() != root)
      return fmt::format("%{} aliases %{} but is defined before it", list.front()->name(), root->name());
    auto inGroup = [&](const Value* v) { return plan.bufferOf(v) == root; };
    for (size_t m = 1; m < list.size(); ++m) {
      const Value* v = list[m];
      const Node& n = *v->def();
      int at = int(defIndex(v));
      bool reads = std::any_of(n.inputs().begin(), n.inputs().end(), inGroup);
      if (!reads)
        return fmt::format("%{} shares %{}'s buffer, but {} does not read that buffer", v->name(), root->name(), n.describe());
      if (isViewOp(n) && inGroup(n.input(0))) continue;  // a view writes nothing
      std::vector<int> allowed = inPlaceOperands(n);
      for (size_t j = 0; j < n.numInputs(); ++j)
        if (inGroup(n.input(j)) && std::find(allowed.begin(), allowed.end(), int(j)) == allowed.end())
          return fmt::format("%{} is written in place over %{}, but {} cannot write over its operand {} (%{})", v->name(),
                             root->name(), n.describe(), j, n.input(j)->name());
      for (size_t p = 0; p < m; ++p)
        if (plan.at(list[p]).lastUse > at)
          return fmt::format("%{} is written in place at {} over %{}, which is still read at {}", v->name(), at,
                             list[p]->name(), plan.at(list[p]).lastUse);
    }
  }

  // Distinct buffers: an alias group counts as one, live over the union of its members.
  struct Buffer {
    const Value* v;
    BufferAssignment a;
  };
  std::vector<Buffer> transient, persistent;
  std::unordered_map<const Value*, size_t> slot;
  for (const Value* v : values) {
    const BufferAssignment& a = plan.at(v);
    if (a.bytes == 0) continue;
    if (a.persistent) {
      persistent.push_back({v, a});
      continue;
    }
    const Value* root = plan.bufferOf(v);
    auto [it, fresh] = slot.try_emplace(root, transient.size());
    if (fresh) {
      transient.push_back({root, plan.at(root)});
    }
    BufferAssignment& b = transient[it->second].a;
    b.firstUse = std::min(b.firstUse, a.firstUse);
    b.lastUse = std::max(b.lastUse, a.lastUse);
  }
  auto conflict = [](const Buffer& x, const Buffer& y, bool always) -> std::string {
    const BufferAssignment &a = x.a, &b = y.a;
    bool timeOverlap = always || (a.firstUse <= b.lastUse && b.firstUse <= a.lastUse);
    bool spaceOverlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
    if (!timeOverlap || !spaceOverlap) return "";
    return fmt::format("%{} [{}, {}) live {}..{} overlaps %{} [{}, {}) live {}..{}", x.v->name(), a.offset,
                       a.offset + a.bytes, a.firstUse, a.lastUse, y.v->name(), b.offset, b.offset + b.bytes, b.firstUse,
                       b.lastUse);
  };
  for (size_t i = 0; i < transient.size(); ++i)
    for (size_t j = i + 1; j < transient.size(); ++j)
      if (auto c = conflict(transient[i], transient[j], false); !c.empty()) return c;
  for (size_t i = 0; i < persistent.size(); ++i)
    for (size_t j = i + 1; j < persistent.size(); ++j)
      if (auto c = conflict(persistent[i], persistent[j], true); !c.empty()) return c;
  return "";
}

std::string memoryPlanJson(const Graph& g, const MemoryPlan& plan) {
  nlohmann::ordered_json j;
  j["arena_bytes"] = plan.arenaBytes;
  j["persistent_bytes"] = plan.persistentBytes;
  j["peak_live_bytes"] = plan.peakLiveBytes;
  j["naive_bytes"] = plan.naiveBytes;
  j["peak_at"] = plan.peakAt;
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
      if (auto it = plan.aliasOf.find(v); it != plan.aliasOf.end()) b["alias_of"] = it->second->name();
      bufs.push_back(b);
    }
  j["buffers"] = bufs;
  return j.dump(2) + "\n";
}

}  // namespace shoal
