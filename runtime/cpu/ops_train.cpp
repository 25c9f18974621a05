// CPU kernels and runners of the train family (see ops_train.h).
#include "runtime/cpu/ops_train.h"

#include <cstring>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ir/scalar_math.h"
#include "runtime/cpu/kernels.h"

namespace shoal::cpu {

template <typename T>
void bceWithLogits(int64_t n, const T* logits, const T* targets, T* loss) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = double(logits[i]), t = double(targets[i]);
    total += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
  }
  *loss = T(total / double(n));
}

template <typename T>
void bceWithLogitsBackward(int64_t n, const T* logits, const T* targets, T dloss, T* dlogits) {
  const T scale = dloss / T(n);
  for (int64_t i = 0; i < n; ++i) dlogits[i] = scale * (scalar::shoal_sigmoid(logits[i]) - targets[i]);
}

template <typename T, typename L>
int64_t oneHot(int64_t rows, int64_t classes, const L* labels, T* out) {
  int64_t bad = firstInvalidLabel(rows, classes, labels);
  if (bad >= 0) return bad;
  std::fill(out, out + rows * classes, T(0));
  for (int64_t r = 0; r < rows; ++r) out[r * classes + int64_t(labels[r])] = T(1);
  return -1;
}

template <typename T>
double sumSquares(int64_t n, const T* x) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

namespace {

// A scalar operand's value, whatever its element type (rates, step counts, clip factors).
double scalarOperand(OpContext& c, size_t i) { return c.view(c.node().input(i)).at(0); }

// The optional trailing grad_scale operand of an update (1 without clipping).
template <typename T>
T gradScale(OpContext& c, size_t index) {
  return c.numInputs() > index ? T(scalarOperand(c, index)) : T(1);
}

}  // namespace

template <typename T>
Expected<void> runSgdUpdate(OpContext& c) {
  // (w, g, lr, [grad_scale])
  const int64_t count = c.node().input(0)->type().numElements();
  if (gradScale<T>(c, 3) == T(0)) return {};  // a loss-scaled step that overflowed: skipped
  sgdUpdate<T>(count, c.inPlace<T>(0), c.in<T>(1), nullptr, T(scalarOperand(c, 2)), T(0),
               T(c.attrs().getFloat("weight_decay")), /*nesterov=*/false, gradScale<T>(c, 3));
  return {};
}

template <typename T>
Expected<void> runSgdMomentumUpdate(OpContext& c) {
  // (w, g, velocity, lr, [grad_scale])
  const int64_t count = c.node().input(0)->type().numElements();
  if (gradScale<T>(c, 4) == T(0)) return {};
  sgdUpdate<T>(count, c.inPlace<T>(0), c.in<T>(1), c.inPlace<T>(2), T(scalarOperand(c, 3)),
               T(c.attrs().getFloat("momentum")), T(c.attrs().getFloat("weight_decay")),
               c.attrs().getInt("nesterov") != 0, gradScale<T>(c, 4));
  return {};
}

template <typename T>
Expected<void> runAdamUpdate(OpContext& c) {
  // (w, g, m, v, step, lr, [grad_scale])
  const int64_t count = c.node().input(0)->type().numElements();
  const double stepValue = scalarOperand(c, 4);
  const int64_t t = int64_t(std::llround(stepValue));
  if (t < 1) return c.error(fmt::format("step must be >= 1, got {}", stepValue));
  if (gradScale<T>(c, 6) == T(0)) return {};
  const Attrs& a = c.attrs();
  adamUpdate<T>(count, c.inPlace<T>(0), c.in<T>(1), c.inPlace<T>(2), c.inPlace<T>(3), scalarOperand(c, 5),
                T(a.getFloat("beta1")), T(a.getFloat("beta2")), T(a.getFloat("eps")), t, T(a.getFloat("weight_decay")),
                a.getInt("decoupled_weight_decay") != 0, gradScale<T>(c, 6));
  return {};
}

template <typename T>
Expected<void> runLossScaleUpdate(OpContext& c) {
  // (e, good, s), e and good in place.
  T* e = c.inPlace<T>(0);
  T* good = c.inPlace<T>(1);
  const T s = c.in<T>(2)[0];
  if (!std::isfinite(s)) {
    e[0] -= T(1);
    good[0] = T(0);
  } else if (good[0] + T(1) >= T(c.attrs().getInt("growth_interval"))) {
    e[0] += T(1);
    good[0] = T(0);
  } else {
    good[0] += T(1);
  }
  return {};
}

