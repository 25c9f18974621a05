// Private to codegen/: what every CUDA kernel family's emitter shares (text templates,
// literals, index types, and the NodeEmitter that appends kernels and launch steps).
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codegen/cuda_codegen.h"
#include "ir/elementwise.h"

namespace shoal::cudagen {

/// Threads per block of every generated kernel (a multiple of 32; block reductions rely on it).
inline constexpr unsigned kBlock = 256;
/// Warps per block, for the one-warp-per-row kernels.
inline constexpr unsigned kWarpsPerBlock = kBlock / 32;
/// Most blocks a grid-stride loop launches (enough to fill any current GPU several times).
inline constexpr int64_t kMaxGrid = 4096;
/// Blocks a split reduction aims for (two per SM on a 132-SM H100).
inline constexpr int64_t kTargetBlocks = 264;

/// ${name} → value substitutions for a kernel text template.
using Vars = std::vector<std::pair<std::string, std::string>>;

/// `tmpl` with every `${name}` replaced by its value in `vars`. An unknown name is an
/// internal error (asserts), so a typo in a template cannot emit broken source silently.
std::string fill(std::string_view tmpl, const Vars& vars);

/// The CUDA C++ spelling of an element type: float, double, int, long long, unsigned char, bool.
std::string cudaType(DType t);
/// A literal of element type `t` holding `v` (rounded to `t` first, as the interpreter's
/// T(attr) does): "0.001f", "0.9", "-3".
std::string literal(double v, DType t);
/// A decimal integer literal, with LL when it needs 64 bits.
std::string intLit(int64_t v);
/// The index type for loops over up to `n` elements: "int" when it cannot overflow, else
/// "long long".
std::string indexType(int64_t n);
/// Blocks for a grid-stride loop over `n` elements (at least 1, at most kMaxGrid).
unsigned gridFor(int64_t n);
/// `name` made a C identifier: [A-Za-z0-9_] kept, anything else '_'.
std::string identifier(std::string_view name);

/// One dimension of a strided walk: extent and the element stride it moves in a tensor.
struct Dim {
  int64_t extent = 1;
  int64_t stride = 0;
};

/// Statements that add to `offset` the strided offset of flat index `index` (row-major over
/// `dims`, outermost first), consuming a copy of it; `idx` is the index type. One line per
/// dimension, innermost first; dimensions with stride 0 only divide.
std::string offsetCode(const std::string& idx, const std::string& index, const std::vector<Dim>& dims,
                       const std::string& offset, const std::string& indent);

/// What a generated product does to each output as it stores it (fused into its last kernel):
/// add bias[j] of the output's column j (bias.value null: none), then apply the unary
/// `activation` ("" none; an elementwise op's name: relu, sigmoid, tanh, ...). The sum is the
/// one dense's and fused_dense's separate kernels computed, in the same order.
struct CudaGemmEpilogue {
  CudaArg bias;
  std::string activation;
};

/// The bytes a block of `bytes` takes in a module's prepared or converted region: 256-byte
/// aligned, never empty.
int64_t regionBlockBytes(int64_t bytes);

/// Appends one node's kernels and launch steps to a module.
class NodeEmitter {
 public:
  /// `plan` (may be null: nothing aliases) decides which pointer parameters stay __restrict__.
  NodeEmitter(CudaModuleSource& module, std::string& source, const Node& node, int index,
              const MemoryPlan* plan = nullptr);

  const Node& node() const { return node_; }
  /// The module's codegen options (the defaults unless generateCudaSource was given others).
  const CudaCodegenOptions& options() const { return *options_; }
  void setOptions(const CudaCodegenOptions* o) { options_ = o; }
  /// The float type the node computes in: its first float operand's, else its result's, else
  /// f32 (the interpreter's rule).
  DType computeType() const { return computeType_; }
  /// cudaType(computeType()).
  const std::string& T() const { return t_; }
  const Shape& inShape(size_t i) const { return node_.input(i)->type().shape; }
  const Shape& outShape() const { return node_.result()->type().shape; }
  /// The index type for this node: wide enough for every operand and result.
  const std::string& I() const { return i_; }

