// CPU kernels and runners of the conv family's own ops: conv_transpose2d and global_avgpool
// (conv2d and the pools run in runtime/cpu/kernels_conv.cpp).
#pragma once

#include <cstdint>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/op_context.h"

namespace shoal::cpu {

/// Geometry of conv_transpose2d: input [n, c, h, w], weight [c, o / groups, kh, kw], output
/// [n, o, outH(), outW()] (PyTorch's ConvTranspose2d). padTop..padRight crop the full output;
/// outputPadding adds rows and columns at its end (below the stride).
struct ConvTranspose2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t o = 1, kh = 1, kw = 1;
  int64_t strideH = 1, strideW = 1;
  int64_t padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
  int64_t outputPaddingH = 0, outputPaddingW = 0;
  int64_t dilationH = 1, dilationW = 1;
  int64_t groups = 1;

  int64_t outH() const { return convTransposeOutputSize(h, kh, strideH, padTop, padBottom, dilationH, outputPaddingH); }
  int64_t outW() const { return convTransposeOutputSize(w, kw, strideW, padLeft, padRight, dilationW, outputPaddingW); }
  /// The convolution this one transposes: from the output [n, o, outH, outW] back to the input
  /// [n, c, h, w], with the same weight. Its bottom/right padding is the crop minus the output
  /// padding (possibly negative: only the extents read it), so its output is exactly h x w.
  Conv2dParams adjointConv() const;
};

/// y[n, o, oy, ox] = bias[o] + Σ x[n, c, iy, ix] · w[c, o mod (o/groups), ki, kj] over the c of
/// o's group and every (iy, ki) with oy = iy·strideH - padTop + ki·dilationH (likewise columns):
/// conv2dBackwardData of adjointConv(). bias may be null; scratch as for conv2dBackwardData.
template <typename T>
void convTranspose2dForward(const ConvTranspose2dParams& p, const T* x, const T* w, const T* bias, T* y,
                            T* scratch = nullptr);

/// y[plane] = mean of x's plane (planes × size values), summed in double.
template <typename T>
void globalAvgPool(int64_t planes, int64_t size, const T* x, T* y);

/// The interpreter's runners (NodeRunner::run dispatches to them).
template <typename T>
Expected<void> runConvTranspose2d(OpContext& c);
template <typename T>
Expected<void> runGlobalAvgPool(OpContext& c);

}  // namespace shoal::cpu
