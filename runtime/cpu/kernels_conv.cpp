// CPU reference kernels: 2-D convolution (im2col + OpenBLAS gemm) and pooling, NCHW.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_util.h"
#include "support/checked.h"
#include "support/thread_pool.h"

namespace shoal::cpu {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Output columns ox in [begin, end) read an in-image pixel ox*stride + offset in [0, width).
struct ValidRange {
  int64_t begin, end;
};
ValidRange validOutputs(int64_t offset, int64_t stride, int64_t width, int64_t outWidth) {
  int64_t begin = offset >= 0 ? 0 : ceilDiv(-offset, stride);
  int64_t end = offset < width ? ceilDiv(width - offset, stride) : 0;
  begin = std::min(begin, outWidth);
  end = std::clamp(end, begin, outWidth);
  return {begin, end};
}

// The scratch the caller passed, or a buffer owned by this call.
template <typename T>
class Scratch {
 public:
  Scratch(const Conv2dParams& p, T* given, bool needed = true) : ptr_(given) {
    if (!ptr_ && needed) {
      int64_t elems = conv2dScratchElems(p);
      if (elems < 0 || uint64_t(elems) > own_.max_size()) throw std::bad_alloc();  // CpuExecutable reports it
      own_.resize(size_t(elems));
      ptr_ = own_.data();
    }
  }
  T* get() { return ptr_; }

 private:
  T* ptr_;
  std::vector<T> own_;
};

}  // namespace

int64_t conv2dScratchElems(const Conv2dParams& p) {
  if (p.isPointwise()) return 0;
  // Each factor is bounded by a tensor's size, their product is not: saturate, never wrap.
  auto elems = checkedMul(p.colRows(), p.colCols());
  return elems ? *elems : std::numeric_limits<int64_t>::max();
}

template <typename T>
void im2col(const Conv2dParams& p, const T* x, T* cols) {
  assert(p.groups == 1 && "im2col unfolds one group: pass p.group()");
  const int64_t OH = p.outH(), OW = p.outW();
  for (int64_t c = 0; c < p.c; ++c) {
    for (int64_t ki = 0; ki < p.kh; ++ki) {
      for (int64_t kj = 0; kj < p.kw; ++kj) {
        T* dst = cols + ((c * p.kh + ki) * p.kw + kj) * OH * OW;
        const int64_t colOffset = kj * p.dilationW - p.padLeft;
        const ValidRange r = validOutputs(colOffset, p.strideW, p.w, OW);
        for (int64_t oy = 0; oy < OH; ++oy) {
          T* d = dst + oy * OW;
          const int64_t iy = oy * p.strideH - p.padTop + ki * p.dilationH;
          if (iy < 0 || iy >= p.h) {
            std::fill(d, d + OW, T(0));
            continue;
          }
          // Index from the row's start: x + colOffset itself may point before the buffer
          // (padding), which is undefined even when never dereferenced.
          const T* row = x + (c * p.h + iy) * p.w;
          std::fill(d, d + r.begin, T(0));
          if (p.strideW == 1) {
            if (r.end > r.begin)
              std::memcpy(d + r.begin, row + (colOffset + r.begin),
                          sizeof(T) * size_t(r.end - r.begin));
          } else {
            for (int64_t ox = r.begin; ox < r.end; ++ox) d[ox] = row[colOffset + ox * p.strideW];
          }
          std::fill(d + r.end, d + OW, T(0));
        }
      }
    }
  }
}

