// CPU kernels of the shape family and the interpreter's runners for them.
#include "runtime/cpu/ops_shape.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/cpu/kernels.h"
#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

// An unsigned integer of each element size: data movement copies bits, whatever the dtype.
template <size_t Bytes>
struct Bits;
template <>
struct Bits<1> {
  using type = uint8_t;
};
template <>
struct Bits<2> {
  using type = uint16_t;
};
template <>
struct Bits<4> {
  using type = uint32_t;
};
template <>
struct Bits<8> {
  using type = uint64_t;
};

// Calls f.template operator()<U>() with U the unsigned type of `elemBytes` bytes.
template <typename F>
void withElementBits(size_t elemBytes, F&& f) {
  switch (elemBytes) {
    case 1: return f.template operator()<Bits<1>::type>();
    case 2: return f.template operator()<Bits<2>::type>();
    case 4: return f.template operator()<Bits<4>::type>();
    case 8: return f.template operator()<Bits<8>::type>();
  }
  assert(false && "element size must be 1, 2, 4 or 8 bytes");
}

// Elements per chunk of the parallel copies (a few microseconds of work).
constexpr int64_t kCopyGrain = 16384;

// Calls run(r, src) for the runs r in [runBegin, runEnd) of a strided view: run r is the view's
// innermost axis at outer position r (row-major), `src` the input offset of its first element.
template <typename F>
void forEachViewRun(const geometry::StridedView& v, int64_t runBegin, int64_t runEnd, F&& run) {
  const int64_t rank = int64_t(v.shape.size());
  std::vector<int64_t> idx(size_t(rank), 0);
  int64_t src = v.offset;
  for (int64_t rest = runBegin, d = rank - 2; d >= 0; --d) {  // run runBegin's outer indices
    idx[size_t(d)] = rest % v.shape[size_t(d)];
    rest /= v.shape[size_t(d)];
    src += idx[size_t(d)] * v.strides[size_t(d)];
  }
  for (int64_t r = runBegin; r < runEnd; ++r) {
    run(r, src);
    for (int64_t d = rank - 2; d >= 0; --d) {
      src += v.strides[size_t(d)];
      if (++idx[size_t(d)] < v.shape[size_t(d)]) break;
      src -= v.strides[size_t(d)] * v.shape[size_t(d)];
      idx[size_t(d)] = 0;
    }
  }
}

// y = the view of x, in row-major order of the view; chunks of its runs in parallel.
template <typename U>
void copyStridedAs(const geometry::StridedView& v, const U* x, U* y) {
  const int64_t rank = int64_t(v.shape.size());
  const int64_t total = numElements(v.shape);
  if (total == 0) return;
  if (rank == 0) {
    y[0] = x[v.offset];
    return;
  }
  const int64_t inner = v.shape[size_t(rank - 1)];
  const int64_t innerStride = v.strides[size_t(rank - 1)];
  parallelFor(total / inner, std::max<int64_t>(1, kCopyGrain / inner), [&](int64_t begin, int64_t end) {
    forEachViewRun(v, begin, end, [&](int64_t r, int64_t src) {
      U* out = y + r * inner;
      if (innerStride == 1)
        std::memcpy(out, x + src, sizeof(U) * size_t(inner));
      else
        for (int64_t i = 0; i < inner; ++i) out[i] = x[src + i * innerStride];
    });
  });
}

// The index k of an index tensor as an offset into an axis of `extent` (negative from the back).
template <typename I>
int64_t resolveIndex(I v, int64_t extent) {
  const int64_t i = int64_t(v);
  return i < 0 ? i + extent : i;
}

const void* raw(OpContext& c, const Value* v) { return c.view(v).raw(); }
void* rawOut(OpContext& c) { return c.view(c.node().result()).raw(); }
size_t elemBytesOf(const Value* v) { return dtypeSize(v->type().dtype); }

