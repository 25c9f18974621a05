// CUDA codegen, the elementwise family's ops that are not formula rows (those need no
// emitter: codegen/cuda_kernels_elementwise.cpp runs every formula): the comparisons, where,
// and the axis reductions. Reductions are deterministic: a fixed tree per block, splits
// summed in order, sums in double for f32 as the interpreter does.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "codegen/cuda_emit.h"
#include "ir/shape_geometry.h"

namespace shoal::cudagen {

namespace {

// The broadcast walk of `out` for each operand: dimensions of extent 1 dropped, neighbours
// that broadcast alike for every operand merged; per operand, each merged dimension's extent
// and its stride in that operand (0 where it repeats).
std::vector<std::vector<Dim>> broadcastWalk(const Shape& out, const std::vector<Shape>& operands) {
  const size_t rank = out.size(), count = operands.size();
  std::vector<int64_t> extent;
  std::vector<std::vector<bool>> repeats(count);
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    std::vector<bool> r(count);
    for (size_t k = 0; k < count; ++k) r[k] = geometry::alignedExtent(operands[k], d, rank) == 1;
    bool merge = !extent.empty();
    for (size_t k = 0; k < count && merge; ++k) merge = repeats[k].back() == r[k];
    if (merge) {
      extent.back() *= out[d];
    } else {
      extent.push_back(out[d]);
      for (size_t k = 0; k < count; ++k) repeats[k].push_back(r[k]);
    }
  }
  std::vector<std::vector<Dim>> walk(count, std::vector<Dim>(extent.size()));
  for (size_t k = 0; k < count; ++k) {
    int64_t run = 1;
    for (size_t d = extent.size(); d-- > 0;) {
      walk[k][d] = {extent[d], repeats[k][d] ? 0 : run};
      if (!repeats[k][d]) run *= extent[d];
    }
  }
  return walk;
}

// The broadcast operands of `em`'s node (inputs `first`..end): kernel parameters, launch
// arguments and, per operand, the expression reading its element for output index i (with
// the offset statements it needs appended to `code`).
struct Operands {
  std::string params;
  std::vector<CudaArg> args;
  std::vector<std::string> element;
};

Operands familyOperands(const NodeEmitter& em, std::string& code) {
  const Node& n = em.node();
  const Shape& out = em.outShape();
  const int64_t count = numElements(out);
  std::vector<Shape> shapes;
  for (size_t k = 0; k < n.numInputs(); ++k) shapes.push_back(em.inShape(k));
  auto walk = broadcastWalk(out, shapes);
  Operands ops;
  for (size_t k = 0; k < n.numInputs(); ++k) {
    const std::string name = "a" + std::to_string(k);
    ops.params += fill("const ${V}* __restrict__ ${A}, ", {{"V", cudaType(n.input(k)->type().dtype)}, {"A", name}});
    ops.args.push_back(em.in(k));
    const int64_t size = numElements(shapes[k]);
    if (size == count) {
      ops.element.push_back(name + "[i]");
    } else if (size == 1) {
      ops.element.push_back(name + "[0]");
    } else {
      const std::string off = "o" + name;
      code += "    " + em.I() + " " + off + " = 0;\n";
      code += offsetCode(em.I(), "i", walk[k], off, "    ");
      ops.element.push_back(name + "[" + off + "]");
    }
  }
  return ops;
}

std::string comparisonOperator(OpKind kind) {
  if (kind == OpKind::Equal) return "==";
  if (kind == OpKind::NotEqual) return "!=";
  if (kind == OpKind::Less) return "<";
  if (kind == OpKind::LessEqual) return "<=";
  if (kind == OpKind::Greater) return ">";
  if (kind == OpKind::GreaterEqual) return ">=";
  return "";
}

// A reduction's two index spaces over its input: the kept dimensions (one output each,
// row-major as in the output) and the reduced ones, each with its stride in the input;
// extent-1 dimensions dropped, contiguous neighbours of one kind merged.
struct ReduceSpaces {
  std::vector<Dim> kept, reduced;
  int64_t outputs = 1, terms = 1;
};

ReduceSpaces reduceSpaces(const Shape& in, const std::vector<int64_t>& axes) {
  const size_t rank = in.size();
  std::vector<bool> isReduced(rank, axes.empty());
  for (int64_t a : axes) isReduced[size_t(a < 0 ? a + int64_t(rank) : a)] = true;
  std::vector<int64_t> stride(rank, 1);
  for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * in[d];
  ReduceSpaces s;
  int last = -1;  // 0 kept, 1 reduced
  for (size_t d = 0; d < rank; ++d) {
    const int kind = isReduced[d] ? 1 : 0;
    (kind ? s.terms : s.outputs) *= in[d];
    if (in[d] == 1) continue;
    std::vector<Dim>& dims = kind ? s.reduced : s.kept;
    if (kind == last) {
      dims.back().extent *= in[d];
      dims.back().stride = stride[d];
    } else {
      dims.push_back({in[d], stride[d]});
    }
    last = kind;
  }
  return s;
}

}  // namespace