template <typename T>
void col2im(const Conv2dParams& p, const T* cols, T* x) {
  assert(p.groups == 1 && "col2im folds one group: pass p.group()");
  const int64_t OH = p.outH(), OW = p.outW();
  std::fill(x, x + p.c * p.h * p.w, T(0));
  for (int64_t c = 0; c < p.c; ++c) {
    for (int64_t ki = 0; ki < p.kh; ++ki) {
      for (int64_t kj = 0; kj < p.kw; ++kj) {
        const T* src = cols + ((c * p.kh + ki) * p.kw + kj) * OH * OW;
        const int64_t colOffset = kj * p.dilationW - p.padLeft;
        const ValidRange r = validOutputs(colOffset, p.strideW, p.w, OW);
        for (int64_t oy = 0; oy < OH; ++oy) {
          const int64_t iy = oy * p.strideH - p.padTop + ki * p.dilationH;
          if (iy < 0 || iy >= p.h) continue;
          const T* s = src + oy * OW;
          T* row = x + (c * p.h + iy) * p.w;  // row + colOffset may lie before the buffer
          if (p.strideW == 1) {
            for (int64_t ox = r.begin; ox < r.end; ++ox) row[colOffset + ox] += s[ox];
          } else {
            for (int64_t ox = r.begin; ox < r.end; ++ox) row[colOffset + ox * p.strideW] += s[ox];
          }
        }
      }
    }
  }
}

namespace {

// Images per chunk of the batch-parallel loops: one image's convolution is already tens of
// thousands of operations in all but toy cases, so one image per chunk unless images are tiny.
int64_t imageGrain(const Conv2dParams& p) {
  return grainFor(2 * p.o * p.colRows() * std::max<int64_t>(p.colCols(), 1));
}

// The scratch of chunk `chunk`: the caller's buffer for chunk 0 (only one thread runs it),
// an own buffer for the others.
template <typename T>
T* chunkScratch(int64_t chunk, T* given) {
  return chunk == 0 ? given : nullptr;
}

}  // namespace

namespace {

// Depthwise convolutions (one channel a group, one filter a channel: MobileNet's, EfficientNet's,
// ConvNeXt's) as direct loops over each (image, channel) plane rather than im2col and a product
// of one row per group and image. Each output sums its taps in (ki, kj) order.
bool isDepthwise(const Conv2dParams& p) { return p.groups > 1 && p.groups == p.c && p.groups == p.o; }

// Calls fn(oy, iy, r, colOffset) for every output row oy of tap (ki, kj) whose input row iy is
// in the image, with r the outputs whose input column colOffset + ox · strideW is.
template <typename Fn>
void forEachTapRow(const Conv2dParams& p, int64_t ki, int64_t kj, Fn&& fn) {
  const int64_t OH = p.outH(), OW = p.outW();
  const int64_t colOffset = kj * p.dilationW - p.padLeft;
  const ValidRange r = validOutputs(colOffset, p.strideW, p.w, OW);
  if (r.end <= r.begin) return;
  for (int64_t oy = 0; oy < OH; ++oy) {
    const int64_t iy = oy * p.strideH - p.padTop + ki * p.dilationH;
    if (iy >= 0 && iy < p.h) fn(oy, iy, r, colOffset);
  }
}

template <typename T>
void depthwiseForward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const int64_t OW = p.outW(), P = p.colCols(), taps = p.kh * p.kw;
  parallelFor(p.n * p.c, grainFor(2 * taps * P), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % p.c;
      const T* xp = x + plane * p.h * p.w;
      T* yp = y + plane * P;
      std::fill(yp, yp + P, bias ? bias[c] : T(0));
      for (int64_t ki = 0; ki < p.kh; ++ki)
        for (int64_t kj = 0; kj < p.kw; ++kj) {
          const T wv = w[c * taps + ki * p.kw + kj];
          forEachTapRow(p, ki, kj, [&](int64_t oy, int64_t iy, ValidRange r, int64_t colOffset) {
            T* out = yp + oy * OW;
            const T* row = xp + iy * p.w;
            for (int64_t ox = r.begin; ox < r.end; ++ox) out[ox] += wv * row[colOffset + ox * p.strideW];
          });
        }
    }
  });
}

