// ONNX's recurrent layers — RNN, GRU, LSTM — unrolled over their (static) sequence length into
// shoal's dense products and elementwise ops, so they run, fuse and differentiate like any other
// graph. Per direction: one product projects the whole input sequence (x W^T + biases, as a
// [T·B, gates·H] dense), then each step adds h R^T and applies the gates. A long sequence makes
// a graph of ~10-20 nodes a step.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/onnx_ops_families.h"

namespace shoal::onnx_import {

namespace {

// The longest sequence unrolled: ~20 nodes a step make ~20,000 nodes here, already minutes of
// NVRTC; a longer one is refused by name rather than left to exhaust memory or time.
constexpr int64_t kMaxUnrolledSteps = 1024;

enum class Cell : uint8_t { Rnn, Gru, Lstm };

// One activation of the `activations` attribute, with the alpha/beta it consumed.
struct Activation {
  std::string name;  // lower case
  double alpha = 0, beta = 0;
};

std::string lowerCase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return s;
}

// The activations a direction applies (f; f, g; f, g, h), alpha and beta consumed in the
// attribute's order by the functions that take them (onnxruntime's reading of the spec), the
// defaults those of the ONNX ops of the same name.
std::vector<std::vector<Activation>> readActivations(NodeContext& c, Cell cell, int64_t dirs) {
  std::vector<std::string> dflt;
  if (cell == Cell::Rnn) dflt = {"Tanh"};
  if (cell == Cell::Gru) dflt = {"Sigmoid", "Tanh"};
  if (cell == Cell::Lstm) dflt = {"Sigmoid", "Tanh", "Tanh"};
  size_t per = dflt.size();
  std::vector<std::string> names = c.attrStrings("activations", std::vector<std::string>{});
  if (names.empty()) {
    for (int64_t d = 0; d < dirs; ++d) names.insert(names.end(), dflt.begin(), dflt.end());
  } else if (names.size() == per && dirs == 2) {
    std::vector<std::string> twice = names;
    names.insert(names.end(), twice.begin(), twice.end());
  } else if (names.size() != per * size_t(dirs)) {
    c.invalid(fmt::format("activations has {} entries, expected {} ({} per direction)", names.size(),
                          per * size_t(dirs), per));
  }
  std::vector<double> alphas = c.attrFloats("activation_alpha", std::vector<double>{});
  std::vector<double> betas = c.attrFloats("activation_beta", std::vector<double>{});
  size_t ai = 0, bi = 0;
  auto next = [&](std::vector<double>& list, size_t& i, double d) { return i < list.size() ? list[i++] : d; };
  std::vector<std::vector<Activation>> out(static_cast<size_t>(dirs));
  for (size_t k = 0; k < names.size(); ++k) {
    Activation a{lowerCase(names[k])};
    if (a.name == "leakyrelu") a.alpha = next(alphas, ai, 0.01);
    else if (a.name == "thresholdedrelu" || a.name == "elu") a.alpha = next(alphas, ai, 1.0);
    else if (a.name == "hardsigmoid") {
      a.alpha = next(alphas, ai, 0.2);
      a.beta = next(betas, bi, 0.5);
    } else if (a.name == "affine" || a.name == "scaledtanh") {
      a.alpha = next(alphas, ai, 1.0);
      a.beta = next(betas, bi, a.name == "affine" ? 0.0 : 1.0);
    } else if (a.name != "relu" && a.name != "tanh" && a.name != "sigmoid" && a.name != "softsign" &&
               a.name != "softplus") {
      c.unsupported(fmt::format("activation '{}'", names[k]));
    }
    out[k / per].push_back(a);
  }
  if (ai != alphas.size() || bi != betas.size())
    c.invalid(fmt::format("activation_alpha/activation_beta have {}/{} values, the activations take {}/{}",
                          alphas.size(), betas.size(), ai, bi));
  return out;
}

class Unroller {
 public:
  Unroller(NodeContext& c, Cell cell) : c_(c), cell_(cell) {}

