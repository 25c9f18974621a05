// Interpreter cases of the norm family (see SHOAL_INTERPRETER_CASES in interpreter_cases.h):
// hand-computed values, mostly with eps = 0 and groups whose statistics are round numbers, e.g.
// the channel {-1, -1, 1, 1} (mean 0, biased variance 1, xhat itself) and {8, 8, 12, 12}
// (mean 10, variance 4, invstd 1/2, xhat {-1, -1, 1, 1}).
#include <array>

#include "runtime/interpreter_cases.h"

namespace shoal::test {
namespace {

const Attrs kNoEps = attrs({{"eps", 0.0}});

// Philox-4x32-10 as Salmon et al. define it (Random123's philox4x32), written here apart from
// ir/scalar_math.h: the dropout cases expect the masks it gives.
std::array<uint32_t, 4> philox(std::array<uint32_t, 4> c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t a = uint64_t(0xD2511F53u) * c[0], b = uint64_t(0xCD9E8D57u) * c[2];
    c = {uint32_t(b >> 32) ^ c[1] ^ k0, uint32_t(b), uint32_t(a >> 32) ^ c[3] ^ k1, uint32_t(a)};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

// x * mask / (1 - rate) with the mask of element i drawn from word i % 4 of philox((i / 4, 0,
// step, 0), seed): kept when the word is below (1 - rate) 2^32.
std::vector<double> droppedOut(const std::vector<double>& x, double rate, uint64_t seed, uint32_t step) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    auto words = philox({uint32_t(i / 4), 0, step, 0}, uint32_t(seed), uint32_t(seed >> 32));
    bool kept = words[i % 4] < uint64_t((1.0 - rate) * 4294967296.0);
    y[i] = kept ? x[i] / (1.0 - rate) : 0.0;
  }
  return y;
}

SHOAL_INTERPRETER_CASES(BatchNorm, OpKind::BatchNorm) {
  {
    // Running mean [1, 2], variance [4, 0.25] (invstd 1/2, 2), weight [2, 3], bias [1, -1]:
    // channel 0: (x - 1) * 1/2 * 2 + 1 = x; channel 1: (x - 2) * 2 * 3 - 1.
    CaseBuilder b("[N, C] with weight and bias, eps 0", dt);
    const std::vector<double> mean = {1, 2}, var = {4, 0.25};
    b.output(b.op(kind,
                  {b.fin("x", {2, 2}, {1, 2, 3, 4}), b.state("bn.running_mean", {2}, &mean),
                   b.state("bn.running_var", {2}, &var), b.param("bn.weight", {2}, {2, 3}),
                   b.param("bn.bias", {2}, {1, -1})},
                  kNoEps, "bn"),
             "y");
    b.expect("y", {2, 2}, {1, -1, 3, 11});
    b.expect("bn.running_mean", {2}, mean);  // evaluation leaves the running statistics alone
    add(b);
  }
  {
    // NCHW, no affine, the default eps 1e-5: channel 0 (mean 2, var 1), channel 1 (mean 2, var 3).
    CaseBuilder b("NCHW without weight, default eps", dt);
    b.output(
        b.op(kind, {b.fin("x", {1, 2, 1, 2}, {1, 3, -2, 6}), b.fin("mean", {2}, {2, 2}), b.fin("var", {2}, {1, 3})}, {},
             "bn"),
        "y");
    const double s0 = 1 / std::sqrt(1 + 1e-5), s1 = 1 / std::sqrt(3 + 1e-5);
    b.expect("y", {1, 2, 1, 2}, {-s0, s0, -4 * s1, 4 * s1});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BatchNormTrain, OpKind::BatchNormTrain) {
  {
    // Channel 0 {1, 3}: mean 2, biased variance 1; channel 1 {2, 6}: mean 4, variance 4.
    // xhat = [[-1, -1], [1, 1]]; weight [2, 3], bias [1, 0] -> [[-1, -3], [3, 3]].
    CaseBuilder b("[N, C] with weight and bias, eps 0", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2}, {1, 2, 3, 6}), b.param("w", {2}, {2, 3}), b.param("b", {2}, {1, 0})},
                  kNoEps, "bn"),
             "y");
    b.expect("y", {2, 2}, {-1, -3, 3, 3});
    add(b);
  }
  {
    // One channel over N and W: {0, 2, 4, 6}, mean 3, biased variance 5.
    CaseBuilder b("NCHW, one channel, default eps", dt);
    b.output(b.op(kind, {b.fin("x", {2, 1, 1, 2}, {0, 2, 4, 6})}, {}, "bn"), "y");
    const double s = 1 / std::sqrt(5 + 1e-5);
    b.expect("y", {2, 1, 1, 2}, {-3 * s, -s, s, 3 * s});
    add(b);
  }
}

