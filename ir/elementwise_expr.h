// The postfix expression language of fused_elementwise: `a0 a1 mul 0.5 add relu` computes
// relu(a0*a1 + 0.5) per element. Shared by the shape rule (validation), the interpreter and
// the CUDA codegen, so all three agree on what a fused chain means.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "support/diagnostics.h"

namespace shoal {

enum class ExprOpKind { Operand, Constant, Relu, Sigmoid, Tanh, Neg, Add, Sub, Mul, Div, ReluGrad, SigmoidGrad, TanhGrad };

struct ExprInstr {
  ExprOpKind kind = ExprOpKind::Operand;
  int operand = -1;     ///< for Operand: which input (a0..a7)
  double constant = 0;  ///< for Constant
};

/// How many stack values an instruction pops (Operand and Constant push one, pop none).
int exprArity(ExprOpKind kind);
/// The token of an operation ("mul", "relu_grad", ...).
std::string_view exprOpName(ExprOpKind kind);

/// Parses and validates a postfix program over `numOperands` inputs: every token known, no
/// stack underflow, exactly one value left, at most 16 values on the stack.
Expected<std::vector<ExprInstr>> parseElementwiseExpr(std::string_view expr, int numOperands);

/// The largest stack depth a valid program reaches.
int exprStackDepth(const std::vector<ExprInstr>& program);

}  // namespace shoal
