// CUDA codegen, norm family: batchnorm (evaluation and training forms, statistics, the
// running-statistics update), layernorm, groupnorm and their gradients, dropout.
//
// Every normalisation sees its input as `groups` statistics groups of `count` elements
// (batchnorm: a channel across the batch; layernorm: a row; groupnorm: a sample's group of
// channels) and runs the same three steps, as the interpreter does:
//   moments  a block per (group, split of the group): the split's count, mean and sum of
//            squared deviations, two passes in double (exact whatever the data's offset);
//   combine  a thread per group merges its splits in order (Chan et al.), deterministic;
//   apply    a grid-stride loop over the elements in memory order.
// The backward adds a second reduction (sums of g = dy * w and g * xhat) the same way.
// Intermediates live in the executor's scratch, in doubles: partial results [groups][splits][3]
// first, then per group (mean, m2, invstd) and (sum g, sum g xhat).
#include <fmt/format.h>

#include <algorithm>

#include "codegen/cuda_emit.h"
#include "ir/scalar_math.h"

namespace shoal::cudagen {

namespace {

// How one normalisation's statistics groups lie in memory, as C expressions: `offset` over
// `r` (group) and `j` (element of the group); `group` and `channel` over a memory index
// written in place of `{0}` (see at()).
struct GroupCode {
  int64_t groups = 1;
  int64_t count = 1;
  std::string offset;   ///< memory index of element j of group r
  std::string group;    ///< the group of memory index {0}
  std::string channel;  ///< the weight/bias index of memory index {0}
};

// `pattern` (a GroupCode expression) over the memory index `index`.
std::string at(const std::string& pattern, const std::string& index) {
  return fmt::format(fmt::runtime(pattern), index);
}

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t d = from; d < to; ++d) p *= s[d];
  return p;
}

// batchnorm: group c is channel c of every sample; element j is (n, s) = (j / S, j % S).
GroupCode channelGroups(const Shape& x) {
  const int64_t n = x[0], c = x[1], s = product(x, 2, x.size());
  GroupCode g;
  g.groups = c;
  g.count = n * s;
  g.offset = s == 1 ? fmt::format("j * {} + r", intLit(c))
                    : fmt::format("(j / {0}) * {1} + r * {0} + j % {0}", intLit(s), intLit(c * s));
  g.group = s == 1 ? "{0} % " + intLit(c) : "({0} / " + intLit(s) + ") % " + intLit(c);
  g.channel = g.group;
  return g;
}

// layernorm: group r is row r of the last `dims` extents.
GroupCode rowGroups(const Shape& x, int64_t dims) {
  const int64_t cols = product(x, x.size() - size_t(dims), x.size());
  GroupCode g;
  g.groups = numElements(x) / cols;
  g.count = cols;
  g.offset = fmt::format("r * {} + j", intLit(cols));
  g.group = "{0} / " + intLit(cols);
  g.channel = "{0} % " + intLit(cols);
  return g;
}

// groupnorm: group r is sample r / groups, channels [g C/groups, (g + 1) C/groups) (contiguous).
GroupCode sampleGroups(const Shape& x, int64_t groups) {
  const int64_t c = x[1], s = product(x, 2, x.size());
  const int64_t per = (c / groups) * s;
  GroupCode g;
  g.groups = x[0] * groups;
  g.count = per;
  g.offset = fmt::format("r * {} + j", intLit(per));
  g.group = "{0} / " + intLit(per);
  g.channel = s == 1 ? "{0} % " + intLit(c) : "({0} / " + intLit(s) + ") % " + intLit(c);
  return g;
}

// Splits of each group's reduction: enough blocks to fill the GPU when there are few groups,
// each split at least 2048 elements (sum_to's rule); no empty split.
struct Splits {
  int64_t splits = 1, chunk = 1;
};

Splits normSplitsFor(const GroupCode& g) {
  int64_t splits =
      std::clamp<int64_t>((kTargetBlocks + g.groups - 1) / g.groups, 1, std::max<int64_t>(1, g.count / 2048));
  splits = std::min<int64_t>(splits, 65535);
  Splits s;
  s.chunk = (g.count + splits - 1) / splits;
  s.splits = (g.count + s.chunk - 1) / s.chunk;
  return s;
}

