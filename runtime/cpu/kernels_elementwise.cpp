// CPU reference kernels: the elementwise ops of ir/ops.def (from their formulas, with
// broadcasting), and reductions.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <vector>

#include "ir/elementwise.h"
#include "ir/scalar_math.h"
#include "ir/shape_geometry.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_util.h"
#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

// Elements per chunk of the parallel elementwise loops (a few microseconds of work).
constexpr int64_t kElementwiseGrain = 16384;

// ---------------------------------------------------------------------------------------
// Broadcast loop plans. A "full" shape is walked in row-major order together with up to
// two operands broadcast to it. Dimensions of extent 1 are dropped and neighbours that
// broadcast the same way are merged, so [N,C,H,W] + [C,1,1] becomes three loops
// (N: repeated, C: walked, H*W: repeated) with a long innermost run.
// ---------------------------------------------------------------------------------------

struct LoopPlan {
  std::vector<int64_t> extent;
  std::vector<int64_t> stride[2];  // element strides per operand; 0 where it is repeated
};

LoopPlan planLoops(const Shape& full, const Shape& s0, const Shape& s1) {
  const size_t rank = full.size();
  assert(s0.size() <= rank && s1.size() <= rank);
  LoopPlan plan;
  std::vector<bool> rep[2];
  for (size_t d = 0; d < rank; ++d) {
    if (full[d] == 1) continue;
    bool r0 = geometry::alignedExtent(s0, d, rank) == 1, r1 = geometry::alignedExtent(s1, d, rank) == 1;
    assert((r0 || geometry::alignedExtent(s0, d, rank) == full[d]) && (r1 || geometry::alignedExtent(s1, d, rank) == full[d]));
    if (!plan.extent.empty() && rep[0].back() == r0 && rep[1].back() == r1) {
      plan.extent.back() *= full[d];
    } else {
      plan.extent.push_back(full[d]);
      rep[0].push_back(r0);
      rep[1].push_back(r1);
    }
  }
  if (plan.extent.empty()) {  // a single element
    plan.extent.push_back(1);
    rep[0].push_back(false);
    rep[1].push_back(false);
  }
  for (int k = 0; k < 2; ++k) {
    plan.stride[k].resize(plan.extent.size());
    int64_t running = 1;
    for (size_t d = plan.extent.size(); d-- > 0;) {
      plan.stride[k][d] = rep[k][d] ? 0 : running;
      if (!rep[k][d]) running *= plan.extent[d];
    }
  }
  return plan;
}

// Calls run(off0, off1, fullOffset, length, innerStride0, innerStride1) for each innermost
// run r of the plan with runBegin <= r < runEnd, in row-major order of the full shape.
template <typename F>
void forEachRunIn(const LoopPlan& plan, int64_t runBegin, int64_t runEnd, F&& run) {
  const size_t loops = plan.extent.size();
  const int64_t inner = plan.extent.back();
  const int64_t s0 = plan.stride[0].back(), s1 = plan.stride[1].back();
  std::vector<int64_t> idx(loops, 0);
  int64_t off0 = 0, off1 = 0;
  for (int64_t rest = runBegin, d = int64_t(loops) - 2; d >= 0; --d) {  // run runBegin's outer indices
    idx[size_t(d)] = rest % plan.extent[size_t(d)];
    rest /= plan.extent[size_t(d)];
    off0 += idx[size_t(d)] * plan.stride[0][size_t(d)];
    off1 += idx[size_t(d)] * plan.stride[1][size_t(d)];
  }
  for (int64_t r = runBegin; r < runEnd; ++r) {
    run(off0, off1, r * inner, inner, s0, s1);
    for (size_t d = loops - 1; d-- > 0;) {
      off0 += plan.stride[0][d];
      off1 += plan.stride[1][d];
      if (++idx[d] < plan.extent[d]) break;
      off0 -= plan.stride[0][d] * plan.extent[d];
      off1 -= plan.stride[1][d] * plan.extent[d];
      idx[d] = 0;
    }
  }
}

