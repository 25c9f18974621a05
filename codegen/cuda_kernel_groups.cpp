// Horizontal kernel fusion: consecutive kernels of a step that are independent (none writes
// memory another one reads or writes) run as one launch, each over its own range of blocks.
// A training step's small kernels come in such runs -- the loss, the accuracy and the loss's
// gradient all read the logits; a dense layer's data gradient, weight gradient and bias
// gradient all read the incoming gradient -- and one launch of their blocks side by side
// takes the time of the longest instead of the sum of the launches.
//
// NodeEmitter::kernel leaves a placeholder in the source and the kernel's text in its step;
// groupKernels decides the runs on the launch plan, and finishKernels writes the text: a
// kernel of its own as before, a grouped one as a __device__ body taking its block index and
// grid size as parameters (shadowing CUDA's built-ins, so the body is unchanged), called by
// the group's kernel with the block index made relative to its range.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "codegen/cuda_emit.h"
#include "ir/ops.h"

namespace shoal::cudagen {

namespace {

// Most kernels one launch runs (their pointer parameters stay far below the 4 KiB limit).
constexpr size_t kMaxParts = 6;

// A byte range of one region (transient arena or persistent parameters), as the memory plan
// places a value.
struct Span {
  bool persistent = false;
  int64_t begin = 0, end = 0;
};

bool overlap(const Span& a, const Span& b) {
  return a.persistent == b.persistent && a.begin < b.end && b.begin < a.end;
}

// What a kernel step reads and writes. Its node's results count as written by every kernel of
// the node; every value argument as read. Nullopt: the step cannot be grouped (scratch, a
// second grid dimension, dynamic shared memory, an in-place update that reads the status
// words, a value the plan does not place).
struct Access {
  std::vector<Span> reads, writes;
};

std::optional<Access> accessOf(const CudaStep& s, const MemoryPlan& plan) {
  if (s.kind != CudaStepKind::Kernel || s.prepare || !s.parts.empty() || s.grid[1] != 1 || s.sharedBytes != 0 ||
      s.block != kBlock || !mutatedOperands(s.node->kind()).empty())
    return std::nullopt;
  Access a;
  auto span = [&](const Value* v) -> std::optional<Span> {
    auto it = plan.buffers.find(v);
    if (it == plan.buffers.end()) return std::nullopt;
    return Span{it->second.persistent, it->second.offset, it->second.offset + it->second.bytes};
  };
  for (const CudaArg& arg : s.args) {
    // Scratch is shared by every step; a prepared block is written by a step that runs apart; a
    // converted block is shared by the nodes that read one value in its layout.
    if (arg.kind == CudaArgKind::Scratch || arg.kind == CudaArgKind::Prepared || arg.kind == CudaArgKind::Converted)
      return std::nullopt;
    if (arg.kind != CudaArgKind::Value) continue;  // status words: reports only (atomic, unordered)
    auto sp = span(arg.value);
    if (!sp) return std::nullopt;
    a.reads.push_back(*sp);
  }
  for (size_t r = 0; r < s.node->numResults(); ++r) {
    auto sp = span(s.node->result(r));
    if (!sp) return std::nullopt;
    a.writes.push_back(*sp);
  }
  return a;
}

bool independent(const Access& a, const Access& b) {
  for (const Span& w : a.writes) {
    for (const Span& r : b.reads)
      if (overlap(w, r)) return false;
    for (const Span& x : b.writes)
      if (overlap(w, x)) return false;
  }
  for (const Span& w : b.writes)
    for (const Span& r : a.reads)
      if (overlap(w, r)) return false;
  return true;
}

// The declarations of a parameter list ("const float* __restrict__ x, float* y") split at its
// commas, each with its name (the last identifier) cut off: {"const float* __restrict__ ", "x"}.
std::vector<std::pair<std::string, std::string>> splitParams(const std::string& params) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t at = 0;
  while (at <= params.size()) {
    size_t comma = params.find(',', at);
    if (comma == std::string::npos) comma = params.size();
    std::string decl = params.substr(at, comma - at);
    while (!decl.empty() && std::isspace(static_cast<unsigned char>(decl.back()))) decl.pop_back();
    size_t name = decl.size();
    while (name > 0 && (std::isalnum(static_cast<unsigned char>(decl[name - 1])) || decl[name - 1] == '_')) --name;
    size_t begin = decl.find_first_not_of(' ');
    out.emplace_back(decl.substr(begin == std::string::npos ? 0 : begin, name - std::min(name, begin)),
                     decl.substr(name));
    at = comma + 1;
  }
  return out;
}

}  // namespace