// Scratch offsets (in doubles).
struct ScratchLayout {
  int64_t partials = 0;  ///< [groups][splits][3]
  int64_t moments = 0;   ///< [groups][3]: mean, m2, invstd
  int64_t sums = 0;      ///< [groups][2]: sum g, sum g xhat
  int64_t doubles = 0;
};

ScratchLayout scratchFor(const GroupCode& g, const Splits& s) {
  ScratchLayout l;
  l.moments = g.groups * s.splits * 3;
  l.sums = l.moments + g.groups * 3;
  l.doubles = l.sums + g.groups * 2;
  return l;
}

Vars groupVars(const NodeEmitter& em, const GroupCode& g, const Splits& s, const ScratchLayout& l, double eps) {
  return {{"T", em.T()},
          {"I", em.I()},
          {"GROUPS", intLit(g.groups)},
          {"COUNT", intLit(g.count)},
          {"SPLITS", intLit(s.splits)},
          {"CHUNK", intLit(s.chunk)},
          {"OFFSET", g.offset},
          {"GROUP", at(g.group, "i")},
          {"CHANNEL", at(g.channel, "i")},
          {"MOMENTS", intLit(l.moments)},
          {"SUMS", intLit(l.sums)},
          {"EPS", literal(eps, DType::F64)}};
}

// The split [begin, end) of group r that block (r, split) reduces.
constexpr const char* kSplitPrologue =
    "  __shared__ double red[32];\n"
    "  const ${I} r = blockIdx.x;\n"
    "  const ${I} begin = (${I})blockIdx.y * ${CHUNK};\n"
    "  const ${I} end = begin + ${CHUNK} < ${COUNT} ? begin + ${CHUNK} : ${COUNT};\n";

// moments: per (group, split): count, mean and sum of squared deviations of x.
void emitMoments(NodeEmitter& em, const Vars& v, const Splits& s, int64_t groups, const CudaArg& x) {
  em.kernel("moments", fill("const ${T}* __restrict__ x, double* __restrict__ scratch", v),
            fill(std::string(kSplitPrologue) +
                     "  __shared__ double shared;\n"
                     "  double sum = 0.0;\n"
                     "  for (${I} j = begin + threadIdx.x; j < end; j += blockDim.x) sum += (double)x[${OFFSET}];\n"
                     "  sum = shoal_block_sum(sum, red);\n"
                     "  if (threadIdx.x == 0) shared = sum / (double)(end - begin);\n"
                     "  __syncthreads();\n"
                     "  const double mean = shared;\n"
                     "  double m2 = 0.0;\n"
                     "  for (${I} j = begin + threadIdx.x; j < end; j += blockDim.x) {\n"
                     "    const double d = (double)x[${OFFSET}] - mean;\n"
                     "    m2 += d * d;\n"
                     "  }\n"
                     "  m2 = shoal_block_sum(m2, red);\n"
                     "  if (threadIdx.x == 0) {\n"
                     "    double* p = scratch + (r * ${SPLITS} + blockIdx.y) * 3;\n"
                     "    p[0] = (double)(end - begin);\n"
                     "    p[1] = mean;\n"
                     "    p[2] = m2;\n"
                     "  }\n",
                 v),
            {x, NodeEmitter::scratch()}, unsigned(groups), unsigned(s.splits));
}

// combine: a thread per group merges the splits in order; `finish` stores the result from
// `mean` and `m2` (extra parameters after scratch: `params`, `args`).
void emitCombine(NodeEmitter& em, const Vars& v, int64_t groups, const std::string& params, std::vector<CudaArg> args,
                 const std::string& finish) {
  std::vector<CudaArg> all = {NodeEmitter::scratch()};
  all.insert(all.end(), args.begin(), args.end());
  em.elementwise("combine", "double* __restrict__ scratch" + (params.empty() ? "" : ", " + fill(params, v)),
                 fill("    const double* p = scratch + i * ${SPLITS} * 3;\n"
                      "    double n = p[0], mean = p[1], m2 = p[2];\n"
                      "    for (int k = 1; k < ${SPLITS}; ++k) {\n"
                      "      const double* q = p + 3 * k;\n"
                      "      const double total = n + q[0], d = q[1] - mean;\n"
                      "      mean += d * (q[0] / total);\n"
                      "      m2 += q[2] + d * d * (n * q[0] / total);\n"
                      "      n = total;\n"
                      "    }\n" +
                          finish,
                      v),
                 std::move(all), groups);
}