// Calls f(const I* indices) with the index operand's element type.
template <typename F>
Expected<void> withIndices(OpContext& c, size_t i, F&& f) {
  const Value* v = c.node().input(i);
  switch (v->type().dtype) {
    case DType::I64: return f(static_cast<const int64_t*>(raw(c, v)));
    case DType::I32: return f(static_cast<const int32_t*>(raw(c, v)));
    case DType::U8: return f(static_cast<const uint8_t*>(raw(c, v)));
    default: break;
  }
  return c.error("indices must be integers");
}

}  // namespace

// ---- kernels ------------------------------------------------------------------------------

void copyStrided(size_t elemBytes, const geometry::StridedView& view, const void* x, void* y) {
  withElementBits(elemBytes, [&]<typename U>() { copyStridedAs(view, static_cast<const U*>(x), static_cast<U*>(y)); });
}

template <typename T>
void scatterStrided(const geometry::StridedView& v, const T* dy, int64_t inputCount, T* dx) {
  parallelFor(inputCount, kCopyGrain, [&](int64_t begin, int64_t end) { std::fill(dx + begin, dx + end, T(0)); });
  const int64_t rank = int64_t(v.shape.size());
  const int64_t total = numElements(v.shape);
  if (total == 0) return;
  if (rank == 0) {
    dx[v.offset] = dy[0];
    return;
  }
  // The view visits each element of dx at most once, so chunks of its runs write apart.
  const int64_t inner = v.shape[size_t(rank - 1)];
  const int64_t innerStride = v.strides[size_t(rank - 1)];
  parallelFor(total / inner, std::max<int64_t>(1, kCopyGrain / inner), [&](int64_t begin, int64_t end) {
    forEachViewRun(v, begin, end, [&](int64_t r, int64_t dst) {
      const T* in = dy + r * inner;
      if (innerStride == 1)
        std::copy_n(in, inner, dx + dst);
      else
        for (int64_t i = 0; i < inner; ++i) dx[dst + i * innerStride] = in[i];
    });
  });
}

void concat(size_t elemBytes, const std::vector<Shape>& shapes, const std::vector<const void*>& xs, int64_t axis,
            void* y) {
  // Each operand is [outer, extent_i, inner]; the result row o holds the operands' rows o in turn.
  int64_t total = 0;
  for (const Shape& s : shapes) total += s[size_t(axis)];
  const geometry::AxisSplit first = geometry::splitAt(shapes[0], axis);
  const size_t rowBytes = size_t(total * first.inner) * elemBytes;
  size_t at = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const geometry::AxisSplit s = geometry::splitAt(shapes[i], axis);
    const size_t chunk = size_t(s.extent * s.inner) * elemBytes;
    const char* src = static_cast<const char*>(xs[i]);
    char* dst = static_cast<char*>(y) + at;
    for (int64_t o = 0; o < s.outer; ++o) std::memcpy(dst + size_t(o) * rowBytes, src + size_t(o) * chunk, chunk);
    at += chunk;
  }
}

