// The tile autotuner (runtime/cuda/autotune.h): the stored form of a choice and its checks
// against the module (here), and on a GPU, tuning, the kernel cache, and results that match the
// cost model's tiles.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "frontend/layers.h"
#include "passes/program.h"
#include "runtime/cuda/autotune.h"
#include "runtime/cuda/cuda_executable.h"
#include "runtime/cuda/device.h"
#include "test_util.h"

namespace shoal {
namespace {

const Location kLoc{"tune.mmd", 1, 1, "c"};

// A 3 x 3 convolution of 32 channels into 64 filters over a batch of 28 x 28 images, and its
// weight gradient (a product whose reduction, the batch's pixels, the cost model splits).
std::unique_ptr<Graph> convGraph(int64_t n) {
  auto g = std::make_unique<Graph>("tune_conv");
  Attrs a;
  a.set("stride", std::vector<int64_t>{1, 1});
  a.set("padding", std::vector<int64_t>{1, 1, 1, 1});
  a.set("dilation", std::vector<int64_t>{1, 1});
  Value* x = layers::input(*g, "x", {DType::F32, {n, 32, 28, 28}}, kLoc);
  Value* w = layers::param(*g, "c.weight", {DType::F32, {64, 32, 3, 3}}, "glorot_uniform", kLoc);
  Value* y = *layers::addOp(*g, OpKind::Conv2d, {x, w}, a, "c", kLoc);
  layers::output(*g, y, "y", kLoc);
  Value* dy = layers::input(*g, "dy", {DType::F32, {n, 64, 28, 28}}, kLoc);
  a.set("weight_shape", std::vector<int64_t>{64, 32, 3, 3});
  layers::output(*g, *layers::addOp(*g, OpKind::Conv2dBackwardWeight, {x, dy}, a, "dw", kLoc), "dw", kLoc);
  return g;
}

CudaModuleSource modelModule(const Program& p) {
  CudaCodegenOptions tc;
  tc.tensorCores = TensorCoreMath::Tf32;
  auto src = generateCudaSource(p, tc);
  EXPECT_TRUE(src) << (src ? "" : src.error().message());
  return src ? std::move(*src) : CudaModuleSource{};
}

TEST(Autotune, TileChoicesReadBackAndAreCheckedAgainstTheModule) {
  auto program = compileProgram(convGraph(2));
  ASSERT_TRUE(program) << program.error().message();
  const CudaModuleSource m = modelModule(*program);
  ASSERT_EQ(m.products.size(), 2u);
  std::map<std::string, ProductTile> tiles;
  for (const CudaProduct& p : m.products) {
    ASSERT_GE(p.candidates.size(), 2u) << p.kernel;
    tiles[p.kernel] = p.candidates[1];
  }
  const std::string text = encodeTileChoice(tiles);
  EXPECT_EQ(text.substr(0, text.find('\n')), "shoal-tiles 1");
  auto back = decodeTileChoice(text, m);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, tiles);