// forEachRunIn over every run of a full shape of `total` elements.
template <typename F>
void forEachRun(const LoopPlan& plan, int64_t total, F&& run) {
  if (total > 0) forEachRunIn(plan, 0, total / plan.extent.back(), run);
}

// forEachRun for a plan whose operand 1 is the walked (full) shape itself: calls
// run(off0, off1, length, innerStride0) for each innermost run, offsets from operand 1's
// strides, so a plan with a shortened extent walks a sub-block of the full shape.
template <typename F>
void forEachRunStrided(const LoopPlan& plan, F&& run) {
  const size_t loops = plan.extent.size();
  const int64_t inner = plan.extent.back();
  int64_t runs = 1;
  for (size_t d = 0; d + 1 < loops; ++d) runs *= plan.extent[d];
  if (inner == 0) return;
  std::vector<int64_t> idx(loops, 0);
  int64_t off0 = 0, off1 = 0;
  for (int64_t r = 0; r < runs; ++r) {
    run(off0, off1, inner, plan.stride[0].back());
    for (size_t d = loops - 1; d-- > 0;) {
      off0 += plan.stride[0][d];
      off1 += plan.stride[1][d];
      if (++idx[d] < plan.extent[d]) break;
      off0 -= plan.stride[0][d] * plan.extent[d];
      off1 -= plan.stride[1][d] * plan.extent[d];
      idx[d] = 0;
    }
  }
}

// out = f(a, b) with broadcasting. Chunks of the output in parallel, each element computed
// alone, so the bits do not depend on the thread count.
template <typename T, typename F>
void binaryLoop(const Shape& outShape, const Shape& aShape, const T* a, const Shape& bShape, const T* b, T* out,
                F f) {
  const int64_t n = numElements(outShape);
  const int64_t na = numElements(aShape), nb = numElements(bShape);
  if (n == 0) return;
  if (na == n && nb == n) {
    parallelFor(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(a[i], b[i]);
    });
    return;
  }
  if (na == n && nb == 1) {
    const T bv = b[0];
    parallelFor(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(a[i], bv);
    });
    return;
  }
  if (na == 1 && nb == n) {
    const T av = a[0];
    parallelFor(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = f(av, b[i]);
    });
    return;
  }
  LoopPlan plan = planLoops(outShape, aShape, bShape);
  const int64_t inner = plan.extent.back();
  parallelFor(n / inner, std::max<int64_t>(1, kElementwiseGrain / inner), [&](int64_t runBegin, int64_t runEnd) {
    forEachRunIn(plan, runBegin, runEnd, [&](int64_t oa, int64_t ob, int64_t o, int64_t len, int64_t sa, int64_t sb) {
      const T* ap = a + oa;
      const T* bp = b + ob;
      T* op = out + o;
      if (sa == 1 && sb == 1) {
        for (int64_t i = 0; i < len; ++i) op[i] = f(ap[i], bp[i]);
      } else if (sa == 1) {
        const T bv = bp[0];
        for (int64_t i = 0; i < len; ++i) op[i] = f(ap[i], bv);
      } else if (sb == 1) {
        const T av = ap[0];
        for (int64_t i = 0; i < len; ++i) op[i] = f(av, bp[i]);
      } else {
        const T v = f(ap[0], bp[0]);
        for (int64_t i = 0; i < len; ++i) op[i] = v;
      }
    });
  });
}

std::vector<bool> reducedAxes(size_t rank, const std::vector<int64_t>& axes) {
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes) {
    int64_t d = a < 0 ? a + int64_t(rank) : a;
    assert(d >= 0 && d < int64_t(rank) && "reduction axis out of range");
    reduced[size_t(d)] = true;
  }
  return reduced;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Elementwise ops: one kernel pair per SHOAL_ELEMENTWISE row of ir/ops.def, from its formula
// ---------------------------------------------------------------------------------------

