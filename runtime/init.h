// Parameter initialisation (Glorot-uniform, zeros, ...): seedable and bit-for-bit
// deterministic on every machine (own generator, no std:: distributions).
#pragma once

#include <cstdint>
#include <string>

#include <shoal/tensor.h>

namespace shoal {

/// A small deterministic generator (SplitMix64).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);

 private:
  uint64_t state_;
};

/// A seed for one named tensor, derived from the run seed and the name (so adding a layer
/// does not change the others' initial values).
uint64_t seedFor(uint64_t seed, const std::string& name);

/// Fans of a weight shape as Keras computes them: [out, in] -> (in, out); OIHW -> (I*KH*KW,
/// O*KH*KW); a bias or scalar -> (n, n).
std::pair<int64_t, int64_t> defaultFans(const Shape& shape);

/// Fills `t` by `init`: "zeros", "ones", "glorot_uniform" (U(-l, l), l = sqrt(6 / (fan_in +
/// fan_out))), "he_uniform" (l = sqrt(6 / fan_in)), "uniform" (U(-0.05, 0.05)). Fans of 0 are
/// derived from the shape. Unknown names fill zeros (the verifier rejects them earlier).
void initializeTensor(Tensor& t, const std::string& init, const std::string& name, uint64_t seed, int64_t fanIn = 0,
                      int64_t fanOut = 0);

/// True for the init names initializeTensor knows.
bool isKnownInit(const std::string& init);

}  // namespace shoal
