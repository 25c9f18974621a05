// The CPU kernels give the same bits at 1 and at 4 threads (per-element kernels by
// construction, reductions through chunkings fixed by the shapes), kernel by kernel and over
// whole training steps of the seed CNN; SessionOptions::threads is checked. No timing here.
#include "runtime/cpu/cpu_threads.h"

#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "ir/elementwise.h"
#include "ir/ops.h"
#include "ir/shape_geometry.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/ops_norm.h"
#include "runtime/cpu/ops_shape.h"
#include "support/thread_pool.h"

namespace shoal {
namespace {

std::vector<float> randomFloats(size_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs `kernel` (which writes its outputs into the vector it returns) at 1 and at 4 threads.
void expectSameAtOneAndFour(const std::function<std::vector<float>()>& kernel, const char* what) {
  int before = cpuThreads();
  cpu::useCpuThreads(1);
  std::vector<float> one = kernel();
  cpu::useCpuThreads(4);
  EXPECT_EQ(cpuThreads(), 4);
  std::vector<float> four = kernel();
  cpu::useCpuThreads(before);
  EXPECT_TRUE(sameBits(one, four)) << what << ": results differ between 1 and 4 threads";
  bool anyNonZero = false;
  for (float v : one) anyNonZero |= v != 0;
  EXPECT_TRUE(anyNonZero) << what << ": the kernel wrote nothing";
}

cpu::Conv2dParams seedConv(int64_t n, int64_t groups = 1) {
  cpu::Conv2dParams p;
  p.n = n, p.c = 2 * groups, p.h = 13, p.w = 11, p.o = 4 * groups, p.kh = 3, p.kw = 3;
  p.padTop = p.padLeft = p.padBottom = p.padRight = 1;
  p.groups = groups;
  return p;
}

TEST(CpuThreads, ConvolutionKernels) {
  for (int64_t groups : {1, 2}) {
    cpu::Conv2dParams p = seedConv(37, groups);  // an odd batch: a last slice shorter than the others
    auto x = randomFloats(size_t(p.n * p.c * p.h * p.w), 1);
    auto w = randomFloats(size_t(p.o * (p.c / groups) * p.kh * p.kw), 2);
    auto b = randomFloats(size_t(p.o), 3);
    const size_t ySize = size_t(p.n * p.o * p.outH() * p.outW());
    auto dy = randomFloats(ySize, 4);
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> y(ySize);
          cpu::conv2dForward<float>(p, x.data(), w.data(), b.data(), y.data());
          return y;
        },
        "conv2dForward");
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> dx(x.size());
          cpu::conv2dBackwardData<float>(p, dy.data(), w.data(), dx.data());
          return dx;
        },
        "conv2dBackwardData");
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> dw(w.size());
          cpu::conv2dBackwardWeight<float>(p, x.data(), dy.data(), dw.data());
          return dw;
        },
        "conv2dBackwardWeight");
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> db(b.size());
          cpu::conv2dBackwardBias<float>(p, dy.data(), db.data());
          return db;
        },
        "conv2dBackwardBias");
  }
}

// The sliced weight gradient is still the sum over the batch: against a float64 sum of the
// one-image gradients (each exact in double).
TEST(CpuThreads, SlicedWeightGradientSumsTheBatch) {
  cpu::Conv2dParams p = seedConv(9);
  std::vector<double> x(size_t(p.n * p.c * p.h * p.w)), dy(size_t(p.n * p.o * p.outH() * p.outW()));
  for (size_t i = 0; i < x.size(); ++i) x[i] = double(int(i % 7) - 3);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = double(int(i % 5) - 2);
  const size_t wSize = size_t(p.o * p.c * p.kh * p.kw);
  std::vector<double> dw(wSize), want(wSize, 0.0), one(wSize);
  cpu::conv2dBackwardWeight<double>(p, x.data(), dy.data(), dw.data());
  cpu::Conv2dParams single = p;
  single.n = 1;
  for (int64_t n = 0; n < p.n; ++n) {
    cpu::conv2dBackwardWeight<double>(single, x.data() + n * p.c * p.h * p.w, dy.data() + n * p.o * p.outH() * p.outW(),
                                      one.data());
    for (size_t i = 0; i < wSize; ++i) want[i] += one[i];
  }
  for (size_t i = 0; i < wSize; ++i) EXPECT_EQ(dw[i], want[i]) << "dw[" << i << "]";  // small integers: exact
}