void pad(size_t elemBytes, const Shape& inShape, const geometry::PadSpec& spec, const void* x, const void* fill,
         void* y) {
  withElementBits(elemBytes, [&]<typename U>() {
    const U* xs = static_cast<const U*>(x);
    U* ys = static_cast<U*>(y);
    const U value = *static_cast<const U*>(fill);
    const Shape out = geometry::paddedShape(inShape, spec);
    const std::vector<int64_t> inStride = geometry::stridesOf(inShape);
    const int64_t rank = int64_t(out.size());
    const int64_t total = numElements(out);
    std::vector<int64_t> idx(size_t(rank), 0);
    for (int64_t o = 0; o < total; ++o) {
      int64_t src = 0;
      bool filled = false;
      for (int64_t d = 0; d < rank && !filled; ++d) {
        const int64_t s = geometry::padSource(idx[size_t(d)], inShape[size_t(d)], spec.before[size_t(d)], spec.mode);
        if (s < 0) filled = true;
        else src += s * inStride[size_t(d)];
      }
      ys[o] = filled ? value : xs[src];
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < out[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  });
}

template <typename T>
void padBackward(const Shape& inShape, const geometry::PadSpec& spec, const T* dy, T* dx) {
  const Shape out = geometry::paddedShape(inShape, spec);
  const std::vector<int64_t> inStride = geometry::stridesOf(inShape);
  const int64_t rank = int64_t(out.size());
  const int64_t total = numElements(out);
  std::fill(dx, dx + numElements(inShape), T(0));
  std::vector<int64_t> idx(size_t(rank), 0);
  for (int64_t o = 0; o < total; ++o) {
    int64_t src = 0;
    bool filled = false;
    for (int64_t d = 0; d < rank && !filled; ++d) {
      const int64_t s = geometry::padSource(idx[size_t(d)], inShape[size_t(d)], spec.before[size_t(d)], spec.mode);
      if (s < 0) filled = true;
      else src += s * inStride[size_t(d)];
    }
    if (!filled) dx[src] += dy[o];
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < out[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
}

template <typename I>
int64_t firstBadIndex(int64_t count, const I* indices, int64_t extent) {
  for (int64_t k = 0; k < count; ++k) {
    const int64_t i = int64_t(indices[k]);
    if (i < -extent || i >= extent) return k;
  }
  return -1;
}

template <typename I>
void gather(size_t elemBytes, geometry::AxisSplit x, int64_t count, const I* indices, const void* xData, void* y) {
  const size_t row = size_t(x.inner) * elemBytes;
  const char* src = static_cast<const char*>(xData);
  char* dst = static_cast<char*>(y);
  for (int64_t o = 0; o < x.outer; ++o)
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = resolveIndex(indices[k], x.extent);
      std::memcpy(dst + size_t(o * count + k) * row, src + size_t(o * x.extent + i) * row, row);
    }
}

template <typename T, typename I>
void gatherBackward(geometry::AxisSplit x, int64_t count, const I* indices, const T* dy, T* dx) {
  std::fill(dx, dx + x.outer * x.extent * x.inner, T(0));
  for (int64_t o = 0; o < x.outer; ++o)
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = resolveIndex(indices[k], x.extent);
      if (i < 0 || i >= x.extent) continue;  // gather, which runs first, reported it
      T* d = dx + (o * x.extent + i) * x.inner;
      const T* g = dy + (o * count + k) * x.inner;
      for (int64_t j = 0; j < x.inner; ++j) d[j] += g[j];
    }
}

template <typename T>
void batchMatMul(const geometry::BatchMatMulGeometry& g, T alpha, const T* a, const T* b, T* c) {
  for (const geometry::BatchRun& r : geometry::batchRuns(g))
    gemmBatched<T>(r.count, g.transA, g.transB, g.m, g.n, g.k, alpha, a + g.aOffset(r.first), r.aStride,
                   b + g.bOffset(r.first), r.bStride, T(0), c + r.first * g.m * g.n, g.m * g.n);
}

// The column kernels below compute, per (outer, inner) column, exactly what the row kernels of
// kernels_loss.cpp compute per row, in the same order, so the axis never changes the result.

template <typename T>
void softmaxAxis(geometry::AxisSplit s, const T* x, T* y) {
  if (s.inner == 1) return softmax(s.outer, s.extent, x, y);
  std::vector<T> m(size_t(s.inner));
  std::vector<double> sum(size_t(s.inner));
  for (int64_t o = 0; o < s.outer; ++o) {
    const T* xo = x + o * s.extent * s.inner;
    T* yo = y + o * s.extent * s.inner;
    std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) m[i] = xo[j * s.inner + i] > m[i] ? xo[j * s.inner + i] : m[i];
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) {
        yo[j * s.inner + i] = std::exp(xo[j * s.inner + i] - m[i]);
        sum[i] += double(yo[j * s.inner + i]);
      }
    for (int64_t i = 0; i < s.inner; ++i) m[i] = T(1.0 / sum[i]);  // m now holds 1 / sum
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) yo[j * s.inner + i] *= m[i];
  }
}