Expected<void> emitCompare(NodeEmitter& em) {
  const Node& n = em.node();
  const std::string op = comparisonOperator(n.kind());
  if (op.empty()) return em.unsupported("not a comparison");
  std::string code;
  Operands ops = familyOperands(em, code);
  code += "    y[i] = " + ops.element[0] + " " + op + " " + ops.element[1] + ";\n";
  ops.args.push_back(em.out());
  em.elementwise("", ops.params + "bool* __restrict__ y", code, std::move(ops.args), numElements(em.outShape()));
  return {};
}

Expected<void> emitWhere(NodeEmitter& em) {
  const Node& n = em.node();
  std::string code;
  Operands ops = familyOperands(em, code);
  code += "    y[i] = " + ops.element[0] + " ? " + ops.element[1] + " : " + ops.element[2] + ";\n";
  ops.args.push_back(em.out());
  em.elementwise("", ops.params + fill("${V}* __restrict__ y", {{"V", cudaType(n.result()->type().dtype)}}), code,
                 std::move(ops.args), numElements(em.outShape()));
  return {};
}

// Short reductions: one thread per output, terms in order (the interpreter's order, so sums
// agree bit for bit). Long ones: a block per output (and per split of its terms when there are
// few outputs) reducing in a fixed tree, then the splits combined in order. Every kind
// accumulates in double (exact for max and min); mean multiplies by 1/count as the interpreter.
Expected<void> emitReduce(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("reductions need a float operand");
  const OpKind kind = n.kind();
  const bool isMax = kind == OpKind::ReduceMax, isMin = kind == OpKind::ReduceMin;
  const bool isMean = kind == OpKind::ReduceMean, isProd = kind == OpKind::ReduceProd;
  if (!isMax && !isMin && !isMean && !isProd && kind != OpKind::ReduceSum) return em.unsupported("not a reduction");
  ReduceSpaces s = reduceSpaces(em.inShape(0), n.attrs().getInts("axes"));
  if (s.outputs == 0) return {};        // nothing to write
  if (s.terms == 0) s.reduced.clear();  // no term is read: no offset code (its extents would divide by 0)
  const double inf = std::numeric_limits<double>::infinity();
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"R", intLit(s.terms)},
            {"INIT", isMax    ? literal(-inf, DType::F64)
                     : isMin  ? literal(inf, DType::F64)
                     : isProd ? "1.0"
                              : "0.0"},
            // The value a term `t` leaves in `acc`: NaN wins max and min (torch.amax/amin).
            {"COMBINE", isMax    ? "(t > acc || t != t) ? t : acc"
                        : isMin  ? "(t < acc || t != t) ? t : acc"
                        : isProd ? "acc * t"
                                 : "acc + t"},
            {"SCALE", literal(isMean ? 1.0 / double(s.terms) : 1.0, DType::F64)}};
  v.push_back({"BASE", offsetCode(em.I(), "j", s.kept, "base", "    ")});
  // The kept index j, when the offset of the first term depends on it (no kept dimension: it is 0).
  v.push_back({"J", v.back().second.empty() ? "" : fill("    const ${I} j = i;\n", v)});
  v.push_back({"TERM", offsetCode(em.I(), "k", s.reduced, "off", "      ")});
  // The stored result: mean scales by 1/count as the interpreter does.
  v.push_back({"FINAL", fill(isMean ? "(${T})(acc * ${SCALE})" : "(${T})acc", v)});
  if (s.terms <= 32) {
    em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v),
                   fill("${J}"
                        "    ${I} base = 0;\n"
                        "${BASE}"
                        "    double acc = ${INIT};\n"
                        "    for (${I} k = 0; k < ${R}; ++k) {\n"
                        "      ${I} off = base;\n"
                        "${TERM}"
                        "      const double t = (double)x[off];\n"
                        "      acc = ${COMBINE};\n"
                        "    }\n"
                        "    y[i] = ${FINAL};\n",
                        v),
                   {em.in(0), em.out()}, s.outputs);
    return {};
  }
  int64_t splits =
      std::clamp<int64_t>((kTargetBlocks + s.outputs - 1) / s.outputs, 1, std::max<int64_t>(1, s.terms / 2048));
  splits = std::min<int64_t>(splits, 65535);
  const int64_t chunk = (s.terms + splits - 1) / splits;
  v.push_back({"CHUNK", intLit(chunk)});
  v.push_back({"SPLITS", intLit(splits)});
  v.push_back({"BLOCK", std::to_string(kBlock)});
  v.push_back({"BASE2", offsetCode(em.I(), "j", s.kept, "base", "  ")});
  v.push_back({"TERM2", offsetCode(em.I(), "k", s.reduced, "off", "    ")});
  v.push_back({"RESULT", splits == 1 ? fill("${T}* __restrict__ y", v) : "double* __restrict__ partial"});
  v.push_back({"STORE", fill(splits == 1 ? "y[j] = ${FINAL};" : "partial[j * ${SPLITS} + blockIdx.y] = acc;", v)});
  const std::string body = fill(
      "  __shared__ double red[${BLOCK}];\n"
      "  const ${I} j = blockIdx.x;\n"
      "  ${I} base = 0;\n"
      "${BASE2}"
      "  const ${I} begin = (${I})blockIdx.y * ${CHUNK};\n"
      "  const ${I} end = begin + ${CHUNK} < ${R} ? begin + ${CHUNK} : ${R};\n"
      "  double acc = ${INIT};\n"
      "  for (${I} k = begin + threadIdx.x; k < end; k += blockDim.x) {\n"
      "    ${I} off = base;\n"
      "${TERM2}"
      "    const double t = (double)x[off];\n"
      "    acc = ${COMBINE};\n"
      "  }\n"
      "  red[threadIdx.x] = acc;\n"
      "  __syncthreads();\n"
      "  for (int half = blockDim.x / 2; half > 0; half >>= 1) {  // a fixed tree: reproducible\n"
      "    if (threadIdx.x < half) {\n"
      "      const double t = red[threadIdx.x + half];\n"
      "      acc = red[threadIdx.x];\n"
      "      red[threadIdx.x] = ${COMBINE};\n"
      "    }\n"
      "    __syncthreads();\n"
      "  }\n"
      "  if (threadIdx.x == 0) {\n"
      "    acc = red[0];\n"
      "    ${STORE}\n"
      "  }\n",
      v);
  em.kernel(splits == 1 ? "" : "partial", fill("const ${T}* __restrict__ x, ${RESULT}", v), body,
            {em.in(0), splits == 1 ? em.out() : NodeEmitter::scratch()}, unsigned(s.outputs), unsigned(splits));
  if (splits > 1) {
    em.needScratch(s.outputs * splits * int64_t(sizeof(double)));
    em.elementwise("combine", fill("const double* __restrict__ partial, ${T}* __restrict__ y", v),
                   fill("    double acc = partial[i * ${SPLITS}];\n"
                        "    for (int split = 1; split < ${SPLITS}; ++split) {\n"
                        "      const double t = partial[i * ${SPLITS} + split];\n"
                        "      acc = ${COMBINE};\n"
                        "    }\n"
                        "    y[i] = ${FINAL};\n",
                        v),
                   {NodeEmitter::scratch(), em.out()}, s.outputs);
  }
  return {};
}

}  // namespace shoal::cudagen