template <typename T>
Expected<void> runBceWithLogits(OpContext& c) {
  bceWithLogits<T>(c.node().input(0)->type().numElements(), c.in<T>(0), c.in<T>(1), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runBceWithLogitsGrad(OpContext& c) {
  bceWithLogitsBackward<T>(c.outCount(), c.in<T>(0), c.in<T>(1), *c.in<T>(2), c.out<T>());
  return {};
}

template <typename T>
Expected<void> runOneHot(OpContext& c) {
  const int64_t rows = c.outShape()[0], classes = c.outShape()[1];
  auto run = [&](const auto* labels) -> Expected<void> {
    int64_t bad = oneHot<T>(rows, classes, labels, c.out<T>());
    if (bad >= 0)
      return c.error(fmt::format("label {} in row {} is outside [0, {})", int64_t(labels[bad]), bad, classes));
    return {};
  };
  switch (c.node().input(0)->type().dtype) {
    case DType::I64:
      return run(c.in<int64_t>(0));
    case DType::I32:
      return run(c.in<int32_t>(0));
    case DType::U8:
      return run(c.in<uint8_t>(0));
    default:
      break;
  }
  return c.error("labels must be integers");
}

template <typename T>
Expected<void> runGlobalSumSquares(OpContext& c) {
  double total = 0;
  for (size_t i = 0; i < c.numInputs(); ++i)
    total += sumSquares<T>(c.node().input(i)->type().numElements(), c.in<T>(i));
  *c.out<T>() = T(total);
  return {};
}

template <typename T>
Expected<void> runAllReduce(OpContext& c) {
  const int64_t n = c.outCount();
  const T* x = c.in<T>(0);
  T* y = c.out<T>();
  if (y != x) std::memcpy(y, x, size_t(n) * sizeof(T));
  const int64_t ranks = c.attrs().getInt("ranks");
  auto op = parseReduceKind(c.attrs().getString("op"));
  if (!op) return c.error("unknown op '" + c.attrs().getString("op") + "'");
  Communicator* comm = c.communicator();
  if (!comm) {
    if (ranks == 1) return {};  // the sum or mean over one rank
    return c.error(fmt::format("the program combines gradients over {} ranks but runs without a communicator", ranks));
  }
  if (comm->size() != ranks)
    return c.error(fmt::format("the program was compiled for {} ranks, the run has {}", ranks, comm->size()));
  auto ok = comm->allReduceHost(y, c.node().result()->type().dtype, n, *op);
  if (!ok) return c.error(ok.error().message());
  return {};
}

#define SHOAL_INSTANTIATE_LABEL(T, L) template int64_t oneHot<T, L>(int64_t, int64_t, const L*, T*);
#define SHOAL_INSTANTIATE(T)                                                  \
  template void bceWithLogits<T>(int64_t, const T*, const T*, T*);            \
  template void bceWithLogitsBackward<T>(int64_t, const T*, const T*, T, T*); \
  template double sumSquares<T>(int64_t, const T*);                           \
  template Expected<void> runSgdUpdate<T>(OpContext&);                        \
  template Expected<void> runSgdMomentumUpdate<T>(OpContext&);                \
  template Expected<void> runAdamUpdate<T>(OpContext&);                       \
  template Expected<void> runLossScaleUpdate<T>(OpContext&);                  \
  template Expected<void> runBceWithLogits<T>(OpContext&);                    \
  template Expected<void> runBceWithLogitsGrad<T>(OpContext&);                \
  template Expected<void> runOneHot<T>(OpContext&);                           \
  template Expected<void> runGlobalSumSquares<T>(OpContext&);                 \
  template Expected<void> runAllReduce<T>(OpContext&);                        \
  SHOAL_INSTANTIATE_LABEL(T, int64_t)                                         \
  SHOAL_INSTANTIATE_LABEL(T, int32_t)                                         \
  SHOAL_INSTANTIATE_LABEL(T, uint8_t)
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE
#undef SHOAL_INSTANTIATE_LABEL

}  // namespace shoal::cpu