template <typename T>
void depthwiseBackwardData(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const int64_t OW = p.outW(), P = p.colCols(), taps = p.kh * p.kw;
  parallelFor(p.n * p.c, grainFor(2 * taps * P), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % p.c;
      const T* dyp = dy + plane * P;
      T* dxp = dx + plane * p.h * p.w;
      std::fill(dxp, dxp + p.h * p.w, T(0));
      for (int64_t ki = 0; ki < p.kh; ++ki)
        for (int64_t kj = 0; kj < p.kw; ++kj) {
          const T wv = w[c * taps + ki * p.kw + kj];
          forEachTapRow(p, ki, kj, [&](int64_t oy, int64_t iy, ValidRange r, int64_t colOffset) {
            const T* g = dyp + oy * OW;
            T* row = dxp + iy * p.w;
            for (int64_t ox = r.begin; ox < r.end; ++ox) row[colOffset + ox * p.strideW] += wv * g[ox];
          });
        }
    }
  });
}

// dw[c, ki, kj] = Σ_n Σ_(oy, ox) dy[n, c, oy, ox] · x[n, c, iy, ix]: a channel a task, the
// images in order, so the bits do not depend on the threads.
template <typename T>
void depthwiseBackwardWeight(const Conv2dParams& p, const T* x, const T* dy, T* dw) {
  const int64_t OW = p.outW(), P = p.colCols(), taps = p.kh * p.kw;
  parallelFor(p.c, grainFor(2 * taps * P * p.n), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c)
      for (int64_t ki = 0; ki < p.kh; ++ki)
        for (int64_t kj = 0; kj < p.kw; ++kj) {
          T acc = T(0);
          for (int64_t n = 0; n < p.n; ++n) {
            const T* xp = x + (n * p.c + c) * p.h * p.w;
            const T* dyp = dy + (n * p.c + c) * P;
            forEachTapRow(p, ki, kj, [&](int64_t oy, int64_t iy, ValidRange r, int64_t colOffset) {
              const T* g = dyp + oy * OW;
              const T* row = xp + iy * p.w;
              for (int64_t ox = r.begin; ox < r.end; ++ox) acc += g[ox] * row[colOffset + ox * p.strideW];
            });
          }
          dw[c * taps + ki * p.kw + kj] = acc;
        }
  });
}

}  // namespace

// Each image and group: y_ng[o, P] = w_g[o, K] · cols_ng[K, P] (+ bias broadcast along P),
// o over the group's filters, K = its channels · kh · kw. Images run in parallel (each its
// own im2col scratch); every image's arithmetic is the same whatever the thread count.
template <typename T>
void conv2dForward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y, T* scratch) {
  if (isDepthwise(p)) return depthwiseForward(p, x, w, bias, y);
  const Conv2dParams gp = p.group();
  const int64_t K = p.colRows(), P = p.colCols();
  const int64_t grain = imageGrain(p);
  parallelFor(p.n, grain, [&](int64_t begin, int64_t end) {
    Scratch<T> buf(p, chunkScratch(begin / grain, scratch));
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t g = 0; g < p.groups; ++g) {
        const T* xg = x + (n * p.c + g * gp.c) * p.h * p.w;
        T* yg = y + (n * p.o + g * gp.o) * P;
        const T* cols = xg;
        if (!p.isPointwise()) {
          im2col(gp, xg, buf.get());
          cols = buf.get();
        }
        if (bias) {
          for (int64_t o = 0; o < gp.o; ++o) std::fill(yg + o * P, yg + (o + 1) * P, bias[g * gp.o + o]);
        }
        gemm(false, false, gp.o, P, K, T(1), w + g * gp.o * K, cols, bias ? T(1) : T(0), yg);
      }
    }
  });
}

// Each image and group: cols_ng[K, P] = w_gᵀ[K, o] · dy_ng[o, P], folded back by col2im.
// Images run in parallel, as in conv2dForward.
template <typename T>
void conv2dBackwardData(const Conv2dParams& p, const T* dy, const T* w, T* dx, T* scratch) {
  if (isDepthwise(p)) return depthwiseBackwardData(p, dy, w, dx);
  const Conv2dParams gp = p.group();
  const int64_t K = p.colRows(), P = p.colCols();
  const int64_t grain = imageGrain(p);
  parallelFor(p.n, grain, [&](int64_t begin, int64_t end) {
    Scratch<T> buf(p, p.isPointwise() ? scratch : chunkScratch(begin / grain, scratch), /*needed=*/!p.isPointwise());
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t g = 0; g < p.groups; ++g) {
        const T* dyg = dy + (n * p.o + g * gp.o) * P;
        const T* wg = w + g * gp.o * K;
        T* dxg = dx + (n * p.c + g * gp.c) * p.h * p.w;
        if (p.isPointwise()) {
          gemm(true, false, K, P, gp.o, T(1), wg, dyg, T(0), dxg);
        } else {
          gemm(true, false, K, P, gp.o, T(1), wg, dyg, T(0), buf.get());
          col2im(gp, buf.get(), dxg);
        }
      }
    }
  });
}

