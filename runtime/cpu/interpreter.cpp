// The CPU interpreter: executes a Program node by node over the planned arena.
#include "runtime/cpu/interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>

#include "ir/elementwise.h"
#include "runtime/cpu/cpu_threads.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/op_context.h"
// The op families (one runner header each):

// ==== family elementwise: elementwise math, comparisons, where, reductions ====
#include "runtime/cpu/ops_elementwise.h"
// (end of family elementwise)

// ==== family norm: normalisation, dropout ====
#include "runtime/cpu/ops_norm.h"
// (end of family norm)

// ==== family conv: convolution and pooling ====
#include "runtime/cpu/ops_conv.h"
// (end of family conv)

// ==== family shape: shape and data movement, batched matmul, attention ====
#include "runtime/cpu/ops_shape.h"
// (end of family shape)

// ==== family train: losses and optimizers ====
#include "runtime/cpu/ops_train.h"
// (end of family train)

#include "runtime/init.h"
#include "support/strings.h"
#include "support/thread_pool.h"

namespace shoal {

namespace {

// A zeroed, 64-byte aligned region; null when it cannot be allocated.
std::shared_ptr<void> allocateRegion(int64_t bytes) {
  if (bytes > std::numeric_limits<int64_t>::max() - 64) return nullptr;
  size_t size = size_t(std::max<int64_t>(bytes, 64));
  size = (size + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, size);
  if (!p) return nullptr;
  std::memset(p, 0, size);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

cpu::Conv2dParams convParams(const Attrs& a, const Shape& x, const Shape& w) {
  cpu::Conv2dParams p;
  p.n = x[0], p.c = x[1], p.h = x[2], p.w = x[3];
  p.o = w[0], p.kh = w[2], p.kw = w[3];
  const auto& s = a.getInts("stride");
  const auto& pad = a.getInts("padding");
  const auto& d = a.getInts("dilation");
  p.strideH = s[0], p.strideW = s[1];
  p.padTop = pad[0], p.padLeft = pad[1], p.padBottom = pad[2], p.padRight = pad[3];
  p.dilationH = d[0], p.dilationW = d[1];
  p.groups = a.getInt("groups", 1);
  return p;
}

cpu::Pool2dParams poolParams(const Attrs& a, const Shape& x) {
  cpu::Pool2dParams p;
  p.n = x[0], p.c = x[1], p.h = x[2], p.w = x[3];
  const auto& k = a.getInts("kernel");
  const auto& s = a.getInts("stride");
  const auto& pad = a.getInts("padding");
  p.kh = k[0], p.kw = k[1], p.strideH = s[0], p.strideW = s[1];
  p.padTop = pad[0], p.padLeft = pad[1], p.padBottom = pad[2], p.padRight = pad[3];
  p.ceilMode = a.getInt("ceil_mode", 0) != 0;
  p.countIncludePad = a.getInt("count_include_pad", 1) != 0;
  return p;
}

// Executes one node; T is the floating-point type of the node's float operands. The core ops'
// kernels run here; each op family's runner (runtime/cpu/ops_<family>.h) gets the context.
class NodeRunner : public cpu::OpContext {
 public:
  NodeRunner(CpuExecutable& exe, const Node& n) : OpContext(exe, n), exe_(exe), n_(n) {}

  template <typename T>
  Expected<void> run();

 private:

  template <typename T, typename F>
  Expected<void> withLabels(size_t i, F f) {
    const Value* v = n_.input(i);
    switch (v->type().dtype) {
      case DType::I64: return f(in<int64_t>(i));
      case DType::I32: return f(in<int32_t>(i));
      case DType::U8: return f(in<uint8_t>(i));
      default: break;  // the shape rules reject the others; kept as an error here too
    }
    return fail(n_.describe() + ": labels must be integers", n_.loc());
  }

  template <typename T, typename L>
  Error labelError(int64_t rows, int64_t cols, const L* labels) {
    int64_t bad = cpu::firstInvalidLabel(rows, cols, labels);
    return Error(fmt::format("{}: label {} in row {} is outside [0, {})", n_.describe(), int64_t(labels[bad]), bad, cols),
                 n_.loc());
  }

  template <typename T>
  Expected<void> runFusedElementwise();
  template <typename T>
  Expected<void> runElementwise();

  CpuExecutable& exe_;
  const Node& n_;
};

// A fused op's activation (relu|sigmoid|tanh, the name of an elementwise op without
// attributes) applied in place, by that op's formula.
template <typename T>
void applyActivation(const std::string& name, int64_t n, T* y) {
  auto kind = opKindFromName(name);
  assert(kind && isElementwise(*kind) && opInfo(*kind).minInputs == 1 && "fused activation is not a unary op");
  const T params[kMaxFormulaParams] = {};
  const auto& k = cpu::formulaKernel<T>(*kind);
  parallelFor(n, 16384, [&](int64_t begin, int64_t end) {
    const T* in[1] = {y + begin};
    k.same(end - begin, in, params, y + begin);
  });
}

// fused_elementwise: the postfix program runs over tiles of elements, one instruction at a
// time across the tile (each op by its formula kernel), so each step is a simple
// vectorisable loop and the tile stays in cache.
void copyConverted(const Tensor& src, Tensor dst);

template <typename T>
void runElementwiseProgram(const std::vector<ExprInstr>& program, const std::vector<const T*>& ins, int64_t count,
                           T* y);

template <typename T>
Expected<void> NodeRunner::runFusedElementwise() {
  auto program = parseElementwiseExpr(attrs().getString("expr"), int(n_.numInputs()));
  if (!program) return fail(n_.describe() + ": " + program.error().message(), n_.loc());
  std::vector<const T*> ins;
  // Operands of another type (a folded cast: u8 pixels, say) are converted first, as cast does.
  std::vector<Tensor> converted;
  converted.reserve(n_.numInputs());
  for (size_t i = 0; i < n_.numInputs(); ++i) {
    if (n_.input(i)->type().dtype == n_.result()->type().dtype) {
      ins.push_back(in<T>(i));
      continue;
    }
    converted.emplace_back(n_.result()->type());
    copyConverted(view(n_.input(i)), converted.back());
    ins.push_back(converted.back().data<T>());
  }
  runElementwiseProgram<T>(*program, ins, outCount(), out<T>());
  return {};
}

// A fused_elementwise program over operands already in T, `count` elements of each, into y.
template <typename T>
void runElementwiseProgram(const std::vector<ExprInstr>& program, const std::vector<const T*>& ins, int64_t count,
                           T* y) {
  constexpr int64_t kTile = 512;
  const int depth = exprStackDepth(program);
  // Per instruction: its kernel and params in T.
  std::vector<const cpu::FormulaKernel<T>*> kernels;
  std::vector<std::array<T, kMaxFormulaParams>> params;
  for (const ExprInstr& op : program) {
    kernels.push_back(op.kind == ExprInstr::Kind::Op ? &cpu::formulaKernel<T>(op.op) : nullptr);
    std::array<T, kMaxFormulaParams> p{};
    for (size_t k = 0; k < op.params.size() && k < p.size(); ++k) p[k] = T(op.params[k]);
    params.push_back(p);
  }
  // Tiles in parallel, a stack per chunk; per element, so the bits never depend on threads.
  parallelFor(count, 16 * kTile, [&](int64_t chunkBegin, int64_t chunkEnd) {
    std::vector<T> stack(size_t(depth * kTile));
    for (int64_t base = chunkBegin; base < chunkEnd; base += kTile) {
      int64_t len = std::min(kTile, chunkEnd - base);
      int sp = 0;
      for (size_t k = 0; k < program.size(); ++k) {
        const ExprInstr& op = program[k];
        T* top = stack.data() + int64_t(sp) * kTile;  // the slot a push writes
        switch (op.kind) {
          case ExprInstr::Kind::Operand:
            std::copy(ins[size_t(op.operand)] + base, ins[size_t(op.operand)] + base + len, top);
            break;
          case ExprInstr::Kind::Constant:
            std::fill(top, top + len, T(op.constant));
            break;
          case ExprInstr::Kind::Op: {
            // Operands are the top `arity` slots; the result replaces the first of them.
            const int arity = op.arity();
            const T* operands[kMaxFormulaOperands] = {};
            for (int j = 0; j < arity; ++j) operands[j] = top - int64_t(arity - j) * kTile;
            kernels[k]->same(len, operands, params[k].data(), top - int64_t(arity) * kTile);
            break;
          }
        }
        sp += 1 - op.arity();
      }
      std::copy(stack.data(), stack.data() + len, y + base);
    }
  });
}

// An elementwise op of ir/ops.def, by its formula, with broadcasting.
template <typename T>
Expected<void> NodeRunner::runElementwise() {
  std::vector<Shape> shapes;
  std::vector<const T*> operands;
  for (size_t i = 0; i < n_.numInputs(); ++i) {
    shapes.push_back(inShape(i));
    operands.push_back(in<T>(i));
  }
  std::array<T, kMaxFormulaParams> params{};
  std::vector<double> p = formulaParams(n_);
  for (size_t k = 0; k < p.size() && k < params.size(); ++k) params[k] = T(p[k]);
  cpu::elementwise<T>(n_.kind(), outShape(), shapes, operands, params.data(), out<T>());
  return {};
}

void copyConverted(const Tensor& src, Tensor dst) {
  if (src.dtype() == dst.dtype()) {
    // A planned view (flatten, reshape) shares its operand's buffer: nothing to copy, and
    // memcpy onto itself would be undefined.
    if (dst.raw() == src.raw()) return;
    std::memcpy(dst.raw(), src.raw(), src.byteSize());
    return;
  }
  int64_t count = src.numElements();
  if (src.dtype() == DType::U8 && dst.dtype() == DType::F32) {
    const uint8_t* s = src.data<uint8_t>();
    float* d = dst.data<float>();
    parallelFor(count, 65536, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) d[i] = float(s[i]);
    });
    return;
  }
  for (int64_t i = 0; i < count; ++i) dst.set(i, src.at(i));
}

template <typename T>
Expected<void> NodeRunner::run() {
  switch (n_.kind()) {
    // ==== family elementwise: elementwise math, comparisons, where, reductions ====
    case OpKind::Equal:
    case OpKind::NotEqual:
    case OpKind::Less:
    case OpKind::LessEqual:
    case OpKind::Greater:
    case OpKind::GreaterEqual: return cpu::runCompare<T>(*this);
    case OpKind::Where: return cpu::runWhere<T>(*this);
    case OpKind::ReduceSum:
    case OpKind::ReduceMean:
    case OpKind::ReduceMax:
    case OpKind::ReduceMin:
    case OpKind::ReduceProd: return cpu::runReduce<T>(*this);
    // (end of family elementwise)

    // ==== family norm: normalisation, dropout ====
    case OpKind::BatchNorm: return cpu::runBatchNorm<T>(*this);
    case OpKind::BatchNormTrain: return cpu::runBatchNormTrain<T>(*this);
    case OpKind::BatchNormTrainGrad: return cpu::runBatchNormTrainGrad<T>(*this);
    case OpKind::BatchNormTrainWeightGrad: return cpu::runBatchNormTrainWeightGrad<T>(*this);
    case OpKind::BatchNormStats: return cpu::runBatchNormStats<T>(*this);
    case OpKind::BatchNormUpdate: return cpu::runBatchNormUpdate<T>(*this);
    case OpKind::LayerNorm: return cpu::runLayerNorm<T>(*this);
    case OpKind::LayerNormGrad: return cpu::runLayerNormGrad<T>(*this);
    case OpKind::GroupNorm: return cpu::runGroupNorm<T>(*this);
    case OpKind::GroupNormGrad: return cpu::runGroupNormGrad<T>(*this);
    case OpKind::Dropout: return cpu::runDropout<T>(*this);
    case OpKind::DropoutTrain: return cpu::runDropoutTrain<T>(*this);
    // (end of family norm)

    // ==== family conv: convolution and pooling ====
    case OpKind::ConvTranspose2d: return cpu::runConvTranspose2d<T>(*this);
    case OpKind::GlobalAvgPool: return cpu::runGlobalAvgPool<T>(*this);
    // (end of family conv)

    // ==== family shape: shape and data movement, batched matmul, attention ====
    case OpKind::Concat: return cpu::runConcat<T>(*this);
    case OpKind::Slice: return cpu::runSlice<T>(*this);
    case OpKind::SliceGrad: return cpu::runSliceGrad<T>(*this);
    case OpKind::Transpose: return cpu::runTranspose<T>(*this);
    case OpKind::Pad: return cpu::runPad<T>(*this);
    case OpKind::PadGrad: return cpu::runPadGrad<T>(*this);
    case OpKind::Gather: return cpu::runGather<T>(*this);
    case OpKind::GatherGrad: return cpu::runGatherGrad<T>(*this);
    case OpKind::Expand: return cpu::runExpand<T>(*this);
    case OpKind::Squeeze:
    case OpKind::Unsqueeze: return cpu::runView<T>(*this);
    case OpKind::BatchMatMul: return cpu::runBatchMatMul<T>(*this);
    case OpKind::CausalMask: return cpu::runCausalMask<T>(*this);
    // (end of family shape)

    // ==== family train: losses and optimizers ====
    case OpKind::SgdUpdate: return cpu::runSgdUpdate<T>(*this);
    case OpKind::SgdMomentumUpdate: return cpu::runSgdMomentumUpdate<T>(*this);
    case OpKind::AdamUpdate: return cpu::runAdamUpdate<T>(*this);
    case OpKind::LossScaleUpdate: return cpu::runLossScaleUpdate<T>(*this);
    case OpKind::BceWithLogits: return cpu::runBceWithLogits<T>(*this);
    case OpKind::BceWithLogitsGrad: return cpu::runBceWithLogitsGrad<T>(*this);
    case OpKind::OneHot: return cpu::runOneHot<T>(*this);
    case OpKind::GlobalSumSquares: return cpu::runGlobalSumSquares<T>(*this);
    case OpKind::AllReduce: return cpu::runAllReduce<T>(*this);
    // (end of family train)

    case OpKind::Input:
    case OpKind::Param:
    case OpKind::State:
    case OpKind::Output:
      return {};  // fed before the run / persistent / read after the run
    case OpKind::Constant: {
      const TensorLiteral& lit = attrs().getTensor("value");
      Tensor dst = exe_.valueView(n_.result());
      for (int64_t i = 0; i < dst.numElements(); ++i) dst.set(i, lit.values[size_t(i)]);
      return {};
    }
    case OpKind::Cast:
    case OpKind::Flatten:
    case OpKind::Reshape:
      copyConverted(exe_.valueView(n_.input(0)), exe_.valueView(n_.result()));
      return {};
    case OpKind::Normalize: {
      auto mean = attrs().getFloats("mean");
      auto stdv = attrs().getFloats("std");
      const Shape& s = outShape();
      int64_t channels = mean.size() == 1 ? 1 : s[1];
      int64_t inner = 1;
      for (size_t d = 2; d < s.size(); ++d) inner *= s[d];
      const T* x = in<T>(0);
      T* y = out<T>();
      for (int64_t i = 0; i < outCount(); ++i) {
        int64_t c = channels == 1 ? 0 : (i / inner) % channels;
        y[i] = T((x[i] - mean[size_t(c)]) / stdv[size_t(c)]);
      }
      return {};
    }
    case OpKind::Conv2d: {
      auto p = convParams(attrs(), inShape(0), inShape(1));
      cpu::conv2dForward<T>(p, in<T>(0), in<T>(1), n_.numInputs() == 3 ? in<T>(2) : nullptr, out<T>());
      return {};
    }
    case OpKind::Conv2dBackwardData: {
      auto p = convParams(attrs(), outShape(), inShape(1));
      cpu::conv2dBackwardData<T>(p, in<T>(0), in<T>(1), out<T>());
      return {};
    }
    case OpKind::Conv2dBackwardWeight: {
      auto p = convParams(attrs(), inShape(0), outShape());
      cpu::conv2dBackwardWeight<T>(p, in<T>(0), in<T>(1), out<T>());
      return {};
    }
    case OpKind::MaxPool2d:
      cpu::maxPool2dForward<T>(poolParams(attrs(), inShape(0)), in<T>(0), out<T>());
      return {};
    case OpKind::MaxPool2dGrad: {
      cpu::maxPool2dBackward<T>(poolParams(attrs(), inShape(0)), in<T>(0), in<T>(1), out<T>());
      if (attrs().getInt("relu_mask", 0) != 0) {  // relu_grad(x, dx): ReluGrad's formula
        const T* x = in<T>(0);
        T* dx = out<T>();
        for (int64_t i = 0, e = numElements(inShape(0)); i < e; ++i) dx[i] = x[i] > T(0) ? dx[i] : T(0);
      }
      return {};
    }
    case OpKind::AvgPool2d:
      cpu::avgPool2dForward<T>(poolParams(attrs(), inShape(0)), in<T>(0), out<T>());
      return {};
    case OpKind::AvgPool2dGrad:
      cpu::avgPool2dBackward<T>(poolParams(attrs(), outShape()), in<T>(0), out<T>());
      return {};
    case OpKind::Dense: {
      const Shape& x = inShape(0);
      const Shape& w = inShape(1);
      cpu::denseForward<T>(x[0], x[1], w[0], in<T>(0), in<T>(1), n_.numInputs() == 3 ? in<T>(2) : nullptr, out<T>());
      return {};
    }
    case OpKind::FusedConv2d:
    case OpKind::FusedConv2dPool: {
      // Fused on the CPU too: each image's convolution, then its activation (and pooling)
      // while its output is in cache, images in parallel; the bits of the unfused ops. The
      // pooled form never holds more than one image's conv output per thread.
      const bool pooled = n_.kind() == OpKind::FusedConv2dPool;
      const auto p = convParams(attrs(), inShape(0), inShape(1));
      cpu::Conv2dParams one = p;
      one.n = 1;
      cpu::Pool2dParams pool;
      if (pooled) {
        pool.n = 1, pool.c = p.o, pool.h = p.outH(), pool.w = p.outW();
        const auto& k = attrs().getInts("pool_kernel");
        const auto& s = attrs().getInts("pool_stride");
        const auto& pad = attrs().getInts("pool_padding");
        pool.kh = k[0], pool.kw = k[1], pool.strideH = s[0], pool.strideW = s[1];
        pool.padTop = pad[0], pool.padLeft = pad[1], pool.padBottom = pad[2], pool.padRight = pad[3];
        pool.ceilMode = attrs().getInt("pool_ceil_mode", 0) != 0;
      }
      const std::string& activation = attrs().getString("activation");
      const T* x = nullptr;
      Tensor seen;  // the input through input_expr (fuse-conv-prologue): converted, then the program
      if (const std::string& expr = attrs().getString("input_expr", ""); pooled && !expr.empty()) {
        auto program = parseElementwiseExpr(expr, 1);
        if (!program) return fail(n_.describe() + ": input_expr: " + program.error().message(), n_.loc());
        seen = Tensor(TensorType{n_.result()->type().dtype, inShape(0)});
        copyConverted(view(n_.input(0)), seen);
        runElementwiseProgram<T>(*program, {seen.data<T>()}, seen.numElements(), seen.data<T>());
        x = seen.data<T>();
      } else {
        x = in<T>(0);
      }
      const T* w = in<T>(1);
      const T* bias = n_.numInputs() >= 3 ? in<T>(2) : nullptr;
      T* y = out<T>();
      // output_expr (fuse-conv-epilogue): the program over the biased sum and operands 3..,
      // per image as its output is made (a residual add and relu).
      std::optional<std::vector<ExprInstr>> outputProgram;
      if (const std::string& expr = attrs().getString("output_expr", ""); !pooled && !expr.empty()) {
        auto program = parseElementwiseExpr(expr, int(n_.numInputs()) - 2);
        if (!program) return fail(n_.describe() + ": output_expr: " + program.error().message(), n_.loc());
        outputProgram = std::move(*program);
      }
      const int64_t xImage = p.c * p.h * p.w, convImage = p.o * p.outH() * p.outW();
      const int64_t yImage = pooled ? p.o * pool.outH() * pool.outW() : convImage;
      parallelFor(p.n, 1, [&](int64_t begin, int64_t end) {
        std::vector<T> scratch(size_t(cpu::conv2dScratchElems(one)));
        std::vector<T> conv(pooled ? size_t(convImage) : 0);
        for (int64_t n = begin; n < end; ++n) {
          T* c = pooled ? conv.data() : y + n * yImage;
          cpu::conv2dForward<T>(one, x + n * xImage, w, bias, c, scratch.empty() ? nullptr : scratch.data());
          if (outputProgram) {
            std::vector<const T*> ins = {c};
            for (size_t i = 3; i < n_.numInputs(); ++i) ins.push_back(in<T>(i) + n * convImage);
            runElementwiseProgram<T>(*outputProgram, ins, convImage, c);
            continue;
          }
          applyActivation<T>(activation, convImage, c);
          if (pooled) cpu::maxPool2dForward<T>(pool, c, y + n * yImage);
        }
      });
      return {};
    }
    case OpKind::FusedDense: {
      const Shape& x = inShape(0);
      const Shape& w = inShape(1);
      cpu::denseForward<T>(x[0], x[1], w[0], in<T>(0), in<T>(1), n_.numInputs() == 3 ? in<T>(2) : nullptr, out<T>());
      applyActivation<T>(attrs().getString("activation"), outCount(), out<T>());
      return {};
    }
    case OpKind::FusedMlp: {
      // The first layer into a buffer of its own, its activation, then the second layer: the
      // unfused ops' arithmetic, term for term.
      const Shape& x = inShape(0);
      const int64_t hidden = inShape(1)[0], outs = inShape(3)[0];
      std::vector<T> h(size_t(x[0] * hidden));
      cpu::denseForward<T>(x[0], x[1], hidden, in<T>(0), in<T>(1), in<T>(2), h.data());
      applyActivation<T>(attrs().getString("activation"), int64_t(h.size()), h.data());
      cpu::denseForward<T>(x[0], hidden, outs, h.data(), in<T>(3), in<T>(4), out<T>());
      return {};
    }
    case OpKind::FusedElementwise:
      return runFusedElementwise<T>();
    case OpKind::MatMul: {
      bool ta = attrs().getInt("transpose_a") != 0, tb = attrs().getInt("transpose_b") != 0;
      const Shape& a = inShape(0);
      int64_t k = ta ? a[0] : a[1];
      cpu::gemm<T>(ta, tb, outShape()[0], outShape()[1], k, T(1), in<T>(0), in<T>(1), T(0), out<T>());
      return {};
    }
    // Every elementwise op: its formula (ir/ops.def), with broadcasting.
#define SHOAL_OP(kind, text, minIn, maxIn, results, schema, shapeRule, traits, grad, doc)
#define SHOAL_ELEMENTWISE(kind, text, arity, schema, shapeRule, traits, formula, grad, doc) case OpKind::kind:
#include "ir/ops.def"
#undef SHOAL_ELEMENTWISE
#undef SHOAL_OP
      return runElementwise<T>();
    case OpKind::SumTo:
      cpu::reduceSumToShape<T>(inShape(0), in<T>(0), outShape(), out<T>());
      return {};
    case OpKind::Softmax:
    case OpKind::LogSoftmax:
    case OpKind::SoftmaxGrad:
    case OpKind::LogSoftmaxGrad:
      // Over any axis (runtime/cpu/ops_shape.cpp); the last axis is the row kernels of kernels.h.
      return cpu::runSoftmaxAxis<T>(*this);
    case OpKind::ArgMax: {
      const Shape& s = inShape(0);
      int64_t cols = s.back(), rows = numElements(s) / std::max<int64_t>(cols, 1);
      cpu::argmax<T>(rows, cols, in<T>(0), out<int64_t>());
      return {};
    }
    case OpKind::Accuracy: {
      int64_t rows = inShape(0)[0], cols = inShape(0)[1];
      return withLabels<T>(1, [&](auto* labels) -> Expected<void> {
        *out<float>() = rows ? float(cpu::accuracyCount<T>(rows, cols, in<T>(0), labels)) / float(rows) : 0.0f;
        return {};
      });
    }
    case OpKind::SoftmaxCrossEntropy: {
      int64_t rows = inShape(0)[0], cols = inShape(0)[1];
      return withLabels<T>(1, [&](auto* labels) -> Expected<void> {
        if (!cpu::softmaxCrossEntropy<T>(rows, cols, in<T>(0), labels, out<T>(), nullptr,
                                         T(attrs().getFloat("label_smoothing", 0.0))))
          return Unexpected(labelError<T>(rows, cols, labels));
        return {};
      });
    }
    case OpKind::SoftmaxCrossEntropyGrad: {
      int64_t rows = inShape(0)[0], cols = inShape(0)[1];
      T dloss = *in<T>(2);
      return withLabels<T>(1, [&](auto* labels) -> Expected<void> {
        if (!cpu::softmaxCrossEntropyBackward<T>(rows, cols, in<T>(0), labels, dloss, out<T>(),
                                                 T(attrs().getFloat("label_smoothing", 0.0))))
          return Unexpected(labelError<T>(rows, cols, labels));
        return {};
      });
    }
    case OpKind::Mse:
      cpu::mse<T>(n_.input(0)->type().numElements(), in<T>(0), in<T>(1), out<T>());
      return {};
    case OpKind::MseGrad:
      cpu::mseBackward<T>(outCount(), in<T>(0), in<T>(1), *in<T>(2), out<T>());
      return {};
  }
  return fail("unknown op");
}

// True for the arithmetic ops the shape rules allow on integers but whose kernels are float-only.
// (Elementwise ops whose shape rule accepts integers, sum_to and argmax.)
bool isIntegerArithmetic(const Node& n) {
  bool arithmetic = isElementwise(n.kind()) || n.kind() == OpKind::SumTo || n.kind() == OpKind::ArgMax;
  return arithmetic && n.numInputs() > 0 && !isFloat(n.input(0)->type().dtype);
}

// Stores an integer result computed in double: truncated toward zero like a C++ integer
// division, then wrapped to the element type (u8 200 + 100 = 44, as in PyTorch).
void storeInteger(Tensor& y, int64_t i, double v) {
  int64_t whole = int64_t(v);
  switch (y.dtype()) {
    case DType::I64: y.data<int64_t>()[i] = whole; return;
    case DType::I32: y.data<int32_t>()[i] = int32_t(whole); return;
    case DType::U8: y.data<uint8_t>()[i] = uint8_t(whole); return;
    case DType::Bool: y.data<bool>()[i] = v != 0; return;  // bool + bool is true unless both are false (PyTorch)
    default: y.set(i, v); return;  // floats (storage types never reach integer arithmetic)
  }
}

// Elementwise ops, sum_to and argmax over integer operands: evaluated in double on converted
// copies (exact below 2^53), then stored back as integers; a result that is not finite (an
// integer division by zero) is an error.
Expected<void> runIntegerArithmetic(CpuExecutable& exe, const Node& n) {
  std::vector<Tensor> in;
  for (Value* v : n.inputs()) in.push_back(exe.valueView(v).cast(DType::F64));
  Tensor y = exe.valueView(n.result());
  if (n.kind() == OpKind::ArgMax) {
    const Shape& s = in[0].shape();
    int64_t cols = s.back(), rows = numElements(s) / std::max<int64_t>(cols, 1);
    cpu::argmax<double>(rows, cols, in[0].data<double>(), y.data<int64_t>());
    return {};
  }
  Tensor r(DType::F64, y.shape());
  if (n.kind() == OpKind::SumTo) {
    cpu::reduceSumToShape<double>(in[0].shape(), in[0].data<double>(), r.shape(), r.data<double>());
  } else {
    std::vector<Shape> shapes;
    std::vector<const double*> operands;
    for (const Tensor& t : in) {
      shapes.push_back(t.shape());
      operands.push_back(t.data<double>());
    }
    std::vector<double> params = formulaParams(n);
    params.resize(kMaxFormulaParams, 0.0);
    cpu::elementwise<double>(n.kind(), r.shape(), shapes, operands, params.data(), r.data<double>());
  }
  for (int64_t i = 0; i < r.numElements(); ++i) {
    if (!std::isfinite(r.at(i)))
      return fail(n.describe() + ": integer division by zero", n.loc());  // the only way integers give inf/NaN
    storeInteger(y, i, r.at(i));
  }
  return {};
}

}  // namespace

