// CUDA codegen: the driver (one translation unit per Program), the shared emitter helpers,
// the prelude, and the NVRTC compile used by `shoal compile`.
#include "codegen/cuda_codegen.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "codegen/cuda_emit.h"
#include "ir/printer.h"
#include "codegen/kernel_cache.h"
#include "codegen/nvrtc.h"
#include "support/float16.h"

namespace shoal {

namespace cudagen {

std::string fill(std::string_view tmpl, const Vars& vars) {
  std::string out;
  out.reserve(tmpl.size() + 64);
  size_t pos = 0;
  while (pos < tmpl.size()) {
    size_t start = tmpl.find("${", pos);
    if (start == std::string_view::npos) {
      out.append(tmpl.substr(pos));
      break;
    }
    out.append(tmpl.substr(pos, start - pos));
    size_t end = tmpl.find('}', start);
    assert(end != std::string_view::npos && "unterminated ${ in a kernel template");
    std::string_view key = tmpl.substr(start + 2, end - start - 2);
    auto it = std::find_if(vars.begin(), vars.end(), [&](const auto& kv) { return kv.first == key; });
    assert(it != vars.end() && "kernel template names an unknown ${variable}");
    // Two definitions of a used name would silently take the first: replace it instead (setVar).
    assert((it == vars.end() ||
            std::find_if(std::next(it), vars.end(), [&](const auto& kv) { return kv.first == key; }) == vars.end()) &&
           "kernel template variable defined twice");
    if (it != vars.end()) out += it->second;
    pos = end + 1;
  }
  return out;
}

std::string cudaType(DType t) {
  switch (t) {
    case DType::F32: return "float";
    case DType::F64: return "double";
    case DType::I32: return "int";
    case DType::I64: return "long long";
    case DType::U8: return "unsigned char";
    case DType::Bool: return "bool";
    case DType::F16:
    case DType::BF16: return "unsigned short";  // the bits (support/float16.h converts them)
    case DType::I8: return "signed char";
    case DType::I16: return "short";
    case DType::U16: return "unsigned short";
    case DType::U32: return "unsigned int";
    case DType::U64: return "unsigned long long";
  }
  return "float";
}

namespace {

// Shortest round-trip text, with ".0" added when it would read as an integer.
template <typename F>
std::string shortest(F v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string literal(double v, DType t) {
  switch (t) {
    case DType::F32: {
      float f = float(v);
      if (std::isnan(f)) return "__int_as_float(0x7fc00000)";
      if (std::isinf(f)) return f > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
      return shortest(f) + "f";
    }
    case DType::F64:
      if (std::isnan(v)) return "__longlong_as_double(0x7ff8000000000000LL)";
      if (std::isinf(v)) return v > 0 ? "__longlong_as_double(0x7ff0000000000000LL)" : "__longlong_as_double(0xfff0000000000000LL)";
      return shortest(v);
    case DType::I32:
    case DType::I64:
    case DType::U8:
    case DType::I8:
    case DType::I16:
    case DType::U16:
    case DType::U32: return "(" + cudaType(t) + ")" + intLit(int64_t(v));
    case DType::U64: {
      const uint64_t u = !(v > 0) ? 0 : v >= 18446744073709551616.0 ? ~uint64_t(0) : uint64_t(v);
      return "(" + cudaType(t) + ")" + std::to_string(u) + "ULL";
    }
    case DType::Bool: return v != 0 ? "true" : "false";
    case DType::F16: return "(unsigned short)" + std::to_string(shoal_f64_to_f16(v));
    case DType::BF16: return "(unsigned short)" + std::to_string(shoal_f64_to_bf16(v));
  }
  return shortest(v);
}

std::string intLit(int64_t v) {
  if (v > std::numeric_limits<int32_t>::max() || v < std::numeric_limits<int32_t>::min()) return std::to_string(v) + "LL";
  return std::to_string(v);
}

std::string linear(std::initializer_list<std::pair<const char*, int64_t>> terms, int64_t constant) {
  std::string out;
  for (const auto& [var, k] : terms) {
    if (k == 0) continue;
    std::string term = std::string(var) + (k == 1 || k == -1 ? "" : " * " + std::to_string(k < 0 ? -k : k));
    if (out.empty()) out = k < 0 ? "-" + term : term;
    else out += (k < 0 ? " - " : " + ") + term;
  }
  if (out.empty()) return std::to_string(constant);
  if (constant != 0) out += (constant < 0 ? " - " : " + ") + std::to_string(constant < 0 ? -constant : constant);
  return out;
}

bool isFloatNode(const Node& n) {
  for (Value* v : n.inputs())
    if (!isFloat(v->type().dtype)) return false;
  return true;
}

std::string indexType(int64_t n) {
  // A grid-stride loop adds at most kMaxGrid * kBlock past the last valid index.
  return n + kMaxGrid * int64_t(kBlock) < int64_t(std::numeric_limits<int32_t>::max()) ? "int" : "long long";
}

unsigned gridFor(int64_t n) {
  int64_t blocks = (n + kBlock - 1) / kBlock;
  return unsigned(std::clamp<int64_t>(blocks, 1, kMaxGrid));
}

std::string identifier(std::string_view name) {
  std::string out;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  if (out.empty()) out.push_back('_');
  return out;
}

std::string offsetCode(const std::string& idx, const std::string& index, const std::vector<Dim>& dims,
                       const std::string& offset, const std::string& indent) {
  // Dimensions outside the outermost one that moves the offset need no arithmetic.
  size_t first = 0;
  while (first < dims.size() && dims[first].stride == 0) ++first;
  if (first == dims.size()) return "";
  std::string code;
  if (first == dims.size() - 1 && first == 0) {
    code += indent + offset + " += " + index + " * " + intLit(dims[0].stride) + ";\n";
    return code;
  }
  const std::string rest = "r_" + offset;
  code += indent + "{\n";
  code += indent + "  " + idx + " " + rest + " = " + index + ";\n";
  for (size_t k = dims.size(); k-- > first;) {
    const Dim& d = dims[k];
    if (k == 0) {
      code += indent + "  " + offset + " += " + rest + " * " + intLit(d.stride) + ";\n";
      break;
    }
    if (k == first) {
      code += indent + "  " + offset + " += (" + rest + " % " + intLit(d.extent) + ") * " + intLit(d.stride) + ";\n";
      break;
    }
    if (d.stride != 0)
      code += indent + "  " + offset + " += (" + rest + " % " + intLit(d.extent) + ") * " + intLit(d.stride) + ";\n";
    code += indent + "  " + rest + " /= " + intLit(d.extent) + ";\n";
  }
  code += indent + "}\n";
  return code;
}

namespace {

int64_t largestOperand(const Node& n) {
  int64_t m = 1;
  for (Value* v : n.inputs())
    if (v) m = std::max(m, v->type().numElements());
  for (size_t i = 0; i < n.numResults(); ++i) m = std::max(m, n.result(i)->type().numElements());
  return m;
}

// A comment line that cannot splice the next line (a trailing backslash would).
std::string commentLine(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.pop_back();
  if (!text.empty() && text.back() == '\\') text += " |";
  return "// " + text + "\n";
}

}  // namespace

NodeEmitter::NodeEmitter(CudaModuleSource& module, std::string& source, const Node& node, int index,
                         const MemoryPlan* plan)
    : module_(module), source_(source), node_(node), index_(index), plan_(plan) {
  static const CudaCodegenOptions kDefaults;
  options_ = &kDefaults;
  computeType_ = ::shoal::computeType(node);
  t_ = cudaType(computeType_);
  i_ = indexType(largestOperand(node));
}

void NodeEmitter::header() {
  if (headerDone_) return;
  headerDone_ = true;
  std::string where = node_.loc().str();
  source_ += "\n";
  source_ += commentLine(fmt::format("---- node {}: {}{}", index_, node_.describe(), where.empty() ? "" : " at " + where));
  std::string text = printNode(node_);
  // The location is in the line above; the IR text's own loc(...) suffix would repeat it.
  if (size_t loc = text.rfind(" loc("); loc != std::string::npos) text.erase(loc);
  source_ += commentLine(text);
}

namespace {

// True when the plan may put `a` and `b` in overlapping bytes (an alias, or a slot reuse).
bool mayOverlap(const MemoryPlan& plan, const Value* a, const Value* b) {
  if (a == b) return true;
  if (plan.bufferOf(a) == plan.bufferOf(b)) return true;
  auto ia = plan.buffers.find(a), ib = plan.buffers.find(b);
  if (ia == plan.buffers.end() || ib == plan.buffers.end()) return false;
  const BufferAssignment &x = ia->second, &y = ib->second;
  if (x.persistent != y.persistent || x.bytes == 0 || y.bytes == 0) return false;
  return x.offset < y.offset + y.bytes && y.offset < x.offset + x.bytes;
}

}  // namespace

std::string NodeEmitter::restrictSafe(std::string_view params, const std::vector<CudaArg>& args) const {
  if (!plan_) return std::string(params);
  // One parameter per argument, comma-separated (parameter lists hold no nested commas).
  std::vector<std::string> parts;
  for (size_t pos = 0;;) {
    size_t comma = params.find(',', pos);
    parts.emplace_back(params.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  assert(parts.size() == args.size() && "kernel parameters and launch arguments disagree");
  if (parts.size() != args.size()) return std::string(params);
  std::string out;
  for (size_t j = 0; j < parts.size(); ++j) {
    bool shared = false;
    if (args[j].kind == CudaArgKind::Value && args[j].value)
      for (size_t k = 0; k < args.size() && !shared; ++k)
        shared = k != j && args[k].kind == CudaArgKind::Value && args[k].value &&
                 mayOverlap(*plan_, args[j].value, args[k].value);
    std::string p = parts[j];
    if (shared)
      for (size_t at; (at = p.find(" __restrict__")) != std::string::npos;) p.erase(at, 13);
    out += (j ? "," : "") + p;
  }
  return out;
}

void NodeEmitter::kernel(std::string_view suffix, std::string_view paramsIn, std::string_view body,
                         std::vector<CudaArg> args, unsigned gridX, unsigned gridY, unsigned sharedBytes,
                         unsigned block) {
  header();
  const std::string params = restrictSafe(paramsIn, args);
  const std::string name = kernelName(suffix);
  // The kernel's text goes in when the module is finished (finishKernels): alone, or as the
  // body a grouped launch calls.
  source_ += kernelPlaceholder(name);
  CudaStep step;
  step.params = params;
  step.body = std::string(body);
  step.kind = CudaStepKind::Kernel;
  step.node = &node_;
  step.kernel = name;
  step.args = std::move(args);
  step.grid[0] = std::max(gridX, 1u);
  step.grid[1] = std::max(gridY, 1u);
  step.block = block;
  step.sharedBytes = sharedBytes;
  module_.kernelNames.push_back(name);
  module_.steps.push_back(std::move(step));
}

void NodeEmitter::elementwise(std::string_view suffix, std::string_view params, std::string_view perElement,
                              std::vector<CudaArg> args, int64_t n) {
  std::string body = fill(
      "  for (${I} i = (${I})blockIdx.x * blockDim.x + threadIdx.x; i < ${N}; i += (${I})gridDim.x * blockDim.x) {\n"
      "${BODY}"
      "  }\n",
      {{"I", i_}, {"N", intLit(n)}, {"BODY", std::string(perElement)}});
  kernel(suffix, params, body, std::move(args), gridFor(n));
}

bool NodeEmitter::gemmWithEpilogue(const CudaGemmCall& call, const CudaGemmEpilogue& epilogue) {
  if (!smallGemmApplies(*options_, call)) return false;
  return emitSmallGemm(*this, call, gemms_++, &epilogue);
}

void NodeEmitter::gemm(const CudaGemmCall& call) {
  if (emitSmallGemm(*this, call, gemms_++)) return;
  header();
  auto name = [](const CudaArg& a) { return a.value ? "%" + a.value->name() : std::string("?"); };
  source_ += commentLine(fmt::format("cuBLAS {}gemm (row-major): {}[{},{}] = {}{} * {}{}{}   (k={}, lda={} ldb={} ldc={})",
                                     call.dtype == DType::F64 ? "D" : "S", name(call.c), call.m, call.n, name(call.a),
                                     call.transA ? "^T" : "", name(call.b), call.transB ? "^T" : "",
                                     call.beta != 0 ? " + " + name(call.c) : "", call.k, call.lda, call.ldb, call.ldc) +
                         (call.batch > 1 || call.offsetA || call.offsetB || call.offsetC
                              ? fmt::format(" x{} batched, offsets {},{},{} strides {},{},{}", call.batch, call.offsetA,
                                            call.offsetB, call.offsetC, call.strideA, call.strideB, call.strideC)
                              : "") +
                         (call.hasEpilogue() ? fmt::format(", cuBLASLt epilogue{}{}", call.bias.value ? " + " + name(call.bias) : "",
                                                           call.activation.empty() ? "" : ", " + call.activation)
                                             : ""));
  CudaStep step;
  step.kind = CudaStepKind::Gemm;
  step.node = &node_;
  step.gemm = call;
  module_.steps.push_back(std::move(step));
}

void NodeEmitter::copy(const Value* src, const Value* dst) {
  CudaStep step;
  step.kind = CudaStepKind::Copy;
  step.node = &node_;
  step.args = {{CudaArgKind::Value, src}, {CudaArgKind::Value, dst}};
  step.bytes = int64_t(src->type().byteSize());
  module_.steps.push_back(std::move(step));
}

void NodeEmitter::allReduce() {
  CudaStep step;
  step.kind = CudaStepKind::AllReduce;
  step.node = &node_;
  step.args = {{CudaArgKind::Value, node_.input(0)}, {CudaArgKind::Value, node_.result()}};
  step.bytes = int64_t(node_.result()->type().byteSize());
  module_.steps.push_back(std::move(step));
}

void NodeEmitter::constant() {
  CudaStep step;
  step.kind = CudaStepKind::Constant;
  step.node = &node_;
  step.args = {out()};
  step.bytes = int64_t(node_.result()->type().byteSize());
  module_.steps.push_back(std::move(step));
}

int NodeEmitter::errorSite(CudaErrorKind kind, int64_t cols) {
  module_.errorSites.push_back({kind, &node_, cols});
  return int(module_.errorSites.size()) - 1;
}

void NodeEmitter::needScratch(int64_t bytes) { module_.scratchBytes = std::max(module_.scratchBytes, bytes); }

int64_t regionBlockBytes(int64_t bytes) { return (std::max<int64_t>(bytes, 1) + 255) / 256 * 256; }

CudaArg NodeEmitter::prepared(int64_t bytes) {
  CudaArg a{CudaArgKind::Prepared, nullptr, module_.preparedBytes};
  module_.preparedBytes += regionBlockBytes(bytes);
  return a;
}

CudaArg NodeEmitter::converted(const Value* v, int64_t bytes, bool& fresh) {
  auto& blocks = module_.converted;
  // Unshared (CudaCodegenOptions::shareConvertedCopies off): only within the node.
  auto it = std::find_if(blocks.begin(), blocks.end(), [&](const auto& b) {
    return b.value == v && (options_->shareConvertedCopies || b.first == index_);
  });
  fresh = it == blocks.end();
  if (fresh) {
    blocks.push_back({v, bytes, index_, index_, 0});
    it = blocks.end() - 1;
  }
  assert(it->bytes == bytes && "one value, one converted layout");
  it->last = index_;
  // The block's number until every node is emitted; then its offset (layOutConverted).
  return {CudaArgKind::Converted, v, int64_t(it - blocks.begin())};
}

}  // namespace cudagen

std::string ProductTile::describe() const { return fmt::format("{}x{}/{}", bm, bn, splits); }

std::optional<ProductTile> ProductTile::parse(std::string_view s) {
  // Three positive decimal numbers, "x" and "/" between them, nothing else.
  const char* p = s.data();
  const char* end = s.data() + s.size();
  auto number = [&](auto& out, char after) {
    auto [next, ec] = std::from_chars(p, end, out);
    if (ec != std::errc() || next == p || out <= 0) return false;
    p = next;
    if (after == 0) return p == end;
    if (p == end || *p != after) return false;
    ++p;
    return true;
  };
  ProductTile t;
  if (!number(t.bm, 'x') || !number(t.bn, '/') || !number(t.splits, 0)) return std::nullopt;
  return t;
}

namespace cudagen {

std::string NodeEmitter::kernelName(std::string_view suffix) const {
  std::string name = fmt::format("k{}_{}_{}", index_, identifier(node_.opName()),
                                 identifier(node_.numResults() ? node_.result()->name() : node_.input(0)->name()));
  if (!suffix.empty()) name += "_" + std::string(suffix);
  return name;
}

void NodeEmitter::addProduct(CudaProduct product) { module_.products.push_back(std::move(product)); }

void NodeEmitter::markPrepare() { module_.steps.back().prepare = true; }
bool NodeEmitter::madeBeforePrepare(const Value* v) const {
  return v && ((v->def() && isPersistentSource(v->def()->kind())) || module_.hoisted.contains(v));
}
void NodeEmitter::setFlops(double flops) { module_.steps.back().flops = flops; }
void NodeEmitter::setMinBlocks(unsigned blocks) { module_.steps.back().minBlocks = blocks; }

void NodeEmitter::setTensorMaps(std::vector<CudaTensorMap> maps) {
  CudaStep& step = module_.steps.back();
  for (const CudaTensorMap& m : maps) {
    assert(m.baseArg >= 0 && size_t(m.baseArg) < step.args.size() && "a tensor map's base is one of the pointers");
    step.params += ", SHOAL_TMAP(" + m.name + ")";
  }
  step.tensorMaps = std::move(maps);
}

Unexpected<Error> NodeEmitter::unsupported(std::string_view why) const {
  return fail(fmt::format("{}: {}{}", node_.describe(), kNoCudaKernel, why), node_.loc());
}

}  // namespace cudagen

namespace {

using cudagen::NodeEmitter;

Expected<void> emitNode(NodeEmitter& em) {
  const Node& n = em.node();
  switch (n.kind()) {
    // ==== family elementwise: elementwise math, comparisons, where, reductions ====
    case OpKind::Equal:
    case OpKind::NotEqual:
    case OpKind::Less:
    case OpKind::LessEqual:
    case OpKind::Greater:
    case OpKind::GreaterEqual: return cudagen::emitCompare(em);
    case OpKind::Where: return cudagen::emitWhere(em);
    case OpKind::ReduceSum:
    case OpKind::ReduceMean:
    case OpKind::ReduceMax:
    case OpKind::ReduceMin:
    case OpKind::ReduceProd: return cudagen::emitReduce(em);
    // (end of family elementwise)

    // ==== family norm: normalisation, dropout ====
    case OpKind::BatchNorm: return cudagen::emitBatchNorm(em);
    case OpKind::BatchNormTrain: return cudagen::emitBatchNormTrain(em);
    case OpKind::BatchNormTrainGrad: return cudagen::emitBatchNormTrainGrad(em);
    case OpKind::BatchNormTrainWeightGrad: return cudagen::emitBatchNormTrainWeightGrad(em);
    case OpKind::BatchNormStats: return cudagen::emitBatchNormStats(em);
    case OpKind::BatchNormUpdate: return cudagen::emitBatchNormUpdate(em);
    case OpKind::LayerNorm: return cudagen::emitLayerNorm(em);
    case OpKind::LayerNormGrad: return cudagen::emitLayerNormGrad(em);
    case OpKind::GroupNorm: return cudagen::emitGroupNorm(em);
    case OpKind::GroupNormGrad: return cudagen::emitGroupNormGrad(em);
    case OpKind::Dropout:  // the evaluation form is the identity: a copy the planner usually elides
      em.copy(n.input(0), n.result());
      return {};
    case OpKind::DropoutTrain: return cudagen::emitDropoutTrain(em);
    // (end of family norm)

    // ==== family conv: convolution and pooling ====
    case OpKind::ConvTranspose2d: return cudagen::emitConv2dBackwardData(em);  // conv2d's data-gradient gather
    case OpKind::GlobalAvgPool: return cudagen::emitGlobalAvgPool(em);
    // (end of family conv)

    // ==== family shape: shape and data movement, batched matmul, attention ====
    case OpKind::Concat: return cudagen::emitConcat(em);
    case OpKind::Slice: return cudagen::emitSlice(em);
    case OpKind::SliceGrad: return cudagen::emitSliceGrad(em);
    case OpKind::Transpose: return cudagen::emitTranspose(em);
    case OpKind::Pad: return cudagen::emitPad(em);
    case OpKind::PadGrad: return cudagen::emitPadGrad(em);
    case OpKind::Gather: return cudagen::emitGather(em);
    case OpKind::GatherGrad: return cudagen::emitGatherGrad(em);
    case OpKind::Expand: return cudagen::emitExpand(em);
    case OpKind::Squeeze:
    case OpKind::Unsqueeze: return cudagen::emitView(em);
    case OpKind::BatchMatMul: return cudagen::emitBatchMatMul(em);
    case OpKind::CausalMask: return cudagen::emitCausalMask(em);
    // (end of family shape)

    // ==== family train: losses and optimizers ====
    case OpKind::SgdUpdate:
    case OpKind::SgdMomentumUpdate:
    case OpKind::AdamUpdate: return cudagen::emitUpdate(em);
    case OpKind::BceWithLogits: return cudagen::emitBceWithLogits(em);
    case OpKind::BceWithLogitsGrad: return cudagen::emitBceWithLogitsGrad(em);
    case OpKind::OneHot: return cudagen::emitOneHot(em);
    case OpKind::GlobalSumSquares: return cudagen::emitGlobalSumSquares(em);
    case OpKind::LossScaleUpdate: return cudagen::emitLossScaleUpdate(em);
    case OpKind::AllReduce:
      em.allReduce();
      return {};
    // (end of family train)

    case OpKind::Input:
    case OpKind::Param:
    case OpKind::State:
    case OpKind::Output:
      return {};  // fed before the step / persistent / read after it
    case OpKind::Constant:
      em.constant();
      return {};
    case OpKind::Cast: return cudagen::emitCast(em);
    case OpKind::Normalize: return cudagen::emitNormalize(em);
    case OpKind::Flatten:
    case OpKind::Reshape:
      em.copy(n.input(0), n.result());
      return {};
    case OpKind::Conv2d: return cudagen::emitConv2d(em);
    case OpKind::Conv2dBackwardData: return cudagen::emitConv2dBackwardData(em);
    case OpKind::Conv2dBackwardWeight: return cudagen::emitConv2dBackwardWeight(em);
    case OpKind::MaxPool2d: return cudagen::emitMaxPool2d(em);
    case OpKind::MaxPool2dGrad: return cudagen::emitMaxPool2dGrad(em);
    case OpKind::AvgPool2d: return cudagen::emitAvgPool2d(em);
    case OpKind::AvgPool2dGrad: return cudagen::emitAvgPool2dGrad(em);
    case OpKind::Dense: return cudagen::emitDense(em);
    case OpKind::MatMul: return cudagen::emitMatMul(em);
    // Every elementwise op: its formula (ir/ops.def), with broadcasting.
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc)
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc) case OpKind::kind:
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP
      return cudagen::emitElementwise(em);
    case OpKind::SumTo: return cudagen::emitSumTo(em);
    case OpKind::Softmax:
    case OpKind::SoftmaxGrad:
    case OpKind::LogSoftmax:
    case OpKind::LogSoftmaxGrad: return cudagen::emitSoftmaxAxis(em);  // any axis (cuda_kernels_shape.cpp)
    case OpKind::ArgMax: return cudagen::emitArgMax(em);
    case OpKind::Accuracy: return cudagen::emitAccuracy(em);
    case OpKind::SoftmaxCrossEntropy: return cudagen::emitSoftmaxCrossEntropy(em);
    case OpKind::SoftmaxCrossEntropyGrad: return cudagen::emitSoftmaxCrossEntropyGrad(em);
    case OpKind::Mse: return cudagen::emitMse(em);
    case OpKind::MseGrad: return cudagen::emitMseGrad(em);
    case OpKind::FusedConv2d: return cudagen::emitFusedConv2d(em);
    case OpKind::FusedConv2dPool: return cudagen::emitFusedConv2dPool(em);
    case OpKind::FusedDense: return cudagen::emitFusedDense(em);
    case OpKind::FusedMlp: return cudagen::emitFusedMlp(em);
    case OpKind::FusedElementwise: return cudagen::emitFusedElementwise(em);
  }
  return em.unsupported("unknown op");
}

std::string planComment(const CudaModuleSource& m, const MemoryPlan& plan) {
  std::string out = "// Launch plan, in order (the executor runs these on one stream; after the first run\n"
                    "// the whole sequence is replayed as a CUDA graph):\n";
  for (size_t i = 0; i < m.steps.size(); ++i) {
    const CudaStep& s = m.steps[i];
    std::string what;
    switch (s.kind) {
      case CudaStepKind::Kernel:
        what = s.sharedBytes ? fmt::format("kernel {} <<<{}x{}, {}, {}>>>", s.kernel, s.grid[0], s.grid[1], s.block,
                                           s.sharedBytes)
                             : fmt::format("kernel {} <<<{}x{}, {}>>>", s.kernel, s.grid[0], s.grid[1], s.block);
        break;
      case CudaStepKind::Gemm:
        what = fmt::format("cuBLAS {}gemm m={} n={} k={}{} for %{}", s.gemm.dtype == DType::F64 ? "D" : "S", s.gemm.m,
                           s.gemm.n, s.gemm.k, s.gemm.batch > 1 ? fmt::format(" batch={}", s.gemm.batch) : "",
                           s.gemm.c.value ? s.gemm.c.value->name() : std::string("scratch"));
        break;
      case CudaStepKind::Copy:
        // A view the memory plan put in its operand's buffer (flatten, reshape, a same-type
        // cast): the executor sees one address and copies nothing.
        if (plan.buffers.count(s.args[0].value) && plan.buffers.count(s.args[1].value) &&
            plan.bufferOf(s.args[0].value) == plan.bufferOf(s.args[1].value))
          what = fmt::format("view %{} of %{} (one buffer: nothing copied)", s.args[1].value->name(),
                             s.args[0].value->name());
        else
          what = fmt::format("copy %{} -> %{} ({} bytes)", s.args[0].value->name(), s.args[1].value->name(), s.bytes);
        break;
      case CudaStepKind::Constant:
        what = fmt::format("constant %{} ({} bytes, uploaded)", s.args[0].value->name(), s.bytes);
        break;
      case CudaStepKind::AllReduce:
        what = fmt::format("all_reduce %{} -> %{} ({} bytes, {} over {} ranks)", s.args[0].value->name(),
                           s.args[1].value->name(), s.bytes, s.node->attrs().getString("op"),
                           s.node->attrs().getInt("ranks"));
        break;
    }
    // Out of the step: run before one when the parameters changed since it last ran.
    if (s.prepare) what += " (prepares parameters: runs when they change, not every step)";
    out += cudagen::fill("//   ${N}. ${W}\n", {{"N", std::to_string(i + 1)}, {"W", what}});
  }
  return out;
}

}  // namespace

std::string_view tensorCoreMathName(TensorCoreMath m) {
  switch (m) {
    case TensorCoreMath::Off: return "off";
    case TensorCoreMath::Tf32: return "tf32";
    case TensorCoreMath::Bf16: return "bf16";
    case TensorCoreMath::Fp16: return "fp16";
  }
  return "off";
}

std::optional<TensorCoreMath> parseTensorCoreMath(std::string_view s) {
  if (s == "1" || s == "tf32") return TensorCoreMath::Tf32;
  if (s == "bf16") return TensorCoreMath::Bf16;
  if (s == "fp16") return TensorCoreMath::Fp16;
  if (s == "0" || s == "off" || s.empty()) return TensorCoreMath::Off;
  return std::nullopt;
}

namespace {

// The module's NVRTC units (CudaCodegenOptions::unitBytes): the whole source as one, or the
// kernels' definitions cut in launch order into runs of about equal text, each after the prelude.
std::vector<CudaUnit> splitUnits(const CudaModuleSource& m, const std::string& prelude,
                                 const std::vector<std::pair<std::string, std::string>>& definitions,
                                 int64_t unitBytes) {
  int64_t total = 0;
  for (const auto& [name, text] : definitions) total += int64_t(text.size());
  const int64_t count = unitBytes > 0 && definitions.size() > 1
                            ? std::min<int64_t>(int64_t(definitions.size()), (total + unitBytes - 1) / unitBytes)
                            : 1;
  if (count <= 1) return {CudaUnit{m.name, m.source, m.kernelNames}};
  std::vector<CudaUnit> units;
  int64_t done = 0;  // text of the definitions placed so far
  for (const auto& [name, text] : definitions) {
    // Unit u takes the definitions that start before (u + 1) / count of the text.
    const int64_t u = std::min<int64_t>(count - 1, done * count / total);
    while (int64_t(units.size()) <= u) {
      CudaUnit unit;
      unit.name = fmt::format("{}_u{}", m.name, units.size());
      unit.source = fmt::format("// Generated by shoal: unit {} of module '{}' ({} units). Do not edit.\n\n{}",
                                units.size(), m.name, count, prelude);
      units.push_back(std::move(unit));
    }
    units.back().source += text;
    units.back().kernelNames.push_back(name);
    done += int64_t(text.size());
  }
  return units;
}

}  // namespace

namespace {

// What the `prepare` steps compute besides the weights' packing (CudaModuleSource::hoisted):
// the parameter-derived nodes whose results can live in the prepared region, each alias group
// of the plan one block.
struct Hoisting {
  std::unordered_set<const Node*> nodes;
  std::unordered_map<const Value*, int64_t> blocks;  // value -> byte offset in the prepared region
  int64_t bytes = 0;
};

Hoisting chooseHoisting(const Program& program, const std::unordered_set<const Node*>& refused) {
  const MemoryPlan& plan = program.plan;
  std::unordered_set<const Node*> nodes = parameterDerivedNodes(program);
  // The literals they read: in the prepared region too, written once when the executable loads.
  for (const Node* n : std::unordered_set<const Node*>(nodes))
    for (const Value* in : n->inputs())
      if (in->def() && in->def()->kind() == OpKind::Constant) nodes.insert(in->def());
  for (const Node* n : refused) nodes.erase(n);
  std::unordered_set<const Value*> outputs;  // read from their plan slots after the step
  for (const Node* out : program.graph->outputNodes()) outputs.insert(out->input(0));
  std::unordered_map<const Value*, std::vector<const Value*>> group;  // alias root -> members
  std::unordered_map<const Value*, std::vector<const Node*>> readers;
  for (const Node* n : program.graph->nodes())
    for (const Value* in : n->inputs()) readers[in].push_back(n);
  for (const auto& [v, root] : plan.aliasOf) group[root].push_back(v);
  auto ready = [&](const Value* v) {  // there before the prepare steps that read it
    return v->def() && (isPersistentSource(v->def()->kind()) || nodes.contains(v->def()));
  };
  // Dropping a node can strand its readers and its buffer's other members: until nothing moves.
  for (bool changed = true; changed;) {
    changed = false;
    for (const Node* n : program.graph->nodes()) {
      if (!nodes.contains(n)) continue;
      // (A literal has no operands; it stays while a node reading it stays.)
      bool keep = std::all_of(n->inputs().begin(), n->inputs().end(), ready);
      if (n->kind() == OpKind::Constant) {
        const auto& users = readers[n->result()];
        keep = std::any_of(users.begin(), users.end(), [&](const Node* u) { return nodes.contains(u); });
      }
      for (size_t r = 0; keep && r < n->numResults(); ++r) {
        const Value* v = n->result(r);
        const Value* root = plan.bufferOf(v);
        keep = !outputs.contains(v) && plan.buffers.count(v) && nodes.contains(root->def());
        if (auto it = group.find(root); keep && it != group.end())
          keep = std::all_of(it->second.begin(), it->second.end(),
                             [&](const Value* m) { return nodes.contains(m->def()); });
      }
      if (!keep) nodes.erase(n), changed = true;
    }
  }
  Hoisting h;
  h.nodes = nodes;
  std::unordered_map<const Value*, int64_t> rootBlock;
  for (const Node* n : program.graph->nodes()) {  // program order: the same bytes every time
    if (!nodes.contains(n)) continue;
    for (size_t r = 0; r < n->numResults(); ++r) {
      const Value* v = n->result(r);
      auto [it, fresh] = rootBlock.try_emplace(plan.bufferOf(v), h.bytes);
      if (fresh) h.bytes += cudagen::regionBlockBytes(plan.at(plan.bufferOf(v)).bytes);
      h.blocks[v] = it->second;
    }
  }
  return h;
}

// A hoisted node whose steps the prepare run cannot take: one that reports errors in the
// status words (every step clears them first), or a step of another kind.
const Node* unpreparable(const CudaModuleSource& m, const Hoisting& h) {
  for (const CudaErrorSite& site : m.errorSites)
    if (h.nodes.contains(site.node)) return site.node;
  for (const CudaStep& s : m.steps)
    if (h.nodes.contains(s.node) && s.kind != CudaStepKind::Kernel && s.kind != CudaStepKind::Gemm &&
        s.kind != CudaStepKind::Copy && s.kind != CudaStepKind::Constant)
      return s.node;
  return nullptr;
}

// The converted blocks placed in their region (first fit by first use: blocks whose lives do not
// meet may share bytes) and every argument naming one pointed at it.
void layOutConverted(CudaModuleSource& m) {
  std::vector<size_t> order(m.converted.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return m.converted[a].first < m.converted[b].first; });
  std::vector<size_t> placed;
  m.convertedBytes = 0;
  for (size_t i : order) {
    CudaModuleSource::ConvertedBlock& b = m.converted[i];
    const int64_t bytes = cudagen::regionBlockBytes(b.bytes);
    // The lowest offset clear of every placed block alive at the same time.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const auto& o = m.converted[j];
      if (o.first <= b.last && b.first <= o.last)
        busy.push_back({o.offset, o.offset + cudagen::regionBlockBytes(o.bytes)});
    }
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [lo, hi] : busy) {
      if (at + bytes <= lo) break;
      at = std::max(at, hi);
    }
    b.offset = at;
    m.convertedBytes = std::max(m.convertedBytes, at + bytes);
    placed.push_back(i);
  }
  for (CudaStep& s : m.steps)
    for (CudaArg& a : s.args)
      if (a.kind == CudaArgKind::Converted) a.offset = m.converted[size_t(a.offset)].offset;
}

// The hoisted nodes' steps made `prepare` steps, and every argument naming a hoisted value
// pointed at its block.
void applyHoisting(CudaModuleSource& m, const Hoisting& h) {
  auto point = [&](CudaArg& a) {
    if (a.kind != CudaArgKind::Value || !a.value) return;
    if (auto it = h.blocks.find(a.value); it != h.blocks.end()) a = {CudaArgKind::Prepared, a.value, it->second};
  };
  for (CudaStep& s : m.steps) {
    if (h.nodes.contains(s.node)) s.prepare = true;
    for (CudaArg& a : s.args) point(a);
    if (s.kind == CudaStepKind::Gemm)
      for (CudaArg* a : {&s.gemm.a, &s.gemm.b, &s.gemm.c, &s.gemm.bias}) point(*a);
  }
}

Expected<CudaModuleSource> generateWith(const Program& program, const CudaCodegenOptions& options,
                                        const Hoisting& hoisting) {
  CudaModuleSource m;
  m.name = cudagen::identifier(program.graph->name());
  m.hoisted = hoisting.blocks;
  m.preparedBytes = hoisting.bytes;  // the hoisted values' blocks first, then the packed weights
  std::string kernels;
  const auto& nodes = program.graph->nodes();
  // Most updates one horizontally fused kernel takes: its pointer parameters (4 per Adam
  // update) stay far below the 4 KiB kernel-parameter limit.
  constexpr size_t kMaxGroup = 64;
  for (size_t i = 0; i < nodes.size();) {
    const Node* n = nodes[i];
    size_t end = i + 1;
    // In-place updates (the optimizer's) are what fuses horizontally.
    if (options.horizontalUpdates && !mutatedOperands(n->kind()).empty())
      while (end < nodes.size() && end - i < kMaxGroup && cudagen::updatesFuse(*n, *nodes[end])) ++end;
    if (end - i >= 2) {
      std::vector<std::unique_ptr<NodeEmitter>> emitters;
      std::vector<NodeEmitter*> group;
      for (size_t j = i; j < end; ++j) {
        emitters.push_back(std::make_unique<NodeEmitter>(m, kernels, *nodes[j], int(j), &program.plan));
        emitters.back()->setOptions(&options);
        group.push_back(emitters.back().get());
      }
      if (auto ok = cudagen::emitUpdateGroup(group); !ok) return Unexpected(ok.error());
    } else {
      NodeEmitter em(m, kernels, *n, int(i), &program.plan);
      em.setOptions(&options);
      if (auto ok = emitNode(em); !ok) return Unexpected(ok.error());
    }
    i = end;
  }
  applyHoisting(m, hoisting);
  layOutConverted(m);
  if (options.groupKernels) cudagen::groupKernels(m, program.plan);
  int64_t gemms = std::count_if(m.steps.begin(), m.steps.end(), [](const CudaStep& s) { return s.kind == CudaStepKind::Gemm; });
  std::vector<std::pair<std::string, std::string>> definitions;
  std::string finished = cudagen::finishKernels(m, kernels, options.shareKernels, &definitions);
  std::string prelude = cudagen::prelude();
  if (options.wgmma) prelude += cudagen::wgmmaPrelude();
  m.source = fmt::format("// Generated by shoal from graph '{}': {} kernels, {} cuBLAS calls. Do not edit.\n",
                         program.graph->name(), m.kernelNames.size(), gemms);
  m.source += planComment(m, program.plan);
  m.source += "\n";
  m.source += prelude;
  m.source += finished;
  m.units = splitUnits(m, prelude, definitions, options.unitBytes);
  return m;
}

}  // namespace