// dw_g[o, K] = Σ_n dy_ng[o, P] · cols_ngᵀ[P, K] for each group g. Images are taken `per` at a
// time into one product whose inner dimension is their pixels side by side (per · P, at least
// kMinInner where the batch allows): one image's product over a few pixels is a rank-few
// update of the whole dw, bound by reading and writing dw (ResNet-18's last stage at 64 × 64
// has P = 4); the copies side by side stay within 16 MiB a slice. The batch's chunks are cut into a fixed number of slices (from the shapes only,
// never the thread count); each slice sums its chunks into its own partial in order, in
// parallel, and the partials are added in slice order (in parallel over dw's elements), so
// the bits do not depend on the threads. One slice runs its products through gemm(), which
// splits a large product over the threads itself.
template <typename T>
void conv2dBackwardWeight(const Conv2dParams& p, const T* x, const T* dy, T* dw, T* scratch) {
  const Conv2dParams gp = p.group();
  const int64_t K = p.colRows(), P = p.colCols();
  const int64_t dwElems = p.o * K;
  if (p.n == 0 || P == 0) {
    std::fill(dw, dw + dwElems, T(0));
    return;
  }
  if (isDepthwise(p)) return depthwiseBackwardWeight(p, x, dy, dw);
  // Images a product: enough for kMinInner pixels, within kChunkBytes of copies (dy's and the
  // im2col rows of those images) a slice.
  constexpr int64_t kMinInner = 256, kChunkBytes = int64_t(16) << 20;
  const int64_t perImage = (K + gp.o) * P * int64_t(sizeof(T));
  const int64_t per = std::min({p.n, std::max<int64_t>(1, (kMinInner + P - 1) / P),
                                std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, perImage))});
  const int64_t chunks = (p.n + per - 1) / per;
  // At most 16 slices, at least 2 chunks each where a chunk is one image, and partials of at
  // most 64 MiB in all.
  constexpr int64_t kMaxSlices = 16, kPartialBytes = int64_t(64) << 20;
  int64_t slices = std::min<int64_t>(kMaxSlices, per == 1 ? std::max<int64_t>(1, chunks / 2) : chunks);
  slices = std::max<int64_t>(
      1, std::min<int64_t>(slices, kPartialBytes / std::max<int64_t>(1, dwElems * int64_t(sizeof(T)))));
  const int64_t perSlice = (chunks + slices - 1) / slices;  // chunks a slice
  slices = (chunks + perSlice - 1) / perSlice;
  // Slice 0 sums straight into dw; the others into partials[s - 1].
  std::vector<T> partials(size_t((slices - 1) * dwElems));
  auto slice = [&](int64_t s) {
    T* out = s == 0 ? dw : partials.data() + (s - 1) * dwElems;
    const int64_t c0 = s * perSlice, c1 = std::min(chunks, c0 + perSlice);
    if (per == 1) {  // one image a product: its dy and cols as they are
      Scratch<T> buf(p, s == 0 ? scratch : nullptr, /*needed=*/!p.isPointwise());
      for (int64_t n = c0; n < c1; ++n)
        for (int64_t g = 0; g < p.groups; ++g) {
          const T* xg = x + (n * p.c + g * gp.c) * p.h * p.w;
          const T* cols = xg;
          if (!p.isPointwise()) {
            im2col(gp, xg, buf.get());
            cols = buf.get();
          }
          gemm(false, true, gp.o, K, P, T(1), dy + (n * p.o + g * gp.o) * P, cols, n == c0 ? T(0) : T(1),
               out + g * gp.o * K);
        }
      return;
    }
    // Images side by side: dyC[o, j·P + q] = dy[n0 + j, o, q], colsC[k, j·P + q] = cols_{n0+j}[k, q].
    Scratch<T> buf(p, nullptr, /*needed=*/!p.isPointwise());
    std::vector<T> dyC(size_t(gp.o * per * P)), colsC(size_t(K * per * P));
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t n0 = c * per, count = std::min(per, p.n - n0), width = count * P;
      for (int64_t g = 0; g < p.groups; ++g) {
        for (int64_t j = 0; j < count; ++j) {
          const T* xg = x + ((n0 + j) * p.c + g * gp.c) * p.h * p.w;
          const T* cols = xg;
          if (!p.isPointwise()) {
            im2col(gp, xg, buf.get());
            cols = buf.get();
          }
          for (int64_t k = 0; k < K; ++k) std::copy_n(cols + k * P, P, colsC.data() + k * width + j * P);
          const T* dyg = dy + ((n0 + j) * p.o + g * gp.o) * P;
          for (int64_t o = 0; o < gp.o; ++o) std::copy_n(dyg + o * P, P, dyC.data() + o * width + j * P);
        }
        gemm(false, true, gp.o, K, width, T(1), dyC.data(), colsC.data(), c == c0 ? T(0) : T(1), out + g * gp.o * K);
      }
    }
  };
  if (slices == 1) {
    slice(0);
    return;
  }
  parallelFor(slices, 1, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) slice(s);
  });
  parallelFor(dwElems, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T sum = dw[i];
      for (int64_t s = 1; s < slices; ++s) sum += partials[size_t((s - 1) * dwElems + i)];
      dw[i] = sum;
    }
  });
}

