// Output extents of the conv family's windows (PyTorch's rules), written once for the shape
// rules, the CPU kernels and the CUDA codegen.
#pragma once

#include <algorithm>
#include <cstdint>

namespace shoal {

/// Output extent of a pooling window of `kernel` at `stride` over `in` pixels padded by
/// `padBefore`/`padAfter` (<= 0 when no window fits). Floor mode counts the windows that lie
/// inside the padded input. Ceil mode (PyTorch's ceil_mode=True) also counts a last, partial
/// window, provided it starts inside the input or the leading padding, so no window holds
/// trailing padding only.
inline int64_t poolOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padBefore, int64_t padAfter,
                              bool ceilMode) {
  const int64_t room = in + padBefore + padAfter - kernel;
  if (room < 0) return 0;
  if (!ceilMode) return room / stride + 1;
  int64_t out = room / stride + (room % stride != 0) + 1;  // ceil(room / stride) + 1, without room + stride - 1
  if ((out - 1) * stride >= in + padBefore) --out;
  return out;
}

/// Output extent of conv_transpose2d (PyTorch's ConvTranspose2d):
/// (in - 1)·stride - padBefore - padAfter + dilation·(kernel - 1) + outputPadding + 1.
inline int64_t convTransposeOutputSize(int64_t in, int64_t kernel, int64_t stride, int64_t padBefore, int64_t padAfter,
                                       int64_t dilation, int64_t outputPadding) {
  return (in - 1) * stride - padBefore - padAfter + dilation * (kernel - 1) + outputPadding + 1;
}

/// One axis of an average-pooling window: the window starting at `start` (negative inside the
/// leading padding) of `kernel` pixels over an input of `in` pixels padded by `padAfter` at the
/// end. PyTorch's avg_pool2d divides by the window's part inside the padded input
/// (count_include_pad=True; only ceil mode makes it smaller than the kernel) or by its part
/// inside the input (count_include_pad=False).
struct AvgPoolSpan {
  int64_t begin, end;  ///< the in-image pixels [begin, end)
  int64_t padded;      ///< pixels inside the padded input
};
inline AvgPoolSpan avgPoolSpan(int64_t start, int64_t kernel, int64_t in, int64_t padAfter) {
  const int64_t paddedEnd = std::min(start + kernel, in + padAfter);
  return {std::max<int64_t>(start, 0), std::min(start + kernel, in), paddedEnd - start};
}

}  // namespace shoal
