// fuse-transpose-matmul: transposes of the last two axes folded into the GEMM's transpose flags.
#include "passes/fuse_shape.h"

#include "ir/shape_geometry.h"

namespace shoal {

namespace {

// True when `perm` (normalised) keeps every axis but the last two, which it swaps.
bool swapsLastTwo(const std::vector<int64_t>& perm) {
  const size_t rank = perm.size();
  if (rank < 2) return false;
  for (size_t d = 0; d + 2 < rank; ++d)
    if (perm[d] != int64_t(d)) return false;
  return perm[rank - 2] == int64_t(rank - 1) && perm[rank - 1] == int64_t(rank - 2);
}

class FuseTransposeMatmulPass : public Pass {
 public:
  std::string_view name() const override { return "fuse-transpose-matmul"; }
  std::string_view summary() const override {
    return "a transpose of the last two axes feeding matmul/batch_matmul -> the operand's transpose flag";
  }
  Expected<bool> run(Graph& g, PassContext&) override {
    bool changed = false;
    for (Node* n : g.nodes()) {
      if (n->kind() != OpKind::MatMul && n->kind() != OpKind::BatchMatMul) continue;
      for (size_t i = 0; i < 2; ++i) {
        Node* t = n->input(i)->def();
        if (!t || t->kind() != OpKind::Transpose) continue;
        auto perm = geometry::permutation(t->attrs().getInts("perm"), t->input(0)->type().rank());
        if (!perm || !swapsLastTwo(*perm)) continue;
        // A rank-2 matmul operand is exactly its matrix; batch_matmul keeps the batch axes.
        const std::string flag = i == 0 ? "transpose_a" : "transpose_b";
        n->setInput(i, t->input(0));
        n->attrs().set(flag, int64_t(n->attrs().getInt(flag, 0) == 0));
        changed = true;
      }
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createFuseTransposeMatmulPass() { return std::make_unique<FuseTransposeMatmulPass>(); }

}  // namespace shoal
