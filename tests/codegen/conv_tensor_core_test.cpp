// Convolutions as implicit GEMMs on tensor cores (CudaCodegenOptions::tensorCores: TF32,
// bfloat16, float16) and, in exact fp32, on the CUDA cores (TensorCoreMath::Off: fp32 FMAs, the
// operands as they are; CudaCodegenOptions::fp32ConvGemmMinMacs): forward (with bias and a fused activation), the data
// gradient, the weight gradient (split over the reduction) and the transposed convolution, on the CPU emulator (where
// mma.sync runs as the same product through warp shuffles) and on a GPU when there is one, against float64 loops
// written here, within bounds derived from the format: each operand rounded to it (relative error <= u each: 2^-11 for
// TF32 and float16, 2^-9 for bfloat16, so <= 2u a product) and fp32 accumulation over K terms (<= K * 2^-24 each), of
// sum |a| |b|.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "codegen/cuda_emulator.h"
#include "frontend/layers.h"
#include "runtime/cpu/interpreter.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "support/float16.h"

namespace shoal {

// gtest prints a ProductTile as "128x128/2" (found by argument-dependent lookup).
inline void PrintTo(const ProductTile& t, std::ostream* os) { *os << t.describe(); }

namespace {

struct Format;
// Runs `g` (compiled for inference) with tensor-core convolutions in format `f`: params, then
// the inputs; returns output "y".
using Runner = std::function<Expected<Tensor>(const Graph&, const TensorMap&, const TensorMap&, const Format&)>;

// What the kernels are asked for: the tensor cores' format, sm_90a's warpgroup MMA (wgmma),
// and channels-last forwards (CudaCodegenOptions::convChannelsLastMinInput 0: every input the
// form takes, however small) -- and so how they round their operands: to `math`
// (roundToFormat), except TF32 with wgmma, where the operands gathered from activations and
// gradients reach the tensor cores as fp32 and are truncated, and only the packed weights are
// rounded to nearest (when packed). (16-bit wgmma converts A into registers and packs B:
// rounded as ever.)
struct Format {
  TensorCoreMath math;
  bool wgmma = false, channelsLast = false;
  int variant = -1;  // CudaCodegenOptions::tuningVariant: each product's candidate tile
  // CudaCodegenOptions::conv16ChannelsLast, halfStageOverlap, halfWideTile, halfTapReuse,
  // halfSwappedTile and halfProducerWarps
  bool cl16 = false, overlap = false, wide = false, tapReuse = false, swapped = false, producers = false;
  bool cl32 = false;                                                     // CudaCodegenOptions::tf32ChannelsLast
  bool stem = false;                                                     // CudaCodegenOptions::halfStem
  bool tma = false;                                                      // CudaCodegenOptions::halfTma
  int tmaBlocks = 1;                                                     // and halfTmaBlocks
  Format(TensorCoreMath m, bool w = false, bool cl = false, int v = -1)  // NOLINT: implicit
      : math(m), wgmma(w), channelsLast(cl), variant(v) {}
  Format sixteenBitChannelsLast(bool overlapped = false, bool reuse = false) const {
    Format f = *this;
    f.cl16 = true;
    f.overlap = overlapped;
    f.tapReuse = reuse;
    return f;
  }
  Format wideTiles() const {
    Format f = sixteenBitChannelsLast(overlap, tapReuse);
    f.wide = true;
    return f;
  }
  Format swappedTiles() const {
    Format f = sixteenBitChannelsLast(overlap, tapReuse);
    f.wide = wide;
    f.swapped = true;
    return f;
  }
  Format producerWarps() const {
    Format f = *this;
    f.producers = true;
    return f;
  }
  Format tf32ChannelsLast() const {
    Format f = *this;
    f.cl32 = true;
    return f;
  }
  Format copyEngine(int blocks = 1) const {
    Format f = *this;
    f.tma = true;
    f.tmaBlocks = blocks;
    return f;
  }
  Format stemCopies() const {
    Format f = sixteenBitChannelsLast(overlap, tapReuse);
    f.stem = true;
    return f;
  }
  bool truncates() const { return wgmma && math == TensorCoreMath::Tf32; }
  double packed(double v) const;
  double gathered(double v) const;
  int64_t channelsLastMinInput() const {
    return channelsLast ? 0 : CudaCodegenOptions{}.convChannelsLastMinInput;
  }
  std::string name() const {
    return std::string(math == TensorCoreMath::Off ? "exact fp32" : tensorCoreMathName(math)) +
           (wgmma ? " (wgmma)" : "") + (variant >= 0 ? " (tile candidate " + std::to_string(variant) + ")" : "") +
           (channelsLast ? " (channels last)" : "") + (cl16 ? " (16-bit channels last)" : "") +
           (overlap ? " (overlapped)" : "") + (wide ? " (128 x 256)" : "") +
           (tapReuse ? " (channel blocks outer)" : "") + (swapped ? " (256 x 128 swapped)" : "") +
           (producers ? " (producer warps)" : "") + (cl32 ? " (TF32 channels last)" : "") +
           (stem ? " (stem copies)" : "") + (tma ? " (copy engine)" : "") +
           (tmaBlocks == 2 ? " (two blocks an SM)" : "");
  }
};

// The CPU emulator: mma.sync as the same product through warp shuffles; sm_90a's kernels
// (wgmma) with the operands read through the kernels' descriptors as the hardware does.
Expected<Tensor> onEmulator(const Graph& g, const TensorMap& params, const TensorMap& inputs, const Format& f) {
  auto program = compileProgram(g.clone());
  if (!program) return Unexpected(program.error());
  CudaCodegenOptions tc;
  tc.tensorCores = f.math;
  tc.wgmma = f.wgmma;
  tc.tuningVariant = f.variant;
  tc.convChannelsLastMinInput = f.channelsLastMinInput();
  tc.conv16ChannelsLast = f.cl16;
  tc.halfStageOverlap = f.overlap;
  tc.halfWideTile = f.wide;
  tc.halfTapReuse = f.tapReuse;
  tc.halfSwappedTile = f.swapped;
  tc.halfProducerWarps = f.producers;
  tc.tf32ChannelsLast = f.cl32;
  tc.halfStem = f.stem;
  tc.halfTma = f.tma;
  tc.halfTmaBlocks = f.tmaBlocks;
  tc.fp32ConvGemmMinMacs = 0;  // Off: every convolution the exact fp32 GEMM, however small
  tc.fp32ConvGemmMinWidth = 0;
  tc.fp32Winograd = 0;  // the direct sums (Winograd's: conv_winograd_test.cpp)
  auto emu = test::EmulatedExecutable::create(*program, tc);
  if (!emu) return Unexpected(emu.error());
  (*emu)->writePersistent(params);
  auto out = (*emu)->run(inputs);
  if (!out) return Unexpected(out.error());
  return out->at("y");
}

Expected<Tensor> runOnGpu(const Graph& g, const TensorMap& params, const TensorMap& inputs, const Format& f,
                          bool wgmma) {
  auto program = compileProgram(g.clone());
  if (!program) return Unexpected(program.error());
  CudaExecutableOptions o;
  o.tensorCores = f.math;
  o.wgmma = wgmma;
  o.tuningVariant = f.variant;
  o.convChannelsLastMinInput = f.channelsLastMinInput();
  o.conv16ChannelsLast = f.cl16;
  o.halfStageOverlap = f.overlap;
  o.halfWideTile = f.wide;
  o.halfTapReuse = f.tapReuse;
  o.halfSwappedTile = f.swapped;
  o.halfProducerWarps = f.producers;
  o.tf32ChannelsLast = f.cl32;
  o.halfStem = f.stem;
  o.halfTma = f.tma;
  o.halfTmaBlocks = f.tmaBlocks;
  o.fp32ConvGemmMinMacs = 0;
  o.fp32ConvGemmMinWidth = 0;
  o.fp32Winograd = 0;
  auto exe = CudaExecutable::create(std::move(*program), o);
  if (!exe) return Unexpected(exe.error());
  if (auto ok = (*exe)->writePersistent(params); !ok) return Unexpected(ok.error());
  auto out = (*exe)->run(inputs);
  if (!out) return Unexpected(out.error());
  return out->at("y");
}
// The device's own choice: wgmma on an sm_90 device (the caller's Format says so).
Expected<Tensor> onGpu(const Graph& g, const TensorMap& params, const TensorMap& inputs, const Format& f) {
  return runOnGpu(g, params, inputs, f, true);
}
// mma.sync everywhere (the sm_80 kernels, on an sm_90 device too).
Expected<Tensor> onGpuMmaSync(const Graph& g, const TensorMap& params, const TensorMap& inputs, const Format& f) {
  return runOnGpu(g, params, inputs, f, false);
}
// Whether onGpu's TF32 convolutions run through wgmma on this device.
bool gpuUsesWgmma() {
  auto dev = probeCudaDevice(0);
  if (!dev) return false;
  CudaExecutableOptions o;
  o.tensorCores = TensorCoreMath::Tf32;
  return o.codegenOptions(dev->arch()).wgmma;
}

struct Geometry {
  int64_t n, c, h, w, o, kh, kw;
  std::vector<int64_t> stride, padding, dilation;  // padding: top, left, bottom, right
  int64_t oh() const { return (h + padding[0] + padding[2] - dilation[0] * (kh - 1) - 1) / stride[0] + 1; }
  int64_t ow() const { return (w + padding[1] + padding[3] - dilation[1] * (kw - 1) - 1) / stride[1] + 1; }
  Attrs attrs() const {
    Attrs a;
    a.set("stride", stride);
    a.set("padding", padding);
    a.set("dilation", dilation);
    return a;
  }
};

Tensor tcRandomTensor(Shape s, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor t(DType::F32, std::move(s));
  for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, u(rng));
  return t;
}

// `v` rounded to the tensor cores' operand format, as the kernels round it (TF32: to nearest,
// ties away from zero, cvt.rna; bfloat16 and float16: to nearest even, support/float16.h).
double roundToFormat(double v, TensorCoreMath math) {
  const float f = float(v);
  switch (math) {
    case TensorCoreMath::Bf16: return shoal_bf16_to_f32(shoal_f32_to_bf16(f));
    case TensorCoreMath::Fp16: return shoal_f16_to_f32(shoal_f32_to_f16(f));
    case TensorCoreMath::Off:
      return f;  // exact fp32: the operands as they are
    default: {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
      float r;
      std::memcpy(&r, &u, 4);
      return r;
    }
  }
}

// `v` truncated to TF32 (its low 13 mantissa bits dropped): what the tensor cores make of an
// fp32 operand that reaches them unrounded (wgmma reading the gathered operands' fp32 bits).
double truncateToTf32(double v) {
  const float f = float(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u &= 0xffffe000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

double Format::packed(double v) const { return roundToFormat(v, math); }
double Format::gathered(double v) const { return truncates() ? truncateToTf32(v) : roundToFormat(v, math); }

// For every tap of the convolution (n, o, oy, ox, c, ki, kj) whose input pixel is in the image.
template <typename Fn>
void forEachTap(const Geometry& g, Fn fn) {
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t oy = 0; oy < g.oh(); ++oy)
        for (int64_t ox = 0; ox < g.ow(); ++ox)
          for (int64_t c = 0; c < g.c; ++c)
            for (int64_t ki = 0; ki < g.kh; ++ki)
              for (int64_t kj = 0; kj < g.kw; ++kj) {
                const int64_t iy = oy * g.stride[0] - g.padding[0] + ki * g.dilation[0];
                const int64_t ix = ox * g.stride[1] - g.padding[1] + kj * g.dilation[1];
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                const int64_t xi = ((n * g.c + c) * g.h + iy) * g.w + ix;
                const int64_t wi = ((o * g.c + c) * g.kh + ki) * g.kw + kj;
                const int64_t yi = ((n * g.o + o) * g.oh() + oy) * g.ow() + ox;
                fn(xi, wi, yi);
              }
}

// `got` against the float64 `want` within the format's bound (rel * magnitude, plus a small
// absolute term), and against `rounded` -- the same sums in float64 of the operands rounded to
// the format -- within fp32 accumulation's: so the kernel rounds to exactly that format. The
// result must also differ from float64 somewhere (the rounding is visible).
void expectWithinFormat(const Tensor& got, const std::vector<double>& want, const std::vector<double>& rounded,
                        const std::vector<double>& magnitude, int64_t reduction, const Format& format) {
  const TensorCoreMath math = format.math;
  ASSERT_EQ(rounded.size(), want.size());
  for (size_t i = 0; i < rounded.size(); ++i) {
    const double bound = double(reduction) * std::ldexp(1.0, -23) * magnitude[i] + 1e-6 * (1 + std::abs(rounded[i]));
    ASSERT_LE(std::abs(got.at(int64_t(i)) - rounded[i]), bound)
        << "at flat index " << i << ": got " << got.at(int64_t(i)) << ", float64 of the " << format.name()
        << "-rounded operands " << rounded[i];
  }
  ASSERT_EQ(got.numElements(), int64_t(want.size()));
  // The unit roundoff 2^-p: bfloat16 has p = 8 significant bits, TF32 and float16 p = 11; a
  // product of two rounded operands is within 2u of the exact one. Truncation (wgmma's
  // gathered operands) errs by up to 2^-10.
  const double unit = std::ldexp(1.0, math == TensorCoreMath::Bf16  ? -8
                                      : math == TensorCoreMath::Off ? -24
                                      : format.truncates()          ? -10
                                                                    : -11);
  const double rel = 2 * unit + double(reduction) * std::ldexp(1.0, -23);
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double bound = rel * magnitude[i] + 1e-6 * (1 + std::abs(want[i]));
    const double err = std::abs(got.at(int64_t(i)) - want[i]);
    ASSERT_LE(err, bound) << "at flat index " << i << ": got " << got.at(int64_t(i)) << ", float64 " << want[i];
    worst = std::max(worst, err / bound);
  }
  EXPECT_GT(worst, 0.0);
}

// `g`'s module in format `f` (its source and steps; empty if it failed, which the caller's
// expectations then show).
CudaModuleSource moduleFor(const Graph& g, const Format& f) {
  auto program = compileProgram(g.clone());
  EXPECT_TRUE(program);
  if (!program) return {};
  CudaCodegenOptions tc;
  tc.tensorCores = f.math;
  tc.wgmma = f.wgmma;
  tc.tuningVariant = f.variant;
  tc.convChannelsLastMinInput = f.channelsLastMinInput();
  tc.conv16ChannelsLast = f.cl16;
  tc.halfStageOverlap = f.overlap;
  tc.halfWideTile = f.wide;
  tc.halfTapReuse = f.tapReuse;
  tc.halfSwappedTile = f.swapped;
  tc.halfProducerWarps = f.producers;
  tc.tf32ChannelsLast = f.cl32;
  tc.halfStem = f.stem;
  tc.halfTma = f.tma;
  tc.halfTmaBlocks = f.tmaBlocks;
  tc.fp32ConvGemmMinMacs = 0;
  tc.fp32ConvGemmMinWidth = 0;
  tc.fp32Winograd = 0;
  auto src = generateCudaSource(*program, tc);
  EXPECT_TRUE(src) << (src ? "" : src.error().message());
  return src ? std::move(*src) : CudaModuleSource{};
}

// Geometry gm's forward, y = conv2d(x, w) (w a zero-initialised parameter), as a graph.
std::unique_ptr<Graph> forwardGraph(const Geometry& gm) {
  const Location loc{"tc.mmd", 1, 1, "c"};
  auto g = std::make_unique<Graph>("tc_fwd");
  Value* x = layers::input(*g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  Value* w = layers::param(*g, "c.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc);
  layers::output(*g, *layers::addOp(*g, OpKind::Conv2d, {x, w}, gm.attrs(), "c", loc), "y", loc);
  return g;
}

// Geometry gm's data gradient, y = conv2d_backward_data(dy, w), as a graph.
std::unique_ptr<Graph> dataGradientGraph(const Geometry& gm) {
  const Location loc{"tc.mmd", 1, 1, "d"};
  auto g = std::make_unique<Graph>("tc_dx");
  Value* dy = layers::input(*g, "dy", {DType::F32, {gm.n, gm.o, gm.oh(), gm.ow()}}, loc);
  Value* w = layers::param(*g, "d.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc);
  Attrs a = gm.attrs();
  a.set("input_shape", std::vector<int64_t>{gm.n, gm.c, gm.h, gm.w});
  layers::output(*g, *layers::addOp(*g, OpKind::Conv2dBackwardData, {dy, w}, a, "d", loc), "y", loc);
  return g;
}

// Geometry gm's weight gradient, y = conv2d_backward_weight(x, dy), as a graph.
std::unique_ptr<Graph> weightGradientGraph(const Geometry& gm) {
  const Location loc{"tc.mmd", 1, 1, "c"};
  auto g = std::make_unique<Graph>("tc_dw");
  Value* x = layers::input(*g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  Value* dy = layers::input(*g, "dy", {DType::F32, {gm.n, gm.o, gm.oh(), gm.ow()}}, loc);
  Attrs a = gm.attrs();
  a.set("weight_shape", std::vector<int64_t>{gm.o, gm.c, gm.kh, gm.kw});
  layers::output(*g, *layers::addOp(*g, OpKind::Conv2dBackwardWeight, {x, dy}, a, "dw", loc), "y", loc);
  return g;
}
std::vector<std::string> kernelNames(const Graph& g, const Format& f) { return moduleFor(g, f).kernelNames; }
bool isProductKernel(const std::string& k) { return k.size() > 3 && k.substr(k.size() - 3) == "_tc"; }
// Whether a forward with `c` input channels is read channels-last when asked (padded to a
// multiple of 4 by at most a third: 3 -> 4, not 1 or 2 -> 4).
bool channelsLastTaken(const Graph& g, const Format& f) {
  const auto names = kernelNames(g, f);
  return std::any_of(names.begin(), names.end(), [](const std::string& k) { return k.find("_nhwc") != std::string::npos; });
}
bool channelsLastApplies(int64_t c) { return 3 * ((c + 3) / 4 * 4) <= 4 * c; }

int tensorCoreKernels(const Graph& g) {
  const auto names = kernelNames(g, TensorCoreMath::Tf32);
  return int(std::count_if(names.begin(), names.end(), isProductKernel));
}

std::string describe(const Geometry& g) {
  return fmt::format("x [{},{},{},{}] w [{},{},{},{}] stride {}x{} padding {},{},{},{} dilation {}x{}", g.n, g.c, g.h,
                     g.w, g.o, g.c, g.kh, g.kw, g.stride[0], g.stride[1], g.padding[0], g.padding[1], g.padding[2],
                     g.padding[3], g.dilation[0], g.dilation[1]);
}

// The convolution's float64 sums over the operands as they are (want), rounded to the format
// (rounded), and of the products' magnitudes (mag), plus bias (when given) and relu (when asked).
struct ConvSums {
  std::vector<double> want, rounded, mag;
  explicit ConvSums(int64_t count)
      : want(size_t(count), 0.0), rounded(size_t(count), 0.0), mag(size_t(count), 0.0) {}
  /// Adds the product a * b to element `at` of each sum; ar and br are a and b as the kernel
  /// rounds them.
  void add(int64_t at, double a, double b, double ar, double br) {
    want[size_t(at)] += a * b;
    rounded[size_t(at)] += ar * br;
    mag[size_t(at)] += std::abs(a * b);
  }
};
ConvSums convSums(const Geometry& gm, const Tensor& xt, const Tensor& wt, const Tensor* bias, bool relu,
                  const Format& f) {
  const int64_t count = gm.n * gm.o * gm.oh() * gm.ow();
  ConvSums r(count);
  forEachTap(gm, [&](int64_t xi, int64_t wi, int64_t yi) {
    r.add(yi, xt.at(xi), wt.at(wi), f.gathered(xt.at(xi)), f.packed(wt.at(wi)));
  });
  for (int64_t i = 0; i < count; ++i)
    for (auto* v : {&r.want, &r.rounded}) {
      if (bias) (*v)[size_t(i)] += bias->at(i / (gm.oh() * gm.ow()) % gm.o);
      if (relu) (*v)[size_t(i)] = std::max((*v)[size_t(i)], 0.0);
    }
  return r;
}

// conv2d (+ bias, + relu: fused_conv2d) forward.
void checkForward(const Geometry& gm, bool bias, bool relu, uint64_t seed, const Runner& run, const Format& f) {
  SCOPED_TRACE("forward " + describe(gm) + (bias ? " bias" : "") + (relu ? " relu" : "") + " " + f.name());
  Graph g("tc_conv");
  const Location loc{"tc.mmd", 1, 1, "c"};
  Value* x = layers::input(g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  std::vector<Value*> ins = {x, layers::param(g, "c.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc)};
  if (bias) ins.push_back(layers::param(g, "c.bias", {DType::F32, {gm.o}}, "zeros", loc));
  auto y = layers::addOp(g, OpKind::Conv2d, ins, gm.attrs(), "c", loc);
  ASSERT_TRUE(y.has_value()) << y.error().str();
  Value* out = *y;
  if (relu) out = *layers::addOp(g, OpKind::Relu, {out}, {}, "r", loc);
  layers::output(g, out, "y", loc);
  EXPECT_EQ(tensorCoreKernels(g), 1);
  EXPECT_EQ(channelsLastTaken(g, f), f.channelsLast && channelsLastApplies(gm.c));
  std::mt19937_64 rng(seed);
  Tensor xt = tcRandomTensor({gm.n, gm.c, gm.h, gm.w}, rng), wt = tcRandomTensor({gm.o, gm.c, gm.kh, gm.kw}, rng),
         bt = tcRandomTensor({gm.o}, rng);
  TensorMap params{{"c.weight", wt}};
  if (bias) params["c.bias"] = bt;
  auto got = run(g, params, {{"x", xt}}, f);
  ASSERT_TRUE(got) << got.error().str();
  const ConvSums ref = convSums(gm, xt, wt, bias ? &bt : nullptr, relu, f);
  ASSERT_EQ(got->shape(), (Shape{gm.n, gm.o, gm.oh(), gm.ow()}));
  expectWithinFormat(*got, ref.want, ref.rounded, ref.mag, gm.c * gm.kh * gm.kw, f);
}

// conv2d + relu + maxpool2d (ResNet's stem: window 3, stride 2, padding 1), which inference
// fuses into fused_conv2d_pool: on tensor cores, the implicit GEMM into scratch and a pooling
// kernel. The float64 references are pooled the same way; a window's bound is its largest.
void checkForwardPool(const Geometry& gm, uint64_t seed, const Runner& run, const Format& f) {
  const TensorCoreMath math = f.math;
  SCOPED_TRACE("forward + relu + maxpool " + describe(gm) + " " + f.name());
  Graph g("tc_conv_pool");
  const Location loc{"tc.mmd", 1, 1, "c"};
  Value* x = layers::input(g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  std::vector<Value*> ins = {x, layers::param(g, "c.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc),
                             layers::param(g, "c.bias", {DType::F32, {gm.o}}, "zeros", loc)};
  Value* y = *layers::addOp(g, OpKind::Conv2d, ins, gm.attrs(), "c", loc);
  y = *layers::addOp(g, OpKind::Relu, {y}, {}, "r", loc);
  Attrs pa;
  pa.set("kernel", std::vector<int64_t>{3, 3});
  pa.set("stride", std::vector<int64_t>{2, 2});
  pa.set("padding", std::vector<int64_t>{1, 1, 1, 1});
  auto pooled = layers::addOp(g, OpKind::MaxPool2d, {y}, pa, "p", loc);
  ASSERT_TRUE(pooled.has_value()) << pooled.error().str();
  layers::output(g, *pooled, "y", loc);
  {
    int fused = 0;
    for (const std::string& k : kernelNames(g, math)) fused += k.find("fused_conv2d_pool") != std::string::npos;
    EXPECT_EQ(fused, 3) << "the weights' packing, the implicit GEMM and the pooling kernel";
  }
  EXPECT_EQ(channelsLastTaken(g, f), f.channelsLast && channelsLastApplies(gm.c));
  std::mt19937_64 rng(seed);
  Tensor xt = tcRandomTensor({gm.n, gm.c, gm.h, gm.w}, rng), wt = tcRandomTensor({gm.o, gm.c, gm.kh, gm.kw}, rng),
         bt = tcRandomTensor({gm.o}, rng);
  auto got = run(g, {{"c.weight", wt}, {"c.bias", bt}}, {{"x", xt}}, f);
  ASSERT_TRUE(got) << got.error().str();
  const int64_t oh = gm.oh(), ow = gm.ow(), ph = (oh + 2 - 3) / 2 + 1, pw = (ow + 2 - 3) / 2 + 1;
  const ConvSums ref = convSums(gm, xt, wt, &bt, /*relu=*/true, f);
  const int64_t pooledCount = gm.n * gm.o * ph * pw;
  std::vector<double> pw64(size_t(pooledCount), -1e300), pr64(size_t(pooledCount), -1e300), pm(size_t(pooledCount), 0.0);
  for (int64_t plane = 0; plane < gm.n * gm.o; ++plane)
    for (int64_t py = 0; py < ph; ++py)
      for (int64_t px = 0; px < pw; ++px) {
        const size_t at = size_t((plane * ph + py) * pw + px);
        for (int64_t wy = 0; wy < 3; ++wy)
          for (int64_t wx = 0; wx < 3; ++wx) {
            const int64_t oy = py * 2 - 1 + wy, ox = px * 2 - 1 + wx;
            if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
            const size_t c = size_t((plane * oh + oy) * ow + ox);
            pw64[at] = std::max(pw64[at], ref.want[c]);
            pr64[at] = std::max(pr64[at], ref.rounded[c]);
            pm[at] = std::max(pm[at], ref.mag[c]);
          }
      }
  ASSERT_EQ(got->shape(), (Shape{gm.n, gm.o, ph, pw}));
  expectWithinFormat(*got, pw64, pr64, pm, gm.c * gm.kh * gm.kw, f);
}

// The data gradient's GEMMs: one per phase (iy mod sh, ix mod sw) that some tap reaches,
// counted here by brute force over the taps.
int reachedPhases(const Geometry& gm) {
  auto reached = [](int64_t p, int64_t s, int64_t pad, int64_t d, int64_t k, int64_t in) {
    bool any = false;
    for (int64_t iy = p; iy < in; iy += s)
      for (int64_t ki = 0; ki < k; ++ki) any = any || (iy + pad - ki * d) % s == 0;
    return any;
  };
  int count = 0;
  for (int64_t py = 0; py < gm.stride[0]; ++py)
    for (int64_t px = 0; px < gm.stride[1]; ++px)
      count += reached(py, gm.stride[0], gm.padding[0], gm.dilation[0], gm.kh, gm.h) &&
               reached(px, gm.stride[1], gm.padding[1], gm.dilation[1], gm.kw, gm.w);
  return count;
}

// conv2d_backward_data (dy, w) -> dx, or conv_transpose2d (x, w, bias) -> y: the same sums.
void checkBackwardData(const Geometry& gm, bool transpose, uint64_t seed, const Runner& run, const Format& f) {
  SCOPED_TRACE(std::string(transpose ? "conv_transpose2d " : "backward data ") + describe(gm) + " " + f.name());
  Graph g("tc_conv_dx");
  const Location loc{"tc.mmd", 1, 1, "d"};
  Value* dy = layers::input(g, "dy", {DType::F32, {gm.n, gm.o, gm.oh(), gm.ow()}}, loc);
  std::vector<Value*> ins = {dy, layers::param(g, "d.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc)};
  Attrs a = gm.attrs();
  Expected<Value*> y = Unexpected(Error("unset"));
  if (transpose) {
    // conv_transpose2d's output size: (in - 1) * s - pads + d (k - 1) + 1 + output_padding.
    const int64_t oh = (gm.oh() - 1) * gm.stride[0] - gm.padding[0] - gm.padding[2] + gm.dilation[0] * (gm.kh - 1) + 1;
    const int64_t ow = (gm.ow() - 1) * gm.stride[1] - gm.padding[1] - gm.padding[3] + gm.dilation[1] * (gm.kw - 1) + 1;
    a.set("output_padding", std::vector<int64_t>{gm.h - oh, gm.w - ow});
    ins.push_back(layers::param(g, "d.bias", {DType::F32, {gm.c}}, "zeros", loc));
    y = layers::addOp(g, OpKind::ConvTranspose2d, ins, a, "d", loc);
  } else {
    a.set("input_shape", std::vector<int64_t>{gm.n, gm.c, gm.h, gm.w});
    y = layers::addOp(g, OpKind::Conv2dBackwardData, ins, a, "d", loc);
  }
  ASSERT_TRUE(y.has_value()) << y.error().str();
  layers::output(g, *y, "y", loc);
  EXPECT_EQ(tensorCoreKernels(g), reachedPhases(gm));
  std::mt19937_64 rng(seed);
  Tensor dyt = tcRandomTensor({gm.n, gm.o, gm.oh(), gm.ow()}, rng), wt = tcRandomTensor({gm.o, gm.c, gm.kh, gm.kw}, rng),
         bt = tcRandomTensor({gm.c}, rng);
  TensorMap params{{"d.weight", wt}};
  if (transpose) params["d.bias"] = bt;
  auto got = run(g, params, {{"dy", dyt}}, f);
  ASSERT_TRUE(got) << got.error().str();
  const int64_t count = gm.n * gm.c * gm.h * gm.w;
  ConvSums ref(count);
  forEachTap(gm, [&](int64_t xi, int64_t wi, int64_t yi) {
    ref.add(xi, dyt.at(yi), wt.at(wi), f.gathered(dyt.at(yi)), f.packed(wt.at(wi)));
  });
  if (transpose)
    for (int64_t i = 0; i < count; ++i) {
      ref.want[size_t(i)] += bt.at((i / (gm.h * gm.w)) % gm.c);
      ref.rounded[size_t(i)] += bt.at((i / (gm.h * gm.w)) % gm.c);
    }
  ASSERT_EQ(got->shape(), (Shape{gm.n, gm.c, gm.h, gm.w}));
  expectWithinFormat(*got, ref.want, ref.rounded, ref.mag, gm.o * gm.kh * gm.kw, f);
}

// The weight gradient's float64 sums (both operands gathered: rounded as `f` rounds them).
ConvSums weightGradientSums(const Geometry& gm, const Tensor& xt, const Tensor& dyt, const Format& f) {
  ConvSums ref(gm.o * gm.c * gm.kh * gm.kw);
  forEachTap(gm, [&](int64_t xi, int64_t wi, int64_t yi) {
    ref.add(wi, xt.at(xi), dyt.at(yi), f.gathered(xt.at(xi)), f.gathered(dyt.at(yi)));
  });
  return ref;
}

// conv2d_backward_weight (x, dy) -> dw, over every output pixel of the batch. With wgmma a
// 16-bit weight gradient is a TF32 product (CudaCodegenOptions::wgmmaTf32Gathered16: both
// operands gathered), so its reference rounds as TF32's wgmma does.
void checkBackwardWeight(const Geometry& gm, uint64_t seed, const Runner& run, const Format& asked) {
  // With wgmma, 16-bit weight gradients are TF32 products, their gathered operands truncated --
  // but for the 16-bit channels-last ones (channels and filters in 64s, or the stem's form: at
  // most 4 channels, kernel rows of at most 8 at an even column stride): in the format.
  const bool stemForm = asked.stem && gm.c <= 4 && gm.kw <= 8 && gm.stride[1] % 2 == 0 && gm.dilation[1] == 1;
  const bool sixteenBitProducts = asked.cl16 && (gm.c % 64 == 0 || stemForm) && gm.o % 64 == 0 &&
                                  (asked.math == TensorCoreMath::Bf16 || asked.math == TensorCoreMath::Fp16);
  const Format f = asked.wgmma && !sixteenBitProducts
                       ? Format(TensorCoreMath::Tf32, true, asked.channelsLast, asked.variant)
                       : asked;
  SCOPED_TRACE("backward weight " + describe(gm) + " " + asked.name());
  Graph g("tc_conv_dw");
  const Location loc{"tc.mmd", 1, 1, "dw"};
  Value* x = layers::input(g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  Value* dy = layers::input(g, "dy", {DType::F32, {gm.n, gm.o, gm.oh(), gm.ow()}}, loc);
  Attrs a = gm.attrs();
  a.set("weight_shape", std::vector<int64_t>{gm.o, gm.c, gm.kh, gm.kw});
  auto y = layers::addOp(g, OpKind::Conv2dBackwardWeight, {x, dy}, a, "dw", loc);
  ASSERT_TRUE(y.has_value()) << y.error().str();
  layers::output(g, *y, "y", loc);
  EXPECT_EQ(tensorCoreKernels(g), 1);  // the slices' sum kernel is named ..._tc_sum
  std::mt19937_64 rng(seed);
  Tensor xt = tcRandomTensor({gm.n, gm.c, gm.h, gm.w}, rng), dyt = tcRandomTensor({gm.n, gm.o, gm.oh(), gm.ow()}, rng);
  auto got = run(g, {}, {{"x", xt}, {"dy", dyt}}, asked);
  ASSERT_TRUE(got) << got.error().str();
  const ConvSums ref = weightGradientSums(gm, xt, dyt, f);
  ASSERT_EQ(got->shape(), (Shape{gm.o, gm.c, gm.kh, gm.kw}));
  expectWithinFormat(*got, ref.want, ref.rounded, ref.mag, gm.n * gm.oh() * gm.ow(), f);
}

// Partial tiles everywhere: 2*9*11 = 198 pixel rows (one partial 256 x 64 tile), 10 filters,
// reductions of 27 and 90 (partial 16-steps); stride, dilation and asymmetric padding; 70
// filters (a partial 128 x 128 tile); a 1x1 and a 5x1 kernel. The last four take the grouped
// gathers (channels, filters or output pixels in multiples of 8): the forward and the data
// gradient with stride 2 and with dilation, the weight gradient with 48 output pixels an image
// (its dy copied 16 bytes at a time), a forward whose 576-step reduction is split in two
// slices, and 300 pixel rows by 136 1x1 filters: three row and two column tiles of 128 x 128 (the
// forward, the weight gradient's columns), two row tiles of 256 x 64 (the data gradient).
// The weight gradient's groups of output pixels: wrapping into the next row and image (9 x 11,
// 6 x 9, 10 x 10 outputs), into the next row only (4 x 10: 40 pixels an image), not at all
// (16 x 16, kSplit), or divided per element (outputs narrower than 7; 1 x 1, where dy's groups
// of 4 span images too); 3 x 14 and 4 x 12 outputs wrap into the next image and the next row. Forwards with few channels: kernel rows of at most 8 taps padded to 8
// (3, 4 and 2 channels), a row of 9 taps element by element. Strided data gradients, a GEMM per
// phase: 3 x 3 at stride 2 over odd extents (phases of 6 and 5 rows, 1 or 2 taps each way;
// 32 filters, the interleaved copies), 1 x 1 at stride 2 (three phases no tap reaches,
// written as zeros), 3 x 3 at strides 3 x 2 with uneven padding; the second geometry's
// dilation 2 at stride 2 leaves the odd rows to no tap too.
const std::vector<Geometry> kGeometries = {
    {2, 3, 9, 11, 10, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 4, 13, 12, 70, 3, 2, {2, 1}, {2, 0, 1, 1}, {2, 3}},
    {3, 20, 5, 4, 8, 1, 1, {1, 1}, {0, 0, 0, 0}, {1, 1}},
    {1, 2, 9, 3, 5, 5, 1, {1, 1}, {2, 0, 2, 0}, {1, 1}},
    {2, 16, 7, 6, 24, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {2, 8, 8, 6, 16, 3, 3, {1, 1}, {2, 1, 2, 1}, {2, 1}},
    {1, 64, 5, 5, 8, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {3, 8, 10, 10, 136, 1, 1, {1, 1}, {0, 0, 0, 0}, {1, 1}},
    {2, 8, 6, 12, 16, 3, 3, {1, 1}, {0, 0, 0, 0}, {1, 1}},
    {3, 8, 3, 3, 8, 3, 3, {1, 1}, {0, 0, 0, 0}, {1, 1}},
    {1, 3, 4, 12, 8, 1, 9, {1, 1}, {0, 1, 0, 1}, {1, 1}},
    {2, 3, 3, 14, 8, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 4, 4, 12, 8, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {2, 8, 11, 9, 32, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {2, 16, 9, 10, 16, 1, 1, {2, 2}, {0, 0, 0, 0}, {1, 1}},
    {1, 8, 10, 7, 16, 3, 3, {3, 2}, {2, 1, 0, 0}, {1, 1}},
};

// A reduction of 2*16*16 = 512 output pixels: the weight gradient in two slices, added by the
// second kernel.
const Geometry kSplit = {2, 3, 16, 16, 6, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}};

void checkAll(const Runner& run, const Format& math) {
  for (size_t i = 0; i < kGeometries.size(); ++i) {
    const Geometry& g = kGeometries[i];
    checkForward(g, i % 2 == 0, i != 1, 10 + i, run, math);
    checkBackwardData(g, false, 20 + i, run, math);
    checkBackwardWeight(g, 30 + i, run, math);
  }
  checkBackwardData(kGeometries[0], true, 41, run, math);
  checkBackwardData(kGeometries[1], true, 42, run, math);
  checkBackwardWeight(kSplit, 43, run, math);
  checkForwardPool(kGeometries[0], 44, run, math);
  checkForwardPool(kGeometries[4], 45, run, math);
}

// A stem: 7 x 7 = 49 taps at stride 2 (a column-wise weight gradient's 64-bit masks); and 9 x 9
// = 81 taps, more than those hold (the weight gradient gathers by rows).
const Geometry kStem = {2, 3, 20, 20, 8, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}};
const Geometry kWide = {1, 2, 12, 12, 8, 9, 9, {1, 1}, {4, 4, 4, 4}, {1, 1}};

// Channels-last forwards (CudaCodegenOptions::convChannelsLastMinInput): x copied into
// scratch as [n, h, w, c] with the channels padded to a multiple of 4, the reduction ordered
// (tap, channel) and copied 4 channels at a time. `every`: every geometry's forward (3
// channels padded to 4, 4, 8, 16, 20 and 64 taken; 2 not, checked), else five of them (3
// channels on a partial 256 x 64 tile, 20 channels of a 1 x 1, 16 at stride 2, 64, and 8 by
// 136 filters: two column tiles); and the pooled stem (both of its geometries with `every`),
// whose scratch holds the convolution's output before the copy.
void checkChannelsLast(const Runner& run, const Format& f, bool every) {
  for (size_t i = 0; i < kGeometries.size(); ++i)
    if (every || i == 0 || i == 2 || i == 4 || i == 6 || i == 7) checkForward(kGeometries[i], i % 2 == 1, i != 2, 80 + i, run, f);
  checkForwardPool(kGeometries[0], 96, run, f);
  if (every) checkForwardPool(kGeometries[4], 97, run, f);
}

// The 16-bit formats share the tiling and gathers with TF32; their own parts are the packing
// and the m16n8k16 product: a forward, a data gradient and the split weight gradient each.
void checkSome(const Runner& run, const Format& math) {
  checkForward(kGeometries[0], true, true, 51, run, math);
  checkBackwardData(kGeometries[1], false, 52, run, math);
  checkBackwardWeight(kSplit, 53, run, math);
}

TEST(ConvTensorCore, EveryConvolutionMatchesFloat64WithinTf32Bounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkAll(onEmulator, TensorCoreMath::Tf32);
}

// sm_90a's kernels (CudaCodegenOptions::wgmma): the same gathers and stages, the products by
// warpgroup MMA through descriptors -- TF32 with both operands in the stage (64-byte swizzle),
// bfloat16 and float16 with A's fragments in registers and the packed B in 16-bit rows of the
// stage (32-byte swizzle, its slots in the fragments' order). The emulator reads every
// shared-memory operand where the hardware would (the swizzle applied to the address it
// computes) and truncates TF32's gathered ones; a descriptor, swizzle or slot order that
// disagrees with how the copies and the packing laid the stage out reads the wrong elements.
// Both tiles (256 x 64 for at most 64 columns: two m64n64 a warpgroup; 128 x 128: one
// m64n128), partial tiles, two column tiles, the split weight gradient (16-bit: TF32's wgmma,
// its B not packed) and the pooled stem.
void checkWgmma(const Runner& run, const Format& f) {
  checkForward(kGeometries[0], true, true, 71, run, f);
  checkForward(kGeometries[1], false, false, 72, run, f);
  checkForward(kGeometries[7], true, true, 73, run, f);
  checkBackwardData(kGeometries[1], false, 74, run, f);
  checkBackwardData(kGeometries[7], false, 75, run, f);
  checkBackwardWeight(kGeometries[7], 76, run, f);
  checkBackwardWeight(kSplit, 77, run, f);
  checkForwardPool(kGeometries[4], 78, run, f);
}

TEST(ConvTensorCore, WgmmaKernelsMatchFloat64WithinTheFormatsBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (TensorCoreMath math : {TensorCoreMath::Tf32, TensorCoreMath::Bf16, TensorCoreMath::Fp16})
    checkWgmma(onEmulator, Format(math, /*wgmma=*/true));
}

// The autotuner's candidates (CudaCodegenOptions::tuningVariant): each product computed with
// its second and third candidate tile, through the same checks as the cost model's choice.
// Every product's second is the other block tile (256 x 64 where the cost model takes
// 128 x 128 and the other way round); the third, where a product has one, half the model's
// slices (these shapes' reductions are too short for twice): the split weight gradient and the
// split forwards and data gradients in one slice.
void checkCandidates(const Runner& run, TensorCoreMath math, bool wgmma) {
  for (int variant = 1; variant <= 2; ++variant) checkWgmma(run, Format(math, wgmma, false, variant));
}

TEST(ConvTensorCore, EveryCandidateTileMatchesFloat64WithinTheFormatsBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkCandidates(onEmulator, TensorCoreMath::Tf32, /*wgmma=*/true);
  checkWgmma(onEmulator, Format(TensorCoreMath::Tf32, false, false, 1));  // mma.sync's warps
}

TEST(ConvTensorCore, ChannelsLastForwardsMatchFloat64WithinTheFormatsBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkChannelsLast(onEmulator, Format(TensorCoreMath::Tf32, false, true), /*every=*/true);
  checkChannelsLast(onEmulator, Format(TensorCoreMath::Tf32, true, true), false);
  checkChannelsLast(onEmulator, Format(TensorCoreMath::Bf16, true, true), false);
}

// 16-bit forwards of 64k channels on sm_90a (CudaCodegenOptions::conv16ChannelsLast): x
// converted into scratch as [n, h, w, c] values of the format, 64 reduction steps (one tap's
// 64 channels) a stage, both operands read by wgmma from the stage in the 128-byte swizzle
// (ImplicitGemm::aHalf64). Partial row and column tiles (126 rows; 24 of 64 columns; 136 of
// 2 x 128), padding, stride 2, dilation, a 1 x 1 of one stage, three row tiles, 128 channels
// (two 64-channel blocks a tap), bias and relu; with `candidates`, each also on its autotuner
// candidates (the other tile, the model's slices doubled and halved: split reductions of whole
// 64-steps). The emulator reads both descriptors where the hardware would; a copy, swizzle or
// descriptor that disagrees reads other elements (or the guards' NaN).
const std::vector<Geometry> kHalf = {
    {2, 64, 9, 7, 24, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}}, {1, 128, 6, 6, 136, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {3, 64, 8, 8, 72, 1, 1, {2, 2}, {0, 0, 0, 0}, {1, 1}}, {2, 64, 12, 12, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 64, 7, 7, 16, 3, 3, {1, 1}, {2, 2, 2, 2}, {2, 2}},
};
// Data gradients (and a transposed convolution) with filters in 64s: the gradient converted
// once, each phase's GEMM reading it 64 filters a stage row -- stride 1 (24 channels: a partial
// column tile), stride 2 over 128 filters (four phases of 4, 2, 2 and 1 taps), a 1 x 1 at
// stride 2 (one phase reached, three written as zeros) and dilation.
const std::vector<Geometry> kHalfData = {
    {2, 24, 9, 7, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 40, 11, 11, 128, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {3, 72, 8, 8, 64, 1, 1, {2, 2}, {0, 0, 0, 0}, {1, 1}},
    {1, 16, 9, 9, 64, 3, 3, {1, 1}, {2, 2, 2, 2}, {2, 2}},
};
// Weight gradients with channels and filters in 64s: x and dy converted, both operands
// MN-major (ImplicitGemm::halfMN), 64 output pixels a stage -- 126 pixels (a partial last
// stage), 128 channels at stride 2 (a row tile within one tap), a 1 x 1 at stride 2 over 128
// filters (two column atoms), dilation with padding; and with `candidates` the other tile and
// the model's slices doubled and halved.
const std::vector<Geometry> kHalfWeight = {
    {2, 64, 9, 7, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 128, 10, 10, 64, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {3, 64, 8, 8, 128, 1, 1, {2, 2}, {0, 0, 0, 0}, {1, 1}},
    {1, 64, 9, 9, 64, 3, 3, {1, 1}, {2, 2, 2, 2}, {2, 2}},
};
// A 1 x 1 over 1,152 pixels (18 stages of 64, 576 pixels an image): in slices, each slice's
// pixels from its own first (kBegin), their columns, rows and images carried from stage to stage
// (ImplicitGemm::kDigits); with producer warps, slices longer than the ring.
const Geometry kRingWeight = {2, 64, 24, 24, 64, 1, 1, {1, 1}, {0, 0, 0, 0}, {1, 1}};
// Forwards whose slots of the ring are reused: pooled (fused_conv2d_pool: one slice, whatever
// the grid) over 9 and 18 stages -- unpooled products of the suite's small grids are cut into
// slices of a stage or two, fewer than the ring's slots.
const std::vector<Geometry> kRingForward = {
    {2, 64, 12, 12, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 128, 8, 8, 136, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 64, 10, 10, 264, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
};
// The first of a weight gradient's candidates in more than one slice.
int slicedCandidate(const Geometry& g, const Format& f) {
  const CudaModuleSource m = moduleFor(*weightGradientGraph(g), f);
  if (m.products.empty()) return -1;
  const auto& cands = m.products[0].candidates;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].splits > 1) return int(i);
  return -1;
}
void checkSixteenBitChannelsLast(const Runner& run, TensorCoreMath math, bool candidates, bool overlap = false,
                                 bool tapReuse = false) {
  for (size_t i = 0; i < kHalfWeight.size(); ++i) {
    const Format f = Format(math, /*wgmma=*/true).sixteenBitChannelsLast(overlap, tapReuse);
    const std::string source = moduleFor(*weightGradientGraph(kHalfWeight[i]), f).source;
    EXPECT_NE(source.find("_cl16("), std::string::npos) << describe(kHalfWeight[i]);
    EXPECT_NE(source.find("shoal_wgmma_ss16mn_n"), std::string::npos);
    checkBackwardWeight(kHalfWeight[i], 340 + i, run, f);
    if (candidates)
      for (int variant = 1; variant <= 3; ++variant)
        checkBackwardWeight(kHalfWeight[i], 350 + i, run,
                            Format(math, true, false, variant).sixteenBitChannelsLast(overlap, tapReuse));
  }
  if (candidates || overlap) {
    // The ring's slots reused: a weight gradient in slices of 5 or more stages, a pooled forward
    // of 9 (on the emulator a product runs only when waited for, so a slot copied into again
    // before its products were waited for is caught: ahead one stage too far, say).
    const int sliced = slicedCandidate(kRingWeight, Format(math, true).sixteenBitChannelsLast(overlap, tapReuse));
    ASSERT_GE(sliced, 0);
    checkBackwardWeight(kRingWeight, 358, run,
                        Format(math, true, false, sliced).sixteenBitChannelsLast(overlap, tapReuse));
    checkForwardPool(kRingForward[0], 359, run, Format(math, true).sixteenBitChannelsLast(overlap, tapReuse));
  }
  for (size_t i = 0; i < kHalfData.size(); ++i) {
    const Format f = Format(math, /*wgmma=*/true).sixteenBitChannelsLast(overlap, tapReuse);
    const std::string source = moduleFor(*dataGradientGraph(kHalfData[i]), f).source;
    EXPECT_NE(source.find("_cl16("), std::string::npos) << describe(kHalfData[i]);
    EXPECT_NE(source.find("shoal_wgmma_ss16_n"), std::string::npos);
    checkBackwardData(kHalfData[i], i == 3, 320 + i, run, f);
    if (candidates)
      checkBackwardData(kHalfData[i], false, 330 + i, run,
                        Format(math, true, false, 1).sixteenBitChannelsLast(overlap, tapReuse));
  }
  for (size_t i = 0; i < kHalf.size(); ++i) {
    const Format f = Format(math, /*wgmma=*/true).sixteenBitChannelsLast(overlap, tapReuse);
    const auto g = forwardGraph(kHalf[i]);
    const CudaModuleSource module = moduleFor(*g, f);
    const auto& names = module.kernelNames;
    EXPECT_TRUE(std::any_of(names.begin(), names.end(), [](const std::string& k) {
      return k.find("_cl16") != std::string::npos;
    })) << describe(kHalf[i]);
    EXPECT_NE(module.source.find("shoal_wgmma_ss16_n"), std::string::npos);
    checkForward(kHalf[i], i % 2 == 0, i != 1, 300 + i, run, f);
    if (candidates)
      for (int variant = 1; variant <= 3; ++variant)
        checkForward(kHalf[i], true, true, 310 + i, run,
                     Format(math, true, false, variant).sixteenBitChannelsLast(overlap, tapReuse));
  }
}

// The 128 x 256 tile of 16-bit channels-last products of more than 128 columns
// (CudaCodegenOptions::halfWideTile: one m64n256 product a warpgroup, 48 KB stages, four of
// them two ahead): forwards of 264 filters (a second column tile of 8) and of 256 at stride 2
// over 128 channels, a data gradient into 264 channels, weight gradients of 256 filters (a
// partial stage of 36 pixels; 128 channels at stride 2) -- as the cost model's choice, and
// without the option as the candidate the autotuner may take (the last); each also on the
// 128 x 128 beside it. The emulator reads the m64n256 operands where the hardware would.
const std::vector<Geometry> kWideForward = {
    {1, 64, 6, 6, 264, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {2, 128, 7, 7, 256, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
};
const Geometry kWideData = {1, 264, 6, 6, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}};
const std::vector<Geometry> kWideWeight = {
    {1, 64, 6, 6, 256, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {1, 128, 9, 9, 256, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
};
void checkWideTiles(const Runner& run, TensorCoreMath math) {
  const Format wide = Format(math, /*wgmma=*/true).wideTiles();
  for (size_t i = 0; i < kWideForward.size(); ++i) {
    EXPECT_NE(moduleFor(*forwardGraph(kWideForward[i]), wide).source.find("shoal_wgmma_ss16_n256(acc"),
              std::string::npos)
        << describe(kWideForward[i]);
    checkForward(kWideForward[i], true, i == 0, 360 + i, run, wide);
    checkForward(kWideForward[i], false, true, 362 + i, run, Format(math, true, false, 1).wideTiles());
  }
  EXPECT_NE(moduleFor(*dataGradientGraph(kWideData), wide).source.find("shoal_wgmma_ss16_n256(acc"), std::string::npos);
  checkBackwardData(kWideData, false, 364, run, wide);
  for (size_t i = 0; i < kWideWeight.size(); ++i) {
    EXPECT_NE(moduleFor(*weightGradientGraph(kWideWeight[i]), wide).source.find("shoal_wgmma_ss16mn_n256(acc"),
              std::string::npos)
        << describe(kWideWeight[i]);
    checkBackwardWeight(kWideWeight[i], 366 + i, run, wide);
  }
  // Its ring of 4 reused (a pooled forward of 9 stages, one slice).
  checkForwardPool(kRingForward[2], 369, run, wide);
  // Without the option the wide tile is the last candidate: the autotuner's to take.
  const Format plain = Format(math, true).sixteenBitChannelsLast();
  EXPECT_EQ(moduleFor(*forwardGraph(kWideForward[0]), plain).source.find("shoal_wgmma_ss16_n256(acc"),
            std::string::npos);
  const auto candidates = moduleFor(*forwardGraph(kWideForward[0]), plain).products;
  ASSERT_FALSE(candidates.empty());
  const auto& last = candidates[0].candidates.back();
  EXPECT_EQ(last.bm, 128);
  EXPECT_EQ(last.bn, 256);
  Format tuned = Format(math, true, false, int(candidates[0].candidates.size()) - 1).sixteenBitChannelsLast();
  checkForward(kWideForward[0], true, true, 368, run, tuned);
}

// The 256 x 128 tile multiplied the other way round (CudaCodegenOptions::halfSwappedTile: the
// warpgroups' m64 rows are 64 filters each, n256 the tile's pixels; the stage's B rows first):
// forwards of 128 filters over 162 and 392 pixels (one partial, then two row tiles), 96 filters
// at stride 2 (a partial column tile), data gradients into 128 and 96 channels (four phases of
// a stride 2), as the model's choice, with the channel blocks outer, and without the option as
// the last candidate. An epilogue that read its fragments the unswapped way round, or a stage
// whose regions were not swapped, would store other sums.
const std::vector<Geometry> kSwappedForward = {
    {2, 128, 9, 9, 128, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {2, 64, 14, 14, 128, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {3, 64, 12, 12, 96, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
};
const std::vector<Geometry> kSwappedData = {
    {1, 128, 9, 9, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
    {2, 96, 8, 8, 128, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
};
void checkSwappedTiles(const Runner& run, TensorCoreMath math) {
  const Format swapped = Format(math, /*wgmma=*/true).swappedTiles();
  for (size_t i = 0; i < kSwappedForward.size(); ++i) {
    const CudaModuleSource module = moduleFor(*forwardGraph(kSwappedForward[i]), swapped);
    EXPECT_NE(module.source.find("shoal_wgmma_ss16_n256(acc"), std::string::npos) << describe(kSwappedForward[i]);
    checkForward(kSwappedForward[i], i != 1, true, 380 + i, run, swapped);
  }
  for (size_t i = 0; i < kSwappedData.size(); ++i) checkBackwardData(kSwappedData[i], false, 384 + i, run, swapped);
  checkForward(kSwappedForward[0], true, false, 386, run,
               Format(math, true).sixteenBitChannelsLast(false, /*reuse=*/true).swappedTiles());
  // Its ring of 4 reused (a pooled forward of 9 stages, one slice, 128 filters).
  const Geometry ring = {1, 64, 10, 10, 128, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}};
  checkForwardPool(ring, 387, run, swapped);
  const Format plain = Format(math, true).sixteenBitChannelsLast();
  const auto products = moduleFor(*forwardGraph(kSwappedForward[0]), plain).products;
  ASSERT_FALSE(products.empty());
  EXPECT_EQ(products[0].candidates.back().bm, 256);
  EXPECT_EQ(products[0].candidates.back().bn, 128);
  checkForward(kSwappedForward[0], true, true, 387, run,
               Format(math, true, false, int(products[0].candidates.size()) - 1).sixteenBitChannelsLast());
}

TEST(ConvTensorCore, SixteenBitSwappedTilesMatchFloat64WithinTheFormatsBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkSwappedTiles(onEmulator, TensorCoreMath::Bf16);
  checkForward(kSwappedForward[2], true, true, 388, onEmulator, Format(TensorCoreMath::Fp16, true).swappedTiles());
}

// The stem's 16-bit form (CudaCodegenOptions::halfStem): at most 4 channels through a padded
// [n, hp, wp, 4] copy, two kernel rows a stage. ResNet's 7 x 7 at stride 2 (odd extents: the
// padded copy's right and bottom edges; four stages, the last half zero weights), MobileNet's 3
// x 3 at stride 2 over 40 filters (a partial column tile), ConvNeXt's 4 x 4 at stride 4 over 4
// channels, one channel with row dilation 2 and uneven padding; pooled (fused_conv2d_pool);
// weight gradients of 64 and 128 filters, one in slices; fp16; TF32's forwards (fp32 copies). A copy read a chunk off
// (the second kernel row's run, a pixel's channels) or a window off by the padding would multiply other values.
const std::vector<Geometry> kStems = {
    {2, 3, 23, 21, 64, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}},
    {1, 3, 17, 16, 40, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {2, 4, 16, 16, 24, 4, 4, {4, 4}, {0, 0, 0, 0}, {1, 1}},
    {1, 1, 15, 14, 16, 5, 5, {2, 2}, {2, 1, 3, 2}, {2, 1}},
};
const std::vector<Geometry> kStemWeight = {
    {2, 3, 23, 21, 64, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}},
    {1, 3, 17, 16, 64, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
    {2, 4, 16, 16, 128, 4, 4, {4, 4}, {0, 0, 0, 0}, {1, 1}},
    {1, 1, 15, 14, 64, 5, 5, {2, 2}, {2, 1, 3, 2}, {2, 1}},
};
void checkStem(const Runner& run, TensorCoreMath math, bool every) {
  const Format f = Format(math, /*wgmma=*/true).stemCopies();
  const bool tf32 = math == TensorCoreMath::Tf32;  // fp32 copies, a kernel row a stage; forwards only
  for (size_t i = 0; i < kStems.size(); ++i) {
    if (!every && i % 2 == 1) continue;
    const std::string source = moduleFor(*forwardGraph(kStems[i]), f).source;
    EXPECT_NE(source.find(tf32 ? "_stem32(" : "_stem16("), std::string::npos) << describe(kStems[i]);
    EXPECT_NE(source.find(tf32 ? "shoal_wgmma_tf32_n" : "shoal_wgmma_ss16_n"), std::string::npos)
        << describe(kStems[i]);
    checkForward(kStems[i], i != 2, i != 1, 420 + i, run, f);
  }
  checkForwardPool(kStems[0], 425, run, f);
  if (every) checkForward(kStems[0], true, true, 427, run, f.producerWarps());  // copied by producer warps
  if (tf32) {
    // Any column stride (a kernel row's 128 bytes are aligned however it starts).
    checkForward({1, 3, 13, 12, 32, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}}, true, true, 426, run, f);
    return;
  }
  // Weight gradients (halfMN: x's padded copy and dy's channels-last copy) of 64 and 128 filters;
  // one over 2,048 pixels in slices (each slice's first pixel carried from its own).
  for (size_t i = 0; i < kStemWeight.size(); ++i) {
    if (!every && i % 2 == 1) continue;
    EXPECT_NE(moduleFor(*weightGradientGraph(kStemWeight[i]), f).source.find("_stem16("), std::string::npos)
        << describe(kStemWeight[i]);
    checkBackwardWeight(kStemWeight[i], 430 + i, run, f);
  }
  checkBackwardWeight(kStemWeight[0], 434, run, f.producerWarps());
  const Geometry sliced = {2, 3, 64, 64, 64, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}};
  const int candidate = slicedCandidate(sliced, f);
  ASSERT_GE(candidate, 0);
  checkBackwardWeight(sliced, 435, run, Format(math, true, false, candidate).stemCopies());
}

TEST(ConvTensorCore, SixteenBitStemMatchesFloat64WithinTheFormatsBounds) {
  // Off by default; never for 5 channels or more, an odd column stride or column dilation.
  const Format plain = Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast();
  EXPECT_EQ(moduleFor(*forwardGraph(kStems[0]), plain).source.find("_stem16("), std::string::npos);
  const Format stem = Format(TensorCoreMath::Bf16, true).stemCopies();
  for (const Geometry& g : {Geometry{1, 5, 16, 16, 32, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}},
                            Geometry{1, 3, 16, 16, 32, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}},
                            Geometry{1, 3, 16, 16, 32, 3, 3, {2, 2}, {2, 2, 2, 2}, {1, 2}}})
    EXPECT_EQ(moduleFor(*forwardGraph(g), stem).source.find("_stem16("), std::string::npos) << describe(g);
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkStem(onEmulator, TensorCoreMath::Bf16, /*every=*/true);
  checkStem(onEmulator, TensorCoreMath::Fp16, false);
  checkStem(onEmulator, TensorCoreMath::Tf32, true);
}

TEST(ConvTensorCore, SixteenBitWideTilesMatchFloat64WithinTheFormatsBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkWideTiles(onEmulator, TensorCoreMath::Bf16);
  checkForward(kWideForward[0], true, true, 369, onEmulator, Format(TensorCoreMath::Fp16, true).wideTiles());
}

// Producer warps (CudaCodegenOptions::halfProducerWarps): a third warpgroup copies every stage
// into a ring of 4-7 and hands them to the multiplying warpgroups through named barriers. The
// forwards and data gradients of the 16-bit suite (9 and 18 stages: the ring's slots reused;
// one stage; the phases of a stride 2), the slices of a candidate, the wide and swapped tiles;
// weight gradients (a 1 x 1 over 1,152 pixels: slices of five stages or more). On the emulator each thread
// runs until it waits, so a producer that did not wait for a slot's products before copying
// into it again would overwrite stages not yet multiplied.
// A producer-warps kernel's stages a slice beyond its ring's slots (from its source: `kStages =
// S` and `kBegin = slice * P`, P reduction steps of 64 a stage): > 0 where slots are reused.
int ringStagesPerSlice(const std::string& source) {
  const size_t ws = source.find("kThreads = 384");
  if (ws == std::string::npos) return -1;
  const size_t st = source.rfind("kStages = ", ws), sl = source.find("kBegin = slice * ", ws);
  if (st == std::string::npos || sl == std::string::npos) return -1;
  const int slots = std::stoi(source.substr(st + 10)), steps = std::stoi(source.substr(sl + 17));
  return (steps + 63) / 64 - slots;
}
void checkProducerWarps(const Runner& run, TensorCoreMath math, bool every) {
  const Format f = Format(math, /*wgmma=*/true).sixteenBitChannelsLast().producerWarps();
  const std::string source = moduleFor(*forwardGraph(kHalf[0]), f).source;
  EXPECT_NE(source.find("__launch_bounds__(384)"), std::string::npos);
  EXPECT_NE(source.find("shoal_bar_sync(1 + kStages + slot, kThreads)"), std::string::npos);
  // Pooled forwards (fused_conv2d_pool: one slice, whatever the grid) of 9 and 18 stages (the
  // 128 x 128 ring holds 6, the wide tile's 4): the slots reused, as the unpooled products of
  // small grids (cut into slices of a stage or two) never do.
  checkForwardPool(kRingForward[0], 389, run, f);
  if (every) {
    checkForwardPool(kRingForward[1], 388, run, f);
    checkForwardPool(kRingForward[2], 387, run, f.wideTiles());
  }
  for (size_t i = 0; i < kHalf.size(); ++i) {
    if (!every && i != 1) continue;
    checkForward(kHalf[i], i % 2 == 0, i != 1, 390 + i, run, f);
  }
  for (size_t i = 0; i < kHalfData.size(); ++i) {
    if (!every && i != 1) continue;
    checkBackwardData(kHalfData[i], i == 3, 395 + i, run, f);
  }
  if (!every) return;
  checkForward(kHalf[1], true, true, 399, run, Format(math, true, false, 2).sixteenBitChannelsLast().producerWarps());
  checkForward(kWideForward[0], true, true, 400, run, f.wideTiles());
  checkBackwardData(kWideData, false, 401, run, f.wideTiles());
  checkForward(kSwappedForward[1], false, true, 402, run, f.swappedTiles());
  // Weight gradients (halfMN: both operands MN-major); one in half the model's slices (a
  // candidate), each longer than the ring.
  const CudaModuleSource ring = moduleFor(*weightGradientGraph(kRingWeight), f);
  EXPECT_NE(ring.source.find("__launch_bounds__(384)"), std::string::npos);
  ASSERT_FALSE(ring.products.empty());
  const auto& cands = ring.products[0].candidates;
  int halved = -1;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].bm == cands[0].bm && cands[i].bn == cands[0].bn && cands[i].splits == (cands[0].splits + 1) / 2)
      halved = int(i);
  ASSERT_GE(halved, 1);
  const Format longer = Format(math, true, false, halved).sixteenBitChannelsLast().producerWarps();
  EXPECT_GT(ringStagesPerSlice(moduleFor(*weightGradientGraph(kRingWeight), longer).source), 0);
  checkBackwardWeight(kRingWeight, 403, run, longer);
  checkBackwardWeight(kHalfWeight[1], 404, run, f);
  checkBackwardWeight(kWideWeight[0], 405, run, f.wideTiles());
}

TEST(ConvTensorCore, SixteenBitProducerWarpsMatchFloat64WithinTheFormatsBounds) {
  // Off by default: 256 threads and the block's barrier.
  EXPECT_EQ(moduleFor(*forwardGraph(kHalf[0]), Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast())
                .source.find("shoal_bar_sync(1 + kStages"),
            std::string::npos);
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkProducerWarps(onEmulator, TensorCoreMath::Bf16, /*every=*/true);
  checkProducerWarps(onEmulator, TensorCoreMath::Fp16, false);
}

// The copy engine (CudaCodegenOptions::halfTma): a forward's stages as one im2col box of A (the
// block's pixels at a tap, zeros outside the image and past the last image) and one tile of the
// packed B, issued by one thread of one producer warp and completing on the slot's mbarrier --
// a data gradient's phases the same way over dy's copy, and a weight gradient's atoms each a box.
// The 16-bit suite's forwards (padding, a stride 2, a 1 x 1 at stride 2, dilation), pooled ones of
// 9 and 18 stages (the ring's slots and their mbarriers' phases reused), a candidate's slices, the
// wide and swapped tiles, and geometries that tell the bounding box's dimensions apart:
// asymmetric padding (the corners' W and H), a 3 x 1 at strides 1 and 2 (the traversal's), a
// 1 x 3 over 5 images of 5 x 3 pixels (rows of 128 pixels across images). The emulator lands a
// box only when a thread waits at its mbarrier, and fails a box into a stage a pending product
// reads, a phase that never completes, or one that lands more bytes than it expects.
const std::vector<Geometry> kTmaForward = {
    {2, 64, 9, 7, 24, 3, 3, {1, 1}, {0, 1, 2, 1}, {1, 1}},
    {3, 64, 5, 11, 64, 3, 1, {1, 2}, {1, 0, 1, 0}, {1, 1}},
    {5, 128, 5, 3, 72, 1, 3, {1, 1}, {0, 1, 0, 1}, {1, 1}},
};
void checkCopyEngine(const Runner& run, TensorCoreMath math, bool every) {
  const Format f = Format(math, /*wgmma=*/true).sixteenBitChannelsLast().copyEngine();
  const std::string source = moduleFor(*forwardGraph(kHalf[0]), f).source;
  EXPECT_NE(source.find("shoal_tma_im2col4(stage + 0, &amap"), std::string::npos);
  EXPECT_NE(source.find("SHOAL_TMAP(amap), SHOAL_TMAP(bmap)"), std::string::npos);
  EXPECT_NE(source.find("kThreads = 288"), std::string::npos);
  checkForwardPool(kRingForward[0], 440, run, f);
  for (size_t i = 0; i < kTmaForward.size(); ++i) checkForward(kTmaForward[i], i != 1, true, 441 + i, run, f);
  for (size_t i = 0; i < kHalf.size(); ++i) {
    if (!every && i != 1) continue;
    checkForward(kHalf[i], i % 2 == 0, i != 1, 445 + i, run, f);
  }
  if (!every) return;
  checkForwardPool(kRingForward[1], 450, run, f);
  checkForwardPool(kRingForward[2], 451, run, f.wideTiles());
  checkForward(kHalf[1], true, true, 452, run, Format(math, true, false, 2).sixteenBitChannelsLast().copyEngine());
  checkForward(kWideForward[1], true, true, 453, run, f.wideTiles());
  const Format swapped = f.swappedTiles();
  EXPECT_NE(moduleFor(*forwardGraph(kSwappedForward[1]), swapped).source.find("shoal_tma_im2col4(stage + 16384, &amap"),
            std::string::npos);
  checkForward(kSwappedForward[1], false, true, 454, run, swapped);
  checkForward(kSwappedForward[2], true, true, 455, run, swapped);
  // Two blocks an SM: three slots of 128 x 128, four of 128 x 64 (reused more often).
  const Format two = Format(math, true).sixteenBitChannelsLast().copyEngine(2);
  const std::string twoSource = moduleFor(*forwardGraph(kRingForward[1]), two).source;
  EXPECT_NE(twoSource.find("kStages = 3,"), std::string::npos);
  EXPECT_NE(twoSource.find("__launch_bounds__(288, 2)"), std::string::npos);
  checkForwardPool(kRingForward[1], 460, run, two);
  // Chosen (halfTmaBlocks 0, the default): two where a slice is at most 18 stages and the grid
  // fills two blocks an SM (layer 1 at batch 32: 784 blocks of 9 stages), else one (layer 4's
  // 72 stages; a grid of one block).
  const Format chosen = Format(math, true).sixteenBitChannelsLast().copyEngine(0);
  const std::vector<std::pair<Geometry, bool>> choices = {
      {{32, 64, 56, 56, 64, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}}, true},
      {{32, 512, 7, 7, 512, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}}, false},
      {kHalf[0], false}};
  for (const auto& [g, twoBlocks] : choices)
    EXPECT_EQ(moduleFor(*forwardGraph(g), chosen).source.find("__launch_bounds__(288, 2)") != std::string::npos,
              twoBlocks)
        << describe(g);
  checkForward(kHalf[3], true, true, 461, run, two);
  checkForward(kTmaForward[0], true, true, 462, run, two);
  // Data gradients: each phase's rows are its pixels, their corner the pixel at the phase's
  // last tap (stride 1; stride 2's four phases of 4, 2, 2 and 1 taps; a 1 x 1 at stride 2; a
  // transposed convolution with dilation), and the wide tile.
  EXPECT_NE(moduleFor(*dataGradientGraph(kHalfData[1]), f).source.find("shoal_tma_im2col4(stage"), std::string::npos);
  for (size_t i = 0; i < kHalfData.size(); ++i) checkBackwardData(kHalfData[i], i == 3, 456 + i, run, f);
  checkBackwardData(kWideData, false, 463, run, f.wideTiles());
  // Weight gradients (halfMN): a stage's 64 output pixels the corners of each A atom's box (its
  // own tap and channels), B's atoms tiles of dy's copy -- 126 pixels (a partial last stage),
  // stride 2, a 1 x 1 at stride 2, the wide tile, and one longer than the ring in slices.
  EXPECT_NE(moduleFor(*weightGradientGraph(kHalfWeight[1]), f).source.find("shoal_tma_tile2(stage + 16384, &bmap"),
            std::string::npos);
  for (size_t i = 0; i < kHalfWeight.size(); ++i) checkBackwardWeight(kHalfWeight[i], 464 + i, run, f);
  checkBackwardWeight(kWideWeight[1], 468, run, f.wideTiles());
  checkBackwardWeight(kRingWeight, 469, run, f);
  // TF32's channels-last forwards: fp32 rows of 32 channels, the same boxes.
  const Format tf32 = Format(TensorCoreMath::Tf32, true).tf32ChannelsLast().copyEngine();
  EXPECT_NE(moduleFor(*forwardGraph(kHalf[0]), tf32).source.find("shoal_tma_im2col4(stage"), std::string::npos);
  checkForward(kHalf[1], true, true, 457, run, tf32);
  checkForward(kTmaForward[0], true, true, 458, run, tf32);
  checkForwardPool(kRingForward[0], 459, run, tf32);
}

TEST(ConvTensorCore, SixteenBitCopyEngineMatchesFloat64WithinTheFormatsBounds) {
  // Off by default; past the engine's limits (a traversal stride of 9) the forward keeps its copies.
  const Format plain = Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast();
  EXPECT_EQ(moduleFor(*forwardGraph(kHalf[0]), plain).source.find("shoal_tma_im2col4(stage"), std::string::npos);
  const Geometry far = {1, 64, 19, 19, 64, 1, 1, {9, 9}, {0, 0, 0, 0}, {1, 1}};
  const CudaModuleSource past = moduleFor(*forwardGraph(far), plain.copyEngine());
  EXPECT_EQ(past.source.find("shoal_tma_im2col4(stage"), std::string::npos);
  for (const CudaStep& s : past.steps) EXPECT_TRUE(s.tensorMaps.empty()) << s.kernel;
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkForward(far, true, true, 439, onEmulator, plain.copyEngine());
  checkCopyEngine(onEmulator, TensorCoreMath::Bf16, /*every=*/true);
  checkCopyEngine(onEmulator, TensorCoreMath::Fp16, false);
}

// TF32 channels last (CudaCodegenOptions::tf32ChannelsLast): the forwards and data gradients of
// the 16-bit suite read fp32 channels-last copies 32 channels a stage row, through wgmma's TF32
// form from the 128-byte swizzle (the gathered operand truncated as the tensor cores do, the
// packed weights rounded: Format::truncates); a pooled one-slice forward (the ring reused), the
// wide and swapped tiles, producer warps and a candidate's slices; the weight gradients keep their TF32
// gathers (no transposed TF32 form), checked beside them. Off, TF32 gathers fp32 planes.
void checkTf32ChannelsLast(const Runner& run, bool every) {
  const Format f = Format(TensorCoreMath::Tf32, /*wgmma=*/true).tf32ChannelsLast();
  const CudaModuleSource module = moduleFor(*forwardGraph(kHalf[0]), f);
  EXPECT_NE(module.source.find("_cl16("), std::string::npos);
  EXPECT_NE(module.source.find("shoal_wgmma_tf32_n64(acc[0], shoal_wgmma_desc_add(ad"), std::string::npos);
  EXPECT_EQ(moduleFor(*weightGradientGraph(kHalfWeight[0]), f).source.find("cl16_dy("), std::string::npos);
  for (size_t i = 0; i < kHalf.size(); ++i) {
    if (!every && i != 1) continue;
    checkForward(kHalf[i], i % 2 == 0, i != 1, 410 + i, run, f);
  }
  for (size_t i = 0; i < kHalfData.size(); ++i) {
    if (!every && i != 1) continue;
    checkBackwardData(kHalfData[i], i == 3, 415 + i, run, f);
  }
  checkForwardPool(kRingForward[0], 419, run, f);
  if (!every) return;
  checkForward(kHalf[1], true, true, 420, run, Format(TensorCoreMath::Tf32, true, false, 2).tf32ChannelsLast());
  checkForward(kWideForward[0], true, true, 421, run,
               Format(TensorCoreMath::Tf32, true).tf32ChannelsLast().wideTiles());
  const Format swapped = Format(TensorCoreMath::Tf32, true).tf32ChannelsLast().swappedTiles();
  EXPECT_NE(moduleFor(*forwardGraph(kSwappedForward[0]), swapped).source.find("shoal_wgmma_tf32_n256(acc[0]"),
            std::string::npos);
  checkForward(kSwappedForward[0], true, true, 426, run, swapped);
  checkBackwardData(kSwappedData[1], false, 427, run, swapped);
  checkForward(kHalf[3], true, true, 422, run, f.producerWarps());
  checkForwardPool(kRingForward[1], 423, run, f.producerWarps());
  checkBackwardData(kHalfData[1], false, 424, run, f.producerWarps());
  checkBackwardWeight(kHalfWeight[1], 425, run, f);
}

TEST(ConvTensorCore, Tf32ChannelsLastConvolutionsMatchFloat64WithinTheFormatsBounds) {
  EXPECT_EQ(moduleFor(*forwardGraph(kHalf[0]), Format(TensorCoreMath::Tf32, true)).source.find("_cl16("),
            std::string::npos);
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkTf32ChannelsLast(onEmulator, /*every=*/true);
}

TEST(ConvTensorCore, SixteenBitChannelsLastConvolutionsMatchFloat64WithinTheFormatsBounds) {
  // Only where asked and where it applies: not without the option; TF32, mma.sync and channels that are
  // not 64s keep their gathers when it is on.
  for (const Format& f :
       {Format(TensorCoreMath::Bf16, true), Format(TensorCoreMath::Tf32, true).sixteenBitChannelsLast(),
        Format(TensorCoreMath::Bf16, false).sixteenBitChannelsLast()}) {
    const std::string source = moduleFor(*forwardGraph(kHalf[0]), f).source;
    EXPECT_EQ(source.find("_cl16("), std::string::npos) << f.name();
  }
  EXPECT_EQ(moduleFor(*forwardGraph(kGeometries[4]), Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast())
                .source.find("_cl16("),
            std::string::npos);
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkSixteenBitChannelsLast(onEmulator, TensorCoreMath::Bf16, /*candidates=*/true);
  checkSixteenBitChannelsLast(onEmulator, TensorCoreMath::Fp16, false);
  // Overlapped stages (CudaCodegenOptions::halfStageOverlap): four stages, two ahead.
  checkSixteenBitChannelsLast(onEmulator, TensorCoreMath::Bf16, /*candidates=*/false, /*overlap=*/true);
}

// The reduction ordered (block of 64 channels, tap, channel) with A's copies through L1
// (CudaCodegenOptions::halfTapReuse): the forwards and data gradients above (128 channels and
// 128 filters: two blocks, so an order that disagrees with the packed weights' pairs the wrong
// taps), bf16 and fp16, and the wide tile with it.
TEST(ConvTensorCore, SixteenBitChannelBlocksOuterMatchFloat64WithinTheFormatsBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  const Format f = Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast(false, true);
  const std::string source = moduleFor(*forwardGraph(kHalf[1]), f).source;
  EXPECT_NE(source.find("shoal_cp_async_f32x4_cached(stage"), std::string::npos);
  EXPECT_EQ(moduleFor(*forwardGraph(kHalf[1]), Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast())
                .source.find("shoal_cp_async_f32x4_cached(stage"),
            std::string::npos);
  checkSixteenBitChannelsLast(onEmulator, TensorCoreMath::Bf16, /*candidates=*/false, false, /*tapReuse=*/true);
  checkSixteenBitChannelsLast(onEmulator, TensorCoreMath::Fp16, false, false, true);
  Format wide = f.wideTiles();
  checkForward(kWideForward[1], true, true, 370, onEmulator, wide);
  checkBackwardData(kWideData, false, 371, onEmulator, wide);
}

// Exact fp32 on the CUDA cores (TensorCoreMath::Off): the tensor-core kernels' gathers, stages
// and tiles, each output the fp32 FMAs of its products (simtPath), so within fp32
// accumulation's bound of float64 -- every geometry, both tiles and half the slices (the
// autotuner's second and third candidates), channels last, and the pooled stem.
TEST(ConvTensorCore, ExactFp32ProductsMatchFloat64WithinFp32Bounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkAll(onEmulator, TensorCoreMath::Off);
  checkCandidates(onEmulator, TensorCoreMath::Off, /*wgmma=*/false);
  checkChannelsLast(onEmulator, Format(TensorCoreMath::Off, false, true), /*every=*/false);
}

// The kernel text of `name` in `source` (from its __global__ line to the next one).
std::string kernelText(const std::string& source, const std::string& name) {
  const size_t at = source.find(" " + name + "(");
  if (at == std::string::npos) return "";
  const size_t begin = source.rfind("__global__", at), end = source.find("__global__", at);
  return source.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// Which exact fp32 convolutions take the GEMM: those of at least fp32ConvGemmMinMacs
// multiply-adds (output pixels x filters x channels x taps) and of filters and channels x taps
// both at least fp32ConvGemmMinWidth, none when the first is negative; the kernel multiplies
// by fmaf, with no tensor-core instruction.
TEST(ConvTensorCore, ExactFp32TakesTheGemmFromItsThreshold) {
  const Geometry& gm = kGeometries[4];  // 2 x 4 x 3 output pixels, 24 filters, 16 x 9 reduction
  const int64_t macs = gm.n * gm.oh() * gm.ow() * gm.o * gm.c * gm.kh * gm.kw;
  for (const auto& graph : {forwardGraph(gm), weightGradientGraph(gm)}) {
    auto program = compileProgram(graph->clone());
    ASSERT_TRUE(program) << program.error().str();
    auto products = [&](int64_t minMacs, int64_t minWidth = 24) {
      CudaCodegenOptions o;
      o.fp32ConvGemmMinMacs = minMacs;
      o.fp32ConvGemmMinWidth = minWidth;
      auto src = generateCudaSource(*program, o);
      EXPECT_TRUE(src) << (src ? "" : src.error().message());
      std::vector<std::string> names;
      if (src)
        for (const std::string& k : src->kernelNames)
          if (isProductKernel(k)) names.push_back(kernelText(src->source, k));
      return names;
    };
    SCOPED_TRACE(graph->name());
    const auto at = products(macs);
    ASSERT_EQ(at.size(), 1u);
    EXPECT_NE(at[0].find("fmaf("), std::string::npos);
    EXPECT_EQ(at[0].find("shoal_ldmatrix_x4("), std::string::npos);
    EXPECT_EQ(at[0].find("shoal_warp_mma"), std::string::npos);
    EXPECT_EQ(at[0].find("shoal_wgmma"), std::string::npos);
    EXPECT_EQ(at[0].find("shoal_to_tf32"), std::string::npos);
    EXPECT_TRUE(products(macs + 1).empty());
    EXPECT_TRUE(products(-1).empty());
    EXPECT_TRUE(products(macs, 25).empty());  // 24 filters
    EXPECT_TRUE(products(0, 64).empty());     // codegen's default width
    EXPECT_EQ(products(0, 0).size(), 1u);
  }
}

TEST(ConvTensorCore, Bfloat16AndFloat16MatchFloat64WithinTheirBounds) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkSome(onEmulator, TensorCoreMath::Bf16);
  checkSome(onEmulator, TensorCoreMath::Fp16);
}

// The weight gradient's two ways of gathering x. Column-wise (CudaCodegenOptions::
// weightGradientColumns, the default; every geometry above through checkAll and checkWgmma)
// for kernels of up to 63 taps (the stem's 49 here too); by rows -- a thread's 8 consecutive
// output pixels of one (channel, tap) row, grouped as kGeometries' comment lists -- with the
// option off, and for more taps (9 x 9) either way. Every geometry's weight gradient, the split
// one's, the stem's and the 9 x 9's in one module (one host compile each), by rows and
// column-wise, TF32 on wgmma (mma.sync's copies are the same code).
TEST(ConvTensorCore, WeightGradientGathersBothWaysMatchFloat64) {
  std::vector<Geometry> all = kGeometries;
  all.push_back(kSplit);
  all.push_back(kStem);
  all.push_back(kWide);
  const Location loc{"tc.mmd", 1, 1, "dw"};
  Graph g("tc_dw_rows");
  TensorMap inputs;
  std::mt19937_64 rng(61);
  for (size_t i = 0; i < all.size(); ++i) {
    const Geometry& gm = all[i];
    const std::string n = std::to_string(i);
    Value* x = layers::input(g, "x" + n, {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
    Value* dy = layers::input(g, "dy" + n, {DType::F32, {gm.n, gm.o, gm.oh(), gm.ow()}}, loc);
    Attrs a = gm.attrs();
    a.set("weight_shape", std::vector<int64_t>{gm.o, gm.c, gm.kh, gm.kw});
    auto y = layers::addOp(g, OpKind::Conv2dBackwardWeight, {x, dy}, a, "dw" + n, loc);
    ASSERT_TRUE(y.has_value()) << y.error().str();
    layers::output(g, *y, "y" + n, loc);
    inputs["x" + n] = tcRandomTensor({gm.n, gm.c, gm.h, gm.w}, rng);
    inputs["dy" + n] = tcRandomTensor({gm.n, gm.o, gm.oh(), gm.ow()}, rng);
  }
  auto program = compileProgram(g.clone());
  ASSERT_TRUE(program) << program.error().str();
  // Which way each product gathers: a column-wise one declares its rows' offsets once.
  auto columnWise = [&](bool option) {
    CudaCodegenOptions tc;
    tc.tensorCores = TensorCoreMath::Tf32;
    tc.weightGradientColumns = option;
    auto src = generateCudaSource(*program, tc);
    EXPECT_TRUE(src) << (src ? "" : src.error().message());
    auto count = [&](const std::string& text) {
      size_t n = 0;
      for (size_t at = src ? src->source.find(text) : std::string::npos; at != std::string::npos;
           at = src->source.find(text, at + 1))
        ++n;
      return n;
    };
    // Column-wise kernels with 32-bit masks keep to 128 registers: two blocks an SM.
    return std::pair(count("int aRoff["), count("__launch_bounds__(256, 2)"));
  };
  EXPECT_EQ(columnWise(true), std::pair(all.size() - 1, all.size() - 2)) << "all but the 9 x 9; bounded all but it and the stem";
  EXPECT_EQ(columnWise(false), std::pair(size_t(0), size_t(0)));
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  for (bool columns : {false, true}) {
    const Format f(TensorCoreMath::Tf32, /*wgmma=*/true);
    SCOPED_TRACE(std::string(columns ? "column-wise, " : "by rows, ") + f.name());
    CudaCodegenOptions tc;
    tc.tensorCores = f.math;
    tc.wgmma = f.wgmma;
    tc.weightGradientColumns = columns;
    auto emu = test::EmulatedExecutable::create(*program, tc);
    ASSERT_TRUE(emu) << emu.error().str();
    auto out = (*emu)->run(inputs);
    ASSERT_TRUE(out) << out.error().str();
    for (size_t i = 0; i < all.size(); ++i) {
      const Geometry& gm = all[i];
      const std::string n = std::to_string(i);
      SCOPED_TRACE("backward weight " + describe(gm));
      const ConvSums ref = weightGradientSums(gm, inputs["x" + n], inputs["dy" + n], f);
      const Tensor& got = out->at("y" + n);
      ASSERT_EQ(got.shape(), (Shape{gm.o, gm.c, gm.kh, gm.kw}));
      expectWithinFormat(got, ref.want, ref.rounded, ref.mag, gm.n * gm.oh() * gm.ow(), f);
    }
  }
}

// Forwards that copy their taps in pairs (CudaCodegenOptions::convPairedTaps): few channels,
// stride 2 across an even width, at most 8 taps a row (7 where the left padding is odd). The
// stem (7 taps, padding 3: tap 0 alone, a hole, three pairs), 5 taps with even padding (the
// last pair's second element zero-filled, a pair of holes), 3 taps with odd padding (holes 4-7),
// 8 taps with no padding (four pairs), and stride 1 down with 6 taps (the last pair half
// copied); partial and several row tiles. kUnpaired: an odd width, and 8 taps with odd padding
// (9 elements: one a tap).
const std::vector<Geometry> kPaired = {
    {2, 3, 20, 20, 8, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}},   {1, 3, 12, 16, 10, 5, 5, {2, 2}, {2, 2, 2, 2}, {1, 1}},
    {3, 4, 9, 10, 12, 3, 3, {2, 2}, {1, 1, 0, 0}, {1, 1}},   {1, 2, 10, 14, 8, 8, 8, {2, 2}, {0, 0, 1, 1}, {1, 1}},
    {1, 3, 6, 12, 8, 2, 6, {1, 2}, {0, 1, 0, 1}, {1, 1}},    {2, 3, 26, 34, 8, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}},
};
const std::vector<Geometry> kUnpaired = {
    {1, 3, 10, 11, 8, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}},
    {1, 2, 10, 14, 8, 8, 8, {2, 2}, {3, 3, 3, 3}, {1, 1}},
};

// Every geometry's forward (conv2d with a bias; a relu after every second) in one module, its
// operands and inputs: x<i>, c<i>.weight, c<i>.bias, output y<i>.
struct ForwardsModule {
  std::vector<Geometry> all;
  Program program;
  TensorMap params, inputs;
  static bool relu(size_t i) { return i % 2 == 1; }
};
ForwardsModule forwardsModule(const std::vector<Geometry>& all, uint64_t seed) {
  const Location loc{"tc.mmd", 1, 1, "c"};
  Graph g("tc_forwards");
  ForwardsModule m;
  m.all = all;
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < all.size(); ++i) {
    const Geometry& gm = all[i];
    const std::string n = std::to_string(i);
    Value* x = layers::input(g, "x" + n, {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
    Value* w = layers::param(g, "c" + n + ".weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc);
    Value* b = layers::param(g, "c" + n + ".bias", {DType::F32, {gm.o}}, "zeros", loc);
    Value* y = *layers::addOp(g, OpKind::Conv2d, {x, w, b}, gm.attrs(), "c" + n, loc);
    if (ForwardsModule::relu(i)) y = *layers::addOp(g, OpKind::Relu, {y}, {}, "r" + n, loc);
    layers::output(g, y, "y" + n, loc);
    m.inputs["x" + n] = tcRandomTensor({gm.n, gm.c, gm.h, gm.w}, rng);
    m.params["c" + n + ".weight"] = tcRandomTensor({gm.o, gm.c, gm.kh, gm.kw}, rng);
    m.params["c" + n + ".bias"] = tcRandomTensor({gm.o}, rng);
  }
  auto program = compileProgram(g.clone());
  EXPECT_TRUE(program) << (program ? "" : program.error().str());
  if (program) m.program = std::move(*program);
  return m;
}

// Runs a module's program with the parameters, then the inputs; its outputs.
using ModuleRunner = std::function<Expected<TensorMap>(const Program&, const TensorMap&, const TensorMap&, const Format&)>;
Expected<TensorMap> moduleOnEmulator(const Program& program, const TensorMap& params, const TensorMap& inputs,
                                     const Format& f) {
  CudaCodegenOptions tc;
  tc.tensorCores = f.math;
  tc.wgmma = f.wgmma;
  auto emu = test::EmulatedExecutable::create(program, tc);
  if (!emu) return Unexpected(emu.error());
  (*emu)->writePersistent(params);
  return (*emu)->run(inputs);
}
Expected<TensorMap> moduleOnGpu(const Program& program, const TensorMap& params, const TensorMap& inputs,
                                const Format& f) {
  CudaExecutableOptions o;
  o.tensorCores = f.math;
  o.wgmma = f.wgmma;
  auto exe = CudaExecutable::create(cloneProgram(program), o);
  if (!exe) return Unexpected(exe.error());
  if (auto ok = (*exe)->writePersistent(params); !ok) return Unexpected(ok.error());
  return (*exe)->run(inputs);
}

// The paired forwards against float64 within the format's bounds; then with a NaN and an
// infinity in each image (column 4, even: where a pair shifted one tap left would start;
// column w - 3, odd: where a pair copied whole past the kernel row would end),
// an output is not finite exactly where its window reads one of them (the relu-free ones:
// relu takes NaN to 0) -- the hole before an odd first tap is never the pixel before the
// window.
void checkPairedTaps(const ModuleRunner& run, const Format& f) {
  SCOPED_TRACE(f.name());
  ForwardsModule m = forwardsModule(kPaired, 91);
  auto out = run(m.program, m.params, m.inputs, f);
  ASSERT_TRUE(out) << out.error().str();
  for (size_t i = 0; i < m.all.size(); ++i) {
    const Geometry& gm = m.all[i];
    const std::string n = std::to_string(i);
    SCOPED_TRACE("forward " + describe(gm));
    const Tensor bias = m.params.at("c" + n + ".bias");
    const ConvSums ref = convSums(gm, m.inputs.at("x" + n), m.params.at("c" + n + ".weight"), &bias,
                                  ForwardsModule::relu(i), f);
    expectWithinFormat(out->at("y" + n), ref.want, ref.rounded, ref.mag, gm.c * gm.kh * gm.kw, f);
  }
  TensorMap poisoned = m.inputs;
  for (size_t i = 0; i < m.all.size(); ++i) {
    const Geometry& gm = m.all[i];
    Tensor& x = poisoned.at("x" + std::to_string(i));
    for (int64_t img = 0; img < gm.n; ++img) {
      x.set(((img * gm.c + 0) * gm.h + gm.h / 2) * gm.w + 4, std::nan(""));
      x.set(((img * gm.c + gm.c - 1) * gm.h + gm.h - 1) * gm.w + gm.w - 3, INFINITY);
    }
  }
  auto bad = run(m.program, m.params, poisoned, f);
  ASSERT_TRUE(bad) << bad.error().str();
  for (size_t i = 0; i < m.all.size(); ++i) {
    if (ForwardsModule::relu(i)) continue;
    const Geometry& gm = m.all[i];
    const std::string n = std::to_string(i);
    SCOPED_TRACE("non-finite inputs, forward " + describe(gm));
    const Tensor& x = poisoned.at("x" + n);
    std::vector<char> touched(size_t(gm.n * gm.o * gm.oh() * gm.ow()), 0);
    forEachTap(gm, [&](int64_t xi, int64_t, int64_t yi) {
      if (!std::isfinite(x.at(xi))) touched[size_t(yi)] = 1;
    });
    const Tensor& y = bad->at("y" + n);
    int64_t nonFinite = 0;
    for (int64_t j = 0; j < y.numElements(); ++j) {
      nonFinite += touched[size_t(j)];
      ASSERT_EQ(!std::isfinite(y.at(j)), bool(touched[size_t(j)])) << "at flat index " << j << ": got " << y.at(j);
    }
    EXPECT_GT(nonFinite, 0);
  }
}

// Which forwards pair their taps: every kPaired one with the option on (its 8-byte copies, and
// holes where a group has some), no kUnpaired one, none with it off; then the paired kernels
// on the emulator: mma.sync and wgmma in TF32, wgmma in bfloat16 (its A converted from the same
// stage).
TEST(ConvTensorCore, PairedTapsMatchFloat64AndLeakNoNaN) {
  auto pairs = [](const Geometry& gm, bool option) {
    auto program = compileProgram(forwardGraph(gm)->clone());
    EXPECT_TRUE(program);
    if (!program) return std::pair(false, false);
    CudaCodegenOptions tc;
    tc.tensorCores = TensorCoreMath::Tf32;
    tc.convPairedTaps = option;
    auto src = generateCudaSource(*program, tc);
    EXPECT_TRUE(src) << (src ? "" : src.error().message());
    if (!src) return std::pair(false, false);
    const std::string body = src->source.substr(src->source.find("_tc("));
    return std::pair(body.find("shoal_cp_async_f32x2(") != std::string::npos,
                     body.find("the gathers' holes") != std::string::npos);
  };
  for (size_t i = 0; i < kPaired.size(); ++i) {
    SCOPED_TRACE(describe(kPaired[i]));
    EXPECT_EQ(pairs(kPaired[i], true), std::pair(true, i != 3)) << "paired; holes but for 8 taps from an even start";
    EXPECT_EQ(pairs(kPaired[i], false), std::pair(false, false));
  }
  for (const Geometry& gm : kUnpaired) EXPECT_EQ(pairs(gm, true), std::pair(false, false)) << describe(gm);
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  checkPairedTaps(moduleOnEmulator, TensorCoreMath::Tf32);
  checkPairedTaps(moduleOnEmulator, Format(TensorCoreMath::Tf32, /*wgmma=*/true));
  checkPairedTaps(moduleOnEmulator, Format(TensorCoreMath::Bf16, /*wgmma=*/true));
}

// Each tensor-core product's step carries the floating-point operations of the convolution it
// computes (CudaStep::flops, the profile's achieved rate): 2 · output pixels · filters ·
// channels · taps for the forward -- not the stem-like reduction's padding to rows of 8 taps
// -- and for the weight gradient; the data gradient's phase GEMMs at stride 1 add up to the
// same (every tap of every pixel, the border's out-of-image ones included).
TEST(ConvTensorCore, ProductStepsCountTheConvolutionsOperations) {
  const Geometry stem = {2, 3, 20, 20, 8, 7, 7, {2, 2}, {3, 3, 3, 3}, {1, 1}};
  const Geometry same = {2, 16, 9, 9, 24, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}};
  auto productFlops = [](const Graph& g) {
    double total = 0;
    for (const CudaStep& st : moduleFor(g, TensorCoreMath::Tf32).steps) {
      EXPECT_EQ(st.flops > 0, isProductKernel(st.kernel)) << st.kernel;
      total += st.flops;
    }
    return total;
  };
  auto convFlops = [](const Geometry& gm) { return 2.0 * double(gm.n * gm.oh() * gm.ow() * gm.o * gm.c * gm.kh * gm.kw); };
  const Location loc{"tc.mmd", 1, 1, "c"};
  for (const Geometry& gm : {stem, same}) {
    SCOPED_TRACE(describe(gm));
    EXPECT_EQ(productFlops(*forwardGraph(gm)), convFlops(gm));
    EXPECT_EQ(productFlops(*weightGradientGraph(gm)), convFlops(gm));
  }
  Graph dx("tc_flops_dx");
  Value* dy = layers::input(dx, "dy", {DType::F32, {same.n, same.o, same.oh(), same.ow()}}, loc);
  Value* w = layers::param(dx, "d.weight", {DType::F32, {same.o, same.c, same.kh, same.kw}}, "zeros", loc);
  Attrs a = same.attrs();
  a.set("input_shape", std::vector<int64_t>{same.n, same.c, same.h, same.w});
  layers::output(dx, *layers::addOp(dx, OpKind::Conv2dBackwardData, {dy, w}, a, "d", loc), "y", loc);
  EXPECT_EQ(productFlops(dx), convFlops(same));
}

// Each tensor-core product lists the tiles it could take (CudaModuleSource::products), the cost
// model's first; a tuning variant takes its candidate (the model's where it has fewer); an
// autotuner's choice (productTiles, by kernel) is taken, and one that is not a candidate is an
// error naming the kernel. A 3 x 3 forward of 162 pixels by 24 filters over 144 channel-taps
// (at least 64 a slice, kConvMinSlice): one tile either way, 9 steps of 16 -- one slice costs
// 9 + 6, two 5 + 6 + 2 * 162 * 24 / 187500 (the cost model's, codegen/cuda_igemm_tiles.cpp), so two; four would be
// slices shorter than 64.
TEST(ConvTensorCore, ProductsListTheirCandidateTilesAndTakeTheOneChosen) {
  const Geometry gm = {2, 16, 9, 9, 24, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}};
  const Location loc{"tc.mmd", 1, 1, "c"};
  Graph g("tc_tiles");
  Value* x = layers::input(g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  Value* w = layers::param(g, "c.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc);
  layers::output(g, *layers::addOp(g, OpKind::Conv2d, {x, w}, gm.attrs(), "c", loc), "y", loc);
  const std::vector<ProductTile> want = {{256, 64, 2}, {128, 128, 2}, {256, 64, 1}};
  auto gridOf = [](const CudaModuleSource& m, const std::string& kernel) {
    for (const CudaStep& st : m.steps)
      if (st.kernel == kernel) return std::pair<unsigned, unsigned>(st.grid[0], st.grid[1]);
    return std::pair<unsigned, unsigned>(0, 0);
  };
  for (int variant : {-1, 0, 1, 2, 3}) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    const CudaModuleSource m = moduleFor(g, Format(TensorCoreMath::Tf32, true, false, variant));
    ASSERT_EQ(m.products.size(), 1u);
    const CudaProduct& p = m.products[0];
    EXPECT_EQ(p.candidates, want);
    EXPECT_EQ(p.chosen, want[variant == 1 || variant == 2 ? size_t(variant) : 0]);
    EXPECT_TRUE(isProductKernel(p.kernel)) << p.kernel;
    // Row tiles times slices, column tiles: 162 rows in 1 (256) or 2 (128) row tiles.
    const auto grid = gridOf(m, p.kernel);
    EXPECT_EQ(grid.first, unsigned((p.chosen.bm == 256 ? 1 : 2) * p.chosen.splits));
    EXPECT_EQ(grid.second, 1u);
    const bool sums = std::any_of(m.kernelNames.begin(), m.kernelNames.end(),
                                  [](const std::string& k) { return k.ends_with("_tc_sum"); });
    EXPECT_EQ(sums, p.chosen.splits > 1);
  }
  auto program = compileProgram(g.clone());
  ASSERT_TRUE(program);
  CudaCodegenOptions tc;
  tc.tensorCores = TensorCoreMath::Tf32;
  const std::string kernel = moduleFor(g, TensorCoreMath::Tf32).products.at(0).kernel;
  tc.productTiles[kernel] = {128, 128, 2};
  auto chosen = generateCudaSource(*program, tc);
  ASSERT_TRUE(chosen) << chosen.error().message();
  EXPECT_EQ(chosen->products.at(0).chosen, (ProductTile{128, 128, 2}));
  EXPECT_EQ(gridOf(*chosen, kernel).first, 4u);
  tc.productTiles[kernel] = {128, 128, 3};
  auto bad = generateCudaSource(*program, tc);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("tile 128x128/3 for kernel " + kernel + " is not one of its candidates "
                                       "(256x64/2, 128x128/2, 256x64/1)"),
            std::string::npos)
      << bad.error().message();
}

// Exact fp32 chooses between the 128 x 64 tile at two blocks an SM and the tensor cores' 128 x
// 128 at one by their grid cost (simtGridCost, codegen/cuda_igemm_tiles.cpp), each in 9 + 6
// steps (16 channels x 9 taps in one slice; two, the third candidate, add their sums). At batch 32, 28 x
// 28 pixels by 128 filters: 196 blocks of 128 x 128 are two waves of 132, 30; 392 of 128 x 64
// one wave of 264 and a last of 128 blocks (at most one an SM), (1 + 0.63) x 15 x 1.07 = 26.2:
// 128 x 64. At batch 256: 1568 blocks, 12 waves, 180; 3136 blocks, 11 waves and a last of 232,
// 12 x 15 x 1.07 = 192.6: 128 x 128. The 128 x 64 kernel is bounded to two blocks an SM.
TEST(ConvTensorCore, ExactFp32ChoosesItsTileByTheGridsCost) {
  const Location loc{"tc.mmd", 1, 1, "c"};
  for (const int64_t batch : {32, 256}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Geometry gm = {batch, 16, 28, 28, 128, 3, 3, {1, 1}, {1, 1, 1, 1}, {1, 1}};
    Graph g("tc_simt_tiles");
    Value* x = layers::input(g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
    Value* w = layers::param(g, "c.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc);
    layers::output(g, *layers::addOp(g, OpKind::Conv2d, {x, w}, gm.attrs(), "c", loc), "y", loc);
    const CudaModuleSource m = moduleFor(g, TensorCoreMath::Off);
    ASSERT_EQ(m.products.size(), 1u);
    const ProductTile simt{128, 64, 1}, square{128, 128, 1};
    const std::vector<ProductTile> want = batch == 32 ? std::vector{simt, square, ProductTile{128, 64, 2}}
                                                      : std::vector{square, simt, ProductTile{128, 128, 2}};
    EXPECT_EQ(m.products[0].candidates, want);
    EXPECT_EQ(m.products[0].chosen, want[0]);
    const std::string text = kernelText(m.source, m.products[0].kernel);
    EXPECT_EQ(text.find("__launch_bounds__(256, 2)") != std::string::npos, batch == 32) << text.substr(0, 200);
    EXPECT_NE(text.find("fmaf("), std::string::npos);
  }
}

// The cost model's choices for ResNet-18's shapes that the H200 measurements decided
// (docs/PERF.md, 2026-12-02; the model in codegen/cuda_igemm_tiles.cpp, splitsFor, in units
// of a 16-step): forwards count waves of one block an SM (132), weight gradients two (264).
//  - layer 4's 3 x 3 forward at batch 256: 12544 x 512 outputs, 392 tiles of 128 x 128, 288
//    steps: one slice 3 waves x (288 + 6) = 882, two 6 x (144 + 6) + 2 * 12544 * 512 / 187500
//    = 968: one (waves of 264 made it two, measured 0.496 ms against one slice's 0.370);
//  - layer 3's at batch 32: 6272 x 256, 98 tiles, 144 steps: one slice 150, two 2 x 78 + 17: one;
//  - layer 4's weight gradient at batch 128: 4608 x 512, 144 tiles, 392 steps: one slice 398,
//    two 2 x 202 + 25 = 429, three 2 x 137 + 38 = 312, four 3 x 104 + 50 = 362: three;
//  - layer 1's at batch 128: 576 x 64 (256 x 64 tiles: 3), 25088 steps: 88 slices fill one
//    wave of 264 (waves of 132 gave 44, and the training step 18.8 -> 22.5 ms).
TEST(ConvTensorCore, CostModelTakesTheMeasuredSlices) {
  auto chosen = [](const Graph& g) {
    const CudaModuleSource m = moduleFor(g, Format(TensorCoreMath::Tf32, true, false));
    return m.products.empty() ? ProductTile{} : m.products[0].chosen;
  };
  auto forward = [&](const Geometry& gm) { return chosen(*forwardGraph(gm)); };
  auto weightGradient = [&](const Geometry& gm) { return chosen(*weightGradientGraph(gm)); };
  const std::vector<int64_t> one = {1, 1}, pad = {1, 1, 1, 1};
  EXPECT_EQ(forward({256, 512, 7, 7, 512, 3, 3, one, pad, one}), (ProductTile{128, 128, 1}));
  EXPECT_EQ(forward({32, 256, 14, 14, 256, 3, 3, one, pad, one}), (ProductTile{128, 128, 1}));
  EXPECT_EQ(weightGradient({128, 512, 7, 7, 512, 3, 3, one, pad, one}), (ProductTile{128, 128, 3}));
  EXPECT_EQ(weightGradient({128, 64, 56, 56, 64, 3, 3, one, pad, one}), (ProductTile{256, 64, 88}));
}

TEST(ConvTensorCore, ProductTilesReadBackWhatTheyWrite) {
  for (const ProductTile& t : {ProductTile{128, 128, 1}, ProductTile{256, 64, 12}}) {
    EXPECT_EQ(ProductTile::parse(t.describe()), t) << t.describe();
  }
  EXPECT_EQ((ProductTile{256, 64, 3}.describe()), "256x64/3");
  for (const char* bad : {"", "128x128", "128x128/", "128x128/0", "128x128/2 ", " 128x128/2", "128*128/2", "-1x64/1",
                          "128x128/2/1", "128x128/99999999999999999999"})
    EXPECT_FALSE(ProductTile::parse(bad)) << bad;
}

// Inference prepares the weights' packing once (a `prepare` step into the prepared region)
// and again only after the parameters were written; the convolution then matches the step
// that packs them into scratch every run bit for bit, and float64 within TF32's bounds for
// each set of weights. (CudaCodegen.TensorCoreConvolutionsCompileWithNvrtc: a training step
// keeps its packing in the step.)
TEST(ConvTensorCore, PreparedWeightsAreMadeOnceAndAgainAfterAWrite) {
  if (!test::haveHostCompiler()) GTEST_SKIP() << "no host C++ compiler to build the emulated module";
  const Geometry& gm = kGeometries[0];
  Graph g("tc_prepared");
  const Location loc{"tc.mmd", 1, 1, "c"};
  Value* x = layers::input(g, "x", {DType::F32, {gm.n, gm.c, gm.h, gm.w}}, loc);
  Value* w = layers::param(g, "c.weight", {DType::F32, {gm.o, gm.c, gm.kh, gm.kw}}, "zeros", loc);
  Value* bias = layers::param(g, "c.bias", {DType::F32, {gm.o}}, "zeros", loc);
  auto y = layers::addOp(g, OpKind::Conv2d, {x, w, bias}, gm.attrs(), "c", loc);
  ASSERT_TRUE(y.has_value()) << y.error().str();
  layers::output(g, *y, "y", loc);
  auto program = compileProgram(g.clone());
  ASSERT_TRUE(program) << program.error().str();
  CudaCodegenOptions tc;
  tc.tensorCores = TensorCoreMath::Tf32;
  CudaCodegenOptions everyRun = tc;
  everyRun.prepareParameters = false;
  auto prepared = test::EmulatedExecutable::create(*program, tc);
  auto packed = test::EmulatedExecutable::create(*program, everyRun);
  ASSERT_TRUE(prepared && packed);
  auto prepareSteps = [](const CudaModuleSource& m) {
    return std::count_if(m.steps.begin(), m.steps.end(), [](const CudaStep& s) { return s.prepare; });
  };
  EXPECT_EQ(prepareSteps((*prepared)->module()), 1);
  EXPECT_GT((*prepared)->module().preparedBytes, 0);
  EXPECT_EQ(prepareSteps((*packed)->module()), 0);
  EXPECT_EQ((*packed)->module().preparedBytes, 0);
  EXPECT_LT((*prepared)->module().scratchBytes, (*packed)->module().scratchBytes);
  EXPECT_NE((*prepared)->module().source.find("(prepares parameters: runs when they change, not every step)"),
            std::string::npos);

  std::mt19937_64 rng(61);
  const Tensor xt = tcRandomTensor({gm.n, gm.c, gm.h, gm.w}, rng);
  int expectedPrepares = 0;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "first weights" : "weights written again");
    const Tensor wt = tcRandomTensor({gm.o, gm.c, gm.kh, gm.kw}, rng), bt = tcRandomTensor({gm.o}, rng);
    (*prepared)->writePersistent({{"c.weight", wt}, {"c.bias", bt}});
    (*packed)->writePersistent({{"c.weight", wt}, {"c.bias", bt}});
    ++expectedPrepares;
    for (int run = 0; run < 2; ++run) {
      auto got = (*prepared)->run({{"x", xt}});
      auto want = (*packed)->run({{"x", xt}});
      ASSERT_TRUE(got && want);
      EXPECT_EQ(got->at("y").toDoubles(), want->at("y").toDoubles());
      EXPECT_EQ((*prepared)->prepareRuns(), expectedPrepares);
      const ConvSums ref = convSums(gm, xt, wt, &bt, false, TensorCoreMath::Tf32);
      expectWithinFormat(got->at("y"), ref.want, ref.rounded, ref.mag, gm.c * gm.kh * gm.kw, TensorCoreMath::Tf32);
    }
  }

}

// The same on a GPU: the real mma.sync (sm_80 and later) and, on an sm_90 device, wgmma for
// TF32 (the device's own choice) against the same bounds -- and mma.sync's TF32 there too.
void checkAllOnGpu(TensorCoreMath math) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  const bool wgmma = gpuUsesWgmma();
  checkAll(onGpu, Format(math, wgmma));
  checkChannelsLast(onGpu, Format(math, wgmma, true), /*every=*/true);
  if (wgmma) checkCandidates(onGpu, math, true);
  if (wgmma) checkAll(onGpuMmaSync, math);
}
TEST(ConvTensorCoreGpu, EveryTf32ConvolutionMatchesFloat64WithinItsBounds) { checkAllOnGpu(TensorCoreMath::Tf32); }
// The paired forwards' 8-byte copies on the device (alignment faults, cp.async's zero fill of a
// half-copied pair): TF32 and bfloat16 as the device multiplies them, and TF32 on mma.sync.
TEST(ConvTensorCoreGpu, PairedTapsMatchFloat64AndLeakNoNaN) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  const bool wgmma = gpuUsesWgmma();
  checkPairedTaps(moduleOnGpu, Format(TensorCoreMath::Tf32, wgmma));
  checkPairedTaps(moduleOnGpu, Format(TensorCoreMath::Bf16, wgmma));
  if (wgmma) checkPairedTaps(moduleOnGpu, TensorCoreMath::Tf32);
}
// Exact fp32 on the device's CUDA cores: every geometry, the candidates, channels last.
TEST(ConvTensorCoreGpu, EveryExactFp32ConvolutionMatchesFloat64WithinItsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  checkAll(onGpu, TensorCoreMath::Off);
  checkCandidates(onGpu, TensorCoreMath::Off, /*wgmma=*/false);
  checkChannelsLast(onGpu, Format(TensorCoreMath::Off, false, true), /*every=*/true);
}
TEST(ConvTensorCoreGpu, EveryBfloat16ConvolutionMatchesFloat64WithinItsBounds) { checkAllOnGpu(TensorCoreMath::Bf16); }
// The 16-bit channels-last convolutions on the device (sm_90: wgmma's descriptors in both
// forms, the 128-byte swizzle, cp.async's zero fill of pixels outside the image), every
// candidate tile: bfloat16; then float16 and the overlapped stages.
TEST(ConvTensorCoreGpu, SixteenBitChannelsLastConvolutionsMatchFloat64WithinTheFormatsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkSixteenBitChannelsLast(onGpu, TensorCoreMath::Bf16, /*candidates=*/true);
}
TEST(ConvTensorCoreGpu, SixteenBitStemMatchesFloat64WithinTheFormatsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkStem(onGpu, TensorCoreMath::Bf16, /*every=*/true);
  checkStem(onGpu, TensorCoreMath::Fp16, false);
  checkStem(onGpu, TensorCoreMath::Tf32, true);
}

TEST(ConvTensorCoreGpu, SixteenBitWideTilesMatchFloat64WithinTheFormatsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkWideTiles(onGpu, TensorCoreMath::Bf16);
  checkForward(kWideForward[0], true, true, 369, onGpu, Format(TensorCoreMath::Fp16, true).wideTiles());
  // And the channel blocks outer (halfTapReuse: cp.async.ca), on both tiles.
  checkSixteenBitChannelsLast(onGpu, TensorCoreMath::Bf16, /*candidates=*/false, false, /*tapReuse=*/true);
  const Format reuse = Format(TensorCoreMath::Bf16, true).sixteenBitChannelsLast(false, true).wideTiles();
  checkForward(kWideForward[1], true, true, 370, onGpu, reuse);
  checkBackwardData(kWideData, false, 371, onGpu, reuse);
  checkSwappedTiles(onGpu, TensorCoreMath::Bf16);
}

TEST(ConvTensorCoreGpu, SixteenBitProducerWarpsMatchFloat64WithinTheFormatsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkProducerWarps(onGpu, TensorCoreMath::Bf16, /*every=*/true);
  checkProducerWarps(onGpu, TensorCoreMath::Fp16, false);
}

TEST(ConvTensorCoreGpu, SixteenBitCopyEngineMatchesFloat64WithinTheFormatsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkCopyEngine(onGpu, TensorCoreMath::Bf16, /*every=*/true);
  checkCopyEngine(onGpu, TensorCoreMath::Fp16, false);
}

TEST(ConvTensorCoreGpu, Tf32ChannelsLastConvolutionsMatchFloat64WithinTheFormatsBounds) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkTf32ChannelsLast(onGpu, /*every=*/true);
}

TEST(ConvTensorCoreGpu, SixteenBitChannelsLastFloat16AndOverlappedStagesMatchFloat64) {
  if (auto dev = probeCudaDevice(0); !dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  if (!gpuUsesWgmma()) GTEST_SKIP() << "the device has no wgmma (sm_90)";
  checkSixteenBitChannelsLast(onGpu, TensorCoreMath::Fp16, true);
  checkSixteenBitChannelsLast(onGpu, TensorCoreMath::Bf16, true, /*overlap=*/true);
}
TEST(ConvTensorCoreGpu, EveryFloat16ConvolutionMatchesFloat64WithinItsBounds) { checkAllOnGpu(TensorCoreMath::Fp16); }

}  // namespace
}  // namespace shoal