template <typename T>
void conv2dBackwardBias(const Conv2dParams& p, const T* dy, T* db) {
  const int64_t P = p.colCols();
  parallelFor(p.o, grainFor(p.n * P), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      double acc = 0;
      for (int64_t n = 0; n < p.n; ++n) acc += detail::sumAsDouble(dy + (n * p.o + o) * P, P);
      db[o] = T(acc);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------

namespace {

// The in-image part [y0, y1) x [x0, x1) of the window of output (oy, ox).
struct Window {
  int64_t y0, y1, x0, x1;
};
Window poolWindow(const Pool2dParams& p, int64_t oy, int64_t ox) {
  int64_t ys = oy * p.strideH - p.padTop, xs = ox * p.strideW - p.padLeft;
  return {std::max<int64_t>(ys, 0), std::min(ys + p.kh, p.h), std::max<int64_t>(xs, 0), std::min(xs + p.kw, p.w)};
}

// Flat index (within the plane) of the window's maximum: first max wins, a NaN is taken
// like PyTorch (`val > max || isnan(val)`); -1 for a window of padding only.
template <typename T>
int64_t windowArgmax(const T* plane, int64_t width, const Window& win) {
  int64_t best = -1;
  T bestVal = -std::numeric_limits<T>::infinity();
  for (int64_t iy = win.y0; iy < win.y1; ++iy)
    for (int64_t ix = win.x0; ix < win.x1; ++ix) {
      T v = plane[iy * width + ix];
      if (v > bestVal || std::isnan(v) || best < 0) {
        bestVal = v;
        best = iy * width + ix;
      }
    }
  return best;
}

}  // namespace

namespace {

// The non-overlapping 2x2 / stride 2 / unpadded pooling of most CNNs, branch-free (every
// window whole: ceil mode over an odd extent has a partial last window).
bool isPlain2x2(const Pool2dParams& p) {
  return p.kh == 2 && p.kw == 2 && p.strideH == 2 && p.strideW == 2 && p.padTop == 0 && p.padLeft == 0 &&
         p.padBottom == 0 && p.padRight == 0 && 2 * p.outH() <= p.h && 2 * p.outW() <= p.w;
}

// windowArgmax's update rule: take v over the running max m when greater or NaN.
// Bitwise | and & (not || and &&) keep the pooling loops free of branches.
template <typename T>
bool takes(T v, T m) {
  return (v > m) | (v != v);
}

}  // namespace

namespace {
// The planes (image, channel) of a pooling kernel run in parallel: each is independent.
// A window larger than the plane (huge kernel, padding=same) visits at most the plane: the
// estimate saturates rather than wrap.
int64_t planeGrain(const Pool2dParams& p) {
  const int64_t window = saturatingMul(std::min(p.kh, p.h), std::min(p.kw, p.w));
  return grainFor(std::max(p.h * p.w, saturatingMul(p.outH() * p.outW(), window)));
}
}  // namespace

template <typename T>
void maxPool2dForward(const Pool2dParams& p, const T* x, T* y) {
  const int64_t OH = p.outH(), OW = p.outW();
  parallelFor(p.n * p.c, planeGrain(p), [&](int64_t planeBegin, int64_t planeEnd) {
    for (int64_t plane = planeBegin; plane < planeEnd; ++plane) {
      const T* xp = x + plane * p.h * p.w;
      T* yp = y + plane * OH * OW;
      if (isPlain2x2(p)) {
        for (int64_t oy = 0; oy < OH; ++oy) {
          const T* r0 = xp + 2 * oy * p.w;
          const T* r1 = r0 + p.w;
          T* yr = yp + oy * OW;
          for (int64_t ox = 0; ox < OW; ++ox) {
            T m = r0[2 * ox];  // row-major window order: a b / c d
            m = takes(r0[2 * ox + 1], m) ? r0[2 * ox + 1] : m;
            m = takes(r1[2 * ox], m) ? r1[2 * ox] : m;
            m = takes(r1[2 * ox + 1], m) ? r1[2 * ox + 1] : m;
            yr[ox] = m;
          }
        }
        continue;
      }
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          int64_t i = windowArgmax(xp, p.w, poolWindow(p, oy, ox));
          yp[oy * OW + ox] = i < 0 ? -std::numeric_limits<T>::infinity() : xp[i];
        }
    }
  });
}

template <typename T>
void maxPool2dBackward(const Pool2dParams& p, const T* x, const T* dy, T* dx) {
  const int64_t OH = p.outH(), OW = p.outW();
  parallelFor(p.n * p.c, planeGrain(p), [&](int64_t planeBegin, int64_t planeEnd) {
    std::fill(dx + planeBegin * p.h * p.w, dx + planeEnd * p.h * p.w, T(0));
    for (int64_t plane = planeBegin; plane < planeEnd; ++plane) {
      const T* xp = x + plane * p.h * p.w;
      const T* dyp = dy + plane * OH * OW;
      T* dxp = dx + plane * p.h * p.w;
      if (isPlain2x2(p)) {
        // Windows do not overlap: each writes dy at its argmax and 0 at its other pixels.
        for (int64_t oy = 0; oy < OH; ++oy) {
          const T* r0 = xp + 2 * oy * p.w;
          const T* r1 = r0 + p.w;
          T* d0 = dxp + 2 * oy * p.w;
          T* d1 = d0 + p.w;
          for (int64_t ox = 0; ox < OW; ++ox) {
            const T a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
            const T g = dyp[oy * OW + ox];
            // Walk a b / c d like windowArgmax, moving g along with the running max; float
            // selects only, so the loop vectorizes.
            const bool tb = takes(b, a);
            const T mb = tb ? b : a;
            const T ga = tb ? T(0) : g, gb = tb ? g : T(0);
            const bool tc = takes(c, mb);
            const T mc = tc ? c : mb;
            const T ga2 = tc ? T(0) : ga, gb2 = tc ? T(0) : gb, gc = tc ? g : T(0);
            const bool td = takes(d, mc);
            d0[2 * ox] = td ? T(0) : ga2;
            d0[2 * ox + 1] = td ? T(0) : gb2;
            d1[2 * ox] = td ? T(0) : gc;
            d1[2 * ox + 1] = td ? g : T(0);
          }
        }
        continue;
      }
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          int64_t i = windowArgmax(xp, p.w, poolWindow(p, oy, ox));
          if (i >= 0) dxp[i] += dyp[oy * OW + ox];
        }
    }
  });
}

