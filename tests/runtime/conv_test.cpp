// The conv family's CPU kernels against independent float64 references over many geometries:
// grouped/depthwise conv2d against a direct 7-loop sum (its gradients by the adjoint identity
// <conv(x, w), dy> = <x, dx> = <w, dw>), conv_transpose2d against the scatter that defines
// it, and the pools against PyTorch's own output-size and window rules (symmetric padding, as
// PyTorch has).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/ops_conv.h"

namespace shoal {
namespace {

std::vector<double> randomValues(size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

void expectConvNear(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-12 * (1 + std::abs(want[i]))) << what << " [" << i << "]";
}

std::string describeConv(const cpu::Conv2dParams& p) {
  return "x " + std::to_string(p.n) + "x" + std::to_string(p.c) + "x" + std::to_string(p.h) + "x" + std::to_string(p.w) +
         " o " + std::to_string(p.o) + " k " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + " s " +
         std::to_string(p.strideH) + "x" + std::to_string(p.strideW) + " pad " + std::to_string(p.padTop) + "," +
         std::to_string(p.padLeft) + "," + std::to_string(p.padBottom) + "," + std::to_string(p.padRight) + " d " +
         std::to_string(p.dilationH) + "x" + std::to_string(p.dilationW) + " groups " + std::to_string(p.groups);
}

// y[n,o,oy,ox] = b[o] + Σ_{c in o's group, ki, kj} w[o, c - group start, ki, kj] · x[n, c, iy, ix].
std::vector<double> directConv(const cpu::Conv2dParams& p, const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>& b) {
  const int64_t OH = p.outH(), OW = p.outW(), cg = p.c / p.groups, og = p.o / p.groups;
  std::vector<double> y(size_t(p.n * p.o * OH * OW));
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t o = 0; o < p.o; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double s = b.empty() ? 0.0 : b[size_t(o)];
          for (int64_t cl = 0; cl < cg; ++cl)
            for (int64_t ki = 0; ki < p.kh; ++ki)
              for (int64_t kj = 0; kj < p.kw; ++kj) {
                int64_t iy = oy * p.strideH - p.padTop + ki * p.dilationH;
                int64_t ix = ox * p.strideW - p.padLeft + kj * p.dilationW;
                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
                int64_t c = (o / og) * cg + cl;
                s += w[size_t(((o * cg + cl) * p.kh + ki) * p.kw + kj)] * x[size_t(((n * p.c + c) * p.h + iy) * p.w + ix)];
              }
          y[size_t(((n * p.o + o) * OH + oy) * OW + ox)] = s;
        }
  return y;
}

std::vector<cpu::Conv2dParams> convGeometries() {
  auto make = [](int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                 std::vector<int64_t> pad, int64_t dh, int64_t dw, int64_t groups) {
    cpu::Conv2dParams p;
    p.n = n, p.c = c, p.h = h, p.w = w, p.o = o, p.kh = kh, p.kw = kw, p.strideH = sh, p.strideW = sw;
    p.padTop = pad[0], p.padLeft = pad[1], p.padBottom = pad[2], p.padRight = pad[3];
    p.dilationH = dh, p.dilationW = dw, p.groups = groups;
    return p;
  };
  return {
      make(2, 3, 7, 6, 4, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1),   // plain
      make(2, 4, 7, 8, 6, 3, 2, 2, 1, {1, 0, 2, 1}, 1, 2, 2),   // grouped, strided, dilated, asymmetric
      make(1, 6, 9, 9, 6, 3, 3, 2, 2, {1, 1, 1, 1}, 1, 1, 6),   // depthwise
      make(3, 5, 9, 8, 5, 3, 2, 1, 2, {2, 0, 1, 1}, 2, 1, 5),   // depthwise, dilated rows, strided columns, uneven pads
      make(2, 3, 8, 7, 6, 3, 3, 1, 2, {2, 2, 2, 2}, 2, 2, 3),   // depthwise, channel multiplier 2, dilated
      make(1, 8, 5, 5, 4, 1, 1, 1, 1, {0, 0, 0, 0}, 1, 1, 4),   // grouped pointwise
      make(2, 6, 6, 7, 9, 2, 3, 1, 3, {0, 2, 1, 0}, 2, 1, 3),   // three groups, everything uneven
  };
}

TEST(ConvKernels, GroupedConvMatchesADirectSum) {
  std::mt19937_64 rng(11);
  for (const cpu::Conv2dParams& p : convGeometries()) {
    SCOPED_TRACE(describeConv(p));
    auto x = randomValues(size_t(p.n * p.c * p.h * p.w), rng);
    auto w = randomValues(size_t(p.o * (p.c / p.groups) * p.kh * p.kw), rng);
    auto b = randomValues(size_t(p.o), rng);
    std::vector<double> y(size_t(p.n * p.o * p.outH() * p.outW()));
    cpu::conv2dForward<double>(p, x.data(), w.data(), b.data(), y.data());
    expectConvNear(y, directConv(p, x, w, b), "conv2dForward");
  }
}

// dx and dw are the adjoints of x -> conv(x, w) and w -> conv(x, w): for random dy, δx, δw,
// <conv(δx, w), dy> = <δx, dx> and <conv(x, δw), dy> = <δw, dw>.
TEST(ConvKernels, GroupedConvGradientsAreTheAdjoints) {
  std::mt19937_64 rng(12);
  for (const cpu::Conv2dParams& p : convGeometries()) {
    SCOPED_TRACE(describeConv(p));
    const size_t xs = size_t(p.n * p.c * p.h * p.w), ws = size_t(p.o * (p.c / p.groups) * p.kh * p.kw);
    auto x = randomValues(xs, rng), w = randomValues(ws, rng);
    auto dy = randomValues(size_t(p.n * p.o * p.outH() * p.outW()), rng);
    auto probeX = randomValues(xs, rng), probeW = randomValues(ws, rng);
    std::vector<double> dx(xs), dw(ws);
    cpu::conv2dBackwardData<double>(p, dy.data(), w.data(), dx.data());
    cpu::conv2dBackwardWeight<double>(p, x.data(), dy.data(), dw.data());
    double viaData = dot(directConv(p, probeX, w, {}), dy), viaWeight = dot(directConv(p, x, probeW, {}), dy);
    EXPECT_NEAR(dot(probeX, dx), viaData, 1e-10 * (1 + std::abs(viaData)));
    EXPECT_NEAR(dot(probeW, dw), viaWeight, 1e-10 * (1 + std::abs(viaWeight)));
  }
}

// The definition: every x[n,c,iy,ix] adds x · w[c, ol, ki, kj] to output (oy, ox) = (iy·s - p +
// ki·d, ...) of each filter ol of its group; outputs outside [0, outH) x [0, outW) are cropped.
std::vector<double> scatterConvTranspose(const cpu::ConvTranspose2dParams& p, const std::vector<double>& x,
                                         const std::vector<double>& w, const std::vector<double>& b) {
  const int64_t OH = p.outH(), OW = p.outW(), cg = p.c / p.groups, og = p.o / p.groups;
  std::vector<double> y(size_t(p.n * p.o * OH * OW), 0.0);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t o = 0; o < p.o; ++o)
      for (int64_t i = 0; i < OH * OW; ++i) y[size_t((n * p.o + o) * OH * OW + i)] = b.empty() ? 0.0 : b[size_t(o)];
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = 0; c < p.c; ++c)
      for (int64_t iy = 0; iy < p.h; ++iy)
        for (int64_t ix = 0; ix < p.w; ++ix)
          for (int64_t ol = 0; ol < og; ++ol)
            for (int64_t ki = 0; ki < p.kh; ++ki)
              for (int64_t kj = 0; kj < p.kw; ++kj) {
                int64_t oy = iy * p.strideH - p.padTop + ki * p.dilationH;
                int64_t ox = ix * p.strideW - p.padLeft + kj * p.dilationW;
                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                int64_t o = (c / cg) * og + ol;
                y[size_t(((n * p.o + o) * OH + oy) * OW + ox)] +=
                    x[size_t(((n * p.c + c) * p.h + iy) * p.w + ix)] * w[size_t(((c * og + ol) * p.kh + ki) * p.kw + kj)];
              }
  return y;
}

