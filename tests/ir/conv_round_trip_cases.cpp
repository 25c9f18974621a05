// IR round-trip cases of the conv family: each op with every schema attribute set.
#include "ir/round_trip_cases.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_ROUND_TRIP_CASE(Conv2d, OpKind::Conv2d) {
  ins = {addInput(g, "x", f32({2, 4, 6, 6})), addParam(g, "c.weight", f32({6, 2, 3, 3})), addParam(g, "c.bias", f32({6}))};
  a.set("stride", std::vector<int64_t>{1, 2});
  a.set("padding", std::vector<int64_t>{1, 2, 1, 0});
  a.set("dilation", std::vector<int64_t>{1, 1});
  a.set("groups", int64_t(2));
  results = {{"c", f32({2, 6, 6, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Conv2dBackwardData, OpKind::Conv2dBackwardData) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "dy", f32({2, 4, 4, 4})), addParam(g, "c.weight", f32({4, 1, 3, 3}))};
  a.set("stride", std::vector<int64_t>{1, 1});
  a.set("padding", std::vector<int64_t>{0, 0, 0, 0});
  a.set("dilation", std::vector<int64_t>{1, 1});
  a.set("input_shape", std::vector<int64_t>{2, 1, 6, 6});
  a.set("groups", int64_t(1));
  results = {{"dx", f32(img)}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(Conv2dBackwardWeight, OpKind::Conv2dBackwardWeight) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img)), addInput(g, "dy", f32({2, 4, 4, 4}))};
  a.set("stride", std::vector<int64_t>{1, 1});
  a.set("padding", std::vector<int64_t>{0, 0, 0, 0});
  a.set("dilation", std::vector<int64_t>{1, 1});
  a.set("weight_shape", std::vector<int64_t>{4, 1, 3, 3});
  a.set("groups", int64_t(1));
  results = {{"dw", f32({4, 1, 3, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(MaxPool2d, OpKind::MaxPool2d, OpKind::AvgPool2d) {
  ins = {addInput(g, "x", f32({2, 4, 7, 7}))};
  a.set("kernel", std::vector<int64_t>{2, 2});
  a.set("stride", std::vector<int64_t>{2, 2});
  a.set("padding", std::vector<int64_t>{0, 1, 0, 1});
  a.set("ceil_mode", int64_t(1));
  if (kind == OpKind::AvgPool2d) a.set("count_include_pad", int64_t(0));
  results = {{"p", f32({2, 4, 4, 4})}};  // ceil mode: 4 rows; 4 columns (a fifth would start in the padding)
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(MaxPool2dGrad, OpKind::MaxPool2dGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 4, 6, 6})), addInput(g, "dy", f32({2, 4, 3, 3}))};
  a.set("kernel", std::vector<int64_t>{2, 2});
  a.set("stride", std::vector<int64_t>{2, 2});
  a.set("padding", std::vector<int64_t>{0, 0, 0, 0});
  a.set("ceil_mode", int64_t(0));
  results = {{"dx", f32({2, 4, 6, 6})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(AvgPool2dGrad, OpKind::AvgPool2dGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "dy", f32({2, 4, 3, 3}))};
  a.set("kernel", std::vector<int64_t>{2, 2});
  a.set("stride", std::vector<int64_t>{2, 2});
  a.set("padding", std::vector<int64_t>{0, 0, 0, 0});
  a.set("input_shape", std::vector<int64_t>{2, 4, 5, 5});
  a.set("ceil_mode", int64_t(1));
  a.set("count_include_pad", int64_t(0));
  results = {{"dx", f32({2, 4, 5, 5})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(FusedConv2d, OpKind::FusedConv2d) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img)), addParam(g, "c.weight", f32({4, 1, 3, 3})), addParam(g, "c.bias", f32({4}))};
  a.set("padding", std::vector<int64_t>{1, 1, 1, 1});
  a.set("activation", std::string("tanh"));
  a.set("groups", int64_t(1));
  results = {{"c", f32({2, 4, 6, 6})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(FusedConv2dPool, OpKind::FusedConv2dPool) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img)), addParam(g, "c.weight", f32({4, 1, 3, 3})), addParam(g, "c.bias", f32({4}))};
  a.set("activation", std::string("relu"));
  a.set("pool_kernel", std::vector<int64_t>{2, 2});
  a.set("pool_stride", std::vector<int64_t>{2, 2});
  a.set("pool_ceil_mode", int64_t(1));
  results = {{"p", f32({2, 4, 2, 2})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(ConvTranspose2d, OpKind::ConvTranspose2d) {
  ins = {addInput(g, "x", f32({2, 4, 5, 6})), addParam(g, "u.weight", f32({4, 3, 3, 2})), addParam(g, "u.bias", f32({6}))};
  a.set("stride", std::vector<int64_t>{2, 1});
  a.set("padding", std::vector<int64_t>{1, 0, 0, 1});
  a.set("output_padding", std::vector<int64_t>{1, 0});
  a.set("dilation", std::vector<int64_t>{1, 2});
  a.set("groups", int64_t(2));
  results = {{"u", f32({2, 6, 11, 7})}};
  return true;
}

SHOAL_ROUND_TRIP_CASE(GlobalAvgPool, OpKind::GlobalAvgPool) {
  ins = {addInput(g, "x", f32({2, 4, 5, 3}))};
  results = {{"g", f32({2, 4, 1, 1})}};
  return true;
}

}  // namespace
}  // namespace shoal
