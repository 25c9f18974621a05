// Parameter initialisation.
#include "runtime/init.h"

#include <cmath>

#include "support/hash.h"

namespace shoal {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

uint64_t Rng::below(uint64_t n) { return n ? next() % n : 0; }

uint64_t seedFor(uint64_t seed, const std::string& name) {
  // FNV-1a from a basis that is not the standard one (a digit short of it): kept, because
  // changing it would change every seed's initial weights.
  return fnv1a64(name, 1469598103934665603ull ^ seed);
}

std::pair<int64_t, int64_t> defaultFans(const Shape& shape) {
  if (shape.size() == 2) return {shape[1], shape[0]};
  if (shape.size() >= 3) {
    int64_t receptive = 1;
    for (size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
    return {shape[1] * receptive, shape[0] * receptive};
  }
  int64_t n = numElements(shape);
  return {n, n};
}

bool isKnownInit(const std::string& init) {
  return init == "zeros" || init == "ones" || init == "glorot_uniform" || init == "he_uniform" || init == "uniform";
}

void initializeTensor(Tensor& t, const std::string& init, const std::string& name, uint64_t seed, int64_t fanIn,
                      int64_t fanOut) {
  auto [dIn, dOut] = defaultFans(t.shape());
  if (fanIn <= 0) fanIn = dIn;
  if (fanOut <= 0) fanOut = dOut;
  double limit = 0.0;
  // In double: fan_in and fan_out are attributes a model may set to anything positive.
  if (init == "glorot_uniform") limit = std::sqrt(6.0 / (double(fanIn) + double(fanOut)));
  else if (init == "he_uniform") limit = std::sqrt(6.0 / double(fanIn));
  else if (init == "uniform") limit = 0.05;
  const int64_t n = t.numElements();
  if (init == "ones" || limit <= 0) {
    const double value = init == "ones" ? 1.0 : 0.0;
    for (int64_t i = 0; i < n; ++i) t.set(i, value);
    return;
  }
  // The draws in element order; f32 and f64 written directly (what set() writes, without its
  // per-element checks: a large model's initialisation is on the start-up path).
  Rng rng(seedFor(seed, name));
  if (t.dtype() == DType::F32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = float((2.0 * rng.uniform() - 1.0) * limit);
  } else if (t.dtype() == DType::F64) {
    double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = (2.0 * rng.uniform() - 1.0) * limit;
  } else {
    for (int64_t i = 0; i < n; ++i) t.set(i, (2.0 * rng.uniform() - 1.0) * limit);
  }
}

}  // namespace shoal