Expected<std::unique_ptr<CpuExecutable>> CpuExecutable::create(Program program, int threads) {
  std::string conflict = checkMemoryPlan(*program.graph, program.plan);
  if (!conflict.empty()) return fail("internal error: memory plan is unsound: " + conflict);
  std::unique_ptr<CpuExecutable> exe(new CpuExecutable(std::move(program), threads));
  if (const char* perturb = std::getenv("SHOAL_TEST_PERTURB_OP"); perturb && *perturb) {
    std::string spec = perturb;
    size_t colon = spec.find(':');
    exe->setPerturbation(spec.substr(0, colon), colon == std::string::npos ? 1e-3 : std::atof(spec.c_str() + colon + 1));
  }
  const MemoryPlan& plan = exe->program_.plan;
  exe->arena_ = allocateRegion(plan.arenaBytes);
  exe->persistentRegion_ = allocateRegion(plan.persistentBytes);
  if (!exe->arena_ || !exe->persistentRegion_)
    return fail(fmt::format("out of memory: cannot allocate the program's {} bytes (arena {} + persistent {})",
                            plan.totalBytes(), plan.arenaBytes, plan.persistentBytes));
  exe->writesParameters_ = updatesParameters(exe->program_);
  if (envFlagDefaultOn("SHOAL_CPU_PREPARE")) {
    exe->preparedNodes_ = parameterDerivedNodes(exe->program_);
    try {
      for (const Node* n : exe->preparedNodes_)
        for (size_t r = 0; r < n->numResults(); ++r) exe->prepared_.emplace(n->result(r), Tensor(n->result(r)->type()));
    } catch (const std::bad_alloc&) {
      return fail("out of memory: cannot allocate the values computed from the parameters alone");
    }
  }
  return exe;
}