  /// Adds kernel `k<index>_<op>_<value>[_<suffix>]` with parameter list `params` and `body`
  /// (indented by two, newline-terminated lines) and a launch of it over `args`, `block`
  /// threads a block (a multiple of 32; kernels of other than kBlock are never grouped).
  void kernel(std::string_view suffix, std::string_view params, std::string_view body, std::vector<CudaArg> args,
              unsigned gridX, unsigned gridY = 1, unsigned sharedBytes = 0, unsigned block = kBlock);
  /// The name kernel(suffix, ...) gives its kernel.
  std::string kernelName(std::string_view suffix) const;
  /// Records a tensor-core product of this node (CudaModuleSource::products).
  void addProduct(CudaProduct product);
  /// Adds a grid-stride kernel over `n` elements whose loop body (`i` is the index) is
  /// `perElement` (one or more lines, each indented by four).
  void elementwise(std::string_view suffix, std::string_view params, std::string_view perElement,
                   std::vector<CudaArg> args, int64_t n);
  /// Adds a matrix product: generated kernels for a small fp32 one (emitSmallGemm), else a
  /// cuBLAS call.
  void gemm(const CudaGemmCall& call);
  /// The product with `epilogue` applied as each output is stored, when it is a small fp32
  /// product of generated kernels (emitSmallGemm); false, and nothing emitted, otherwise.
  bool gemmWithEpilogue(const CudaGemmCall& call, const CudaGemmEpilogue& epilogue);
  /// Adds a device-to-device copy of the whole of `src` into `dst`.
  void copy(const Value* src, const Value* dst);
  /// Adds the step of an all_reduce node: its operand combined over the ranks into its result.
  void allReduce();
  /// Adds the step that gives a constant node its value.
  void constant();
  /// Registers an error site of this node; returns its index for the kernel to report at.
  int errorSite(CudaErrorKind kind, int64_t cols = 0);
  /// Reserves `bytes` of executor scratch for this node's steps.
  void needScratch(int64_t bytes);
  /// Reserves a block of `bytes` in the module's prepared region (256-byte aligned) and
  /// returns the argument that points at it.
  CudaArg prepared(int64_t bytes);
  /// The block of the module's converted region that holds planned value `v`'s copy of `bytes`
  /// (CudaModuleSource::converted), kept from this node on to the last that asks for it.
  /// `fresh`: whether this node is the first to ask -- the one that must write it.
  CudaArg converted(const Value* v, int64_t bytes, bool& fresh);
  /// Whether a reader converts `v` into a 16-bit channels-last copy that its producer may
  /// write instead (CudaCodegenOptions::halfCopyInProducer, copiedValues).
  bool copyWanted(const Value* v) const {
    const auto& c = options_->copiedValues;
    return options_->halfCopyInProducer && std::find(c.begin(), c.end(), v) != c.end();
  }
  /// Marks the step added last as a `prepare` step (CudaStep::prepare).
  void markPrepare();
  /// Whether `v` holds its value when the `prepare` steps run: a param, state, or a value they
  /// compute (CudaModuleSource::hoisted) -- what a `prepare` step may read.
  bool madeBeforePrepare(const Value* v) const;
  /// Sets the step added last's CudaStep::flops.
  void setFlops(double flops);
  /// Sets the step added last's CudaStep::minBlocks.
  void setMinBlocks(unsigned blocks);
  /// Gives the kernel added last `maps` (CudaStep::tensorMaps): parameters SHOAL_TMAP(name)
  /// after its pointers.
  void setTensorMaps(std::vector<CudaTensorMap> maps);

  /// Writes the node's comment block (once; kernel() and gemm() do it themselves), for nodes
  /// whose work a horizontally fused kernel of another node does.
  void comment() { header(); }
  /// The node's index in program order (kernel names start k<index>_).
  int index() const { return index_; }

  /// An error naming this node, for ops or types without a GPU kernel.
  Unexpected<Error> unsupported(std::string_view why) const;

  /// The argument for operand `i` / result `i`.
  CudaArg in(size_t i) const { return {CudaArgKind::Value, node_.input(i)}; }
  CudaArg out(size_t i = 0) const { return {CudaArgKind::Value, node_.result(i)}; }
  static CudaArg scratch() { return {CudaArgKind::Scratch, nullptr}; }
  static CudaArg status() { return {CudaArgKind::Status, nullptr}; }

 private:
  int gemms_ = 0;  ///< products this node emitted (names the kernels of the next)
  void header();

  /// `params` with __restrict__ dropped from every pointer whose buffer may overlap another
  /// argument's (the plan's in-place aliasing): restrict there would be a false promise.
  std::string restrictSafe(std::string_view params, const std::vector<CudaArg>& args) const;

