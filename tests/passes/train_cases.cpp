// Gradient-check cases of the train family (see tests/passes/grad_cases.h).
#include "ir/printer.h"  // grad_cases.h uses printGraph without including it
#include "passes/grad_cases.h"

namespace shoal::test {
namespace {

// Both operands: the logits (bce_with_logits_grad) and the float targets (-logits·dloss/n);
// then logits of magnitude 15..45, where log(sigmoid(x)) computed naively loses everything.
SHOAL_GRAD_CASES(BceWithLogits, OpKind::BceWithLogits) {
  return {
      {"logits and targets",
       [](TestGraph& t) {
         t.output(t.op(OpKind::BceWithLogits, {t.param("logits", {3, 4}), t.param("targets", {3, 4})}, {}, "loss"),
                  "loss");
       }},
      {"large logits", [](TestGraph& t) {
         Value* x = t.op(OpKind::Scale, {t.param("x", {2, 3}, Fill::AwayFromZero)}, attrs({{"scale", 30.0}}), "x30");
         Value* targets = t.constant("targets", {2, 3}, {1, 0, 0.5, 0.25, 1, 0}, DType::F64);
         t.output(t.op(OpKind::BceWithLogits, {x, targets}, {}, "loss"), "loss");
       }}};
}

}  // namespace
}  // namespace shoal::test
