// CUDA codegen, train family: the optimizer updates (one parameter per kernel, or a run of
// them horizontally fused into one), binary cross-entropy with logits and its gradient,
// one-hot targets, and the squared global gradient norm. Every kernel does the interpreter's
// arithmetic in the interpreter's order (runtime/cpu/ops_train.cpp, kernels_loss.cpp).
#include <fmt/format.h>

#include <algorithm>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// ---- optimizer updates --------------------------------------------------------------------

// Where an update's operands are: the tensors shaped like the parameter (per member of a
// fused group), then the scalars every member of a group shares.
struct UpdateLayout {
  std::vector<std::string> tensors;  ///< pointer names, operand i = tensors[i]: w, g, ...
  std::vector<bool> written;         ///< per tensor: updated in place
  int step = -1;                     ///< adam's step count operand
  int lr = -1;
  int scale = -1;  ///< the optional grad_scale operand (-1: none)
};

UpdateLayout layoutOf(const Node& n) {
  UpdateLayout l;
  if (n.kind() == OpKind::SgdUpdate) {
    l.tensors = {"w", "g"};
    l.written = {true, false};
    l.lr = 2;
  } else if (n.kind() == OpKind::SgdMomentumUpdate) {
    l.tensors = {"w", "g", "vel"};
    l.written = {true, false, true};
    l.lr = 3;
  } else {
    l.tensors = {"w", "g", "m", "v"};
    l.written = {true, false, true, true};
    l.step = 4;
    l.lr = 5;
  }
  const int scale = l.lr + 1;
  if (int(n.numInputs()) > scale) l.scale = scale;
  return l;
}

bool isAdam(const Node& n) { return n.kind() == OpKind::AdamUpdate; }

// Elements an update thread takes per tile (kBlock apart).
constexpr int kUpdateUnroll = 4;

// The hyperparameters of one update kind as literals of the element type (`T` rounded, as the
// interpreter's T(attr)).
Vars updateVars(const NodeEmitter& em, int site) {
  const Node& n = em.node();
  const DType dt = em.computeType();
  const Attrs& a = n.attrs();
  const UpdateLayout l = layoutOf(n);
  Vars v = {{"T", em.T()},
            {"SITE", std::to_string(site)},
            {"WD", literal(a.getFloat("weight_decay"), dt)},
            {"LRT", cudaType(n.input(size_t(l.lr))->type().dtype)},
            {"GS", l.scale >= 0 ? " * gs" : ""},
            {"GST", l.scale >= 0 ? cudaType(n.input(size_t(l.scale))->type().dtype) : "float"}};
  if (n.kind() == OpKind::SgdMomentumUpdate) v.push_back({"MOM", literal(a.getFloat("momentum"), dt)});
  if (isAdam(n)) {
    v.push_back({"S", cudaType(n.input(size_t(l.step))->type().dtype)});
    v.push_back({"B1", literal(a.getFloat("beta1"), dt)});
    v.push_back({"B2", literal(a.getFloat("beta2"), dt)});
    v.push_back({"EPS", literal(a.getFloat("eps"), dt)});
    const bool decoupled = a.getInt("decoupled_weight_decay") != 0;
    v.push_back({"L2", decoupled ? literal(0.0, dt) : literal(a.getFloat("weight_decay"), dt)});
    // AdamW: w *= 1 - lr·weight_decay, the factor in double as the interpreter computes it.
    v.push_back({"SHRINK", fill("(${T})(1.0 - lr * (double)${WD})",
                                {{"T", em.T()}, {"WD", literal(a.getFloat("weight_decay"), dt)}})});
  }
  return v;
}

