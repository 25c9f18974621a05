// CPU kernels of the norm family: batchnorm (evaluation and training forms, statistics, the
// running-statistics update), layernorm, groupnorm and their gradients, dropout. The runners
// are dispatched from NodeRunner::run (runtime/cpu/interpreter.cpp).
#pragma once

#include <cstdint>

#include "runtime/cpu/op_context.h"

namespace shoal::cpu {

// ---- kernels ----------------------------------------------------------------------------

/// Where a normalisation's statistics groups lie: group r holds `count` elements in runs of
/// `inner` contiguous ones, `outerStride` apart. Element j of group r lives at
/// (j / inner) * outerStride + r * inner + j % inner. batchnorm: a group is a channel, a run one
/// sample's plane of it; layernorm and groupnorm: a group is one contiguous run.
struct NormLayout {
  int64_t groups = 1;
  int64_t count = 1;
  int64_t inner = 1;
  int64_t outerStride = 0;
};

/// Which weight/bias entry scales an element of a normalisation group.
enum class NormAffineKind {
  PerGroup,    ///< batchnorm: the group is the channel
  PerElement,  ///< layernorm: the element's index in its row
  PerChannel,  ///< groupnorm: the element's channel (group r of sample n covers channels of one group)
};

/// The affine map of a normalisation: kind, and for groupnorm the groups per sample, channels
/// per group and the spatial extent of a channel.
struct NormAffine {
  NormAffineKind kind = NormAffineKind::PerGroup;
  int64_t groupsPerSample = 1, channelsPerGroup = 1, spatial = 1;

  /// The weight index of element j of group r.
  int64_t channel(int64_t r, int64_t j) const {
    switch (kind) {
      case NormAffineKind::PerGroup:
        return r;
      case NormAffineKind::PerElement:
        return j;
      case NormAffineKind::PerChannel:
        return (r % groupsPerSample) * channelsPerGroup + j / spatial;
    }
    return 0;
  }
};

/// batchnorm, layernorm and groupnorm layouts of an input of shape `x`.
NormLayout channelLayout(const Shape& x);
NormLayout rowLayout(const Shape& x, int64_t dims);
NormLayout sampleGroupLayout(const Shape& x, int64_t groups);
NormAffine groupAffine(const Shape& x, int64_t groups);

/// y = (x - mean[c]) * invstd[c] * w[c] + b[c] per channel with the given statistics,
/// invstd = 1 / sqrt(var + eps) (w, b may be null). y may alias x.
template <typename T>
void batchNormInference(const NormLayout& l, const T* x, const T* mean, const T* var, const T* w, const T* b,
                        double eps, T* y);

/// Every group normalised by its own mean and biased variance (in double), then the affine
/// (w, b may be null): y = (x - mean) * invstd * w + b, the statistics rounded to T first.
/// y may alias x.
template <typename T>
void normForward(const NormLayout& l, const NormAffine& a, const T* x, const T* w, const T* b, double eps, T* y);

/// The gradient of normForward for x, through the statistics: with g = dy * w and
/// xhat = (x - mean) * invstd, dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) per group
/// (in double). dx may alias x or dy.
template <typename T>
void normBackward(const NormLayout& l, const NormAffine& a, const T* x, const T* dy, const T* w, double eps, T* dx);

/// stats[0, c] = the mean of channel group c, stats[1, c] = its unbiased variance (count > 1).
/// dw[r] = Σ dy · xhat over group r (xhat: x normalised by the group's own statistics): the
/// weight's gradient of a per-group affine (batchnorm_train's), in double.
template <typename T>
void normWeightGradient(const NormLayout& l, const T* x, const T* dy, double eps, T* dw);
template <typename T>
void batchNormStats(const NormLayout& l, const T* x, T* stats);

/// running = momentum * batch + (1 - momentum) * running for the mean and the variance (in
/// double, as PyTorch's CUDA kernel orders it); *numBatches + 1 when not null.
template <typename T>
void batchNormUpdate(int64_t channels, T* runningMean, T* runningVar, const T* stats, int64_t* numBatches,
                     double momentum);

/// y[i] = x[i] * (kept ? 1 / (1 - rate) : 0): the mask of element i is word i % 4 of
/// Philox-4x32-10 at counter (i / 4, step, 0) under key `seed` (ir/scalar_math.h). y may alias x.
template <typename T>
void dropoutTrain(int64_t n, const T* x, uint32_t step, uint64_t seed, double rate, T* y);

/// The counter word of a step count fed as a float: its integer value.
uint32_t dropoutStepWord(double step);

// ---- runners (one per op; NodeRunner::run dispatches) -----------------------------------

template <typename T>
Expected<void> runBatchNorm(OpContext& c);
template <typename T>
Expected<void> runBatchNormTrain(OpContext& c);
template <typename T>
Expected<void> runBatchNormTrainGrad(OpContext& c);
template <typename T>
Expected<void> runBatchNormTrainWeightGrad(OpContext& c);
template <typename T>
Expected<void> runBatchNormStats(OpContext& c);
template <typename T>
Expected<void> runBatchNormUpdate(OpContext& c);
template <typename T>
Expected<void> runLayerNorm(OpContext& c);
template <typename T>
Expected<void> runLayerNormGrad(OpContext& c);
template <typename T>
Expected<void> runGroupNorm(OpContext& c);
template <typename T>
Expected<void> runGroupNormGrad(OpContext& c);
template <typename T>
Expected<void> runDropout(OpContext& c);
template <typename T>
Expected<void> runDropoutTrain(OpContext& c);

}  // namespace shoal::cpu