Expected<CudaModuleSource> generateCudaSource(const Program& program, const CudaCodegenOptions& given) {
  if (!program.graph) return fail("internal error: generateCudaSource: the program has no graph");
  // Parameters are prepared once only in programs that never write one (no in-place update):
  // a training step changes its weights every step.
  CudaCodegenOptions options = given;
  if (updatesParameters(program)) options.prepareParameters = false;
  std::unordered_set<const Node*> refused;
  for (;;) {
    Hoisting hoisting = options.prepareParameters ? chooseHoisting(program, refused) : Hoisting{};
    auto m = generateWith(program, options, hoisting);
    if (!m) return m;
    // Rare (an integer division of parameters, say): generate again without that node.
    if (const Node* n = unpreparable(*m, hoisting)) {
      refused.insert(n);
      continue;
    }
    // halfCopyInProducer: again, with the values readers converted offered to their producers.
    if (options.halfCopyInProducer && options.shareConvertedCopies && options.copiedValues.empty() &&
        !m->converted.empty()) {
      for (const auto& block : m->converted) options.copiedValues.push_back(block.value);
      continue;
    }
    return m;
  }
}

Expected<void> checkCudaStatus(const CudaModuleSource& module, const uint64_t* words) {
  if (words[0] == 0) return {};
  for (size_t s = 0; s < module.errorSites.size(); ++s) {
    const uint64_t flag = words[1 + 2 * s];
    if (flag == 0) continue;
    const CudaErrorSite& site = module.errorSites[s];
    switch (site.kind) {
      case CudaErrorKind::LabelOutOfRange: {
        const uint64_t key = ~flag;
        const int64_t row = int64_t(key >> 32);
        const int64_t label = int64_t(int32_t(uint32_t(key & 0xffffffffu)));
        return fail(fmt::format("{}: label {} in row {} is outside [0, {})", site.node->describe(), label, row, site.cols),
                    site.node->loc());
      }
      case CudaErrorKind::IndexOutOfRange: {
        const uint64_t key = ~flag;
        const int64_t position = int64_t(key >> 32);
        const int64_t index = int64_t(int32_t(uint32_t(key & 0xffffffffu)));
        return fail(fmt::format("{}: index {} at position {} is outside [-{}, {})", site.node->describe(), index, position,
                                site.cols, site.cols),
                    site.node->loc());
      }
      case CudaErrorKind::IntegerDivisionByZero:
        return fail(site.node->describe() + ": integer division by zero", site.node->loc());
      case CudaErrorKind::AdamStep: {
        const double step = std::bit_cast<double>(words[2 + 2 * s]);
        return fail(fmt::format("{}: step must be >= 1, got {}", site.node->describe(), step), site.node->loc());
      }
    }
  }
  return fail("internal error: a CUDA kernel reported an error at no known site");
}

