// CPU kernels of the norm family (see ops_norm.h). Statistics accumulate in double, two passes
// (mean, then squared deviations), so they are exact to double rounding whatever the data's
// offset; every kernel walks a group by contiguous segments, without divisions per element.
// Groups (channels, rows, sample groups) run in parallel, each on one thread as it would alone,
// so the bits do not depend on the thread count.
#include "runtime/cpu/ops_norm.h"

#include <cmath>
#include <cstring>

#include "ir/scalar_math.h"
#include "runtime/cpu/kernels_util.h"
#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t d = from; d < to; ++d) p *= s[d];
  return p;
}

// Calls f(p, j0, len, w0, wStep) for each segment of group r over which the weight index
// advances uniformly: the segment's elements are x[p .. p + len), element k of it is element
// j0 + k of the group, and its weight/bias index is w0 + wStep * k. A segment is a run (a
// sample's plane of a channel for batchnorm, a row for layernorm) or, for groupnorm, one
// channel's plane within the group.
template <typename F>
void forEachSegment(const NormLayout& l, const NormAffine& a, int64_t r, F f) {
  const int64_t runs = l.count / l.inner;
  for (int64_t o = 0; o < runs; ++o) {
    const int64_t p = o * l.outerStride + r * l.inner, j0 = o * l.inner;
    switch (a.kind) {
      case NormAffineKind::PerGroup:
        f(p, j0, l.inner, r, 0);
        break;
      case NormAffineKind::PerElement:
        f(p, j0, l.inner, j0, 1);
        break;
      case NormAffineKind::PerChannel:
        for (int64_t s = 0; s < l.inner; s += a.spatial) f(p + s, j0 + s, a.spatial, a.channel(r, j0 + s), 0);
        break;
    }
  }
}

struct Moments {
  double mean = 0;
  double m2 = 0;  ///< sum of squared deviations from the mean
};

// Σ (x - mean)², in four interleaved partial sums (as detail::sumAsDouble) so the additions
// pipeline.
template <typename T>
double squaredDeviations(const T* x, int64_t n, double mean) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const double d0 = double(x[i]) - mean, d1 = double(x[i + 1]) - mean;
    const double d2 = double(x[i + 2]) - mean, d3 = double(x[i + 3]) - mean;
    s0 += d0 * d0, s1 += d1 * d1, s2 += d2 * d2, s3 += d3 * d3;
  }
  for (; i < n; ++i) {
    const double d = double(x[i]) - mean;
    s0 += d * d;
  }
  return (s0 + s1) + (s2 + s3);
}

template <typename T>
Moments groupMoments(const NormLayout& l, const T* x, int64_t r) {
  const NormAffine whole{NormAffineKind::PerGroup};
  double sum = 0;
  forEachSegment(l, whole, r,
                 [&](int64_t p, int64_t, int64_t len, int64_t, int64_t) { sum += detail::sumAsDouble(x + p, len); });
  Moments m;
  m.mean = sum / double(l.count);
  forEachSegment(l, whole, r, [&](int64_t p, int64_t, int64_t len, int64_t, int64_t) {
    m.m2 += squaredDeviations(x + p, len, m.mean);
  });
  return m;
}

double invStd(double biasedVar, double eps) { return 1.0 / std::sqrt(biasedVar + eps); }

// y = (x - mean) * invstd * w + b over group r, in T, the statistics already rounded to T.
template <typename T>
void normalizeGroup(const NormLayout& l, const NormAffine& a, int64_t r, const T* x, T mean, T invstd, const T* w,
                    const T* b, T* y) {
  forEachSegment(l, a, r, [&](int64_t p, int64_t, int64_t len, int64_t w0, int64_t wStep) {
    const T* xs = x + p;
    T* ys = y + p;
    if (w && b) {
      for (int64_t k = 0; k < len; ++k) ys[k] = ((xs[k] - mean) * invstd) * w[w0 + wStep * k] + b[w0 + wStep * k];
    } else if (w) {
      for (int64_t k = 0; k < len; ++k) ys[k] = ((xs[k] - mean) * invstd) * w[w0 + wStep * k];
    } else if (b) {
      for (int64_t k = 0; k < len; ++k) ys[k] = ((xs[k] - mean) * invstd) + b[w0 + wStep * k];
    } else {
      for (int64_t k = 0; k < len; ++k) ys[k] = (xs[k] - mean) * invstd;
    }
  });
}