TEST(ConvKernels, ConvTransposeMatchesItsScatterDefinition) {
  auto make = [](int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                 std::vector<int64_t> pad, int64_t oph, int64_t opw, int64_t dh, int64_t dw, int64_t groups) {
    cpu::ConvTranspose2dParams p;
    p.n = n, p.c = c, p.h = h, p.w = w, p.o = o, p.kh = kh, p.kw = kw, p.strideH = sh, p.strideW = sw;
    p.padTop = pad[0], p.padLeft = pad[1], p.padBottom = pad[2], p.padRight = pad[3];
    p.outputPaddingH = oph, p.outputPaddingW = opw, p.dilationH = dh, p.dilationW = dw, p.groups = groups;
    return p;
  };
  const std::vector<cpu::ConvTranspose2dParams> geometries = {
      make(2, 3, 4, 5, 2, 3, 3, 2, 2, {1, 0, 0, 1}, 1, 0, 1, 1, 1),  // the CUDA case
      make(1, 2, 2, 2, 3, 2, 2, 2, 2, {0, 0, 0, 0}, 0, 0, 1, 1, 1),  // 2x2 upsampler
      make(1, 4, 5, 4, 6, 3, 2, 1, 2, {1, 1, 1, 1}, 0, 1, 2, 1, 2),  // grouped, dilated
      make(2, 4, 3, 3, 4, 3, 3, 3, 2, {2, 1, 0, 2}, 2, 1, 1, 2, 4),  // depthwise, output padding
      make(1, 2, 3, 4, 2, 1, 1, 1, 1, {0, 0, 0, 0}, 0, 0, 1, 1, 1),  // pointwise
  };
  std::mt19937_64 rng(13);
  for (const cpu::ConvTranspose2dParams& p : geometries) {
    SCOPED_TRACE(describeConv(p.adjointConv()));
    auto x = randomValues(size_t(p.n * p.c * p.h * p.w), rng);
    auto w = randomValues(size_t(p.c * (p.o / p.groups) * p.kh * p.kw), rng);
    auto b = randomValues(size_t(p.o), rng);
    std::vector<double> y(size_t(p.n * p.o * p.outH() * p.outW()));
    cpu::convTranspose2dForward<double>(p, x.data(), w.data(), b.data(), y.data());
    expectConvNear(y, scatterConvTranspose(p, x, w, b), "convTranspose2dForward");
  }
}

