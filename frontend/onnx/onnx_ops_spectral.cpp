// ONNX's signal ops: DFT and STFT as products with constant DFT matrices (cos and sin of the
// angles, computed at import in double); MelWeightMatrix and the window functions computed at
// import. The spectra
// are real [.., 2] pairs (real, imaginary), as ONNX represents complex values.
#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "frontend/onnx/onnx_fold.h"
#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

// A scalar input known at import (an attribute-like input: dft_length, axis, frame_step).
int64_t scalarInt(NodeContext& c, size_t i, std::string_view what) {
  auto v = c.constantInts(i, what);
  if (v.size() != 1) c.invalid(fmt::format("{} must be a scalar", what));
  return v[0];
}

double scalarFloat(NodeContext& c, size_t i, std::string_view what) {
  auto v = c.constantFloats(i, what);
  if (v.size() != 1) c.invalid(fmt::format("{} must be a scalar", what));
  return v[0];
}

// x permuted, or x itself for the identity permutation.
Value* transposed(NodeContext& c, Value* x, const std::vector<int64_t>& perm, const std::string& s) {
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == int64_t(i);
  return identity ? x : transposeOp(c, x, perm, s);
}

}  // namespace

// The discrete Fourier transform of x [..., L, 1 or 2] along `axis` (a signal axis, not the
// last): Y[k] = scale · Σ_j X[j] e^{±2πi jk/n} for k < n (n/2 + 1 when onesided), the signal
// cut or zero-padded to n (numpy.fft.fft's n), scale 1/n and + for the inverse. As products:
// Re Y = a·C − b·S, Im Y = a·S + b·C with C, S the [L, K] matrices of scale·cos θ and
// scale·sin θ (θ = ±2π (jk mod n) / n; rows j ≥ n zero), a and b the real and imaginary parts.
Value* dftAlong(NodeContext& c, Value* x, int64_t axis, int64_t n, bool inverse, bool onesided, const std::string& tag) {
  const Shape xs = x->type().shape;
  DType dt = x->type().dtype;
  int64_t r = int64_t(xs.size());
  if (r < 2 || (xs.back() != 1 && xs.back() != 2))
    c.invalid(fmt::format("the signal {} must end in an axis of 1 (real) or 2 (complex)", x->type().str()));
  if (axis < 0 || axis > r - 2) c.invalid(fmt::format("axis {} is not a signal axis of {}", axis, x->type().str()));
  if (n < 1) c.invalid(fmt::format("the DFT length {} is not positive", n));
  if (n > (int64_t(1) << 26)) c.unsupported(fmt::format("a DFT length of {} (the matrices would be too large)", n));
  int64_t L = xs[size_t(axis)], K = onesided ? n / 2 + 1 : n;
  if (L * K > (int64_t(1) << 26)) c.unsupported(fmt::format("a DFT of {} by {} (the matrices would be too large)", L, K));
  const double scale = inverse ? 1.0 / double(n) : 1.0, sign = inverse ? 1.0 : -1.0;
  Tensor cosM(dt, {L, K}), sinM(dt, {L, K});
  for (int64_t j = 0; j < std::min(L, n); ++j)
    for (int64_t k = 0; k < K; ++k) {
      double theta = sign * 2 * std::numbers::pi * double((j * k) % n) / double(n);
      cosM.set(j * K + k, scale * std::cos(theta));
      sinM.set(j * K + k, scale * std::sin(theta));
    }
  // The signal axis last among the signal axes, as rows [R, L].
  std::vector<int64_t> order;
  Shape others;
  for (int64_t d = 0; d < r - 1; ++d)
    if (d != axis) order.push_back(d), others.push_back(xs[size_t(d)]);
  order.push_back(axis);
  int64_t rows = numElements(others);
  Shape signal(xs.begin(), xs.end() - 1);
  auto part = [&](int64_t p, const std::string& s) {
    Value* v = c.reshape(xs.back() == 1 ? x : sliceOp(c, x, {p}, {p + 1}, {r - 1}, {1}, tag + s + "_part"), signal, tag + s);
    return c.reshape(transposed(c, v, order, tag + s + "_last"), {rows, L}, tag + s + "_rows");
  };
  Value* C = c.constantValue(cosM, tag + "cos");
  Value* S = c.constantValue(sinM, tag + "sin");
  Value* a = part(0, "re_in");
  Value* re = c.emit(OpKind::MatMul, {a, C}, {}, tag + "a_cos");
  Value* im = c.emit(OpKind::MatMul, {a, S}, {}, tag + "a_sin");
  if (xs.back() == 2) {
    Value* b = part(1, "im_in");
    re = c.emit(OpKind::Sub, {re, c.emit(OpKind::MatMul, {b, S}, {}, tag + "b_sin")}, {}, tag + "re");
    im = c.emit(OpKind::Add, {im, c.emit(OpKind::MatMul, {b, C}, {}, tag + "b_cos")}, {}, tag + "im");
  }
  Attrs cat;
  cat.set("axis", int64_t(2));
  Value* y = c.emit(OpKind::Concat, {c.reshape(re, {rows, K, 1}, tag + "re3"), c.reshape(im, {rows, K, 1}, tag + "im3")},
                    cat, tag + "pairs");
  Shape ys = others;
  ys.push_back(K);
  ys.push_back(2);
  y = c.reshape(y, ys, tag + "unrows");
  // Back to the input's axis order: [others..., K, 2] -> the K axis at `axis`.
  int64_t m = int64_t(others.size());
  std::vector<int64_t> back;
  for (int64_t t = 0; t < r - 1; ++t) back.push_back(t == axis ? m : (t < axis ? t : t - 1));
  back.push_back(m + 1);
  return transposed(c, y, back, tag + "in_place");
}