  void lower() {
    c_.requireFloat(0);
    dt_ = c_.dtype(0);
    gates_ = cell_ == Cell::Rnn ? 1 : cell_ == Cell::Gru ? 3 : 4;
    layout_ = c_.attrInt("layout", 0);
    if (layout_ != 0 && layout_ != 1) c_.invalid(fmt::format("layout {} (0 or 1)", layout_));
    std::string direction = c_.attrString("direction", "forward");
    if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
      c_.invalid(fmt::format("direction '{}'", direction));
    dirs_ = direction == "bidirectional" ? 2 : 1;
    if (c_.rank(0) != 3 || c_.rank(1) != 3 || c_.rank(2) != 3)
      c_.invalid(fmt::format("X, W and R must have rank 3, got {}, {} and {}", c_.type(0).str(), c_.type(1).str(),
                             c_.type(2).str()));
    const Shape& xs = c_.shape(0);
    steps_ = layout_ == 0 ? xs[0] : xs[1];
    batch_ = layout_ == 0 ? xs[1] : xs[0];
    inputSize_ = xs[2];
    if (steps_ > kMaxUnrolledSteps)
      c_.unsupported(fmt::format("a sequence of {} steps (shoal unrolls recurrent layers, at most {} steps)", steps_,
                                 kMaxUnrolledSteps));
    hidden_ = c_.attrInt("hidden_size", c_.shape(2)[2]);
    expectShape(1, {dirs_, gates_ * hidden_, inputSize_}, "W");
    expectShape(2, {dirs_, gates_ * hidden_, hidden_}, "R");
    if (c_.has(3)) expectShape(3, {dirs_, 2 * gates_ * hidden_}, "B");
    Shape stateShape = layout_ == 0 ? Shape{dirs_, batch_, hidden_} : Shape{batch_, dirs_, hidden_};
    if (c_.has(5)) expectShape(5, stateShape, "initial_h");
    if (cell_ == Cell::Lstm) {
      if (c_.has(6)) expectShape(6, stateShape, "initial_c");
      if (c_.has(7)) expectShape(7, {dirs_, 3 * hidden_}, "P");
      inputForget_ = c_.attrInt("input_forget", 0) != 0;
    }
    if (cell_ == Cell::Gru) linearBeforeReset_ = c_.attrInt("linear_before_reset", 0) != 0;
    if (c_.hasAttr("clip")) {
      clip_ = c_.attrFloat("clip");
      if (!(*clip_ > 0)) c_.invalid(fmt::format("clip {} (must be positive)", *clip_));
    }
    activations_ = readActivations(c_, cell_, dirs_);
    readSequenceLengths(direction);

    // The input as [T·B, I], time-major.
    Value* x = c_.value(0);
    if (layout_ == 1) x = transposeOp(c_, x, {1, 0, 2}, "time_major");
    x2d_ = c_.reshape(x, {steps_ * batch_, inputSize_}, "rows");
    Value* h0 = c_.has(5) ? c_.value(5) : nullptr;
    Value* c0 = cell_ == Cell::Lstm && c_.has(6) ? c_.value(6) : nullptr;
    if (layout_ == 1) {
      if (h0) h0 = transposeOp(c_, h0, {1, 0, 2}, "initial_h_dbh");
      if (c0) c0 = transposeOp(c_, c0, {1, 0, 2}, "initial_c_dbh");
    }

    std::vector<std::vector<Value*>> ys(static_cast<size_t>(dirs_));  // by direction, by time index
    std::vector<Value*> lastH, lastC;
    for (int64_t d = 0; d < dirs_; ++d) {
      bool reverse = direction == "reverse" || d == 1;
      Direction dir = prepare(d, h0, c0);
      ys[size_t(d)].assign(size_t(steps_), nullptr);
      for (int64_t s = 0; s < steps_; ++s) {
        int64_t t = reverse ? steps_ - 1 - s : s;
        Value* y = step(dir, d, t);
        ys[size_t(d)][size_t(t)] = y;
      }
      if (lengths_) {
        // An empty sequence's final state is zeros, not its initial state (onnxruntime).
        Value* any = c_.reshape(op(OpKind::Less, {c_.scalar(0, c_.dtype(4), "len_zero"), lengths_}, "nonempty"),
                                {batch_, 1}, "nonempty_rows");
        Value* zero = c_.scalar(0, dt_, "state_zero");
        dir.h = op(OpKind::Where, {any, dir.h, zero}, fmt::format("d{}_final_h", d));
        if (dir.c) dir.c = op(OpKind::Where, {any, dir.c, zero}, fmt::format("d{}_final_c", d));
      }
      lastH.push_back(dir.h);
      lastC.push_back(dir.c);
    }

    if (c_.hasOutput(0)) c_.setOutput(0, sequenceOutput(ys));
    if (c_.hasOutput(1)) c_.setOutput(1, stateOutput(lastH, "Y_h"));
    if (cell_ == Cell::Lstm && c_.hasOutput(2)) c_.setOutput(2, stateOutput(lastC, "Y_c"));
  }

