// Private to frontend/onnx: computing ONNX ops on tensors known at import time (shape
// arithmetic: Shape -> Gather -> Concat -> Reshape chains, constants of a shape, ranges).
// Element moves copy bytes (exact for int64); arithmetic runs in double.
#pragma once

#include <compare>
#include <functional>

#include "frontend/onnx/onnx_importer.h"

namespace shoal::onnx_import::fold {

/// Element i of `t` as an exact int64 (integers) or truncated (floats).
int64_t intAt(const Tensor& t, int64_t i);
/// A rank-1 i64 tensor.
Tensor ints(const std::vector<int64_t>& values);
/// A tensor whose element i is `src` element `srcIndex(i)` (bytes copied).
Tensor gatherElements(const Tensor& src, const Shape& outShape, const std::function<int64_t(int64_t)>& srcIndex);
/// a (op) b with NumPy broadcasting, in double, stored as `out`; nullopt when the shapes do
/// not broadcast.
std::optional<Tensor> binary(const Tensor& a, const Tensor& b, DType out,
                             const std::function<double(double, double)>& f);
/// a (relation) b with NumPy broadcasting, as a bool tensor: `holds` says which orderings count
/// (Equal: equivalent; Less: less; ...). Integers compare exactly as int64, floats as double
/// (NaN is unordered, so only a relation holding for `unordered` is true); nullopt when the
/// shapes do not broadcast.
std::optional<Tensor> compare(const Tensor& a, const Tensor& b,
                              const std::function<bool(std::partial_ordering)>& holds);
/// cond ? x : y with NumPy broadcasting of the three (bytes copied: exact for every type);
/// nullopt when the shapes do not broadcast.
std::optional<Tensor> where(const Tensor& cond, const Tensor& x, const Tensor& y);
/// f(x) per element, stored as `out`.
Tensor unary(const Tensor& x, DType out, const std::function<double(double)>& f);
/// Row-major strides of a shape.
std::vector<int64_t> strides(const Shape& s);

}  // namespace shoal::onnx_import::fold
