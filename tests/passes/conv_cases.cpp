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
          {"no bias, dilation",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::Conv2d, {t.param("x", {1, 2, 7, 7}), t.param("w", {2, 2, 2, 2})},
                            convAttrs({2, 2}, {0, 0, 0, 0}, {2, 2})));
           }},
          {"two groups, bias, stride, asymmetric padding",
           [](TestGraph& t) {
             Attrs a = convAttrs({2, 1}, {0, 1, 1, 0}, {1, 1});
             a.set("groups", int64_t(2));
             t.mseLoss(t.op(OpKind::Conv2d, {t.param("x", {2, 4, 5, 5}), t.param("w", {6, 2, 3, 2}), t.param("b", {6})}, a));
           }},
          {"depthwise, channel multiplier 2, dilation", [](TestGraph& t) {
             Attrs a = convAttrs({1, 1}, {1, 1, 1, 1}, {2, 1});
             a.set("groups", int64_t(3));
             t.mseLoss(t.op(OpKind::Conv2d, {t.param("x", {1, 3, 6, 5}), t.param("w", {6, 1, 3, 3})}, a));
           }}};
  return {};
}

SHOAL_GRAD_CASES(MaxPool2d, OpKind::MaxPool2d) {
  return {{"2x2 stride 2, odd input",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::MaxPool2d, {t.param("x", {1, 2, 5, 5}, Fill::Distinct)},
                            attrs({{"kernel", Shape{2, 2}}, {"stride", Shape{2, 2}}})));
           }},
          {"3x3 overlapping, padded",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::MaxPool2d, {t.param("x", {2, 1, 4, 5}, Fill::Distinct)},
                            attrs({{"kernel", Shape{3, 3}}, {"stride", Shape{1, 1}}, {"padding", Shape{1, 1, 1, 1}}})));
           }},
          {"3x3 stride 2 padded, ceil mode", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::MaxPool2d, {t.param("x", {1, 2, 6, 5}, Fill::Distinct)},
                            attrs({{"kernel", Shape{3, 3}},
                                   {"stride", Shape{2, 2}},
                                   {"padding", Shape{1, 1, 1, 1}},
                                   {"ceil_mode", int64_t(1)}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(AvgPool2d, OpKind::AvgPool2d) {
  return {{"2x2 stride 2, odd input",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::AvgPool2d, {t.param("x", {1, 2, 5, 5})},
                            attrs({{"kernel", Shape{2, 2}}, {"stride", Shape{2, 2}}})));
           }},
          {"3x2 padded",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::AvgPool2d, {t.param("x", {2, 1, 5, 4})},
                            attrs({{"kernel", Shape{3, 2}}, {"stride", Shape{2, 1}}, {"padding", Shape{1, 1, 1, 0}}})));
           }},
          {"3x3 stride 2 padded, ceil mode, padding counted",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::AvgPool2d, {t.param("x", {1, 2, 6, 5})},
                            attrs({{"kernel", Shape{3, 3}},
                                   {"stride", Shape{2, 2}},
                                   {"padding", Shape{1, 1, 1, 1}},
                                   {"ceil_mode", int64_t(1)}})));
           }},
          {"3x3 stride 2 padded, ceil mode, padding not counted", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::AvgPool2d, {t.param("x", {2, 1, 5, 6})},
                            attrs({{"kernel", Shape{3, 3}},
                                   {"stride", Shape{2, 2}},
                                   {"padding", Shape{1, 1, 1, 1}},
                                   {"ceil_mode", int64_t(1)},
                                   {"count_include_pad", int64_t(0)}})));
           }}};
  return {};
}

SHOAL_GRAD_CASES(ConvTranspose2d, OpKind::ConvTranspose2d) {
  return {{"stride 2, asymmetric padding, output_padding, bias",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::ConvTranspose2d, {t.param("x", {2, 2, 3, 4}), t.param("w", {2, 3, 3, 2}), t.param("b", {3})},
                            attrs({{"stride", Shape{2, 2}},
                                   {"padding", Shape{1, 0, 0, 1}},
                                   {"output_padding", Shape{1, 0}}})));
           }},
          {"two groups, dilation, no bias",
           [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::ConvTranspose2d, {t.param("x", {1, 4, 3, 3}), t.param("w", {4, 1, 2, 2})},
                            attrs({{"dilation", Shape{2, 1}}, {"groups", int64_t(2)}})));
           }},
          {"2x2 kernel stride 2 (upsampling)", [](TestGraph& t) {
             t.mseLoss(t.op(OpKind::ConvTranspose2d, {t.param("x", {1, 3, 2, 3}), t.param("w", {3, 2, 2, 2}), t.param("b", {2})},
                            attrs({{"stride", Shape{2, 2}}})));
           }}};
}

SHOAL_GRAD_CASES(GlobalAvgPool, OpKind::GlobalAvgPool) {
  return {{"batch and channels",
           [](TestGraph& t) { t.mseLoss(t.op(OpKind::GlobalAvgPool, {t.param("x", {2, 3, 4, 5})})); }}};
}

}  // namespace
}  // namespace shoal
