// Host evaluation of the elementwise formulas, and the fused_elementwise expression language.
#include "ir/elementwise.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>

#include "ir/scalar_math.h"

namespace shoal {

namespace {

constexpr int kMaxDepth = 16;

// The formula of every elementwise row as a double function of its operands and params.
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc)
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc)          \
  double eval##kind(const double* in, const double* params) {                                     \
    using namespace scalar;                                                                        \
    using T = double;                                                                              \
    [[maybe_unused]] const T a = in[0], b = (arity) > 1 ? in[1] : 0, c = (arity) > 2 ? in[2] : 0; \
    [[maybe_unused]] const T p0 = params[0], p1 = params[1], p2 = params[2], p3 = params[3];       \
    return formula;                                                                                \
  }
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP

}  // namespace

double evalElementwise(OpKind kind, const double* operands, const double* params) {
  double in[kMaxFormulaOperands] = {0, 0, 0};
  double p[kMaxFormulaParams] = {0, 0, 0, 0};
  const OpInfo& info = opInfo(kind);
  for (int i = 0; i < info.minInputs && i < kMaxFormulaOperands; ++i) in[i] = operands[i];
  for (size_t i = 0; i < info.formulaParams.size() && i < size_t(kMaxFormulaParams); ++i) p[i] = params[i];
  switch (kind) {
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc) case OpKind::kind:
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc) \
  case OpKind::kind:                                                                         \
    return eval##kind(in, p);
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP
    break;
  }
  return 0.0;  // not elementwise: callers check isElementwise first
}

std::vector<double> formulaParams(const Node& n) {
  std::vector<double> out;
  for (const std::string& name : n.info().formulaParams) out.push_back(n.attrs().getFloat(name));
  return out;
}

int ExprInstr::arity() const { return kind == Kind::Op ? opInfo(op).minInputs : 0; }

std::string exprToken(OpKind op, const std::vector<double>& params) {
  std::string out(opName(op));
  if (params.empty()) return out;
  out += '(';
  for (size_t i = 0; i < params.size(); ++i) out += (i ? "," : "") + formatDouble(params[i]);
  return out + ')';
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
      in.kind = ExprInstr::Kind::Operand;
      in.operand = idx;
    } else if (std::isdigit(static_cast<unsigned char>(tok[0])) || tok[0] == '-' || tok[0] == '.') {
      double v = 0;
      auto r = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (r.ec != std::errc() || r.ptr != tok.data() + tok.size())
        return fail(fmt::format("bad number '{}' in fused expression", tok));
      in.kind = ExprInstr::Kind::Constant;
      in.constant = v;
    } else {
      size_t open = tok.find('(');
      std::string_view name = tok.substr(0, open);
      auto kind = opKindFromName(name);
      if (!kind || !isElementwise(*kind))
        return fail(fmt::format("unknown operation '{}' in fused expression", name));
      in.kind = ExprInstr::Kind::Op;
      in.op = *kind;
      const OpInfo& info = opInfo(*kind);
      if (open != std::string_view::npos) {
        if (tok.back() != ')') return fail(fmt::format("bad token '{}' in fused expression: no closing ')'", tok));
        std::string_view list = tok.substr(open + 1, tok.size() - open - 2);
        for (size_t p = 0; p <= list.size();) {
          size_t comma = list.find(',', p);
          std::string_view num = list.substr(p, comma == std::string_view::npos ? std::string_view::npos : comma - p);
          double v = 0;
          auto r = std::from_chars(num.data(), num.data() + num.size(), v);
          if (num.empty() || r.ec != std::errc() || r.ptr != num.data() + num.size())
            return fail(fmt::format("bad number '{}' in the parameters of '{}' in fused expression", num, name));
          in.params.push_back(v);
          if (comma == std::string_view::npos) break;
          p = comma + 1;
        }
      }
      if (in.params.size() != info.formulaParams.size())
        return fail(fmt::format("'{}' takes {} parameter(s) in fused expression, got {}", name, info.formulaParams.size(),
                                in.params.size()));
    }
    int arity = in.arity();
    if (depth < arity) return fail(fmt::format("'{}' needs {} values in fused expression '{}'", tok, arity, expr));
    depth = depth - arity + 1;
    if (depth > kMaxDepth) return fail("fused expression is too deep");
    program.push_back(std::move(in));
  }
  if (depth != 1) return fail(fmt::format("fused expression '{}' leaves {} values, expected 1", expr, depth));
  return program;
}

int exprStackDepth(const std::vector<ExprInstr>& program) {
  int depth = 0, most = 0;
  for (const ExprInstr& in : program) {
    depth = depth - in.arity() + 1;
    most = std::max(most, depth);
  }
  return most;
}

}  // namespace shoal