// DFT (opset 17: axis attribute, default 1; opset 20: axis input, default -2).
void lowerDFT(NodeContext& c) {
  c.requireFloat(0);
  int64_t r = c.rank(0);
  bool inverse = c.attrInt("inverse", 0) != 0, onesided = c.attrInt("onesided", 0) != 0;
  int64_t axis;
  if (c.opset() >= 20) {
    axis = c.has(2) ? scalarInt(c, 2, "axis") : -2;
  } else {
    axis = c.attrInt("axis", 1);
  }
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r - 2) c.invalid(fmt::format("axis {} is out of range for {}", axis, c.type(0).str()));
  int64_t n = c.has(1) ? scalarInt(c, 1, "dft_length") : c.shape(0)[size_t(axis)];
  c.setOutput(0, dftAlong(c, c.value(0), axis, n, inverse, onesided, ""));
}

// STFT: frames of the signal [batch, L, 1 or 2] (frame f: samples f·step .. f·step + W − 1, W
// the window's length, zeros past the end) gathered at once, weighted by the window, then a
// DFT of frame_length along the frame's samples: [batch, frames, bins, 2].
void lowerSTFT(NodeContext& c) {
  c.requireFloat(0);
  const Shape& xs = c.shape(0);
  if (xs.size() != 3) c.invalid(fmt::format("the signal must be [batch, length, 1 or 2], got {}", c.type(0).str()));
  bool onesided = c.attrInt("onesided", 1) != 0;
  int64_t step = scalarInt(c, 1, "frame_step");
  if (step < 1) c.invalid(fmt::format("frame_step {} is not positive", step));
  bool hasWindow = c.has(2);
  int64_t L = xs[1];
  if (hasWindow && c.rank(2) != 1) c.invalid(fmt::format("the window must be 1-D, got {}", c.type(2).str()));
  int64_t frameLength = c.has(3) ? scalarInt(c, 3, "frame_length") : (hasWindow ? c.shape(2)[0] : L);
  int64_t W = hasWindow ? c.shape(2)[0] : frameLength;
  if (frameLength < 1 || W < 1) c.invalid(fmt::format("frame_length {} and window length {}", frameLength, W));
  if (frameLength > L) c.invalid(fmt::format("frame_length {} exceeds the signal's {} samples", frameLength, L));
  int64_t frames = 1 + (L - frameLength) / step;
  if (frames * W > (int64_t(1) << 26)) c.unsupported(fmt::format("{} frames of {} samples (too many)", frames, W));
  Tensor idx(DType::I64, {frames, W});
  int64_t last = 0;
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t j = 0; j < W; ++j) {
      int64_t p = f * step + j;
      idx.data<int64_t>()[f * W + j] = p;
      last = std::max(last, p);
    }
  Value* x = c.value(0);
  if (last >= L) {
    // Samples past the end read zeros appended to the signal.
    Attrs cat;
    cat.set("axis", int64_t(1));
    x = c.emit(OpKind::Concat, {x, c.constantValue(Tensor(c.dtype(0), {xs[0], last + 1 - L, xs[2]}), "zeros")}, cat,
               "padded");
  }
  Attrs g;
  g.set("axis", int64_t(1));
  Value* framed = c.emit(OpKind::Gather, {x, c.constantValue(idx, "frame_index")}, g, "frames");  // [B, F, W, c]
  if (hasWindow) {
    if (c.dtype(2) != c.dtype(0)) c.invalid(fmt::format("window {} and signal {} differ in type", c.type(2).str(), c.type(0).str()));
    framed = c.emit(OpKind::Mul, {framed, c.reshape(c.value(2), {1, 1, W, 1}, "window4d")}, {}, "windowed");
  }
  c.setOutput(0, dftAlong(c, framed, 2, frameLength, false, onesided, "dft_"));
}

