// The shape family's fusion pass (passes/fuse_shape.cpp), registered in pass_registry.cpp.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace shoal {

/// fuse-transpose-matmul: a transpose that swaps only the last two axes and feeds matmul or
/// batch_matmul becomes that operand's transpose flag, so cuBLAS/OpenBLAS read the matrix
/// transposed instead of a kernel copying it (dce drops the transpose once nothing reads it).
std::unique_ptr<Pass> createFuseTransposeMatmulPass();

}  // namespace shoal
