// fold-batchnorm: an evaluation-form batchnorm after a convolution (or a dense layer) folded
// into that layer's weight and bias, so inference runs one conv (+ activation) kernel.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace shoal {

/// The "fold-batchnorm" pass (inference pipelines only): batchnorm(conv2d(x, w, [b])) with the
/// conv's result read by nothing else becomes conv2d(x, w * s, (b - mean) * s + beta), with
/// s = gamma / sqrt(var + eps) per output channel (PyTorch's fuse_conv_bn_eval); the same for
/// dense. The folded weight and bias are computed by small elementwise ops from the params and
/// running statistics: values of the program, not constants, which the executors compute once
/// per change of the parameters rather than every run (parameterDerivedNodes). A training step
/// (ctx.train set) is left unchanged.
std::unique_ptr<Pass> createFoldBatchNormPass();

}  // namespace shoal