// ---- pooling: PyTorch's rules, written after its source (symmetric padding) ---------------

// aten's pooling_output_shape with dilation 1.
int64_t torchPoolOutput(int64_t in, int64_t k, int64_t pad, int64_t stride, bool ceil) {
  int64_t numerator = in + 2 * pad - (k - 1) - 1 + (ceil ? stride - 1 : 0);
  int64_t out = numerator / stride + 1;  // numerator >= 0 in every case below
  if (ceil && (out - 1) * stride >= in + pad) --out;
  return out;
}

struct PoolCase {
  int64_t h, w, k, stride, pad;
  bool ceil;
};

cpu::Pool2dParams poolParams(const PoolCase& c, bool countIncludePad) {
  cpu::Pool2dParams p;
  p.n = 2, p.c = 3, p.h = c.h, p.w = c.w, p.kh = c.k, p.kw = c.k, p.strideH = c.stride, p.strideW = c.stride;
  p.padTop = p.padLeft = p.padBottom = p.padRight = c.pad;
  p.ceilMode = c.ceil, p.countIncludePad = countIncludePad;
  return p;
}

const std::vector<PoolCase> kPoolCases = {
    {5, 5, 2, 2, 0, true},  {5, 5, 2, 2, 0, false}, {5, 6, 3, 2, 1, true}, {6, 6, 3, 2, 1, true},
    {7, 4, 3, 3, 1, true},  {4, 4, 3, 2, 1, true},  {9, 8, 4, 3, 2, true}, {3, 3, 2, 2, 0, true},
    {8, 7, 3, 2, 0, true},  {6, 5, 2, 1, 1, false},
};

TEST(PoolKernels, OutputExtentsFollowPyTorch) {
  for (const PoolCase& c : kPoolCases) {
    SCOPED_TRACE(std::to_string(c.h) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " p" +
                 std::to_string(c.pad) + (c.ceil ? " ceil" : " floor"));
    cpu::Pool2dParams p = poolParams(c, true);
    EXPECT_EQ(p.outH(), torchPoolOutput(c.h, c.k, c.pad, c.stride, c.ceil));
    EXPECT_EQ(p.outW(), torchPoolOutput(c.w, c.k, c.pad, c.stride, c.ceil));
  }
}

