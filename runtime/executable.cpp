// The device-neutral parts of Executable: synchronous metric accumulation.
#include "runtime/executable.h"

#include <cmath>

namespace shoal {

Expected<void> Executable::runAccumulate(const TensorMap& inputs, const std::vector<std::string>& names, double weight,
                                         int64_t step) {
  auto out = run(inputs);
  if (!out) return std::unexpected(out.error());
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

Expected<Executable::Accumulated> Executable::takeAccumulated() {
  Accumulated out = std::move(accumulated_);
  accumulated_ = Accumulated{};
  return out;
}

}  // namespace shoal