Expected<std::vector<CompiledKernel>> compileCudaUnits(const CudaModuleSource& module, const std::string& arch,
                                                       KernelCache* cache, int threads) {
  std::vector<KernelSource> sources;
  sources.reserve(module.units.size());
  for (const CudaUnit& u : module.units) sources.push_back({u.name, u.source});
  std::vector<CompiledKernel> out;
  out.reserve(sources.size());
  for (auto& compiled : compileAll(sources, arch, {}, cache, threads)) {
    if (!compiled) return Unexpected(compiled.error());
    out.push_back(std::move(*compiled));
  }
  return out;
}

Expected<std::string> compileCudaProgram(const Program& program, const std::string& arch, bool verbose,
                                         const CudaCodegenOptions& options) {
  auto src = generateCudaSource(program, options);
  if (!src) return Unexpected(src.error());
  KernelCache cache(KernelCache::defaultDir());
  const auto start = std::chrono::steady_clock::now();
  auto compiled = compileCudaUnits(*src, arch, &cache);
  if (!compiled) return Unexpected(compiled.error());
  const double wallMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  size_t bytes = 0, hits = 0;
  double nvrtcMs = 0;
  std::string logs;
  for (const CompiledKernel& c : *compiled) {
    bytes += c.cubin.size();
    hits += c.cacheHit;
    nvrtcMs += c.compileMs;
    if (!c.log.empty()) logs += c.name + ":\n" + c.log + "\n";
  }
  int64_t gemms = std::count_if(src->steps.begin(), src->steps.end(), [](const CudaStep& s) { return s.kind == CudaStepKind::Gemm; });
  const size_t units = compiled->size();
  std::string how = hits == units ? "kernel cache hit"
                    : units == 1  ? fmt::format("NVRTC {:.1f} ms", nvrtcMs)
                                  : fmt::format("NVRTC {:.1f} ms in {} units side by side{}, {:.1f} ms wall", nvrtcMs,
                                                units - hits, hits ? fmt::format(" ({} more from the kernel cache)", hits) : "",
                                                wallMs);
  std::string out = fmt::format("{}: {} kernels and {} cuBLAS calls in {} translation unit{}; cubin {} bytes for {} ({})\n",
                                program.graph->name(), src->kernelNames.size(), gemms, units, units == 1 ? "" : "s", bytes,
                                arch, how);
  if (verbose) {
    out += cache.summary() + "\n";
    if (!logs.empty()) out += "NVRTC log:\n" + logs;
  }
  return out;
}

}  // namespace shoal
