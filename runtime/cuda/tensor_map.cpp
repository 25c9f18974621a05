// The copy engine's tensor maps: cuTensorMapEncodeTiled / cuTensorMapEncodeIm2col, reached
// through cudaGetDriverEntryPointByVersion (the library links the CUDA runtime statically and
// libcuda not at all).
#include "runtime/cuda/tensor_map.h"

#include <fmt/format.h>

#if SHOAL_HAVE_CUDA
#include <cuda.h>
#include <cuda_runtime_api.h>
#endif

namespace shoal::cudaimpl {

#if SHOAL_HAVE_CUDA
namespace {

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
using EncodeIm2col = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                  const cuuint64_t*, const int*, const int*, cuuint32_t, cuuint32_t, const cuuint32_t*,
                                  CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion,
                                  CUtensorMapFloatOOBfill);

// The driver's entry point `name` (of CUDA 12.0's signature), looked up once.
template <typename F>
Expected<F> driverEntry(const char* name) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  const cudaError_t e = cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &found);
  if (e != cudaSuccess || found != cudaDriverEntryPointSuccess || !fn) {
    (void)cudaGetLastError();
    return fail(
        fmt::format("the CUDA driver has no {} ({}): the copy engine's tensor maps need a driver of CUDA 12 "
                    "or later",
                    name, e != cudaSuccess ? cudaGetErrorName(e) : "symbol not found"));
  }
  return reinterpret_cast<F>(fn);
}

std::string describe(const CudaTensorMap& d) {
  std::string dims;
  for (int i = 0; i < d.rank; ++i) dims += (i ? " x " : "") + std::to_string(d.dims[i]);
  return fmt::format("tensor map {} ({}, {}-byte values {}{})", d.name, d.im2col ? "im2col" : "tiled", d.elementBytes,
                     dims, d.im2col ? fmt::format(", {} pixels of {} channels", d.pixels, d.channels) : "");
}

}  // namespace

Expected<void> encodeTensorMap(const CudaTensorMap& d, void* base, EncodedTensorMap& out) {
  static_assert(sizeof(EncodedTensorMap) == sizeof(CUtensorMap), "a tensor map is 128 bytes");
  void* at = static_cast<char*>(base) + d.offset;
  const CUtensorMapDataType type =
      d.elementBytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_UINT16 : CU_TENSOR_MAP_DATA_TYPE_UINT32;
  if ((d.elementBytes != 2 && d.elementBytes != 4) || d.rank < 2 || d.rank > 4)
    return fail(describe(d) + ": 2- or 4-byte values of 2 to 4 dimensions");
  cuuint64_t dims[4], strides[3];
  cuuint32_t elementStrides[4] = {1, 1, 1, 1};
  for (int i = 0; i < d.rank; ++i) dims[i] = cuuint64_t(d.dims[i]);
  for (int i = 0; i + 1 < d.rank; ++i) strides[i] = cuuint64_t(d.strides[i]);
  auto* map = reinterpret_cast<CUtensorMap*>(&out);
  CUresult r;
  const char* call;
  if (d.im2col) {
    static const Expected<EncodeIm2col> encode = driverEntry<EncodeIm2col>("cuTensorMapEncodeIm2col");
    if (!encode) return Unexpected(encode.error());
    if (d.rank != 4) return fail(describe(d) + ": im2col maps here are 4-D (C, W, H, N)");
    elementStrides[1] = cuuint32_t(d.stride[0]);
    elementStrides[2] = cuuint32_t(d.stride[1]);
    // The corners in the dimensions' order, W first (as CUTLASS passes them).
    const int lower[2] = {d.lower[0], d.lower[1]}, upper[2] = {d.upper[0], d.upper[1]};
    call = "cuTensorMapEncodeIm2col";
    r = (*encode)(map, type, cuuint32_t(d.rank), at, dims, strides, lower, upper, cuuint32_t(d.channels),
                  cuuint32_t(d.pixels), elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  } else {
    static const Expected<EncodeTiled> encode = driverEntry<EncodeTiled>("cuTensorMapEncodeTiled");
    if (!encode) return Unexpected(encode.error());
    cuuint32_t box[4];
    for (int i = 0; i < d.rank; ++i) box[i] = cuuint32_t(d.box[i]);
    call = "cuTensorMapEncodeTiled";
    r = (*encode)(map, type, cuuint32_t(d.rank), at, dims, strides, box, elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  if (r != CUDA_SUCCESS)
    return fail(fmt::format("{}: {} failed with CUresult {} (address {}, strides {} / {} / {} bytes)", describe(d),
                            call, int(r), at, d.strides[0], d.strides[1], d.strides[2]));
  return {};
}

#else

Expected<void> encodeTensorMap(const CudaTensorMap& d, void*, EncodedTensorMap&) {
  return fail("tensor map " + d.name + ": shoal was built without CUDA");
}

#endif

}  // namespace shoal::cudaimpl
