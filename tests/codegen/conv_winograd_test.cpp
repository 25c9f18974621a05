// Exact fp32 3 x 3 stride-1 convolutions in Winograd's F(m x m, 3 x 3) (CudaCodegenOptions::
// fp32Winograd, codegen/cuda_kernels_winograd.cpp): forwards (bias, activation, a residual
// program), data and weight gradients and stride-1 transposed convolutions, on the CPU emulator and on a GPU
// when there is one, against float64 sums written here. Winograd's sums are not the direct
// ones, so the bound is its own: the unit roundoff 2^-24 times the additions on an output's path
// (the channels, the transforms' 4 a, the bias) times the algorithm run in float64 on the
// operands' and transforms' magnitudes, |A^T| (sum_c |G| |g| |G^T| * |B^T| |d| |B|) |A| -- the
// standard forward error bound of a bilinear algorithm.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "codegen/cuda_emulator.h"
#include "frontend/layers.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"

namespace shoal {
namespace {

using Mat = std::vector<std::vector<double>>;

// The transforms (the kernels' own are in codegen; these are the test's copies, used only for
// the magnitude of the bound -- the values are checked against the direct sums).
const Mat& bT(int m) {
  static const Mat b2 = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static const Mat b4 = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                         {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  return m == 2 ? b2 : b4;
}
const Mat& gMat(int m) {
  static const Mat g2 = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static const Mat g4 = {{0.25, 0, 0},
                         {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                         {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                         {1.0 / 24, 1.0 / 12, 1.0 / 6},
                         {1.0 / 24, -1.0 / 12, 1.0 / 6},
                         {0, 0, 1}};
  return m == 2 ? g2 : g4;
}
const Mat& aT(int m) {
  static const Mat a2 = {{1, 1, 1, 0}, {0, 1, -1, -1}};
  static const Mat a4 = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
  return m == 2 ? a2 : a4;
}
// |L| X |R|^T for matrices given as L (r x i), X (i x j), R (c x j).
Mat absSandwich(const Mat& l, const Mat& x, const Mat& r) {
  Mat lx(l.size(), std::vector<double>(x[0].size(), 0.0)), out(l.size(), std::vector<double>(r.size(), 0.0));
  for (size_t i = 0; i < l.size(); ++i)
    for (size_t k = 0; k < x.size(); ++k)
      for (size_t j = 0; j < x[0].size(); ++j) lx[i][j] += std::abs(l[i][k]) * x[k][j];
  for (size_t i = 0; i < l.size(); ++i)
    for (size_t j = 0; j < r.size(); ++j)
      for (size_t k = 0; k < r[0].size(); ++k) out[i][j] += lx[i][k] * std::abs(r[j][k]);
  return out;
}

// A forward in Winograd's terms: input [n, c, h, w] (X), filters [k, c, 3, 3] (Wt), output [n,
// k, oh, ow], output (oy, ox) reading input (oy - pt + r, ox - pl + q). The bound's magnitude
// per output.
struct Form {
  int64_t n, c, h, w, k, oh, ow, pt, pl;
  std::function<double(int64_t, int64_t, int64_t, int64_t)> x, wt;
};
std::vector<double> winogradMagnitude(const Form& f, int m) {
  const int a = m + 2;
  const int64_t th = (f.oh + m - 1) / m, tw = (f.ow + m - 1) / m;
  std::vector<Mat> u(size_t(f.k * f.c));
  for (int64_t k = 0; k < f.k; ++k)
    for (int64_t c = 0; c < f.c; ++c) {
      Mat g(3, std::vector<double>(3));
      for (int r = 0; r < 3; ++r)
        for (int q = 0; q < 3; ++q) g[size_t(r)][size_t(q)] = std::abs(f.wt(k, c, r, q));
      u[size_t(k * f.c + c)] = absSandwich(gMat(m), g, gMat(m));
    }
  std::vector<double> mag(size_t(f.n * f.k * f.oh * f.ow), 0.0);
  for (int64_t n = 0; n < f.n; ++n)
    for (int64_t ty = 0; ty < th; ++ty)
      for (int64_t tx = 0; tx < tw; ++tx) {
        std::vector<Mat> v(size_t(f.c));
        for (int64_t c = 0; c < f.c; ++c) {
          Mat d(size_t(a), std::vector<double>(size_t(a), 0.0));
          for (int r = 0; r < a; ++r)
            for (int q = 0; q < a; ++q) {
              const int64_t iy = ty * m - f.pt + r, ix = tx * m - f.pl + q;
              if (iy >= 0 && iy < f.h && ix >= 0 && ix < f.w) d[size_t(r)][size_t(q)] = std::abs(f.x(n, c, iy, ix));
            }
          v[size_t(c)] = absSandwich(bT(m), d, bT(m));
        }
        for (int64_t k = 0; k < f.k; ++k) {
          Mat sum(size_t(a), std::vector<double>(size_t(a), 0.0));
          for (int64_t c = 0; c < f.c; ++c)
            for (int i = 0; i < a; ++i)
              for (int j = 0; j < a; ++j)
                sum[size_t(i)][size_t(j)] +=
                    u[size_t(k * f.c + c)][size_t(i)][size_t(j)] * v[size_t(c)][size_t(i)][size_t(j)];
          const Mat y = absSandwich(aT(m), sum, aT(m));
          for (int i = 0; i < m; ++i)
            for (int j = 0; j < m; ++j) {
              const int64_t oy = ty * m + i, ox = tx * m + j;
              if (oy < f.oh && ox < f.ow)
                mag[size_t(((n * f.k + k) * f.oh + oy) * f.ow + ox)] = y[size_t(i)][size_t(j)];
            }
        }
      }
  return mag;
}

// `got` against the float64 sums `want` within Winograd's bound for `reduction` channels (plus
// `extra` roundings, and `bias` magnitudes at each output), and off from them somewhere (the
// rounding shows).
void expectWithinWinograd(const Tensor& got, const std::vector<double>& want, const std::vector<double>& mag,
                          const std::vector<double>& extraMag, int64_t reduction, int m) {
  ASSERT_EQ(got.numElements(), int64_t(want.size()));
  const double roundings = double(reduction + 4 * (m + 2) + 2);
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double bound = roundings * std::ldexp(1.0, -24) * (mag[i] + extraMag[i]) + 1e-30;
    const double err = std::abs(double(got.at(int64_t(i))) - want[i]);
    ASSERT_LE(err, bound) << "at flat index " << i << ": got " << got.at(int64_t(i)) << ", float64 " << want[i]
                          << " (bound " << bound << ")";
    worst = std::max(worst, err / bound);
  }
  EXPECT_GT(worst, 0.0);
}

Tensor randomTensor(Shape s, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor t(DType::F32, std::move(s));
  for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, u(rng));
  return t;
}

// Winograd wherever it could serve: every size of these tests.
CudaCodegenOptions winogradOptions(int m) {
  CudaCodegenOptions o;
  o.fp32Winograd = m;
  o.fp32WinogradMinChannels = 8;
  o.fp32WinogradMinMacs = 0;
  o.fp32ConvGemmMinMacs = 0;
  o.fp32ConvGemmMinWidth = 0;
  return o;
}
using Runner = std::function<Expected<Tensor>(const Graph&, const TensorMap&, const TensorMap&, int)>;
Expected<Tensor> onEmulator(const Graph& g, const TensorMap& params, const TensorMap& inputs, int m) {
  auto program = compileProgram(g.clone());
  if (!program) return Unexpected(program.error());
  auto emu = test::EmulatedExecutable::create(*program, winogradOptions(m));
  if (!emu) return Unexpected(emu.error());
  (*emu)->writePersistent(params);
  auto out = (*emu)->run(inputs);
  if (!out) return Unexpected(out.error());
  return out->at("y");
}
Expected<Tensor> onGpu(const Graph& g, const TensorMap& params, const TensorMap& inputs, int m) {
  auto program = compileProgram(g.clone());
  if (!program) return Unexpected(program.error());
  CudaExecutableOptions o;
  const CudaCodegenOptions c = winogradOptions(m);
  o.fp32Winograd = c.fp32Winograd;
  o.fp32WinogradMinChannels = c.fp32WinogradMinChannels;
  o.fp32WinogradMinMacs = c.fp32WinogradMinMacs;
  o.fp32ConvGemmMinMacs = c.fp32ConvGemmMinMacs;
  o.fp32ConvGemmMinWidth = c.fp32ConvGemmMinWidth;
  auto exe = CudaExecutable::create(std::move(*program), o);
  if (!exe) return Unexpected(exe.error());
  if (auto ok = (*exe)->writePersistent(params); !ok) return Unexpected(ok.error());
  auto out = (*exe)->run(inputs);
  if (!out) return Unexpected(out.error());
  return out->at("y");
}

// The kernels `g` compiles to with `o`.
std::vector<std::string> kernels(const Graph& g, const CudaCodegenOptions& o) {
  auto program = compileProgram(g.clone());
  EXPECT_TRUE(program) << (program ? "" : program.error().str());
  if (!program) return {};
  auto src = generateCudaSource(*program, o);
  EXPECT_TRUE(src) << (src ? "" : src.error().message());
  return src ? src->kernelNames : std::vector<std::string>{};
}
int winogradProducts(const Graph& g, const CudaCodegenOptions& o) {
  const auto names = kernels(g, o);
  return int(std::count_if(names.begin(), names.end(),
                           [](const std::string& k) { return k.size() > 6 && k.substr(k.size() - 6) == "_wg_tc"; }));
}

struct Case {
  int64_t n, c, h, w, k;
  std::vector<int64_t> padding;  // top, left, bottom, right
  int64_t oh() const { return h + padding[0] + padding[2] - 2; }
  int64_t ow() const { return w + padding[1] + padding[3] - 2; }
  Attrs attrs() const {
    Attrs a;
    a.set("stride", std::vector<int64_t>{1, 1});
    a.set("padding", padding);
    a.set("dilation", std::vector<int64_t>{1, 1});
    return a;
  }
  std::string describe() const {
    return fmt::format("x [{},{},{},{}] {} filters padding {},{},{},{}", n, c, h, w, k, padding[0], padding[1],
                       padding[2], padding[3]);
  }
};
// Odd and even extents (tiles cut by the output's edge), each padding, channels 8 to 32.
const Case kCases[] = {
    {2, 16, 9, 9, 24, {1, 1, 1, 1}},
    {1, 8, 10, 7, 16, {0, 0, 0, 0}},
    {2, 32, 6, 11, 8, {2, 0, 1, 2}},
};

// Forward: conv2d (+ bias, + relu), or + bias + a residual then relu (fused_conv2d's program).
enum class Epilogue { None, BiasRelu, Residual };
void checkForward(const Case& cs, Epilogue ep, int m, const Runner& run, uint64_t seed) {
  SCOPED_TRACE(fmt::format("forward {} F({}x{}, 3x3) epilogue {}", cs.describe(), m, m, int(ep)));
  Graph g("wg_fwd");
  const Location loc{"wg.mmd", 1, 1, "c"};
  Value* x = layers::input(g, "x", {DType::F32, {cs.n, cs.c, cs.h, cs.w}}, loc);
  std::vector<Value*> ins = {x, layers::param(g, "c.weight", {DType::F32, {cs.k, cs.c, 3, 3}}, "zeros", loc)};
  const bool bias = ep != Epilogue::None;
  if (bias) ins.push_back(layers::param(g, "c.bias", {DType::F32, {cs.k}}, "zeros", loc));
  Value* y = *layers::addOp(g, OpKind::Conv2d, ins, cs.attrs(), "c", loc);
  Value* res = nullptr;
  if (ep == Epilogue::Residual) {
    res = layers::input(g, "res", {DType::F32, {cs.n, cs.k, cs.oh(), cs.ow()}}, loc);
    y = *layers::addOp(g, OpKind::Add, {y, res}, {}, "a", loc);
  }
  if (ep != Epilogue::None) y = *layers::addOp(g, OpKind::Relu, {y}, {}, "r", loc);
  layers::output(g, y, "y", loc);
  EXPECT_EQ(winogradProducts(g, winogradOptions(m)), 1);
  std::mt19937_64 rng(seed);
  Tensor xt = randomTensor({cs.n, cs.c, cs.h, cs.w}, rng), wt = randomTensor({cs.k, cs.c, 3, 3}, rng),
         bt = randomTensor({cs.k}, rng), rt = randomTensor({cs.n, cs.k, cs.oh(), cs.ow()}, rng);
  TensorMap params{{"c.weight", wt}};
  if (bias) params["c.bias"] = bt;
  TensorMap inputs{{"x", xt}};
  if (res) inputs["res"] = rt;
  auto got = run(g, params, inputs, m);
  ASSERT_TRUE(got) << got.error().str();
  ASSERT_EQ(got->shape(), (Shape{cs.n, cs.k, cs.oh(), cs.ow()}));
  const Form f{
      cs.n,
      cs.c,
      cs.h,
      cs.w,
      cs.k,
      cs.oh(),
      cs.ow(),
      cs.padding[0],
      cs.padding[1],
      [&](int64_t n, int64_t c, int64_t iy, int64_t ix) {
        return double(xt.at(((n * cs.c + c) * cs.h + iy) * cs.w + ix));
      },
      [&](int64_t k, int64_t c, int64_t r, int64_t q) { return double(wt.at(((k * cs.c + c) * 3 + r) * 3 + q)); }};
  const size_t count = size_t(cs.n * cs.k * cs.oh() * cs.ow());
  std::vector<double> want(count, 0.0), extra(count, 0.0);
  for (int64_t n = 0; n < cs.n; ++n)
    for (int64_t k = 0; k < cs.k; ++k)
      for (int64_t oy = 0; oy < cs.oh(); ++oy)
        for (int64_t ox = 0; ox < cs.ow(); ++ox) {
          const size_t at = size_t(((n * cs.k + k) * cs.oh() + oy) * cs.ow() + ox);
          double s = 0;
          for (int64_t c = 0; c < cs.c; ++c)
            for (int r = 0; r < 3; ++r)
              for (int q = 0; q < 3; ++q) {
                const int64_t iy = oy - cs.padding[0] + r, ix = ox - cs.padding[1] + q;
                if (iy >= 0 && iy < cs.h && ix >= 0 && ix < cs.w) s += f.x(n, c, iy, ix) * f.wt(k, c, r, q);
              }
          if (bias) s += bt.at(k), extra[at] += std::abs(bt.at(k));
          if (res) s += rt.at(int64_t(at)), extra[at] += std::abs(rt.at(int64_t(at)));
          want[at] = ep == Epilogue::None ? s : std::max(s, 0.0);
        }
  expectWithinWinograd(*got, want, winogradMagnitude(f, m), extra, cs.c, m);
}

// The data gradient (dy, w) -> dx, or conv_transpose2d (x, w, bias) at stride 1: the sums over
// the filters o of dy (n, o, iy + pt - r, ix + pl - q) w (o, c, r, q), straight from the
// definition; the bound's magnitude from the equivalent forward (the filters rotated and
// transposed, padding 2 - p).
void checkDataGradient(const Case& cs, bool transpose, int m, const Runner& run, uint64_t seed) {
  SCOPED_TRACE(
      fmt::format("{} {} F({}x{}, 3x3)", transpose ? "conv_transpose2d" : "data gradient", cs.describe(), m, m));
  // cs: the forward's geometry, x [n, c, h, w] and k filters; dy [n, k, oh, ow].
  Graph g("wg_dx");
  const Location loc{"wg.mmd", 1, 1, "d"};
  Value* dy = layers::input(g, "dy", {DType::F32, {cs.n, cs.k, cs.oh(), cs.ow()}}, loc);
  std::vector<Value*> ins = {dy, layers::param(g, "d.weight", {DType::F32, {cs.k, cs.c, 3, 3}}, "zeros", loc)};
  Attrs a = cs.attrs();
  Expected<Value*> y = Unexpected(Error("unset"));
  if (transpose) {
    a.set("output_padding", std::vector<int64_t>{0, 0});
    ins.push_back(layers::param(g, "d.bias", {DType::F32, {cs.c}}, "zeros", loc));
    y = layers::addOp(g, OpKind::ConvTranspose2d, ins, a, "d", loc);
  } else {
    a.set("input_shape", std::vector<int64_t>{cs.n, cs.c, cs.h, cs.w});
    y = layers::addOp(g, OpKind::Conv2dBackwardData, ins, a, "d", loc);
  }
  ASSERT_TRUE(y.has_value()) << y.error().str();
  layers::output(g, *y, "y", loc);
  EXPECT_EQ(winogradProducts(g, winogradOptions(m)), 1);
  std::mt19937_64 rng(seed);
  Tensor dyt = randomTensor({cs.n, cs.k, cs.oh(), cs.ow()}, rng), wt = randomTensor({cs.k, cs.c, 3, 3}, rng),
         bt = randomTensor({cs.c}, rng);
  TensorMap params{{"d.weight", wt}};
  if (transpose) params["d.bias"] = bt;
  auto got = run(g, params, {{"dy", dyt}}, m);
  ASSERT_TRUE(got) << got.error().str();
  ASSERT_EQ(got->shape(), (Shape{cs.n, cs.c, cs.h, cs.w}));
  auto dyAt = [&](int64_t n, int64_t o, int64_t oy, int64_t ox) {
    return double(dyt.at(((n * cs.k + o) * cs.oh() + oy) * cs.ow() + ox));
  };
  auto wAt = [&](int64_t o, int64_t c, int64_t r, int64_t q) {
    return double(wt.at(((o * cs.c + c) * 3 + r) * 3 + q));
  };
  const size_t count = size_t(cs.n * cs.c * cs.h * cs.w);
  std::vector<double> want(count, 0.0), extra(count, 0.0);
  for (int64_t n = 0; n < cs.n; ++n)
    for (int64_t c = 0; c < cs.c; ++c)
      for (int64_t iy = 0; iy < cs.h; ++iy)
        for (int64_t ix = 0; ix < cs.w; ++ix) {
          const size_t at = size_t(((n * cs.c + c) * cs.h + iy) * cs.w + ix);
          double s = transpose ? double(bt.at(c)) : 0.0;
          if (transpose) extra[at] = std::abs(bt.at(c));
          for (int64_t o = 0; o < cs.k; ++o)
            for (int r = 0; r < 3; ++r)
              for (int q = 0; q < 3; ++q) {
                const int64_t oy = iy + cs.padding[0] - r, ox = ix + cs.padding[1] - q;
                if (oy >= 0 && oy < cs.oh() && ox >= 0 && ox < cs.ow()) s += dyAt(n, o, oy, ox) * wAt(o, c, r, q);
              }
          want[at] = s;
        }
  const Form f{cs.n,
               cs.k,
               cs.oh(),
               cs.ow(),
               cs.c,
               cs.h,
               cs.w,
               2 - cs.padding[0],
               2 - cs.padding[1],
               dyAt,
               [&](int64_t c, int64_t o, int64_t r, int64_t q) { return wAt(o, c, 2 - r, 2 - q); }};
  expectWithinWinograd(*got, want, winogradMagnitude(f, m), extra, cs.k, m);
}

// The weight gradient (x, dy) -> dw [k, c, 3, 3]: sums over the images and output pixels of
// dy (n, k, oy, ox) x (n, c, oy - pt + r, ox - pl + q). The bound's magnitude: the algorithm
// (F(3 x 3, m x m): G^T (sum over tiles of A dy A^T * B^T d B) G) on the magnitudes; its
// reduction the tiles.
void checkWeightGradient(const Case& cs, int m, const Runner& run, uint64_t seed) {
  SCOPED_TRACE(fmt::format("weight gradient {} F({}x{}, 3x3)", cs.describe(), m, m));
  Graph g("wg_dw");
  const Location loc{"wg.mmd", 1, 1, "w"};
  Value* x = layers::input(g, "x", {DType::F32, {cs.n, cs.c, cs.h, cs.w}}, loc);
  Value* dy = layers::input(g, "dy", {DType::F32, {cs.n, cs.k, cs.oh(), cs.ow()}}, loc);
  Attrs a = cs.attrs();
  a.set("weight_shape", std::vector<int64_t>{cs.k, cs.c, 3, 3});
  auto y = layers::addOp(g, OpKind::Conv2dBackwardWeight, {x, dy}, a, "dw", loc);
  ASSERT_TRUE(y.has_value()) << y.error().str();
  layers::output(g, *y, "y", loc);
  EXPECT_EQ(winogradProducts(g, winogradOptions(m)), 1);
  std::mt19937_64 rng(seed);
  Tensor xt = randomTensor({cs.n, cs.c, cs.h, cs.w}, rng), dyt = randomTensor({cs.n, cs.k, cs.oh(), cs.ow()}, rng);
  auto got = run(g, {}, {{"x", xt}, {"dy", dyt}}, m);
  ASSERT_TRUE(got) << got.error().str();
  ASSERT_EQ(got->shape(), (Shape{cs.k, cs.c, 3, 3}));
  auto xAt = [&](int64_t n, int64_t c, int64_t iy, int64_t ix) {
    return iy < 0 || iy >= cs.h || ix < 0 || ix >= cs.w ? 0.0 : double(xt.at(((n * cs.c + c) * cs.h + iy) * cs.w + ix));
  };
  auto dyAt = [&](int64_t n, int64_t k, int64_t oy, int64_t ox) {
    return oy >= cs.oh() || ox >= cs.ow() ? 0.0 : double(dyt.at(((n * cs.k + k) * cs.oh() + oy) * cs.ow() + ox));
  };
  const int al = m + 2;
  const int64_t th = (cs.oh() + m - 1) / m, tw = (cs.ow() + m - 1) / m;
  const size_t count = size_t(cs.k * cs.c * 9);
  std::vector<double> want(count, 0.0), mag(count, 0.0);
  for (int64_t k = 0; k < cs.k; ++k)
    for (int64_t c = 0; c < cs.c; ++c) {
      Mat sum(size_t(al), std::vector<double>(size_t(al), 0.0));
      for (int64_t n = 0; n < cs.n; ++n) {
        for (int64_t oy = 0; oy < cs.oh(); ++oy)
          for (int64_t ox = 0; ox < cs.ow(); ++ox)
            for (int r = 0; r < 3; ++r)
              for (int q = 0; q < 3; ++q)
                want[size_t((k * cs.c + c) * 9 + r * 3 + q)] +=
                    dyAt(n, k, oy, ox) * xAt(n, c, oy - cs.padding[0] + r, ox - cs.padding[1] + q);
        for (int64_t ty = 0; ty < th; ++ty)
          for (int64_t tx = 0; tx < tw; ++tx) {
            Mat d(size_t(al), std::vector<double>(size_t(al), 0.0)), gy(size_t(m), std::vector<double>(size_t(m), 0.0));
            for (int r = 0; r < al; ++r)
              for (int q = 0; q < al; ++q)
                d[size_t(r)][size_t(q)] = std::abs(xAt(n, c, ty * m - cs.padding[0] + r, tx * m - cs.padding[1] + q));
            for (int r = 0; r < m; ++r)
              for (int q = 0; q < m; ++q) gy[size_t(r)][size_t(q)] = std::abs(dyAt(n, k, ty * m + r, tx * m + q));
            Mat am(size_t(al), std::vector<double>(size_t(m), 0.0));  // A = (A^T)^T
            for (int u = 0; u < al; ++u)
              for (int i = 0; i < m; ++i) am[size_t(u)][size_t(i)] = aT(m)[size_t(i)][size_t(u)];
            const Mat v = absSandwich(bT(m), d, bT(m)), e = absSandwich(am, gy, am);
            for (int i = 0; i < al; ++i)
              for (int j = 0; j < al; ++j)
                sum[size_t(i)][size_t(j)] += v[size_t(i)][size_t(j)] * e[size_t(i)][size_t(j)];
          }
      }
      Mat gt(3, std::vector<double>(size_t(al), 0.0));  // G^T
      for (int r = 0; r < 3; ++r)
        for (int j = 0; j < al; ++j) gt[size_t(r)][size_t(j)] = gMat(m)[size_t(j)][size_t(r)];
      const Mat w = absSandwich(gt, sum, gt);
      for (int r = 0; r < 3; ++r)
        for (int q = 0; q < 3; ++q) mag[size_t((k * cs.c + c) * 9 + r * 3 + q)] = w[size_t(r)][size_t(q)];
    }
  expectWithinWinograd(*got, want, mag, std::vector<double>(count, 0.0), cs.n * th * tw, m);
}

// A weight gradient of 512 tiles of F(2 x 2) and one tile of output a product: the cost model
// splits its reduction (the slices' sums added per product, ImplicitGemm::batch with splits).
const Case kSplitCase = {2, 8, 32, 32, 8, {1, 1, 1, 1}};

void checkAll(const Runner& run) {
  uint64_t seed = 1;
  checkWeightGradient(kSplitCase, 2, run, seed++);
  for (int m : {2, 4})
    for (const Case& cs : kCases) {
      checkForward(cs, Epilogue::None, m, run, seed++);
      checkForward(cs, Epilogue::BiasRelu, m, run, seed++);
      checkForward(cs, Epilogue::Residual, m, run, seed++);
      checkDataGradient(cs, false, m, run, seed++);
      checkDataGradient(cs, true, m, run, seed++);
      checkWeightGradient(cs, m, run, seed++);
    }
}

TEST(ConvWinograd, ForwardsAndGradientsMatchFloat64WithinTheirBound) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  {
    // kSplitCase's products are split (a kernel adds the slices), the others' are not.
    Graph g("wg_dw_split");
    const Location loc{"wg.mmd", 1, 1, "w"};
    const Case& cs = kSplitCase;
    Value* x = layers::input(g, "x", {DType::F32, {cs.n, cs.c, cs.h, cs.w}}, loc);
    Value* dy = layers::input(g, "dy", {DType::F32, {cs.n, cs.k, cs.oh(), cs.ow()}}, loc);
    Attrs a = cs.attrs();
    a.set("weight_shape", std::vector<int64_t>{cs.k, cs.c, 3, 3});
    layers::output(g, *layers::addOp(g, OpKind::Conv2dBackwardWeight, {x, dy}, a, "dw", loc), "y", loc);
    const auto names = kernels(g, winogradOptions(2));
    EXPECT_TRUE(
        std::any_of(names.begin(), names.end(), [](const std::string& k) { return k.ends_with("_wg_tc_sum"); }));
  }
  checkAll(onEmulator);
}

TEST(ConvWinogradGpu, ForwardsAndGradientsMatchFloat64WithinTheirBound) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  checkAll(onGpu);
}

// Which convolutions take Winograd's form: exact fp32, 3 x 3, stride 1, no dilation, one group,
// channels a multiple of 8, channels and filters at least fp32WinogradMinChannels, at least
// fp32WinogradMinMacs multiply-adds (direct); fp32Winograd 0 or tensor cores: none.
TEST(ConvWinograd, ServesStrideOneThreeByThreeConvolutionsFromItsThresholds) {
  auto graph = [](int64_t c, int64_t k, int64_t kernel, int64_t stride, int64_t dilation) {
    auto g = std::make_unique<Graph>("wg_choice");
    const Location loc{"wg.mmd", 1, 1, "c"};
    Value* x = layers::input(*g, "x", {DType::F32, {4, c, 16, 16}}, loc);
    Value* w = layers::param(*g, "c.weight", {DType::F32, {k, c, kernel, kernel}}, "zeros", loc);
    Attrs a;
    a.set("stride", std::vector<int64_t>{stride, stride});
    a.set("padding", std::vector<int64_t>{1, 1, 1, 1});
    a.set("dilation", std::vector<int64_t>{dilation, dilation});
    layers::output(*g, *layers::addOp(*g, OpKind::Conv2d, {x, w}, a, "c", loc), "y", loc);
    return g;
  };
  CudaCodegenOptions o = winogradOptions(4);
  o.fp32WinogradMinChannels = 16;
  const int64_t macs = 4 * 16 * 16 * 16 * 16 * 9;  // 4 images of 16 x 16 outputs, 16 filters, 16 channels
  o.fp32WinogradMinMacs = macs;
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 1, 1), o), 1);
  EXPECT_EQ(winogradProducts(*graph(8, 16, 3, 1, 1), o), 0);   // too few channels
  EXPECT_EQ(winogradProducts(*graph(16, 8, 3, 1, 1), o), 0);   // too few filters
  EXPECT_EQ(winogradProducts(*graph(20, 16, 3, 1, 1), o), 0);  // channels not a multiple of 8
  EXPECT_EQ(winogradProducts(*graph(16, 16, 5, 1, 1), o), 0);
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 2, 1), o), 0);
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 1, 2), o), 0);
  o.fp32WinogradMinMacs = macs + 1;
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 1, 1), o), 0);
  o.fp32WinogradMinMacs = macs;
  o.fp32Winograd = 2;
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 1, 1), o), 1);
  o.fp32Winograd = 0;
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 1, 1), o), 0);
  o.fp32Winograd = 4;
  o.tensorCores = TensorCoreMath::Tf32;
  EXPECT_EQ(winogradProducts(*graph(16, 16, 3, 1, 1), o), 0);
}