Tensor CpuExecutable::valueView(const Value* v) {
  if (!prepared_.empty())
    if (auto it = prepared_.find(v); it != prepared_.end()) return Tensor::view(v->type(), it->second.raw());
  const BufferAssignment& a = program_.plan.at(v);
  char* base = static_cast<char*>(a.persistent ? persistentRegion_.get() : arena_.get());
  return Tensor::view(v->type(), base + a.offset);
}

void CpuExecutable::initializeParameters(uint64_t seed) {
  for (Node* n : graph().nodes()) {
    if (!isPersistentSource(n->kind())) continue;
    Tensor t = valueView(n->result());
    initializeTensor(t, n->attrs().getString("init", "zeros"), n->result()->name(), seed, n->attrs().getInt("fan_in", 0),
                     n->attrs().getInt("fan_out", 0));
  }
  ++*generation_;
}

TensorMap CpuExecutable::readPersistent() {
  TensorMap out;
  for (auto& [name, t] : persistentViews()) out[name] = t.clone();
  return out;
}

Expected<void> CpuExecutable::adoptPersistent(Executable& other) {
  auto* cpu = dynamic_cast<CpuExecutable*>(&other);
  if (!cpu) return fail("internal error: cannot share parameters between a CPU and a GPU program");
  persistentRegion_ = cpu->persistentRegion_;
  generation_ = cpu->generation_;
  return {};
}