namespace {

// The divisor of average window (oy, ox): see avgPoolSpan.
int64_t avgPoolDivisor(const Pool2dParams& p, int64_t oy, int64_t ox) {
  const AvgPoolSpan ys = avgPoolSpan(oy * p.strideH - p.padTop, p.kh, p.h, p.padBottom);
  const AvgPoolSpan xs = avgPoolSpan(ox * p.strideW - p.padLeft, p.kw, p.w, p.padRight);
  // Padding may be as wide as a huge window (padding=same): the padded count saturates.
  return p.countIncludePad ? saturatingMul(ys.padded, xs.padded) : (ys.end - ys.begin) * (xs.end - xs.begin);
}

}  // namespace

template <typename T>
void avgPool2dForward(const Pool2dParams& p, const T* x, T* y) {
  const int64_t OH = p.outH(), OW = p.outW();
  parallelFor(p.n * p.c, planeGrain(p), [&](int64_t planeBegin, int64_t planeEnd) {
    for (int64_t plane = planeBegin; plane < planeEnd; ++plane) {
      const T* xp = x + plane * p.h * p.w;
      T* yp = y + plane * OH * OW;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          Window win = poolWindow(p, oy, ox);
          double acc = 0;
          for (int64_t iy = win.y0; iy < win.y1; ++iy)
            for (int64_t ix = win.x0; ix < win.x1; ++ix) acc += double(xp[iy * p.w + ix]);
          yp[oy * OW + ox] = T(acc / double(avgPoolDivisor(p, oy, ox)));
        }
    }
  });
}

