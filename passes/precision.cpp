// promoteFloatsToF64: the float64 twin of a graph, node for node.
#include "passes/precision.h"

#include "ir/shape_inference.h"

namespace shoal {

Expected<std::unique_ptr<Graph>> promoteFloatsToF64(const Graph& g) {
  auto out = g.clone();
  for (Node* n : out->nodes()) {
    bool declared = n->kind() == OpKind::Input || n->kind() == OpKind::Param || n->kind() == OpKind::State ||
                    n->kind() == OpKind::Constant;
    if (declared) {
      for (size_t r = 0; r < n->numResults(); ++r) {
        TensorType t = n->result(r)->type();
        if (t.dtype == DType::F32) t.dtype = DType::F64;
        n->result(r)->setType(t);
      }
      continue;
    }
    // An op's `dtype` attribute names its result's element type (cast, fused_elementwise,
    // one_hot): f32 there becomes f64 too.
    if (n->attrs().has("dtype") && n->attrs().getString("dtype") == "f32") n->attrs().set("dtype", std::string("f64"));
    auto types = inferResultTypes(*n);
    if (!types) return Unexpected(types.error());
    for (size_t r = 0; r < n->numResults() && r < types->size(); ++r) n->result(r)->setType((*types)[r]);
  }
  return out;
}

}  // namespace shoal