// Few output pixels an image (P well under 256): images are taken side by side into one
// product (one chunk, or several chunks in several slices): still the batch's sum, exactly,
// and the same bits at 1 and 4 threads. Strided 3 x 3 (P = 9), pointwise (P = 4), grouped,
// depthwise (P = 1).
TEST(CpuThreads, WeightGradientOfFewPixelsSumsTheBatch) {
  std::vector<cpu::Conv2dParams> geometries;
  for (int64_t n : {1, 13, 70}) {
    cpu::Conv2dParams s;  // 5 x 5, stride 2, pad 1: 3 x 3 outputs
    s.n = n, s.c = 6, s.h = s.w = 5, s.o = 4, s.kh = s.kw = 3, s.strideH = s.strideW = 2;
    s.padTop = s.padLeft = s.padBottom = s.padRight = 1;
    geometries.push_back(s);
    cpu::Conv2dParams g = s;
    g.groups = 2;
    geometries.push_back(g);
    cpu::Conv2dParams pw;  // 1 x 1 on 2 x 2: the image is its own im2col matrix
    pw.n = n, pw.c = 8, pw.h = pw.w = 2, pw.o = 5;
    geometries.push_back(pw);
    if (n == 70) {  // 1,200 channels: the copies of 64 images would pass 16 MiB, so 48 a product
      cpu::Conv2dParams wide = s;
      wide.c = 1200, wide.o = 2;
      geometries.push_back(wide);
    }
    cpu::Conv2dParams dw;  // depthwise 3 x 3 on a 1 x 1 image, padded
    dw.n = n, dw.c = dw.o = dw.groups = 6, dw.kh = dw.kw = 3;
    dw.padTop = dw.padLeft = dw.padBottom = dw.padRight = 1;
    geometries.push_back(dw);
  }
  for (const cpu::Conv2dParams& p : geometries) {
    SCOPED_TRACE(::testing::Message() << "n " << p.n << ", c " << p.c << ", " << p.h << "x" << p.w << ", o " << p.o
                                      << ", k " << p.kh << ", groups " << p.groups);
    const size_t xs = size_t(p.n * p.c * p.h * p.w), dys = size_t(p.n * p.o * p.outH() * p.outW());
    std::vector<double> x(xs), dy(dys);
    for (size_t i = 0; i < xs; ++i) x[i] = double(int(i % 7) - 3);
    for (size_t i = 0; i < dys; ++i) dy[i] = double(int(i % 5) - 2);
    const size_t wSize = size_t(p.o * p.colRows());
    std::vector<double> dw(wSize), want(wSize, 0.0), one(wSize);
    cpu::conv2dBackwardWeight<double>(p, x.data(), dy.data(), dw.data());
    cpu::Conv2dParams single = p;
    single.n = 1;
    for (int64_t n = 0; n < p.n; ++n) {
      cpu::conv2dBackwardWeight<double>(single, x.data() + n * p.c * p.h * p.w,
                                        dy.data() + n * p.o * p.outH() * p.outW(), one.data());
      for (size_t i = 0; i < wSize; ++i) want[i] += one[i];
    }
    for (size_t i = 0; i < wSize; ++i) ASSERT_EQ(dw[i], want[i]) << "dw[" << i << "]";  // small integers: exact
    auto xf = randomFloats(xs, 3), dyf = randomFloats(dys, 4);
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> out(wSize);
          cpu::conv2dBackwardWeight<float>(p, xf.data(), dyf.data(), out.data());
          return out;
        },
        "conv2dBackwardWeight of few pixels");
  }
}

TEST(CpuThreads, PoolingKernels) {
  cpu::Pool2dParams mp;
  mp.n = 16, mp.c = 32, mp.h = 26, mp.w = 26, mp.kh = 2, mp.kw = 2, mp.strideH = 2, mp.strideW = 2;
  cpu::Pool2dParams ap = mp;
  ap.kh = ap.kw = 3, ap.strideH = ap.strideW = 2, ap.padTop = ap.padLeft = ap.padBottom = ap.padRight = 1;
  for (const cpu::Pool2dParams& p : {mp, ap}) {
    auto x = randomFloats(size_t(p.n * p.c * p.h * p.w), 5);
    auto dy = randomFloats(size_t(p.n * p.c * p.outH() * p.outW()), 6);
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> y(dy.size());
          cpu::maxPool2dForward<float>(p, x.data(), y.data());
          return y;
        },
        "maxPool2dForward");
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> dx(x.size());
          cpu::maxPool2dBackward<float>(p, x.data(), dy.data(), dx.data());
          return dx;
        },
        "maxPool2dBackward");
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> y(dy.size());
          cpu::avgPool2dForward<float>(p, x.data(), y.data());
          return y;
        },
        "avgPool2dForward");
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> dx(x.size());
          cpu::avgPool2dBackward<float>(p, dy.data(), dx.data());
          return dx;
        },
        "avgPool2dBackward");
  }
}