 private:
  // One direction's weights, sliced once, and its running state.
  struct Direction {
    Value* xProj = nullptr;  // [T·B, G·H]: x W^T + the biases added before the gates
    Value* r = nullptr;      // [G·H, H] (GRU without linear_before_reset: the z and r rows)
    Value* rHidden = nullptr;  // GRU without linear_before_reset: the h rows [H, H]
    Value* rBias = nullptr;    // GRU with linear_before_reset: [G·H], zero but for Rb_h
    Value* peephole = nullptr;  // LSTM: [3·H] (i, o, f)
    Value* h = nullptr;         // [B, H]
    Value* c = nullptr;         // LSTM: [B, H]
  };

  void expectShape(size_t i, const Shape& want, const char* what) {
    if (c_.shape(i) != want)
      c_.invalid(fmt::format("{} is {}, expected {}", what, c_.type(i).str(), TensorType{dt_, want}.str()));
    if (c_.dtype(i) != dt_) c_.invalid(fmt::format("{} is {}, X is {}", what, c_.type(i).str(), c_.type(0).str()));
  }

  // sequence_lens: absent, or every length T, changes nothing; shorter sequences keep their
  // last state past their end and put zeros into Y, and an empty one ends in a zero state
  // (onnxruntime's semantics) — forward only: a reverse pass would start each sequence at its
  // own last element.
  void readSequenceLengths(const std::string& direction) {
    if (!c_.has(4)) return;
    if (c_.shape(4) != Shape{batch_})
      c_.invalid(fmt::format("sequence_lens is {}, expected [{}]", c_.type(4).str(), batch_));
    if (const Tensor* known = c_.known(4)) {
      bool full = true;
      for (int64_t b = 0; b < batch_; ++b) {
        int64_t len = int64_t(known->at(b));
        if (len < 0 || len > steps_)
          c_.invalid(fmt::format("sequence_lens[{}] is {}, outside 0..{}", b, len, steps_));
        full &= len == steps_;
      }
      if (full) return;
    }
    if (direction != "forward")
      c_.unsupported("sequence_lens shorter than the sequence in a reverse or bidirectional pass");
    lengths_ = c_.value(4);
  }

  Value* slice(Value* x, int64_t axis, int64_t start, int64_t end, const std::string& suffix) {
    Attrs a;
    a.set("starts", std::vector<int64_t>{start});
    a.set("ends", std::vector<int64_t>{end});
    a.set("axes", std::vector<int64_t>{axis});
    return c_.emit(OpKind::Slice, {x}, a, suffix);
  }
  Value* op(OpKind k, std::vector<Value*> ins, const std::string& suffix) { return c_.emit(k, std::move(ins), {}, suffix); }
  Value* dense(Value* x, Value* w, Value* b, const std::string& suffix) {
    std::vector<Value*> ins = {x, w};
    if (b) ins.push_back(b);
    return c_.emit(OpKind::Dense, ins, {}, suffix);
  }
  // Direction d's [rows, cols] block of a [D, rows, cols] (or [D, n]) input.
  Value* perDirection(size_t input, int64_t d, const Shape& shape, const std::string& suffix) {
    Value* v = c_.value(input);
    if (dirs_ > 1) v = slice(v, 0, d, d + 1, suffix + "_slice");
    return c_.reshape(v, shape, suffix);
  }

