// CUDA codegen, reduction family: sum_to, row softmax/log-softmax and their gradients,
// argmax, accuracy, and the losses (softmax cross-entropy, mse). Sums run in double in a
// fixed order (warp butterflies, block sums, ordered split sums): reproducible, no atomics
// on floats.
#include <fmt/format.h>

#include <algorithm>

#include "codegen/cuda_emit.h"

namespace shoal::cudagen {

namespace {

// Rows and columns of a row-wise op over `s` (columns: the last extent).
std::pair<int64_t, int64_t> rowsCols(const Shape& s) {
  int64_t cols = s.empty() ? 1 : s.back();
  int64_t rows = numElements(s) / std::max<int64_t>(cols, 1);
  return {rows, cols};
}

// The two index spaces of sum_to: kept dimensions (one output each, row-major as in the
// output) and reduced ones, each with its stride in the input; extent-1 dimensions dropped
// and neighbours of one kind merged.
struct ReducePlan {
  std::vector<Dim> kept, reduced;
  int64_t outputs = 1, terms = 1;
};

ReducePlan planReduce(const Shape& in, const Shape& out) {
  const size_t rank = in.size(), lead = rank - out.size();
  std::vector<int64_t> stride(rank, 1);
  for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * in[d];
  ReducePlan p;
  int last = -1;  // 0 kept, 1 reduced
  for (size_t d = 0; d < rank; ++d) {
    if (in[d] == 1) continue;
    const int64_t o = d < lead ? 1 : out[d - lead];
    const int kind = o == 1 ? 1 : 0;
    std::vector<Dim>& dims = kind ? p.reduced : p.kept;
    if (kind == last) {  // contiguous neighbour of the same kind: merge (row-major input)
      dims.back().extent *= in[d];
      dims.back().stride = stride[d];
    } else {
      dims.push_back({in[d], stride[d]});
    }
    last = kind;
    (kind ? p.terms : p.outputs) *= in[d];
  }
  return p;
}

std::string warpRowPrologue(const std::string& I, int64_t rows) {
  return fill(
      "  const ${I} row = (${I})blockIdx.x * ${WARPS} + (threadIdx.x >> 5);\n"
      "  const int lane = threadIdx.x & 31;\n"
      "  if (row >= ${ROWS}) return;  // a whole warp leaves together\n",
      {{"I", I}, {"WARPS", std::to_string(kWarpsPerBlock)}, {"ROWS", intLit(rows)}});
}

unsigned warpRowGrid(int64_t rows) { return unsigned(std::max<int64_t>(1, (rows + kWarpsPerBlock - 1) / kWarpsPerBlock)); }

std::string labelType(const NodeEmitter& em, size_t i) { return cudaType(em.node().input(i)->type().dtype); }

Expected<void> checkLabels(const NodeEmitter& em, size_t i) {
  DType t = em.node().input(i)->type().dtype;
  if (isFloat(t)) return em.unsupported("labels must be integers");
  if (!isFloat(em.node().input(0)->type().dtype)) return em.unsupported("logits must be floats");
  return {};
}

// The sums of blockIdx.y's slices of each output (blockIdx.x), added in slice order (the
// same order whatever the launch); one slice writes y itself. `accumulate` adds this thread's
// terms of output j (its kept offset in `base`) to `acc`.
void emitReduceSliceSums(NodeEmitter& em, const ReducePlan& p, Vars v, int64_t splits, const std::string& accumulate) {
  const std::string kernelBody = "  __shared__ double red[32];\n"
                                 "  const ${I} j = blockIdx.x;\n"
                                 "  ${I} base = 0;\n"
                                 "${BASE2}" +
                                 accumulate +
                                 "  const double s = shoal_block_sum(acc, red);\n"
                                 "  if (threadIdx.x == 0) ${STORE}\n";
  v.push_back({"BASE2", offsetCode(em.I(), "j", p.kept, "base", "  ")});
  v.push_back({"SPLITS", intLit(splits)});
  v.push_back({"RESULT", splits == 1 ? fill("${T}* __restrict__ y", v) : "double* __restrict__ partial"});
  v.push_back({"STORE", splits == 1 ? fill("y[j] = (${T})s;", v) : "partial[j * ${SPLITS} + blockIdx.y] = s;"});
  em.kernel(splits == 1 ? "" : "partial", fill("const ${T}* __restrict__ x, ${RESULT}", v), fill(fill(kernelBody, v), v),
            {em.in(0), splits == 1 ? em.out() : NodeEmitter::scratch()}, unsigned(p.outputs), unsigned(splits));
  if (splits == 1) return;
  em.needScratch(p.outputs * splits * int64_t(sizeof(double)));
  em.elementwise("sum", fill("const double* __restrict__ partial, ${T}* __restrict__ y", v),
                 fill("    double s = 0.0;\n"
                      "    for (int split = 0; split < ${SPLITS}; ++split) s += partial[i * ${SPLITS} + split];\n"
                      "    y[i] = (${T})s;\n",
                      v),
                 {NodeEmitter::scratch(), em.out()}, p.outputs);
}

// sum_to whose innermost reduced dimension is contiguous (a bias gradient: [n, c, h, w] ->
// [c] reduces runs of h * w): a warp per run, its lanes reading consecutive elements (four at
// a time, 16-byte loads, where the runs are multiples of 4 and x is 16-byte aligned -- the
// same order of terms either way), the run's offset computed once. Each output's runs are
// split into slices to give the device ~4 blocks per SM. The general path below divides the
// index per element, which left these reductions ~5x under the memory bandwidth.
void emitSumToRuns(NodeEmitter& em, const ReducePlan& p, Vars v) {
  const int64_t run = p.reduced.back().extent, runs = p.terms / run;
  std::vector<Dim> outer(p.reduced.begin(), p.reduced.end() - 1);
  bool quads = run % 4 == 0 && em.T() == "float";
  for (const Dim& d : p.kept) quads = quads && d.stride % 4 == 0;
  for (const Dim& d : outer) quads = quads && d.stride % 4 == 0;
  const int64_t splits = std::clamp<int64_t>((4 * kTargetBlocks + p.outputs - 1) / p.outputs, 1,
                                             std::clamp<int64_t>(std::min(runs / kWarpsPerBlock, p.terms / 2048), 1, 65535));
  v.push_back({"RUN", intLit(run)});
  v.push_back({"QUADS", intLit(run / 4)});
  v.push_back({"RUNS", intLit(runs)});
  v.push_back({"CHUNK", intLit((runs + splits - 1) / splits)});
  v.push_back({"WARPS", std::to_string(kWarpsPerBlock)});
  v.push_back({"RUN_OFFSET", offsetCode(em.I(), "r", outer, "off", "    ")});
  const std::string sumRun =
      quads ? "    const ${T}* xr = x + off;\n"
              "    if (vec) {\n"
              "#pragma unroll 4\n"
              "      for (int e = lane; e < ${QUADS}; e += 32) {\n"
              "        const float4 q = reinterpret_cast<const float4*>(xr)[e];\n"
              "        acc += (double)q.x; acc += (double)q.y; acc += (double)q.z; acc += (double)q.w;\n"
              "      }\n"
              "    } else {\n"
              "#pragma unroll 4\n"
              "      for (int e = lane; e < ${QUADS}; e += 32)\n"
              "        for (int q = 0; q < 4; ++q) acc += (double)xr[4 * e + q];\n"
              "    }\n"
            : "    const ${T}* xr = x + off;\n"
              "#pragma unroll 4\n"
              "    for (int e = lane; e < ${RUN}; e += 32) acc += (double)xr[e];\n";
  emitReduceSliceSums(em, p, v, splits,
                "  const int lane = threadIdx.x & 31;\n"
                "  const ${I} begin = (${I})blockIdx.y * ${CHUNK};\n"
                "  const ${I} end = begin + ${CHUNK} < ${RUNS} ? begin + ${CHUNK} : ${RUNS};\n" +
                    std::string(quads ? "  const bool vec = ((unsigned long long)x & 15) == 0;\n" : "") +
                    "  double acc = 0.0;\n"
                    "  for (${I} r = begin + (threadIdx.x >> 5); r < end; r += ${WARPS}) {\n"
                    "    ${I} off = base;\n"
                    "${RUN_OFFSET}" +
                    sumRun + "  }\n");
}

}  // namespace

// y (out shape) = x summed over the dimensions broadcasting would repeat. Short sums: a thread
// per output. Long ones: a block per output (and per split of the sum when there are few
// outputs), then an ordered sum of the splits.
Expected<void> emitSumTo(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("sum_to needs a float operand");
  const Shape& in = em.inShape(0);
  const Shape& out = em.outShape();
  if (numElements(in) == numElements(out)) {
    em.copy(n.input(0), n.result());
    return {};
  }
  ReducePlan p = planReduce(in, out);
  if (p.outputs == 0) return {};  // nothing to write
  Vars v = {{"T", em.T()}, {"I", em.I()}, {"M", intLit(p.outputs)}, {"R", intLit(p.terms)}};
  v.push_back({"BASE", offsetCode(em.I(), "j", p.kept, "base", "    ")});
  // The kept index j, when the offset of the first term depends on it (no kept dimension: it is 0).
  v.push_back({"J", v.back().second.empty() ? "" : fill("    const ${I} j = i;\n", v)});
  v.push_back({"TERM", offsetCode(em.I(), "k", p.reduced, "off", "      ")});
  if (p.terms == 0 || p.terms <= 32) {
    em.elementwise("", fill("const ${T}* __restrict__ x, ${T}* __restrict__ y", v),
                   fill("${J}"
                        "    ${I} base = 0;\n"
                        "${BASE}"
                        "    double acc = 0.0;\n"
                        "    for (${I} k = 0; k < ${R}; ++k) {\n"
                        "      ${I} off = base;\n"
                        "${TERM}"
                        "      acc += (double)x[off];\n"
                        "    }\n"
                        "    y[i] = (${T})acc;\n",
                        v),
                   {em.in(0), em.out()}, p.outputs);
    return {};
  }
  if (p.reduced.back().stride == 1 && p.reduced.back().extent >= 32) {
    emitSumToRuns(em, p, v);
    return {};
  }
  int64_t splits = std::clamp<int64_t>((kTargetBlocks + p.outputs - 1) / p.outputs, 1,
                                       std::max<int64_t>(1, p.terms / 2048));
  splits = std::min<int64_t>(splits, 65535);
  const int64_t chunk = (p.terms + splits - 1) / splits;
  v.push_back({"CHUNK", intLit(chunk)});
  v.push_back({"TERM2", offsetCode(em.I(), "k", p.reduced, "off", "    ")});
  emitReduceSliceSums(em, p, v, splits,
                "  const ${I} begin = (${I})blockIdx.y * ${CHUNK};\n"
                "  const ${I} end = begin + ${CHUNK} < ${R} ? begin + ${CHUNK} : ${R};\n"
                "  double acc = 0.0;\n"
                "  for (${I} k = begin + threadIdx.x; k < end; k += blockDim.x) {\n"
                "    ${I} off = base;\n"
                "${TERM2}"
                "    acc += (double)x[off];\n"
                "  }\n");
  return {};
}

// One warp per row (softmax over the last axis), as the interpreter's row kernels.
Expected<void> emitSoftmaxFamily(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("needs float operands");
  auto [rows, cols] = rowsCols(em.inShape(0));
  Vars v = {{"T", em.T()}, {"I", em.I()}, {"COLS", intLit(cols)}};
  std::string params, body;
  std::vector<CudaArg> args;
  const std::string loop = "  for (int j = lane; j < ${COLS}; j += 32)";
  if (n.kind() == OpKind::Softmax) {
    params = "const ${T}* __restrict__ x, ${T}* __restrict__ y";
    body = "  const ${T}* xr = x + row * ${COLS};\n"
           "  ${T}* yr = y + row * ${COLS};\n"
           "  ${T} m = shoal_neg_inf((${T})0);\n" +
           loop + " m = xr[j] > m ? xr[j] : m;\n"
           "  m = shoal_warp_max(m);\n"
           "  double s = 0.0;\n" +
           loop + " s += (double)shoal_exp(xr[j] - m);\n"
           "  s = shoal_warp_sum(s);\n"
           "  const ${T} inv = (${T})(1.0 / s);\n" +
           loop + " yr[j] = shoal_exp(xr[j] - m) * inv;\n";
    args = {em.in(0), em.out()};
  } else if (n.kind() == OpKind::LogSoftmax) {
    params = "const ${T}* __restrict__ x, ${T}* __restrict__ y";
    body = "  const ${T}* xr = x + row * ${COLS};\n"
           "  ${T}* yr = y + row * ${COLS};\n"
           "  const ShoalLse<${T}> lse = shoal_warp_lse(xr, ${COLS});\n" +
           loop + " yr[j] = (xr[j] - lse.max) - lse.logSum;\n";
    args = {em.in(0), em.out()};
  } else if (n.kind() == OpKind::SoftmaxGrad) {  // (y, dy) -> dx = y (dy - Σ dy·y)
    params = "const ${T}* __restrict__ y, const ${T}* __restrict__ dy, ${T}* __restrict__ dx";
    body = "  const ${T}* yr = y + row * ${COLS};\n"
           "  const ${T}* dyr = dy + row * ${COLS};\n"
           "  ${T}* dxr = dx + row * ${COLS};\n"
           "  double dot = 0.0;\n" +
           loop + " dot += (double)dyr[j] * (double)yr[j];\n"
           "  const ${T} d = (${T})shoal_warp_sum(dot);\n" +
           loop + " dxr[j] = yr[j] * (dyr[j] - d);\n";
    args = {em.in(0), em.in(1), em.out()};
  } else if (n.kind() == OpKind::LogSoftmaxGrad) {  // (y, dy) -> dx = dy - exp(y) Σ dy
    params = "const ${T}* __restrict__ y, const ${T}* __restrict__ dy, ${T}* __restrict__ dx";
    body = "  const ${T}* yr = y + row * ${COLS};\n"
           "  const ${T}* dyr = dy + row * ${COLS};\n"
           "  ${T}* dxr = dx + row * ${COLS};\n"
           "  double sum = 0.0;\n" +
           loop + " sum += (double)dyr[j];\n"
           "  const ${T} s = (${T})shoal_warp_sum(sum);\n" +
           loop + " dxr[j] = dyr[j] - shoal_exp(yr[j]) * s;\n";
    args = {em.in(0), em.in(1), em.out()};
  } else {
    return em.unsupported("not a softmax op");
  }
  em.kernel("", fill(params, v), warpRowPrologue(em.I(), rows) + fill(body, v), args, warpRowGrid(rows));
  return {};
}

Expected<void> emitArgMax(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("argmax needs a float operand");
  auto [rows, cols] = rowsCols(em.inShape(0));
  Vars v = {{"T", em.T()}, {"COLS", intLit(cols)}};
  em.kernel("", fill("const ${T}* __restrict__ x, long long* __restrict__ out", v),
            warpRowPrologue(em.I(), rows) +
                fill("  const long long best = shoal_warp_argmax(x + row * ${COLS}, ${COLS});\n"
                     "  if (lane == 0) out[row] = best;\n",
                     v),
            {em.in(0), em.out()}, warpRowGrid(rows));
  return {};
}

// Rows of at most this many columns are taken a thread each (the loss and accuracy kernels):
// a 64 x 10 batch is then one dependent pass per thread instead of eight warp-wide rows per
// warp, each a chain of shuffles (7.5-10 us on the H200 that way).
constexpr int64_t kNarrowRowCols = 32;

// The row loop of a one-block row kernel: a thread per row for narrow rows, else warps take
// rows in turn (lane 0 then owns the row's result). `body` runs per row with `row`, `lane`,
// `owner` (the thread that adds the row's result) and the row helpers ROW_ARGMAX / ROW_LSE
// (shoal_row_* or shoal_warp_*) defined.
std::string rowLoop(int64_t cols, const std::string& I, int64_t rows, const std::string& body) {
  const bool narrow = cols <= kNarrowRowCols;
  Vars v = {{"I", I}, {"ROWS", intLit(rows)}, {"WARPS", std::to_string(kWarpsPerBlock)}};
  std::string out = narrow ? "  const bool owner = true;\n"
                             "#pragma unroll 4\n"
                             "  for (${I} row = threadIdx.x; row < ${ROWS}; row += blockDim.x) {\n"
                           : "  const int lane = threadIdx.x & 31;\n"
                             "  const bool owner = lane == 0;\n"
                             "#pragma unroll 8\n"
                             "  for (${I} row = threadIdx.x >> 5; row < ${ROWS}; row += ${WARPS}) {\n";
  std::string b = body;
  for (auto [from, to] : {std::pair<std::string, std::string>{"ROW_ARGMAX", narrow ? "shoal_row_argmax" : "shoal_warp_argmax"},
                          {"ROW_LSE", narrow ? "shoal_row_lse" : "shoal_warp_lse"}})
    for (size_t at; (at = b.find(from)) != std::string::npos;) b.replace(at, from.size(), to);
  return fill(out, v) + b + "  }\n";
}

// One block: rows a thread each (narrow) or a warp each; the count of correct rows is an
// integer sum.
Expected<void> emitAccuracy(NodeEmitter& em) {
  if (auto ok = checkLabels(em, 1); !ok) return ok;
  const Shape& s = em.inShape(0);
  const int64_t rows = s[0], cols = s.size() > 1 ? s[1] : 1;
  Vars v = {{"T", em.T()}, {"L", labelType(em, 1)}, {"ROWS", intLit(rows)}, {"COLS", intLit(cols)}};
  em.kernel("",
            fill("const ${T}* __restrict__ logits, const ${L}* __restrict__ labels, float* __restrict__ acc", v),
            "  __shared__ long long red[32];\n"
            "  long long correct = 0;\n" +
                rowLoop(cols, em.I(), rows,
                        fill("    const long long best = ROW_ARGMAX(logits + row * ${COLS}, ${COLS});\n"
                             "    if (owner && ${COLS} > 0 && best == (long long)labels[row]) ++correct;\n",
                             v)) +
                fill("  correct = shoal_block_sum(correct, red);\n"
                     "  if (threadIdx.x == 0) acc[0] = ${ROWS} ? (float)correct / (float)${ROWS} : 0.0f;\n",
                     v),
            {em.in(0), em.in(1), em.out()}, 1);
  return {};
}

// Label smoothing as the interpreter sees it: the attribute rounded to the element type.
double labelSmoothing(const NodeEmitter& em) {
  const double e = em.node().attrs().getFloat("label_smoothing", 0.0);
  return em.computeType() == DType::F32 ? double(float(e)) : e;
}

// Mean over rows of logsumexp(row) - row[label], in one block (rows a thread each when narrow,
// else a warp each; the row sums and the block sum in double, in a fixed order). Bad labels are
// reported through the status words and left out of the sum. With label smoothing e a row adds
// (1-e)·that + e·(logsumexp - mean(row)), as the interpreter.
Expected<void> emitSoftmaxCrossEntropy(NodeEmitter& em) {
  if (auto ok = checkLabels(em, 1); !ok) return ok;
  const Shape& s = em.inShape(0);
  const int64_t rows = s[0], cols = s[1];
  int site = em.errorSite(CudaErrorKind::LabelOutOfRange, cols);
  const double e = labelSmoothing(em);
  const bool narrow = cols <= kNarrowRowCols;
  const std::string sumX =
      narrow ? "    for (long long j = 0; j < ${COLS}; ++j) sumX += (double)xr[j] - (double)lse.max;\n"
             : "    for (long long j = lane; j < ${COLS}; j += 32) sumX += (double)xr[j] - (double)lse.max;\n"
               "    sumX = shoal_warp_sum(sumX);\n";
  const std::string rowLoss =
      e == 0 ? "    if (owner) total += (double)lse.logSum - ((double)xr[label] - (double)lse.max);\n"
             : fill("    double sumX = 0.0;\n" + sumX +
                        "    const double nll = (double)lse.logSum - ((double)xr[label] - (double)lse.max);\n"
                        "    const double meanNll = (double)lse.logSum - sumX / (double)${COLS};\n"
                        "    if (owner) total += (1.0 - ${E}) * nll + ${E} * meanNll;\n",
                    {{"COLS", intLit(cols)}, {"E", literal(e, DType::F64)}});
  Vars v = {{"T", em.T()},         {"L", labelType(em, 1)},         {"ROWS", intLit(rows)},
            {"COLS", intLit(cols)}, {"SITE", std::to_string(site)}, {"ROWLOSS", rowLoss}};
  em.kernel("",
            fill("const ${T}* __restrict__ logits, const ${L}* __restrict__ labels, ${T}* __restrict__ loss, "
                 "u64* __restrict__ status",
                 v),
            "  __shared__ double red[32];\n"
            "  double total = 0.0;  // the owners' share\n" +
                rowLoop(cols, em.I(), rows,
                        fill("    const long long label = (long long)labels[row];\n"
                             "    if (label < 0 || label >= ${COLS}) {\n"
                             "      if (owner) shoal_report_label(status, ${SITE}, row, label);\n"
                             "      continue;\n"
                             "    }\n"
                             "    const ${T}* xr = logits + row * ${COLS};\n"
                             "    const ShoalLse<${T}> lse = ROW_LSE(xr, ${COLS});\n"
                             "${ROWLOSS}",
                             v)) +
                fill("  total = shoal_block_sum(total, red);\n"
                     "  if (threadIdx.x == 0) loss[0] = (${T})(total / (double)${ROWS});\n",
                     v),
            {em.in(0), em.in(1), em.out(), NodeEmitter::status()}, 1);
  return {};
}

// dlogits = dloss · (softmax(logits) - onehot(label)) / rows, one warp per row.
Expected<void> emitSoftmaxCrossEntropyGrad(NodeEmitter& em) {
  if (auto ok = checkLabels(em, 1); !ok) return ok;
  const Shape& s = em.inShape(0);
  const int64_t rows = s[0], cols = s[1];
  int site = em.errorSite(CudaErrorKind::LabelOutOfRange, cols);
  // scale·p - scale·target, the target smoothed to 1 - e + e/cols at the label and e/cols
  // elsewhere (the interpreter's order of operations).
  const double e = labelSmoothing(em);
  const std::string target =
      e == 0 ? "    if (j == label) g -= scale;\n"
             : fill("    g -= scale * (j == label ? ${ON} : ${OFF});\n",
                    {{"ON", literal(1.0 - e + e / double(cols), em.computeType())},
                     {"OFF", literal(e / double(cols), em.computeType())}});
  Vars v = {{"T", em.T()}, {"L", labelType(em, 1)}, {"ROWS", intLit(rows)}, {"COLS", intLit(cols)},
            {"SITE", std::to_string(site)}, {"TARGET", target}};
  em.kernel("",
            fill("const ${T}* __restrict__ logits, const ${L}* __restrict__ labels, const ${T}* __restrict__ dloss, "
                 "${T}* __restrict__ dlogits, u64* __restrict__ status",
                 v),
            warpRowPrologue(em.I(), rows) +
                fill("  const long long label = (long long)labels[row];\n"
                     "  const bool valid = label >= 0 && label < ${COLS};\n"
                     "  if (!valid && lane == 0) shoal_report_label(status, ${SITE}, row, label);\n"
                     "  const ${T} scale = dloss[0] / (${T})${ROWS};\n"
                     "  const ${T}* xr = logits + row * ${COLS};\n"
                     "  ${T}* gr = dlogits + row * ${COLS};\n"
                     "  const ShoalLse<${T}> lse = shoal_warp_lse(xr, ${COLS});\n"
                     "  for (int j = lane; j < ${COLS}; j += 32) {\n"
                     "    ${T} g = scale * shoal_exp((xr[j] - lse.max) - lse.logSum);\n"
                     "${TARGET}"
                     "    gr[j] = g;\n"
                     "  }\n",
                     v),
            {em.in(0), em.in(1), em.in(2), em.out(), NodeEmitter::status()}, warpRowGrid(rows));
  return {};
}

// Mean of squared differences, in one block, summed in double.
Expected<void> emitMse(NodeEmitter& em) {
  const Node& n = em.node();
  if (!isFloat(n.input(0)->type().dtype)) return em.unsupported("mse needs float operands");
  const int64_t count = n.input(0)->type().numElements();
  Vars v = {{"T", em.T()}, {"I", em.I()}, {"N", intLit(count)}};
  em.kernel("",
            fill("const ${T}* __restrict__ pred, const ${T}* __restrict__ target, ${T}* __restrict__ loss", v),
            fill("  __shared__ double red[32];\n"
                 "  double s = 0.0;\n"
                 "  for (${I} i = threadIdx.x; i < ${N}; i += blockDim.x) {\n"
                 "    const double d = (double)pred[i] - (double)target[i];\n"
                 "    s += d * d;\n"
                 "  }\n"
                 "  s = shoal_block_sum(s, red);\n"
                 "  if (threadIdx.x == 0) loss[0] = (${T})(s / (double)${N});\n",
                 v),
            {em.in(0), em.in(1), em.out()}, 1);
  return {};
}

}  // namespace shoal::cudagen
