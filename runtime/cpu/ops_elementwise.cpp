// CPU kernels of the elementwise family: comparisons, where, reductions.
#include "runtime/cpu/ops_elementwise.h"

#include <cstdint>
#include <functional>
#include <vector>

#include "ir/shape_geometry.h"
#include "runtime/cpu/kernels.h"

namespace shoal::cpu {

namespace {

// Calls f(i, offsets) for every element i of `out` in row-major order, offsets[k] being the
// flat index of the element that operand k (shape shapes[k], broadcast to `out`) supplies.
template <size_t N, typename F>
void forEachBroadcast(const Shape& out, const std::array<Shape, N>& shapes, F&& f) {
  const size_t rank = out.size();
  const int64_t total = numElements(out);
  if (total == 0) return;
  // stride[k][d]: how far operand k's flat index moves when output dimension d steps.
  std::array<std::vector<int64_t>, N> stride;
  for (size_t k = 0; k < N; ++k) {
    stride[k].assign(rank, 0);
    int64_t run = 1;
    for (size_t d = rank; d-- > 0;) {
      const int64_t e = geometry::alignedExtent(shapes[k], d, rank);
      stride[k][d] = e == 1 ? 0 : run;
      run *= e;
    }
  }
  std::vector<int64_t> idx(rank, 0);
  std::array<int64_t, N> offsets{};
  for (int64_t i = 0; i < total; ++i) {
    f(i, offsets);
    for (size_t d = rank; d-- > 0;) {  // odometer step, innermost dimension first
      for (size_t k = 0; k < N; ++k) offsets[k] += stride[k][d];
      if (++idx[d] < out[d]) break;
      for (size_t k = 0; k < N; ++k) offsets[k] -= stride[k][d] * out[d];
      idx[d] = 0;
    }
  }
}

// Calls f(tag) with a value of the C++ type of element type `t`.
template <typename F>
Expected<void> withElementType(DType t, F&& f) {
  switch (t) {
    case DType::F32:
      return f(float{});
    case DType::F64:
      return f(double{});
    case DType::I32:
      return f(int32_t{});
    case DType::I64:
      return f(int64_t{});
    case DType::U8:
      return f(uint8_t{});
    case DType::Bool:
      return f(bool{});
    default:
      break;  // storage types: shape inference lets no op compute in them
  }
  return fail(fmt::format("internal error: no kernel computes in element type {}", dtypeName(t)));
}

// y = cmp(a, b) elementwise with broadcasting.
template <typename V, typename Cmp>
void compareLoop(OpContext& c, Cmp cmp) {
  const V* a = c.in<V>(0);
  const V* b = c.in<V>(1);
  bool* y = c.out<bool>();
  const int64_t n = c.outCount();
  if (numElements(c.inShape(0)) == n && numElements(c.inShape(1)) == n) {
    for (int64_t i = 0; i < n; ++i) y[i] = cmp(a[i], b[i]);
    return;
  }
  forEachBroadcast<2>(c.outShape(), {c.inShape(0), c.inShape(1)},
                      [&](int64_t i, const std::array<int64_t, 2>& o) { y[i] = cmp(a[o[0]], b[o[1]]); });
}

}  // namespace

template <typename T>
Expected<void> runCompare(OpContext& c) {
  const OpKind kind = c.node().kind();
  return withElementType(c.node().input(0)->type().dtype, [&](auto tag) -> Expected<void> {
    using V = decltype(tag);
    if (kind == OpKind::Equal)
      compareLoop<V>(c, std::equal_to<V>());
    else if (kind == OpKind::NotEqual)
      compareLoop<V>(c, std::not_equal_to<V>());
    else if (kind == OpKind::Less)
      compareLoop<V>(c, std::less<V>());
    else if (kind == OpKind::LessEqual)
      compareLoop<V>(c, std::less_equal<V>());
    else if (kind == OpKind::Greater)
      compareLoop<V>(c, std::greater<V>());
    else if (kind == OpKind::GreaterEqual)
      compareLoop<V>(c, std::greater_equal<V>());
    else
      return c.error("internal error: not a comparison");
    return {};
  });
}

template <typename T>
Expected<void> runWhere(OpContext& c) {
  const bool* cond = c.in<bool>(0);
  return withElementType(c.node().result()->type().dtype, [&](auto tag) -> Expected<void> {
    using V = decltype(tag);
    const V* a = c.in<V>(1);
    const V* b = c.in<V>(2);
    V* y = c.out<V>();  // may share a's or b's buffer (same type): element i is read before written
    forEachBroadcast<3>(c.outShape(), {c.inShape(0), c.inShape(1), c.inShape(2)},
                        [&](int64_t i, const std::array<int64_t, 3>& o) { y[i] = cond[o[0]] ? a[o[1]] : b[o[2]]; });
    return {};
  });
}

template <typename T>
Expected<void> runReduce(OpContext& c) {
  const OpKind kind = c.node().kind();
  ReduceKind r;
  if (kind == OpKind::ReduceSum)
    r = ReduceKind::Sum;
  else if (kind == OpKind::ReduceMean)
    r = ReduceKind::Mean;
  else if (kind == OpKind::ReduceMax)
    r = ReduceKind::Max;
  else if (kind == OpKind::ReduceMin)
    r = ReduceKind::Min;
  else if (kind == OpKind::ReduceProd)
    r = ReduceKind::Prod;
  else
    return c.error("internal error: not a reduction");
  reduce<T>(r, c.inShape(0), c.in<T>(0), c.attrs().getInts("axes"), c.out<T>());
  return {};
}

#define SHOAL_INSTANTIATE(T)                         \
  template Expected<void> runCompare<T>(OpContext&); \
  template Expected<void> runWhere<T>(OpContext&);   \
  template Expected<void> runReduce<T>(OpContext&);
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE

}  // namespace shoal::cpu