  const std::string k0 = m.products[0].kernel, k1 = m.products[1].kernel;
  const std::string t0 = m.products[0].candidates[0].describe();
  struct Bad {
    std::string text, says;
  };
  for (const Bad& b : {Bad{"shoal-tiles 2\n", "starts with 'shoal-tiles 1', not 'shoal-tiles 2'"},
                       Bad{"shoal-tiles 1\n" + k0 + " " + t0 + "\n", "names 1 of the module's 2 products"},
                       Bad{"shoal-tiles 1\n" + k0 + " " + t0 + "\n" + k0 + " " + t0 + "\n", "line 3 of a tile choice names kernel " + k0 + " again"},
                       Bad{"shoal-tiles 1\nk99_conv " + t0 + "\n", "names kernel k99_conv, which the module does not have"},
                       Bad{"shoal-tiles 1\n" + k0 + " 128x128/99\n", "gives kernel " + k0 + " tile 128x128/99, not one of its candidates"},
                       Bad{"shoal-tiles 1\n" + k0 + "\n", "line 2 of a tile choice is not '<kernel> <rows>x<cols>/<slices>'"},
                       Bad{"shoal-tiles 1\n" + k0 + " " + t0 + "\n" + k1 + " 64x64\n", "line 3 of a tile choice is not"}}) {
    auto got = decodeTileChoice(b.text, m);
    ASSERT_FALSE(got) << b.text;
    EXPECT_NE(got.error().message().find(b.says), std::string::npos) << got.error().message();
  }
}

TEST(Autotune, ClonedProgramsKeepThePlan) {
  auto program = compileProgram(convGraph(2));
  ASSERT_TRUE(program) << program.error().message();
  const Program copy = cloneProgram(*program);
  ASSERT_NE(copy.graph.get(), program->graph.get());
  ASSERT_EQ(copy.plan.buffers.size(), program->plan.buffers.size());
  for (const auto& [v, a] : program->plan.buffers) {
    const Value* c = copy.graph->findValue(v->name());
    ASSERT_NE(c, nullptr) << v->name();
    EXPECT_NE(c, v);
    EXPECT_EQ(copy.plan.at(c).offset, a.offset) << v->name();
    EXPECT_EQ(copy.plan.at(c).bytes, a.bytes) << v->name();
    EXPECT_EQ(copy.plan.at(c).persistent, a.persistent) << v->name();
  }
  EXPECT_EQ(copy.plan.arenaBytes, program->plan.arenaBytes);
  // The clone's module is the original's, byte for byte.
  EXPECT_EQ(modelModule(copy).source, modelModule(*program).source);
}

void checkTunedTiles(TensorCoreMath math) {
  auto dev = probeCudaDevice(0);
  if (!dev) GTEST_SKIP() << "no usable GPU: " << dev.error().message();
  const std::string dir = test::tempDir();
  const char* old = std::getenv("SHOAL_CACHE_DIR");
  const std::string saved = old ? old : "";
  setenv("SHOAL_CACHE_DIR", dir.c_str(), 1);
  struct Restore {
    bool had;
    std::string value;
    ~Restore() { had ? setenv("SHOAL_CACHE_DIR", value.c_str(), 1) : unsetenv("SHOAL_CACHE_DIR"); }
  } restore{old != nullptr, saved};

  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  TensorMap inputs;
  for (const auto& [name, shape] : {std::pair<std::string, Shape>{"x", {8, 32, 28, 28}}, {"dy", {8, 64, 28, 28}}}) {
    Tensor t(DType::F32, shape);
    for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, u(rng));
    inputs[name] = std::move(t);
  }
  auto runWith = [&](bool autotune) -> std::pair<TensorMap, std::vector<ProductTile>> {
    auto program = compileProgram(convGraph(8));
    EXPECT_TRUE(program);
    CudaExecutableOptions o;
    o.tensorCores = math;
    o.autotune = autotune;
    auto exe = CudaExecutable::create(std::move(*program), o);
    EXPECT_TRUE(exe) << (exe ? "" : exe.error().message());
    if (!exe) return {};
    (*exe)->initializeParameters(3);
    auto out = (*exe)->run(inputs);
    EXPECT_TRUE(out) << (out ? "" : out.error().message());
    std::vector<ProductTile> chosen;
    for (const CudaProduct& p : (*exe)->module().products) chosen.push_back(p.chosen);
    // The profile names each product's tile beside its kernel.
    (*exe)->setProfiling(true);
    EXPECT_TRUE((*exe)->run(inputs));
    const std::string summary = (*exe)->profileSummary();
    for (const CudaProduct& p : (*exe)->module().products)
      EXPECT_NE(summary.find("[" + p.kernel + " " + p.chosen.describe() + "]"), std::string::npos) << summary;
    return {out ? *out : TensorMap{}, chosen};
  };
  const auto [modelOut, modelTiles] = runWith(false);
  const auto [tunedOut, tunedTiles] = runWith(true);
  ASSERT_EQ(tunedTiles.size(), 2u);
  for (const char* name : {"y", "dw"}) {
    const std::vector<double> a = modelOut.at(name).toDoubles(), b = tunedOut.at(name).toDoubles();
    ASSERT_EQ(a.size(), b.size());
    double scale = 0, diff = 0;
    for (size_t i = 0; i < a.size(); ++i) scale = std::max(scale, std::abs(a[i])), diff = std::max(diff, std::abs(a[i] - b[i]));
    EXPECT_LE(diff, 1e-5 * scale) << name;
  }
  // The choice is in the cache under the cost model's module and this device.
  auto program = compileProgram(convGraph(8));
  ASSERT_TRUE(program);
  CudaExecutableOptions o;
  o.tensorCores = math;
  auto model = generateCudaSource(*program, o.codegenOptions(dev->arch()));
  ASSERT_TRUE(model);
  auto cached = cachedTiles(*model, dev->arch(), *dev);
  ASSERT_TRUE(cached.has_value());
  ASSERT_EQ(cached->size(), 2u);
  for (size_t i = 0; i < model->products.size(); ++i) EXPECT_EQ(cached->at(model->products[i].kernel), tunedTiles[i]);
  // A second executable takes the same tiles from there.
  EXPECT_EQ(runWith(true).second, tunedTiles);
}

// On a GPU: the first executable tunes (into an empty cache), stores its choice, and computes
// what the cost model's tiles compute (the same TF32 or exact fp32 products; only the slices'
// order of addition may differ); a second one reads the same choice back.
TEST(AutotuneGpu, TunedTilesAreCachedAndMatchTheCostModelsResults) {
  for (TensorCoreMath math : {TensorCoreMath::Tf32, TensorCoreMath::Off}) {
    SCOPED_TRACE(tensorCoreMathName(math));
    checkTunedTiles(math);
  }
}

}  // namespace
}  // namespace shoal