// The mean, m2 and invstd = 1 / sqrt(m2 / count + eps) of every group, into scratch.
void emitGroupStatistics(NodeEmitter& em, const Vars& v, const Splits& s, int64_t groups, const CudaArg& x) {
  emitMoments(em, v, s, groups, x);
  emitCombine(em, v, groups, "", {},
              "    double* m = scratch + ${MOMENTS} + i * 3;\n"
              "    m[0] = mean;\n"
              "    m[1] = m2;\n"
              "    m[2] = 1.0 / sqrt(m2 / (double)${COUNT} + ${EPS});\n");
}

// Operand `i` as a launch argument, when the node has that operand (the optional weight, bias).
struct Optional {
  bool present = false;
  CudaArg arg;
};

Optional optionalIn(const NodeEmitter& em, size_t i) {
  if (em.node().numInputs() > i) return {true, em.in(i)};
  return {};
}

// The affine of an element (`v`, channel `ch`): `v * w[ch] + b[ch]` as far as present.
std::string affineCode(bool w, bool b) {
  std::string code;
  if (w) code += "    v = v * w[ch];\n";
  if (b) code += "    v = v + b[ch];\n";
  return code;
}

// The optional weight and bias operands (w, b) and the output y, appended to a kernel's
// parameters and arguments.
void appendAffineAndOutput(NodeEmitter& em, const Optional& w, const Optional& b, std::string& params,
                           std::vector<CudaArg>& args) {
  if (w.present) {
    params += ", const ${T}* __restrict__ w";
    args.push_back(w.arg);
  }
  if (b.present) {
    params += ", const ${T}* __restrict__ b";
    args.push_back(b.arg);
  }
  params += ", ${T}* __restrict__ y";
  args.push_back(em.out());
}

// Normalisation by the batch's own statistics (batchnorm_train, layernorm, groupnorm):
// x, [w, [b]] -> y.
Expected<void> emitNormForward(NodeEmitter& em, const GroupCode& g, double eps, size_t weightOperand) {
  const Splits s = normSplitsFor(g);
  const ScratchLayout l = scratchFor(g, s);
  em.needScratch(l.doubles * int64_t(sizeof(double)));
  Vars v = groupVars(em, g, s, l, eps);
  emitGroupStatistics(em, v, s, g.groups, em.in(0));
  Optional w = optionalIn(em, weightOperand), b = optionalIn(em, weightOperand + 1);
  std::string params = "const double* __restrict__ scratch, const ${T}* __restrict__ x";
  std::vector<CudaArg> args = {NodeEmitter::scratch(), em.in(0)};
  appendAffineAndOutput(em, w, b, params, args);
  em.elementwise("apply", fill(params, v),
                 fill("    const double* m = scratch + ${MOMENTS} + (${GROUP}) * 3;\n" +
                          std::string(w.present || b.present ? "    const ${I} ch = ${CHANNEL};\n" : "") +
                          "    ${T} v = (x[i] - (${T})m[0]) * (${T})m[2];\n" +
                          affineCode(w.present, b.present) + "    y[i] = v;\n",
                      v),
                 std::move(args), g.count * g.groups);
  return {};
}

