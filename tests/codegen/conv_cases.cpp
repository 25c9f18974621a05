// CUDA codegen cases of the conv family (checked on the emulator against the interpreter, compiled by NVRTC).
#include "codegen/cuda_test_graphs.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_CUDA_CASE(Conv2d, OpKind::Conv2d) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Conv2d, {b.input("x", Shape{2, 3, 9, 8}), b.param("a.weight", {4, 3, 3, 2}), b.param("a.bias", {4})},
       attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}}}), "a");
  b.op(OpKind::Conv2d, {b.input("m", Shape{3, 1, 12, 12}), b.param("b.weight", {5, 1, 3, 3}), b.param("b.bias", {5})},
       {}, "b");
  b.op(OpKind::Conv2d, {b.input("p", Shape{2, 6, 5, 5}), b.param("c.weight", {3, 6, 1, 1})}, {}, "c");
  // Grouped (2 groups of 3 channels, 2 filters each), strided, dilated, asymmetrically padded.
  b.op(OpKind::Conv2d, {b.input("g", Shape{2, 6, 9, 8}), b.param("g.weight", {4, 3, 3, 2}), b.param("g.bias", {4})},
       attrs({{"stride", Ints{2, 1}}, {"padding", Ints{1, 0, 2, 1}}, {"dilation", Ints{1, 2}}, {"groups", int64_t(2)}}),
       "grouped");
  // Depthwise 3x3 with a channel multiplier of 2, stride 2, same-style padding, dilation 2.
  b.op(OpKind::Conv2d, {b.input("dw", Shape{2, 4, 11, 10}), b.param("dw.weight", {8, 1, 3, 3})},
       attrs({{"stride", Ints{2, 2}}, {"padding", Ints{2, 2, 2, 2}}, {"dilation", Ints{2, 2}}, {"groups", int64_t(4)}}),
       "depthwise");
  // Grouped pointwise (a ShuffleNet-style 1x1).
  b.op(OpKind::Conv2d, {b.input("gp", Shape{1, 8, 4, 4}), b.param("gp.weight", {4, 2, 1, 1})},
       attrs({{"groups", int64_t(4)}}), "grouped_pointwise");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Conv2dBackwardData, OpKind::Conv2dBackwardData) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Conv2dBackwardData, {b.input("dy", Shape{2, 4, 5, 7}), b.param("a.weight", {4, 3, 3, 2})},
       attrs({{"stride", Ints{2, 1}},
              {"padding", Ints{1, 0, 2, 1}},
              {"dilation", Ints{1, 2}},
              {"input_shape", Ints{2, 3, 9, 8}}}),
       "dx");
  b.op(OpKind::Conv2dBackwardData, {b.input("dyb", Shape{3, 5, 10, 10}), b.param("b.weight", {5, 1, 3, 3})},
       attrs({{"stride", Ints{1, 1}},
              {"padding", Ints{0, 0, 0, 0}},
              {"dilation", Ints{1, 1}},
              {"input_shape", Ints{3, 1, 12, 12}}}),
       "dxb");
  b.op(OpKind::Conv2dBackwardData, {b.input("dyg", Shape{2, 4, 5, 7}), b.param("g.weight", {4, 3, 3, 2})},
       attrs({{"stride", Ints{2, 1}},
              {"padding", Ints{1, 0, 2, 1}},
              {"dilation", Ints{1, 2}},
              {"input_shape", Ints{2, 6, 9, 8}},
              {"groups", int64_t(2)}}),
       "dxg");
  b.op(OpKind::Conv2dBackwardData, {b.input("dyd", Shape{2, 8, 6, 5}), b.param("d.weight", {8, 1, 3, 3})},
       attrs({{"stride", Ints{2, 2}},
              {"padding", Ints{2, 2, 2, 2}},
              {"dilation", Ints{2, 2}},
              {"input_shape", Ints{2, 4, 11, 10}},
              {"groups", int64_t(4)}}),
       "dxd");
  return true;
  return false;
}

