// CPU reference kernels: softmax, losses, argmax/accuracy and optimizer updates.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

// Elements per chunk of the parallel optimizer updates.
constexpr int64_t kUpdateGrain = 8192;

// sqrt as the builtin: this file is compiled with -fno-math-errno (CMakeLists.txt), so the
// update loops vectorize (sqrtps: IEEE sqrt, the same bits as the scalar call).
inline float rootOf(float x) {
#if defined(__GNUC__)
  return __builtin_sqrtf(x);
#else
  return std::sqrt(x);
#endif
}
inline double rootOf(double x) {
#if defined(__GNUC__)
  return __builtin_sqrt(x);
#else
  return std::sqrt(x);
#endif
}

template <typename T>
T rowMax(int64_t cols, const T* x) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < cols; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// A row's log Σ exp(x) as max + logSum, kept apart: x - max - logSum stays accurate where
// x - (max + logSum) would round away small differences of large logits.
template <typename T>
struct RowLse {
  T max;
  T logSum;  // log Σ exp(x - max), in [0, log cols]
};

template <typename T>
RowLse<T> rowLogSumExp(int64_t cols, const T* x) {
  const T m = rowMax(cols, x);
  if (std::isinf(m)) return {m, T(0)};  // all -inf (→ -inf) or a +inf entry (→ +inf)
  double s = 0;
  for (int64_t j = 0; j < cols; ++j) s += std::exp(double(x[j] - m));
  return {m, T(std::log(s))};
}

}  // namespace

template <typename T>
void softmax(int64_t rows, int64_t cols, const T* x, T* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = rowMax(cols, xr);
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) {
      yr[j] = std::exp(xr[j] - m);
      s += double(yr[j]);
    }
    const T inv = T(1.0 / s);
    for (int64_t j = 0; j < cols; ++j) yr[j] *= inv;
  }
}

template <typename T>
void logSoftmax(int64_t rows, int64_t cols, const T* x, T* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const RowLse<T> lse = rowLogSumExp(cols, xr);
    for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - lse.max) - lse.logSum;
  }
}

template <typename T>
void softmaxBackward(int64_t rows, int64_t cols, const T* y, const T* dy, T* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    double dot = 0;
    for (int64_t j = 0; j < cols; ++j) dot += double(dyr[j]) * double(yr[j]);
    const T d = T(dot);
    for (int64_t j = 0; j < cols; ++j) dxr[j] = yr[j] * (dyr[j] - d);
  }
}

template <typename T>
void logSoftmaxBackward(int64_t rows, int64_t cols, const T* y, const T* dy, T* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* dyr = dy + r * cols;
    T* dxr = dx + r * cols;
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += double(dyr[j]);
    const T s = T(sum);
    for (int64_t j = 0; j < cols; ++j) dxr[j] = dyr[j] - std::exp(yr[j]) * s;
  }
}

template <typename L>
int64_t firstInvalidLabel(int64_t rows, int64_t cols, const L* labels) {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t l = int64_t(labels[r]);
    if (l < 0 || l >= cols) return r;
  }
  return -1;
}

template <typename T, typename L>
bool softmaxCrossEntropy(int64_t rows, int64_t cols, const T* logits, const L* labels, T* loss, T* probs,
                         T labelSmoothing) {
  if (firstInvalidLabel(rows, cols, labels) >= 0) return false;
  const double eps = double(labelSmoothing);
  // Rows in parallel, each its loss term; the terms are summed in row order afterwards.
  std::vector<double> rowLoss(static_cast<size_t>(rows));
  parallelFor(rows, grainFor(20 * cols), [&](int64_t rowBegin, int64_t rowEnd) {
    for (int64_t r = rowBegin; r < rowEnd; ++r) {
      const T* xr = logits + r * cols;
      const RowLse<T> lse = rowLogSumExp(cols, xr);
      // -log p_j = logSum - (x_j - max); the smoothed target puts 1-eps on the label and eps/cols
      // on every class, so the row's loss is (1-eps)(-log p_label) + eps·mean_j(-log p_j).
      const double nllLabel = double(lse.logSum) - (double(xr[int64_t(labels[r])]) - double(lse.max));
      if (eps == 0) {
        rowLoss[size_t(r)] = nllLabel;
      } else {
        double sumX = 0;
        for (int64_t j = 0; j < cols; ++j) sumX += double(xr[j]) - double(lse.max);
        const double meanNll = double(lse.logSum) - sumX / double(cols);
        rowLoss[size_t(r)] = (1 - eps) * nllLabel + eps * meanNll;
      }
      if (probs) {
        T* pr = probs + r * cols;
        for (int64_t j = 0; j < cols; ++j) pr[j] = std::exp((xr[j] - lse.max) - lse.logSum);
      }
    }
  });
  double total = 0;
  for (double term : rowLoss) total += term;
  *loss = T(total / double(rows));  // NaN for no rows, like PyTorch's mean of nothing
  return true;
}