// dx of group r (normBackward's body for one group).
template <typename T>
void normBackwardGroup(const NormLayout& l, const NormAffine& a, int64_t r, const T* x, const T* dy, const T* w,
                       double eps, T* dx) {
  const double count = double(l.count);
  const T one = T(1);  // the weight of an op without one (dy * 1 is dy exactly)
  const Moments m = groupMoments(l, x, r);
  const double invstd = invStd(m.m2 / count, eps);
  // Σ g and Σ g xhat with g = dy * w, in two chains each so the additions pipeline.
  double sumG0 = 0, sumG1 = 0, sumGx0 = 0, sumGx1 = 0;
  forEachSegment(l, a, r, [&](int64_t p, int64_t, int64_t len, int64_t w0, int64_t wStep) {
    const T* ws = w ? w + w0 : &one;
    const int64_t step = w ? wStep : 0;
    int64_t k = 0;
    for (; k + 2 <= len; k += 2) {
      const double g0 = double(dy[p + k]) * double(ws[step * k]);
      const double g1 = double(dy[p + k + 1]) * double(ws[step * (k + 1)]);
      sumG0 += g0, sumG1 += g1;
      sumGx0 += g0 * ((double(x[p + k]) - m.mean) * invstd);
      sumGx1 += g1 * ((double(x[p + k + 1]) - m.mean) * invstd);
    }
    for (; k < len; ++k) {
      const double g = double(dy[p + k]) * double(ws[step * k]);
      sumG0 += g;
      sumGx0 += g * ((double(x[p + k]) - m.mean) * invstd);
    }
  });
  const double meanG = (sumG0 + sumG1) / count, meanGx = (sumGx0 + sumGx1) / count;
  forEachSegment(l, a, r, [&](int64_t p, int64_t, int64_t len, int64_t w0, int64_t wStep) {
    const T* ws = w ? w + w0 : &one;
    const int64_t step = w ? wStep : 0;
    for (int64_t k = 0; k < len; ++k) {
      const double xhat = (double(x[p + k]) - m.mean) * invstd;
      const double g = double(dy[p + k]) * double(ws[step * k]);
      dx[p + k] = T(invstd * (g - meanG - xhat * meanGx));
    }
  });
}

// Σ dy · xhat over group r (PerGroup affine: the group's elements are whole runs), in double,
// in two chains so the additions pipeline.
template <typename T>
double weightGradientOfGroup(const NormLayout& l, int64_t r, const T* x, const T* dy, double eps) {
  const Moments m = groupMoments(l, x, r);
  const double invstd = invStd(m.m2 / double(l.count), eps);
  double s0 = 0, s1 = 0;
  forEachSegment(l, NormAffine{NormAffineKind::PerGroup}, r, [&](int64_t p, int64_t, int64_t len, int64_t, int64_t) {
    int64_t k = 0;
    for (; k + 2 <= len; k += 2) {
      s0 += double(dy[p + k]) * ((double(x[p + k]) - m.mean) * invstd);
      s1 += double(dy[p + k + 1]) * ((double(x[p + k + 1]) - m.mean) * invstd);
    }
    for (; k < len; ++k) s0 += double(dy[p + k]) * ((double(x[p + k]) - m.mean) * invstd);
  });
  return s0 + s1;
}

}  // namespace

NormLayout channelLayout(const Shape& x) {
  const int64_t n = x[0], c = x[1], s = product(x, 2, x.size());
  return {c, n * s, s, c * s};
}

NormLayout rowLayout(const Shape& x, int64_t dims) {
  const int64_t cols = product(x, x.size() - size_t(dims), x.size());
  return {numElements(x) / cols, cols, cols, cols};
}

NormLayout sampleGroupLayout(const Shape& x, int64_t groups) {
  const int64_t per = numElements(x) / (x[0] * groups);
  return {x[0] * groups, per, per, per};
}

NormAffine groupAffine(const Shape& x, int64_t groups) {
  return {NormAffineKind::PerChannel, groups, x[1] / groups, product(x, 2, x.size())};
}

template <typename T>
void batchNormInference(const NormLayout& l, const T* x, const T* mean, const T* var, const T* w, const T* b,
                        double eps, T* y) {
  const NormAffine perChannel{NormAffineKind::PerGroup};
  parallelFor(l.groups, grainFor(l.count), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      normalizeGroup(l, perChannel, c, x, mean[c], T(invStd(double(var[c]), eps)), w, b, y);
  });
}