TEST(CpuThreads, ElementwiseAndSumTo) {
  const Shape full{64, 32, 26, 26};
  const size_t n = size_t(numElements(full));
  auto a = randomFloats(n, 7), b = randomFloats(n, 8);
  const float params[kMaxFormulaParams] = {};
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::elementwise<float>(OpKind::Tanh, full, {full}, {a.data()}, params, y.data());
        return y;
      },
      "tanh");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::elementwise<float>(OpKind::ReluGrad, full, {full, full}, {a.data(), b.data()}, params, y.data());
        return y;
      },
      "relu_grad");
  // The bias gradients of a conv and of a dense layer, and a sum of everything.
  for (const Shape& to : {Shape{1, 32, 1, 1}, Shape{32, 1, 1}, Shape{26}, Shape{}}) {
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> y(size_t(numElements(to)));
          cpu::reduceSumToShape<float>(full, a.data(), to, y.data());
          return y;
        },
        "sum_to");
  }
  const Shape rows{4096, 64};
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(64);
        cpu::reduceSumToShape<float>(rows, a.data(), Shape{64}, y.data());
        return y;
      },
      "sum_to rows");
  // And the chunked sum_to is the plain sum: [4096, 64] -> [64] against a double loop.
  std::vector<float> y(64);
  cpu::reduceSumToShape<float>(rows, a.data(), Shape{64}, y.data());
  for (int64_t j = 0; j < 64; ++j) {
    double want = 0;
    for (int64_t r = 0; r < 4096; ++r) want += double(a[size_t(r * 64 + j)]);
    EXPECT_EQ(y[size_t(j)], float(want)) << "column " << j;
  }
}

// Broadcast operands (batch norm's per-channel scale, an outer sum), reductions over axes and
// the norm kernels, which run in parallel since 2026-12-04: chunks of the output (each element
// alone) or whole channels / rows a thread, so the same bits at any thread count.
TEST(CpuThreads, BroadcastsReductionsAndNorms) {
  const Shape full{16, 48, 9, 7}, perChannel{1, 48, 1, 1}, perPixel{16, 1, 9, 7};
  const size_t n = size_t(numElements(full));
  auto a = randomFloats(n, 11), c = randomFloats(48, 12, 0.5f, 2.0f), q = randomFloats(16 * 63, 13);
  const float params[kMaxFormulaParams] = {};
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::elementwise<float>(OpKind::Mul, full, {full, perChannel}, {a.data(), c.data()}, params, y.data());
        return y;
      },
      "mul by a per-channel factor");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::elementwise<float>(OpKind::Add, full, {perChannel, perPixel}, {c.data(), q.data()}, params, y.data());
        return y;
      },
      "outer sum");
  // The outer sum element by element: y[n, c, h, w] = c[c] + q[n, h, w].
  std::vector<float> outer(n);
  cpu::elementwise<float>(OpKind::Add, full, {perChannel, perPixel}, {c.data(), q.data()}, params, outer.data());
  for (size_t i = 0; i < n; i += 37) {
    const size_t pix = i % 63, ch = (i / 63) % 48, img = i / (63 * 48);
    ASSERT_EQ(outer[i], c[ch] + q[img * 63 + pix]) << "element " << i;
  }
  for (const std::vector<int64_t>& axes : {std::vector<int64_t>{0, 2, 3}, std::vector<int64_t>{1}}) {
    expectSameAtOneAndFour(
        [&] {
          std::vector<float> y(size_t(numElements(cpu::reducedShape(full, axes, true))));
          cpu::reduce<float>(cpu::ReduceKind::Mean, full, a.data(), axes, y.data());
          return y;
        },
        "reduce_mean");
  }
  // The parallel mean is the plain one: over (N, H, W) per channel, against a double loop.
  std::vector<float> mean(48);
  cpu::reduce<float>(cpu::ReduceKind::Mean, full, a.data(), {0, 2, 3}, mean.data());
  for (size_t ch = 0; ch < 48; ++ch) {
    double want = 0;
    for (size_t img = 0; img < 16; ++img)
      for (size_t pix = 0; pix < 63; ++pix) want += double(a[(img * 48 + ch) * 63 + pix]);
    EXPECT_EQ(mean[ch], float(want * (1.0 / (16 * 63)))) << "channel " << ch;
  }
  const cpu::NormLayout channels = cpu::channelLayout(full);
  const cpu::NormAffine whole{cpu::NormAffineKind::PerGroup};
  auto dy = randomFloats(n, 14), bias = randomFloats(48, 15);
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::normForward<float>(channels, whole, a.data(), c.data(), bias.data(), 1e-5, y.data());
        return y;
      },
      "batchnorm_train");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> dx(n);
        cpu::normBackward<float>(channels, whole, a.data(), dy.data(), c.data(), 1e-5, dx.data());
        return dx;
      },
      "batchnorm_train_grad");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> dw(48);
        cpu::normWeightGradient<float>(channels, a.data(), dy.data(), 1e-5, dw.data());
        return dw;
      },
      "batchnorm_train_weight_grad");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> stats(96);
        cpu::batchNormStats<float>(channels, a.data(), stats.data());
        return stats;
      },
      "batchnorm_stats");
  const Shape rows{768, 63};  // the same elements as rows of 63
  const cpu::NormAffine perElement{cpu::NormAffineKind::PerElement};
  auto gain = randomFloats(63, 16);
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::normForward<float>(cpu::rowLayout(rows, 1), perElement, a.data(), gain.data(), nullptr, 1e-5, y.data());
        return y;
      },
      "layernorm");
}

