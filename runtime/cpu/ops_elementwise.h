// CPU kernels of the elementwise family's ops that are not formula rows: the comparisons
// (bool results), where, and the reductions. The elementwise math rows need none (their
// formulas are their kernels). Dispatched from NodeRunner::run (runtime/cpu/interpreter.cpp).
#pragma once

#include "runtime/cpu/op_context.h"

namespace shoal::cpu {

/// equal, not_equal, less, less_equal, greater, greater_equal: bool = a op b with NumPy
/// broadcasting, over operands of any one element type (T is unused: the operands' type decides).
template <typename T>
Expected<void> runCompare(OpContext& c);

/// where(cond, a, b): a where cond else b, broadcast together; any element type for a and b.
template <typename T>
Expected<void> runWhere(OpContext& c);

/// reduce_sum, reduce_mean, reduce_max, reduce_min over the node's axes (cpu::reduce).
template <typename T>
Expected<void> runReduce(OpContext& c);

}  // namespace shoal::cpu