// Σ g and Σ g xhat over every group (g = dy w, w when present; the group statistics already in
// scratch): a partial kernel per split, then a combine whose body ends with `finish` (sumG and
// sumGx in scope), taking `finishParams` / `finishArgs` after scratch.
void emitGradientSums(NodeEmitter& em, const Vars& v, const Splits& s, const GroupCode& g, const Optional& w,
                      const std::string& finishParams, std::vector<CudaArg> finishArgs, const std::string& finish) {
  // g = dy * w of memory index o (the partial sums walk (r, j)).
  const std::string gPartial = w.present ? "(double)dy[o] * (double)w[" + at(g.channel, "o") + "]" : "(double)dy[o]";
  std::string params = "const ${T}* __restrict__ x, const ${T}* __restrict__ dy";
  std::vector<CudaArg> args = {em.in(0), em.in(1)};
  if (w.present) {
    params += ", const ${T}* __restrict__ w";
    args.push_back(w.arg);
  }
  params += ", double* __restrict__ scratch";
  args.push_back(NodeEmitter::scratch());
  em.kernel("grad_partial", fill(params, v),
            fill(std::string(kSplitPrologue) +
                     "  const double* m = scratch + ${MOMENTS} + r * 3;\n"
                     "  const double mean = m[0], invstd = m[2];\n"
                     "  double sumG = 0.0, sumGx = 0.0;\n"
                     "  for (${I} j = begin + threadIdx.x; j < end; j += blockDim.x) {\n"
                     "    const ${I} o = ${OFFSET};\n"
                     "    const double g = " +
                     gPartial +
                     ";\n"
                     "    sumG += g;\n"
                     "    sumGx += g * (((double)x[o] - mean) * invstd);\n"
                     "  }\n"
                     "  sumG = shoal_block_sum(sumG, red);\n"
                     "  sumGx = shoal_block_sum(sumGx, red);\n"
                     "  if (threadIdx.x == 0) {\n"
                     "    double* p = scratch + (r * ${SPLITS} + blockIdx.y) * 3;\n"
                     "    p[0] = sumG;\n"
                     "    p[1] = sumGx;\n"
                     "  }\n",
                 v),
            std::move(args), unsigned(g.groups), unsigned(s.splits));
  std::vector<CudaArg> all = {NodeEmitter::scratch()};
  all.insert(all.end(), finishArgs.begin(), finishArgs.end());
  em.elementwise("grad_combine",
                 "double* __restrict__ scratch" + (finishParams.empty() ? "" : ", " + fill(finishParams, v)),
                 fill("    const double* p = scratch + i * ${SPLITS} * 3;\n"
                      "    double sumG = 0.0, sumGx = 0.0;\n"
                      "    for (int k = 0; k < ${SPLITS}; ++k) {\n"
                      "      sumG += p[3 * k];\n"
                      "      sumGx += p[3 * k + 1];\n"
                      "    }\n" +
                          finish,
                      v),
                 std::move(all), g.groups);
}

// The gradient for x through the statistics (batchnorm_train_grad, layernorm_grad,
// groupnorm_grad): x, dy, [w] -> dx = invstd (g - mean(g) - xhat mean(g xhat)), g = dy w.
Expected<void> emitNormBackward(NodeEmitter& em, const GroupCode& g, double eps) {
  const Splits s = normSplitsFor(g);
  const ScratchLayout l = scratchFor(g, s);
  em.needScratch(l.doubles * int64_t(sizeof(double)));
  Vars v = groupVars(em, g, s, l, eps);
  emitGroupStatistics(em, v, s, g.groups, em.in(0));
  Optional w = optionalIn(em, 2);
  emitGradientSums(em, v, s, g, w, "", {},
                   "    scratch[${SUMS} + i * 2] = sumG / (double)${COUNT};\n"
                   "    scratch[${SUMS} + i * 2 + 1] = sumGx / (double)${COUNT};\n");
  // g = dy * w of memory index i (the apply loop).
  const std::string gApply = w.present ? "(double)dy[i] * (double)w[${CHANNEL}]" : "(double)dy[i]";
  std::string params = "const double* __restrict__ scratch, const ${T}* __restrict__ x, const ${T}* __restrict__ dy";
  std::vector<CudaArg> args = {NodeEmitter::scratch(), em.in(0), em.in(1)};
  if (w.present) {
    params += ", const ${T}* __restrict__ w";
    args.push_back(w.arg);
  }
  params += ", ${T}* __restrict__ dx";
  args.push_back(em.out());
  em.elementwise("grad", fill(params, v),
                 fill("    const ${I} r = ${GROUP};\n"
                      "    const double* m = scratch + ${MOMENTS} + r * 3;\n"
                      "    const double* s = scratch + ${SUMS} + r * 2;\n"
                      "    const double invstd = m[2];\n"
                      "    const double xhat = ((double)x[i] - m[0]) * invstd;\n"
                      "    const double g = " +
                          gApply +
                          ";\n"
                          "    dx[i] = (${T})(invstd * (g - s[0] - xhat * s[1]));\n",
                      v),
                 std::move(args), g.count * g.groups);
  return {};
}

}  // namespace

