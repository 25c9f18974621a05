// The fused_elementwise expression language.
#include "ir/elementwise_expr.h"

#include <fmt/format.h>

#include <charconv>

namespace shoal {

namespace {
constexpr ExprOpKind kOps[] = {ExprOpKind::Relu,        ExprOpKind::Sigmoid,    ExprOpKind::Tanh,      ExprOpKind::Neg,
                               ExprOpKind::Add,         ExprOpKind::Sub,        ExprOpKind::Mul,       ExprOpKind::Div,
                               ExprOpKind::ReluGrad,    ExprOpKind::SigmoidGrad, ExprOpKind::TanhGrad};
constexpr int kMaxDepth = 16;
}  // namespace

int exprArity(ExprOpKind kind) {
  switch (kind) {
    case ExprOpKind::Operand:
    case ExprOpKind::Constant: return 0;
    case ExprOpKind::Relu:
    case ExprOpKind::Sigmoid:
    case ExprOpKind::Tanh:
    case ExprOpKind::Neg: return 1;
    case ExprOpKind::Add:
    case ExprOpKind::Sub:
    case ExprOpKind::Mul:
    case ExprOpKind::Div:
    case ExprOpKind::ReluGrad:
    case ExprOpKind::SigmoidGrad:
    case ExprOpKind::TanhGrad: return 2;
  }
  return 0;
}

std::string_view exprOpName(ExprOpKind kind) {
  switch (kind) {
    case ExprOpKind::Operand: return "operand";
    case ExprOpKind::Constant: return "constant";
    case ExprOpKind::Relu: return "relu";
    case ExprOpKind::Sigmoid: return "sigmoid";
    case ExprOpKind::Tanh: return "tanh";
    case ExprOpKind::Neg: return "neg";
    case ExprOpKind::Add: return "add";
    case ExprOpKind::Sub: return "sub";
    case ExprOpKind::Mul: return "mul";
    case ExprOpKind::Div: return "div";
    case ExprOpKind::ReluGrad: return "relu_grad";
    case ExprOpKind::SigmoidGrad: return "sigmoid_grad";
    case ExprOpKind::TanhGrad: return "tanh_grad";
  }
  return "?";
}

Expected<std::vector<ExprInstr>> parseElementwiseExpr(std::string_view expr, int numOperands) {
  std::vector<ExprInstr> program;
  int depth = 0;
  size_t i = 0;
  while (i < expr.size()) {
    while (i < expr.size() && expr[i] == ' ') ++i;
    if (i >= expr.size()) break;
    size_t end = expr.find(' ', i);
    std::string_view tok = expr.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    i = end == std::string_view::npos ? expr.size() : end;
    ExprInstr in;
    if (tok.size() >= 2 && tok[0] == 'a' && std::isdigit(static_cast<unsigned char>(tok[1]))) {
      int idx = -1;
      auto r = std::from_chars(tok.data() + 1, tok.data() + tok.size(), idx);
      if (r.ec != std::errc() || r.ptr != tok.data() + tok.size() || idx < 0 || idx >= numOperands)
        return fail(fmt::format("fused expression names operand '{}', but there are {}", tok, numOperands));
      in.kind = ExprOpKind::Operand;
      in.operand = idx;
    } else if (std::isdigit(static_cast<unsigned char>(tok[0])) || tok[0] == '-' || tok[0] == '.') {
      double v = 0;
      auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (r.ec != std::errc() || r.ptr != tok.data() + tok.size())
        return fail(fmt::format("bad number '{}' in fused expression", tok));
      in.kind = ExprOpKind::Constant;
      in.constant = v;
    } else {
      bool known = false;
      for (ExprOpKind k : kOps)
        if (exprOpName(k) == tok) in.kind = k, known = true;
      if (!known) return fail(fmt::format("unknown operation '{}' in fused expression", tok));
    }
    int arity = exprArity(in.kind);
    if (depth < arity) return fail(fmt::format("'{}' needs {} values in fused expression '{}'", tok, arity, expr));
    depth = depth - arity + 1;
    if (depth > kMaxDepth) return fail("fused expression is too deep");
    program.push_back(in);
  }
  if (depth != 1) return fail(fmt::format("fused expression '{}' leaves {} values, expected 1", expr, depth));
  return program;
}

int exprStackDepth(const std::vector<ExprInstr>& program) {
  int depth = 0, most = 0;
  for (const ExprInstr& in : program) {
    depth = depth - exprArity(in.kind) + 1;
    most = std::max(most, depth);
  }
  return most;
}

}  // namespace shoal