SHOAL_CUDA_CASE(Conv2dBackwardWeight, OpKind::Conv2dBackwardWeight) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::Conv2dBackwardWeight, {b.input("x", Shape{2, 3, 9, 8}), b.input("dy", Shape{2, 4, 5, 7})},
       attrs({{"stride", Ints{2, 1}},
              {"padding", Ints{1, 0, 2, 1}},
              {"dilation", Ints{1, 2}},
              {"weight_shape", Ints{4, 3, 3, 2}}}),
       "dw");
  // A long reduction (16·18·18 terms per weight) over few weights: the split kernel.
  b.op(OpKind::Conv2dBackwardWeight, {b.input("xl", Shape{16, 2, 20, 20}), b.input("dyl", Shape{16, 3, 18, 18})},
       attrs({{"stride", Ints{1, 1}},
              {"padding", Ints{0, 0, 0, 0}},
              {"dilation", Ints{1, 1}},
              {"weight_shape", Ints{3, 2, 3, 3}}}),
       "dwl");
  b.op(OpKind::Conv2dBackwardWeight, {b.input("xg", Shape{2, 6, 9, 8}), b.input("dyg", Shape{2, 4, 5, 7})},
       attrs({{"stride", Ints{2, 1}},
              {"padding", Ints{1, 0, 2, 1}},
              {"dilation", Ints{1, 2}},
              {"weight_shape", Ints{4, 3, 3, 2}},
              {"groups", int64_t(2)}}),
       "dwg");
  // Depthwise over a long reduction (16·18·18 terms per weight): the split kernel.
  b.op(OpKind::Conv2dBackwardWeight, {b.input("xd", Shape{16, 3, 20, 20}), b.input("dyd", Shape{16, 6, 18, 18})},
       attrs({{"stride", Ints{1, 1}},
              {"padding", Ints{0, 0, 0, 0}},
              {"dilation", Ints{1, 1}},
              {"weight_shape", Ints{6, 1, 3, 3}},
              {"groups", int64_t(3)}}),
       "dwd");
  return true;
  return false;
}

SHOAL_CUDA_CASE(MaxPool2d, OpKind::MaxPool2d) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::MaxPool2d, {b.input("qx", Shape{2, 3, 7, 7})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "overlap");
  b.op(OpKind::MaxPool2d, {b.input("qy", Shape{2, 2, 6, 6})}, attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}}),
       "plain");
  b.op(OpKind::MaxPool2d, {b.input("qc", Shape{2, 3, 6, 7})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t(1)}}),
       "ceil");
  b.op(OpKind::MaxPool2d, {b.input("qo", Shape{1, 2, 5, 7})},
       attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"ceil_mode", int64_t(1)}}), "ceil_plain");
  // A window of more than 64 taps (9 x 8: loaded tap by tap, not unrolled), cut by padding.
  b.op(OpKind::MaxPool2d, {b.input("qw", Shape{1, 2, 12, 11})},
       attrs({{"kernel", Ints{9, 8}}, {"stride", Ints{3, 3}}, {"padding", Ints{2, 2, 2, 2}}}), "wide");
  return true;
  return false;
}

