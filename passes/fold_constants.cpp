// fold-constants: small ops whose operands are all constants become constants.
#include <algorithm>
#include <cmath>
#include <optional>

#include "ir/elementwise.h"
#include "ir/shape_inference.h"
#include "passes/pass.h"

namespace shoal {

namespace {

constexpr int64_t kMaxFoldElements = 1 << 16;

// Flat index into a broadcast operand of shape `s` for output multi-index `idx`.
int64_t broadcastIndex(const Shape& out, const Shape& s, int64_t flat) {
  int64_t index = 0, stride = 1;
  for (size_t k = out.size(); k-- > 0;) {
    int64_t coord = flat % out[k];
    flat /= out[k];
    size_t off = out.size() - s.size();
    if (k >= off) {
      int64_t extent = s[k - off];
      index += (extent == 1 ? 0 : coord) * stride;
      stride *= extent;
    }
  }
  return index;
}

double roundTo(DType t, double v) {
  switch (t) {
    case DType::F32: return double(float(v));
    case DType::F64: return v;
    case DType::I32: return double(int32_t(v));
    case DType::I64: return double(int64_t(v));
    case DType::U8: return double(uint8_t(v));
    case DType::Bool: return v != 0 ? 1.0 : 0.0;
    default: {  // the storage types: as a tensor of that type holds it
      Tensor one(t, Shape{});
      one.set(0, v);
      return one.at(0);
    }
  }
  return v;
}

// Evaluates n in double precision over literal operands; nullopt when the op is not foldable.
// Elementwise ops fold by their formula (ir/ops.def); views (reshape, flatten, cast) keep the
// values. Matrix products and convolutions are left to the device, even over constants.
std::optional<std::vector<double>> evaluate(const Node& n, const std::vector<const TensorLiteral*>& in) {
  const TensorType& out = n.result()->type();
  int64_t count = out.numElements();
  std::vector<double> y(size_t(count), 0.0);
  if (n.info().traits.isView) {
    for (int64_t i = 0; i < count; ++i) y[size_t(i)] = in[0]->values[size_t(i)];
    return y;
  }
  if (!isElementwise(n.kind())) return std::nullopt;
  std::vector<double> params = formulaParams(n);
  params.resize(kMaxFormulaParams, 0.0);
  double operands[kMaxFormulaOperands] = {0, 0, 0};
  for (int64_t i = 0; i < count; ++i) {
    for (size_t k = 0; k < in.size() && k < size_t(kMaxFormulaOperands); ++k)
      operands[k] = in[k]->values[size_t(broadcastIndex(out.shape, n.input(k)->type().shape, i))];
    y[size_t(i)] = evalElementwise(n.kind(), operands, params.data());
  }
  return y;
}

class FoldConstantsPass : public Pass {
 public:
  std::string_view name() const override { return "fold-constants"; }
  std::string_view summary() const override { return "evaluate small all-constant ops at compile time"; }
  Expected<bool> run(Graph& g, PassContext&) override {
    bool changed = false;
    std::vector<Node*> nodes = g.nodes();
    for (Node* n : nodes) {
      if (n->numResults() != 1 || n->numInputs() == 0) continue;
      if (n->result()->type().numElements() > kMaxFoldElements) continue;
      std::vector<const TensorLiteral*> literals;
      for (Value* in : n->inputs())
        if (in->def()->kind() == OpKind::Constant) literals.push_back(&in->def()->attrs().getTensor("value"));
      if (literals.size() != n->numInputs()) continue;
      auto values = evaluate(*n, literals);
      if (!values) continue;
      const TensorType type = n->result()->type();
      // An integer division by zero is left for the run to report.
      if (!isFloat(type.dtype) && !std::all_of(values->begin(), values->end(), [](double v) { return std::isfinite(v); }))
        continue;
      for (double& v : *values) v = roundTo(type.dtype, v);
      Attrs attrs;
      attrs.set("value", TensorLiteral{type.shape, std::move(*values)});
      std::string resultName = n->result()->name();
      Node* folded = g.insertNodeBefore(n, OpKind::Constant, {}, std::move(attrs), {{resultName + ".folded", type}}, n->loc());
      g.replaceAllUsesWith(n->result(), folded->result());
      g.eraseNode(n);
      g.renameValue(folded->result(), resultName);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldConstantsPass() { return std::make_unique<FoldConstantsPass>(); }

}  // namespace shoal
