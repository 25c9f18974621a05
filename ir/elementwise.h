// Elementwise ops: their formulas (ir/ops.def, with ir/scalar_math.h) evaluated on the host,
// and the postfix expression language of fused_elementwise over them: `a0 a1 mul scale(0.5,1)
// relu` computes relu((a0*a1)*0.5 + 1) per element. The shape rule (validation), the
// interpreter, fold-constants and the CUDA codegen all read programs through this header, so
// all of them agree on what a fused chain means.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "support/diagnostics.h"

namespace shoal {

/// Most float attributes an elementwise formula takes (p0..p3).
inline constexpr int kMaxFormulaParams = 4;
/// Most operands an elementwise formula takes (a, b, c).
inline constexpr int kMaxFormulaOperands = 3;

/// Evaluates elementwise op `kind`'s formula in double: `operands` holds its arity's values,
/// `params` its float attributes in schema order (OpInfo::formulaParams).
double evalElementwise(OpKind kind, const double* operands, const double* params);

/// The float attributes of elementwise node `n`, in formula order (p0, p1, ...).
std::vector<double> formulaParams(const Node& n);

/// One instruction of a fused_elementwise program.
struct ExprInstr {
  enum class Kind { Operand, Constant, Op };
  Kind kind = Kind::Operand;
  int operand = -1;            ///< Operand: which input (a0..a7)
  double constant = 0;         ///< Constant
  OpKind op = OpKind::Add;     ///< Op: an elementwise op
  std::vector<double> params;  ///< Op: its float attributes, in formula order

  /// Values it pops: 0 for operands and constants, else the op's arity.
  int arity() const;
};

/// The token of one elementwise op with its float attributes: `relu`, `scale(0.5,1)`.
std::string exprToken(OpKind op, const std::vector<double>& params);

/// Parses and validates a postfix program over `numOperands` inputs: every token an operand
/// `a<k>`, a number or an elementwise op (with exactly its float attributes in parentheses
/// when it has any), no stack underflow, exactly one value left, at most 16 values on the stack.
Expected<std::vector<ExprInstr>> parseElementwiseExpr(std::string_view expr, int numOperands);

/// Whether a fused_elementwise operand of type `operand` may feed a chain computing in another
/// type: converted as it is read, exactly as cast converts (u8, i8, i32, f32, f64: a double
/// holds every value, so there is one rounding to the chain's type either way).
inline bool convertsOnLoad(DType operand) {
  return operand == DType::U8 || operand == DType::I8 || operand == DType::I32 || operand == DType::F32 ||
         operand == DType::F64;
}

/// The largest stack depth a valid program reaches.
int exprStackDepth(const std::vector<ExprInstr>& program);

}  // namespace shoal