SHOAL_CUDA_CASE(MaxPool2dGrad, OpKind::MaxPool2dGrad) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::MaxPool2dGrad, {b.input("qx", Shape{2, 3, 7, 7}), b.input("dy", Shape{2, 3, 4, 4})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "dx");
  b.op(OpKind::MaxPool2dGrad, {b.input("qy", Shape{2, 2, 6, 6}), b.input("dyp", Shape{2, 2, 3, 3})},
       attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 0, 0}}}), "dxp");
  b.op(OpKind::MaxPool2dGrad, {b.input("qc", Shape{2, 3, 6, 7}), b.input("dyc", Shape{2, 3, 4, 4})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t(1)}}),
       "dxc");
  b.op(OpKind::MaxPool2dGrad, {b.input("qo", Shape{1, 2, 5, 7}), b.input("dyo", Shape{1, 2, 3, 4})},
       attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 0, 0}}, {"ceil_mode", int64_t(1)}}),
       "dxo");
  // relu_mask (relu_grad fused), on the one-kernel path (windows apart) and the two-kernel one.
  b.op(OpKind::MaxPool2dGrad, {b.input("qm", Shape{2, 2, 6, 6}), b.input("dym", Shape{2, 2, 3, 3})},
       attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 0, 0}}, {"relu_mask", int64_t(1)}}),
       "dxm");
  b.op(OpKind::MaxPool2dGrad, {b.input("qmo", Shape{2, 3, 7, 7}), b.input("dymo", Shape{2, 3, 4, 4})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"relu_mask", int64_t(1)}}),
       "dxmo");
  // Strips of 4 and 2 pixels a thread (ResNet's stem pool at widths divisible by 4, or by 2 only,
  // relu_mask on one), stride 1 (three rows of windows cover a pixel), a strip's last windows past
  // the edge in ceil mode, and stride past the kernel on one axis only.
  b.op(OpKind::MaxPool2dGrad, {b.input("qs4", Shape{2, 2, 8, 12}), b.input("dys4", Shape{2, 2, 4, 6})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "dxs4");
  b.op(OpKind::MaxPool2dGrad, {b.input("qs2", Shape{1, 3, 7, 10}), b.input("dys2", Shape{1, 3, 4, 5})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"relu_mask", int64_t(1)}}),
       "dxs2");
  b.op(OpKind::MaxPool2dGrad, {b.input("qs1", Shape{1, 2, 6, 8}), b.input("dys1", Shape{1, 2, 6, 8})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{1, 1}}, {"padding", Ints{1, 1, 1, 1}}}), "dxs1");
  b.op(OpKind::MaxPool2dGrad, {b.input("qsc", Shape{1, 2, 6, 8}), b.input("dysc", Shape{1, 2, 3, 4})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 0, 0}}, {"ceil_mode", int64_t(1)}}),
       "dxsc");
  b.op(OpKind::MaxPool2dGrad, {b.input("qsg", Shape{1, 2, 7, 8}), b.input("dysg", Shape{1, 2, 3, 3})},
       attrs({{"kernel", Ints{3, 2}}, {"stride", Ints{2, 3}}, {"padding", Ints{0, 0, 0, 0}}}), "dxsg");
  // Stride past the kernel with padding: pixels in no window (gaps), windows cut by padding.
  b.op(OpKind::MaxPool2dGrad, {b.input("qg", Shape{1, 2, 8, 7}), b.input("dyg", Shape{1, 2, 3, 3})},
       attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{3, 3}}, {"padding", Ints{1, 1, 1, 1}}}), "dxg");
  // Floor mode over an odd extent: the last row and column are in no window.
  b.op(OpKind::MaxPool2dGrad, {b.input("qr", Shape{1, 2, 7, 7}), b.input("dyr", Shape{1, 2, 3, 3})},
       attrs({{"kernel", Ints{2, 2}}, {"stride", Ints{2, 2}}, {"padding", Ints{0, 0, 0, 0}}}), "dxr");
  // A window of more than 64 taps (9 x 8), cut by padding, overlapping its neighbours.
  b.op(OpKind::MaxPool2dGrad, {b.input("qw", Shape{1, 2, 12, 11}), b.input("dyw", Shape{1, 2, 3, 3})},
       attrs({{"kernel", Ints{9, 8}}, {"stride", Ints{3, 3}}, {"padding", Ints{2, 2, 2, 2}}}), "dxw");
  return true;
  return false;
}

SHOAL_CUDA_CASE(AvgPool2d, OpKind::AvgPool2d) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::AvgPool2d, {b.input("x", Shape{2, 3, 7, 7})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "y");
  b.op(OpKind::AvgPool2d, {b.input("c", Shape{2, 3, 6, 7})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}, {"ceil_mode", int64_t(1)}}),
       "ceil");
  b.op(OpKind::AvgPool2d, {b.input("e", Shape{2, 3, 7, 7})},
       attrs({{"kernel", Ints{3, 3}},
              {"stride", Ints{2, 2}},
              {"padding", Ints{1, 1, 1, 1}},
              {"count_include_pad", int64_t(0)}}),
       "exclude_pad");
  b.op(OpKind::AvgPool2d, {b.input("ce", Shape{1, 2, 6, 5})},
       attrs({{"kernel", Ints{3, 2}},
              {"stride", Ints{2, 2}},
              {"padding", Ints{1, 0, 1, 1}},
              {"ceil_mode", int64_t(1)},
              {"count_include_pad", int64_t(0)}}),
       "ceil_exclude_pad");
  return true;
  return false;
}