template <typename T>
void logSoftmaxAxis(geometry::AxisSplit s, const T* x, T* y) {
  if (s.inner == 1) return logSoftmax(s.outer, s.extent, x, y);
  std::vector<T> m(size_t(s.inner)), logSum(size_t(s.inner));
  std::vector<double> sum(size_t(s.inner));
  for (int64_t o = 0; o < s.outer; ++o) {
    const T* xo = x + o * s.extent * s.inner;
    T* yo = y + o * s.extent * s.inner;
    std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) m[i] = xo[j * s.inner + i] > m[i] ? xo[j * s.inner + i] : m[i];
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i)
        if (!std::isinf(m[i])) sum[i] += std::exp(double(xo[j * s.inner + i] - m[i]));
    // An infinite max (all -inf, or a +inf) gives logSum 0, as the row kernel's rowLogSumExp.
    for (int64_t i = 0; i < s.inner; ++i) logSum[i] = std::isinf(m[i]) ? T(0) : T(std::log(sum[i]));
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) yo[j * s.inner + i] = (xo[j * s.inner + i] - m[i]) - logSum[i];
  }
}

template <typename T>
void softmaxBackwardAxis(geometry::AxisSplit s, const T* y, const T* dy, T* dx) {
  if (s.inner == 1) return softmaxBackward(s.outer, s.extent, y, dy, dx);
  std::vector<double> dot(size_t(s.inner));
  std::vector<T> d(size_t(s.inner));
  for (int64_t o = 0; o < s.outer; ++o) {
    const int64_t base = o * s.extent * s.inner;
    std::fill(dot.begin(), dot.end(), 0.0);
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i)
        dot[i] += double(dy[base + j * s.inner + i]) * double(y[base + j * s.inner + i]);
    for (int64_t i = 0; i < s.inner; ++i) d[i] = T(dot[i]);
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) {
        const int64_t e = base + j * s.inner + i;
        dx[e] = y[e] * (dy[e] - d[i]);
      }
  }
}

template <typename T>
void logSoftmaxBackwardAxis(geometry::AxisSplit s, const T* y, const T* dy, T* dx) {
  if (s.inner == 1) return logSoftmaxBackward(s.outer, s.extent, y, dy, dx);
  std::vector<double> sum(size_t(s.inner));
  std::vector<T> t(size_t(s.inner));
  for (int64_t o = 0; o < s.outer; ++o) {
    const int64_t base = o * s.extent * s.inner;
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) sum[i] += double(dy[base + j * s.inner + i]);
    for (int64_t i = 0; i < s.inner; ++i) t[i] = T(sum[i]);
    for (int64_t j = 0; j < s.extent; ++j)
      for (int64_t i = 0; i < s.inner; ++i) {
        const int64_t e = base + j * s.inner + i;
        dx[e] = dy[e] - std::exp(y[e]) * t[i];
      }
  }
}

template <typename T>
void causalMask(int64_t matrices, int64_t rows, int64_t cols, const T* x, T value, T* y) {
  for (int64_t m = 0; m < matrices; ++m)
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t row = (m * rows + i) * cols;
      for (int64_t j = 0; j < cols; ++j) y[row + j] = j > i ? value : x[row + j];
    }
}

// ---- runners --------------------------------------------------------------------------------

template <typename T>
Expected<void> runConcat(OpContext& c) {
  const Node& n = c.node();
  auto axis = geometry::normalizeAxis(c.attrs().getInt("axis"), int64_t(c.inShape(0).size()));
  if (!axis) return c.error(axis.error().message());
  std::vector<Shape> shapes;
  std::vector<const void*> xs;
  for (size_t i = 0; i < n.numInputs(); ++i) {
    shapes.push_back(c.inShape(i));
    xs.push_back(raw(c, n.input(i)));
  }
  concat(elemBytesOf(n.result()), shapes, xs, *axis, rawOut(c));
  return {};
}

template <typename T>
Expected<void> runSlice(OpContext& c) {
  auto axes = geometry::sliceAxes(c.inShape(0), c.attrs());
  if (!axes) return c.error(axes.error().message());
  copyStrided(elemBytesOf(c.node().result()), geometry::sliceView(c.inShape(0), *axes), raw(c, c.node().input(0)),
              rawOut(c));
  return {};
}