bool broadcastsTo(const Shape& aShape, const Shape& bShape, const Shape& outShape) {
  const size_t rank = std::max(aShape.size(), bShape.size());
  if (outShape.size() != rank) return false;
  for (size_t d = 0; d < rank; ++d) {
    int64_t ea = geometry::alignedExtent(aShape, d, rank), eb = geometry::alignedExtent(bShape, d, rank);
    if (ea != eb && ea != 1 && eb != 1) return false;
    int64_t e = ea == 1 ? eb : ea;
    if (outShape[d] != e) return false;
  }
  return true;
}

namespace {

// The formula's names: operands a, b, c and params p0..p3, in element type T. Every operand
// is loaded unconditionally (an arity's missing operands are constant zeros), so the selects
// if-convert and the loops vectorize.
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc)
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc)                    \
  template <typename T>                                                                                       \
  void same##kind(int64_t n, const T* const* in, const T* prm, T* y) {                                       \
    using namespace shoal::scalar;                                                                            \
    [[maybe_unused]] const T p0 = prm[0], p1 = prm[1], p2 = prm[2], p3 = prm[3];                             \
    const T* x0 = in[0];                                                                                      \
    [[maybe_unused]] const T* x1 = (arity) > 1 ? in[1] : nullptr;                                            \
    [[maybe_unused]] const T* x2 = (arity) > 2 ? in[2] : nullptr;                                            \
    for (int64_t i = 0; i < n; ++i) {                                                                         \
      [[maybe_unused]] const T a = x0[i];                                                                     \
      [[maybe_unused]] const T b = (arity) > 1 ? x1[i] : T(0);                                               \
      [[maybe_unused]] const T c = (arity) > 2 ? x2[i] : T(0);                                               \
      y[i] = formula;                                                                                         \
    }                                                                                                         \
  }                                                                                                           \
  template <typename T>                                                                                       \
  void broadcast##kind(const Shape& outShape, const Shape& aShape, const T* x0, const Shape& bShape,         \
                       const T* x1, const T* prm, T* y) {                                                     \
    using namespace shoal::scalar;                                                                            \
    [[maybe_unused]] const T p0 = prm[0], p1 = prm[1], p2 = prm[2], p3 = prm[3];                             \
    binaryLoop(outShape, aShape, x0, bShape, x1, y, [=](T a, T b) {                                           \
      [[maybe_unused]] const T c = T(0);                                                                      \
      return formula;                                                                                         \
    });                                                                                                       \
  }
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP

template <typename T>
std::vector<FormulaKernel<T>> buildFormulaKernels() {
  std::vector<FormulaKernel<T>> table(static_cast<size_t>(kNumOps));
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc)
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc) \
  table[size_t(OpKind::kind)] = {&same##kind<T>, (arity) == 2 ? &broadcast##kind<T> : nullptr};
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP
  return table;
}

}  // namespace

template <typename T>
const FormulaKernel<T>& formulaKernel(OpKind kind) {
  static const std::vector<FormulaKernel<T>> table = buildFormulaKernels<T>();
  return table[size_t(kind)];
}

