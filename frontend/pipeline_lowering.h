// Private to frontend/: the state of lowering one Mermaid pipeline (frontend/pipeline_loader.cpp:
// stages, arguments, the generic op path, the layer table) and the per-layer lowering functions
// of the op families (frontend/pipeline_layers.cpp), which share it.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/label.h"
#include "frontend/mermaid.h"
#include "frontend/pipeline_loader.h"
#include "ir/graph.h"
#include "ir/ops.h"
#include "support/diagnostics.h"

namespace shoal::pipeline_lowering {


using mermaid::LabelArg;
using mermaid::ParsedLabel;

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return std::string(s.substr(b, e - b));
}

inline size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

inline std::string suggestion(std::string_view word, const std::vector<std::string>& choices) {
  if (word.size() > 64) return "";  // no near miss, and edit distance would be slow
  std::string best;
  size_t bestD = 3;
  for (const std::string& c : choices) {
    size_t d = editDistance(word, c);
    if (d < bestD) bestD = d, best = c;
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// The element types a pipeline may name, for messages.
inline constexpr const char* kDTypeChoices = "f32, f64, i32, i64, u8 or bool";

// What a pipeline node stands for.
enum class Role { Input, Preprocess, Decision, Placement, ConvStage, MatmulStage, Train, Output, Layer };

// Alternative spellings of pipeline layers.
inline std::string canonicalOp(const std::string& op) {
  static const std::map<std::string, std::string> m = {
      {"conv", "conv2d"},           {"convolution", "conv2d"}, {"linear", "dense"},   {"fc", "dense"},
      {"maxpool2d", "maxpool"},     {"max_pool", "maxpool"},   {"avgpool2d", "avgpool"}, {"avg_pool", "avgpool"},
      {"preprocessing", "preprocess"}, {"data", "input"},      {"logsoftmax", "log_softmax"},
  };
  auto it = m.find(op);
  return it == m.end() ? op : it->second;
}

class Lowering;
struct PNode;

/// A pipeline layer or stage: its name, what it stands for, the argument keys it accepts and
/// the function that lowers it. Plain IR ops (relu, softmax, matmul, ...) need no entry: their
/// arguments are the op's attributes (ir/ops.def schema) and they lower generically.
struct LayerSpec {
  std::string_view name;
  Role role;
  std::vector<std::string_view> args;
  void (Lowering::*lower)(PNode& p, std::vector<Value*>& ins);
  bool positional = false;  ///< takes one positional word (`input: mnist`, `{device: auto}`)
  bool ownsEdgeLabels = false;  ///< reads its in-edges' labels itself (where: cond, a, b)
};

const std::vector<LayerSpec>& layerSpecs();
const LayerSpec* findLayerSpec(std::string_view name);

/// The plain IR op a pipeline label names (an op of the table that is not internal), if any.
inline std::optional<OpKind> plainOp(std::string_view name) {
  auto kind = opKindFromName(name);
  if (!kind || opTraits(*kind).isInternal) return std::nullopt;
  return kind;
}

struct PNode {
  const mermaid::NodeDecl* decl = nullptr;
  Role role = Role::Layer;
  const LayerSpec* spec = nullptr;  // null: a plain IR op (p.op names it)
  std::string op;  // canonical pipeline op (layers, and the stage names above)
  ParsedLabel label;
  bool labelOk = true;
  Location loc;
  std::vector<const mermaid::Edge*> inEdges;
  Value* value = nullptr;  // what flows out of this node
  std::vector<Value*> parts;  // a node with several outputs (split): edges out of it pick one ("part 1")
  bool poisoned = false;
};

class Lowering {
 public:
  Lowering(const mermaid::Document& doc, DiagnosticEngine& diags) : doc_(doc), diags_(diags) {}
  std::optional<Pipeline> run();

 private:
  void classify(PNode& p);
  bool checkArgs(PNode& p);
  void lowerNode(PNode& p);
  std::vector<Value*> operands(PNode& p);
  Value* needOne(PNode& p, const std::vector<Value*>& ins);

 public:
  // One per LayerSpec (and lowerOp for the plain IR ops).
  void lowerInput(PNode& p, std::vector<Value*>& ins);
  void lowerPreprocess(PNode& p, std::vector<Value*>& ins);
  void lowerDevice(PNode& p, std::vector<Value*>& ins);
  void lowerConvStage(PNode& p, std::vector<Value*>& ins);
  void lowerMatmulStage(PNode& p, std::vector<Value*>& ins);
  void lowerTrain(PNode& p, std::vector<Value*>& ins);
  void lowerOutput(PNode& p, std::vector<Value*>& ins);
  void lowerConstant(PNode& p, std::vector<Value*>& ins);
  void lowerConv2d(PNode& p, std::vector<Value*>& ins);
  void lowerDense(PNode& p, std::vector<Value*>& ins);
  void lowerPool(PNode& p, std::vector<Value*>& ins);
  void lowerOnnx(PNode& p, std::vector<Value*>& ins);
  void lowerOp(PNode& p, std::vector<Value*>& ins);

  // ==== family elementwise: elementwise math, comparisons, where, reductions ====
  void lowerGelu(PNode& p, std::vector<Value*>& ins);
  void lowerWhere(PNode& p, std::vector<Value*>& ins);
  // (end of family elementwise)

  // ==== family norm: normalisation, dropout ====
  void lowerBatchNorm(PNode& p, std::vector<Value*>& ins);
  void lowerLayerNorm(PNode& p, std::vector<Value*>& ins);
  void lowerGroupNorm(PNode& p, std::vector<Value*>& ins);
  /// The one float input of a normalisation layer (rank >= minRank), or null after reporting.
  Value* normInput(PNode& p, const std::vector<Value*>& ins, int64_t minRank);
  /// A persistent non-trainable tensor named `name` (running statistics), initialised by `init`.
  Value* addState(const std::string& name, TensorType type, const std::string& init, const Location& loc);
  // (end of family norm)

  // ==== family conv: convolution and pooling ====
  void lowerConvTranspose2d(PNode& p, std::vector<Value*>& ins);
  void lowerAdaptiveAvgPool(PNode& p, std::vector<Value*>& ins);
  /// `padding=`: nullopt (reported) when malformed; else "valid", "same", or "explicit" with
  /// [top,left,bottom,right] from N, HxW or t,l,b,r.
  std::optional<std::pair<std::string, std::vector<int64_t>>> convPaddingArg(PNode& p);
  // (end of family conv)

  // ==== family shape: shape and data movement, batched matmul, attention ====
  void lowerSplit(PNode& p, std::vector<Value*>& ins);
  void lowerPermute(PNode& p, std::vector<Value*>& ins);
  void lowerEmbedding(PNode& p, std::vector<Value*>& ins);
  void lowerPositionEmbedding(PNode& p, std::vector<Value*>& ins);
  void lowerScaledDotProductAttention(PNode& p, std::vector<Value*>& ins);
  void lowerMultiHeadAttention(PNode& p, std::vector<Value*>& ins);
  // (end of family shape)

  // ==== family train: losses and optimizers ====
  // (end of family train)


 private:
  /// An attribute of op schema `spec` from label argument `a`, converted to the spec's kind;
  /// nullopt (after reporting) when the value does not fit.
  std::optional<AttrValue> attrFromArg(const LabelArg& a, const AttrSpec& spec);
  void error(const Location& loc, const std::string& msg) { diags_.error(loc, msg); }

  // Typed argument access; errors are reported at the argument.
  const LabelArg* arg(const PNode& p, const char* key) const { return p.label.find(key); }
  std::optional<int64_t> intArg(PNode& p, const char* key, int64_t dflt, bool positive = true);
  std::optional<double> floatArg(PNode& p, const char* key, double dflt);
  std::optional<std::string> stringArg(PNode& p, const char* key, const std::string& dflt);
  std::optional<std::vector<int64_t>> pairArg(PNode& p, const char* key, std::vector<int64_t> dflt);
  std::optional<bool> boolArg(PNode& p, const char* key, bool dflt);
  std::optional<std::vector<double>> floatsArg(PNode& p, const char* key);
  void badArg(const LabelArg& a, const std::string& want) {
    error(a.valueLoc, fmt::format("'{}' must be {}, got {}", a.key, want, attrValueString(a.value)));
  }

  Value* fromResult(PNode& p, Expected<Value*> r) {
    if (!r) {
      Location loc = r.error().location().known() ? r.error().location() : p.loc;
      error(loc, r.error().message());
      p.poisoned = true;
      return nullptr;
    }
    return *r;
  }
  Location locOf(const PNode& p) const { return p.loc; }

  const mermaid::Document& doc_;
  DiagnosticEngine& diags_;
  Pipeline pipe_;
  std::map<std::string, PNode> nodes_;
  int64_t batch_ = 64;
  bool sawOutput_ = false;
  bool sawInput_ = false;
};

}  // namespace shoal::pipeline_lowering
