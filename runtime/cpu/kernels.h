// CPU reference kernels: plain-pointer, row-major math the interpreter runs (the numerical reference).
#pragma once

// Conventions shared by every kernel here:
//  - T is float or double (each template is explicitly instantiated for both);
//  - buffers are dense, contiguous, row-major; activations NCHW, conv weights OIHW,
//    dense weights [out, in], biases [out] (PyTorch layouts);
//  - outputs are overwritten, never accumulated into, unless a comment says otherwise;
//  - elementwise kernels allow the output to alias an input of the same shape;
//  - the IR has validated shapes before a kernel runs, so shape mismatches are internal
//    errors (assert); data a user supplies (class labels) is checked and reported instead;
//  - long sums accumulate in double, also for float.

#include <cstdint>

#include <shoal/types.h>
#include <vector>

#include "ir/conv_geometry.h"
#include "ir/ops.h"

namespace shoal::cpu {

// ---------------------------------------------------------------------------------------
// Matrix products and layout
// ---------------------------------------------------------------------------------------

/// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, through OpenBLAS. op(A) is [M,K]
/// (A is stored [K,M] when transA), op(B) is [K,N] (B stored [N,K] when transB). With
/// beta == 0, C need not be initialized (NaNs in it are not propagated).
template <typename T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B, T beta,
          T* C);

/// `batch` independent gemms: C_i = alpha * op(A_i) op(B_i) + beta * C_i, with A_i = A + i *
/// strideA etc. A stride of 0 reuses the same matrix for every batch entry (broadcast).
template <typename T>
void gemmBatched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                 int64_t strideA, const T* B, int64_t strideB, T beta, T* C, int64_t strideC);

/// y[cols, rows] = x[rows, cols]ᵀ (cache-blocked). x and y must not alias.
template <typename T>
void transpose2d(int64_t rows, int64_t cols, const T* x, T* y);

/// General axis permutation: y has shape inShape[perm[0]], inShape[perm[1]], ... and
/// y[i_perm0, i_perm1, ...] = x[i_0, i_1, ...] (numpy.transpose(x, perm)). No aliasing.
template <typename T>
void permute(const Shape& inShape, const std::vector<int64_t>& perm, const T* x, T* y);

// ---------------------------------------------------------------------------------------
// Dense (fully connected) layers: y = x wᵀ + b, w is [out, in]
// ---------------------------------------------------------------------------------------

/// y[batch, out] = x[batch, in] · w[out, in]ᵀ + bias[out] (bias may be null).
template <typename T>
void denseForward(int64_t batch, int64_t in, int64_t out, const T* x, const T* w, const T* bias, T* y);

/// Gradients of denseForward given dy[batch, out]: dx = dy · w ([batch, in]), dw = dyᵀ · x
/// ([out, in]), db = Σ_batch dy ([out]). Any of dx, dw, db may be null to skip it.
template <typename T>
void denseBackward(int64_t batch, int64_t in, int64_t out, const T* x, const T* w, const T* dy, T* dx, T* dw,
                   T* db);

// ---------------------------------------------------------------------------------------
// Convolution (cross-correlation, NCHW activations, OIHW weights)
// ---------------------------------------------------------------------------------------

/// Shape and geometry of a 2-D convolution: input [n, c, h, w], weight [o, c / groups, kh, kw],
/// output [n, o, outH(), outW()]. Padding is explicit per side (zeros), PyTorch's floor rule.
/// With groups > 1, filters [g·o/groups, (g+1)·o/groups) read channels [g·c/groups, (g+1)·c/groups).
struct Conv2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t o = 1, kh = 1, kw = 1;
  int64_t strideH = 1, strideW = 1;
  int64_t padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
  int64_t dilationH = 1, dilationW = 1;
  int64_t groups = 1;

  /// (h + padTop + padBottom - dilationH*(kh-1) - 1) / strideH + 1
  int64_t outH() const { return (h + padTop + padBottom - dilationH * (kh - 1) - 1) / strideH + 1; }
  /// (w + padLeft + padRight - dilationW*(kw-1) - 1) / strideW + 1
  int64_t outW() const { return (w + padLeft + padRight - dilationW * (kw - 1) - 1) / strideW + 1; }
  /// Rows of one group's im2col matrix: (c / groups) * kh * kw.
  int64_t colRows() const { return c / groups * kh * kw; }
  /// Columns of the im2col matrix (output pixels of one image): outH * outW.
  int64_t colCols() const { return outH() * outW(); }
  /// True when the im2col matrix of an image is the image itself (1x1, stride 1, no pad).
  bool isPointwise() const {
    return kh == 1 && kw == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0 &&
           padBottom == 0 && padRight == 0;
  }
  /// One group as a convolution of its own: c / groups channels to o / groups filters.
  Conv2dParams group() const {
    Conv2dParams g = *this;
    g.c = c / groups, g.o = o / groups, g.groups = 1;
    return g;
  }
};