template <typename T, typename L>
bool softmaxCrossEntropyBackward(int64_t rows, int64_t cols, const T* logits, const L* labels, T dloss,
                                 T* dlogits, T labelSmoothing) {
  if (firstInvalidLabel(rows, cols, labels) >= 0) return false;
  const T scale = dloss / T(rows);
  // The smoothed target: 1 - e + e/cols at the label, e/cols elsewhere (in double, then T).
  const double e = double(labelSmoothing);
  const T offTarget = T(e / double(cols));
  const T onTarget = T(1.0 - e + e / double(cols));
  parallelFor(rows, grainFor(20 * cols), [&](int64_t rowBegin, int64_t rowEnd) {
    for (int64_t r = rowBegin; r < rowEnd; ++r) {
      const T* xr = logits + r * cols;
      T* gr = dlogits + r * cols;
      const RowLse<T> lse = rowLogSumExp(cols, xr);
      const int64_t label = int64_t(labels[r]);
      // scale·p - scale·target (not scale·(p - target)): without smoothing this is the
      // unsmoothed kernel's arithmetic exactly (and the CUDA kernel's).
      for (int64_t j = 0; j < cols; ++j) {
        gr[j] = scale * std::exp((xr[j] - lse.max) - lse.logSum);
        if (e != 0 || j == label) gr[j] -= scale * (j == label ? onTarget : offTarget);
      }
    }
  });
  return true;
}

template <typename T>
void mse(int64_t n, const T* pred, const T* target, T* loss) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    double d = double(pred[i]) - double(target[i]);
    s += d * d;
  }
  *loss = T(s / double(n));
}

template <typename T>
void mseBackward(int64_t n, const T* pred, const T* target, T dloss, T* dpred) {
  const T scale = T(2) * dloss / T(n);
  for (int64_t i = 0; i < n; ++i) dpred[i] = scale * (pred[i] - target[i]);
}

template <typename T>
void argmax(int64_t rows, int64_t cols, const T* x, int64_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    int64_t best = 0;
    for (int64_t j = 1; j < cols; ++j) {
      const T v = xr[j], b = xr[best];
      if ((v > b || v != v) && b == b) best = j;  // strictly greater: the first max wins; a NaN sticks
    }
    out[r] = best;
  }
}

template <typename T, typename L>
int64_t accuracyCount(int64_t rows, int64_t cols, const T* logits, const L* labels) {
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t pred = 0;
    argmax(1, cols, logits + r * cols, &pred);
    if (cols > 0 && pred == int64_t(labels[r])) ++correct;
  }
  return correct;
}

template <typename T>
void sgdUpdate(int64_t n, T* w, const T* grad, T* velocity, T lr, T momentum, T weightDecay, bool nesterov,
               T gradScale) {
  // Chunks in parallel: per element, so the bits never depend on the threads.
  parallelFor(n, kUpdateGrain, [=](int64_t begin, int64_t end) {
    if (momentum == T(0)) {
      for (int64_t i = begin; i < end; ++i) w[i] -= lr * (grad[i] * gradScale + weightDecay * w[i]);
      return;
    }
    for (int64_t i = begin; i < end; ++i) {
      const T g = grad[i] * gradScale + weightDecay * w[i];
      velocity[i] = momentum * velocity[i] + g;
      w[i] -= lr * (nesterov ? g + momentum * velocity[i] : velocity[i]);
    }
  });
}