// MelWeightMatrix: the [dft_length/2 + 1, num_mel_bins] triangular filter bank, computed at
// import as ONNX's reference does (its mel step divides by num_mel_bins + 2, its bin edges
// are floored).
void lowerMelWeightMatrix(NodeContext& c) {
  int64_t mels = scalarInt(c, 0, "num_mel_bins"), dftLength = scalarInt(c, 1, "dft_length");
  double rate = scalarFloat(c, 2, "sample_rate"), lo = scalarFloat(c, 3, "lower_edge_hertz"),
         hi = scalarFloat(c, 4, "upper_edge_hertz");
  int64_t outType = c.attrInt("output_datatype", onnx::TensorProto::FLOAT);
  auto dt = dtypeFromOnnx(int32_t(outType));
  if (!dt || !isFloat(*dt)) c.unsupported(fmt::format("output_datatype {}", onnxTypeName(int32_t(outType))));
  if (mels < 1 || dftLength < 1 || !(rate > 0) || !(lo >= 0) || !(hi > lo))
    c.invalid(fmt::format("num_mel_bins {}, dft_length {}, sample_rate {}, edges {}..{}", mels, dftLength, rate, lo, hi));
  if (dftLength > (int64_t(1) << 26) || mels > (int64_t(1) << 20))
    c.unsupported(fmt::format("a filter bank of {} bins by {} mels (too large to compute at import)", dftLength / 2 + 1, mels));
  int64_t bins = dftLength / 2 + 1;
  if (bins * mels > (int64_t(1) << 26)) c.unsupported("a filter bank too large to compute at import");
  double loMel = 2595 * std::log10(1 + lo / 700), hiMel = 2595 * std::log10(1 + hi / 700);
  double melStep = (hiMel - loMel) / double(mels + 2);
  std::vector<int64_t> edge(size_t(mels + 2));
  for (int64_t i = 0; i < mels + 2; ++i) {
    double hz = 700 * (std::pow(10.0, (double(i) * melStep + loMel) / 2595) - 1);
    edge[size_t(i)] = int64_t(std::floor(double(dftLength + 1) * hz / rate));
  }
  Tensor out(*dt, {bins, mels});
  auto put = [&](int64_t j, int64_t i, double v) {
    if (j < 0 || j >= bins)
      c.invalid(fmt::format("mel bin {} reaches spectrogram bin {} of {} (upper_edge_hertz above the Nyquist rate?)", i, j,
                            bins));
    out.set(j * mels + i, v);
  };
  for (int64_t i = 0; i < mels; ++i) {
    int64_t left = edge[size_t(i)], centre = edge[size_t(i + 1)], right = edge[size_t(i + 2)];
    if (centre == left)
      put(centre, i, 1);
    else
      for (int64_t j = left; j <= centre; ++j) put(j, i, double(j - left) / double(centre - left));
    for (int64_t j = centre; j < right; ++j) put(j, i, double(right - j) / double(right - centre));
  }
  c.setKnownOutput(0, out);
}

// HannWindow, HammingWindow, BlackmanWindow: computed at import from their size (known, or fed
// by the run, as any shape): a0 − a1·cos(2πn/N) + a2·cos(4πn/N), N the size (periodic, the
// default) or the size − 1 (symmetric).
void lowerWindow(NodeContext& c) {
  int64_t size = scalarInt(c, 0, "size");
  bool periodic = c.attrInt("periodic", 1) != 0;
  int64_t outType = c.attrInt("output_datatype", onnx::TensorProto::FLOAT);
  auto dt = dtypeFromOnnx(int32_t(outType));
  if (!dt || !isFloat(*dt)) c.unsupported(fmt::format("output_datatype {}", onnxTypeName(int32_t(outType))));
  if (size < 1 || size > (int64_t(1) << 24)) c.invalid(fmt::format("window size {}", size));
  double a0, a1, a2 = 0;
  if (c.opType() == "HannWindow") {
    a0 = 0.5, a1 = 0.5;
  } else if (c.opType() == "HammingWindow") {
    a0 = 25.0 / 46.0, a1 = 1 - a0;
  } else {
    a0 = 0.42, a1 = 0.5, a2 = 0.08;
  }
  double N = periodic ? double(size) : double(size - 1);
  Tensor w(*dt, {size});
  for (int64_t n = 0; n < size; ++n) {
    double t = N > 0 ? 2 * std::numbers::pi * double(n) / N : 0.0;
    w.set(n, a0 - a1 * std::cos(t) + a2 * std::cos(2 * t));
  }
  c.setKnownOutput(0, w);
}

}  // namespace shoal::onnx_import
