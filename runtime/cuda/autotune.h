// The tile autotuner (CudaExecutableOptions::autotune): each tensor-core product's block tile
// and reduction slices chosen by timing its candidates (CudaProduct::candidates) on the device,
// the choice kept in the kernel cache.
#pragma once

// Needs no CUDA headers; tuning needs a device (CudaExecutable), reading a choice does not.

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "codegen/cuda_codegen.h"
#include "runtime/cuda/device.h"

namespace shoal {

struct CudaExecutableOptions;

/// A choice as the kernel cache stores it: "shoal-tiles 1", then one "<kernel> <tile>" line per
/// product (ProductTile::describe), in kernel-name order.
std::string encodeTileChoice(const std::map<std::string, ProductTile>& tiles);
/// The inverse, checked against `model` (the module as the cost model makes it): every product
/// named once, each tile one of its candidates. The error says what does not fit.
Expected<std::map<std::string, ProductTile>> decodeTileChoice(std::string_view text, const CudaModuleSource& model);

/// The kernel-cache key of a choice: the cost model's module source and everything the timing
/// depends on beyond it -- the device's name and SM count, the NVRTC target, NVRTC itself.
std::string tileChoiceKey(const CudaModuleSource& model, const std::string& arch, const CudaDeviceInfo& device);

/// The choice for `model`'s products on `device` from the kernel cache, if it holds a valid one.
std::optional<std::map<std::string, ProductTile>> cachedTiles(const CudaModuleSource& model, const std::string& arch,
                                                              const CudaDeviceInfo& device);

/// The tiles for `program`'s products (`model`: its module as the cost model makes it, with
/// `opts`, for device 0 of architecture `arch`): from the kernel cache, else timed now and
/// stored there. Timing makes one executable per candidate number v (every product with its
/// v-th candidate, or its first where it has fewer; kernels not grouped), runs a step on zero
/// inputs (scalars 1) and parameters from seed 1, then takes each node's least device time
/// over three profiled steps; a product keeps the cost model's tile unless another is more than
/// 2 % faster. With opts.verbose, one line per product whose tile changed, and the total.
Expected<std::map<std::string, ProductTile>> autotuneTiles(const Program& program, const CudaExecutableOptions& opts,
                                                           const std::string& arch, const CudaModuleSource& model);

}  // namespace shoal
