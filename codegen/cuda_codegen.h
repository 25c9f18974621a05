// CUDA codegen: one CUDA C++ translation unit per Program (one extern "C" kernel per
// scheduled kernel), plus the launch plan the CUDA runtime follows (kernels and cuBLAS calls).
#pragma once

#include <string_view>

// Needs no CUDA: emitting source is plain string work, so it builds and is tested everywhere.

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "codegen/nvrtc.h"
#include "passes/program.h"

namespace shoal {

/// The words of every "this op has no CUDA kernel for these operands" error (an op and types
/// the CUDA backend does not cover, not a malformed program): callers that report coverage,
/// as `shoal conformance` does, tell it apart by them.
inline constexpr std::string_view kNoCudaKernel = "no CUDA kernel: ";

/// What a launch argument points at: a planned value's buffer, the executor's scratch buffer
/// (a few reductions need one; its size is CudaModuleSource::scratchBytes), the status
/// words kernels report user errors in (see CudaErrorSite), or a block of the prepared region
/// (parameters rearranged once, see CudaStep::prepare; its size is
/// CudaModuleSource::preparedBytes), or a block of the converted region (a planned value's copy
/// in another layout, shared by the nodes that read it so; see CudaModuleSource::converted).
enum class CudaArgKind { Value, Scratch, Status, Prepared, Converted };

/// One pointer argument of a kernel launch or a cuBLAS call.
struct CudaArg {
  CudaArgKind kind = CudaArgKind::Value;
  /// For Value; for a Prepared block that holds a hoisted value (CudaModuleSource::hoisted),
  /// that value (for descriptions: the block is found by `offset`); for Converted, the value
  /// whose copy the block holds.
  const Value* value = nullptr;
  int64_t offset = 0;  ///< for Prepared and Converted: bytes from the region's start
};

/// A row-major GEMM for cuBLAS: C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C, where A
/// is stored [m,k] ([k,m] when transA) with row stride lda, and likewise B, C. With batch > 1,
/// `batch` such products (cublas<t>gemmStridedBatched): product i reads A at element
/// offsetA + i·strideA of its buffer (a stride of 0 reuses one matrix), likewise B and C.
struct CudaGemmCall {
  DType dtype = DType::F32;  ///< F32 (cublasSgemm) or F64 (cublasDgemm)
  bool transA = false, transB = false;
  int m = 0, n = 0, k = 0;
  int lda = 0, ldb = 0, ldc = 0;
  double alpha = 1, beta = 0;
  CudaArg a, b, c;
  int batch = 1;
  int64_t strideA = 0, strideB = 0, strideC = 0;  ///< elements between consecutive products
  int64_t offsetA = 0, offsetB = 0, offsetC = 0;  ///< elements from the buffer's start to product 0
  /// An epilogue computed by cuBLASLt as it stores C (CudaCodegenOptions::gemmEpilogues; one
  /// product, beta 0): bias[j] (a vector of n, null: none) added to each output of column j,
  /// then `activation` ("" none, or "relu"). The executor calls cublasLtMatmul for such a call.
  CudaArg bias;
  std::string activation;
  bool hasEpilogue() const { return bias.value != nullptr || !activation.empty(); }
};

/// A tensor map (a TMA descriptor, `cp.async.bulk.tensor`'s operand) that a kernel takes by value
/// after its pointer arguments, as parameter `SHOAL_TMAP(name)`: the executor encodes it over
/// the address of the step's pointer argument `baseArg` plus `offset` bytes once it has bound
/// the arguments (cuTensorMapEncodeTiled / cuTensorMapEncodeIm2col), the CPU emulator as its
/// own form of the same description. Its shared-memory boxes are always 128-byte swizzled
/// (16-byte chunk j of a 128-byte row r at chunk j ^ (r & 7): wgmma's K-major layout), so a
/// box's innermost extent is 128 bytes; out-of-range elements read as zeros.
struct CudaTensorMap {
  std::string name;
  int baseArg = 0;
  int64_t offset = 0;
  int elementBytes = 2;  ///< 2 (16-bit values' bits) or 4 (fp32's)
  int rank = 2;          ///< 2 (tiled) or 4 (im2col: C, W, H, N)
  bool im2col = false;
  int64_t dims[4] = {1, 1, 1, 1};  ///< innermost first
  int64_t strides[3] = {0, 0, 0};  ///< bytes between consecutive indices of dims 1..rank-1
  /// Tiled: the box's extent in each dim (box[0] * elementBytes = 128).
  int box[4] = {1, 1, 1, 1};
  /// Im2col (dims C, W, H, N): a pixel's `channels` channels (channels * elementBytes = 128)
  /// for each of `pixels` filter corners, walked W-fastest through the bounding box [lower,
  /// dim - 1 + upper] (W then H) by `stride` (W then H), the next image after the box's last
  /// row; each at the instruction's offsets (a tap's) from its corner.
  int channels = 0, pixels = 0;
  int lower[2] = {0, 0}, upper[2] = {0, 0}, stride[2] = {1, 1};
  int64_t boxBytes() const {
    return int64_t(elementBytes) * (im2col ? int64_t(channels) * pixels : int64_t(box[0]) * box[1] * box[2] * box[3]);
  }
};

/// The kinds of step a Program becomes on the GPU.
enum class CudaStepKind {
  Kernel,    ///< launch `kernel` over `args`
  Gemm,      ///< one cuBLAS call
  Copy,      ///< device-to-device copy of `bytes` from args[0] to args[1] (flatten, reshape,
             ///< same-type cast); skipped when both are the same buffer
  Constant,  ///< fill the node's result with its literal (the executor uploads it)
  AllReduce, ///< all_reduce: copy args[0] into args[1] (unless the same buffer), then combine
             ///< args[1] over the ranks in place through the executable's communicator (NCCL);
             ///< adjacent AllReduce steps go out as one group (a bucket)
};

/// One step of the launch plan, in execution order.
struct CudaStep {
  CudaStepKind kind = CudaStepKind::Kernel;
  const Node* node = nullptr;  ///< the IR node this step implements
  std::string kernel;          ///< Kernel: the extern "C" entry point
  std::vector<CudaArg> args;   ///< Kernel: one pointer per kernel parameter, in order
  unsigned grid[2] = {1, 1};   ///< Kernel: grid x, y
  unsigned block = 256;        ///< Kernel: threads per block (x)
  unsigned sharedBytes = 0;    ///< Kernel: dynamic shared memory (SHOAL_DYNAMIC_SHARED), bytes
  /// Kernel: the kernels of other steps this one launch runs side by side, each over its own
  /// blocks in order (CudaCodegenOptions::groupKernels; `node` is the first one's); empty for
  /// a kernel of its own.
  std::vector<CudaStep> parts;
  /// Kernel: its parameter list and body as generated (the source assembles them).
  std::string params, body;
  /// A function of the parameters alone (their layout for a tensor-core product, or a value
  /// computed from them, CudaModuleSource::hoisted; written into Prepared blocks): the executor
  /// runs it before a step when the parameters changed since it last did (initialised,
  /// written, adopted, or a training step of programs sharing them), not every step, and never
  /// inside the captured graph. A Kernel, Gemm or Copy step. Only emitted with
  /// CudaCodegenOptions::prepareParameters.
  bool prepare = false;
  /// Kernel: the floating-point operations of its tensor-core product, counted as the
  /// operation it computes (a convolution's 2 · pixels · filters · channels · taps, not the
  /// padding its reduction adds), for the profile's achieved rate; 0 for other kernels.
  double flops = 0;
  /// Kernel: blocks an SM its registers must leave room for (__launch_bounds__'s second
  /// argument: at most 65536 / (block * minBlocks) registers a thread); 0: no bound.
  unsigned minBlocks = 0;
  /// Kernel: the tensor maps it takes after `args`' pointers, in order (never grouped).
  std::vector<CudaTensorMap> tensorMaps;
  CudaGemmCall gemm;           ///< Gemm
  int64_t bytes = 0;           ///< Copy, AllReduce
};

/// The user errors kernels can detect (the CPU interpreter reports the same ones).
enum class CudaErrorKind {
  LabelOutOfRange,  ///< a class label outside [0, cols): row and label in the status word
  AdamStep,         ///< adam_update with step < 1: the step (as double bits) in the payload
  IndexOutOfRange,  ///< a gather index outside [-cols, cols): position and index, as for labels
  IntegerDivisionByZero,  ///< integer elementwise arithmetic that is not finite: the element, as a row
};

/// Where a kernel reports an error. The status buffer holds 1 + 2 * sites u64 words, zeroed
/// at the start of every step: word 0 is nonzero once any kernel reported an error (later
/// optimizer updates then skip, like the interpreter, which stops at the first error); site
/// s owns words 1 + 2s (flag) and 2 + 2s (payload). For LabelOutOfRange the flag is
/// ~(row << 32 | uint32(label)), the maximum over offenders, i.e. the first bad row.
struct CudaErrorSite {
  CudaErrorKind kind = CudaErrorKind::LabelOutOfRange;
  const Node* node = nullptr;
  int64_t cols = 0;  ///< LabelOutOfRange: the number of classes; IndexOutOfRange: the axis extent
};

/// A tensor-core product's block tile and reduction slices: 128 x 128 or 256 x 64 outputs a
/// block, the reduction cut in `splits` slices whose sums a second kernel adds.
struct ProductTile {
  int bm = 0, bn = 0;
  int64_t splits = 1;
  bool operator==(const ProductTile&) const = default;
  /// "128x128/2": rows x columns / slices.
  std::string describe() const;
  /// The inverse of describe(); nullopt for anything else.
  static std::optional<ProductTile> parse(std::string_view s);
};

/// A tensor-core implicit GEMM of the module and the tiles it could take (what an autotuner
/// times, CudaCodegenOptions::tuningVariant).
struct CudaProduct {
  std::string kernel;                    ///< its main kernel's name ("k8_fused_conv2d_..._tc")
  const Node* node = nullptr;
  std::vector<ProductTile> candidates;   ///< [0]: the cost model's choice
  ProductTile chosen;                    ///< what the module computes it with
};

/// One NVRTC translation unit of a module: the prelude and a run of the module's kernels.
struct CudaUnit {
  std::string name;                      ///< the module's name, or "<module>_u<i>" of several
  std::string source;
  std::vector<std::string> kernelNames;  ///< the kernels it defines, in launch order
};

/// The generated source of a Program and how to run it.
struct CudaModuleSource {
  std::string name;                    ///< module name: the graph's, made an identifier
  std::string source;                  ///< deterministic: the same Program gives the same bytes
  /// What NVRTC compiles: `source` itself as one unit, or (CudaCodegenOptions::unitBytes) the
  /// kernels cut into runs of about that much text, each unit the prelude and its run, so the
  /// units compile side by side on threads. Every kernel is in exactly one unit.
  std::vector<CudaUnit> units;
  std::vector<std::string> kernelNames;
  std::vector<CudaStep> steps;         ///< every node's work, in program order
  int64_t scratchBytes = 0;            ///< largest scratch any step needs
  int64_t preparedBytes = 0;           ///< the prepared region: every Prepared block, 256-byte aligned
  std::vector<CudaErrorSite> errorSites;
  std::vector<CudaProduct> products;   ///< the tensor-core products, in program order
  /// Values computed from the parameters alone (parameterDerivedNodes; a folded batch norm's
  /// weights, say) that `prepare` steps make once per set of parameters
  /// (CudaCodegenOptions::prepareParameters): each lives at this byte offset of the prepared
  /// region, not in its arena slot, and every argument naming it is a Prepared one. Values
  /// sharing a buffer in the plan (a view, an in-place result) share one block.
  std::unordered_map<const Value*, int64_t> hoisted;
  /// Planned values copied in another layout for the products that read them so -- a 16-bit
  /// channels-last copy of a convolution's input or gradient (CudaCodegenOptions::
  /// conv16ChannelsLast) -- converted once, by the first node that reads it, and shared by the
  /// rest (a convolution and its downsampling twin reading one input; a forward and its weight
  /// gradient; a data and a weight gradient reading one gradient). Each block lives from the
  /// first node that reads it to the last; blocks whose lives do not meet share bytes.
  struct ConvertedBlock {
    const Value* value = nullptr;
    int64_t bytes = 0;
    int first = 0, last = 0;  ///< program indices of the first and last node reading it
    int64_t offset = 0;       ///< bytes from the converted region's start
  };
  std::vector<ConvertedBlock> converted;
  int64_t convertedBytes = 0;  ///< the converted region: the blocks laid out, 256-byte aligned
  /// Status words the executor allocates: 1 + 2 * errorSites.size().
  int64_t statusWords() const { return 1 + 2 * int64_t(errorSites.size()); }
  int64_t statusBytes() const { return statusWords() * int64_t(sizeof(uint64_t)); }
  /// The device memory an executable of this module allocates over `plan` (one arena, one
  /// persistent region): the plan's two regions, the status words, scratch, the prepared and
  /// the converted regions -- not cuBLAS's workspace, which the device context holds.
  int64_t deviceBytes(const MemoryPlan& plan) const {
    return plan.arenaBytes + plan.persistentBytes + statusBytes() + scratchBytes + preparedBytes + convertedBytes;
  }
};

/// Reads the status words after a step: the first error a kernel reported (in program order,
/// as the interpreter would have stopped there), worded like the interpreter's, or success.
Expected<void> checkCudaStatus(const CudaModuleSource& module, const uint64_t* words);

/// Choices the codegen makes beyond the program itself.
/// The operand format of tensor-core convolutions (fp32 accumulation in every case).
enum class TensorCoreMath { Off, Tf32, Bf16, Fp16 };
/// "tf32", "bf16", "fp16" (and "off").
std::string_view tensorCoreMathName(TensorCoreMath m);
/// "1" and "tf32" -> Tf32, "bf16", "fp16", "0" and "off" -> Off; nullopt for anything else.
std::optional<TensorCoreMath> parseTensorCoreMath(std::string_view s);

struct CudaCodegenOptions {
  /// Horizontal fusion: a run of consecutive optimizer updates of one kind (adam_update,
  /// sgd_update, sgd_momentum_update) with the same hyperparameters and scalar operands (step,
  /// learning rate, grad_scale) becomes one kernel over all their parameters (fewer launches and graph
  /// nodes; every element's arithmetic is the per-parameter kernel's, so the results are
  /// bitwise the same).
  bool horizontalUpdates = true;
  /// Convolutions (forward, both gradients, conv_transpose2d; one group, f32 tensors) as
  /// implicit GEMMs on tensor cores with fp32 accumulation, their operands rounded to this
  /// format, instead of the exact fp32 direct kernels. Experimental: checked on the CPU
  /// emulator, not yet measured on a GPU; off by default (SHOAL_CUDA_TC_CONV=tf32|bf16|fp16).
  TensorCoreMath tensorCores = TensorCoreMath::Off;
  /// With tensorCores Off: a convolution (forward, both gradients, conv_transpose2d; one group,
  /// f32) whose product has at least this many multiply-adds (output pixels x filters x
  /// channels x taps) runs as an implicit GEMM on the CUDA cores -- the tensor-core kernels'
  /// gathers, stages and tiles, each output the fp32 FMAs of its products in reduction order
  /// (slices added in double) -- instead of the direct kernels, which compute an output a
  /// thread. Negative: never. The default and fp32ConvGemmMinWidth's are measured (docs/PERF.md,
  /// "exact fp32 convolutions as implicit GEMMs"): ResNet-18 5-9x faster than on the direct
  /// kernels on an H200, the seed CNN's 3 x 3 single-channel one at batch 8192 2x slower.
  int64_t fp32ConvGemmMinMacs = int64_t(1) << 24;
  /// ... and whose filters and reduction per output (channels x taps) are both at least this:
  /// narrower products leave most of a tile's rows or stages padding, where the direct kernels
  /// win (the seed CNN's 32 filters over 1 x 3 x 3; resnet_mnist's 16 filters).
  int64_t fp32ConvGemmMinWidth = 64;
  /// With tensorCores Off: 3 x 3 stride-1 convolutions (forwards, data and weight gradients,
  /// stride-1 conv_transpose2d; one group, no dilation) in Winograd's F(m x m, 3 x 3), m this (2 or 4;
  /// 0: never), where they have at least fp32WinogradMinChannels channels (a multiple of 8) and
  /// filters and at least fp32WinogradMinMacs multiply-adds in the direct form
  /// (codegen/cuda_kernels_winograd.cpp): 4x fewer multiply-adds (F(2 x 2): 2.25x) on the
  /// CUDA cores, and sums that are not the direct ones -- fp32 arithmetic throughout, with an
  /// error bounded by the transforms' additions as well as the channels' (RMS ~1e-6 of the
  /// outputs for F(4 x 4), ~1.5e-7 for F(2 x 2) and the direct sums). Measured on an H200
  /// (docs/PERF.md, "Winograd"): ResNet-18 fp32 batch 256 26.7 -> 15.6 ms, the training step
  /// at 128 43.3 -> 27.9 ms with F(4 x 4); at batch 1 (a 3 x 3 layer 116 M multiply-adds, its
  /// grids tiny) the three kernels are slower than one, hence the threshold (2^30: batch 10 and
  /// more of ResNet's 3 x 3 layers).
  int fp32Winograd = 4;
  int64_t fp32WinogradMinChannels = 64;
  int64_t fp32WinogradMinMacs = int64_t(1) << 30;
  /// Matrix products of fp32 operands of at most 2^28 multiply-adds as generated kernels
  /// (exact fp32, as cuBLAS computes them unless TF32 or 16-bit GEMMs are on) instead of
  /// cuBLAS calls: no cuBLAS first-call cost, one launch where cuBLAS often takes two. Off
  /// where cuBLAS's GEMMs are to run in TF32 or with 16-bit operands.
  bool smallGemms = true;
  /// dense's bias and fused_dense's bias and ReLU computed by cuBLASLt as it stores the product
  /// (CUBLASLT_EPILOGUE_BIAS, _RELU, _RELU_BIAS) where the product goes to cuBLAS, instead of a
  /// bias kernel before it (dense, beta = 1) or an epilogue kernel after it (fused_dense):
  /// one launch and one pass over the output fewer. The sum is the same one rounding of
  /// product + bias. Other activations keep their kernel (SHOAL_CUDA_GEMM_EPILOGUE=0: all do).
  bool gemmEpilogues = true;
  /// Horizontal kernel fusion: a run of consecutive kernels of different nodes, none of which
  /// writes memory another one reads or writes (where the memory plan places their values),
  /// becomes one launch whose blocks run each kernel's own blocks side by side (a loss, the
  /// accuracy and the loss's gradient; the products and bias sums of a layer's backward pass).
  /// Kernels with two-dimensional grids, dynamic shared memory or scratch, and in-place
  /// updates (they read the status words other kernels write) stay alone.
  bool groupKernels = true;
  /// Kernels whose text is the same (parameters, body, launch bounds) and whose launches take
  /// the same dynamic shared memory are emitted once, and every such step launches the first
  /// one under its name: a transformer's repeated blocks and a network's repeated stages compile
  /// once. NVRTC's time follows the kernels' text (ViT-tiny's training step: 1,218 kernels,
  /// 66 s on a 2-core machine, before). Results are bitwise the same (the same code runs).
  /// Off: a kernel of its own for every step.
  bool shareKernels = true;
  /// Kernel text per NVRTC translation unit (CudaModuleSource::units): a module whose kernels'
  /// text is longer is cut into ceil(length / unitBytes) units of about equal text, in launch
  /// order, which compileCudaUnits compiles side by side (NVRTC takes one thread per unit). A
  /// function of the program alone, never of the machine, so every machine caches the same
  /// units. Each unit pays for the prelude again (~0.08 s of NVRTC). On a 16-core H200 host the
  /// first Trainer::create of eight ONNX imports was 3.4-7.1x faster than with one unit, 16 KiB
  /// a little faster than 32 KiB on seven of them. 0: the whole module one unit.
  int64_t unitBytes = 16 * 1024;
  /// Filters a thread of the register-blocked fused_conv2d_pool kernel computes (its window's
  /// conv outputs for each): 0 picks by size (the most, up to 16, that still leave enough
  /// threads to fill the GPU); N > 0 takes the largest power of two up to N that divides the
  /// filters of a group (tests set it to reach the blocked paths with small shapes).
  int convPoolFilters = 0;
  /// Work that depends on the parameters alone done by `prepare` steps, once per set of
  /// parameters, instead of in every step: a tensor-core convolution's weights rearranged (in
  /// the product's order, rounded to its format) into a prepared block instead of scratch, and
  /// every value computed from parameters and state alone (CudaModuleSource::hoisted: a folded
  /// batch norm's scale, weights and bias) kept in the prepared region. Applies to programs that
  /// write no parameter (inference, evaluation; a training step changes its weights every step,
  /// so that work stays in the step). Not hoisted: a graph output (read from its plan slot), a
  /// value sharing a buffer with one computed in the step, a node that reports errors through
  /// the status words (which every step clears), and what reads any of those.
  bool prepareParameters = true;
  /// A tensor-core fused_conv2d with output_expr (fuse-conv-epilogue) computes the program in its
  /// stores when its output has at most this many elements; larger ones store the biased sums
  /// and run the program in a second, coalesced kernel over the output. Measured on an H200
  /// (ResNet-18, the program in every store): batch 1 (outputs up to 200,704 elements) 0.338 ->
  /// 0.316 ms TF32, batch 32 (802,816 and more) 1.827 -> 1.926 ms. Tests lower it to reach the
  /// second form with small shapes.
  int64_t convEpilogueInStoreOutputs = int64_t(1) << 18;
  /// Tensor-core implicit GEMMs through sm_90a's warpgroup MMA (wgmma) instead of mma.sync:
  /// each of a block's two warpgroups multiplies its rows of a shared-memory stage. TF32 reads
  /// both operands straight from the stage (no ldmatrix, no fragment registers); the operands
  /// the kernels gather (activations, gradients) reach the tensor cores as fp32 bits, which
  /// they truncate to TF32, while the packed weights are rounded to nearest first, as on
  /// mma.sync. bfloat16 and float16, where B is packed (the forward and data-gradient
  /// convolutions' weights), pack B in the format and read it from the stage, A's fragments
  /// converted into registers as on mma.sync (same rounding); the weight gradient (both
  /// operands gathered) see wgmmaTf32Gathered16. The module must be compiled for sm_90a (the
  /// runtime does so on a compute capability 9.0 device: cudaTargetArch).
  bool wgmma = false;
  /// With wgmma, a bfloat16 or float16 implicit GEMM whose operands are both gathered (the
  /// weight gradient: x and dy) multiplies through wgmma in TF32, its fp32 operands truncated
  /// to TF32 by the tensor cores (10 mantissa bits: more than bfloat16's 7, float16's 10 with
  /// fp32's range), instead of 16-bit mma.sync, which would have to round them in registers
  /// first; wgmma's 16-bit form needs B in shared memory in the format, which a gathered B
  /// is not. Off: mma.sync in the format.
  bool wgmmaTf32Gathered16 = true;
  /// With wgmma, a bfloat16 or float16 forward convolution whose channels are a multiple of 64
  /// reads its input channels-last in the format: a first kernel converts x into [n, h, w, c]
  /// 16-bit values (once for all the nodes that read it so, CudaModuleSource::converted), and
  /// the implicit GEMM copies 64 channels of a pixel (128
  /// bytes) a stage row, 64 reduction steps a stage, both operands read by wgmma from shared
  /// memory (ImplicitGemm::aHalf64) -- where the other 16-bit forwards gather fp32 planes 16
  /// steps a stage and convert A in registers. Data gradients whose filters are multiples of
  /// 64 do the same with the gradient; weight gradients whose channels and filters are convert
  /// x and dy and multiply both MN-major in the format (ImplicitGemm::halfMN) instead of as
  /// TF32 products (wgmmaTf32Gathered16). Default: on -- measured on an H200 (docs/PERF.md,
  /// 2026-12-05 (device)): ResNet-18 bf16 at batch 256 8.97 -> 5.40 ms, a training step at batch
  /// 128 15.55 -> 9.95 ms, against torch.compile's 6.82 and 10.56 in the same call.
  bool conv16ChannelsLast = true;
  /// conv16ChannelsLast's products in four stages, two of them ahead of the one multiplied,
  /// each step waiting only for the products of the stage before last (wgmma_wait<1>) before
  /// its barrier, so that the tensor cores work on through it; where by default three or four
  /// stages run one fewer ahead and each step waits for all of its products (the tensor cores
  /// idle through the barrier and the copies' issue). An experiment for a device to decide;
  /// default off.
  bool halfStageOverlap = false;
  /// conv16ChannelsLast's form for TF32: the forwards and data gradients of channels (filters)
  /// in 64s read fp32 channels-last copies of their inputs (gradients) 32 channels a stage row
  /// -- the same 128-byte rows, copies, ring and tiles as the 16-bit products, both operands
  /// read by wgmma's TF32 form (m64nNk8, K-major: TF32 has no transposed form, so the weight
  /// gradients keep their gathers) from the 128-byte swizzle; the gathered operand truncated by
  /// the tensor cores as the TF32 gathers' is, the packed weights rounded. An experiment for a
  /// device to decide (docs/PERF.md, 2026-12-05 (session 3)); default off.
  bool tf32ChannelsLast = false;
  /// conv16ChannelsLast's products of more than 128 columns (ResNet-18's layers 3 and 4: 256
  /// and 512 filters; their weight gradients' filters, their data gradients' channels) in
  /// blocks of 128 x 256 -- each warpgroup one m64n256k16 product a 16-step, so B's rows are
  /// read from shared memory once for 64 rows of A where 128 x 128 reads them once for 64 rows
  /// of 128 columns: (64 + 256) x 32 bytes for 2 x 64 x 256 x 16 products instead of (64 + 128)
  /// x 32 for half as many -- in four stages of 48 KB (one block an SM), two of them ahead, the
  /// products overlapped across the barrier as halfStageOverlap's. The autotuner may pick the
  /// tile whatever this says (it is one of the candidates); this makes it the cost model's
  /// choice. Default off: measured on an H200 (docs/PERF.md, 2026-12-05 (session 2)), ResNet-18
  /// bf16 at batch 256 5.40 -> 5.72 ms (stride-2 layers and short grids lose: the copies'
  /// instructions have half the warps to issue them), a training step 10.0 -> 9.64 ms.
  bool halfWideTile = false;
  /// conv16ChannelsLast's products (forwards, data and weight gradients: ImplicitGemm::aHalf64,
  /// halfMN) with producer warps: a third warpgroup issues every copy of every stage into a ring
  /// of 4-7 stages (what 192 KB holds) and hands each to the two multiplying warpgroups through named barriers
  /// (`full` a stage when its copies have landed, `empty` when its products are done), so the
  /// multiplying warps issue only their wgmma and the waits -- no copies, no block-wide barrier
  /// -- and their products run on while the next stages are copied. 384 threads, one block an
  /// SM. An experiment for a device to decide (docs/PERF.md, 2026-12-05 (session 3)); default
  /// off.
  bool halfProducerWarps = false;
  /// conv16ChannelsLast's forwards and data gradients of 65-128 columns (ResNet-18's layer 2)
  /// in blocks of 256 rows (pixels) x 128 columns multiplied the other way round: each
  /// warpgroup's m64 rows are 64 of the columns and its n256 the 256 pixels, so that an
  /// m64n256k16 reads (64 + 256) x 32 bytes of operands as halfWideTile's do, where 128 x 128
  /// reads (64 + 128) x 32 for half the products; four stages of 48 KB, overlapped, one block an
  /// SM. The autotuner may pick it whatever this says; this makes it the cost model's choice.
  /// Default off: measured slower on an H200 (layer 2's 3 x 3 at batch 256 372 -> 292 TFLOP/s).
  bool halfSwappedTile = false;
  /// conv16ChannelsLast's forwards and data gradients order their reduction (block of 64
  /// channels, tap, channel) instead of (tap, channel) and copy A through L1 (cp.async.ca,
  /// where .cg reads L2 only): a 3 x 3's nine taps of one channel block then come one stage after
  /// another, each reading mostly the pixels the previous tap read (shifted by one pixel or one
  /// image row), so most of A's bytes come from L1 instead of L2 -- whose bandwidth bounds a 128
  /// x 128 tile of 64-step stages at 64 products a byte (~5.5-7 TB/s of L2 on an H100/H200:
  /// 350-450 TFLOP/s). The weights' packing follows the order. Default off: measured on an
  /// H200, +1-2 % on layers 2-3, -14 % on layer 4 (512 channels), and Nsight Compute found L2
  /// at 38-42 % of its bandwidth -- not the bound.
  bool halfTapReuse = false;
  /// A 16-bit forward convolution of at most 4 channels (a network's stem: ResNet's 7 x 7 at
  /// stride 2 over RGB, MobileNet's and EfficientNet's 3 x 3, ConvNeXt's 4 x 4 at stride 4) with
  /// kernel rows of at most 8 taps, an even column stride and no column dilation, on sm_90a:
  /// a first kernel converts x into scratch as [n, hp, wp, 4] values of the format with its
  /// padding written as zeros (hp, wp covering every window; wp even), and the implicit GEMM
  /// (ImplicitGemm::aHalf64) copies a pixel's two kernel rows a stage -- each 8 pixels x 4
  /// channels, 64 contiguous 16-byte aligned bytes with no bounds to test -- into the
  /// 128-byte rows the other 16-bit products read; the reduction (kernel row, column < 8,
  /// channel < 4), its padding zero weights (a 7 x 7 over 3 channels: 256 steps for 147, where
  /// the fp32 channels-last gathers it replaces copy 16 bytes a tap and multiply in 16-step
  /// stages). Its weight gradient, where the filters are in 64s, reads the same padded copy as
  /// MN-major atoms of two kernel rows (ImplicitGemm::halfMN) against dy's 16-bit channels-last
  /// copy. In TF32 the forward's copy holds fp32 (a pixel's kernel row is a whole 128-byte stage
  /// row of 32 steps, any column stride; the weight gradient keeps its gathers). An experiment for a device to decide
  /// (docs/PERF.md, 2026-12-05 (session 4)); default off.
  bool halfStem = false;
  /// conv16ChannelsLast's products (forwards, data and weight gradients; TF32's forwards and data
  /// gradients with tf32ChannelsLast) with their stages copied by sm_90's copy engine: one
  /// producer warp, one thread of which issues each stage as boxes -- A's 128-byte rows as im2col
  /// boxes of the channels-last copy (a tap's pixels for the block's rows, zeros outside the
  /// image), B's as tiles of the packed weights or of dy's copy -- completing on the slot's
  /// mbarrier, which the multiplying warps wait at (`empty` stays a named barrier). Tensor maps
  /// (CudaTensorMap) encoded by the executor. Where a geometry does not fit the copy engine's
  /// limits (a bounding box's corners within [-128, 127], traversal strides at most 8, taps'
  /// offsets below 256), the product keeps its copies. Default on: measured on an H200
  /// (docs/PERF.md, 2026-12-05 (session 5)), layer 3's 3 x 3 forward at 63-70 % of the tensor pipe
  /// (55 % with the copies), ResNet-18 bf16 at batch 256 4.70 -> 4.57-4.73 ms and a training step
  /// 8.83 -> 8.53-8.70 ms.
  bool halfTma = true;
  /// With halfTma: blocks an SM its products of 128 x 128 and 128 x 64 are sized for -- 1 (a ring
  /// of 6-7 slots) or 2 (3-4 slots each, so that one block's epilogue and first fill run under the
  /// other's products); 0 chooses: two where a block's slice is at most 18 stages and the grid has
  /// blocks for two an SM (kTargetBlocks), else one.
  int halfTmaBlocks = 0;
  /// A tensor-core forward convolution whose output a later node reads as a 16-bit
  /// channels-last copy (conv16ChannelsLast, shareConvertedCopies) writes that copy itself:
  /// its epilogue stores each sum twice, as fp32 into the planned output and in the format into
  /// the copy (m · filters + o: the pixel's filters contiguous), and a residual program run as
  /// a second kernel over the output becomes a tile kernel that runs the program and writes
  /// the copy through a shared-memory transpose -- so the reader's conversion kernel (a read
  /// of the fp32 output and a write of the copy) is gone. Elementwise kernels (relu_grad,
  /// fused_elementwise: the gradients the backward convolutions read) do the same through that
  /// tile kernel. generateCudaSource generates twice:
  /// the first pass finds the values readers convert (copiedValues), the second lets their
  /// producers claim them. Default off: measured on an H200, ResNet-18 bf16 unchanged (5.40 ->
  /// 5.40 ms at batch 256, 10.0 -> 10.05 ms a training step: the tile kernels cost what the
  /// conversions did).
  bool halfCopyInProducer = false;
  /// Internal to generateCudaSource's second pass (halfCopyInProducer): the values some reader
  /// converted in the first.
  std::vector<const Value*> copiedValues;
  /// conv16ChannelsLast's copies of a planned value shared by every node that reads it so
  /// (CudaModuleSource::converted): converted by the first, kept until the last. Off: each node
  /// converts its own (a block of its own) -- the same bytes, more conversions, less memory held
  /// from a forward to its weight gradient. Default: on.
  bool shareConvertedCopies = true;
  /// A tensor-core weight gradient of at most 63 taps gathers x column-wise
  /// (ImplicitGemm::aColumn): 16 threads share a stage row of (channel, tap), one output pixel
  /// each, so a warp reads 16 neighbouring pixels of two taps (one or two cache lines) where 8
  /// pixels of 16 taps' rows touch 6-12; each row's offset and each pixel's taps in the image
  /// are computed once, not per element. Off: 8 consecutive pixels of one row a thread.
  bool weightGradientColumns = true;
  /// A tensor-core forward with few channels (kernel rows padded to 8 taps: the stem) at stride
  /// 2 over an even width copies each kernel row's taps two at a time (8-byte copies; a row's
  /// first tap alone where the left padding is odd): half the copies of one tap each. Off: one
  /// 4-byte copy a tap.
  bool convPairedTaps = true;
  /// Tiles of tensor-core products by their kernel's name (CudaProduct::kernel): an
  /// autotuner's choices (CudaExecutableOptions::autotune). A product not named takes its cost
  /// model's; a tile that is not one of the product's candidates is an error.
  std::map<std::string, ProductTile> productTiles;
  /// 0 or more: every product not in productTiles takes its candidate number tuningVariant,
  /// or its cost model's where it has fewer (the autotuner's variant modules). -1: none.
  int tuningVariant = -1;
  /// A tensor-core convolution's forward reads an input of at least this many elements
  /// channels-last: a first kernel copies it into scratch as [n, h, w, c] (channels padded
  /// with zeros to a multiple of 4; 3 -> 4, not 1 or 2), and the implicit GEMM copies 4
  /// channels of a pixel at a time (16 bytes, cached in L1 for the next taps) instead of
  /// 4-byte elements of channel planes. Default: never. Measured on an H200 (ResNet-18 TF32,
  /// batch 256, inputs of 2^20 elements and more): the convolutions themselves faster (layer
  /// 1's 3 x 3 0.64 -> 0.52 ms, the stem 1.12 -> 0.99 ms, layers 2-4 unchanged) but the copies
  /// cost more than that (batch 256 9.75 -> 9.89 ms, batch 32 1.55 -> 1.60 ms): it pays only
  /// once the producers write channels-last themselves. Tests set 0 to reach it.
  int64_t convChannelsLastMinInput = std::numeric_limits<int64_t>::max();
};

/// The NVRTC target for a module generated with `options` for a device of architecture `arch`:
/// sm_90a where the module uses wgmma (sm_90's arch-specific instructions), else `arch`.
inline std::string cudaTargetArch(const CudaCodegenOptions& options, const std::string& arch) {
  return options.wgmma && arch == "sm_90" ? "sm_90a" : arch;
}

/// Emits CUDA C++ for every kernel of `program` (large matrix products go to cuBLAS and emit
/// none; small fp32 ones are kernels, see smallGemms).
/// Pointer parameters are __restrict__ except where the memory plan lets two of a launch's
/// buffers overlap (an in-place result and its operand). Errors name the node whose op or
/// types have no GPU kernel.
Expected<CudaModuleSource> generateCudaSource(const Program& program, const CudaCodegenOptions& options = {});

/// Compiles every unit of `module` to a cubin for `arch` through `cache` (may be null), the
/// units side by side on `threads` threads (<= 0: one per hardware thread, at most one per
/// unit). Results are in the order of module.units; the first unit that fails is the error.
Expected<std::vector<CompiledKernel>> compileCudaUnits(const CudaModuleSource& module, const std::string& arch,
                                                       KernelCache* cache, int threads = 0);

/// NVRTC-compiles the generated source for `arch` (through the kernel cache); needs no GPU.
/// Returns a summary: kernel and unit counts, cubin bytes, compile ms, cache hits/misses.
Expected<std::string> compileCudaProgram(const Program& program, const std::string& arch, bool verbose,
                                         const CudaCodegenOptions& options = {});

}  // namespace shoal