std::string kernelPlaceholder(const std::string& name) { return "\x1e" "kernel " + name + "\x1e\n"; }

// The span a constant step writes (when the executor writes it every step), if the plan
// places its value.
std::optional<Span> constantSpan(const CudaStep& s, const MemoryPlan& plan) {
  if (s.kind != CudaStepKind::Constant || s.node->numResults() != 1) return std::nullopt;
  auto it = plan.buffers.find(s.node->result());
  if (it == plan.buffers.end()) return std::nullopt;
  return Span{it->second.persistent, it->second.offset, it->second.offset + it->second.bytes};
}

void groupKernels(CudaModuleSource& m, const MemoryPlan& plan) {
  std::vector<CudaStep> steps;
  for (size_t i = 0; i < m.steps.size();) {
    auto first = accessOf(m.steps[i], plan);
    if (!first) {
      steps.push_back(std::move(m.steps[i++]));
      continue;
    }
    // Kernels join while independent of every one taken; a constant step between them (the
    // loss gradient's seed) goes before the group when none of them touches its buffer.
    std::vector<size_t> parts = {i}, hoisted;
    std::vector<Access> taken = {*first};
    size_t end = i + 1;
    auto freeOf = [&](const Access& a) {
      for (const Access& t : taken)
        if (!independent(t, a)) return false;
      return true;
    };
    while (end < m.steps.size() && parts.size() < kMaxParts) {
      const CudaStep& next = m.steps[end];
      if (auto c = constantSpan(next, plan)) {
        Access write;
        write.writes.push_back(*c);
        if (!freeOf(write)) break;
        hoisted.push_back(end++);
        continue;
      }
      auto a = accessOf(next, plan);
      if (!a || next.node == m.steps[parts.back()].node || !freeOf(*a)) break;
      taken.push_back(*a);
      parts.push_back(end++);
    }
    // Hoisted constants after the last part stay where they were.
    while (!hoisted.empty() && hoisted.back() > parts.back()) {
      hoisted.pop_back();
      --end;
    }
    if (parts.size() < 2) {
      steps.push_back(std::move(m.steps[i++]));
      continue;
    }
    for (size_t h : hoisted) steps.push_back(std::move(m.steps[h]));
    CudaStep g;
    g.kind = CudaStepKind::Kernel;
    g.node = m.steps[i].node;
    g.block = kBlock;
    g.grid[0] = 0;
    std::string name = "grp";
    for (size_t j : parts) {
      const CudaStep& part = m.steps[j];
      name += "_" + part.kernel.substr(0, part.kernel.find('_'));
      g.grid[0] += part.grid[0];
      g.args.insert(g.args.end(), part.args.begin(), part.args.end());
      g.parts.push_back(std::move(m.steps[j]));
    }
    g.kernel = name;
    steps.push_back(std::move(g));
    i = end;
  }
  m.steps = std::move(steps);
  m.kernelNames.clear();
  for (const CudaStep& s : m.steps)
    if (s.kind == CudaStepKind::Kernel) m.kernelNames.push_back(s.kernel);
}