// A launch's prologue: skip after an earlier error, read the shared scalars.
std::string updatePrologue(const Node& n, const Vars& v) {
  const UpdateLayout l = layoutOf(n);
  // The scalars are read before the status test, so the three loads are in flight together
  // instead of one after another (nothing is written before the test).
  std::string out = "  const u64 failed = status[0];\n";
  if (l.scale >= 0) out += "  const ${T} gs = (${T})gsp[0];\n";
  if (isAdam(n)) out += "  const double stepValue = (double)step[0];\n";
  out += isAdam(n) ? "  const double lr = (double)lrp[0];\n" : "  const ${T} lr = (${T})lrp[0];\n";
  out += "  if (failed != 0) return;  // an earlier kernel of this step reported an error: update nothing\n";
  if (isAdam(n)) {
    out +=
        "  const long long t = llrint(round(stepValue));\n"
        "  if (t < 1) {\n"
        "    if (blockIdx.x == 0 && threadIdx.x == 0) shoal_report_value(status, ${SITE}, stepValue);\n"
        "    return;\n"
        "  }\n"
        "  const ${T} beta1 = ${B1}, beta2 = ${B2}, eps = ${EPS}, l2 = ${L2};\n"
        "  const double bc1 = 1.0 - pow((double)beta1, (double)t);\n"
        "  const double bc2 = 1.0 - pow((double)beta2, (double)t);\n"
        "  const ${T} stepSize = (${T})(lr / bc1);\n"
        "  const ${T} bc2Sqrt = (${T})sqrt(bc2);\n";
    if (n.attrs().getInt("decoupled_weight_decay") != 0) out += "  const ${T} shrink = ${SHRINK};\n";
  }
  if (l.scale >= 0) out += "  if (gs == (${T})0) return;  // a loss-scaled step that overflowed: skipped\n";
  return fill(out, v);
}

// One element's update over the pointers of member `s` (w<s>, g<s>, ...) at index j: exactly
// the interpreter's statements (sgdUpdate / adamUpdate).
std::string updateElement(const Node& n, const Vars& vars, const std::string& s, const std::string& j,
                          const std::string& indent) {
  Vars v = vars;
  auto at = [&](const char* p) { return std::string(p) + s + "[" + j + "]"; };
  v.push_back({"W", at("w")});
  v.push_back({"G", at("g")});
  v.push_back({"_", indent});
  std::string code;
  if (n.kind() == OpKind::SgdUpdate) {
    code = "${_}${W} -= lr * (${G}${GS} + ${WD} * ${W});\n";
  } else if (n.kind() == OpKind::SgdMomentumUpdate) {
    v.push_back({"VEL", at("vel")});
    const bool nesterov = n.attrs().getInt("nesterov") != 0;
    code =
        "${_}const ${T} gi = ${G}${GS} + ${WD} * ${W};\n"
        "${_}${VEL} = ${MOM} * ${VEL} + gi;\n";
    code += nesterov ? "${_}${W} -= lr * (gi + ${MOM} * ${VEL});\n" : "${_}${W} -= lr * ${VEL};\n";
  } else {
    v.push_back({"M", at("m")});
    v.push_back({"V", at("v")});
    const bool decoupled = n.attrs().getInt("decoupled_weight_decay") != 0;
    code = decoupled ? "${_}const ${T} wi = ${W} * shrink;\n" : "${_}const ${T} wi = ${W};\n";
    code +=
        "${_}const ${T} gi = ${G}${GS} + l2 * wi;\n"
        "${_}const ${T} mi = beta1 * ${M} + ((${T})1 - beta1) * gi;\n"
        "${_}const ${T} vi = beta2 * ${V} + ((${T})1 - beta2) * gi * gi;\n"
        "${_}${M} = mi;\n"
        "${_}${V} = vi;\n"
        "${_}${W} = wi - stepSize * mi / (shoal_sqrt(vi) / bc2Sqrt + eps);\n";
  }
  return fill(code, v);
}

// Attributes and shared scalar operands agree (so one kernel's literals and pointers serve both).
bool sameHyperparameters(const Node& a, const Node& b) {
  if (a.attrs().entries().size() != b.attrs().entries().size()) return false;
  for (const auto& [key, value] : a.attrs().entries()) {
    const AttrValue* other = b.attrs().find(key);
    if (!other || attrValueString(*other) != attrValueString(value)) return false;
  }
  const UpdateLayout l = layoutOf(a);
  for (int i : {l.step, l.lr, l.scale})
    if (i >= 0 && a.input(size_t(i)) != b.input(size_t(i))) return false;
  return true;
}

}  // namespace

