// Tensors as the CLI prints them: nested lists in JSON reports and in text.
#pragma once

#include <shoal/tensor.h>

#include <nlohmann/json.hpp>
#include <string>

namespace shoal {

/// Nested lists, outermost dimension first; integers stay integers.
nlohmann::ordered_json tensorJson(const Tensor& t);
/// "[[1,2.5],[3,4]]": integral values without a fraction, others with 6 significant digits.
std::string tensorText(const Tensor& t);

}  // namespace shoal