template <typename T>
void normForward(const NormLayout& l, const NormAffine& a, const T* x, const T* w, const T* b, double eps, T* y) {
  parallelFor(l.groups, grainFor(3 * l.count), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const Moments m = groupMoments(l, x, r);
      normalizeGroup(l, a, r, x, T(m.mean), T(invStd(m.m2 / double(l.count), eps)), w, b, y);
    }
  });
}

template <typename T>
void normBackward(const NormLayout& l, const NormAffine& a, const T* x, const T* dy, const T* w, double eps, T* dx) {
  parallelFor(l.groups, grainFor(6 * l.count), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) normBackwardGroup(l, a, r, x, dy, w, eps, dx);
  });
}

template <typename T>
void normWeightGradient(const NormLayout& l, const T* x, const T* dy, double eps, T* dw) {
  parallelFor(l.groups, grainFor(4 * l.count), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) dw[r] = T(weightGradientOfGroup(l, r, x, dy, eps));
  });
}

template <typename T>
void batchNormStats(const NormLayout& l, const T* x, T* stats) {
  parallelFor(l.groups, grainFor(2 * l.count), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const Moments m = groupMoments(l, x, c);
      stats[c] = T(m.mean);
      stats[l.groups + c] = T(m.m2 / double(l.count - 1));
    }
  });
}

template <typename T>
void batchNormUpdate(int64_t channels, T* runningMean, T* runningVar, const T* stats, int64_t* numBatches,
                     double momentum) {
  for (int64_t c = 0; c < channels; ++c) {
    runningMean[c] = T(momentum * double(stats[c]) + (1.0 - momentum) * double(runningMean[c]));
    runningVar[c] = T(momentum * double(stats[channels + c]) + (1.0 - momentum) * double(runningVar[c]));
  }
  if (numBatches) *numBatches += 1;
}

template <typename T>
void dropoutTrain(int64_t n, const T* x, uint32_t step, uint64_t seed, double rate, T* y) {
  const unsigned long long threshold = scalar::shoal_dropout_threshold(rate);
  const T scale = T(scalar::shoal_dropout_scale(rate));
  for (int64_t base = 0; base < n; base += 4) {
    const uint64_t block = uint64_t(base) / 4;
    unsigned int words[4] = {uint32_t(block), uint32_t(block >> 32), step, 0u};
    scalar::shoal_philox4x32_10(words, uint32_t(seed), uint32_t(seed >> 32));
    for (int64_t k = 0; k < 4 && base + k < n; ++k) y[base + k] = x[base + k] * (words[k] < threshold ? scale : T(0));
  }
}

uint32_t dropoutStepWord(double step) { return uint32_t(int64_t(step)); }

// ---- runners ------------------------------------------------------------------------------

namespace {

template <typename T>
const T* optionalIn(OpContext& c, size_t i) {
  return c.numInputs() > i ? c.in<T>(i) : nullptr;
}

}  // namespace