bool updatesFuse(const Node& a, const Node& b) {
  if (a.kind() != b.kind() || a.numInputs() != b.numInputs() || mutatedOperands(a.kind()).empty()) return false;
  const DType dt = a.input(0)->type().dtype;
  if (!isFloat(dt)) return false;
  const UpdateLayout l = layoutOf(a);
  for (const Node* n : {&a, &b})
    for (size_t i = 0; i < l.tensors.size(); ++i)
      if (n->input(i)->type().dtype != dt) return false;
  return sameHyperparameters(a, b);
}

// One grid-stride loop over the concatenated elements of every member's parameter; an element
// finds its parameter by comparing against the (compile-time) segment ends, then runs exactly
// the per-parameter statements on that parameter's pointers. A group of one is the plain
// per-parameter kernel.
Expected<void> emitUpdateGroup(const std::vector<NodeEmitter*>& group) {
  NodeEmitter& first = *group.front();
  const Node& n0 = first.node();
  if (!isFloat(n0.input(0)->type().dtype)) return first.unsupported("the parameter must be f32 or f64");
  const UpdateLayout l = layoutOf(n0);
  for (NodeEmitter* em : group) em->comment();
  int site = -1;
  for (NodeEmitter* em : group) {  // every member keeps its site, so the status layout is the same
    int s = isAdam(n0) ? em->errorSite(CudaErrorKind::AdamStep) : -1;
    if (site < 0) site = s;
  }
  int64_t total = 0;
  std::vector<int64_t> ends;
  for (NodeEmitter* em : group) {
    total += em->node().input(0)->type().numElements();
    ends.push_back(total);
  }
  Vars v = updateVars(first, site);
  const bool single = group.size() == 1;
  v.push_back({"I", single ? first.I() : indexType(total)});
  v.push_back({"N", intLit(total)});
  std::string params;
  std::vector<CudaArg> args;
  for (size_t k = 0; k < group.size(); ++k) {
    const std::string s = single ? "" : std::to_string(k);
    for (size_t t = 0; t < l.tensors.size(); ++t) {
      params +=
          fill(std::string(l.written[t] ? "${T}* " : "const ${T}* ") + "__restrict__ " + l.tensors[t] + s + ", ", v);
      args.push_back(group[k]->in(t));
    }
  }
  if (l.step >= 0) {
    params += fill("const ${S}* __restrict__ step, ", v);
    args.push_back(first.in(size_t(l.step)));
  }
  params += fill("const ${LRT}* __restrict__ lrp, ", v);
  args.push_back(first.in(size_t(l.lr)));
  if (l.scale >= 0) {
    params += fill("const ${GST}* __restrict__ gsp, ", v);
    args.push_back(first.in(size_t(l.scale)));
  }
  params += isAdam(n0) ? "u64* __restrict__ status" : "const u64* __restrict__ status";
  args.push_back(NodeEmitter::status());

  // Each member (with elements) owns a run of blocks, so a block knows its parameter without a
  // test per element; a thread takes kUpdateUnroll elements kBlock apart (coalesced), and a
  // whole tile's loads go out before its stores, so they overlap instead of queueing. Tiles past
  // the member's blocks are taken in turn.
  std::vector<size_t> members;
  for (size_t k = 0; k < group.size(); ++k)
    if (group[k]->node().input(0)->type().numElements() > 0) members.push_back(k);
  const int64_t perTile = int64_t(kBlock) * kUpdateUnroll;
  v.push_back({"U", std::to_string(kUpdateUnroll)});
  v.push_back({"BLOCK", std::to_string(kBlock)});
  std::string loop = "  const unsigned blk = blockIdx.x;\n";
  int64_t firstBlock = 0;
  if (single) {
    // One parameter: its pointers and extents in the code.
    if (!members.empty()) {
      const int64_t n = n0.input(0)->type().numElements(), tiles = (n + perTile - 1) / perTile;
      Vars m = v;
      m.push_back({"NB", intLit(std::min<int64_t>(tiles, kMaxGrid))});
      m.push_back({"TILES", intLit(tiles)});
      m.push_back({"NK", intLit(n)});
      loop += fill(
          "  for (${I} tile = (${I})blk; tile < ${TILES}; tile += ${NB}) {\n"
          "    const ${I} base = tile * (${U} * ${BLOCK}) + threadIdx.x;\n"
          "    if (base + (${U} - 1) * ${BLOCK} < ${NK}) {\n"
          "#pragma unroll\n"
          "      for (int r = 0; r < ${U}; ++r) {\n"
          "        const ${I} j = base + r * ${BLOCK};\n",
          m);
      loop += updateElement(n0, v, "", "j", "        ");
      loop += fill(
          "      }\n"
          "    } else {\n"
          "      for (${I} j = base; j < ${NK}; j += ${BLOCK}) {\n",
          m);
      loop += updateElement(n0, v, "", "j", "        ");
      loop += "      }\n    }\n  }\n";
      firstBlock = std::min<int64_t>(tiles, kMaxGrid);
    }
  } else if (!members.empty()) {
    // A group: the block's member picks its pointers and extents from a chain of block bounds,
    // then one copy of the update runs on them. The code is the same size for 2 members or 64:
    // with the update written out per member, ptxas took 9 s for a group of 64 Adam updates
    // (ViT-tiny's training step has three such groups).
    for (size_t t = 0; t < l.tensors.size(); ++t)
      loop += fill(std::string(l.written[t] ? "  ${T}* " : "  const ${T}* ") + l.tensors[t] + ";\n", v);
    loop += fill("  ${I} first, blocks, tiles, count;\n", v);
    for (size_t x = 0; x < members.size(); ++x) {
      const size_t k = members[x];
      const int64_t n = group[k]->node().input(0)->type().numElements();
      const int64_t tiles = (n + perTile - 1) / perTile, blocks = std::min<int64_t>(tiles, kMaxGrid);
      const bool last = x + 1 == members.size();
      std::string pick;
      for (const std::string& t : l.tensors) pick += fmt::format("{} = {}{}; ", t, t, k);
      loop += fmt::format("  {}{{ {}first = {}; blocks = {}; tiles = {}; count = {}; }}\n",
                          x == 0 ? (last ? "" : fmt::format("if (blk < {}u) ", firstBlock + blocks))
                                 : (last ? "else " : fmt::format("else if (blk < {}u) ", firstBlock + blocks)),
                          pick, intLit(firstBlock), intLit(blocks), intLit(tiles), intLit(n));
      firstBlock += blocks;
    }
    // The tile's elements into registers (named <tensor>r_), updated by exactly the
    // per-parameter statements, the written ones stored back.
    std::string loads, stores;
    for (size_t t = 0; t < l.tensors.size(); ++t) {
      loads += fmt::format("        {0}r_[r] = {0}[j];\n", l.tensors[t]);
      if (l.written[t]) stores += fmt::format("        {0}[j] = {0}r_[r];\n", l.tensors[t]);
    }
    std::string regs;
    for (const std::string& t : l.tensors) regs += (regs.empty() ? "" : ", ") + t + "r_[${U}]";
    loop += fill(
        "  for (${I} tile = (${I})blk - first; tile < tiles; tile += blocks) {\n"
        "    const ${I} base = tile * (${U} * ${BLOCK}) + threadIdx.x;\n"
        "    if (base + (${U} - 1) * ${BLOCK} < count) {\n"
        "      ${T} " + regs + ";\n"
        "#pragma unroll\n"
        "      for (int r = 0; r < ${U}; ++r) {\n"
        "        const ${I} j = base + r * ${BLOCK};\n" + loads +
        "      }\n"
        "#pragma unroll\n"
        "      for (int r = 0; r < ${U}; ++r) {\n",
        v);
    loop += updateElement(n0, v, "r_", "r", "        ");
    loop += fill(
        "      }\n"
        "#pragma unroll\n"
        "      for (int r = 0; r < ${U}; ++r) {\n"
        "        const ${I} j = base + r * ${BLOCK};\n" + stores +
        "      }\n"
        "    } else {\n"
        "      for (${I} j = base; j < count; j += ${BLOCK}) {\n",
        v);
    loop += updateElement(n0, v, "", "j", "        ");
    loop += "      }\n    }\n  }\n";
  }
  first.kernel(single ? "" : "x" + std::to_string(group.size()), params, updatePrologue(n0, v) + loop,
               std::move(args), unsigned(std::max<int64_t>(firstBlock, 1)));
  return {};
}