// y = (x - mean[c]) * invstd[c] * w[c] + b[c] with the running statistics, invstd computed in
// double per element as the interpreter computes it per channel.
Expected<void> emitBatchNorm(NodeEmitter& em) {
  const GroupCode g = channelGroups(em.inShape(0));
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"CHANNEL", at(g.channel, "i")},
            {"EPS", literal(em.node().attrs().getFloat("eps"), DType::F64)}};
  Optional w = optionalIn(em, 3), b = optionalIn(em, 4);
  std::string params = "const ${T}* __restrict__ x, const ${T}* __restrict__ mean, const ${T}* __restrict__ var";
  std::vector<CudaArg> args = {em.in(0), em.in(1), em.in(2)};
  appendAffineAndOutput(em, w, b, params, args);
  em.elementwise("", fill(params, v),
                 fill("    const ${I} ch = ${CHANNEL};\n"
                      "    const ${T} invstd = (${T})(1.0 / sqrt((double)var[ch] + ${EPS}));\n"
                      "    ${T} v = (x[i] - mean[ch]) * invstd;\n" +
                          affineCode(w.present, b.present) + "    y[i] = v;\n",
                      v),
                 std::move(args), em.node().result()->type().numElements());
  return {};
}

Expected<void> emitBatchNormTrain(NodeEmitter& em) {
  return emitNormForward(em, channelGroups(em.inShape(0)), em.node().attrs().getFloat("eps"), 1);
}

Expected<void> emitBatchNormTrainGrad(NodeEmitter& em) {
  return emitNormBackward(em, channelGroups(em.inShape(0)), em.node().attrs().getFloat("eps"));
}

// [C]: Σ dy · xhat of every channel, the partial sums of batchnorm_train_grad without its apply.
Expected<void> emitBatchNormTrainWeightGrad(NodeEmitter& em) {
  const GroupCode g = channelGroups(em.inShape(0));
  const Splits s = normSplitsFor(g);
  const ScratchLayout l = scratchFor(g, s);
  em.needScratch(l.doubles * int64_t(sizeof(double)));
  Vars v = groupVars(em, g, s, l, em.node().attrs().getFloat("eps"));
  emitGroupStatistics(em, v, s, g.groups, em.in(0));
  emitGradientSums(em, v, s, g, Optional{}, "${T}* __restrict__ dw", {em.out()}, "    dw[i] = (${T})sumGx;\n");
  return {};
}

// [2, C]: the mean and the unbiased variance of every channel.
Expected<void> emitBatchNormStats(NodeEmitter& em) {
  const GroupCode g = channelGroups(em.inShape(0));
  const Splits s = normSplitsFor(g);
  const ScratchLayout l = scratchFor(g, s);
  em.needScratch(l.doubles * int64_t(sizeof(double)));
  Vars v = groupVars(em, g, s, l, 0.0);
  emitMoments(em, v, s, g.groups, em.in(0));
  emitCombine(em, v, g.groups, "${T}* __restrict__ stats", {em.out()},
              "    stats[i] = (${T})mean;\n"
              "    stats[${GROUPS} + i] = (${T})(m2 / (double)(${COUNT} - 1));\n");
  return {};
}

