// Tensors as the CLI prints them.
#include "tools/tensor_text.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>

namespace shoal {

namespace {

std::string formatNumber(double v, bool isInt) {
  if (isInt) return fmt::format("{}", int64_t(v));
  if (v == std::floor(v) && std::abs(v) < 1e15) return fmt::format("{}", int64_t(v));
  return fmt::format("{:.6g}", v);
}

}  // namespace

nlohmann::ordered_json tensorJson(const Tensor& t) {
  // Nested lists, outermost dimension first; integers stay integers.
  std::function<nlohmann::ordered_json(size_t, int64_t&)> rec = [&](size_t dim,
                                                                    int64_t& flat) -> nlohmann::ordered_json {
    if (dim == t.shape().size()) {
      double v = t.at(flat++);
      if (!isFloat(t.dtype())) return int64_t(v);
      return v;
    }
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (int64_t i = 0; i < t.shape()[dim]; ++i) arr.push_back(rec(dim + 1, flat));
    return arr;
  };
  int64_t flat = 0;
  return rec(0, flat);
}

std::string tensorText(const Tensor& t) {
  std::function<std::string(size_t, int64_t&)> rec = [&](size_t dim, int64_t& flat) -> std::string {
    if (dim == t.shape().size()) return formatNumber(t.at(flat++), !isFloat(t.dtype()));
    std::string s = "[";
    for (int64_t i = 0; i < t.shape()[dim]; ++i) s += (i ? "," : "") + rec(dim + 1, flat);
    return s + "]";
  };
  int64_t flat = 0;
  return rec(0, flat);
}

}  // namespace shoal
