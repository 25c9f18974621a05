// ONNX control flow, resolved at import: If takes the branch its condition (known at import,
// or fed by the run) selects; Loop and Scan are unrolled, one inlined copy of the body a step
// (a Loop's trip count and condition known at import, a Scan's length from its input's shape).
// Each step's values are the body's, renamed; loop-carried values pass from one copy to the
// next, scan outputs are stacked. What would need a run-time decision is refused by name.
#include <fmt/format.h>

#include <algorithm>

#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

constexpr int64_t kMaxUnrolledSteps = 1024;

Slot valueSlot(Value* v) {
  Slot s;
  s.type = v->type();
  s.value = v;
  return s;
}

Slot scalarSlot(DType t, double v) {
  Tensor x(t, {});
  x.set(0, v);
  return knownSlot(x);
}

// Input i as the body receives it: a parameter (a float initializer) materialised under its
// own name first, so the body reads that parameter (and trains it) rather than a copy.
Slot boundSlot(NodeContext& c, size_t i) {
  if (c.slot(i).parameter) c.value(i);
  return c.slot(i);
}

// A body output as an IR value (a value known at import becomes a constant).
Value* outputValue(NodeContext& c, const std::string& name) {
  Importer& imp = c.importer();
  Slot& s = imp.slot(name, nullptr);
  if (s.sequence) c.unsupported(fmt::format("a scan output that is a sequence ('{}')", name));
  return imp.materialize(name, s);
}

// The steps' values stacked along a new axis `axis` (in [0, rank]).
Value* stack(NodeContext& c, std::vector<Value*> steps, int64_t axis, const std::string& tag) {
  for (size_t i = 0; i < steps.size(); ++i) {
    Shape s = steps[i]->type().shape;
    s.insert(s.begin() + axis, 1);
    steps[i] = c.reshape(steps[i], s, fmt::format("{}_step{}", tag, i));
  }
  return concatMany(c, steps, axis, tag + "_");
}

}  // namespace

void lowerIf(NodeContext& c) {
  const Tensor& cond = c.constant(0, "the condition");
  if (cond.numElements() != 1) c.invalid(fmt::format("the condition must hold one element, got {}", cond.type().str()));
  const onnx::GraphProto& thenBranch = c.attrGraph("then_branch");
  const onnx::GraphProto& elseBranch = c.attrGraph("else_branch");
  const onnx::GraphProto& taken = cond.at(0) != 0 ? thenBranch : elseBranch;
  Importer& imp = c.importer();
  auto outs = imp.inlineGraph(taken, {}, imp.uniquePrefix(c.proto()), c.opset());
  if (outs.size() != c.numOutputs())
    c.invalid(fmt::format("the branch '{}' has {} outputs, the node {}", taken.name(), outs.size(), c.numOutputs()));
  for (size_t i = 0; i < outs.size(); ++i) c.setSlotOutput(i, imp.slot(outs[i], nullptr));
}

// Loop: while (i < M && cond) { cond, carried..., scans... = body(i, cond, carried...) }.
// An absent M is a while loop (its condition must become false within the step limit); an
// absent condition input makes the body's condition output ignored (a for loop).
void lowerLoop(NodeContext& c) {
  const onnx::GraphProto& body = c.attrGraph("body");
  std::optional<int64_t> trips;
  if (c.has(0)) {
    const Tensor& m = c.constant(0, "the trip count M");
    if (m.numElements() != 1) c.invalid("the trip count M must hold one element");
    trips = int64_t(m.at(0));
  }
  bool checkCond = c.has(1), cond = true;
  if (checkCond) {
    const Tensor& v = c.constant(1, "the loop condition");
    if (v.numElements() != 1) c.invalid("the loop condition must hold one element");
    cond = v.at(0) != 0;
  }
  if (!trips && !checkCond) c.unsupported("a loop with neither a trip count nor a condition (it never ends)");
  size_t carriedCount = c.numInputs() >= 2 ? c.numInputs() - 2 : 0;
  if (size_t(body.input_size()) != carriedCount + 2)
    c.invalid(fmt::format("the body takes {} inputs, expected {} (iteration, condition, {} carried)", body.input_size(),
                          carriedCount + 2, carriedCount));
  if (size_t(body.output_size()) < carriedCount + 1)
    c.invalid(fmt::format("the body has {} outputs, expected at least {}", body.output_size(), carriedCount + 1));
  size_t scanCount = size_t(body.output_size()) - 1 - carriedCount;
  std::vector<Slot> carried;
  for (size_t j = 0; j < carriedCount; ++j) {
    if (!c.has(2 + j)) c.unsupported(fmt::format("an absent loop-carried input {}", j));
    carried.push_back(boundSlot(c, 2 + j));
  }
  std::vector<std::vector<Value*>> scans(static_cast<size_t>(scanCount));
  Importer& imp = c.importer();
  std::string base = imp.uniquePrefix(c.proto());
  for (int64_t i = 0; cond && (!trips || i < *trips); ++i) {
    if (i >= kMaxUnrolledSteps)
      c.unsupported(fmt::format("more than {} iterations (a loop is unrolled at import)", kMaxUnrolledSteps));
    std::vector<Slot> ins = {scalarSlot(DType::I64, double(i)), scalarSlot(DType::Bool, cond ? 1 : 0)};
    ins.insert(ins.end(), carried.begin(), carried.end());
    auto outs = imp.inlineGraph(body, ins, fmt::format("{}i{}::", base, i), c.opset());
    if (checkCond) {
      const Slot& co = imp.slot(outs[0], nullptr);
      if (!co.known || co.known->numElements() != 1)
        c.unsupported(fmt::format("the loop condition ('{}') is computed at run time; shoal unrolls loops at import: {}",
                                  outs[0], imp.runTimeOrigin(outs[0])));
      cond = co.known->at(0) != 0;
    }
    for (size_t j = 0; j < carriedCount; ++j) carried[j] = imp.slot(outs[1 + j], nullptr);
    for (size_t k = 0; k < scanCount; ++k)
      if (c.hasOutput(carriedCount + k)) scans[k].push_back(outputValue(c, outs[1 + carriedCount + k]));
  }
  for (size_t j = 0; j < carriedCount; ++j) c.setSlotOutput(j, carried[j]);
  for (size_t k = 0; k < scanCount; ++k) {
    if (!c.hasOutput(carriedCount + k)) continue;
    if (scans[k].empty()) c.unsupported(fmt::format("scan output {} of a loop that runs no step (an empty tensor)", k));
    c.setOutput(carriedCount + k, stack(c, scans[k], 0, fmt::format("scan{}", k)));
  }
}