template <typename T>
void avgPool2dBackward(const Pool2dParams& p, const T* dy, T* dx) {
  const int64_t OH = p.outH(), OW = p.outW();
  parallelFor(p.n * p.c, planeGrain(p), [&](int64_t planeBegin, int64_t planeEnd) {
    std::fill(dx + planeBegin * p.h * p.w, dx + planeEnd * p.h * p.w, T(0));
    for (int64_t plane = planeBegin; plane < planeEnd; ++plane) {
      const T* dyp = dy + plane * OH * OW;
      T* dxp = dx + plane * p.h * p.w;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          Window win = poolWindow(p, oy, ox);
          T g = dyp[oy * OW + ox] / T(avgPoolDivisor(p, oy, ox));
          for (int64_t iy = win.y0; iy < win.y1; ++iy)
            for (int64_t ix = win.x0; ix < win.x1; ++ix) dxp[iy * p.w + ix] += g;
        }
    }
  });
}

#define SHOAL_INSTANTIATE(T)                                                                           \
  template void im2col<T>(const Conv2dParams&, const T*, T*);                                          \
  template void col2im<T>(const Conv2dParams&, const T*, T*);                                          \
  template void conv2dForward<T>(const Conv2dParams&, const T*, const T*, const T*, T*, T*);           \
  template void conv2dBackwardData<T>(const Conv2dParams&, const T*, const T*, T*, T*);                \
  template void conv2dBackwardWeight<T>(const Conv2dParams&, const T*, const T*, T*, T*);              \
  template void conv2dBackwardBias<T>(const Conv2dParams&, const T*, T*);                              \
  template void maxPool2dForward<T>(const Pool2dParams&, const T*, T*);                                \
  template void maxPool2dBackward<T>(const Pool2dParams&, const T*, const T*, T*);                     \
  template void avgPool2dForward<T>(const Pool2dParams&, const T*, T*);                                \
  template void avgPool2dBackward<T>(const Pool2dParams&, const T*, T*);
SHOAL_INSTANTIATE(float)
SHOAL_INSTANTIATE(double)
#undef SHOAL_INSTANTIATE

}  // namespace shoal::cpu
