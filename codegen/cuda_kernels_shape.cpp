// CUDA codegen, shape family: data movement as gather kernels (one thread per result element,
// its source offset computed from the index geometry of ir/shape_geometry.h), gradients by
// gathering too (no atomics: reproducible, and summed in the interpreter's order),
// batch_matmul as cuBLAS strided-batched GEMMs, softmax over a non-last axis, causal_mask.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include <shoal/tensor.h>

#include "codegen/cuda_emit.h"
#include "ir/shape_geometry.h"

namespace shoal::cudagen {

namespace {

// The element type of the node's result ("float", "long long", "unsigned char", ...).
std::string elemType(const NodeEmitter& em) { return cudaType(em.node().result()->type().dtype); }

// The dims of a strided view, for offsetCode.
std::vector<Dim> dimsOf(const geometry::StridedView& v) {
  std::vector<Dim> dims;
  for (size_t d = 0; d < v.shape.size(); ++d) dims.push_back({v.shape[d], v.strides[d]});
  return dims;
}

// y[i] = x[the view's i-th element]: slice, transpose, expand.
Expected<void> emitStridedCopy(NodeEmitter& em, const geometry::StridedView& view) {
  const int64_t n = numElements(view.shape);
  Vars v = {{"E", elemType(em)}, {"I", em.I()}, {"BASE", intLit(view.offset)}};
  v.push_back({"OFFSET", offsetCode(em.I(), "i", dimsOf(view), "off", "    ")});
  em.elementwise("", fill("const ${E}* __restrict__ x, ${E}* __restrict__ y", v),
                 fill("    ${I} off = ${BASE};\n"
                      "${OFFSET}"
                      "    y[i] = x[off];\n",
                      v),
                 {em.in(0), em.out()}, n);
  return {};
}

bool fitsInt(int64_t v) { return v >= 0 && v <= int64_t(std::numeric_limits<int32_t>::max()); }

}  // namespace

// One kernel per operand, each copying its elements into their place in the result.
Expected<void> emitConcat(NodeEmitter& em) {
  const Node& n = em.node();
  auto axis = geometry::normalizeAxis(n.attrs().getInt("axis"), int64_t(em.inShape(0).size()));
  if (!axis) return em.unsupported(axis.error().message());
  const geometry::AxisSplit out = geometry::splitAt(em.outShape(), *axis);
  int64_t at = 0;  // where this operand starts along the axis
  for (size_t k = 0; k < n.numInputs(); ++k) {
    const geometry::AxisSplit s = geometry::splitAt(em.inShape(k), *axis);
    Vars v = {{"E", elemType(em)},
              {"I", em.I()},
              {"CHUNK", intLit(s.extent * s.inner)},
              {"ROW", intLit(out.extent * out.inner)},
              {"AT", intLit(at * out.inner)}};
    em.elementwise("part" + std::to_string(k), fill("const ${E}* __restrict__ x, ${E}* __restrict__ y", v),
                   fill("    y[(i / ${CHUNK}) * ${ROW} + ${AT} + i % ${CHUNK}] = x[i];\n", v), {em.in(k), em.out()},
                   s.outer * s.extent * s.inner);
    at += s.extent;
  }
  return {};
}

Expected<void> emitSlice(NodeEmitter& em) {
  auto axes = geometry::sliceAxes(em.inShape(0), em.node().attrs());
  if (!axes) return em.unsupported(axes.error().message());
  return emitStridedCopy(em, geometry::sliceView(em.inShape(0), *axes));
}

// dx by gathering: each input element finds whether the slice read it, and which dy element.
Expected<void> emitSliceGrad(NodeEmitter& em) {
  if (!isFloat(em.node().input(0)->type().dtype)) return em.unsupported("slice_grad needs a float gradient");
  const Shape& in = em.outShape();
  auto axes = geometry::sliceAxes(in, em.node().attrs());
  if (!axes) return em.unsupported(axes.error().message());
  const std::vector<int64_t> dyStride = geometry::stridesOf(geometry::sliceShape(*axes));
  std::string code = fill("    ${I} r = i, src = 0;\n    bool hit = true;\n", {{"I", em.I()}});
  for (size_t d = in.size(); d-- > 0;) {
    const geometry::SliceAxis& a = (*axes)[d];
    Vars v = {{"I", em.I()},
              {"EXT", intLit(in[d])},
              {"START", intLit(a.start)},
              {"STEP", intLit(a.step < 0 ? -a.step : a.step)},
              {"COUNT", intLit(a.count)},
              {"STRIDE", intLit(dyStride[d])}};
    if (a.start == 0 && a.step == 1 && a.count == in[d]) {
      code += fill("    src += (r % ${EXT}) * ${STRIDE};\n    r /= ${EXT};\n", v);
      continue;
    }
    // t: the distance from the slice's first index, in the direction it walks.
    v.push_back({"T", a.step > 0 ? fill("r % ${EXT} - ${START}", v) : fill("${START} - r % ${EXT}", v)});
    code += fill(fill("    {\n"
                      "      const ${I} t = ${T};\n"
                      "      hit = hit && t >= 0 && t % ${STEP} == 0 && t / ${STEP} < ${COUNT};\n"
                      "      src += (t / ${STEP}) * ${STRIDE};\n"
                      "      r /= ${EXT};\n"
                      "    }\n",
                      v),
                 v);
  }
  Vars v = {{"T", em.T()}};
  code += fill("    dx[i] = hit ? dy[src] : (${T})0;\n", v);
  em.elementwise("", fill("const ${T}* __restrict__ dy, ${T}* __restrict__ dx", v), code, {em.in(0), em.out()},
                 numElements(in));
  return {};
}

Expected<void> emitTranspose(NodeEmitter& em) {
  auto perm = geometry::permutation(em.node().attrs().getInts("perm"), int64_t(em.inShape(0).size()));
  if (!perm) return em.unsupported(perm.error().message());
  return emitStridedCopy(em, geometry::transposeView(em.inShape(0), *perm));
}

Expected<void> emitExpand(NodeEmitter& em) { return emitStridedCopy(em, geometry::expandView(em.inShape(0), em.outShape())); }

// One thread per padded element: per axis, the source coordinate by the mode (the rule of
// geometry::padSource), or the fill value.
Expected<void> emitPad(NodeEmitter& em) {
  const Shape& in = em.inShape(0);
  auto spec = geometry::padSpec(in, em.node().attrs());
  if (!spec) return em.unsupported(spec.error().message());
  const Shape out = geometry::paddedShape(in, *spec);
  const std::vector<int64_t> inStride = geometry::stridesOf(in);
  const DType dt = em.node().result()->type().dtype;
  std::string code = fill("    ${I} r = i, src = 0;\n    bool inside = true;\n", {{"I", em.I()}});
  for (size_t d = out.size(); d-- > 0;) {
    Vars v = {{"I", em.I()},
              {"OUT", intLit(out[d])},
              {"EXT", intLit(in[d])},
              {"LAST", intLit(in[d] - 1)},
              {"BEFORE", intLit(spec->before[d])},
              {"STRIDE", intLit(inStride[d])}};
    if (spec->before[d] == 0 && spec->after[d] == 0) {
      code += fill("    src += (r % ${OUT}) * ${STRIDE};\n    r /= ${OUT};\n", v);
      continue;
    }
    std::string rule;
    switch (spec->mode) {
      case geometry::PadModeKind::Constant: rule = "      if (s < 0 || s > ${LAST}) inside = false;\n"; break;
      case geometry::PadModeKind::Edge: rule = "      s = s < 0 ? 0 : (s > ${LAST} ? ${LAST} : s);\n"; break;
      case geometry::PadModeKind::Reflect: rule = "      s = s < 0 ? -s : (s > ${LAST} ? 2 * ${LAST} - s : s);\n"; break;
    }
    v.push_back({"RULE", fill(rule, v)});
    code += fill(fill("    {\n"
                      "      ${I} s = r % ${OUT} - ${BEFORE};\n"
                      "${RULE}"
                      "      src += s * ${STRIDE};\n"
                      "      r /= ${OUT};\n"
                      "    }\n",
                      v),
                 v);
  }
  Vars v = {{"E", elemType(em)}, {"FILL", literal(spec->value, dt)}};
  // Integers saturate like the interpreter's Tensor::set.
  if (!isFloat(dt)) {
    Tensor t(dt, {});
    t.set(0, spec->value);
    v[1].second = literal(t.at(0), dt);
  }
  code += fill("    y[i] = inside ? x[src] : ${FILL};\n", v);
  em.elementwise("", fill("const ${E}* __restrict__ x, ${E}* __restrict__ y", v), code, {em.in(0), em.out()},
                 numElements(out));
  return {};
}

// dx by gathering: per axis the padded coordinates that copied input coordinate c (ascending),
// then nested loops over their product, adding dy in increasing output order (the
// interpreter's order).
Expected<void> emitPadGrad(NodeEmitter& em) {
  if (!isFloat(em.node().input(0)->type().dtype)) return em.unsupported("pad_grad needs a float gradient");
  const Shape& in = em.outShape();
  auto spec = geometry::padSpec(in, em.node().attrs());
  if (!spec) return em.unsupported(spec.error().message());
  const Shape out = geometry::paddedShape(in, *spec);
  const std::vector<int64_t> outStride = geometry::stridesOf(out);
  const size_t rank = in.size();
  std::string code = fill("    ${I} r = i;\n", {{"I", em.I()}});
  // Coordinates, innermost axis first.
  for (size_t d = rank; d-- > 0;)
    code += fill("    const ${I} c${D} = r % ${EXT};\n    r /= ${EXT};\n",
                 {{"I", em.I()}, {"D", std::to_string(d)}, {"EXT", intLit(in[d])}});
  // Candidate output coordinates per axis: o<d>[0 .. n<d>).
  for (size_t d = 0; d < rank; ++d) {
    Vars v = {{"I", em.I()},
              {"D", std::to_string(d)},
              {"BEFORE", intLit(spec->before[d])},
              {"AFTER", intLit(spec->after[d])},
              {"LAST", intLit(in[d] - 1)}};
    code += fill(spec->mode == geometry::PadModeKind::Edge ? "    ${I} o${D}[2];\n" : "    ${I} o${D}[3];\n    int n${D} = 0;\n", v);
    switch (spec->mode) {
      case geometry::PadModeKind::Constant: code += fill("    o${D}[n${D}++] = ${BEFORE} + c${D};\n", v); break;
      case geometry::PadModeKind::Reflect:
        code += fill("    if (c${D} >= 1 && c${D} <= ${BEFORE}) o${D}[n${D}++] = ${BEFORE} - c${D};\n"
                     "    o${D}[n${D}++] = ${BEFORE} + c${D};\n"
                     "    if (c${D} < ${LAST} && c${D} >= ${LAST} - ${AFTER}) o${D}[n${D}++] = ${BEFORE} + 2 * ${LAST} - c${D};\n",
                     v);
        break;
      case geometry::PadModeKind::Edge:
        // A range: the whole border copies the edge element. Stored as [lo, hi] in o<d>[0..1].
        code += fill("    o${D}[0] = c${D} == 0 ? 0 : ${BEFORE} + c${D};\n"
                     "    o${D}[1] = c${D} == ${LAST} ? ${BEFORE} + ${LAST} + ${AFTER} : ${BEFORE} + c${D};\n",
                     v);
        break;
    }
  }
  code += fill("    ${T} acc = (${T})0;\n", {{"T", em.T()}});
  std::string indent = "    ", offset = "0";
  for (size_t d = 0; d < rank; ++d) {
    Vars v = {{"I", em.I()}, {"D", std::to_string(d)}};
    if (spec->mode == geometry::PadModeKind::Edge)
      code += indent + fill("for (${I} p${D} = o${D}[0]; p${D} <= o${D}[1]; ++p${D}) {\n", v);
    else
      code += indent + fill("for (int j${D} = 0; j${D} < n${D}; ++j${D}) {\n", v) + indent +
              fill("  const ${I} p${D} = o${D}[j${D}];\n", v);
    offset += " + p" + std::to_string(d) + " * " + intLit(outStride[d]);
    indent += "  ";
  }
  code += indent + "acc += dy[" + offset + "];\n";
  for (size_t d = rank; d-- > 0;) {
    indent.resize(indent.size() - 2);
    code += indent + "}\n";
  }
  code += "    dx[i] = acc;\n";
  em.elementwise("", fill("const ${T}* __restrict__ dy, ${T}* __restrict__ dx", {{"T", em.T()}}), code,
                 {em.in(0), em.out()}, numElements(in));
  return {};
}

// One thread per result element; a bad index is reported (the first position wins) and its
// element left unwritten, as the interpreter stops there.
Expected<void> emitGather(NodeEmitter& em) {
  const Node& n = em.node();
  const DType it = n.input(1)->type().dtype;
  if (isFloat(it)) return em.unsupported("gather needs integer indices");
  auto axis = geometry::normalizeAxis(n.attrs().getInt("axis"), int64_t(em.inShape(0).size()));
  if (!axis) return em.unsupported(axis.error().message());
  const geometry::AxisSplit x = geometry::splitAt(em.inShape(0), *axis);
  const int64_t count = numElements(em.inShape(1));
  const int site = em.errorSite(CudaErrorKind::IndexOutOfRange, x.extent);
  Vars v = {{"E", elemType(em)},        {"X", cudaType(it)},         {"I", em.I()},
            {"INNER", intLit(x.inner)}, {"COUNT", intLit(count)},    {"EXT", intLit(x.extent)},
            {"SITE", std::to_string(site)}};
  em.elementwise("",
                 fill("const ${E}* __restrict__ x, const ${X}* __restrict__ indices, ${E}* __restrict__ y, "
                      "u64* __restrict__ status",
                      v),
                 fill("    const ${I} j = i % ${INNER};\n"
                      "    const ${I} k = (i / ${INNER}) % ${COUNT};\n"
                      "    const ${I} o = i / ((${I})${INNER} * ${COUNT});\n"
                      "    long long idx = (long long)indices[k];\n"
                      "    if (idx < -${EXT} || idx >= ${EXT}) {\n"
                      "      shoal_report_label(status, ${SITE}, k, idx);\n"
                      "      continue;\n"
                      "    }\n"
                      "    if (idx < 0) idx += ${EXT};\n"
                      "    y[i] = x[(o * ${EXT} + idx) * ${INNER} + j];\n",
                      v),
                 {em.in(0), em.in(1), em.out(), NodeEmitter::status()}, x.outer * count * x.inner);
  return {};
}

// One thread per dx element (o, e, j): the dy rows whose index is e, added in index order
// (the interpreter's scatter-add order), so no atomics. Each thread reads every index: fine
// for the vocabularies of small models; a sort-based kernel would pay for large ones.
Expected<void> emitGatherGrad(NodeEmitter& em) {
  const Node& n = em.node();
  const DType it = n.input(1)->type().dtype;
  if (isFloat(it) || !isFloat(n.input(0)->type().dtype)) return em.unsupported("gather_grad needs (float dy, integer indices)");
  auto axis = geometry::normalizeAxis(n.attrs().getInt("axis"), int64_t(em.outShape().size()));
  if (!axis) return em.unsupported(axis.error().message());
  const geometry::AxisSplit x = geometry::splitAt(em.outShape(), *axis);
  const int64_t count = numElements(em.inShape(1));
  Vars v = {{"T", em.T()}, {"X", cudaType(it)}, {"I", em.I()}, {"INNER", intLit(x.inner)}, {"COUNT", intLit(count)},
            {"EXT", intLit(x.extent)}};
  em.elementwise("", fill("const ${T}* __restrict__ dy, const ${X}* __restrict__ indices, ${T}* __restrict__ dx", v),
                 fill("    const ${I} j = i % ${INNER};\n"
                      "    const ${I} e = (i / ${INNER}) % ${EXT};\n"
                      "    const ${I} o = i / ((${I})${INNER} * ${EXT});\n"
                      "    ${T} acc = (${T})0;\n"
                      "    for (${I} k = 0; k < ${COUNT}; ++k) {\n"
                      "      long long idx = (long long)indices[k];\n"
                      "      if (idx < 0) idx += ${EXT};\n"
                      "      if (idx == e) acc += dy[(o * ${COUNT} + k) * ${INNER} + j];\n"
                      "    }\n"
                      "    dx[i] = acc;\n",
                      v),
                 {em.in(0), em.in(1), em.out()}, x.outer * x.extent * x.inner);
  return {};
}

// squeeze / unsqueeze: the planner aliases them; the copy step is skipped when it did.
Expected<void> emitView(NodeEmitter& em) {
  em.copy(em.node().input(0), em.node().result());
  return {};
}

// One cuBLAS call per run of batch indices the operands walk uniformly (one call when each
// operand is dense over the batch axes or broadcast over all of them).
Expected<void> emitBatchMatMul(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype) || n.input(0)->type().dtype != n.input(1)->type().dtype)
    return em.unsupported("batch_matmul needs operands of one float type");
  auto g = geometry::batchMatMulGeometry(em.inShape(0), em.inShape(1), n.attrs().getInt("transpose_a") != 0,
                                         n.attrs().getInt("transpose_b") != 0);
  if (!g) return em.unsupported(g.error().message());
  if (!fitsInt(g->m) || !fitsInt(g->n) || !fitsInt(g->k) || !fitsInt(g->batchCount()))
    return em.unsupported("matrix extents or batch exceed cuBLAS's int range");
  if (g->k == 0) return em.unsupported("an empty inner dimension");
  for (const geometry::BatchRun& r : geometry::batchRuns(*g)) {
    CudaGemmCall call;
    call.dtype = em.computeType();
    call.transA = g->transA, call.transB = g->transB;
    call.m = int(g->m), call.n = int(g->n), call.k = int(g->k);
    call.lda = int(g->transA ? g->m : g->k);
    call.ldb = int(g->transB ? g->k : g->n);
    call.ldc = int(g->n);
    call.a = em.in(0), call.b = em.in(1), call.c = em.out();
    call.alpha = n.attrs().getFloat("alpha");
    call.batch = int(r.count);
    call.strideA = r.aStride, call.strideB = r.bStride, call.strideC = g->m * g->n;
    call.offsetA = g->aOffset(r.first), call.offsetB = g->bOffset(r.first), call.offsetC = r.first * g->m * g->n;
    em.gemm(call);
  }
  return {};
}

