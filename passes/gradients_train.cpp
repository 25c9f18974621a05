// Gradient rules of the train family's differentiable ops.
#include "passes/gradients.h"

namespace shoal {

// d/dlogits through bce_with_logits_grad; d/dtargets of max(x,0) - x·t + log(1+exp(-|x|)) is
// -x, so the targets' gradient is -logits · dloss / count (PyTorch differentiates targets too).
SHOAL_GRADIENT(BceWithLogits) {
  if (g.operand == 0) return g.emit(OpKind::BceWithLogitsGrad, {g.x(), g.input(1), g.dy}, {});
  const Value* logits = g.input(0);
  auto scaled = g.emit(OpKind::Scale, {g.input(0)},
                       attrsOf({{"scale", -1.0 / double(logits->type().numElements())}, {"shift", 0.0}}), ".scaled");
  if (!scaled) return scaled;
  return g.emit(OpKind::Mul, {*scaled, g.dy}, {});
}

}  // namespace shoal