  Direction prepare(int64_t d, Value* h0, Value* c0) {
    std::string p = dirs_ > 1 ? fmt::format("d{}_", d) : "";
    int64_t gh = gates_ * hidden_;
    Direction dir;
    Value* w = perDirection(1, d, {gh, inputSize_}, p + "W");
    Value* r = perDirection(2, d, {gh, hidden_}, p + "R");
    Value* xBias = nullptr;
    if (c_.has(3)) {
      Value* b = perDirection(3, d, {2 * gh}, p + "B");
      Value* wb = slice(b, 0, 0, gh, p + "Wb");
      Value* rb = slice(b, 0, gh, 2 * gh, p + "Rb");
      if (cell_ == Cell::Gru && linearBeforeReset_) {
        // Rb_h stays inside r ⊙ (h R_h^T + Rb_h); the z and r biases join the projection.
        Tensor zr(dt_, {gh}), hOnly(dt_, {gh});
        for (int64_t k = 0; k < gh; ++k) (k < 2 * hidden_ ? zr : hOnly).set(k, 1.0);
        xBias = op(OpKind::Add, {wb, op(OpKind::Mul, {rb, c_.constantValue(zr, p + "zr_rows")}, p + "Rb_zr")},
                   p + "x_bias");
        dir.rBias = op(OpKind::Mul, {rb, c_.constantValue(hOnly, p + "h_rows")}, p + "Rb_h");
      } else {
        xBias = op(OpKind::Add, {wb, rb}, p + "bias");
      }
    }
    dir.xProj = dense(x2d_, w, xBias, p + "x_proj");
    if (cell_ == Cell::Gru && !linearBeforeReset_) {
      dir.r = slice(r, 0, 0, 2 * hidden_, p + "R_zr");
      dir.rHidden = slice(r, 0, 2 * hidden_, 3 * hidden_, p + "R_h");
    } else {
      dir.r = r;
    }
    if (cell_ == Cell::Lstm && c_.has(7)) dir.peephole = perDirection(7, d, {3 * hidden_}, p + "P");
    Shape bh{batch_, hidden_};
    auto initial = [&](Value* v, const char* name) -> Value* {
      if (!v) return c_.constantValue(Tensor(dt_, bh), p + name + "_zero");
      return c_.reshape(dirs_ > 1 ? slice(v, 0, d, d + 1, p + name + "_slice") : v, bh, p + name);
    };
    dir.h = initial(h0, "initial_h");
    if (cell_ == Cell::Lstm) dir.c = initial(c0, "initial_c");
    return dir;
  }

  Value* scaled(Value* x, double scale, double shift, const std::string& suffix) {
    Attrs a;
    a.set("scale", scale);
    a.set("shift", shift);
    return c_.emit(OpKind::Scale, {x}, a, suffix);
  }

  Value* activate(const Activation& f, Value* x, const std::string& suffix) {
    if (clip_) {
      Attrs a;
      a.set("min", -*clip_);
      a.set("max", *clip_);
      x = c_.emit(OpKind::Clip, {x}, a, suffix + "_clip");
    }
    const std::string& n = f.name;
    if (n == "sigmoid") return op(OpKind::Sigmoid, {x}, suffix);
    if (n == "tanh") return op(OpKind::Tanh, {x}, suffix);
    if (n == "relu") return op(OpKind::Relu, {x}, suffix);
    if (n == "softplus") return op(OpKind::Softplus, {x}, suffix);
    if (n == "affine") return scaled(x, f.alpha, f.beta, suffix);
    if (n == "scaledtanh") return scaled(op(OpKind::Tanh, {scaled(x, f.beta, 0, suffix + "_in")}, suffix + "_tanh"), f.alpha, 0, suffix);
    if (n == "leakyrelu" || n == "hardsigmoid") {
      Attrs a;
      a.set("alpha", f.alpha);
      if (n == "hardsigmoid") a.set("beta", f.beta);
      return c_.emit(n == "leakyrelu" ? OpKind::LeakyRelu : OpKind::Hardsigmoid, {x}, a, suffix);
    }
    Value* zero = c_.scalar(0, dt_, suffix + "_zero");
    if (n == "thresholdedrelu")
      return op(OpKind::Where, {op(OpKind::Greater, {x, c_.scalar(f.alpha, dt_, suffix + "_alpha")}, suffix + "_above"), x, zero},
                suffix);
    if (n == "elu") {
      Value* e = op(OpKind::Exp, {op(OpKind::Minimum, {x, zero}, suffix + "_nonpos")}, suffix + "_exp");
      Value* neg = scaled(e, f.alpha, -f.alpha, suffix + "_neg");
      return op(OpKind::Where, {op(OpKind::Greater, {x, zero}, suffix + "_positive"), x, neg}, suffix);
    }
    // softsign: x / (1 + |x|)
    Value* den = scaled(op(OpKind::Abs, {x}, suffix + "_abs"), 1.0, 1.0, suffix + "_den");
    return op(OpKind::Div, {x, den}, suffix);
  }

