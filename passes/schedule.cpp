// schedule: a topological execution order with in-place updates after every other reader,
// and collectives (data-parallel gradient all-reduces) as early as their operands allow.
#include <algorithm>
#include <unordered_map>

#include "passes/pass.h"

namespace shoal {

namespace {

// Moves every collective node (traits.isCollective) of a topological `order` to just after its
// operands' last producer, in buckets: collectives taken in the order their operands become
// ready, a bucket closed once it holds `bucketBytes` of results (or when the next one would
// not be ready before a reader of the bucket), each bucket placed together after the producer
// of its last-ready operand. The executor issues a run of adjacent collectives as one group,
// so a bucket's communication overlaps the backward pass that follows it (the gradients of
// the first layers are computed last). Orders without collectives come back unchanged.
std::vector<Node*> bucketCollectives(std::vector<Node*> order, int64_t bucketBytes) {
  std::vector<Node*> rest, collectives;
  for (Node* n : order) (n->info().traits.isCollective ? collectives : rest).push_back(n);
  if (collectives.empty()) return order;
  std::unordered_map<const Node*, size_t> pos;  // in `rest`
  for (size_t i = 0; i < rest.size(); ++i) pos[rest[i]] = i;
  struct Item {
    Node* node;
    size_t ready;     // index in `rest` after which every operand exists (0 with none: before all)
    size_t deadline;  // the first reader's index in `rest` (rest.size() with none)
    int64_t bytes;
  };
  std::unordered_map<const Node*, size_t> firstReader;  // collective -> index in `rest`
  for (size_t i = rest.size(); i-- > 0;)
    for (Value* in : rest[i]->inputs())
      if (in && in->def() && in->def()->info().traits.isCollective) firstReader[in->def()] = i;
  std::vector<Item> items;
  for (Node* c : collectives) {
    Item it{c, 0, firstReader.count(c) ? firstReader[c] : rest.size(), 0};
    bool any = false;
    for (Value* in : c->inputs())
      if (in && in->def() && pos.count(in->def())) {
        it.ready = any ? std::max(it.ready, pos[in->def()]) : pos[in->def()];
        any = true;
      }
    for (size_t r = 0; r < c->numResults(); ++r) it.bytes += int64_t(c->result(r)->type().byteSize());
    items.push_back(it);
  }
  // A collective reading another collective's result (none today) keeps the original order.
  for (const Item& it : items)
    for (Value* in : it.node->inputs())
      if (in && in->def() && !pos.count(in->def())) return order;
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.ready < b.ready; });
  // after[i]: the collectives placed right after rest[i], in issue order.
  std::vector<std::vector<Node*>> after(rest.size());
  std::vector<Node*> bucket;
  size_t bucketReady = 0, bucketDeadline = rest.size();
  int64_t bucketFill = 0;
  auto close = [&] {
    if (bucket.empty()) return;
    auto& slot = after[bucketReady];
    slot.insert(slot.end(), bucket.begin(), bucket.end());
    bucket.clear();
    bucketFill = 0;
    bucketDeadline = rest.size();
  };
  for (const Item& it : items) {
    if (!bucket.empty() && it.ready >= bucketDeadline) close();
    if (bucket.empty()) bucketReady = it.ready;
    bucketReady = std::max(bucketReady, it.ready);
    bucketDeadline = std::min(bucketDeadline, it.deadline);
    bucket.push_back(it.node);
    bucketFill += it.bytes;
    if (bucketFill >= bucketBytes) close();
  }
  close();
  std::vector<Node*> result;
  result.reserve(order.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    result.push_back(rest[i]);
    result.insert(result.end(), after[i].begin(), after[i].end());
  }
  return result;
}

class SchedulePass : public Pass {
 public:
  std::string_view name() const override { return "schedule"; }
  std::string_view summary() const override { return "topological order; in-place updates after every reader"; }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    // Stable: keep program order, but move in-place updates to the end (their operands are
    // read by forward and backward ops), in their original relative order.
    std::vector<Node*> order, updates;
    for (Node* n : g.nodes()) (mutatedOperands(n->kind()).empty() ? order : updates).push_back(n);
    order.insert(order.end(), updates.begin(), updates.end());
    // Kahn's algorithm, stable with respect to that order, catches any use-before-def.
    std::unordered_map<const Node*, size_t> pos;
    for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
    std::unordered_map<const Node*, int> pending;
    std::unordered_map<const Node*, std::vector<Node*>> consumers;
    for (Node* n : order) {
      pending[n] = 0;
      for (Value* in : n->inputs()) {
        if (!in || !in->def()) continue;
        ++pending[n];
        consumers[in->def()].push_back(n);
      }
    }
    std::vector<Node*> result;
    std::vector<bool> done(order.size(), false);
    // Simple O(n^2) stable selection: graphs here have hundreds of nodes, not millions.
    while (result.size() < order.size()) {
      bool progressed = false;
      for (size_t i = 0; i < order.size(); ++i) {
        if (done[i] || pending[order[i]] != 0) continue;
        done[i] = true;
        result.push_back(order[i]);
        for (Node* c : consumers[order[i]]) --pending[c];
        progressed = true;
        break;
      }
      if (!progressed) {
        for (size_t i = 0; i < order.size(); ++i)
          if (!done[i]) return fail(order[i]->describe() + ": part of a cycle", order[i]->loc());
      }
    }
    result = bucketCollectives(std::move(result), ctx.collectiveBucketBytes);
    bool changed = result != g.nodes();
    if (changed) g.setOrder(std::move(result));
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createSchedulePass() { return std::make_unique<SchedulePass>(); }

}  // namespace shoal