// SHOAL_CUDA_WINOGRAD: 0, 2 or 4; anything else keeps the default and says so, once.
TEST(ConvWinograd, TileFromTheEnvironment) {
  const char* old = std::getenv("SHOAL_CUDA_WINOGRAD");
  const std::string saved = old ? old : "";
  setenv("SHOAL_CUDA_WINOGRAD", "2", 1);
  EXPECT_EQ(CudaExecutableOptions::fromEnvironment().codegenOptions("sm_90").fp32Winograd, 2);
  setenv("SHOAL_CUDA_WINOGRAD", "0", 1);
  EXPECT_EQ(CudaExecutableOptions::fromEnvironment().fp32Winograd, 0);
  setenv("SHOAL_CUDA_WINOGRAD", "3", 1);
  testing::internal::CaptureStderr();
  const int first = CudaExecutableOptions::fromEnvironment().fp32Winograd;
  const int second = CudaExecutableOptions::fromEnvironment().fp32Winograd;
  const std::string err = testing::internal::GetCapturedStderr();
  old ? setenv("SHOAL_CUDA_WINOGRAD", saved.c_str(), 1) : unsetenv("SHOAL_CUDA_WINOGRAD");
  EXPECT_EQ(first, CudaCodegenOptions{}.fp32Winograd);
  EXPECT_EQ(second, first);
  EXPECT_EQ(err, fmt::format("shoal: warning: SHOAL_CUDA_WINOGRAD=3 is not one of 0, 2, 4; the default ({}) stays\n",
                             CudaCodegenOptions{}.fp32Winograd));
}

}  // namespace
}  // namespace shoal
