// CPU kernels and kernel runners of the train family: optimizer updates (learning rate and
// gradient-clipping factor read from operands), binary cross-entropy with logits, one-hot
// targets, and the squared global gradient norm.
#pragma once

#include <cstdint>

#include "runtime/cpu/op_context.h"

namespace shoal::cpu {

// ---- kernels (T is float or double) -------------------------------------------------------

/// *loss = mean over n elements of max(x,0) - x·t + log(1 + exp(-|x|)) (PyTorch's
/// BCEWithLogitsLoss, mean reduction, in its overflow-free form), each term and the sum in
/// double.
template <typename T>
void bceWithLogits(int64_t n, const T* logits, const T* targets, T* loss);

/// dlogits = dloss · (sigmoid(x) - t) / n. dlogits may alias logits or targets.
template <typename T>
void bceWithLogitsBackward(int64_t n, const T* logits, const T* targets, T dloss, T* dlogits);

/// out[rows, classes] = 0 with a 1 at each row's label. Returns the first row whose label is
/// outside [0, classes) (writing nothing), or -1.
template <typename T, typename L>
int64_t oneHot(int64_t rows, int64_t classes, const L* labels, T* out);

/// Σ x_i² over n elements, in double.
template <typename T>
double sumSquares(int64_t n, const T* x);

// ---- runners (dispatched by NodeRunner::run) ----------------------------------------------

template <typename T>
Expected<void> runSgdUpdate(OpContext& c);
template <typename T>
Expected<void> runSgdMomentumUpdate(OpContext& c);
template <typename T>
Expected<void> runAdamUpdate(OpContext& c);
/// loss_scale_update: (e, good, s), the scale exponent and good-step count moved in place.
template <typename T>
Expected<void> runLossScaleUpdate(OpContext& c);
template <typename T>
Expected<void> runBceWithLogits(OpContext& c);
template <typename T>
Expected<void> runBceWithLogitsGrad(OpContext& c);
template <typename T>
Expected<void> runOneHot(OpContext& c);
template <typename T>
Expected<void> runGlobalSumSquares(OpContext& c);
template <typename T>
Expected<void> runAllReduce(OpContext& c);

}  // namespace shoal::cpu