// Scan (opset 9+): states carried through the body over the scan inputs' steps (along their
// axes, forward or reversed); scan outputs stacked along their axes, in their directions.
void lowerScan(NodeContext& c) {
  if (c.opset() < 9) c.unsupported("Scan before opset 9 (its batch axis and sequence_lens)");
  const onnx::GraphProto& body = c.attrGraph("body");
  int64_t m = c.attrInt("num_scan_inputs");
  int64_t n = int64_t(c.numInputs()) - m;
  if (m < 1 || n < 0) c.invalid(fmt::format("num_scan_inputs {} for {} inputs", m, c.numInputs()));
  int64_t k = int64_t(body.output_size()) - n;
  if (body.input_size() != n + m || k < 0)
    c.invalid(fmt::format("the body has {} inputs and {} outputs for {} states and {} scan inputs", body.input_size(),
                          body.output_size(), n, m));
  auto inAxes = c.attrInts("scan_input_axes", std::vector<int64_t>(size_t(m), 0));
  auto inDirs = c.attrInts("scan_input_directions", std::vector<int64_t>(size_t(m), 0));
  auto outAxes = c.attrInts("scan_output_axes", std::vector<int64_t>(size_t(k), 0));
  auto outDirs = c.attrInts("scan_output_directions", std::vector<int64_t>(size_t(k), 0));
  if (int64_t(inAxes.size()) != m || int64_t(inDirs.size()) != m || int64_t(outAxes.size()) != k ||
      int64_t(outDirs.size()) != k)
    c.invalid("scan_input_axes/directions need one entry per scan input, scan_output_axes/directions per scan output");
  int64_t steps = -1;
  for (int64_t j = 0; j < m; ++j) {
    size_t in = size_t(n + j);
    inAxes[size_t(j)] = c.axis(inAxes[size_t(j)], c.rank(in));
    int64_t len = c.shape(in)[size_t(inAxes[size_t(j)])];
    if (steps >= 0 && len != steps) c.invalid(fmt::format("scan inputs of {} and {} steps", steps, len));
    steps = len;
  }
  if (steps < 1) c.unsupported("a scan of no steps (empty outputs)");
  if (steps > kMaxUnrolledSteps)
    c.unsupported(fmt::format("{} steps (a scan is unrolled at import; at most {})", steps, kMaxUnrolledSteps));
  std::vector<Slot> states;
  for (int64_t j = 0; j < n; ++j) states.push_back(boundSlot(c, size_t(j)));
  std::vector<std::vector<Value*>> outs(static_cast<size_t>(k));
  Importer& imp = c.importer();
  std::string base = imp.uniquePrefix(c.proto());
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<Slot> ins = states;
    for (int64_t j = 0; j < m; ++j) {
      size_t in = size_t(n + j);
      int64_t axis = inAxes[size_t(j)], at = inDirs[size_t(j)] ? steps - 1 - t : t;
      Value* slice = sliceOp(c, c.value(in), {at}, {at + 1}, {axis}, {1}, fmt::format("scan_in{}_t{}", j, t));
      Shape s = c.shape(in);
      s.erase(s.begin() + axis);
      ins.push_back(valueSlot(c.reshape(slice, s, fmt::format("scan_in{}_t{}_elem", j, t))));
    }
    auto res = imp.inlineGraph(body, ins, fmt::format("{}t{}::", base, t), c.opset());
    for (int64_t j = 0; j < n; ++j) states[size_t(j)] = imp.slot(res[size_t(j)], nullptr);
    for (int64_t j = 0; j < k; ++j)
      if (c.hasOutput(size_t(n + j))) outs[size_t(j)].push_back(outputValue(c, res[size_t(n + j)]));
  }
  for (int64_t j = 0; j < n; ++j) c.setSlotOutput(size_t(j), states[size_t(j)]);
  for (int64_t j = 0; j < k; ++j) {
    if (!c.hasOutput(size_t(n + j))) continue;
    auto& seq = outs[size_t(j)];
    if (outDirs[size_t(j)]) std::reverse(seq.begin(), seq.end());
    int64_t rank = seq[0]->type().rank() + 1;
    c.setOutput(size_t(n + j), stack(c, seq, c.axis(outAxes[size_t(j)], rank), fmt::format("scan_out{}", j)));
  }
}

}  // namespace shoal::onnx_import
