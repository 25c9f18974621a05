// Times the CPU reference kernels of one MNIST-CNN training step (batch 64), per kernel.
//
// Build: g++ -std=c++23 -O2 -I. bench/cpu_kernels_bench.cpp runtime/cpu/kernels_*.cpp ir/types.cpp
//        -lopenblas -o /tmp/cpu_kernels_bench
// The model: conv(1→32, 3x3)+relu → maxpool 2x2 → dense(5408→64)+relu → dense(64→10),
// softmax cross-entropy, Adam.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/kernels.h"

using namespace shoal;
using namespace shoal::cpu;

namespace {

std::vector<float> randomVector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Median milliseconds of `reps` runs after two warm-up runs.
double timeMs(const std::function<void()>& fn, int reps) {
  fn();
  fn();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::stoi(argv[1]) : 30;
  std::printf("OpenBLAS threads: %d  (%s)\n", openblas_get_num_threads(), openblas_get_config());
  std::mt19937 rng(42);
  const int64_t B = 64, H = 28, W = 28, C1 = 32, D1 = 64, D2 = 10;

  Conv2dParams cp{.n = B, .c = 1, .h = H, .w = W, .o = C1, .kh = 3, .kw = 3};
  const int64_t OH = cp.outH(), OW = cp.outW();  // 26x26
  Pool2dParams pp{.n = B, .c = C1, .h = OH, .w = OW, .kh = 2, .kw = 2, .strideH = 2, .strideW = 2};
  const int64_t PH = pp.outH(), PW = pp.outW();  // 13x13
  const int64_t flat = C1 * PH * PW;             // 5408

  auto x = randomVector(size_t(B * H * W), rng);
  auto convW = randomVector(size_t(C1 * 9), rng, 0.3f), convB = randomVector(C1, rng, 0.1f);
  auto w1 = randomVector(size_t(D1 * flat), rng, 0.03f), b1 = randomVector(D1, rng, 0.1f);
  auto w2 = randomVector(size_t(D2 * D1), rng, 0.3f), b2 = randomVector(D2, rng, 0.1f);
  std::vector<int32_t> labels(B);
  for (auto& l : labels) l = int32_t(rng() % 10);

  std::vector<float> scratch(size_t(conv2dScratchElems(cp)));
  std::vector<float> convY(size_t(B * C1 * OH * OW)), reluY(convY.size()), poolY(size_t(B * flat));
  std::vector<float> h1(size_t(B * D1)), h1r(h1.size()), logits(size_t(B * D2));
  std::vector<float> dLogits(logits.size()), dH1r(h1.size()), dH1(h1.size()), dPool(poolY.size());
  std::vector<float> dRelu(convY.size()), dConvY(convY.size()), dX(x.size());
  std::vector<float> dConvW(convW.size()), dConvB(convB.size()), dW1(w1.size()), dB1(b1.size());
  std::vector<float> dW2(w2.size()), dB2(b2.size());
  float loss = 0;

  struct Row {
    std::string name;
    bool inStep;
    std::function<void()> fn;
  };
  std::vector<Row> rows = {
      {"conv2d forward (+bias) 64x1x28x28 -> 64x32x26x26", true,
       [&] { conv2dForward(cp, x.data(), convW.data(), convB.data(), convY.data(), scratch.data()); }},
      {"relu forward (1.38M)", true, [&] { unary(UnaryKind::Relu, int64_t(convY.size()), convY.data(), reluY.data()); }},
      {"maxpool 2x2 forward", true, [&] { maxPool2dForward(pp, reluY.data(), poolY.data()); }},
      {"dense 5408->64 forward", true,
       [&] { denseForward(B, flat, D1, poolY.data(), w1.data(), b1.data(), h1.data()); }},
      {"relu forward (4096)", true, [&] { unary(UnaryKind::Relu, int64_t(h1.size()), h1.data(), h1r.data()); }},
      {"dense 64->10 forward", true, [&] { denseForward(B, D1, D2, h1r.data(), w2.data(), b2.data(), logits.data()); }},
      {"softmax cross-entropy forward", true,
       [&] { softmaxCrossEntropy(B, D2, logits.data(), labels.data(), &loss); }},
      {"softmax cross-entropy backward", true,
       [&] { softmaxCrossEntropyBackward(B, D2, logits.data(), labels.data(), 1.0f, dLogits.data()); }},
      {"dense 64->10 backward (dx, dw, db)", true,
       [&] { denseBackward(B, D1, D2, h1r.data(), w2.data(), dLogits.data(), dH1r.data(), dW2.data(), dB2.data()); }},
      {"relu backward (4096)", true,
       [&] { unaryGrad(UnaryKind::Relu, int64_t(h1.size()), h1.data(), h1r.data(), dH1r.data(), dH1.data()); }},
      {"dense 5408->64 backward (dx, dw, db)", true,
       [&] { denseBackward(B, flat, D1, poolY.data(), w1.data(), dH1.data(), dPool.data(), dW1.data(), dB1.data()); }},
      {"maxpool 2x2 backward", true, [&] { maxPool2dBackward(pp, reluY.data(), dPool.data(), dRelu.data()); }},
      {"relu backward (1.38M)", true,
       [&] {
         unaryGrad(UnaryKind::Relu, int64_t(convY.size()), convY.data(), reluY.data(), dRelu.data(), dConvY.data());
       }},
      {"conv2d backward weight", true,
       [&] { conv2dBackwardWeight(cp, x.data(), dConvY.data(), dConvW.data(), scratch.data()); }},
      {"conv2d backward bias", true, [&] { conv2dBackwardBias(cp, dConvY.data(), dConvB.data()); }},
      {"adam update (all 347k params)", true,
       [&] {
         static std::vector<float> m(w1.size() + 1000), v(w1.size() + 1000);
         static int64_t step = 0;
         ++step;
         adamUpdate(int64_t(w1.size()), w1.data(), dW1.data(), m.data(), v.data(), 1e-3f, 0.9f, 0.999f, 1e-7f, step);
         adamUpdate(int64_t(w2.size()), w2.data(), dW2.data(), m.data(), v.data(), 1e-3f, 0.9f, 0.999f, 1e-7f, step);
         adamUpdate(int64_t(convW.size()), convW.data(), dConvW.data(), m.data(), v.data(), 1e-3f, 0.9f, 0.999f,
                    1e-7f, step);
       }},
      {"(not in step) conv2d backward data", false,
       [&] { conv2dBackwardData(cp, dConvY.data(), convW.data(), dX.data(), scratch.data()); }},
  };

  double total = 0;
  for (const Row& r : rows) {
    double ms = timeMs(r.fn, reps);
    if (r.inStep) total += ms;
    std::printf("%-52s %8.3f ms\n", r.name.c_str(), ms);
  }
  std::printf("%-52s %8.3f ms\n", "total of one training step", total);
  return 0;
}
