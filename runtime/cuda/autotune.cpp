// The tile autotuner: variants of a module timed product by product (see autotune.h).
#include "runtime/cuda/autotune.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <set>
#include <sstream>
#include <vector>

#include "codegen/kernel_cache.h"
#include "codegen/nvrtc.h"
#include "runtime/cuda/cuda_executable.h"

namespace shoal {

namespace {

constexpr std::string_view kChoiceHeader = "shoal-tiles 1";
// Another tile replaces the cost model's only when this much faster: below it, the difference
// is within what three profiled steps of the same kernel vary by.
constexpr double kWinMargin = 0.98;
constexpr int kTimedSteps = 3;

// Zero tensors of every input's type, scalars 1 (a learning rate, an optimizer's step count:
// Adam rejects step 0), so a step runs without a kernel reporting an error.
TensorMap zeroInputs(const Program& p) {
  TensorMap inputs;
  for (const Node* n : p.graph->inputNodes()) {
    const TensorType& t = n->result()->type();
    Tensor v(t.dtype, t.shape);
    if (t.shape.empty()) v.set(0, 1.0);
    inputs[n->attrs().getString("name")] = std::move(v);
  }
  return inputs;
}

}  // namespace

std::string encodeTileChoice(const std::map<std::string, ProductTile>& tiles) {
  std::string out = std::string(kChoiceHeader) + "\n";
  for (const auto& [kernel, tile] : tiles) out += kernel + " " + tile.describe() + "\n";
  return out;
}

Expected<std::map<std::string, ProductTile>> decodeTileChoice(std::string_view text, const CudaModuleSource& model) {
  std::map<std::string, const CudaProduct*> products;
  for (const CudaProduct& p : model.products) products[p.kernel] = &p;
  std::map<std::string, ProductTile> tiles;
  std::istringstream in{std::string(text)};
  std::string line;
  if (!std::getline(in, line) || line != kChoiceHeader)
    return fail(fmt::format("a tile choice starts with '{}', not '{}'", kChoiceHeader, line));
  for (int lineNo = 2; std::getline(in, line); ++lineNo) {
    const size_t space = line.find(' ');
    const std::string kernel = line.substr(0, space);
    auto tile = space == std::string::npos ? std::nullopt : ProductTile::parse(std::string_view(line).substr(space + 1));
    if (!tile) return fail(fmt::format("line {} of a tile choice is not '<kernel> <rows>x<cols>/<slices>': '{}'", lineNo, line));
    auto it = products.find(kernel);
    if (it == products.end()) return fail(fmt::format("line {} of a tile choice names kernel {}, which the module does not have", lineNo, kernel));
    const auto& c = it->second->candidates;
    if (std::find(c.begin(), c.end(), *tile) == c.end())
      return fail(fmt::format("line {} of a tile choice gives kernel {} tile {}, not one of its candidates", lineNo, kernel,
                              tile->describe()));
    if (!tiles.emplace(kernel, *tile).second)
      return fail(fmt::format("line {} of a tile choice names kernel {} again", lineNo, kernel));
  }
  if (tiles.size() != products.size())
    return fail(fmt::format("a tile choice names {} of the module's {} products", tiles.size(), products.size()));
  return tiles;
}

std::string tileChoiceKey(const CudaModuleSource& model, const std::string& arch, const CudaDeviceInfo& device) {
  return KernelCache::makeKey(model.source, {"tile-choice", device.name, std::to_string(device.smCount)}, arch,
                              nvrtcCacheTag());
}

std::optional<std::map<std::string, ProductTile>> cachedTiles(const CudaModuleSource& model, const std::string& arch,
                                                              const CudaDeviceInfo& device) {
  KernelCache cache(KernelCache::defaultDir());
  auto stored = cache.lookup(tileChoiceKey(model, arch, device));
  if (!stored) return std::nullopt;
  auto tiles = decodeTileChoice(*stored, model);
  if (!tiles) return std::nullopt;  // not this module's (a collision, or edited): tune again
  return std::move(*tiles);
}

Expected<std::map<std::string, ProductTile>> autotuneTiles(const Program& program, const CudaExecutableOptions& opts,
                                                           const std::string& arch, const CudaModuleSource& model) {
  auto device = probeCudaDevice(0);
  if (!device) return Unexpected(device.error());
  if (auto tiles = cachedTiles(model, arch, *device)) {
    if (opts.verbose)
      std::cerr << fmt::format("shoal: autotune '{}': the tiles of {} products from the kernel cache\n", model.name,
                               tiles->size());
    return std::move(*tiles);
  }
  const auto start = std::chrono::steady_clock::now();
  size_t variants = 0;
  for (const CudaProduct& p : model.products) variants = std::max(variants, p.candidates.size());

  // Every variant's NVRTC units compiled side by side (through the cache), then each variant
  // made an executable (its units cache hits) and timed alone.
  CudaExecutableOptions variantOpts = opts;
  variantOpts.autotune = false;
  variantOpts.verbose = false;
  variantOpts.groupKernels = false;  // each launch one node's: its time is that node's
  variantOpts.graphs = false;
  variantOpts.arch = arch;
  std::vector<KernelSource> sources;
  std::string target = arch;
  for (size_t v = 0; v < variants; ++v) {
    variantOpts.tuningVariant = int(v);
    const CudaCodegenOptions codegen = variantOpts.codegenOptions(arch);
    target = cudaTargetArch(codegen, arch);
    auto src = generateCudaSource(program, codegen);
    if (!src) return Unexpected(src.error());
    for (const CudaUnit& u : src->units) sources.push_back({u.name, u.source});
  }
  KernelCache cache(KernelCache::defaultDir());
  for (auto& compiled : compileAll(sources, target, {}, &cache))
    if (!compiled) return Unexpected(compiled.error());

  // times[v][kernel]: the device time of the node whose product `kernel` is, in variant v.
  std::vector<std::map<std::string, double>> times(variants);
  for (size_t v = 0; v < variants; ++v) {
    variantOpts.tuningVariant = int(v);
    auto exe = CudaExecutable::create(cloneProgram(program), variantOpts);
    if (!exe) return Unexpected(exe.error());
    (*exe)->initializeParameters(1);
    const TensorMap inputs = zeroInputs((*exe)->program());
    auto first = (*exe)->run(inputs);  // loads the kernels, prepares the weights
    auto nodes = (*exe)->timeNodesMs(kTimedSteps);
    if (!nodes)
      return fail(fmt::format("autotune '{}', variant {}: {}{}", model.name, v, nodes.error().message(),
                              first ? "" : " (its first step: " + first.error().message() + ")"));
    for (const CudaProduct& p : (*exe)->module().products)
      if (auto it = nodes->find(p.node); it != nodes->end()) times[v][p.kernel] = it->second;
  }

  std::map<std::string, ProductTile> tiles;
  double before = 0, after = 0;
  std::set<const Node*> counted;
  for (const CudaProduct& p : model.products) {
    size_t best = 0;
    auto timeOf = [&](size_t v) {
      auto it = times[v].find(p.kernel);
      return it == times[v].end() ? -1.0 : it->second;
    };
    const double model0 = timeOf(0);
    for (size_t v = 1; v < p.candidates.size(); ++v)
      if (const double t = timeOf(v); t >= 0 && model0 >= 0 && t < kWinMargin * timeOf(best)) best = v;
    tiles[p.kernel] = p.candidates[best];
    if (counted.insert(p.node).second) before += std::max(model0, 0.0), after += std::max(timeOf(best), 0.0);
    if (opts.verbose && best != 0)
      std::cerr << fmt::format("shoal: autotune: {} {} {:.3f} ms -> {} {:.3f} ms\n", p.kernel,
                               p.candidates[0].describe(), model0, p.candidates[best].describe(), timeOf(best));
  }
  if (auto ok = cache.store(tileChoiceKey(model, arch, *device), encodeTileChoice(tiles)); !ok && opts.verbose)
    std::cerr << "shoal: autotune: the choice could not be stored: " << ok.error().message() << "\n";
  if (opts.verbose)
    std::cerr << fmt::format(
        "shoal: autotune '{}': {} products, {} variants timed in {:.1f} s; their nodes {:.3f} -> {:.3f} ms a step\n",
        model.name, model.products.size(), variants,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), before, after);
  return tiles;
}

}  // namespace shoal