// x [N=2, C=2, S=2]: channel 0 is {-1, -1, 1, 1}, channel 1 {8, 8, 12, 12} (in (n, s) order).
const std::vector<double> kChannels = {-1, -1, 8, 8, 1, 1, 12, 12};

SHOAL_INTERPRETER_CASES(BatchNormTrainGrad, OpKind::BatchNormTrainGrad) {
  {
    // dx = w invstd (dy - mean(dy) - xhat mean(dy xhat)):
    // channel 0, dy {1, 2, 3, 4}: mean 2.5, mean(dy xhat) = 1 -> {-0.5, 0.5, -0.5, 0.5}, times w = 2;
    // channel 1, dy {4, 3, 2, 1}: mean 2.5, mean(dy xhat) = -1 -> 0.5 {0.5, -0.5, 0.5, -0.5}, times w = -1.
    CaseBuilder b("through the batch statistics, eps 0", dt);
    b.output(b.op(kind,
                  {b.fin("x", {2, 2, 2}, kChannels), b.fin("dy", {2, 2, 2}, {1, 2, 4, 3, 3, 4, 2, 1}),
                   b.param("w", {2}, {2, -1})},
                  kNoEps, "dx"),
             "dx");
    b.expect("dx", {2, 2, 2}, {-1, 1, -0.25, 0.25, -1, 1, -0.25, 0.25});
    add(b);
  }
  {
    // Without a weight: channel 0 as above; channel 1 dy {1, 1, 1, 1} is constant: dx 0.
    CaseBuilder b("no weight", dt);
    b.output(
        b.op(kind, {b.fin("x", {2, 2, 2}, kChannels), b.fin("dy", {2, 2, 2}, {1, 2, 1, 1, 3, 4, 1, 1})}, kNoEps, "dx"),
        "dx");
    b.expect("dx", {2, 2, 2}, {-0.5, 0.5, 0, 0, -0.5, 0.5, 0, 0});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BatchNormTrainWeightGrad, OpKind::BatchNormTrainWeightGrad) {
  {
    // xhat is {-1, -1, 1, 1} in both channels (means 0 and 10, variances 1 and 4, eps 0):
    // channel 0, dy {1, 2, 3, 4}: -1 - 2 + 3 + 4 = 4; channel 1, dy {4, 3, 2, 1}: -4 - 3 + 2 + 1 = -4.
    CaseBuilder b("sum of dy xhat, eps 0", dt);
    b.output(
        b.op(kind, {b.fin("x", {2, 2, 2}, kChannels), b.fin("dy", {2, 2, 2}, {1, 2, 4, 3, 3, 4, 2, 1})}, kNoEps, "dw"),
        "dw");
    b.expect("dw", {2}, {4, -4});
    add(b);
  }
  {
    // eps 0.5 scales each channel's xhat by sqrt(var / (var + eps)): 4 / sqrt(1.5), -4 · 2 / sqrt(4.5).
    CaseBuilder b("eps 0.5", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2, 2}, kChannels), b.fin("dy", {2, 2, 2}, {1, 2, 4, 3, 3, 4, 2, 1})},
                  attrs({{"eps", 0.5}}), "dw"),
             "dw");
    b.expect("dw", {2}, {4 / std::sqrt(1.5), -8 / std::sqrt(4.5)});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BatchNormStats, OpKind::BatchNormStats) {
  {
    // Means [0, 10]; unbiased variances 4/3 and 16/3.
    CaseBuilder b("mean and unbiased variance", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2, 2}, kChannels)}, {}, "stats"), "stats");
    b.expect("stats", {2, 2}, {0, 10, 4.0 / 3, 16.0 / 3});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BatchNormUpdate, OpKind::BatchNormUpdate) {
  {
    // momentum 0.1: running = 0.1 batch + 0.9 running, twice with the same batch statistics
    // (mean [0, 10], variance [4/3, 16/3]) from running [1, 2] and [1, 1].
    CaseBuilder b("two updates", dt);
    const std::vector<double> mean0 = {1, 2}, var0 = {1, 1};
    b.op(kind,
         {b.state("bn.running_mean", {2}, &mean0), b.state("bn.running_var", {2}, &var0),
          b.fin("stats", {2, 2}, {0, 10, 4.0 / 3, 16.0 / 3})},
         {}, "update");
    b.expect("bn.running_mean", {2}, {0.9, 2.8});
    b.expect("bn.running_var", {2}, {0.4 / 3 + 0.9, 1.6 / 3 + 0.9});
    b.nextRun({});
    b.expect("bn.running_mean", {2}, {0.81, 1 + 0.9 * 2.8});
    b.expect("bn.running_var", {2}, {0.4 / 3 + 0.9 * (0.4 / 3 + 0.9), 1.6 / 3 + 0.9 * (1.6 / 3 + 0.9)});
    add(b);
  }
  {
    // momentum 1 takes the batch's statistics; 0 keeps the running ones.
    for (double momentum : {1.0, 0.0}) {
      CaseBuilder b("momentum " + std::to_string(momentum), dt);
      const std::vector<double> mean0 = {1}, var0 = {2};
      b.op(kind, {b.state("m", {1}, &mean0), b.state("v", {1}, &var0), b.fin("stats", {2, 1}, {5, 7})},
           attrs({{"momentum", momentum}}), "update");
      b.expect("m", {1}, {momentum == 1 ? 5.0 : 1.0});
      b.expect("v", {1}, {momentum == 1 ? 7.0 : 2.0});
      add(b);
    }
  }
}