SHOAL_CUDA_CASE(AvgPool2dGrad, OpKind::AvgPool2dGrad) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::AvgPool2dGrad, {b.input("dy", Shape{2, 3, 4, 4})},
       attrs({{"kernel", Ints{3, 3}},
              {"stride", Ints{2, 2}},
              {"padding", Ints{1, 1, 1, 1}},
              {"input_shape", Ints{2, 3, 7, 7}}}),
       "dx");
  b.op(OpKind::AvgPool2dGrad, {b.input("dyc", Shape{2, 3, 4, 4})},
       attrs({{"kernel", Ints{3, 3}},
              {"stride", Ints{2, 2}},
              {"padding", Ints{1, 1, 1, 1}},
              {"input_shape", Ints{2, 3, 6, 7}},
              {"ceil_mode", int64_t(1)}}),
       "dxc");
  b.op(OpKind::AvgPool2dGrad, {b.input("dye", Shape{1, 2, 4, 3})},
       attrs({{"kernel", Ints{3, 2}},
              {"stride", Ints{2, 2}},
              {"padding", Ints{1, 0, 1, 1}},
              {"input_shape", Ints{1, 2, 6, 5}},
              {"ceil_mode", int64_t(1)},
              {"count_include_pad", int64_t(0)}}),
       "dxe");
  return true;
  return false;
}

SHOAL_CUDA_CASE(FusedConv2d, OpKind::FusedConv2d) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::FusedConv2d,
       {b.input("x", Shape{2, 3, 9, 8}), b.param("a.weight", {4, 3, 3, 2}), b.param("a.bias", {4})},
       attrs({{"stride", Ints{2, 1}},
              {"padding", Ints{1, 0, 2, 1}},
              {"dilation", Ints{1, 2}},
              {"activation", std::string("relu")}}),
       "a");
  b.op(OpKind::FusedConv2d,
       {b.input("m", Shape{3, 1, 12, 12}), b.param("b.weight", {5, 1, 3, 3}), b.param("b.bias", {5})},
       attrs({{"activation", std::string("sigmoid")}}), "b");
  b.op(OpKind::FusedConv2d, {b.input("p", Shape{2, 6, 5, 5}), b.param("c.weight", {3, 6, 1, 1})},
       attrs({{"activation", std::string("tanh")}}), "c");
  b.op(OpKind::FusedConv2d, {b.input("dw", Shape{2, 4, 11, 10}), b.param("dw.weight", {8, 1, 3, 3}), b.param("dw.bias", {8})},
       attrs({{"stride", Ints{2, 2}},
              {"padding", Ints{1, 1, 1, 1}},
              {"groups", int64_t(4)},
              {"activation", std::string("relu")}}),
       "depthwise");
  return true;
  return false;
}