Expected<void> emitUpdate(NodeEmitter& em) { return emitUpdateGroup({&em}); }

// ---- binary cross-entropy with logits -------------------------------------------------------

// Mean over all elements of max(x,0) - x·t + log1p(exp(-|x|)), each term in double, in one
// block (a block sum in a fixed order).
Expected<void> emitBceWithLogits(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("bce_with_logits needs float operands");
  const int64_t count = n.input(0)->type().numElements();
  Vars v = {{"T", em.T()}, {"I", em.I()}, {"N", intLit(count)}};
  em.kernel("", fill("const ${T}* __restrict__ logits, const ${T}* __restrict__ targets, ${T}* __restrict__ loss", v),
            fill("  __shared__ double red[32];\n"
                 "  double s = 0.0;\n"
                 "  for (${I} i = threadIdx.x; i < ${N}; i += blockDim.x) {\n"
                 "    const double x = (double)logits[i], t = (double)targets[i];\n"
                 "    s += (x < 0.0 ? 0.0 : x) - x * t + log1p(exp(-fabs(x)));  // std::max(x, 0.0) on the host\n"
                 "  }\n"
                 "  s = shoal_block_sum(s, red);\n"
                 "  if (threadIdx.x == 0) loss[0] = (${T})(s / (double)${N});\n",
                 v),
            {em.in(0), em.in(1), em.out()}, 1);
  return {};
}

