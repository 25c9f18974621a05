// Gradient-check cases of the conv family (central differences in float64).
#include "ir/printer.h"
#include "passes/grad_cases.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_GRAD_CASES(Conv2d, OpKind::Conv2d) {
  return {{"bias, stride, asymmetric padding",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Conv2d, {t.param("x", {2, 2, 5, 5}), t.param("w", {3, 2, 3, 3}), t.param("b", {3})},
                            convAttrs({1, 2}, {1, 0, 2, 1}, {1, 1})));
           }},
          {"no bias, dilation", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Conv2d, {t.param("x", {1, 2, 7, 7}), t.param("w", {2, 2, 2, 2})},
                            convAttrs({2, 2}, {0, 0, 0, 0}, {2, 2})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(MaxPool2d, OpKind::MaxPool2d) {
  return {{"2x2 stride 2, odd input",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::MaxPool2d, {t.param("x", {1, 2, 5, 5}, Fill::Distinct)},
                            attrs({{"kernel", Shape{2, 2}}, {"stride", Shape{2, 2}}})));
           }},
          {"3x3 overlapping, padded", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::MaxPool2d, {t.param("x", {2, 1, 4, 5}, Fill::Distinct)},
                            attrs({{"kernel", Shape{3, 3}}, {"stride", Shape{1, 1}}, {"padding", Shape{1, 1, 1, 1}}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(AvgPool2d, OpKind::AvgPool2d) {
  return {{"2x2 stride 2, odd input",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::AvgPool2d, {t.param("x", {1, 2, 5, 5})},
                            attrs({{"kernel", Shape{2, 2}}, {"stride", Shape{2, 2}}})));
           }},
          {"3x2 padded", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::AvgPool2d, {t.param("x", {2, 1, 5, 4})},
                            attrs({{"kernel", Shape{3, 2}}, {"stride", Shape{2, 1}}, {"padding", Shape{1, 1, 1, 0}}})));
           }}};
  return {};
}

}  // namespace
}  // namespace shoal
