// Private to runtime/cuda: a kernel's tensor maps (CudaTensorMap, the copy engine's operands)
// encoded over the addresses its arguments were bound to.
#pragma once

#include "codegen/cuda_codegen.h"
#include "support/diagnostics.h"

namespace shoal::cudaimpl {

/// What a SHOAL_TMAP parameter takes: 128 bytes, 64-byte aligned (CUtensorMap).
struct alignas(64) EncodedTensorMap {
  unsigned long long q[16] = {};
};

/// Encodes `d` over `base` + d.offset with the driver's cuTensorMapEncodeTiled or
/// cuTensorMapEncodeIm2col (found through the CUDA runtime: shoal links no libcuda). An error
/// names the map, its geometry and the driver's code.
Expected<void> encodeTensorMap(const CudaTensorMap& d, void* base, EncodedTensorMap& out);

}  // namespace shoal::cudaimpl
