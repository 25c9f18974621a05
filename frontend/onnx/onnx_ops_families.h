// Private to frontend/onnx: the lowerings of the ONNX ops that map onto the op families of the
// second wave (elementwise math, comparisons, logic, reductions: onnx_ops_math.cpp; data
// movement, batched products, index arithmetic: onnx_ops_data.cpp; the recurrent layers,
// unrolled: onnx_ops_recurrent.cpp; GatherND, the scatters, MaxUnpool, ReverseSequence:
// onnx_ops_indexing.cpp; quantization and the integer products: onnx_ops_quantized.cpp; DFT,
// STFT and MelWeightMatrix: onnx_ops_spectral.cpp).
// onnx_ops.cpp's table names them.
#pragma once

#include "frontend/onnx/onnx_importer.h"

namespace shoal::onnx_import {

// ---- onnx_ops.cpp
/// The spatial geometry shared by Conv and the pools, read from the attributes and the input
/// (2-D, or 1-D run as 2-D with a unit height).
struct Window {
  int64_t spatial = 2;            // 1 or 2 spatial dims in the model
  std::vector<int64_t> kernel;    // [kh, kw]
  std::vector<int64_t> stride;    // [sh, sw]
  std::vector<int64_t> dilation;  // [dh, dw]
  std::vector<int64_t> pads;      // [top, left, bottom, right]
};
/// Reads kernel_shape (or `kernel` from a weight), strides, dilations, pads and auto_pad for
/// an input of shape x (N, C, spatial...).
Window readWindow(NodeContext& c, const Shape& x, std::vector<int64_t> kernel, bool hasDilations);
/// x as 4-D NCHW (a 1-D input [N, C, L] gains a unit height).
Value* as4d(NodeContext& c, Value* x, const Window& w, const std::string& suffix);
/// A 4-D result back in the model's rank.
Value* fromNd(NodeContext& c, Value* y, const Window& w);

/// shoal's concat takes at most this many operands (ir/ops.def).
inline constexpr size_t kMaxConcatOperands = 64;
/// Joins `parts` along `axis`, in rounds of at most kMaxConcatOperands (one operand: itself);
/// the last concat is named after the node's output when `tag` is empty.
Value* concatMany(NodeContext& c, std::vector<Value*> parts, int64_t axis, const std::string& tag);

/// The shape input 1 takes to broadcast NumPy-style against input 0: itself from opset 7 on;
/// before, per the node's broadcast/axis attributes.
Shape legacyBroadcastShape(NodeContext& c);

// ---- onnx_ops_math.cpp
void lowerUnaryMath(NodeContext& c);  // Exp, Log, Sqrt, Reciprocal, Erf, Abs (ints too)
void lowerSoftsign(NodeContext& c);   // x / (1 + |x|)
void lowerElu(NodeContext& c);        // Elu, Selu
void lowerThresholdedRelu(NodeContext& c);
void lowerLeakyReluOp(NodeContext& c);  // leaky_relu
void lowerHardSigmoid(NodeContext& c);
void lowerHardSwish(NodeContext& c);
void lowerClip(NodeContext& c);
void lowerSign(NodeContext& c);
void lowerPow(NodeContext& c);
void lowerMinMax(NodeContext& c);   // Min, Max (variadic, broadcasting)
void lowerMod(NodeContext& c);      // Mod: fmod, and Python's % (the divisor's sign) from it
bool foldMod(NodeContext& c);       // Mod of tensors known at import (torch's unflatten computes an axis with it)
void lowerCompare(NodeContext& c);  // Equal, Less, Greater, LessOrEqual, GreaterOrEqual
void lowerLogic(NodeContext& c);    // And, Or, Xor, Not
void lowerWhere(NodeContext& c);
void lowerBitShift(NodeContext& c);  // unsigned, exact, within the type
bool foldPow(NodeContext& c);       // Pow and the reductions on tensors known at import
bool foldReduce(NodeContext& c);    // (sum, mean of floats, max, min, prod)
bool foldCompare(NodeContext& c);   // the four above and Where on tensors known at import
bool foldLogic(NodeContext& c);
bool foldWhere(NodeContext& c);
void lowerIsNaN(NodeContext& c);
void lowerIsInf(NodeContext& c);
void lowerReduce(NodeContext& c);          // ReduceSum/Mean/Max/Min/SumSquare/L1/L2/LogSum/LogSumExp
void lowerArgMinMax(NodeContext& c);       // ArgMax, ArgMin (any axis, select_last_index)
void lowerTopK(NodeContext& c);            // k rounds of argmax, the winner retired
void lowerSoftmaxAnyAxis(NodeContext& c);  // Softmax, LogSoftmax (opset 13+ on any axis), Hardmax
void lowerCumSum(NodeContext& c);
void lowerFloorCeil(NodeContext& c);
/// floor(x) of a float value (exact; NaN and the infinities pass through).
Value* floorOf(NodeContext& c, Value* x, const std::string& suffix);
/// x rounded half to even (ONNX's Round), from floors, comparisons and where.
Value* roundHalfEven(NodeContext& c, Value* x, const std::string& prefix);
void lowerRound(NodeContext& c);

void lowerShrink(NodeContext& c);
void lowerLRN(NodeContext& c);

// ---- onnx_ops_data.cpp
/// x with its axes permuted (shoal's transpose).
Value* transposeOp(NodeContext& c, Value* x, const std::vector<int64_t>& perm, const std::string& suffix);
/// shoal's slice (ONNX's semantics: starts, ends, axes, steps).
Value* sliceOp(NodeContext& c, Value* x, std::vector<int64_t> starts, std::vector<int64_t> ends,
               std::vector<int64_t> axes, std::vector<int64_t> steps, const std::string& suffix);
void lowerTranspose(NodeContext& c);
void lowerConcat(NodeContext& c);
/// Slice's starts, ends, axes and steps: attributes before opset 10, constant inputs after;
/// axes default to 0..n-1 and steps to 1; lists of different lengths are invalid.
struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
};
SliceArgs sliceArgs(NodeContext& c);
void lowerSlice(NodeContext& c);
void lowerGather(NodeContext& c);
void lowerGatherElements(NodeContext& c);
void lowerPad(NodeContext& c);
/// Expand's result shape: x's shape broadcast with the target (input 1, known at import).
Shape expandShape(NodeContext& c);
void lowerExpandOp(NodeContext& c);
void lowerSplit(NodeContext& c);
void lowerTile(NodeContext& c);
void lowerDepthToSpace(NodeContext& c);  // DepthToSpace, SpaceToDepth
void lowerTrilu(NodeContext& c);
void lowerOneHot(NodeContext& c);
void lowerBatchedMatMul(NodeContext& c);  // MatMul with a batched right operand
void lowerEinsum(NodeContext& c);         // one or two operands, explicit letters: reduce_sum + batch_matmul
void lowerResize(NodeContext& c);         // Resize, Upsample
void lowerSequence(NodeContext& c);
void lowerCompress(NodeContext& c);  // sequences as lists known at import

