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
  return true;
  return false;
}

SHOAL_CUDA_CASE(AvgPool2d, OpKind::AvgPool2d) {
  [[maybe_unused]] const DType dt = b.dt();
  [[maybe_unused]] const TensorType labels64{DType::I64, {8}}, labels32{DType::I32, {8}}, labels8{DType::U8, {8}};
  b.op(OpKind::AvgPool2d, {b.input("x", Shape{2, 3, 7, 7})},
       attrs({{"kernel", Ints{3, 3}}, {"stride", Ints{2, 2}}, {"padding", Ints{1, 1, 1, 1}}}), "y");
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
  return true;
  return false;
}

}  // namespace
}  // namespace shoal