// softmax and friends over any axis: the last axis is the one-warp-per-row kernels of
// cuda_kernels_reduce.cpp; any other, one thread per (outer, inner) column (neighbouring threads
// read neighbouring columns, so loads coalesce), the interpreter's column arithmetic.
Expected<void> emitSoftmaxAxis(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("needs float operands");
  auto axis = geometry::normalizeAxis(n.attrs().getInt("axis"), int64_t(em.inShape(0).size()));
  if (!axis) return em.unsupported(axis.error().message());
  const geometry::AxisSplit s = geometry::splitAt(em.inShape(0), *axis);
  if (s.inner == 1) return emitSoftmaxFamily(em);
  Vars v = {{"T", em.T()}, {"I", em.I()}, {"EXT", intLit(s.extent)}, {"INNER", intLit(s.inner)}};
  const std::string head = "    const ${I} base = (i / ${INNER}) * ${EXT} * ${INNER} + i % ${INNER};\n";
  const std::string loop = "    for (${I} j = base; j < base + ${EXT} * ${INNER}; j += ${INNER})";
  std::string params, body;
  std::vector<CudaArg> args;
  if (n.kind() == OpKind::Softmax) {
    params = "const ${T}* __restrict__ x, ${T}* __restrict__ y";
    body = head + "    ${T} m = shoal_neg_inf((${T})0);\n" + loop + " m = x[j] > m ? x[j] : m;\n" +
           "    double s = 0.0;\n" + loop + " {\n      y[j] = shoal_exp(x[j] - m);\n      s += (double)y[j];\n    }\n" +
           "    const ${T} inv = (${T})(1.0 / s);\n" + loop + " y[j] *= inv;\n";
    args = {em.in(0), em.out()};
  } else if (n.kind() == OpKind::LogSoftmax) {
    params = "const ${T}* __restrict__ x, ${T}* __restrict__ y";
    body = head + "    ${T} m = shoal_neg_inf((${T})0);\n" + loop + " m = x[j] > m ? x[j] : m;\n" +
           "    ${T} logSum = (${T})0;\n"
           "    if (!shoal_isinf(m)) {\n"
           "      double s = 0.0;\n  " +
           loop + " s += exp((double)(x[j] - m));\n" + "      logSum = (${T})log(s);\n    }\n" + loop +
           " y[j] = (x[j] - m) - logSum;\n";
    args = {em.in(0), em.out()};
  } else if (n.kind() == OpKind::SoftmaxGrad) {  // (y, dy) -> dx = y (dy - Σ dy·y)
    params = "const ${T}* __restrict__ y, const ${T}* __restrict__ dy, ${T}* __restrict__ dx";
    body = head + "    double dot = 0.0;\n" + loop + " dot += (double)dy[j] * (double)y[j];\n" +
           "    const ${T} d = (${T})dot;\n" + loop + " dx[j] = y[j] * (dy[j] - d);\n";
    args = {em.in(0), em.in(1), em.out()};
  } else if (n.kind() == OpKind::LogSoftmaxGrad) {  // (y, dy) -> dx = dy - exp(y) Σ dy
    params = "const ${T}* __restrict__ y, const ${T}* __restrict__ dy, ${T}* __restrict__ dx";
    body = head + "    double sum = 0.0;\n" + loop + " sum += (double)dy[j];\n" + "    const ${T} t = (${T})sum;\n" +
           loop + " dx[j] = dy[j] - shoal_exp(y[j]) * t;\n";
    args = {em.in(0), em.in(1), em.out()};
  } else {
    return em.unsupported("not a softmax op");
  }
  em.elementwise("", fill(params, v), fill(body, v), args, s.outer * s.inner);
  return {};
}

Expected<void> emitCausalMask(NodeEmitter& em) {
  if (!isFloat(em.node().input(0)->type().dtype)) return em.unsupported("causal_mask needs a float operand");
  const Shape& s = em.inShape(0);
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"ROWS", intLit(s[s.size() - 2])},
            {"COLS", intLit(s.back())},
            {"VALUE", literal(em.node().attrs().getFloat("value"), em.computeType())}};
  em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v),
                 fill("    const ${I} col = i % ${COLS}, row = (i / ${COLS}) % ${ROWS};\n"
                      "    y[i] = col > row ? ${VALUE} : x[i];\n",
                      v),
                 {em.in(0), em.out()}, numElements(s));
  return {};
}

}  // namespace shoal::cudagen
