// The runtime's own CUDA kernels (not generated from a graph): the metric accumulation of
// runAccumulate and the batch gather of runAccumulateRows, one NVRTC module; the layout of
// the gather's by-value argument; which element types it converts.
#pragma once

#include <algorithm>
#include <cstdint>

#include <shoal/types.h>

namespace shoal::cudaimpl {

// The metric accumulators of runAccumulate, in one device block (doubles unless noted):
// kAccumSlots sums, the weight, the first non-finite loss and its step + 1 (i64, 0: none),
// the step + 1 of the first step with a kernel-reported error (i64), then that step's status
// words.
inline constexpr int kAccumSlots = 8;
inline constexpr int kAccumWeight = kAccumSlots, kAccumBadValue = kAccumSlots + 1, kAccumBadStep = kAccumSlots + 2,
              kAccumErrStep = kAccumSlots + 3, kAccumWords = kAccumSlots + 4;

/// The module's source: shoal_accumulate, shoal_gather_rows and shoal_copy_in (see
/// runtime_kernels.cpp).
const char* runtimeKernelsSource();

/// The element code the kernels read a scalar or an element by: f32 0, f64 1, i32 2, i64 3,
/// u8 and bool 4 (storage types: 4, refused by the callers before).
unsigned scalarCode(DType t);

/// shoal_gather_rows's by-value argument as the host fills it: the layout of the kernel's
/// ShoalGather (naturally aligned fields of fixed width). Up to 8 tensors and 4 scalars.
/// shoal_copy_in's launch for `bytes`: 256 threads a block, a thread per 16 bytes up to 2048
/// blocks (then up to four loads in flight a thread, then a loop).
inline unsigned copyInBlocks(int64_t bytes) {
  const int64_t threads = (bytes + 15) / 16;
  return unsigned(std::min<int64_t>(2048, std::max<int64_t>(1, (threads + 255) / 256)));
}

inline constexpr int kGatherTensors = 8, kGatherScalars = 4;
struct GatherTensorArg {
  const void* src;
  void* dst;
  int64_t rowElems;
  int32_t srcCode, dstCode, elemBytes, pad;
};
struct GatherScalarArg {
  void* dst;
  uint64_t bits;
  int32_t bytes, pad;
};
struct GatherArgs {
  const int64_t* order;
  int64_t first;
  int32_t tensors, scalars;
  GatherTensorArg tensor[kGatherTensors];
  GatherScalarArg scalar[kGatherScalars];
};
static_assert(sizeof(GatherTensorArg) == 40 && sizeof(GatherScalarArg) == 24 && sizeof(GatherArgs) == 440);

/// Whether a data set's elements of type `from` convert on the device into an input of type
/// `to` exactly as the host's upload converts them (Tensor::set of the element as a double):
/// the same type, or a widening with no saturation and no rounding the two could disagree on.
bool gatherConverts(DType from, DType to);

}  // namespace shoal::cudaimpl