template <typename T>
void elementwise(OpKind kind, const Shape& outShape, const std::vector<Shape>& shapes, const std::vector<const T*>& operands,
                 const T* params, T* y) {
  const FormulaKernel<T>& k = formulaKernel<T>(kind);
  assert(k.same && "not an elementwise op");
  const int64_t n = numElements(outShape);
  bool allSame = true;
  for (const Shape& s : shapes) allSame &= numElements(s) == n;
  if (allSame) {
    // Chunks of the flat range in parallel: per element, so any chunking gives the same bits.
    parallelFor(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
      const T* in[kMaxFormulaOperands] = {};
      for (size_t i = 0; i < operands.size() && i < size_t(kMaxFormulaOperands); ++i) in[i] = operands[i] + begin;
      k.same(end - begin, in, params, y + begin);
    });
    return;
  }
  if (k.broadcast2 && operands.size() == 2) {
    k.broadcast2(outShape, shapes[0], operands[0], shapes[1], operands[1], params, y);
    return;
  }
  // Other arities: broadcast every smaller operand to a full-size copy first.
  std::vector<std::vector<T>> copies;
  std::vector<const T*> full;
  const T zero = T(0);
  for (size_t i = 0; i < operands.size(); ++i) {
    if (numElements(shapes[i]) == n) {
      full.push_back(operands[i]);
      continue;
    }
    copies.emplace_back(size_t(n));
    binaryLoop(outShape, shapes[i], operands[i], Shape{}, &zero, copies.back().data(), [](T u, T) { return u; });
    full.push_back(copies.back().data());
  }
  parallelFor(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    const T* in[kMaxFormulaOperands] = {};
    for (size_t i = 0; i < full.size() && i < size_t(kMaxFormulaOperands); ++i) in[i] = full[i] + begin;
    k.same(end - begin, in, params, y + begin);
  });
}

namespace {

// acc[j] = Σ of the elements of x (inShape) that broadcasting outShape to inShape maps to
// element j of outShape, in double. Parallel over the first loop the output walks: each output
// element lives in one chunk and receives its terms in the order of one sequential walk (the
// same bits with any number of threads).
template <typename T>
std::vector<double> sumToShapeInDouble(const Shape& inShape, const T* x, const Shape& outShape) {
  const int64_t n = numElements(inShape), m = numElements(outShape);
  std::vector<double> acc(size_t(m), 0.0);
  if (n == 0) return acc;
  LoopPlan plan = planLoops(inShape, outShape, inShape);
  size_t split = 0;
  while (split < plan.extent.size() && plan.stride[0][split] == 0) ++split;
  if (split == plan.extent.size()) split = 0;  // a single output: nothing to split (one chunk)
  const int64_t extent = plan.extent[split];
  const int64_t grain =
      plan.stride[0][split] == 0 ? extent : grainFor(std::max<int64_t>(1, n / std::max<int64_t>(extent, 1)));
  parallelFor(extent, grain, [&](int64_t begin, int64_t end) {
    LoopPlan part = plan;
    part.extent[split] = end - begin;
    const int64_t offY = begin * plan.stride[0][split], offX = begin * plan.stride[1][split];
    // The restricted walk covers its own sub-block of the input: recompute the flat input
    // offset of each run from the plan's input strides (stride[1]).
    forEachRunStrided(part, [&](int64_t oy, int64_t ox, int64_t len, int64_t sy) {
      const T* xp = x + offX + ox;
      if (sy == 1) {
        double* ap = acc.data() + offY + oy;
        for (int64_t i = 0; i < len; ++i) ap[i] += double(xp[i]);
      } else {
        acc[size_t(offY + oy)] += detail::sumAsDouble(xp, len);
      }
    });
  });
  return acc;
}

}  // namespace

template <typename T>
void reduceSumToShape(const Shape& inShape, const T* x, const Shape& outShape, T* y) {
  assert(broadcastsTo(outShape, inShape, inShape));
  const int64_t n = numElements(inShape), m = numElements(outShape);
  if (n == m) {
    std::copy(x, x + n, y);
    return;
  }
  const std::vector<double> acc = sumToShapeInDouble(inShape, x, outShape);
  for (int64_t j = 0; j < m; ++j) y[j] = T(acc[size_t(j)]);
}

Shape reducedShape(const Shape& inShape, const std::vector<int64_t>& axes, bool keepDims) {
  std::vector<bool> reduced = reducedAxes(inShape.size(), axes);
  Shape out;
  for (size_t d = 0; d < inShape.size(); ++d) {
    if (!reduced[d])
      out.push_back(inShape[d]);
    else if (keepDims)
      out.push_back(1);
  }
  return out;
}