TensorMap CpuExecutable::persistentViews() {
  TensorMap out;
  for (Node* n : graph().nodes())
    if (isPersistentSource(n->kind())) out[n->result()->name()] = valueView(n->result());
  return out;
}

Expected<void> CpuExecutable::writePersistent(const TensorMap& values) {
  ++*generation_;  // before any copy: even a write that fails halfway changed some
  TensorMap mine = persistentViews();
  for (const auto& [name, t] : values) {
    auto it = mine.find(name);
    if (it == mine.end()) continue;
    if (it->second.shape() != t.shape())
      return fail(fmt::format("tensor '{}' has shape {}, the model expects {}", name, shapeString(t.shape()),
                              shapeString(it->second.shape())));
    if (t.isOnDevice())
      return fail(fmt::format("tensor '{}' is in GPU memory (Tensor::onDevice); the CPU backend reads host tensors only",
                              name));
    copyConverted(t, it->second);
  }
  return {};
}

Expected<TensorMap> CpuExecutable::run(const TensorMap& inputs) {
  cpu::useCpuThreads(threads_);
  for (Node* n : graph().inputNodes()) {
    const std::string& name = n->attrs().getString("name");
    auto it = inputs.find(name);
    if (it == inputs.end()) return fail(fmt::format("missing input '{}' ({})", name, n->result()->type().str()), n->loc());
    const TensorType& want = n->result()->type();
    if (it->second.shape() != want.shape)
      return fail(fmt::format("input '{}' expects {}, got {}", name, want.str(), it->second.type().str()), n->loc());
    if (it->second.isOnDevice())
      return fail(fmt::format("input '{}' is in GPU memory (Tensor::onDevice); the CPU backend reads host tensors only",
                              name),
                  n->loc());
    copyConverted(it->second, valueView(n->result()));
  }
  // The values computed from the parameters alone: again only when they changed.
  const bool stale =
      !preparedNodes_.empty() && (preparedFor_ != persistentRegion_.get() || preparedGeneration_ != *generation_);
  const uint64_t generation = *generation_;
  if (writesParameters_) ++*generation_;  // this run updates them
  for (Node* n : graph().nodes()) {
    if (!stale && !preparedNodes_.empty() && preparedNodes_.contains(n)) continue;
    auto start = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    auto ok = runNode(*n);
    if (!ok) return Unexpected(ok.error());
    if (!perturbOp_.empty() && n->opName() == perturbOp_) perturbResults(*n);
    if (profiling_) {
      auto& [seconds, calls] = profile_[std::string(n->opName())];
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ++calls;
    }
  }
  if (stale) preparedFor_ = persistentRegion_.get(), preparedGeneration_ = generation;
  TensorMap outputs;
  for (Node* n : graph().outputNodes()) outputs[n->attrs().getString("name")] = valueView(n->input(0)).clone();
  return outputs;
}