/// Elements of scratch memory any conv2d* kernel below needs for `p` (one image's im2col
/// matrix, colRows() * colCols(); 0 for pointwise convolutions), saturating at INT64_MAX.
/// The kernels allocate it when given none, throwing std::bad_alloc when they cannot.
int64_t conv2dScratchElems(const Conv2dParams& p);

/// Unfolds one image x[c, h, w] into cols[c*kh*kw, outH*outW]: row (ci, ki, kj), column
/// (oy, ox) holds x[ci, oy*strideH - padTop + ki*dilationH, ox*strideW - padLeft + kj*dilationW]
/// or 0 outside the image. (p.n is ignored; p.groups must be 1: unfold one group with p.group()
/// and its first channel.)
template <typename T>
void im2col(const Conv2dParams& p, const T* x, T* cols);

/// Adjoint of im2col: x[c, h, w] = Σ of the cols entries that im2col would read from each
/// pixel. x is overwritten (zeroed first). (p.n is ignored; p.groups must be 1, as for im2col.)
template <typename T>
void col2im(const Conv2dParams& p, const T* cols, T* x);

/// y[n, o, oy, ox] = bias[o] + Σ_{c,ki,kj} w[o,c,ki,kj] · x[n, g·C + c, oy*sH - pT + ki*dH, ox*sW - pL + kj*dW],
/// c over the C = p.c / groups channels of o's group g. bias may be null. scratch:
/// conv2dScratchElems(p) elements, or null to allocate per call.
template <typename T>
void conv2dForward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y, T* scratch = nullptr);

/// dx[n, c, h, w] = gradient of Σ dy·y with respect to x (overwritten). scratch as above.
template <typename T>
void conv2dBackwardData(const Conv2dParams& p, const T* dy, const T* w, T* dx, T* scratch = nullptr);

/// dw[o, c, kh, kw] = gradient with respect to the weight, summed over the batch
/// (overwritten, not accumulated). scratch as above.
template <typename T>
void conv2dBackwardWeight(const Conv2dParams& p, const T* x, const T* dy, T* dw, T* scratch = nullptr);

/// db[o] = Σ_{n, oy, ox} dy[n, o, oy, ox] (overwritten).
template <typename T>
void conv2dBackwardBias(const Conv2dParams& p, const T* dy, T* db);

// ---------------------------------------------------------------------------------------
// Pooling (NCHW)
// ---------------------------------------------------------------------------------------

/// Shape and geometry of 2-D pooling: input [n, c, h, w], output [n, c, outH(), outW()],
/// floor or ceil mode as PyTorch's ceil_mode (poolOutputSize). Set the strides explicitly:
/// PyTorch's default stride is the kernel size, these fields default to 1.
struct Pool2dParams {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t kh = 1, kw = 1;
  int64_t strideH = 1, strideW = 1;
  int64_t padTop = 0, padLeft = 0, padBottom = 0, padRight = 0;
  bool ceilMode = false;         ///< PyTorch's ceil_mode: a last, partial window
  bool countIncludePad = true;   ///< average pooling: padding counts in the divisor

  int64_t outH() const { return poolOutputSize(h, kh, strideH, padTop, padBottom, ceilMode); }
  int64_t outW() const { return poolOutputSize(w, kw, strideW, padLeft, padRight, ceilMode); }
};

/// y = max over each window; padding counts as -inf (never selected unless a window holds
/// only padding, in which case y is -inf). NaN inputs propagate like PyTorch.
template <typename T>
void maxPool2dForward(const Pool2dParams& p, const T* x, T* y);