  CudaModuleSource& module_;
  std::string& source_;
  const Node& node_;
  int index_;
  const MemoryPlan* plan_;
  DType computeType_;
  const CudaCodegenOptions* options_;
  std::string t_, i_;
  bool headerDone_ = false;
};

// Kernel emitters, one per op (or group of ops sharing a kernel shape), in
// codegen/cuda_kernels_{elementwise,nn,reduce}.cpp. Each returns an error for a node whose
// types it cannot handle.
Expected<void> emitCast(NodeEmitter& em);
/// Every elementwise op of ir/ops.def: a grid-stride kernel calling the op's formula (its
/// device function shoal_ew_<op>), operands broadcast to the result.
Expected<void> emitElementwise(NodeEmitter& em);
Expected<void> emitNormalize(NodeEmitter& em);
Expected<void> emitMseGrad(NodeEmitter& em);
/// fused_elementwise: the postfix program (ir/elementwise.h) inlined as C, one kernel.
Expected<void> emitFusedElementwise(NodeEmitter& em);

/// The call `shoal_ew_<op>(operands..., params...)` of elementwise op `kind`'s formula, the
/// params (its float attributes) written as literals of element type `dt`.
std::string formulaCall(OpKind kind, const std::vector<std::string>& operands, const std::vector<double>& params, DType dt);
/// Appends to `code` the statements (each indented by `indent`) that compute a fused_elementwise
/// `program` in type `dt` over operand values already named r0, r1, ...; returns the name of
/// the result.
Expected<std::string> elementwiseProgramCode(const std::vector<ExprInstr>& program, DType dt, const std::string& indent,
                                             std::string& code);

/// One `shoal_ew_<op>` device function per elementwise op of ir/ops.def, each returning the
/// op's formula (the prelude holds them, after ir/scalar_math.h).
std::string elementwiseFunctions();

/// The text of ir/scalar_math.h (embedded at build time).
std::string_view scalarMathSource();
/// The text of support/float16.h (embedded at build time), pasted before it.
std::string_view float16Source();

/// A statement (indented by `indent`) that sets `dst` (declared by the caller) to activation
/// `act` of `src`, `act` naming a unary elementwise op without attributes (relu, sigmoid,
/// tanh, ...): the op's own formula, as its standalone kernel computes it. "" for anything else.
std::string activationCode(std::string_view act, const std::string& T, const std::string& src, const std::string& dst,
                           const std::string& indent);

/// A GEMM whose operands are gathered (an implicit GEMM: a convolution's patches, say), run on
/// tensor cores with its operands rounded to `math`'s format (TF32, bfloat16 or float16) and
/// fp32 accumulation: out(m, o) = sum_k A(m, k) B(o, k) for m < rows,
/// o < cols, k < red. The code fragments see `${I}` (the node's index type):
///  - aRowSetup runs for the thread's A row `am` (an ${I}; `arow` = am < rows) and may declare
///    what aLoad needs; aLoad, run only for rows in range and k < red, either leaves `ok` false
///    (A(am, k) is 0: padding) or points `const float* src` at A(am, k) and sets `ok` (the
///    element is copied into shared memory asynchronously, so a gather is an address, never a
///    value). aBase names a pointer that is always valid (`src`'s value when `ok` stays
///    false). bRowSetup / bLoad / bBase the same for B row `bo` (an int < cols).
///  - Grouped gathers: with aGroup non-empty, aGroup runs once for each thread's 8
///    consecutive reduction indices of a tile (kg, a multiple of 8, to kg + 7; kg in scope; it
///    must not read memory) before aLoad runs for each `e` (a constant; k = kg + e): the index
///    arithmetic once, then strides. Where red is not a multiple of 8 each element is still
///    checked against the end. bGroup the same for B's 4.
///  - Strided groups: with aStride set as well (a constant expression), aGroup instead
///    declares `bool gvalid` and `${I} goff`: the group's elements are aBase[goff + e * aStride],
///    all copied when gvalid (the index arithmetic and one predicate per group, no aLoad), all
///    zero otherwise; aBase + e * aStride (e < 8) must be a valid address.
///  - epilogue stores `float s` = out(m, o) (m an ${I}, o an int, both in range).
/// With splits > 1 the reduction is cut in that many slices of whole 16-steps, each block
/// writing its slice's sums to scratch, and a second kernel adds the slices in order (in
/// double) before the epilogue. `params` and `args` are the kernel's tensors; the scratch
/// pointer is added after them.
struct ImplicitGemm {
  int64_t rows = 0, cols = 0, red = 0;
  std::string aRowSetup, aLoad, bRowSetup, bLoad, epilogue;
  /// What the epilogue computes from its row alone (`m` in scope, in range; e.g. a pixel's
  /// offset): run once for each of a thread's rows before their elements' epilogues where the
  /// kernel visits rows outermost (wgmma's), else with each element's epilogue.
  std::string epilogueRow;
  std::string aGroup, bGroup;  ///< grouped gathers (see above); "" = per element
  std::string aStride;         ///< strided A groups (see above); "" = aLoad per element
  /// With aStride: all 16 reduction steps from a multiple of 16 are equally spaced (channels
  /// or filters in multiples of 16), so a stage row's copies interleave over 4 threads.
  bool aStride16 = false;
  /// aLoad points `src` at 4 consecutive elements (k a multiple of 4; red must be one too)
  /// that are contiguous and 16-byte aligned, all in range or none: one 16-byte copy (a
  /// channels-last activation's 4 channels of one pixel). aGroup / aStride are then unused.
  bool aVector = false;
  /// The group's copies written by the caller (with aGroup): after aGroup, this code issues
  /// the copies of the group's 8 elements itself, writing element e at shared address `d0 + 4 *
  /// e` (e < 4) or `d1 + 4 * e` (e >= 4) -- so elements 2j and 2j + 1 are one 8-byte aligned
  /// pair -- and copying zeros where `gok` is false (row past the end or group past the
  /// slice). For gathers whose elements pair up into 8-byte copies (a stride-2 convolution's
  /// kernel row: convForwardTensorCore). Elements listed in aHoles are never copied: they are
  /// zeroed once before the first stage (B must be zero there too, so a hole adds 0 * 0).
  std::string aGroupCopies;
  std::vector<int> aHoles;
  /// Column-wise A gathers (the weight gradient's, where A's reduction index is a pixel): 16
  /// threads share a stage row, one reduction step each, so a warp's copy reads 16 consecutive
  /// reduction indices of two rows (16 neighbouring pixels of two taps: one or two cache lines,
  /// where 8 consecutive steps of 16 rows touch 6-12). The rows a thread copies are the same at
  /// every step: aColumnRow runs once per row before the loop (`am` and `arow` in scope) and
  /// declares `int roff` and `int rbit` (below aColumnBits); aColumn runs once per stage
  /// (`k` in scope) and declares `${I} kofs` and `kmask` (unsigned, or unsigned long long when
  /// aColumnBits is 64): element (am, k) is aBase[kofs + roff], copied where bit rbit of kmask
  /// is set, zero otherwise (kofs need not be valid then). Set, it replaces aRowSetup / aLoad /
  /// aGroup / aStride / aVector.
  std::string aColumnRow, aColumn;
  /// A as 16-bit values of the math's format, 64 reduction steps a stage (a 16-bit forward
  /// reading its input channels-last in the format: CudaCodegenOptions::conv16ChannelsLast),
  /// gathered as a row's origin plus a stage's tap: aRowSetup runs once per row before the loop
  /// (`am` and `arow` in scope; it must not read memory) and declares `${I} roff`, the row's
  /// offset in aBase's 16-bit values at its first tap, and `aTapMask() rtaps`, bit t set where
  /// the row's tap t lies inside the input; aTap runs once per stage (`kt`, a multiple of 64, in
  /// scope: the same for every row) and declares `int tap` and `${I} toff`: the row's 64
  /// consecutive values from reduction index kt are aBase[roff + toff ...], all in range where
  /// bit `tap` of rtaps is set, zeros otherwise (aBase: a valid pointer to 16-bit values). So a
  /// row's copy a stage is a shift, an add and a select -- the bounds and divisions once before
  /// the loop. Both operands then reach sm_90a's wgmma from shared memory (the packed B in 16-bit
  /// rows of 64 steps), in PTX's 128-byte swizzle. Needs the wgmma option, a 16-bit math, B
  /// packed, red a multiple of 64 and at most 64 taps; replaces the other forms of A gather.
  bool aHalf64 = false;
  std::string aTap;
  int aTaps = 0;  ///< with aHalf64: the taps (rtaps' bits); at most 64
  /// With aHalf64 (or halfMN): where chunk `ch` (0-7: 16 bytes each) of a row's stage row (of
  /// an atom's row) starts, in elements from the row's origin plus its tap (from kofs + aoff);
  /// an expression of `ch`; empty: `ch` times a chunk's elements (the 128 bytes contiguous). The
  /// stem's form (halfStem) reads two 64-byte runs a kernel row apart.
  std::string aChunk;
  /// rtaps' type for aTaps.
  const char* aTapMask() const { return aTaps > 32 ? "unsigned long long" : "unsigned"; }
  /// With aHalf64, A as the copy engine's im2col boxes (CudaCodegenOptions::halfTma): aBase is
  /// `copy`, a channels-last [n, h, w, c] copy of `bytes`-byte values (`offset` bytes into its
  /// argument). Row m of an image is filter corner (m / cornersW, m % cornersW) of a grid of
  /// cornersH x cornersW, corner (i, j) at pixel (lowerH + i * sh, lowerW + j * sw) (outside the
  /// image where negative); `tapChannel` declares, from a stage's reduction index `kt`, `int c`
  /// (its first channel) and `int tox`, `int toy` (its tap's offsets from the corner: 0 to
  /// spanW, spanH) -- so row m's 64 (TF32: 32) values at kt are the copy's pixel (corner + (toy,
  /// tox)), channels c on, zeros outside the image. A forward: corners the output pixels; a
  /// data gradient's phase: the phase's pixels, over dy's copy.
  struct Im2col {
    CudaArg copy;
    int64_t offset = 0;
    int bytes = 2;
    int64_t n = 0, c = 0, h = 0, w = 0;
    int64_t cornersH = 0, cornersW = 0;
    int lowerH = 0, lowerW = 0, sh = 1, sw = 1, spanH = 0, spanW = 0;
    std::string tapChannel;
    /// halfMN (a weight gradient, reduction over the corners): each of A's 64-row atoms is a box
    /// of a stage's 64 corners at the atom's own tap and channels -- `atomTap` declares `int c`,
    /// `int tox`, `int toy` from the atom's first row `mo` -- and each of B's 64-column atoms a
    /// tile of `bCopy` (a [corners of every image, bWidth] copy of the same values, `bOffset`
    /// bytes into its argument): 64 corners' 64 values from column `no`.
    bool mn = false;
    std::string atomTap;
    CudaArg bCopy;
    int64_t bOffset = 0, bWidth = 0;
  };
  std::optional<Im2col> aIm2col;
  /// With aHalf64: A's copies through L1 too (cp.async.ca) -- for gathers that read the same
  /// bytes again a stage or two later (a convolution's taps over one block of channels).
  bool aCached = false;
  /// Both operands 16-bit values of the math's format, MN-major (a weight gradient reading
  /// channels-last copies of x and dy: CudaCodegenOptions::conv16ChannelsLast), 64 reduction
  /// steps a stage; rows and cols multiples of 64. For each reduction index `k` of a stage the
  /// copies run kRowSetup (once for all atoms; it must not read memory, and runs for k >= kEnd
  /// too), which declares `${I} kofs` and what aInside reads; A's 64-row atom from row `mo` is
  /// described by aAtom (`mo` in scope; declares `${I} aoff` and what aInside reads; it depends
  /// on the atom alone, so the compiler keeps it out of the loop): its 64 consecutive values at k
  /// are aBase[kofs + aoff ...], all in range where aInside (a bool expression) holds, zeros
  /// otherwise (aBase + aoff must be in range: a row outside reads nothing from there). B's
  /// 64-column atom from column `no` at k is bBase[bOffset + no ...] (bOffset: an expression of
  /// k, B's row k, its columns contiguous). aBase / bBase: valid pointers to 16-bit values. Both operands reach wgmma's
  /// transposed form from shared memory (128-byte swizzle). Needs the wgmma option and a 16-bit
  /// math; replaces the other forms of gather.
  bool halfMN = false;
  std::string kRowSetup, aAtom, aInside, bOffset;
  /// With halfMN: the reduction index as digits, innermost first, each (name, radix) -- the
  /// last's radix unused (it counts on): a weight gradient's output pixel is (ox, OW), (oy, OH),
  /// (on, 0). Set, each of a thread's reduction indices keeps its digits from stage to stage
  /// (64 on a stage, carried: no division in the loop) and kRowSetup finds them in scope as
  /// `const int`s; past kEnd the last digit reads 0 (so offsets stay in range; nothing is copied
  /// there).
  std::vector<std::pair<std::string, int64_t>> kDigits;
  int aColumnBits = 32;
  /// kmask's type for aColumnBits.
  const char* columnMaskType() const { return aColumnBits == 64 ? "unsigned long long" : "unsigned"; }
  /// Named views of scratch that the gathers read, `const float* name = scratch + floats`
  /// (tensors an earlier kernel of the node wrote there, inside scratchReserved): the kernels
  /// then take the scratch pointer.
  std::vector<std::pair<std::string, int64_t>> scratchViews;
  std::string aBase, bBase;    ///< always-valid pointers (kernel parameters) for `src`
  /// B as an expression of column `o` and reduction index `k` (k < red): a first kernel packs
  /// it into scratch, rows of red rounded up to 16 (coalesced 16-byte copies however the
  /// tensor is laid out); bRowSetup/bGroup/bLoad are then unused.
  std::string bPacked;
  /// The tensor bPacked reads (named `w` in it). When it is a parameter and the module
  /// prepares parameters (CudaCodegenOptions::prepareParameters), the packing is a `prepare`
  /// step into a prepared block rather than a kernel into scratch every step.
  CudaArg bSource;
  /// bLoad points `src` at 4 consecutive elements (k a multiple of 4) that are contiguous,
  /// all in range or none: one 16-byte copy (element-wise where src is not 16-byte aligned).
  bool bVector = false;
  /// B's element-wise copies interleaved over a row's 4 threads (each every fourth step,
  /// bLoad's `e` then 0, 4, 8, 12): a warp's copy writes 32 different banks, where a thread's 4
  /// consecutive steps meet 4-way bank conflicts.
  bool bInterleaved = false;
  /// Floats at the start of scratch that the caller uses itself (its output, say).
  int64_t scratchReserved = 0;
  /// Reduction slices: 0 lets the cost model (waves of waveBlocks blocks: more slices where the
  /// tiles alone leave a wave short; slices of at least minSlice steps) or the autotuner choose;
  /// N > 0 fixes them (1 where the epilogue must see whole sums in one kernel).
  int64_t splits = 0;
  /// A batch of this many products of the same extents in one grid (Winograd's transformed
  /// tiles: convWinograd): each block computes a tile of product `bz` (an int in scope for
  /// every fragment: the gathers and the epilogue offset their addresses by it), and a packed B
  /// holds the products' rows one after another (bPacked sees `bz` too). Slices of a split
  /// reduction are added per product.
  int64_t batch = 1;
  int64_t minSlice = 256;  ///< the shortest slice the choice may make (see kConvMinSlice)
  /// Blocks the cost model counts as one wave of the grid: one an SM (kTargetBlocks / 2), or
  /// two (kTargetBlocks) where a second block an SM adds throughput -- measured so for the
  /// weight gradient, whose long reductions gather both operands (see splitsFor).
  int64_t waveBlocks = kTargetBlocks / 2;
  /// Prefix of the kernels' name suffixes ("p01_" -> ..._p01_tc), for a node with several GEMMs.
  std::string name;
  /// The product's floating-point operations as the caller counts them (CudaStep::flops); 0:
  /// 2 · rows · cols · red.
  double flops = 0;
  std::string params;
  std::vector<CudaArg> args;
  TensorCoreMath math = TensorCoreMath::Tf32;
};
Expected<void> emitImplicitGemm(NodeEmitter& em, const ImplicitGemm& spec);
/// The shortest slice of a convolution's forward or data-gradient reduction: 64 steps. Small
/// batches leave most SMs idle otherwise (ResNet-18's 3 x 3 convolutions at batch 1: 13-36
/// tiles, of which 256-step slices made 2-18 blocks each). On an H200, batch 1 TF32 0.473 ->
/// 0.340 ms against 256 (128: 0.360); batch 32 unchanged. (The weight gradient, whose
/// reduction is the batch's pixels, keeps 256: not measured.)
inline constexpr int64_t kConvMinSlice = 64;

/// Σ var·coefficient + constant as C, written plainly: "oy", "oy * 2 - 1", "iy + 1 - ki * 2".
std::string linear(std::initializer_list<std::pair<const char*, int64_t>> terms, int64_t constant);
/// True when every input of `n` has a float element type.
bool isFloatNode(const Node& n);

// codegen/cuda_kernels_winograd.cpp
/// A stride-1 3 x 3 convolution (one group, no dilation) for Winograd's F(m x m, 3 x 3):
/// output (n, o, oy, ox) = sum over c < c and the 3 x 3 taps (r, q) of input (n, c, oy - pt + r,
/// ox - pl + q) (zero outside the image) times the filter's tap.
struct WinogradConv {
  int64_t n = 0, c = 0, h = 0, w = 0;  ///< the input [n, c, h, w]
  int64_t k = 0, oh = 0, ow = 0;       ///< the output [n, k, oh, ow]
  int64_t pt = 0, pl = 0;
  /// The filters as the data gradient reads them: w [c, k, 3, 3], each rotated by 180 degrees
  /// (conv2d_backward_data and conv_transpose2d at stride 1); else w [k, c, 3, 3].
  bool dataGradient = false;
  CudaArg input, weight;
  /// The weight gradient's dy [n, k, oh, ow] (emitWinogradWeightGradient; `weight` unused).
  CudaArg gradient;
  /// The output's store: statements (indented by six) that store `float s`, the convolution's
  /// sum for filter `o` (an int), at flat output index `at` (an ${I}); storeParams are the
  /// kernel parameters they read and write (after the scratch pointer), storeArgs their values.
  std::string store, storeParams;
  std::vector<CudaArg> storeArgs;
};
/// F(m x m, 3 x 3)'s m for this convolution (CudaCodegenOptions::fp32Winograd, where it serves:
/// exact fp32, channels a multiple of 8, channels and filters at least fp32WinogradMinChannels,
/// at least fp32WinogradMinMacs multiply-adds in the direct form), else 0.
int winogradTile(const NodeEmitter& em, const WinogradConv& spec);
/// The convolution's three steps: input transform into scratch, the products as one batch of
/// implicit GEMMs (ImplicitGemm::batch), output transform with the caller's store.
Expected<void> emitWinogradConv(NodeEmitter& em, const WinogradConv& spec, int m);
/// The weight gradient dw [k, c, 3, 3] of that convolution from its input and `gradient`, in
/// the same form: the input and dy transforms, the products summed over the tiles (one batch,
/// split as the cost model chooses), dW = G^T M G.
Expected<void> emitWinogradWeightGradient(NodeEmitter& em, const WinogradConv& spec, int m);

// codegen/cuda_kernels_cl16.cpp: channels-last copies in the tensor cores' format
// (CudaCodegenOptions::conv16ChannelsLast: bfloat16 / float16; tf32ChannelsLast: TF32's, fp32)
/// Where a product reads a tensor's channels-last copy: a block of the converted region (a
/// planned value's copy, shared by every node that reads it so, CudaModuleSource::converted),
/// or scratch at float `at` (an operand a prologue of the node wrote there).
struct ChannelsLastCopy {
  CudaArg arg;
  int64_t at = 0;
  int bytes = 2;  ///< a value's: 2 (bfloat16, float16) or 4 (fp32, which TF32 reads)
  bool inScratch() const { return arg.kind == CudaArgKind::Scratch; }
  /// Floats of scratch the copy takes (0 for a converted block).
  int64_t scratchFloats(int64_t elements) const { return inScratch() ? (elements * bytes + 3) / 4 : 0; }
};
/// The bytes of a channels-last copy's values for the module's tensor-core math: 4 for TF32
/// (fp32, which the tensor cores truncate as they read it), 2 for bfloat16 and float16.
int channelsLastBytes(const NodeEmitter& em);
/// A tensor [n, c, hw] (fp32) as [n, hw, c] values of the tensor cores' format (c a multiple of
/// 64; 16-bit, or fp32 for TF32: channelsLastBytes): a planned value's copy converted only by the first node that reads
/// it so (or written by its producer: halfCopyInProducer), anything else into scratch at float `at`. The conversion is
/// a transpose through shared memory, a block per 32 pixels x 64 channels of an image, reading along the pixels of a
/// channel (128 bytes a warp) and writing a pixel's 64 channels as 32 pairs (128 bytes a warp; 256 as fp32). `suffix`
/// names the kernel (a node converting two tensors names them apart).
ChannelsLastCopy channelsLastCopy(NodeEmitter& em, const CudaArg& input, int64_t n, int64_t c, int64_t hw, int64_t at,
                                  const std::string& suffix = "cl16");
/// The product reads `copy` as `name`: a view of scratch, or a parameter of its own pointing at
/// the converted block (after the caller's parameters, which must be set by now).
void readChannelsLastCopy(ImplicitGemm& spec, const std::string& name, const ChannelsLastCopy& copy);
/// Whether a channels-last product (ImplicitGemm::aHalf64) serves a reduction over `channels`
/// channels: sm_90a, channels in 64s, and bfloat16 or float16 (conv16ChannelsLast) or TF32
/// (tf32ChannelsLast; its copies fp32, channelsLastBytes).
bool channelsLastCopies(const NodeEmitter& em, int64_t channels);
/// Where a reader converts `out` [n, c, h, w] (f32, c in 64s) into a 16-bit channels-last copy
/// and its producer may write it instead (CudaCodegenOptions::halfCopyInProducer): claims the
/// copy's block for this node and returns it; else nothing.
std::optional<CudaArg> claimChannelsLastCopy(NodeEmitter& em, const Value* out);
/// Elementwise code over y [n, c, hw] -- `code` holds statements for flat element i (an ${I}
/// in scope) that write y[i]; `params` and `args` the kernel's, y among them -- run in the
/// conversion's tiles, so that it also writes y's 16-bit channels-last copy into `copy` (a
/// claimed block): kernel `suffix`_cl16.
void elementwiseWithChannelsLastCopy(NodeEmitter& em, const std::string& suffix, const std::string& params,
                                     const std::string& code, std::vector<CudaArg> args, const CudaArg& copy, int64_t n,
                                     int64_t c, int64_t hw);

// codegen/cuda_kernels_conv.cpp
Expected<void> emitConv2d(NodeEmitter& em);
/// conv2d_backward_data, and conv_transpose2d (the same gather, plus the bias).
Expected<void> emitConv2dBackwardData(NodeEmitter& em);
Expected<void> emitConv2dBackwardWeight(NodeEmitter& em);
/// fused_conv2d: the direct conv kernel with the activation in its store.
Expected<void> emitFusedConv2d(NodeEmitter& em);
/// fused_conv2d_pool: one thread per pooled output computes the conv outputs of its window,
/// activation and max; the conv output is never stored.
Expected<void> emitFusedConv2dPool(NodeEmitter& em);

// codegen/cuda_kernels_pool.cpp (and global_avgpool, family conv below)
Expected<void> emitMaxPool2d(NodeEmitter& em);
Expected<void> emitMaxPool2dGrad(NodeEmitter& em);
Expected<void> emitAvgPool2d(NodeEmitter& em);
Expected<void> emitAvgPool2dGrad(NodeEmitter& em);

// codegen/cuda_kernels_dense.cpp
Expected<void> emitDense(NodeEmitter& em);
/// fused_dense: a cuBLAS GEMM, then one epilogue kernel for bias + activation.
Expected<void> emitFusedDense(NodeEmitter& em);
/// fused_mlp: two layers; a small split batch in two kernels (emitSmallMlpRows), else as
/// fused_dense and dense, the hidden layer in scratch.
Expected<void> emitFusedMlp(NodeEmitter& em);
Expected<void> emitMatMul(NodeEmitter& em);

Expected<void> emitSumTo(NodeEmitter& em);
Expected<void> emitSoftmaxFamily(NodeEmitter& em);  ///< softmax, log_softmax and their grads
Expected<void> emitArgMax(NodeEmitter& em);
Expected<void> emitAccuracy(NodeEmitter& em);
Expected<void> emitSoftmaxCrossEntropy(NodeEmitter& em);
Expected<void> emitSoftmaxCrossEntropyGrad(NodeEmitter& em);
Expected<void> emitMse(NodeEmitter& em);

// The op families' emitters (codegen/cuda_kernels_<family>.cpp), one block per family.

// ==== family elementwise: elementwise math, comparisons, where, reductions ====
// (codegen/cuda_kernels_elementwise_family.cpp; the math rows are formulas: emitElementwise)

/// equal, not_equal, less, less_equal, greater, greater_equal: bool results, broadcasting,
/// operands of any element type.
Expected<void> emitCompare(NodeEmitter& em);
/// where(cond, a, b), broadcasting; a and b of any element type.
Expected<void> emitWhere(NodeEmitter& em);
/// reduce_sum, reduce_mean, reduce_max, reduce_min over any axes.
Expected<void> emitReduce(NodeEmitter& em);
// (end of family elementwise)

// ==== family norm: normalisation, dropout ====
// codegen/cuda_kernels_norm.cpp. The normalisations reduce in double (a block per group and
// split, splits merged in order), then apply per element; the intermediates live in scratch.
Expected<void> emitBatchNorm(NodeEmitter& em);
Expected<void> emitBatchNormTrain(NodeEmitter& em);
Expected<void> emitBatchNormTrainGrad(NodeEmitter& em);
Expected<void> emitBatchNormTrainWeightGrad(NodeEmitter& em);
Expected<void> emitBatchNormStats(NodeEmitter& em);
Expected<void> emitBatchNormUpdate(NodeEmitter& em);
Expected<void> emitLayerNorm(NodeEmitter& em);
Expected<void> emitLayerNormGrad(NodeEmitter& em);
Expected<void> emitGroupNorm(NodeEmitter& em);
Expected<void> emitGroupNormGrad(NodeEmitter& em);
/// dropout_train: Philox-4x32-10 of ir/scalar_math.h, the interpreter's mask bit for bit.
Expected<void> emitDropoutTrain(NodeEmitter& em);
// (end of family norm)

// ==== family conv: convolution and pooling ====
// codegen/cuda_kernels_pool.cpp. (conv2d, conv_transpose2d and the pools above;
// conv_transpose2d's forward is emitConv2dBackwardData's gather kernel with a bias.)
/// global_avgpool: a double sum in fixed order, one warp per plane (one block per plane when
/// the planes are too few to fill the GPU with warps).
Expected<void> emitGlobalAvgPool(NodeEmitter& em);
// (end of family conv)

// ==== family shape: shape and data movement, batched matmul, attention ====
// codegen/cuda_kernels_shape.cpp
Expected<void> emitConcat(NodeEmitter& em);
Expected<void> emitSlice(NodeEmitter& em);
Expected<void> emitSliceGrad(NodeEmitter& em);
Expected<void> emitTranspose(NodeEmitter& em);
Expected<void> emitPad(NodeEmitter& em);
Expected<void> emitPadGrad(NodeEmitter& em);
/// gather: bad indices reported through the status words (CudaErrorKind::IndexOutOfRange).
Expected<void> emitGather(NodeEmitter& em);
Expected<void> emitGatherGrad(NodeEmitter& em);
Expected<void> emitExpand(NodeEmitter& em);
/// squeeze, unsqueeze: a copy step, skipped when the plan aliases the result.
Expected<void> emitView(NodeEmitter& em);
/// cuBLAS strided-batched GEMMs, one per uniform run of the (broadcast) batch.
Expected<void> emitBatchMatMul(NodeEmitter& em);
/// softmax, log_softmax and their grads over any axis (the last: emitSoftmaxFamily).
Expected<void> emitSoftmaxAxis(NodeEmitter& em);
Expected<void> emitCausalMask(NodeEmitter& em);
// (end of family shape)

// ==== family train: losses and optimizers ====
/// sgd_update, sgd_momentum_update, adam_update: one kernel for one parameter.
Expected<void> emitUpdate(NodeEmitter& em);
/// True when updates `a` and `b` (one op, an in-place update) can share one horizontally
/// fused kernel: same element type, attributes, and step, learning-rate and grad_scale operands.
bool updatesFuse(const Node& a, const Node& b);
/// One kernel for a run of updates that updatesFuse pairwise (group[0] launches it; every
/// member keeps its comment and its error site).
Expected<void> emitUpdateGroup(const std::vector<NodeEmitter*>& group);
Expected<void> emitBceWithLogits(NodeEmitter& em);
Expected<void> emitBceWithLogitsGrad(NodeEmitter& em);
/// one_hot: out-of-range labels reported like the cross-entropy kernels'.
Expected<void> emitOneHot(NodeEmitter& em);
/// global_sum_squares: per-block sums in double, then one ordered sum.
Expected<void> emitGlobalSumSquares(NodeEmitter& em);
Expected<void> emitLossScaleUpdate(NodeEmitter& em);
// (end of family train)

/// The prelude every generated translation unit starts with (types, the scalar math and the
/// elementwise formulas, warp and block reductions, error reporting).
std::string prelude();

/// The warpgroup-MMA helpers (CudaCodegenOptions::wgmma) the TF32 implicit GEMMs then use:
/// wgmma on sm_90a, and for the CPU emulator the same product read through the descriptors.
std::string wgmmaPrelude();

/// The mark NodeEmitter::kernel leaves in the source where kernel `name`'s text goes.
std::string kernelPlaceholder(const std::string& name);
/// Horizontal kernel fusion (CudaCodegenOptions::groupKernels): merges runs of independent
/// kernel steps of `m` into grouped steps (CudaStep::parts), kernel names updated.
void groupKernels(CudaModuleSource& m, const MemoryPlan& plan);
/// `kernels` (the nodes' text with placeholders) with every kernel's text in: a kernel of its
/// own as an extern "C" __global__ function; a grouped one as a __device__ body, and after
/// all of them the grouped launches' kernels. With `share` (CudaCodegenOptions::shareKernels)
/// a kernel of its own whose text and dynamic shared memory repeat an earlier one's is left
/// out (a comment in its place) and its step launches the earlier one: m's steps and
/// kernelNames are updated. `definitions` gets each kernel's definition by itself, in launch
/// order (a grouped launch's parts' bodies with its kernel): what the translation units hold.
std::string finishKernels(CudaModuleSource& m, const std::string& kernels, bool share,
                          std::vector<std::pair<std::string, std::string>>* definitions);

/// A small fp32 product (CudaCodegenOptions::smallGemms) as generated kernels: a tiled SIMT
/// kernel, split over the inner dimension with an in-order sum of the slices when the tiles
/// are few (codegen/cuda_kernels_gemm.cpp). False (nothing emitted) when the product is not
/// small, not fp32, or the option is off: the caller issues a cuBLAS call. `ordinal` numbers
/// the node's products.
bool emitSmallGemm(NodeEmitter& em, const CudaGemmCall& call, int ordinal, const CudaGemmEpilogue* epilogue = nullptr);
/// Whether emitSmallGemm takes `call` under `options` (the caller may then fold an epilogue).
bool smallGemmApplies(const CudaCodegenOptions& options, const CudaGemmCall& call);
/// The scratch bytes emitSmallGemm's kernels use for `call` (a split product's slices; 0 when
/// not split or not small): a caller keeping a tensor of its own in scratch puts it past them.
int64_t smallGemmScratchBytes(const CudaCodegenOptions& options, const CudaGemmCall& call);
/// fused_mlp's small form: when `first` (the hidden layer's product, one product, alpha 1, beta
/// 0) is a small fp32 product split into many slices and the hidden width fits a block, its
/// tiles into scratch, then one kernel a row: the slices added in order, `hidden`'s bias and
/// activation, and the row's `outputs` values of the second layer (w2 [outputs, hidden], bias
/// b2) into y -- term for term the sums emitSmallGemm's split and warp-per-output forms make.
/// False, nothing emitted, otherwise.
bool emitSmallMlpRows(NodeEmitter& em, const CudaGemmCall& first, const CudaGemmEpilogue& hidden, CudaArg w2, CudaArg b2,
                      int64_t outputs, CudaArg y);

}  // namespace shoal::cudagen