Expected<void> emitBceWithLogitsGrad(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("bce_with_logits_grad needs float operands");
  const int64_t count = n.result()->type().numElements();
  Vars v = {{"T", em.T()}, {"N", intLit(count)}};
  em.elementwise("",
                 fill("const ${T}* __restrict__ logits, const ${T}* __restrict__ targets, "
                      "const ${T}* __restrict__ dloss, ${T}* __restrict__ dlogits",
                      v),
                 fill("    const ${T} scale = dloss[0] / (${T})${N};\n"
                      "    dlogits[i] = scale * (shoal_sigmoid(logits[i]) - targets[i]);\n",
                      v),
                 {em.in(0), em.in(1), em.in(2), em.out()}, count);
  return {};
}

// ---- one-hot targets ------------------------------------------------------------------------

// A thread per output element; a bad label is reported (its row's first thread) through the
// status words like the cross-entropy kernels', and its row is left zero.
Expected<void> emitOneHot(NodeEmitter& em) {
  const Node& n = em.node();
  if (isFloat(n.input(0)->type().dtype)) return em.unsupported("labels must be integers");
  const int64_t rows = em.outShape()[0], classes = em.outShape()[1];
  int site = em.errorSite(CudaErrorKind::LabelOutOfRange, classes);
  Vars v = {
      {"T", em.T()}, {"L", cudaType(n.input(0)->type().dtype)}, {"C", intLit(classes)}, {"SITE", std::to_string(site)}};
  em.elementwise("", fill("const ${L}* __restrict__ labels, ${T}* __restrict__ out, u64* __restrict__ status", v),
                 fill("    const long long row = (long long)(i / ${C}), j = (long long)(i % ${C});\n"
                      "    const long long label = (long long)labels[row];\n"
                      "    if (label < 0 || label >= ${C}) {\n"
                      "      if (j == 0) shoal_report_label(status, ${SITE}, row, label);\n"
                      "      out[i] = (${T})0;\n"
                      "    } else {\n"
                      "      out[i] = j == label ? (${T})1 : (${T})0;\n"
                      "    }\n",
                      v),
                 {em.in(0), em.out(), NodeEmitter::status()}, rows * classes);
  return {};
}

// ---- the squared global norm ----------------------------------------------------------------