/// dx = dy routed to the argmax of each window, recomputed from x (the first maximum in
/// row-major window order wins ties, as in PyTorch). dx is zeroed, then accumulated into
/// (overlapping windows add up).
template <typename T>
void maxPool2dBackward(const Pool2dParams& p, const T* x, const T* dy, T* dx);

/// y = window sum / divisor, PyTorch's AvgPool2d: with countIncludePad the divisor is the
/// window's part inside the padded input (kh*kw, except for ceil mode's partial windows), else
/// its part inside the image (avgPoolSpan).
template <typename T>
void avgPool2dForward(const Pool2dParams& p, const T* x, T* y);

/// Gradient of avgPool2dForward: each dy spread evenly, dy / divisor, over the in-image
/// pixels of its window. dx is overwritten.
template <typename T>
void avgPool2dBackward(const Pool2dParams& p, const T* dy, T* dx);

// ---------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------

/// The kernels of an elementwise op of ir/ops.def, built from its formula (the only place the
/// op's arithmetic is written). `params` holds the op's float attributes in formula order
/// (formulaParams(node)); `in` one pointer per operand.
template <typename T>
struct FormulaKernel {
  /// y[i] = formula(in[0][i], in[1][i], ...) for i < n, all operands of n elements. y may
  /// alias an operand.
  void (*same)(int64_t n, const T* const* in, const T* params, T* y) = nullptr;
  /// Binary ops: y = formula(a, b) with NumPy broadcasting to outShape (y may alias an
  /// operand of outShape). Null for other arities.
  void (*broadcast2)(const Shape& outShape, const Shape& aShape, const T* a, const Shape& bShape, const T* b,
                     const T* params, T* y) = nullptr;
};

/// The kernels of elementwise op `kind` (both null for ops that are not elementwise).
template <typename T>
const FormulaKernel<T>& formulaKernel(OpKind kind);

/// y = the elementwise op `kind` over `operands` broadcast to `outShape` (any arity; operands
/// of outShape may alias y).
template <typename T>
void elementwise(OpKind kind, const Shape& outShape, const std::vector<Shape>& shapes, const std::vector<const T*>& operands,
                 const T* params, T* y);

/// True when aShape and bShape broadcast (NumPy rules: right-aligned, each pair of extents
/// equal or one of them 1) to exactly outShape.
bool broadcastsTo(const Shape& aShape, const Shape& bShape, const Shape& outShape);

// ---------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------

/// Inverse of broadcasting: y (outShape) = x (inShape) summed over every dimension that
/// broadcasting outShape to inShape would have repeated (leading dimensions outShape lacks,
/// and its size-1 dimensions where inShape is larger). outShape must broadcast to inShape.
template <typename T>
void reduceSumToShape(const Shape& inShape, const T* x, const Shape& outShape, T* y);

/// Reduction kinds of `reduce`.
enum class ReduceKind { Sum, Mean, Max, Min, Prod };

/// Reduces x (inShape) over `axes` (each in [-rank, rank), negative counts from the back,
/// duplicates ignored; empty means all axes). y holds the remaining dimensions in order;
/// keepdims only changes the shape the caller reports, not the layout, so it is not a
/// parameter. Max and Min propagate NaN (torch.amax/amin); Max of an empty range is -inf,
/// Min +inf; Mean of one is NaN.
template <typename T>
void reduce(ReduceKind kind, const Shape& inShape, const T* x, const std::vector<int64_t>& axes, T* y);

/// The shape `reduce` produces: inShape without the reduced axes, or with them set to 1
/// when keepDims.
Shape reducedShape(const Shape& inShape, const std::vector<int64_t>& axes, bool keepDims);

// ---------------------------------------------------------------------------------------
// Softmax and losses (rows × cols, softmax over each row)
// ---------------------------------------------------------------------------------------

/// y = exp(x - max) / Σ exp(x - max) per row. y may alias x.
template <typename T>
void softmax(int64_t rows, int64_t cols, const T* x, T* y);

/// y = x - max - log Σ exp(x - max) per row. y may alias x.
template <typename T>
void logSoftmax(int64_t rows, int64_t cols, const T* x, T* y);