// ---- onnx_ops_quantized.cpp
void lowerQuantizeLinear(NodeContext& c);    // saturate(round(x / scale) + zero_point)
void lowerDequantizeLinear(NodeContext& c);  // (x - zero_point) · scale
void lowerMatMulInteger(NodeContext& c);
void lowerConvInteger(NodeContext& c);
void lowerQLinearMatMul(NodeContext& c);
void lowerQLinearConv(NodeContext& c);

// ---- onnx_ops_indexing.cpp
void lowerGatherND(NodeContext& c);
void lowerScatterND(NodeContext& c);
bool foldScatterND(NodeContext& c);  // on tensors known at import
void lowerCol2Im(NodeContext& c);

// ---- onnx_ops_control.cpp: control flow resolved at import (the branch taken, loops unrolled)
void lowerIf(NodeContext& c);
void lowerLoop(NodeContext& c);
void lowerScan(NodeContext& c);

// ---- onnx_ops_spectral.cpp
void lowerDFT(NodeContext& c);
void lowerSTFT(NodeContext& c);
void lowerMelWeightMatrix(NodeContext& c);  // computed at import
void lowerWindow(NodeContext& c);           // HannWindow, HammingWindow, BlackmanWindow: at import
void lowerScatterElements(NodeContext& c);  // ScatterElements, Scatter
void lowerMaxUnpool(NodeContext& c);
void lowerReverseSequence(NodeContext& c);
void lowerGridSample(NodeContext& c);

// ---- onnx_ops_recurrent.cpp
void lowerRecurrent(NodeContext& c);  // RNN, GRU, LSTM: unrolled over the sequence

// ---- onnx_ops_volume.cpp
void lowerConv3d(NodeContext& c);
void lowerPool3d(NodeContext& c, bool isMax);
void lowerDilatedMaxPool(NodeContext& c);
/// MaxPool's Indices output (flat, padding not counted; storage_order), for any spatial rank.
Value* maxPoolIndices(NodeContext& c);

}  // namespace shoal::onnx_import