  // One step at time index t of direction d: updates dir.h (and dir.c); returns Y's entry.
  Value* step(Direction& dir, int64_t d, int64_t t) {
    std::string p = fmt::format("{}t{}_", dirs_ > 1 ? fmt::format("d{}_", d) : "", t);
    const auto& fs = activations_[size_t(d)];
    int64_t h = hidden_;
    Value* xt = slice(dir.xProj, 0, t * batch_, (t + 1) * batch_, p + "x");
    Value* hPrev = dir.h;
    Value* hNew = nullptr;
    Value* cNew = nullptr;
    if (cell_ == Cell::Rnn) {
      hNew = activate(fs[0], op(OpKind::Add, {xt, dense(hPrev, dir.r, nullptr, p + "hR")}, p + "pre"), p + "h");
    } else if (cell_ == Cell::Gru) {
      // linear_before_reset: one product h R^T (+ Rb_h) serves all three gates.
      Value* hR = dense(hPrev, dir.r, linearBeforeReset_ ? dir.rBias : nullptr, p + "hR");
      Value* zr = op(OpKind::Add, {slice(xt, 1, 0, 2 * h, p + "x_zr"), linearBeforeReset_ ? slice(hR, 1, 0, 2 * h, p + "hR_zr") : hR},
                     p + "zr_pre");
      Value* z = activate(fs[0], slice(zr, 1, 0, h, p + "z_pre"), p + "z");
      Value* r = activate(fs[0], slice(zr, 1, h, 2 * h, p + "r_pre"), p + "r");
      Value* xh = slice(xt, 1, 2 * h, 3 * h, p + "x_h");
      Value* hh;
      if (linearBeforeReset_) {
        Value* rh = slice(hR, 1, 2 * h, 3 * h, p + "hR_h");
        hh = op(OpKind::Add, {xh, op(OpKind::Mul, {r, rh}, p + "reset")}, p + "h_pre");
      } else {
        Value* reset = op(OpKind::Mul, {r, hPrev}, p + "reset");
        hh = op(OpKind::Add, {xh, dense(reset, dir.rHidden, nullptr, p + "resetR")}, p + "h_pre");
      }
      hh = activate(fs[1], hh, p + "candidate");
      // (1 - z) ⊙ hh + z ⊙ h_prev = hh + z ⊙ (h_prev - hh)
      hNew = op(OpKind::Add, {hh, op(OpKind::Mul, {z, op(OpKind::Sub, {hPrev, hh}, p + "delta")}, p + "keep")}, p + "h");
    } else {
      Value* pre = op(OpKind::Add, {xt, dense(hPrev, dir.r, nullptr, p + "hR")}, p + "pre");
      auto gate = [&](int k, const char* name) { return slice(pre, 1, k * h, (k + 1) * h, p + name + "_pre"); };
      auto peep = [&](int k, Value* state, Value* g, const char* name) {
        if (!dir.peephole) return g;
        Value* pk = slice(dir.peephole, 0, k * h, (k + 1) * h, p + name + "_P");
        return op(OpKind::Add, {g, op(OpKind::Mul, {state, pk}, p + name + "_peep")}, p + name + "_peeped");
      };
      Value* i = activate(fs[0], peep(0, dir.c, gate(0, "i"), "i"), p + "i");
      Value* f = inputForget_ ? scaled(i, -1.0, 1.0, p + "f")
                              : activate(fs[0], peep(2, dir.c, gate(2, "f"), "f"), p + "f");
      Value* cand = activate(fs[1], gate(3, "c"), p + "candidate");
      cNew = op(OpKind::Add, {op(OpKind::Mul, {f, dir.c}, p + "forget"), op(OpKind::Mul, {i, cand}, p + "write")}, p + "c");
      Value* o = activate(fs[0], peep(1, cNew, gate(1, "o"), "o"), p + "o");
      hNew = op(OpKind::Mul, {o, activate(fs[2], cNew, p + "c_act")}, p + "h");
    }
    if (!lengths_) {
      dir.h = hNew;
      if (cNew) dir.c = cNew;
      return hNew;
    }
    // Sequences that ended before t keep their state and output zeros.
    Value* live = c_.reshape(op(OpKind::Less, {c_.scalar(double(t), c_.dtype(4), p + "index"), lengths_}, p + "live"),
                             {batch_, 1}, p + "live_rows");
    dir.h = op(OpKind::Where, {live, hNew, hPrev}, p + "h_kept");
    if (cNew) dir.c = op(OpKind::Where, {live, cNew, dir.c}, p + "c_kept");
    return op(OpKind::Where, {live, hNew, c_.scalar(0, dt_, p + "zero")}, p + "y");
  }