SHOAL_CUDA_CASE(FusedConv2dPool, OpKind::FusedConv2dPool) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  // Strided, padded, dilated conv; a 3x2 pool window, stride 1x2 (overlapping rows).
  b.op(OpKind::FusedConv2dPool,
       {b.input("x", Shape{2, 3, 9, 8}), b.param("a.weight", {4, 3, 3, 2}), b.param("a.bias", {4})},
       attrs({{"stride", Ints{2, 1}},
              {"padding", Ints{1, 0, 2, 1}},
              {"dilation", Ints{1, 2}},
              {"activation", std::string("sigmoid")},
              {"pool_kernel", Ints{3, 2}},
              {"pool_stride", Ints{1, 2}}}),
       "a");
  // MNIST's shape: 3x3 conv, relu, 2x2 pool stride 2 over an odd conv output (floor mode).
  b.op(OpKind::FusedConv2dPool,
       {b.input("m", Shape{3, 1, 13, 13}), b.param("b.weight", {5, 1, 3, 3}), b.param("b.bias", {5})},
       attrs({{"activation", std::string("relu")}, {"pool_kernel", Ints{2, 2}}, {"pool_stride", Ints{2, 2}}}), "b");
  // Small integer inputs (ties), no bias, a padded 3x3 pool stride 2.
  b.op(OpKind::FusedConv2dPool, {b.input("q", Shape{2, 6, 5, 5}), b.param("c.weight", {3, 6, 1, 1})},
       attrs({{"activation", std::string("tanh")},
              {"pool_kernel", Ints{3, 3}},
              {"pool_stride", Ints{2, 2}},
              {"pool_padding", Ints{1, 1, 1, 1}}}),
       "c");
  // Relu of a padded conv: whole windows of zeros (ties), first maximum kept.
  b.op(OpKind::FusedConv2dPool, {b.input("qr", Shape{1, 2, 6, 6}), b.param("d.weight", {2, 2, 3, 3})},
       attrs({{"padding", Ints{1, 1, 1, 1}},
              {"activation", std::string("relu")},
              {"pool_kernel", Ints{2, 2}},
              {"pool_stride", Ints{2, 2}}}),
       "d");
  // Grouped conv, relu, a 3x3 stride-2 pool in ceil mode (partial windows at the end).
  b.op(OpKind::FusedConv2dPool, {b.input("g", Shape{2, 4, 8, 7}), b.param("g.weight", {6, 2, 3, 3}), b.param("g.bias", {6})},
       attrs({{"groups", int64_t(2)},
              {"activation", std::string("relu")},
              {"pool_kernel", Ints{3, 3}},
              {"pool_stride", Ints{2, 2}},
              {"pool_ceil_mode", int64_t(1)}}),
       "grouped_ceil");
  // Four filters a group (so the register-blocked kernel can block them), padded, a 2x2
  // stride-2 pool in ceil mode over the odd conv output.
  b.op(OpKind::FusedConv2dPool, {b.input("gw", Shape{2, 4, 7, 7}), b.param("gw.weight", {8, 2, 3, 3}), b.param("gw.bias", {8})},
       attrs({{"groups", int64_t(2)},
              {"padding", Ints{1, 1, 1, 1}},
              {"activation", std::string("sigmoid")},
              {"pool_kernel", Ints{2, 2}},
              {"pool_stride", Ints{2, 2}},
              {"pool_ceil_mode", int64_t(1)}}),
       "grouped_wide");
  return true;
  return false;
}

SHOAL_CUDA_CASE(ConvTranspose2d, OpKind::ConvTranspose2d) {
  // Strided, asymmetrically padded, output-padded, with a bias.
  b.op(OpKind::ConvTranspose2d, {b.input("x", Shape{2, 3, 4, 5}), b.param("a.weight", {3, 2, 3, 3}), b.param("a.bias", {2})},
       attrs({{"stride", Ints{2, 2}}, {"padding", Ints{1, 0, 0, 1}}, {"output_padding", Ints{1, 0}}}), "a");
  // The 2x2 stride-2 upsampler.
  b.op(OpKind::ConvTranspose2d, {b.input("u", Shape{2, 4, 3, 3}), b.param("u.weight", {4, 3, 2, 2})},
       attrs({{"stride", Ints{2, 2}}}), "up");
  // Two groups, dilation, a non-square kernel.
  b.op(OpKind::ConvTranspose2d, {b.input("g", Shape{1, 4, 5, 4}), b.param("g.weight", {4, 3, 3, 2}), b.param("g.bias", {6})},
       attrs({{"stride", Ints{1, 2}}, {"dilation", Ints{2, 1}}, {"padding", Ints{1, 1, 1, 1}}, {"groups", int64_t(2)}}),
       "grouped");
  return true;
}

SHOAL_CUDA_CASE(GlobalAvgPool, OpKind::GlobalAvgPool) {
  // Few planes: a block each (planes longer than a block, and of one pixel).
  b.op(OpKind::GlobalAvgPool, {b.input("x", Shape{2, 3, 17, 19})}, {}, "g");
  b.op(OpKind::GlobalAvgPool, {b.input("z", Shape{2, 2, 1, 1})}, {}, "single");
  // Enough planes for a warp each (2160 >= 264 blocks · 8 warps), longer than a warp.
  b.op(OpKind::GlobalAvgPool, {b.input("y", Shape{3, 720, 5, 7})}, {}, "many");
  return true;
}

}  // namespace
}  // namespace shoal