TEST(PoolKernels, AvgPoolMatchesPyTorchsWindowRule) {
  std::mt19937_64 rng(14);
  for (const PoolCase& c : kPoolCases)
    for (bool countPad : {true, false}) {
      SCOPED_TRACE(std::to_string(c.h) + "x" + std::to_string(c.w) + " k" + std::to_string(c.k) + " s" +
                   std::to_string(c.stride) + " p" + std::to_string(c.pad) + (c.ceil ? " ceil" : "") +
                   (countPad ? " count_include_pad" : ""));
      cpu::Pool2dParams p = poolParams(c, countPad);
      const int64_t OH = p.outH(), OW = p.outW();
      auto x = randomValues(size_t(p.n * p.c * p.h * p.w), rng);
      std::vector<double> y(size_t(p.n * p.c * OH * OW)), want(y.size());
      cpu::avgPool2dForward<double>(p, x.data(), y.data());
      // aten's avg_pool2d: the window clipped to the padded input gives pool_size, then to the
      // input for the sum (and the divisor without count_include_pad).
      for (int64_t plane = 0; plane < p.n * p.c; ++plane)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t hstart = oh * c.stride - c.pad, wstart = ow * c.stride - c.pad;
            int64_t hend = std::min(hstart + c.k, c.h + c.pad), wend = std::min(wstart + c.k, c.w + c.pad);
            int64_t poolSize = (hend - hstart) * (wend - wstart);
            hstart = std::max<int64_t>(hstart, 0), wstart = std::max<int64_t>(wstart, 0);
            hend = std::min(hend, c.h), wend = std::min(wend, c.w);
            double sum = 0;
            for (int64_t ih = hstart; ih < hend; ++ih)
              for (int64_t iw = wstart; iw < wend; ++iw) sum += x[size_t((plane * c.h + ih) * c.w + iw)];
            int64_t divisor = countPad ? poolSize : (hend - hstart) * (wend - wstart);
            want[size_t((plane * OH + oh) * OW + ow)] = sum / double(divisor);
          }
      expectConvNear(y, want, "avgPool2dForward");
      // The gradient is the forward's adjoint: <avgpool(x), dy> = <x, dx>.
      auto dy = randomValues(y.size(), rng);
      std::vector<double> dx(x.size());
      cpu::avgPool2dBackward<double>(p, dy.data(), dx.data());
      EXPECT_NEAR(dot(x, dx), dot(y, dy), 1e-10);
    }
}

TEST(PoolKernels, MaxPoolMatchesPyTorchsWindowRule) {
  std::mt19937_64 rng(15);
  for (const PoolCase& c : kPoolCases) {
    cpu::Pool2dParams p = poolParams(c, true);
    const int64_t OH = p.outH(), OW = p.outW();
    auto x = randomValues(size_t(p.n * p.c * p.h * p.w), rng);
    std::vector<double> y(size_t(p.n * p.c * OH * OW)), want(y.size());
    cpu::maxPool2dForward<double>(p, x.data(), y.data());
    for (int64_t plane = 0; plane < p.n * p.c; ++plane)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          int64_t hstart = oh * c.stride - c.pad, wstart = ow * c.stride - c.pad;
          double m = -std::numeric_limits<double>::infinity();
          for (int64_t ih = std::max<int64_t>(hstart, 0); ih < std::min(hstart + c.k, c.h); ++ih)
            for (int64_t iw = std::max<int64_t>(wstart, 0); iw < std::min(wstart + c.k, c.w); ++iw)
              m = std::max(m, x[size_t((plane * c.h + ih) * c.w + iw)]);
          want[size_t((plane * OH + oh) * OW + ow)] = m;
        }
    expectConvNear(y, want, "maxPool2dForward");
  }
}

TEST(PoolKernels, GlobalAvgPoolIsThePlaneMean) {
  std::mt19937_64 rng(16);
  auto x = randomValues(6 * 35, rng);
  std::vector<double> y(6);
  cpu::globalAvgPool<double>(6, 35, x.data(), y.data());
  for (size_t p = 0; p < 6; ++p) {
    double s = 0;
    for (size_t i = 0; i < 35; ++i) s += x[p * 35 + i];
    EXPECT_NEAR(y[p], s / 35, 1e-14);
  }
}

}  // namespace
}  // namespace shoal