// Σ over every operand of Σ x². Each block walks every operand with a grid-stride loop (no
// per-element search for the operand), summing squares in double; the block sums go to
// scratch and one thread adds them in block order (deterministic), or a single block writes
// the result itself.
// One thread: the interpreter's runLossScaleUpdate (states e and good in place), skipped like
// the updates when an earlier kernel of the step reported an error.
Expected<void> emitLossScaleUpdate(NodeEmitter& em) {
  const Vars v = {{"T", em.T()}, {"INTERVAL", literal(double(em.node().attrs().getInt("growth_interval")), DType::F32)}};
  em.kernel("",
            fill("${T}* __restrict__ e, ${T}* __restrict__ good, const ${T}* __restrict__ s, "
                 "const u64* __restrict__ status",
                 v),
            fill("  if (blockIdx.x != 0 || threadIdx.x != 0 || status[0] != 0) return;\n"
                 "  if (!isfinite(s[0])) {\n"
                 "    e[0] -= (${T})1;\n"
                 "    good[0] = (${T})0;\n"
                 "  } else if (good[0] + (${T})1 >= (${T})${INTERVAL}) {\n"
                 "    e[0] += (${T})1;\n"
                 "    good[0] = (${T})0;\n"
                 "  } else {\n"
                 "    good[0] += (${T})1;\n"
                 "  }\n",
                 v),
            {em.in(0), em.in(1), em.in(2), NodeEmitter::status()}, 1);
  return {};
}

Expected<void> emitGlobalSumSquares(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("global_sum_squares needs float operands");
  int64_t total = 0;
  for (const Value* in : n.inputs()) total += in->type().numElements();
  // About eight elements per thread per block before a block sum is worth it.
  const int64_t blocks =
      std::clamp<int64_t>((total + 8 * int64_t(kBlock) - 1) / (8 * int64_t(kBlock)), 1, kTargetBlocks);
  const std::string I = indexType(total);
  Vars v = {{"T", em.T()}, {"I", I}, {"B", intLit(blocks)}};
  std::string params, loops;
  std::vector<CudaArg> args;
  for (size_t k = 0; k < n.numInputs(); ++k) {
    const std::string s = std::to_string(k);
    params += fill("const ${T}* __restrict__ x" + s + ", ", v);
    args.push_back(em.in(k));
    loops += fill(
        "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x)"
        " acc += (double)x${K}[i] * (double)x${K}[i];\n",
        {{"I", I}, {"N", intLit(n.input(k)->type().numElements())}, {"K", s}});
  }
  v.push_back({"LOOPS", loops});
  if (blocks == 1) {
    params += fill("${T}* __restrict__ out", v);
    args.push_back(em.out());
    em.kernel("", params,
              fill("  __shared__ double red[32];\n"
                   "  double acc = 0.0;\n"
                   "${LOOPS}"
                   "  acc = shoal_block_sum(acc, red);\n"
                   "  if (threadIdx.x == 0) out[0] = (${T})acc;\n",
                   v),
              std::move(args), 1);
    return {};
  }
  params += "double* __restrict__ partial";
  args.push_back(NodeEmitter::scratch());
  em.needScratch(blocks * int64_t(sizeof(double)));
  em.kernel("partial", params,
            fill("  __shared__ double red[32];\n"
                 "  double acc = 0.0;\n"
                 "${LOOPS}"
                 "  acc = shoal_block_sum(acc, red);\n"
                 "  if (threadIdx.x == 0) partial[blockIdx.x] = acc;\n",
                 v),
            std::move(args), unsigned(blocks));
  em.kernel("sum", fill("const double* __restrict__ partial, ${T}* __restrict__ out", v),
            fill("  if (blockIdx.x != 0 || threadIdx.x != 0) return;\n"
                 "  double s = 0.0;\n"
                 "  for (int b = 0; b < ${B}; ++b) s += partial[b];\n"
                 "  out[0] = (${T})s;\n",
                 v),
            {NodeEmitter::scratch(), em.out()}, 1);
  return {};
}

}  // namespace shoal::cudagen