template <typename T>
void reduce(ReduceKind kind, const Shape& inShape, const T* x, const std::vector<int64_t>& axes, T* y) {
  const Shape keptShape = reducedShape(inShape, axes, /*keepDims=*/true);
  const int64_t n = numElements(inShape), m = numElements(keptShape);
  int64_t count = 1;  // elements reduced into each output
  std::vector<bool> reduced = reducedAxes(inShape.size(), axes);
  for (size_t d = 0; d < inShape.size(); ++d)
    if (reduced[d]) count *= inShape[d];
  LoopPlan plan = planLoops(inShape, keptShape, inShape);

  switch (kind) {
    case ReduceKind::Sum:
    case ReduceKind::Mean: {
      // Each output's terms in the order of one row-major walk, as sum_to (in parallel).
      const std::vector<double> acc = sumToShapeInDouble(inShape, x, keptShape);
      if (kind == ReduceKind::Mean && count == 0) {  // mean of nothing
        std::fill(y, y + m, std::numeric_limits<T>::quiet_NaN());
        return;
      }
      const double scale = kind == ReduceKind::Mean ? 1.0 / double(count) : 1.0;
      for (int64_t j = 0; j < m; ++j) y[j] = T(acc[j] * scale);
      return;
    }
    case ReduceKind::Prod: {  // in double, as the GPU's kernels
      std::vector<double> acc(size_t(m), 1.0);
      if (n > 0) {
        forEachRun(plan, n, [&](int64_t oy, int64_t, int64_t o, int64_t len, int64_t sy, int64_t) {
          const T* xp = x + o;
          if (sy == 1) {
            for (int64_t i = 0; i < len; ++i) acc[oy + i] *= double(xp[i]);
          } else {
            double p = acc[oy];
            for (int64_t i = 0; i < len; ++i) p *= double(xp[i]);
            acc[oy] = p;
          }
        });
      }
      for (int64_t j = 0; j < m; ++j) y[j] = T(acc[j]);
      return;
    }
    case ReduceKind::Max: {
      std::fill(y, y + m, -std::numeric_limits<T>::infinity());
      if (n == 0) return;
      forEachRun(plan, n, [&](int64_t oy, int64_t, int64_t o, int64_t len, int64_t sy, int64_t) {
        const T* xp = x + o;
        if (sy == 1) {
          T* yp = y + oy;
          for (int64_t i = 0; i < len; ++i) yp[i] = (xp[i] > yp[i] || xp[i] != xp[i]) ? xp[i] : yp[i];
        } else {
          T best = y[oy];
          for (int64_t i = 0; i < len; ++i) best = (xp[i] > best || xp[i] != xp[i]) ? xp[i] : best;
          y[oy] = best;
        }
      });
      return;
    }
    case ReduceKind::Min: {
      std::fill(y, y + m, std::numeric_limits<T>::infinity());
      if (n == 0) return;
      forEachRun(plan, n, [&](int64_t oy, int64_t, int64_t o, int64_t len, int64_t sy, int64_t) {
        const T* xp = x + o;
        if (sy == 1) {
          T* yp = y + oy;
          for (int64_t i = 0; i < len; ++i) yp[i] = (xp[i] < yp[i] || xp[i] != xp[i]) ? xp[i] : yp[i];
        } else {
          T best = y[oy];
          for (int64_t i = 0; i < len; ++i) best = (xp[i] < best || xp[i] != xp[i]) ? xp[i] : best;
          y[oy] = best;
        }
      });
      return;
    }
  }
}

#define SHOAL_INSTANTIATE(T)                                                                                    \
  template const FormulaKernel<T>& formulaKernel<T>(OpKind);                                                    \
  template void elementwise<T>(OpKind, const Shape&, const std::vector<Shape>&, const std::vector<const T*>&,   \
                               const T*, T*);                                                                   \
  template void reduceSumToShape<T>(const Shape&, const T*, const Shape&, T*);                                  \
  template void reduce<T>(ReduceKind, const Shape&, const T*, const std::vector<int64_t>&, T*);
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE

}  // namespace shoal::cpu
