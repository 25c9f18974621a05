// Import-time tensor arithmetic for folding ONNX shape computations.
#include "frontend/onnx/onnx_fold.h"

#include <cmath>
#include <cstring>

#include "ir/shape_inference.h"

namespace shoal::onnx_import::fold {

int64_t intAt(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::I64:
      return t.data<int64_t>()[i];
    case DType::I32:
      return t.data<int32_t>()[i];
    default:
      return int64_t(t.at(i));
  }
}

Tensor ints(const std::vector<int64_t>& values) {
  Tensor t(DType::I64, {int64_t(values.size())});
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

std::vector<int64_t> strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t i = int64_t(s.size()) - 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * s[size_t(i) + 1];
  return st;
}

Tensor gatherElements(const Tensor& src, const Shape& outShape, const std::function<int64_t(int64_t)>& srcIndex) {
  Tensor out(src.dtype(), outShape);
  size_t size = dtypeSize(src.dtype());
  const char* from = static_cast<const char*>(src.raw());
  char* to = static_cast<char*>(out.raw());
  for (int64_t i = 0; i < out.numElements(); ++i)
    std::memcpy(to + size_t(i) * size, from + size_t(srcIndex(i)) * size, size);
  return out;
}

namespace {

// The flat index into a tensor of shape `s` (right-aligned, broadcast) for output position
// `idx` of the broadcast shape.
int64_t broadcastIndex(const std::vector<int64_t>& outIdx, const Shape& s) {
  int64_t flat = 0, stride = 1;
  size_t off = outIdx.size() - s.size();
  for (int64_t d = int64_t(s.size()) - 1; d >= 0; --d) {
    int64_t i = s[size_t(d)] == 1 ? 0 : outIdx[size_t(d) + off];
    flat += i * stride;
    stride *= s[size_t(d)];
  }
  return flat;
}

}  // namespace

std::optional<Tensor> binary(const Tensor& a, const Tensor& b, DType outType,
                             const std::function<double(double, double)>& f) {
  auto shape = broadcastShapes(a.shape(), b.shape());
  if (!shape) return std::nullopt;
  Tensor out(outType, *shape);
  std::vector<int64_t> idx(shape->size(), 0);
  for (int64_t i = 0; i < out.numElements(); ++i) {
    double v = f(a.at(broadcastIndex(idx, a.shape())), b.at(broadcastIndex(idx, b.shape())));
    if (!isFloat(outType)) v = std::trunc(v);
    out.set(i, v);
    for (int64_t d = int64_t(idx.size()) - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < (*shape)[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
  return out;
}

namespace {

// Calls f(outIndex, multiIndex) for every position of `shape`, row-major.
void forEachIndex(const Shape& shape, const std::function<void(int64_t, const std::vector<int64_t>&)>& f) {
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t n = numElements(shape);
  for (int64_t i = 0; i < n; ++i) {
    f(i, idx);
    for (int64_t d = int64_t(idx.size()) - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < shape[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
}

}  // namespace

std::optional<Tensor> compare(const Tensor& a, const Tensor& b,
                              const std::function<bool(std::partial_ordering)>& holds) {
  auto shape = broadcastShapes(a.shape(), b.shape());
  if (!shape) return std::nullopt;
  Tensor out(DType::Bool, *shape);
  bool exact = !isFloat(a.dtype()) && !isFloat(b.dtype());
  forEachIndex(*shape, [&](int64_t i, const std::vector<int64_t>& idx) {
    int64_t ia = broadcastIndex(idx, a.shape()), ib = broadcastIndex(idx, b.shape());
    std::partial_ordering o = exact ? std::partial_ordering(intAt(a, ia) <=> intAt(b, ib)) : a.at(ia) <=> b.at(ib);
    out.set(i, holds(o) ? 1.0 : 0.0);
  });
  return out;
}

std::optional<Tensor> where(const Tensor& cond, const Tensor& x, const Tensor& y) {
  auto xy = broadcastShapes(x.shape(), y.shape());
  if (!xy) return std::nullopt;
  auto shape = broadcastShapes(cond.shape(), *xy);
  if (!shape) return std::nullopt;
  Tensor out(x.dtype(), *shape);
  size_t size = dtypeSize(x.dtype());
  forEachIndex(*shape, [&](int64_t i, const std::vector<int64_t>& idx) {
    const Tensor& src = cond.at(broadcastIndex(idx, cond.shape())) != 0 ? x : y;
    std::memcpy(static_cast<char*>(out.raw()) + size_t(i) * size,
                static_cast<const char*>(src.raw()) + size_t(broadcastIndex(idx, src.shape())) * size, size);
  });
  return out;
}

Tensor unary(const Tensor& x, DType outType, const std::function<double(double)>& f) {
  Tensor out(outType, x.shape());
  for (int64_t i = 0; i < x.numElements(); ++i) out.set(i, f(x.at(i)));
  return out;
}

}  // namespace shoal::onnx_import::fold