Expected<void> CpuExecutable::runNode(const Node& n) {
  NodeRunner runner(*this, n);
  try {
    return isIntegerArithmetic(n)            ? runIntegerArithmetic(*this, n)
           : computeType(n) == DType::F64 ? runner.run<double>()
                                           : runner.run<float>();
  } catch (const std::bad_alloc&) {
    // A kernel's own scratch (conv's im2col matrix, a fused conv's intermediate) is not in
    // the memory plan; when it cannot be allocated, say where.
    return fail(fmt::format("{}: out of memory for the CPU kernel's scratch buffers", n.describe()), n.loc());
  } catch (const std::length_error&) {
    return fail(fmt::format("{}: out of memory for the CPU kernel's scratch buffers", n.describe()), n.loc());
  }
}

void CpuExecutable::perturbResults(const Node& n) {
  std::vector<const Value*> written;
  for (size_t r = 0; r < n.numResults(); ++r) written.push_back(n.result(r));
  for (int op : mutatedOperands(n.kind()))
    if (size_t(op) < n.numInputs()) written.push_back(n.input(size_t(op)));
  for (const Value* v : written) {
    Tensor y = valueView(v);
    if (!isFloat(y.dtype())) continue;
    for (int64_t i = 0; i < y.numElements(); ++i) y.set(i, y.at(i) * (1 + perturbAmount_) + perturbAmount_);
  }
}

std::string CpuExecutable::profileSummary() const { return profileTable(profile_, 1); }

Expected<TensorMap> evaluateGraph(const Graph& g, const TensorMap& inputs, TensorMap& persistent, uint64_t seed) {
  CompileOptions opts;
  opts.disabledPasses = {"fold-constants", "dce"};
  opts.verifyEach = true;
  auto program = compileProgram(g.clone(), opts);
  if (!program) return Unexpected(program.error());
  auto exe = CpuExecutable::create(std::move(*program));
  if (!exe) return Unexpected(exe.error());
  (*exe)->initializeParameters(seed);
  auto ok = (*exe)->writePersistent(persistent);
  if (!ok) return Unexpected(ok.error());
  auto out = (*exe)->run(inputs);
  if (!out) return Unexpected(out.error());
  for (auto& [name, t] : (*exe)->readPersistent()) persistent[name] = t;
  return out;
}

}  // namespace shoal