  // Concatenates along `axis`, in groups of shoal's concat's 64 operands.
  Value* concatAll(std::vector<Value*> parts, int64_t axis, const std::string& suffix) {
    int round = 0;
    while (parts.size() > 1) {
      std::vector<Value*> next;
      for (size_t k = 0; k < parts.size(); k += 64) {
        std::vector<Value*> group(parts.begin() + long(k), parts.begin() + long(std::min(parts.size(), k + 64)));
        if (group.size() == 1) {
          next.push_back(group[0]);
          continue;
        }
        Attrs a;
        a.set("axis", axis);
        next.push_back(c_.emit(OpKind::Concat, group, a, fmt::format("{}_cat{}_{}", suffix, round, k / 64)));
      }
      parts = std::move(next);
      ++round;
    }
    return parts[0];
  }

  // Y: [T, D, B, H] (layout 0) or [B, T, D, H].
  Value* sequenceOutput(const std::vector<std::vector<Value*>>& ys) {
    std::vector<Value*> parts;
    for (int64_t t = 0; t < steps_; ++t)
      for (int64_t d = 0; d < dirs_; ++d)
        parts.push_back(c_.reshape(ys[size_t(d)][size_t(t)], {1, 1, batch_, hidden_}, fmt::format("y{}_{}", t, d)));
    // Time-major, direction next: concatenated along axis 0 as [T·D, 1, B, H], then viewed.
    Value* y = c_.reshape(concatAll(parts, 0, "Y"), {steps_, dirs_, batch_, hidden_}, "Y_tdbh");
    if (layout_ == 1) y = transposeOp(c_, y, {2, 0, 1, 3}, "Y_batch_major");
    return y;
  }

  // Y_h / Y_c: [D, B, H] (layout 0) or [B, D, H].
  Value* stateOutput(const std::vector<Value*>& last, const std::string& name) {
    std::vector<Value*> parts;
    for (size_t d = 0; d < last.size(); ++d)
      parts.push_back(c_.reshape(last[d], {1, batch_, hidden_}, fmt::format("{}_{}", name, d)));
    Value* s = concatAll(parts, 0, name);
    if (layout_ == 1) s = transposeOp(c_, s, {1, 0, 2}, name + "_batch_major");
    return s;
  }

  NodeContext& c_;
  Cell cell_;
  DType dt_ = DType::F32;
  int64_t gates_ = 1, layout_ = 0, dirs_ = 1, steps_ = 0, batch_ = 0, inputSize_ = 0, hidden_ = 0;
  bool inputForget_ = false, linearBeforeReset_ = false;
  std::optional<double> clip_;
  std::vector<std::vector<Activation>> activations_;
  Value* lengths_ = nullptr;  // sequence_lens, when some sequences end early
  Value* x2d_ = nullptr;
};

}  // namespace

void lowerRecurrent(NodeContext& c) {
  Cell cell = c.opType() == "RNN" ? Cell::Rnn : c.opType() == "GRU" ? Cell::Gru : Cell::Lstm;
  Unroller(c, cell).lower();
}

}  // namespace shoal::onnx_import