template <typename T>
Expected<void> runSliceGrad(OpContext& c) {
  auto axes = geometry::sliceAxes(c.outShape(), c.attrs());
  if (!axes) return c.error(axes.error().message());
  scatterStrided<T>(geometry::sliceView(c.outShape(), *axes), c.in<T>(0), c.outCount(), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runTranspose(OpContext& c) {
  auto perm = geometry::permutation(c.attrs().getInts("perm"), int64_t(c.inShape(0).size()));
  if (!perm) return c.error(perm.error().message());
  copyStrided(elemBytesOf(c.node().result()), geometry::transposeView(c.inShape(0), *perm), raw(c, c.node().input(0)),
              rawOut(c));
  return {};
}

template <typename T>
Expected<void> runPad(OpContext& c) {
  auto spec = geometry::padSpec(c.inShape(0), c.attrs());
  if (!spec) return c.error(spec.error().message());
  // The fill value in the result's element type (integers saturate, as Tensor::set does).
  Tensor fill(c.node().result()->type().dtype, {});
  fill.set(0, spec->value);
  pad(elemBytesOf(c.node().result()), c.inShape(0), *spec, raw(c, c.node().input(0)), fill.raw(), rawOut(c));
  return {};
}

template <typename T>
Expected<void> runPadGrad(OpContext& c) {
  auto spec = geometry::padSpec(c.outShape(), c.attrs());
  if (!spec) return c.error(spec.error().message());
  padBackward<T>(c.outShape(), *spec, c.in<T>(0), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runGather(OpContext& c) {
  auto axis = geometry::normalizeAxis(c.attrs().getInt("axis"), int64_t(c.inShape(0).size()));
  if (!axis) return c.error(axis.error().message());
  const geometry::AxisSplit x = geometry::splitAt(c.inShape(0), *axis);
  const int64_t count = numElements(c.inShape(1));
  return withIndices(c, 1, [&](const auto* indices) -> Expected<void> {
    if (int64_t bad = firstBadIndex(count, indices, x.extent); bad >= 0)
      return c.error(fmt::format("index {} at position {} is outside [-{}, {})", int64_t(indices[bad]), bad, x.extent,
                                 x.extent));
    gather(elemBytesOf(c.node().result()), x, count, indices, raw(c, c.node().input(0)), rawOut(c));
    return {};
  });
}

template <typename T>
Expected<void> runGatherGrad(OpContext& c) {
  auto axis = geometry::normalizeAxis(c.attrs().getInt("axis"), int64_t(c.outShape().size()));
  if (!axis) return c.error(axis.error().message());
  const geometry::AxisSplit x = geometry::splitAt(c.outShape(), *axis);
  const int64_t count = numElements(c.inShape(1));
  return withIndices(c, 1, [&](const auto* indices) -> Expected<void> {
    gatherBackward<T>(x, count, indices, c.in<T>(0), c.out<T>());
    return {};
  });
}

template <typename T>
Expected<void> runExpand(OpContext& c) {
  copyStrided(elemBytesOf(c.node().result()), geometry::expandView(c.inShape(0), c.outShape()),
              raw(c, c.node().input(0)), rawOut(c));
  return {};
}

template <typename T>
Expected<void> runView(OpContext& c) {
  const void* src = raw(c, c.node().input(0));
  void* dst = rawOut(c);
  if (src != dst) std::memcpy(dst, src, c.node().result()->type().byteSize());
  return {};
}

template <typename T>
Expected<void> runBatchMatMul(OpContext& c) {
  auto g = geometry::batchMatMulGeometry(c.inShape(0), c.inShape(1), c.attrs().getInt("transpose_a") != 0,
                                         c.attrs().getInt("transpose_b") != 0);
  if (!g) return c.error(g.error().message());
  batchMatMul<T>(*g, T(c.attrs().getFloat("alpha")), c.in<T>(0), c.in<T>(1), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runSoftmaxAxis(OpContext& c) {
  auto axis = geometry::normalizeAxis(c.attrs().getInt("axis"), int64_t(c.inShape(0).size()));
  if (!axis) return c.error(axis.error().message());
  const geometry::AxisSplit s = geometry::splitAt(c.inShape(0), *axis);
  const OpKind kind = c.node().kind();
  if (kind == OpKind::Softmax) softmaxAxis<T>(s, c.in<T>(0), c.out<T>());
  else if (kind == OpKind::LogSoftmax) logSoftmaxAxis<T>(s, c.in<T>(0), c.out<T>());
  else if (kind == OpKind::SoftmaxGrad) softmaxBackwardAxis<T>(s, c.in<T>(0), c.in<T>(1), c.out<T>());
  else if (kind == OpKind::LogSoftmaxGrad) logSoftmaxBackwardAxis<T>(s, c.in<T>(0), c.in<T>(1), c.out<T>());
  else return c.error("internal error: not a softmax op");
  return {};
}

template <typename T>
Expected<void> runCausalMask(OpContext& c) {
  const Shape& s = c.inShape(0);
  const int64_t rows = s[s.size() - 2], cols = s.back();
  causalMask<T>(c.outCount() / (rows * cols), rows, cols, c.in<T>(0), T(c.attrs().getFloat("value")), c.out<T>());
  return {};
}

#define SHOAL_INSTANTIATE(T)                                                                                  \
  template Expected<void> runConcat<T>(OpContext&);                                                           \
  template Expected<void> runSlice<T>(OpContext&);                                                            \
  template Expected<void> runSliceGrad<T>(OpContext&);                                                        \
  template Expected<void> runTranspose<T>(OpContext&);                                                        \
  template Expected<void> runPad<T>(OpContext&);                                                              \
  template Expected<void> runPadGrad<T>(OpContext&);                                                          \
  template Expected<void> runGather<T>(OpContext&);                                                           \
  template Expected<void> runGatherGrad<T>(OpContext&);                                                       \
  template Expected<void> runExpand<T>(OpContext&);                                                           \
  template Expected<void> runView<T>(OpContext&);                                                             \
  template Expected<void> runBatchMatMul<T>(OpContext&);                                                      \
  template Expected<void> runSoftmaxAxis<T>(OpContext&);                                                      \
  template Expected<void> runCausalMask<T>(OpContext&);                                                       \
  template void scatterStrided<T>(const geometry::StridedView&, const T*, int64_t, T*);                       \
  template void padBackward<T>(const Shape&, const geometry::PadSpec&, const T*, T*);                         \
  template void gatherBackward<T, int64_t>(geometry::AxisSplit, int64_t, const int64_t*, const T*, T*);       \
  template void gatherBackward<T, int32_t>(geometry::AxisSplit, int64_t, const int32_t*, const T*, T*);       \
  template void gatherBackward<T, uint8_t>(geometry::AxisSplit, int64_t, const uint8_t*, const T*, T*);       \
  template void batchMatMul<T>(const geometry::BatchMatMulGeometry&, T, const T*, const T*, T*);              \
  template void softmaxAxis<T>(geometry::AxisSplit, const T*, T*);                                            \
  template void logSoftmaxAxis<T>(geometry::AxisSplit, const T*, T*);                                         \
  template void softmaxBackwardAxis<T>(geometry::AxisSplit, const T*, const T*, T*);                          \
  template void logSoftmaxBackwardAxis<T>(geometry::AxisSplit, const T*, const T*, T*);                       \
  template void causalMask<T>(int64_t, int64_t, int64_t, const T*, T, T*);
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE

#define SHOAL_INSTANTIATE_INDEX(I)                                                 \
  template int64_t firstBadIndex<I>(int64_t, const I*, int64_t);                   \
  template void gather<I>(size_t, geometry::AxisSplit, int64_t, const I*, const void*, void*);
SHOAL_INSTANTIATE_INDEX(int64_t)
SHOAL_INSTANTIATE_INDEX(int32_t)
SHOAL_INSTANTIATE_INDEX(uint8_t)
#undef SHOAL_INSTANTIATE_INDEX

}  // namespace shoal::cpu