/// dx = y ⊙ (dy - Σ_row dy⊙y), given the softmax output y. dx may alias dy.
template <typename T>
void softmaxBackward(int64_t rows, int64_t cols, const T* y, const T* dy, T* dx);

/// dx = dy - exp(y) ⊙ Σ_row dy, given the log-softmax output y. dx may alias dy.
template <typename T>
void logSoftmaxBackward(int64_t rows, int64_t cols, const T* y, const T* dy, T* dx);

/// Index of the first row whose label is outside [0, cols), or -1 when all are valid.
/// L is int32_t, int64_t or uint8_t (the label dtypes a data source produces).
template <typename L>
int64_t firstInvalidLabel(int64_t rows, int64_t cols, const L* labels);

/// Softmax cross-entropy with integer class labels: *loss = mean over rows of
/// (logsumexp(row) - row[label]); probs (nullable) receives the softmax. With label smoothing
/// e (PyTorch's CrossEntropyLoss(label_smoothing=e)) the target row is (1-e)·onehot + e/cols,
/// so a row's loss is (1-e)(logsumexp - row[label]) + e(logsumexp - mean(row)). Returns
/// false, writing nothing, when a label lies outside [0, cols) (user data; see firstInvalidLabel).
template <typename T, typename L>
bool softmaxCrossEntropy(int64_t rows, int64_t cols, const T* logits, const L* labels, T* loss, T* probs = nullptr,
                         T labelSmoothing = T(0));

/// dlogits = dloss · (softmax(logits) - (1-e)·onehot(labels) - e/cols) / rows. Returns false,
/// writing nothing, when a label is out of range.
template <typename T, typename L>
bool softmaxCrossEntropyBackward(int64_t rows, int64_t cols, const T* logits, const L* labels, T dloss, T* dlogits,
                                 T labelSmoothing = T(0));

/// *loss = mean over all n elements of (pred - target)².
template <typename T>
void mse(int64_t n, const T* pred, const T* target, T* loss);

/// dpred = dloss · 2 (pred - target) / n.
template <typename T>
void mseBackward(int64_t n, const T* pred, const T* target, T dloss, T* dpred);

/// out[r] = index of the largest entry of row r (the first one on ties; NaN counts as the
/// largest, like torch.argmax).
template <typename T>
void argmax(int64_t rows, int64_t cols, const T* x, int64_t* out);

/// Number of rows whose argmax equals the label (out-of-range labels never match).
template <typename T, typename L>
int64_t accuracyCount(int64_t rows, int64_t cols, const T* logits, const L* labels);

// ---------------------------------------------------------------------------------------
// Optimizers (in place on n parameters)
// ---------------------------------------------------------------------------------------

/// PyTorch SGD (dampening 0), after gradient clipping's factor gradScale:
///   g = grad·gradScale + weightDecay·w
///   if momentum != 0:  v = momentum·v + g;  g = nesterov ? g + momentum·v : v
///   w -= lr·g
/// velocity must start zeroed (PyTorch's first-step v = g is the same thing with dampening
/// 0) and may be null when momentum == 0.
template <typename T>
void sgdUpdate(int64_t n, T* w, const T* grad, T* velocity, T lr, T momentum, T weightDecay = T(0),
               bool nesterov = false, T gradScale = T(1));

/// PyTorch Adam, step t counting from 1, m and v starting zeroed (grad first scaled by
/// gradient clipping's factor gradScale):
///   g = grad + weightDecay·w                 (L2; with decoupledWeightDecay (AdamW) instead
///                                             w *= 1 - lr·weightDecay and g = grad)
///   m = β1·m + (1-β1)·g;   v = β2·v + (1-β2)·g²
///   w -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps)
/// (Keras's Adam is the same with eps replaced by eps / sqrt(1-β2^t): it adds eps to sqrt(v)
/// before the bias correction.)
template <typename T>
void adamUpdate(int64_t n, T* w, const T* grad, T* m, T* v, double lr, T beta1, T beta2, T eps, int64_t step,
                T weightDecay = T(0), bool decoupledWeightDecay = false, T gradScale = T(1));

}  // namespace shoal::cpu