SHOAL_INTERPRETER_CASES(BatchNormScale, OpKind::BatchNormScale) {
  {
    // w / sqrt(var + eps) with eps 1: 2/2, 3/3, -4/4.
    CaseBuilder b("weight over sqrt(var + eps)", dt);
    b.output(b.op(kind, {b.fin("w", {3}, {2, 3, -4}), b.fin("var", {3}, {3, 8, 15})}, attrs({{"eps", 1.0}}), "s"), "y");
    b.expect("y", {3}, {1, 1, -1});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(LayerNorm, OpKind::LayerNorm) {
  {
    // Rows {-1, -1, 1, 1} and {12, 8, 8, 12} -> xhat {-1, -1, 1, 1}, {1, -1, -1, 1};
    // weight [1, 2, 3, 4], bias [0, 0, 0, 1].
    CaseBuilder b("last dim with weight and bias, eps 0", dt);
    b.output(b.op(kind,
                  {b.fin("x", {2, 4}, {-1, -1, 1, 1, 12, 8, 8, 12}), b.param("w", {4}, {1, 2, 3, 4}),
                   b.param("b", {4}, {0, 0, 0, 1})},
                  kNoEps, "ln"),
             "y");
    b.expect("y", {2, 4}, {-1, -2, 3, 5, 1, -2, -3, 5});
    add(b);
  }
  {
    // dims 2 over [2, 1, 2]: each sample's two values; {0, 2} and {5, 9}, default eps.
    CaseBuilder b("dims 2, no affine, default eps", dt);
    b.output(b.op(kind, {b.fin("x", {2, 1, 2}, {0, 2, 5, 9})}, attrs({{"dims", int64_t(2)}}), "ln"), "y");
    const double s1 = 1 / std::sqrt(1 + 1e-5), s4 = 2 / std::sqrt(4 + 1e-5);
    b.expect("y", {2, 1, 2}, {-s1, s1, -s4, s4});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(LayerNormGrad, OpKind::LayerNormGrad) {
  {
    // g = dy w; dx = invstd (g - mean(g) - xhat mean(g xhat)).
    // Row 1: x {-1, -1, 1, 1}, dy {1, 2, 3, 4}, g {1, 4, 9, 16}: mean 7.5, mean(g xhat) 5 -> {-1.5, 1.5, -3.5, 3.5}.
    // Row 2: x {8, 8, 12, 12} (invstd 1/2), dy {4, 3, 2, 1}, g {4, 6, 6, 4}: mean 5, mean(g xhat) 0
    // -> {-0.5, 0.5, 0.5, -0.5}.
    CaseBuilder b("with weight, eps 0", dt);
    b.output(b.op(kind,
                  {b.fin("x", {2, 4}, {-1, -1, 1, 1, 8, 8, 12, 12}), b.fin("dy", {2, 4}, {1, 2, 3, 4, 4, 3, 2, 1}),
                   b.param("w", {4}, {1, 2, 3, 4})},
                  kNoEps, "dx"),
             "dx");
    b.expect("dx", {2, 4}, {-1.5, 1.5, -3.5, 3.5, -0.5, 0.5, 0.5, -0.5});
    add(b);
  }
  {
    // dims 2, no weight: the whole [2, 2] sample {-1, -1, 1, 1}, dy {1, 2, 3, 4} -> {-0.5, 0.5, -0.5, 0.5}.
    CaseBuilder b("dims 2 without weight", dt);
    b.output(b.op(kind, {b.fin("x", {1, 2, 2}, {-1, -1, 1, 1}), b.fin("dy", {1, 2, 2}, {1, 2, 3, 4})},
                  attrs({{"dims", int64_t(2)}, {"eps", 0.0}}), "dx"),
             "dx");
    b.expect("dx", {1, 2, 2}, {-0.5, 0.5, -0.5, 0.5});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(GroupNorm, OpKind::GroupNorm) {
  {
    // [1, 4, 2], 2 groups: channels {0, 1} = {-1, -1, 1, 1}, channels {2, 3} = {8, 12, 8, 12}
    // -> xhat {-1, -1, 1, 1}, {-1, 1, -1, 1}; weight [1, 2, 3, 4], bias [0, 1, 0, 1].
    CaseBuilder b("two groups with weight and bias, eps 0", dt);
    b.output(b.op(kind,
                  {b.fin("x", {1, 4, 2}, {-1, -1, 1, 1, 8, 12, 8, 12}), b.param("w", {4}, {1, 2, 3, 4}),
                   b.param("b", {4}, {0, 1, 0, 1})},
                  attrs({{"groups", int64_t(2)}, {"eps", 0.0}}), "gn"),
             "y");
    b.expect("y", {1, 4, 2}, {-1, -1, 3, 3, -3, 3, -3, 5});
    add(b);
  }
  {
    // Per sample (one group): {0, 2} and {5, 9}, default eps.
    CaseBuilder b("one group per sample, default eps", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2, 1}, {0, 2, 5, 9})}, attrs({{"groups", int64_t(1)}}), "gn"), "y");
    const double s1 = 1 / std::sqrt(1 + 1e-5), s4 = 2 / std::sqrt(4 + 1e-5);
    b.expect("y", {2, 2, 1}, {-s1, s1, -s4, s4});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(GroupNormGrad, OpKind::GroupNormGrad) {
  {
    // Group 0: x {-1, -1, 1, 1}, dy {1, 2, 3, 4}, w [1, 2]: g {1, 2, 6, 8}, mean 4.25,
    // mean(g xhat) 2.75 -> {-0.5, 0.5, -1, 1}.
    // Group 1: x {8, 12, 8, 12} (invstd 1/2), dy {4, 3, 2, 1}, w [3, 4]: g {12, 9, 8, 4}, mean
    // 8.25, mean(g xhat) -1.75 -> 0.5 {2, 2.5, -2, -2.5}.
    CaseBuilder b("two groups with weight, eps 0", dt);
    b.output(b.op(kind,
                  {b.fin("x", {1, 4, 2}, {-1, -1, 1, 1, 8, 12, 8, 12}),
                   b.fin("dy", {1, 4, 2}, {1, 2, 3, 4, 4, 3, 2, 1}), b.param("w", {4}, {1, 2, 3, 4})},
                  attrs({{"groups", int64_t(2)}, {"eps", 0.0}}), "dx"),
             "dx");
    b.expect("dx", {1, 4, 2}, {-0.5, 0.5, -1, 1, 1, 1.25, -1, -1.25});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(Dropout, OpKind::Dropout) {
  {
    CaseBuilder b("the identity", dt);
    b.output(b.op(kind, {b.fin("x", {2, 3}, {1, -2, 3, -4, 5, -6})}, attrs({{"rate", 0.5}}), "d"), "y");
    b.expect("y", {2, 3}, {1, -2, 3, -4, 5, -6});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(DropoutTrain, OpKind::DropoutTrain) {
  const std::vector<double> x = ramp(10);
  {
    CaseBuilder b("rate 0 keeps everything", dt);
    b.output(b.op(kind, {b.fin("x", {10}, x), b.input("step", {DType::F32, {}}, {1})}, attrs({{"rate", 0.0}}), "d"),
             "y");
    b.expect("y", {10}, x);
    add(b);
  }
  {
    CaseBuilder b("rate 1 drops everything", dt);
    b.output(b.op(kind, {b.fin("x", {10}, x), b.input("step", {DType::F32, {}}, {1})}, attrs({{"rate", 1.0}}), "d"),
             "y");
    b.expect("y", {10}, std::vector<double>(10, 0.0));
    add(b);
  }
  {
    // rate 0.5 (kept values doubled), seed 42: the reference Philox's mask, another at step 2.
    const uint64_t seed = 42;
    CaseBuilder b("rate 0.5: Philox masks of steps 1 and 2", dt);
    b.output(b.op(kind, {b.fin("x", {2, 5}, x), b.input("step", {DType::F32, {}}, {1})},
                  attrs({{"rate", 0.5}, {"seed", int64_t(seed)}}), "d"),
             "y");
    b.expect("y", {2, 5}, droppedOut(x, 0.5, seed, 1));
    b.nextRun({{"step", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{2})}});
    b.expect("y", {2, 5}, droppedOut(x, 0.5, seed, 2));
    add(b);
  }
  {
    // rate 0.25 (scale 4/3) over 37 elements (a partial last block of four), a seed above 2^32.
    const uint64_t seed = 0x123456789abcdefull;
    const std::vector<double> longer = ramp(37, -18);
    CaseBuilder b("rate 0.25, 64-bit seed, 37 elements", dt);
    b.output(b.op(kind, {b.fin("x", {37}, longer), b.input("step", {DType::F32, {}}, {7})},
                  attrs({{"rate", 0.25}, {"seed", int64_t(seed)}}), "d"),
             "y");
    b.expect("y", {37}, droppedOut(longer, 0.25, seed, 7));
    add(b);
  }
}

}  // namespace
}  // namespace shoal::test
