// IR round-trip cases of the conv family: each op with every schema attribute set.
#include "ir/round_trip_cases.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_ROUND_TRIP_CASE(Conv2d, OpKind::Conv2d) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img)), addParam(g, "c.weight", f32({4, 1, 3, 3})), addParam(g, "c.bias", f32({4}))};
  a.set("padding", std::vector<int64_t>{1, 1, 1, 1});
  results = {{"c", f32({2, 4, 6, 6})}};
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
  results = {{"dw", f32({4, 1, 3, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(MaxPool2d, OpKind::MaxPool2d, OpKind::AvgPool2d) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 4, 6, 6}))};
  a.set("kernel", std::vector<int64_t>{2, 2});
  a.set("stride", std::vector<int64_t>{2, 2});
  results = {{"p", f32({2, 4, 3, 3})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(MaxPool2dGrad, OpKind::MaxPool2dGrad) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32({2, 4, 6, 6})), addInput(g, "dy", f32({2, 4, 3, 3}))};
  a.set("kernel", std::vector<int64_t>{2, 2});
  a.set("stride", std::vector<int64_t>{2, 2});
  a.set("padding", std::vector<int64_t>{0, 0, 0, 0});
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
  a.set("input_shape", std::vector<int64_t>{2, 4, 6, 6});
  results = {{"dx", f32({2, 4, 6, 6})}};
  return true;
  return false;
}

SHOAL_ROUND_TRIP_CASE(FusedConv2d, OpKind::FusedConv2d) {
  [[maybe_unused]] const Shape img{2, 1, 6, 6};
  ins = {addInput(g, "x", f32(img)), addParam(g, "c.weight", f32({4, 1, 3, 3})), addParam(g, "c.bias", f32({4}))};
  a.set("padding", std::vector<int64_t>{1, 1, 1, 1});
  a.set("activation", std::string("tanh"));
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
  results = {{"p", f32({2, 4, 2, 2})}};
  return true;
  return false;
}

}  // namespace
}  // namespace shoal
