// Layer constructors of the conv family's own layers (conv_transpose2d, adaptive average
// pooling), shared by the pipeline lowering and any builder.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "frontend/layers.h"
#include "ir/graph.h"

namespace shoal::layers {

/// conv2d's settings (padding=same makes the output `stride` times the input) plus the
/// output padding.
struct ConvTranspose2dSpec : Conv2dSpec {
  std::vector<int64_t> outputPadding = {0, 0};
};

/// The padding [top,left,bottom,right] and output_padding [h,w] that make a transposed
/// convolution's output `stride` times its input (Keras's "same"): the full output is cropped by
/// dilation·(kernel - 1) + 1 - stride, half before (the odd pixel after), or, when that is
/// negative, extended at the end by its opposite as output padding.
std::pair<std::vector<int64_t>, std::vector<int64_t>> transposeSamePadding(int64_t kh, int64_t kw, int64_t sh,
                                                                           int64_t sw, int64_t dh, int64_t dw);

/// conv_transpose2d with params `<id>.weight` ([C, filters/groups, kh, kw], PyTorch's layout,
/// Glorot-uniform) and `<id>.bias` ([filters], zeros); the layer's final value is named `id`.
Expected<Value*> convTranspose2d(Graph& g, Value* x, const std::string& id, const ConvTranspose2dSpec& spec,
                                 const Location& loc);

/// Adaptive average pooling to [outH, outW] (PyTorch's AdaptiveAvgPool2d): global_avgpool for
/// 1x1, else avgpool2d with kernel = stride = input / output when the output divides the input
/// (the windows PyTorch uses then); other sizes are an error.
Expected<Value*> adaptiveAvgPool2d(Graph& g, Value* x, const std::string& id, int64_t outH, int64_t outW,
                                   const Location& loc);

}  // namespace shoal::layers