// Transposes, slices and slices' gradients copy runs of the view in parallel chunks (since
// 2026-12-04): every element where one thread would put it. The transpose and the strided
// backwards slice are checked element by element too.
TEST(CpuThreads, DataMovement) {
  const Shape in{16, 12, 10, 24};  // attention's [B, T, H, D] -> [B, H, D, T]: inner stride 240
  const size_t n = size_t(numElements(in));
  auto x = randomFloats(n, 21);
  const auto t = geometry::transposeView(in, {0, 2, 3, 1});
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> y(n);
        cpu::copyStrided(sizeof(float), t, x.data(), y.data());
        return y;
      },
      "transpose");
  std::vector<float> y(n);
  cpu::copyStrided(sizeof(float), t, x.data(), y.data());
  for (size_t b = 0; b < 16; ++b)
    for (size_t h = 0; h < 10; ++h)
      for (size_t d = 0; d < 24; ++d)
        for (size_t tt = 0; tt < 12; ++tt)
          ASSERT_EQ(y[((b * 10 + h) * 24 + d) * 12 + tt], x[((b * 12 + tt) * 10 + h) * 24 + d]);
  // Every other row of axis 1, backwards, and the last 16 of axis 3: a strided view.
  const std::vector<geometry::SliceAxis> axes = {{0, 1, 16}, {11, -2, 6}, {0, 1, 10}, {8, 1, 16}};
  const auto v = geometry::sliceView(in, axes);
  const size_t m = size_t(numElements(v.shape));
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> out(m);
        cpu::copyStrided(sizeof(float), v, x.data(), out.data());
        return out;
      },
      "slice");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> dx(n);
        cpu::scatterStrided<float>(v, x.data(), int64_t(n), dx.data());
        return dx;
      },
      "slice_grad");
  std::vector<float> dx(n, 1.0f);
  cpu::scatterStrided<float>(v, x.data(), int64_t(n), dx.data());
  size_t k = 0;
  for (size_t b = 0; b < 16; ++b)
    for (size_t r = 0; r < 12; ++r)
      for (size_t h = 0; h < 10; ++h)
        for (size_t d = 0; d < 24; ++d) {
          const bool kept = r % 2 == 1 && d >= 8;
          const size_t at = ((b * 12 + r) * 10 + h) * 24 + d;
          if (!kept) {
            ASSERT_EQ(dx[at], 0.0f) << at;
          }
        }
  for (size_t b = 0; b < 16; ++b)
    for (size_t j = 0; j < 6; ++j)
      for (size_t h = 0; h < 10; ++h)
        for (size_t d = 0; d < 16; ++d, ++k) ASSERT_EQ(dx[((b * 12 + (11 - 2 * j)) * 10 + h) * 24 + 8 + d], x[k]);
}

