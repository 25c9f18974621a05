// Interpreter cases of the train family (see tests/runtime/interpreter_cases.h): optimizer
// updates over several runs (PyTorch's update rules, worked by hand), binary cross-entropy,
// one-hot targets, the squared global norm and the clipping factor.
#include <limits>

#include "runtime/interpreter_cases.h"

namespace shoal::test {
namespace {

Tensor f64Scalar(double v) { return Tensor::fromDoubles(DType::F64, {}, std::vector<double>{v}); }

SHOAL_INTERPRETER_CASES(SgdUpdate, OpKind::SgdUpdate) {
  {
    // w -= lr·g: lr 0.1 then 0.2 (the rate is an operand, read every run):
    // [1,-2,0.5] - 0.1·[0.5,1,-1] = [0.95,-2.1,0.6]; - 0.2·g = [0.85,-2.3,0.8].
    CaseBuilder b("plain, the rate changing between runs", dt);
    b.op(kind, {b.param("w", {3}, {1, -2, 0.5}), b.fin("g", {3}, {0.5, 1, -1}), b.input("lr", {DType::F64, {}}, {0.1})},
         {}, "sgd");
    b.expect("w", {3}, {0.95, -2.1, 0.6});
    b.nextRun({{"lr", f64Scalar(0.2)}});
    b.expect("w", {3}, {0.85, -2.3, 0.8});
    add(b);
  }
  {
    // Weight decay 0.1 (L2), lr 0.5, g = 0: w -= 0.5·0.1·w, i.e. w *= 0.95: 2 -> 1.9 -> 1.805.
    CaseBuilder b("weight decay, two steps", dt);
    b.op(kind, {b.param("w", {1}, {2}), b.fin("g", {1}, {0}), b.input("lr", {DType::F64, {}}, {0.5})},
         attrs({{"weight_decay", 0.1}}), "sgd");
    b.expect("w", {1}, {1.9});
    b.nextRun({});
    b.expect("w", {1}, {1.805});
    add(b);
  }
  {
    // Clipped: g·grad_scale = 2·0.5 = 1, w = 1 - 0.1·1 = 0.9.
    CaseBuilder b("grad_scale", dt);
    b.op(kind,
         {b.param("w", {1}, {1}), b.fin("g", {1}, {2}), b.input("lr", {DType::F64, {}}, {0.1}), b.fin("gs", {}, {0.5})},
         {}, "sgd");
    b.expect("w", {1}, {0.9});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(SgdMomentumUpdate, OpKind::SgdMomentumUpdate) {
  {
    // Momentum 0.9, lr 0.1, v from 0, w = [1,1,1]:
    // step 1, g = [1,-2,0.5]: v = g; w = 1 - 0.1 v = [0.9, 1.2, 0.95].
    // step 2, g = [0.5,0,-1]: v = 0.9 [1,-2,0.5] + g = [1.4, -1.8, -0.55];
    //   w = [0.9 - 0.14, 1.2 + 0.18, 0.95 + 0.055] = [0.76, 1.38, 1.005].
    CaseBuilder b("momentum, two steps", dt);
    b.op(kind,
         {b.param("w", {3}, {1, 1, 1}), b.fin("g", {3}, {1, -2, 0.5}), b.state("w.velocity", {3}),
          b.input("lr", {DType::F64, {}}, {0.1})},
         attrs({{"momentum", 0.9}}), "sgd");
    b.expect("w", {3}, {0.9, 1.2, 0.95});
    b.expect("w.velocity", {3}, {1, -2, 0.5});
    b.nextRun({{"g", b.tensor({3}, {0.5, 0, -1})}});
    b.expect("w", {3}, {0.76, 1.38, 1.005});
    b.expect("w.velocity", {3}, {1.4, -1.8, -0.55});
    add(b);
  }
  {
    // Nesterov (PyTorch: buf = μ buf + g; g = g + μ buf; w -= lr g), μ 0.9, lr 0.1, w = 1:
    // step 1, g = 1: buf = 1, w -= 0.1 (1 + 0.9) -> 0.81;
    // step 2, g = 0.5: buf = 0.9 + 0.5 = 1.4, w -= 0.1 (0.5 + 1.26) -> 0.634.
    CaseBuilder b("nesterov, two steps", dt);
    b.op(kind,
         {b.param("w", {1}, {1}), b.fin("g", {1}, {1}), b.state("w.velocity", {1}),
          b.input("lr", {DType::F64, {}}, {0.1})},
         attrs({{"momentum", 0.9}, {"nesterov", int64_t(1)}}), "sgd");
    b.expect("w", {1}, {0.81});
    b.expect("w.velocity", {1}, {1});
    b.nextRun({{"g", b.tensor({1}, {0.5})}});
    b.expect("w", {1}, {0.634});
    b.expect("w.velocity", {1}, {1.4});
    add(b);
  }
  {
    // Clip factor, then L2 decay: g' = 1·0.5 + 0.1·2 = 0.7; buf = 0.7;
    // Nesterov μ 0.5: w = 2 - 0.1 (0.7 + 0.35) = 1.895.
    CaseBuilder b("grad_scale and weight decay", dt);
    b.op(kind,
         {b.param("w", {1}, {2}), b.fin("g", {1}, {1}), b.state("w.velocity", {1}),
          b.input("lr", {DType::F64, {}}, {0.1}), b.fin("gs", {}, {0.5})},
         attrs({{"momentum", 0.5}, {"weight_decay", 0.1}, {"nesterov", int64_t(1)}}), "sgd");
    b.expect("w", {1}, {1.895});
    b.expect("w.velocity", {1}, {0.7});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(AdamUpdate, OpKind::AdamUpdate) {
  {
    // lr 0.1, β1 0.9, β2 0.999, eps 1e-7; w = [1,-1], m = v = 0.
    // Step 1, g = [0.5,-2]: m = 0.1 g = [0.05,-0.2], v = 0.001 g² = [0.00025, 0.004];
    //   m̂ = m/0.1 = g, v̂ = v/0.001 = g², so w -= 0.1·g/(|g| + 1e-7):
    //   w0 = 1 - 0.1·0.5/0.5000001 = 0.900000019999996, w1 = -1 + 0.1·2/2.0000001 = -0.900000005.
    // Step 2, g = [0.5, 1]: m = 0.9 m + 0.1 g = [0.095, -0.08]; v = 0.999 v + 0.001 g² =
    //   [0.00049975, 0.004996]; bias corrections 1-0.9² = 0.19, 1-0.999² = 0.001999:
    //   m̂0 = 0.5, v̂0 = 0.25 -> w0 = 0.900000019999996 - 0.099999980000004 = 0.800000039999992;
    //   m̂1 = -0.08/0.19 = -0.421052631578947, v̂1 = 0.004996/0.001999 = 2.499249624812406,
    //   √v̂1 = 1.580901522806668 -> w1 = -0.900000005 + 0.1·0.421052631578947/1.580901622806668
    //   = -0.873366302718676.
    CaseBuilder b("two steps", dt);
    b.op(kind,
         {b.param("w", {2}, {1, -1}), b.fin("g", {2}, {0.5, -2}), b.state("w.adam_m", {2}), b.state("w.adam_v", {2}),
          b.input("step", {DType::I64, {}}, {1}), b.input("lr", {DType::F64, {}}, {0.1})},
         {}, "adam");
    b.expect("w", {2}, {0.900000019999996, -0.9000000049999998});
    b.expect("w.adam_m", {2}, {0.05, -0.2});
    b.expect("w.adam_v", {2}, {0.00025, 0.004});
    b.nextRun({{"g", b.tensor({2}, {0.5, 1})}, {"step", Tensor::fromDoubles(DType::I64, {}, std::vector<double>{2})}});
    b.expect("w", {2}, {0.8000000399999927, -0.8733663027186758});
    b.expect("w.adam_m", {2}, {0.095, -0.08});
    b.expect("w.adam_v", {2}, {0.00049975, 0.004996});
    add(b);
  }
  {
    // AdamW (torch.optim.AdamW: w *= 1 - lr·wd, then Adam without L2), lr 0.1, wd 0.5, eps 1e-8:
    // step 1, g = 0.5: w = 0.95, then -= 0.1·0.5/(0.5 + 1e-8) -> 0.8500000019999999;
    // step 2, g = -1: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975; w = 0.95 w,
    //   then -= (0.1/0.19)·m / (sqrt(v/0.001999) + 1e-8) -> 0.8441103541405653.
    CaseBuilder b("AdamW, two steps", dt);
    b.op(kind,
         {b.param("w", {1}, {1}), b.fin("g", {1}, {0.5}), b.state("w.m", {1}), b.state("w.v", {1}),
          b.input("step", {DType::F32, {}}, {1}), b.input("lr", {DType::F64, {}}, {0.1})},
         attrs({{"eps", 1e-8}, {"weight_decay", 0.5}, {"decoupled_weight_decay", int64_t(1)}}), "adamw");
    b.expect("w", {1}, {0.8500000019999999});
    b.expect("w.m", {1}, {0.05});
    b.nextRun({{"g", b.tensor({1}, {-1})}, {"step", Tensor::fromDoubles(DType::F32, {}, std::vector<double>{2})}});
    b.expect("w", {1}, {0.8441103541405653});
    b.expect("w.m", {1}, {-0.055});
    b.expect("w.v", {1}, {0.00124975});
    add(b);
  }
  {
    // Clip factor before L2 decay: g' = 2·0.25 + 1·1 = 1.5, so m = 0.15, v = 0.00225 and
    // w = 1 - 0.1·1.5/(1.5 + 1e-7) = 0.9000000066666662.
    CaseBuilder b("grad_scale and L2 weight decay", dt);
    b.op(kind,
         {b.param("w", {1}, {1}), b.fin("g", {1}, {2}), b.state("w.m", {1}), b.state("w.v", {1}),
          b.input("step", {DType::F32, {}}, {1}), b.input("lr", {DType::F64, {}}, {0.1}), b.fin("gs", {}, {0.25})},
         attrs({{"weight_decay", 1.0}}), "adam");
    b.expect("w", {1}, {0.9000000066666662});
    b.expect("w.m", {1}, {0.15});
    b.expect("w.v", {1}, {0.00225});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BceWithLogits, OpKind::BceWithLogits) {
  {
    // Per element max(x,0) - x t + log(1 + e^-|x|): x 0, t 1: ln 2; x ln 3, t 1: -ln σ = ln(4/3);
    // x -ln 3, t 0: -ln(1 - σ) = ln(4/3); x 100, t 0.5: 100 - 50 + ~e^-100 = 50 (no overflow).
    CaseBuilder b("stable, mean over elements", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2}, {0, ln3, -ln3, 100}), b.fin("t", {2, 2}, {1, 1, 0, 0.5})}, {}, "loss"),
             "loss");
    b.expect("loss", {}, {(ln2 + 2 * std::log(4.0 / 3.0) + 50) / 4});
    add(b);
  }
  {
    // x -100, t 1: 0 + 100 + log1p(e^-100) = 100; x 100, t 1: 100 - 100 + ~0 = 0.
    CaseBuilder b("large logits", dt);
    b.output(b.op(kind, {b.fin("x", {2}, {-100, 100}), b.fin("t", {2}, {1, 1})}, {}, "loss"), "loss");
    b.expect("loss", {}, {50});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(BceWithLogitsGrad, OpKind::BceWithLogitsGrad) {
  {
    // dloss (σ(x) - t)/n with dloss 2, n 4: σ = [0.5, 0.75, 0.25, 1]; σ - t = [-0.5, -0.25, 0.25, 0.5].
    CaseBuilder b("sigmoid minus target", dt);
    b.output(
        b.op(kind, {b.fin("x", {4}, {0, ln3, -ln3, 100}), b.fin("t", {4}, {1, 1, 0, 0.5}), b.fin("dloss", {}, {2})}, {},
             "dx"),
        "dx");
    b.expect("dx", {4}, {-0.25, -0.125, 0.125, 0.25});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(OneHot, OpKind::OneHot) {
  const Attrs a = attrs({{"classes", int64_t(3)}, {"dtype", std::string(dtypeName(dt))}});
  {
    CaseBuilder b("i64 labels", dt);
    b.output(b.op(kind, {b.input("labels", {DType::I64, {3}}, {2, 0, 1})}, a, "hot"), "hot");
    b.expect("hot", {3, 3}, {0, 0, 1, 1, 0, 0, 0, 1, 0});
    add(b);
  }
  {
    CaseBuilder b("u8 labels", dt);
    b.output(b.op(kind, {b.input("labels", {DType::U8, {2}}, {1, 1})}, a, "hot"), "hot");
    b.expect("hot", {2, 3}, {0, 1, 0, 0, 1, 0});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(GlobalSumSquares, OpKind::GlobalSumSquares) {
  {
    // 1 + 4 + 9 + 16 = 30 over two operands of different shapes.
    CaseBuilder b("two operands", dt);
    b.output(b.op(kind, {b.fin("a", {2}, {1, 2}), b.fin("b", {2, 1}, {3, -4})}, {}, "s"), "s");
    b.expect("s", {}, {30});
    add(b);
  }
  {
    CaseBuilder b("one operand", dt);
    b.output(b.op(kind, {b.fin("a", {2}, {0.5, -0.5})}, {}, "s"), "s");
    b.expect("s", {}, {0.5});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(ClipGradCoef, OpKind::ClipGradCoef) {
  {
    // min(1, max_norm / (sqrt(s) + 1e-6)), max_norm 1: s 4 -> 1/2.000001; s 0.25 -> 1/0.500001 > 1
    // -> 1; s 0 -> 1.
    CaseBuilder b("max_norm 1", dt);
    b.output(b.op(kind, {b.fin("s", {3}, {4, 0.25, 0})}, attrs({{"max_norm", 1.0}}), "c"), "c");
    b.expect("c", {3}, {0.499999750000125, 1, 1});
    add(b);
  }
  {
    // max_norm 5, s 100: 5 / 10.000001.
    CaseBuilder b("max_norm 5", dt);
    b.output(b.op(kind, {b.fin("s", {}, {100})}, attrs({{"max_norm", 5.0}}), "c"), "c");
    b.expect("c", {}, {0.499999950000005});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(LossScale, OpKind::LossScale) {
  {
    // 65536 · 2^e: e 0, -1, 3 -> 65536, 32768, 524288.
    CaseBuilder b("the default initial scale", dt);
    b.output(b.op(kind, {b.fin("e", {3}, {0, -1, 3})}, {}, "s"), "s");
    b.expect("s", {3}, {65536, 32768, 524288});
    add(b);
  }
  {
    CaseBuilder b("initial scale 4", dt);
    b.output(b.op(kind, {b.fin("e", {}, {2})}, attrs({{"init_scale", 4.0}}), "s"), "s");
    b.expect("s", {}, {16});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(UnscaleCoef, OpKind::UnscaleCoef) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  {
    // No clipping: 1/scale where the squared norm is finite, 0 (skip) where it is not.
    CaseBuilder b("overflow or 1/scale", dt);
    b.output(b.op(kind, {b.fin("s", {3}, {4, inf, nan}), b.fin("scale", {}, {2})}, {}, "c"), "c");
    b.expect("c", {3}, {0.5, 0, 0});
    add(b);
  }
  {
    // max_norm 1: scaled squared norm 16 at scale 2 is the norm 2: 1 / (2 + 1e-6) / 2; scaled
    // 0.25 at scale 4 is the norm 0.125 (no clipping): 1/4.
    CaseBuilder b("with clipping", dt);
    b.output(b.op(kind, {b.fin("s", {2}, {16, 0.25}), b.fin("scale", {2}, {2, 4})}, attrs({{"max_norm", 1.0}}), "c"),
             "c");
    b.expect("c", {2}, {0.24999987500006250, 0.25});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(LossScaleUpdate, OpKind::LossScaleUpdate) {
  const double inf = std::numeric_limits<double>::infinity();
  {
    // Interval 3: two good steps count, the third doubles the scale (e + 1) and restarts the count.
    const std::vector<double> zero{0};
    CaseBuilder b("growth after the interval", dt);
    b.op(kind, {b.state("e", {}, &zero), b.state("good", {}, &zero), b.input("s", {dt, {}}, {1.5})},
         attrs({{"growth_interval", int64_t(3)}}), "update");
    b.expect("e", {}, {0});
    b.expect("good", {}, {1});
    b.nextRun({});
    b.expect("good", {}, {2});
    b.nextRun({});
    b.expect("e", {}, {1});
    b.expect("good", {}, {0});
    add(b);
  }
  {
    // An overflow halves the scale (e - 1) and restarts the count.
    const std::vector<double> e{2}, good{5};
    CaseBuilder b("overflow", dt);
    b.op(kind, {b.state("e", {}, &e), b.state("good", {}, &good), b.input("s", {dt, {}}, {inf})}, {}, "update");
    b.expect("e", {}, {1});
    b.expect("good", {}, {0});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(AllReduce, OpKind::AllReduce) {
  // Over one rank (no communicator) the sum and the mean are the operand itself; several
  // ranks: tests/runtime/data_parallel_test.cpp.
  for (const char* op : {"sum", "mean"}) {
    CaseBuilder b(std::string(op) + " over one rank", dt);
    b.output(b.op(kind, {b.fin("g", {2, 2}, {1.5, -2, 0, 4})}, attrs({{"op", std::string(op)}, {"ranks", int64_t(1)}}),
                  "avg"),
             "avg");
    b.expect("avg", {2, 2}, {1.5, -2, 0, 4});
    add(b);
  }
}

}  // namespace
}  // namespace shoal::test
