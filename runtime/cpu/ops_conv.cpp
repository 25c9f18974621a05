// CPU kernels and runners of conv_transpose2d and global_avgpool.
#include "runtime/cpu/ops_conv.h"

#include <cassert>

#include "runtime/cpu/kernels_util.h"

namespace shoal::cpu {

Conv2dParams ConvTranspose2dParams::adjointConv() const {
  Conv2dParams p;
  p.n = n, p.c = o, p.h = outH(), p.w = outW();
  p.o = c, p.kh = kh, p.kw = kw;
  p.strideH = strideH, p.strideW = strideW;
  p.padTop = padTop, p.padLeft = padLeft;
  p.padBottom = padBottom - outputPaddingH, p.padRight = padRight - outputPaddingW;
  p.dilationH = dilationH, p.dilationW = dilationW;
  p.groups = groups;
  return p;
}

template <typename T>
void convTranspose2dForward(const ConvTranspose2dParams& p, const T* x, const T* w, const T* bias, T* y, T* scratch) {
  const Conv2dParams conv = p.adjointConv();
  assert(conv.outH() == p.h && conv.outW() == p.w && "the adjoint convolution must map the output back to the input");
  conv2dBackwardData(conv, x, w, y, scratch);
  if (!bias) return;
  const int64_t plane = conv.h * conv.w;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t o = 0; o < p.o; ++o) {
      T* yp = y + (n * p.o + o) * plane;
      for (int64_t i = 0; i < plane; ++i) yp[i] += bias[o];
    }
}

template <typename T>
void globalAvgPool(int64_t planes, int64_t size, const T* x, T* y) {
  for (int64_t p = 0; p < planes; ++p) y[p] = T(detail::sumAsDouble(x + p * size, size) / double(size));
}

template <typename T>
Expected<void> runConvTranspose2d(OpContext& c) {
  const Shape& x = c.inShape(0);
  const Shape& w = c.inShape(1);
  const auto& stride = c.attrs().getInts("stride");
  const auto& pad = c.attrs().getInts("padding");
  const auto& outPad = c.attrs().getInts("output_padding");
  const auto& dil = c.attrs().getInts("dilation");
  ConvTranspose2dParams p;
  p.n = x[0], p.c = x[1], p.h = x[2], p.w = x[3];
  p.groups = c.attrs().getInt("groups");
  p.o = w[1] * p.groups, p.kh = w[2], p.kw = w[3];
  p.strideH = stride[0], p.strideW = stride[1];
  p.padTop = pad[0], p.padLeft = pad[1], p.padBottom = pad[2], p.padRight = pad[3];
  p.outputPaddingH = outPad[0], p.outputPaddingW = outPad[1];
  p.dilationH = dil[0], p.dilationW = dil[1];
  convTranspose2dForward<T>(p, c.in<T>(0), c.in<T>(1), c.numInputs() == 3 ? c.in<T>(2) : nullptr, c.out<T>());
  return {};
}

template <typename T>
Expected<void> runGlobalAvgPool(OpContext& c) {
  const Shape& x = c.inShape(0);
  globalAvgPool<T>(x[0] * x[1], x[2] * x[3], c.in<T>(0), c.out<T>());
  return {};
}

#define SHOAL_INSTANTIATE(T)                                                                                    \
  template void convTranspose2dForward<T>(const ConvTranspose2dParams&, const T*, const T*, const T*, T*, T*); \
  template void globalAvgPool<T>(int64_t, int64_t, const T*, T*);                                               \
  template Expected<void> runConvTranspose2d<T>(OpContext&);                                                    \
  template Expected<void> runGlobalAvgPool<T>(OpContext&);
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE

}  // namespace shoal::cpu