namespace {

template <typename T>
void adamChunk(int64_t n, T* w, const T* grad, T* m, T* v, T beta1, T beta2, T eps, T stepSize, T bc2Sqrt, T l2,
               T shrink, T gradScale) {
  for (int64_t i = 0; i < n; ++i) {
    w[i] *= shrink;
    const T g = grad[i] * gradScale + l2 * w[i];
    m[i] = beta1 * m[i] + (T(1) - beta1) * g;
    v[i] = beta2 * v[i] + (T(1) - beta2) * g * g;
    w[i] -= stepSize * m[i] / (rootOf(v[i]) / bc2Sqrt + eps);
  }
}

}  // namespace

template <typename T>
void adamUpdate(int64_t n, T* w, const T* grad, T* m, T* v, double lr, T beta1, T beta2, T eps, int64_t step,
                T weightDecay, bool decoupledWeightDecay, T gradScale) {
  // Same operation order as torch.optim.Adam's single-tensor path (lr and the step's
  // scalars in double, as Python computes them, rounded to T where they meet a tensor).
  const double bc1 = 1.0 - std::pow(double(beta1), double(step));
  const double bc2 = 1.0 - std::pow(double(beta2), double(step));
  const T stepSize = T(lr / bc1);
  const T bc2Sqrt = T(std::sqrt(bc2));
  const T l2 = decoupledWeightDecay ? T(0) : weightDecay;
  const T shrink = decoupledWeightDecay ? T(1.0 - lr * double(weightDecay)) : T(1);
  // Chunks in parallel: per element, so the bits never depend on the threads. (The loop is
  // a function of its own, over plain pointers, so that it vectorizes.)
  parallelFor(n, kUpdateGrain, [=](int64_t begin, int64_t end) {
    adamChunk(end - begin, w + begin, grad + begin, m + begin, v + begin, beta1, beta2, eps, stepSize, bc2Sqrt, l2,
              shrink, gradScale);
  });
}

#define SHOAL_INSTANTIATE_LABEL(T, L)                                                                 \
  template bool softmaxCrossEntropy<T, L>(int64_t, int64_t, const T*, const L*, T*, T*, T);           \
  template bool softmaxCrossEntropyBackward<T, L>(int64_t, int64_t, const T*, const L*, T, T*, T);    \
  template int64_t accuracyCount<T, L>(int64_t, int64_t, const T*, const L*);
#define SHOAL_INSTANTIATE(T)                                                                          \
  template void softmax<T>(int64_t, int64_t, const T*, T*);                                           \
  template void logSoftmax<T>(int64_t, int64_t, const T*, T*);                                        \
  template void softmaxBackward<T>(int64_t, int64_t, const T*, const T*, T*);                         \
  template void logSoftmaxBackward<T>(int64_t, int64_t, const T*, const T*, T*);                      \
  template void mse<T>(int64_t, const T*, const T*, T*);                                              \
  template void mseBackward<T>(int64_t, const T*, const T*, T, T*);                                   \
  template void argmax<T>(int64_t, int64_t, const T*, int64_t*);                                      \
  template void sgdUpdate<T>(int64_t, T*, const T*, T*, T, T, T, bool, T);                            \
  template void adamUpdate<T>(int64_t, T*, const T*, T*, T*, double, T, T, T, int64_t, T, bool, T);   \
  SHOAL_INSTANTIATE_LABEL(T, int32_t)                                                                 \
  SHOAL_INSTANTIATE_LABEL(T, int64_t)                                                                 \
  SHOAL_INSTANTIATE_LABEL(T, uint8_t)
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE
#undef SHOAL_INSTANTIATE_LABEL

template int64_t firstInvalidLabel<int32_t>(int64_t, int64_t, const int32_t*);
template int64_t firstInvalidLabel<int64_t>(int64_t, int64_t, const int64_t*);
template int64_t firstInvalidLabel<uint8_t>(int64_t, int64_t, const uint8_t*);

}  // namespace shoal::cpu