std::string finishKernels(CudaModuleSource& m, const std::string& kernels, bool share,
                          std::vector<std::pair<std::string, std::string>>* definitions) {
  std::string out = kernels;
  auto put = [&](const std::string& name, const std::string& text) {
    const std::string mark = kernelPlaceholder(name);
    size_t at = out.find(mark);
    if (at != std::string::npos) out.replace(at, mark.size(), text);
  };
  std::string groups;
  // shareKernels: the first kernel of each text (launch bounds, dynamic shared memory,
  // parameters, body). The shared memory is part of it because the executor sets a kernel's
  // dynamic shared-memory limit from its step.
  std::unordered_map<std::string, std::string> firstOfText;
  for (CudaStep& s : m.steps) {
    if (s.kind != CudaStepKind::Kernel) continue;
    if (s.parts.empty()) {
      const std::string bounds =
          s.minBlocks > 0 ? fmt::format("{}, {}", s.block, s.minBlocks) : std::to_string(s.block);
      if (share) {
        std::string text = fmt::format("{}\x1f{}\x1f{}\x1f{}", bounds, s.sharedBytes, s.params, s.body);
        auto [it, fresh] = firstOfText.emplace(std::move(text), s.kernel);
        if (!fresh) {
          put(s.kernel, fmt::format("// {}: the same kernel as {}, launched under its name\n", s.kernel, it->second));
          s.kernel = it->second;
          continue;
        }
      }
      std::string text = fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}({}) {{\n"
                                     "  shoal_after_previous_kernel();\n{}}}\n",
                                     bounds, s.kernel, s.params, s.body);
      put(s.kernel, text);
      definitions->emplace_back(s.kernel, std::move(text));
      continue;
    }
    // Each part as a body that takes its block index and grid size (the built-ins' names).
    std::string params, dispatch, bodies;
    unsigned first = 0;
    int p = 0;
    for (size_t k = 0; k < s.parts.size(); ++k) {
      const CudaStep& part = s.parts[k];
      std::string body = fmt::format("__device__ __forceinline__ void {}_body({}, const ShoalGridPos blockIdx, "
                                     "const ShoalGridPos gridDim) {{\n{}}}\n",
                                     part.kernel, part.params, part.body);
      put(part.kernel, body);
      bodies += body;
      std::string call;
      for (const auto& [decl, name] : splitParams(part.params)) {
        params += fmt::format("{}{}p{}", params.empty() ? "" : ", ", decl, p);
        call += fmt::format("p{}, ", p++);
      }
      const unsigned last = first + part.grid[0];
      const std::string pos = fmt::format("ShoalGridPos{{b - {}u, 0u, 0u}}, ShoalGridPos{{{}u, 1u, 1u}}", first, part.grid[0]);
      if (k + 1 < s.parts.size())
        dispatch += fmt::format("  if (b < {}u) {{\n    {}_body({}{});\n    return;\n  }}\n", last, part.kernel, call, pos);
      else
        dispatch += fmt::format("  {}_body({}{});\n", part.kernel, call, pos);
      first = last;
    }
    groups += fmt::format("// One launch, blocks side by side:{}\n", [&] {
      std::string list;
      for (const CudaStep& part : s.parts) list += " " + part.kernel + " (" + std::to_string(part.grid[0]) + ")";
      return list;
    }());
    std::string launch = fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}({}) {{\n"
                                     "  shoal_after_previous_kernel();\n"
                                     "  const unsigned b = blockIdx.x;\n{}}}\n",
                                     kBlock, s.kernel, params, dispatch);
    groups += launch;
    definitions->emplace_back(s.kernel, bodies + launch);
  }
  if (share) {
    // Each kernel once, in the order of first launch.
    std::unordered_set<std::string> seen;
    m.kernelNames.clear();
    for (const CudaStep& s : m.steps)
      if (s.kind == CudaStepKind::Kernel && seen.insert(s.kernel).second) m.kernelNames.push_back(s.kernel);
  }
  return out + groups;
}

}  // namespace shoal::cudagen