// running = momentum * batch + (1 - momentum) * running, in double; the count + 1. Like the
// optimizer updates it changes nothing once an earlier kernel of the step reported an error (the
// interpreter stops there).
Expected<void> emitBatchNormUpdate(NodeEmitter& em) {
  const Node& n = em.node();
  const int64_t c = em.inShape(0)[0];
  const double m = n.attrs().getFloat("momentum");
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"C", intLit(c)},
            {"M", literal(m, DType::F64)},
            {"KEEP", literal(1.0 - m, DType::F64)},
            {"COUNT", ""}};
  std::string params = "${T}* __restrict__ mean, ${T}* __restrict__ var, const ${T}* __restrict__ stats";
  std::vector<CudaArg> args = {em.in(0), em.in(1), em.in(2)};
  if (n.numInputs() > 3) {
    params += ", long long* __restrict__ batches";
    args.push_back(em.in(3));
    v.back().second = "  if (blockIdx.x == 0 && threadIdx.x == 0) batches[0] += 1;\n";
  }
  params += ", const u64* __restrict__ status";
  args.push_back(NodeEmitter::status());
  em.kernel("", fill(params, v),
            fill("  if (status[0] != 0) return;  // an earlier kernel of this step reported an error: update nothing\n"
                 "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${C}; i += (${I})gridDim.x * "
                 "blockDim.x) {\n"
                 "    mean[i] = (${T})(${M} * (double)stats[i] + ${KEEP} * (double)mean[i]);\n"
                 "    var[i] = (${T})(${M} * (double)stats[${C} + i] + ${KEEP} * (double)var[i]);\n"
                 "  }\n"
                 "${COUNT}",
                 v),
            std::move(args), gridFor(c));
  return {};
}

Expected<void> emitLayerNorm(NodeEmitter& em) {
  return emitNormForward(em, rowGroups(em.inShape(0), em.node().attrs().getInt("dims")),
                         em.node().attrs().getFloat("eps"), 1);
}

Expected<void> emitLayerNormGrad(NodeEmitter& em) {
  return emitNormBackward(em, rowGroups(em.inShape(0), em.node().attrs().getInt("dims")),
                          em.node().attrs().getFloat("eps"));
}

Expected<void> emitGroupNorm(NodeEmitter& em) {
  return emitNormForward(em, sampleGroups(em.inShape(0), em.node().attrs().getInt("groups")),
                         em.node().attrs().getFloat("eps"), 1);
}

Expected<void> emitGroupNormGrad(NodeEmitter& em) {
  return emitNormBackward(em, sampleGroups(em.inShape(0), em.node().attrs().getInt("groups")),
                          em.node().attrs().getFloat("eps"));
}

// Dropout's mask: Philox-4x32-10 (ir/scalar_math.h, the interpreter's function) at counter
// (i / 4, step, 0), one call per four elements.
Expected<void> emitDropoutTrain(NodeEmitter& em) {
  const Node& n = em.node();
  const int64_t count = n.result()->type().numElements();
  const double rate = n.attrs().getFloat("rate");
  const uint64_t seed = uint64_t(n.attrs().getInt("seed"));
  const int64_t blocks = (count + 3) / 4;
  Vars v = {{"T", em.T()},
            {"I", em.I()},
            {"S", cudaType(n.input(1)->type().dtype)},
            {"N", intLit(count)},
            {"K0", fmt::format("{}u", uint32_t(seed))},
            {"K1", fmt::format("{}u", uint32_t(seed >> 32))},
            {"THRESHOLD", fmt::format("{}ull", scalar::shoal_dropout_threshold(rate))},
            {"SCALE", literal(scalar::shoal_dropout_scale(rate), em.computeType())}};
  em.elementwise("", fill("const ${T}* __restrict__ x, const ${S}* __restrict__ step, ${T}* __restrict__ y", v),
                 fill("    unsigned int r[4] = {(unsigned int)i, (unsigned int)((unsigned long long)i >> 32),\n"
                      "                         (unsigned int)(long long)step[0], 0u};\n"
                      "    shoal_philox4x32_10(r, ${K0}, ${K1});\n"
                      "    for (int k = 0; k < 4; ++k) {\n"
                      "      const ${I} e = i * 4 + k;\n"
                      "      if (e < ${N}) y[e] = x[e] * (r[k] < ${THRESHOLD} ? ${SCALE} : (${T})0);\n"
                      "    }\n",
                      v),
                 {em.in(0), em.in(1), em.out()}, blocks);
  return {};
}

}  // namespace shoal::cudagen