TEST(CpuThreads, LossesAndOptimizers) {
  const int64_t rows = 3000, cols = 10;
  auto logits = randomFloats(size_t(rows * cols), 9, -4, 4);
  std::vector<int64_t> labels(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) labels[size_t(r)] = (r * 7) % cols;
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> loss(1);
        EXPECT_TRUE(
            cpu::softmaxCrossEntropy<float>(rows, cols, logits.data(), labels.data(), loss.data(), nullptr, 0.1f));
        return loss;
      },
      "softmax_cross_entropy");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> d(logits.size());
        EXPECT_TRUE(
            cpu::softmaxCrossEntropyBackward<float>(rows, cols, logits.data(), labels.data(), 1.0f, d.data(), 0.0f));
        return d;
      },
      "softmax_cross_entropy_grad");
  const size_t n = 100003;
  auto grad = randomFloats(n, 10);
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> state = randomFloats(3 * n, 11, 0, 1);  // w, m, v
        for (int64_t step = 1; step <= 3; ++step)
          cpu::adamUpdate<float>(int64_t(n), state.data(), grad.data(), state.data() + n, state.data() + 2 * n, 1e-3,
                                 0.9f, 0.999f, 1e-7f, step, 0.01f, /*decoupledWeightDecay=*/true, 1.0f);
        return state;
      },
      "adam");
  expectSameAtOneAndFour(
      [&] {
        std::vector<float> state = randomFloats(2 * n, 12);  // w, velocity
        cpu::sgdUpdate<float>(int64_t(n), state.data(), grad.data(), state.data() + n, 0.1f, 0.9f, 0.0f, true, 1.0f);
        return state;
      },
      "sgd momentum");
}

// The seed CNN: three training steps through the public API at 1 and at 4 threads leave the
// same parameters, bit for bit (conv, pool, dense, relu, losses, sum_to, Adam together).
std::map<std::string, Tensor> trainSeedCnn(int threads) {
  GraphBuilder b("seed");
  auto x = b.input("x", f32({64, 1, 28, 28}));
  auto c = b.conv2d(x, 32, 3, 3, {.activation = Activation::Relu, .name = "c1"});
  auto p = b.maxPool2d(c, 2, 2);
  auto h = b.dense(b.flatten(p), 64, {.activation = Activation::Relu, .name = "d1"});
  b.output("logits", b.dense(h, 10, {.name = "d2"}));
  auto model = b.build();
  EXPECT_TRUE(model) << model.error().message();
  auto trainer = Trainer::create(*model, {.optimizer = optim::Adam{}}, {.device = DeviceKind::Cpu, .threads = threads});
  EXPECT_TRUE(trainer) << trainer.error().message();
  auto images = randomFloats(64 * 28 * 28, 13, 0, 1);
  std::vector<double> pixels(images.begin(), images.end()), labels(64);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = double(i % 10);
  TensorMap batch{{"x", Tensor::fromDoubles(DType::F32, {64, 1, 28, 28}, pixels)},
                  {"labels", Tensor::fromDoubles(DType::I64, {64}, labels)}};
  for (int s = 0; s < 3; ++s) {
    auto st = trainer->step(batch);
    EXPECT_TRUE(st) << st.error().message();
  }
  return trainer->parameters();
}

TEST(CpuThreads, SeedCnnTrainingStepsAreBitwiseEqual) {
  int before = cpuThreads();
  auto one = trainSeedCnn(1);
  auto four = trainSeedCnn(4);
  cpu::useCpuThreads(before);
  ASSERT_EQ(one.size(), four.size());
  ASSERT_FALSE(one.empty());
  for (auto& [name, t] : one) {
    const Tensor& u = four.at(name);
    ASSERT_EQ(t.byteSize(), u.byteSize()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.byteSize()), 0) << name << " differs between 1 and 4 threads";
  }
}

TEST(CpuThreads, SessionOptionsThreadsMustBePositive) {
  GraphBuilder b("m");
  b.output("y", b.dense(b.input("x", f32({2, 3})), 4));
  auto model = b.build();
  ASSERT_TRUE(model);
  for (int bad : {0, -2}) {
    auto s = Session::create(*model, {.device = DeviceKind::Cpu, .threads = bad});
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().message(),
              "SessionOptions::threads must be 1 or more (or unset: every core available), got " + std::to_string(bad));
    auto t = Trainer::create(*model, {}, {.device = DeviceKind::Cpu, .threads = bad});
    ASSERT_FALSE(t);
  }
  auto ok = Session::create(*model, {.device = DeviceKind::Cpu, .threads = 2});
  ASSERT_TRUE(ok) << ok.error().message();
  auto out = ok->run({{"x", Tensor::fromDoubles(DType::F32, {2, 3}, std::vector<double>(6, 1.0))}});
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(cpuThreads(), 2);  // the run applied it
}

}  // namespace
}  // namespace shoal
