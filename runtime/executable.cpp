// The device-neutral parts of Executable: parameter sharing, synchronous metric accumulation.
#include "runtime/executable.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace shoal {

Expected<void> Executable::runAccumulate(const TensorMap& inputs, const std::vector<std::string>& names, double weight,
                                         int64_t step) {
  auto out = run(inputs);
  if (!out) return Unexpected(out.error());
  for (const std::string& name : names) {
    auto it = out->find(name);
    if (it == out->end()) return fail("the program has no output named '" + name + "'");
    double v = it->second.at(0);
    accumulated_.sums[name] += v * weight;
    if (name == "loss" && !std::isfinite(v) && !accumulated_.firstNonFinite) {
      accumulated_.firstNonFinite = step;
      accumulated_.nonFiniteValue = v;
    }
  }
  accumulated_.weight += weight;
  return {};
}

Expected<void> Executable::shareParameters(Executable& other) {
  // Same persistent names, types and offsets, or the sharing would scramble them.
  auto layout = [](const Executable& e) {
    std::map<std::string, std::pair<TensorType, int64_t>> out;
    for (Node* n : e.graph().nodes())
      if (isPersistentSource(n->kind()))
        out[n->result()->name()] = {n->result()->type(), e.program().plan.at(n->result()).offset};
    return out;
  };
  auto theirs = layout(other);
  for (auto& [name, t] : layout(*this)) {
    auto it = theirs.find(name);
    if (it == theirs.end() || it->second != t)
      return fail("internal error: programs disagree on the layout of '" + name + "'");
  }
  return adoptPersistent(other);
}

std::string Executable::profileTable(const std::map<std::string, std::pair<double, int64_t>>& byOp, int decimals,
                                     std::string_view totalNote) {
  if (byOp.empty()) return "";
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(byOp.begin(), byOp.end());
  std::stable_sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.first > b.second.first; });
  double total = 0;
  for (auto& r : rows) total += r.second.first;
  // The first column as wide as its longest name (a grouped launch lists several ops).
  size_t width = 28;
  for (auto& r : rows) width = std::max(width, r.first.size());
  std::string out;
  for (auto& [op, t] : rows)
    out += fmt::format("  {:<{}} {:9.{}f} ms {:5.1f}%  {:7} calls\n", op, width, t.first * 1e3, decimals,
                       total > 0 ? 100 * t.first / total : 0.0, t.second);
  out += fmt::format("  {:<{}} {:9.{}f} ms{}{}\n", "total in ops", width, total * 1e3, decimals,
                     totalNote.empty() ? "" : "  ", totalNote);
  return out;
}

Expected<Executable::Accumulated> Executable::takeAccumulated() {
  Accumulated out = std::move(accumulated_);
  accumulated_ = Accumulated{};
  return out;
}

Expected<std::shared_ptr<ResidentData>> Executable::makeResident(const TensorMap&) {
  return std::shared_ptr<ResidentData>();
}

Expected<void> Executable::runAccumulateRows(ResidentData&, int64_t, int64_t, const TensorMap&,
                                             const std::vector<std::string>&, double, int64_t) {
  return fail("internal error: this backend keeps no data set in device memory (makeResident gave none)");
}

}  // namespace shoal