template <typename T>
Expected<void> runBatchNorm(OpContext& c) {
  batchNormInference<T>(channelLayout(c.inShape(0)), c.in<T>(0), c.in<T>(1), c.in<T>(2), optionalIn<T>(c, 3),
                        optionalIn<T>(c, 4), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runBatchNormTrain(OpContext& c) {
  normForward<T>(channelLayout(c.inShape(0)), NormAffine{NormAffineKind::PerGroup}, c.in<T>(0), optionalIn<T>(c, 1),
                 optionalIn<T>(c, 2), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runBatchNormTrainGrad(OpContext& c) {
  normBackward<T>(channelLayout(c.inShape(0)), NormAffine{NormAffineKind::PerGroup}, c.in<T>(0), c.in<T>(1),
                  optionalIn<T>(c, 2), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runBatchNormTrainWeightGrad(OpContext& c) {
  normWeightGradient<T>(channelLayout(c.inShape(0)), c.in<T>(0), c.in<T>(1), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runBatchNormStats(OpContext& c) {
  batchNormStats<T>(channelLayout(c.inShape(0)), c.in<T>(0), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runBatchNormUpdate(OpContext& c) {
  int64_t* numBatches = c.numInputs() > 3 ? c.inPlace<int64_t>(3) : nullptr;
  batchNormUpdate<T>(c.inShape(0)[0], c.inPlace<T>(0), c.inPlace<T>(1), c.in<T>(2), numBatches,
                     c.attrs().getFloat("momentum"));
  return {};
}

template <typename T>
Expected<void> runLayerNorm(OpContext& c) {
  normForward<T>(rowLayout(c.inShape(0), c.attrs().getInt("dims")), NormAffine{NormAffineKind::PerElement}, c.in<T>(0),
                 optionalIn<T>(c, 1), optionalIn<T>(c, 2), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runLayerNormGrad(OpContext& c) {
  normBackward<T>(rowLayout(c.inShape(0), c.attrs().getInt("dims")), NormAffine{NormAffineKind::PerElement}, c.in<T>(0),
                  c.in<T>(1), optionalIn<T>(c, 2), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runGroupNorm(OpContext& c) {
  const int64_t groups = c.attrs().getInt("groups");
  normForward<T>(sampleGroupLayout(c.inShape(0), groups), groupAffine(c.inShape(0), groups), c.in<T>(0),
                 optionalIn<T>(c, 1), optionalIn<T>(c, 2), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runGroupNormGrad(OpContext& c) {
  const int64_t groups = c.attrs().getInt("groups");
  normBackward<T>(sampleGroupLayout(c.inShape(0), groups), groupAffine(c.inShape(0), groups), c.in<T>(0), c.in<T>(1),
                  optionalIn<T>(c, 2), c.attrs().getFloat("eps"), c.out<T>());
  return {};
}

// The evaluation form is the identity (a view the planner usually aliases: then no copy).
template <typename T>
Expected<void> runDropout(OpContext& c) {
  const T* x = c.in<T>(0);
  T* y = c.out<T>();
  if (x != y) std::memcpy(y, x, size_t(c.outCount()) * sizeof(T));
  return {};
}

template <typename T>
Expected<void> runDropoutTrain(OpContext& c) {
  const Tensor step = c.view(c.node().input(1));
  dropoutTrain<T>(c.outCount(), c.in<T>(0), dropoutStepWord(step.at(0)), uint64_t(c.attrs().getInt("seed")),
                  c.attrs().getFloat("rate"), c.out<T>());
  return {};
}

#define SHOAL_NORM_INSTANTIATE(T)                                                                                  \
  template void batchNormInference<T>(const NormLayout&, const T*, const T*, const T*, const T*, const T*, double, \
                                      T*);                                                                         \
  template void normForward<T>(const NormLayout&, const NormAffine&, const T*, const T*, const T*, double, T*);    \
  template void normBackward<T>(const NormLayout&, const NormAffine&, const T*, const T*, const T*, double, T*);   \
  template void normWeightGradient<T>(const NormLayout&, const T*, const T*, double, T*);                          \
  template void batchNormStats<T>(const NormLayout&, const T*, T*);                                                \
  template void batchNormUpdate<T>(int64_t, T*, T*, const T*, int64_t*, double);                                   \
  template void dropoutTrain<T>(int64_t, const T*, uint32_t, uint64_t, double, T*);                                \
  template Expected<void> runBatchNorm<T>(OpContext&);                                                             \
  template Expected<void> runBatchNormTrain<T>(OpContext&);                                                        \
  template Expected<void> runBatchNormTrainGrad<T>(OpContext&);                                                    \
  template Expected<void> runBatchNormTrainWeightGrad<T>(OpContext&);                                              \
  template Expected<void> runBatchNormStats<T>(OpContext&);                                                        \
  template Expected<void> runBatchNormUpdate<T>(OpContext&);                                                       \
  template Expected<void> runLayerNorm<T>(OpContext&);                                                             \
  template Expected<void> runLayerNormGrad<T>(OpContext&);                                                         \
  template Expected<void> runGroupNorm<T>(OpContext&);                                                             \
  template Expected<void> runGroupNormGrad<T>(OpContext&);                                                         \
  template Expected<void> runDropout<T>(OpContext&);                                                               \
  template Expected<void> runDropoutTrain<T>(OpContext&);

SHOAL_NORM_INSTANTIATE(float)
SHOAL_NORM_INSTANTIATE(double)
#undef SHOAL_NORM_INSTANTIATE

}  // namespace shoal::cpu
