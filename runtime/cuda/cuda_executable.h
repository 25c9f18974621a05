// The CUDA executor: runs a Program on the GPU (codegen'd kernels compiled by NVRTC, cuBLAS
// GEMMs, one arena from the memory plan, the step captured as a CUDA graph).
#pragma once

// Needs no CUDA headers; in a build without CUDA, create() returns an error.

#include <map>
#include <memory>
#include <string>

#include "codegen/cuda_codegen.h"
#include "runtime/executable.h"

namespace shoal {

/// How to build a CudaExecutable.
struct CudaExecutableOptions {
  bool tf32 = false;     ///< TF32 tensor-core GEMMs in cuBLAS (off: exact fp32)
  bool verbose = false;  ///< report NVRTC/kernel-cache figures and memory on stderr
  std::string arch;      ///< NVRTC target ("sm_90"); empty: the device's own
  /// Replay the step as a CUDA graph after the first successful run. Default: on, unless
  /// SHOAL_CUDA_GRAPHS=0.
  bool graphs = true;
  /// Synchronize after every launch so an asynchronous fault names its kernel (slow; for
  /// debugging). Default from SHOAL_CUDA_SYNC_EACH=1.
  bool syncEach = false;
  /// An inference program's small outputs written by their kernels straight into pinned host
  /// memory (no copy after the step). Default: on, unless SHOAL_CUDA_HOST_OUTPUTS=0.
  bool hostOutputs = true;
  /// run() with an inference program's input in the app's GPU memory (Tensor::onDevice): its
  /// kernels read it there, no copy (when only generated kernels read it; a changed address
  /// re-resolves the launches and captures the graph again, at most a few times). Default: on,
  /// unless SHOAL_CUDA_INPUTS_IN_PLACE=0.
  bool inputsInPlace = true;
  /// run() with an inference program's input (one inputsInPlace may bind) in page-locked host
  /// memory mapped into the device's address space (cudaMallocHost, pin_memory()), at most this
  /// many bytes: the step's first launch, a kernel, copies it in over the bus (part of the
  /// replayed graph), instead of the copy engine's DMA before the step. 0 turns it off.
  /// Default 1 MB, or SHOAL_CUDA_PINNED_COPY_IN_BYTES.
  int64_t pinnedCopyInBytes = int64_t(1) << 20;
  /// One kernel for each run of optimizer updates (CudaCodegenOptions::horizontalUpdates).
  /// Default: on, unless SHOAL_CUDA_HFUSE=0.
  bool horizontalUpdates = true;
  /// Convolutions on tensor cores (CudaCodegenOptions::tensorCores): set by the precision
  /// (withPrecision), or for experiments by SHOAL_CUDA_TC_CONV=tf32|bf16|fp16 (1 meaning tf32).
  TensorCoreMath tensorCores = TensorCoreMath::Off;
  /// bfloat16 or float16 operands in cuBLAS's fp32 GEMMs (CudaContextOptions::gemmBf16 /
  /// gemmFp16); Off and Tf32: what `tf32` says.
  TensorCoreMath gemm16 = TensorCoreMath::Off;
  /// Small fp32 matrix products as generated kernels (CudaCodegenOptions::smallGemms) when
  /// cuBLAS would compute them in exact fp32 (tf32 off, gemm16 Off). Default: on, unless
  /// SHOAL_CUDA_SMALL_GEMM=0.
  bool smallGemms = true;
  /// dense's and fused_dense's bias and ReLU in cuBLASLt's epilogue
  /// (CudaCodegenOptions::gemmEpilogues). Default: on, unless SHOAL_CUDA_GEMM_EPILOGUE=0.
  bool gemmEpilogues = true;
  /// Each generated kernel that follows another in the step launched with programmatic
  /// stream serialization (CudaKernel::launchAfterPrevious; sm_90 and up), so its launch
  /// overlaps the previous kernel's end. Default: on, unless SHOAL_CUDA_PDL=0; off while
  /// profiling or with syncEach.
  bool programmaticLaunch = true;
  /// Runs of independent kernels launched as one (CudaCodegenOptions::groupKernels).
  /// Default: on, unless SHOAL_CUDA_GROUP=0.
  bool groupKernels = true;
  /// Steps whose kernels are the same text launch one kernel (CudaCodegenOptions::shareKernels).
  bool shareKernels = true;
  /// Kernel text per NVRTC translation unit (CudaCodegenOptions::unitBytes; 0: one unit).
  /// Default: codegen's, unless SHOAL_CUDA_UNIT_BYTES says otherwise.
  int64_t unitBytes = CudaCodegenOptions{}.unitBytes;
  /// A program that updates no parameter (inference, evaluation) rearranges its parameters
  /// for the tensor-core convolutions once, into the prepared region, and again only when they
  /// change (CudaCodegenOptions::prepareParameters), instead of in every step. Default: on,
  /// unless SHOAL_CUDA_PREPARE=0.
  bool prepareParameters = true;
  /// Tensor-core convolutions through warpgroup MMA on an sm_90 device (CudaCodegenOptions::
  /// wgmma; the module is then compiled for sm_90a). Default: on, unless SHOAL_CUDA_WGMMA=0.
  bool wgmma = true;
  /// With wgmma, 16-bit weight gradients as TF32 warpgroup products (CudaCodegenOptions::
  /// wgmmaTf32Gathered16). Default: on, unless SHOAL_CUDA_WGRAD_TF32=0.
  bool wgmmaTf32Gathered16 = true;
  /// With wgmma, 16-bit forwards of 64k channels read their input channels-last in the format
  /// (CudaCodegenOptions::conv16ChannelsLast). Default: on, unless SHOAL_CUDA_CL16=0.
  bool conv16ChannelsLast = true;
  /// Their products overlapped across the stage's barrier (CudaCodegenOptions::
  /// halfStageOverlap). Default: off, unless SHOAL_CUDA_CL16_OVERLAP=1.
  bool halfStageOverlap = false;
  /// TF32's forwards and data gradients read fp32 channels-last copies (CudaCodegenOptions::
  /// tf32ChannelsLast). Default: off, unless SHOAL_CUDA_CL32=1.
  bool tf32ChannelsLast = false;
  /// Their products of more than 128 columns in 128 x 256 blocks (CudaCodegenOptions::
  /// halfWideTile). Default: off, unless SHOAL_CUDA_CL16_WIDE=1.
  bool halfWideTile = false;
  /// Their forwards' and data gradients' copies issued by producer warps (CudaCodegenOptions::
  /// halfProducerWarps). Default: off, unless SHOAL_CUDA_CL16_WS=1.
  bool halfProducerWarps = false;
  /// Their products of 65-128 columns as 256 x 128 multiplied the other way round
  /// (CudaCodegenOptions::halfSwappedTile). Default: off, unless SHOAL_CUDA_CL16_SWAP=1.
  bool halfSwappedTile = false;
  /// Their reduction channel-block-major with A's copies through L1 (CudaCodegenOptions::
  /// halfTapReuse). Default: off, unless SHOAL_CUDA_CL16_L1=1.
  bool halfTapReuse = false;
  /// 16-bit forwards of at most 4 channels (the stem) through a padded 16-bit copy of their
  /// input (CudaCodegenOptions::halfStem). Default: off, unless SHOAL_CUDA_CL16_STEM=1.
  bool halfStem = false;
  /// Their stages copied by the copy engine (CudaCodegenOptions::halfTma). Default: on, unless
  /// SHOAL_CUDA_CL16_TMA=0.
  bool halfTma = true;
  /// Their blocks an SM (CudaCodegenOptions::halfTmaBlocks: 0 chosen, 1 or 2). Default 0, or
  /// SHOAL_CUDA_CL16_TMA_BLOCKS (1 or 2; anything else chooses).
  int halfTmaBlocks = 0;
  /// Tensor-core forwards write their outputs' 16-bit channels-last copies themselves
  /// (CudaCodegenOptions::halfCopyInProducer). Default: off, unless SHOAL_CUDA_CL16_PRODUCER=1.
  bool halfCopyInProducer = false;
  /// Their converted copies shared between the nodes reading one value (CudaCodegenOptions::
  /// shareConvertedCopies). Default: on, unless SHOAL_CUDA_CL16_SHARE=0.
  bool shareConvertedCopies = true;
  /// Weight gradients gather x column-wise (CudaCodegenOptions::weightGradientColumns). Default:
  /// on, unless SHOAL_CUDA_WGRAD_COLUMNS=0.
  bool weightGradientColumns = true;
  /// Stride-2 stem-like forwards copy their taps in pairs (CudaCodegenOptions::convPairedTaps).
  /// Default: on, unless SHOAL_CUDA_PAIRED_TAPS=0.
  bool convPairedTaps = true;
  /// Tensor-core forwards read inputs of at least this many elements channels-last
  /// (CudaCodegenOptions::convChannelsLastMinInput). Default: never (codegen's default);
  /// SHOAL_CUDA_NHWC=1: inputs of 2^20 elements and more.
  int64_t convChannelsLastMinInput = CudaCodegenOptions{}.convChannelsLastMinInput;
  /// Exact fp32 convolutions of at least this many multiply-adds run as implicit GEMMs on the
  /// CUDA cores (CudaCodegenOptions::fp32ConvGemmMinMacs; negative: never, the direct kernels).
  /// Default: codegen's, unless SHOAL_CUDA_FP32_GEMM_MIN_MACS says otherwise.
  int64_t fp32ConvGemmMinMacs = CudaCodegenOptions{}.fp32ConvGemmMinMacs;
  /// ... of at least this many filters and channels x taps (CudaCodegenOptions::
  /// fp32ConvGemmMinWidth; codegen's default).
  int64_t fp32ConvGemmMinWidth = CudaCodegenOptions{}.fp32ConvGemmMinWidth;
  /// Exact fp32 3 x 3 stride-1 convolutions in Winograd's F(m x m, 3 x 3) (CudaCodegenOptions::
  /// fp32Winograd: 2 or 4; 0 never) where they have at least fp32WinogradMinChannels channels
  /// and filters and fp32WinogradMinMacs multiply-adds. Default: codegen's, unless
  /// SHOAL_CUDA_WINOGRAD (0, 2, 4), SHOAL_CUDA_WINOGRAD_MIN_CHANNELS or
  /// SHOAL_CUDA_WINOGRAD_MIN_MACS say otherwise.
  int fp32Winograd = CudaCodegenOptions{}.fp32Winograd;
  int64_t fp32WinogradMinChannels = CudaCodegenOptions{}.fp32WinogradMinChannels;
  int64_t fp32WinogradMinMacs = CudaCodegenOptions{}.fp32WinogradMinMacs;
  /// Each tensor-core product's tile and reduction slices timed on the device rather than taken
  /// from the cost model (runtime/cuda/autotune.h): the first creation for a module, device and
  /// NVRTC compiles a variant of the module per candidate, times each product's launches, keeps
  /// the fastest per product and stores the choice in the kernel cache; later creations (and
  /// compileCudaIntoCache) read it there. Default: off, unless SHOAL_CUDA_AUTOTUNE=1.
  bool autotune = false;
  /// Every product takes its candidate tile number tuningVariant (CudaCodegenOptions::
  /// tuningVariant: the autotuner's variants, and tests); -1: none.
  int tuningVariant = -1;
  /// Slowest launches profileSummary lists. Default 12; SHOAL_PROFILE_LAUNCHES=N.
  int64_t profileLaunches = 12;
  /// Fills graphs, syncEach, hostOutputs, inputsInPlace, horizontalUpdates, smallGemms, gemmEpilogues,
  /// programmaticLaunch, groupKernels, shareKernels, unitBytes, prepareParameters, wgmma, wgmmaTf32Gathered16,
  /// conv16ChannelsLast, halfStageOverlap, tf32ChannelsLast, halfWideTile, halfProducerWarps, halfSwappedTile,
  /// halfTapReuse, halfStem, halfTma, halfCopyInProducer,
  /// shareConvertedCopies, weightGradientColumns, convPairedTaps, convChannelsLastMinInput, fp32ConvGemmMinMacs, the
  /// fp32Winograd options, autotune, profileLaunches and tensorCores from the environment.
  static CudaExecutableOptions fromEnvironment();
  /// The codegen options these make for a device of architecture `arch` ("sm_90"; "" for
  /// none in particular): updates fused, tensor cores, small products generated where cuBLAS
  /// would be exact fp32, and wgmma on sm_90 and sm_90a (compile the module for
  /// cudaTargetArch's answer).
  CudaCodegenOptions codegenOptions(const std::string& arch = "") const;
  /// The matrix products' precision (ExecutableOptions::precision): Off keeps these options
  /// (exact fp32 unless tf32 or the environment says otherwise); Tf32, Bf16, Fp16 put the
  /// convolutions on tensor cores in that format and cuBLAS's GEMMs in TF32 or with 16-bit
  /// operands -- fp32 tensors in and out, fp32 accumulation.
  CudaExecutableOptions withPrecision(TensorCoreMath precision) const;
};

/// A Program bound to device 0. Creation generates the module's source, compiles it with
/// NVRTC (through the on-disk kernel cache), loads it, and allocates one transient arena
/// and one persistent region sized by the memory plan (or one allocation per buffer when
/// SHOAL_CUDA_SEPARATE_ALLOCS=1, so compute-sanitizer sees overruns), pinned staging for
/// inputs and outputs, the status words and scratch. A run copies inputs in, launches
/// every step on one stream with no allocation or host synchronization, copies outputs
/// back and synchronizes once. Errors name the kernel or cuBLAS call that failed.
class CudaExecutable : public Executable {
 public:
  static Expected<std::unique_ptr<CudaExecutable>> create(Program program, const CudaExecutableOptions& opts);
  ~CudaExecutable() override;

  std::string deviceName() const override;
  const Program& program() const override { return program_; }
  /// Same values as the CPU interpreter (initialized on the host, then uploaded).
  void initializeParameters(uint64_t seed) override;
  TensorMap readPersistent() override;
  Expected<void> writePersistent(const TensorMap& values) override;
  /// Points this program's params and state at `other`'s (another CudaExecutable with the
  /// same persistent layout).
  Expected<TensorMap> run(const TensorMap& inputs) override;
  /// Copies the value's buffer back (and synchronizes).
  Expected<Tensor> readValue(const Value* v) override;
  /// The training step with no host synchronization: the batch goes through one of two
  /// pinned staging buffers (the host waits only when the buffer's previous upload is still
  /// pending), is copied asynchronously into the planned input slots, the step (graph)
  /// runs, and a one-thread kernel adds weight × each named scalar output into device
  /// accumulators (in double, rounded like the host's default), counts the weight, remembers
  /// the first step whose `loss` is not finite, and keeps the status words of the first
  /// step a kernel reported an error in. At most 8 names per executable.
  Expected<void> runAccumulate(const TensorMap& inputs, const std::vector<std::string>& names, double weight,
                               int64_t step) override;
  /// The data set's tensors copied into device memory once (one block each); the epoch's
  /// order beside them as i64.
  Expected<std::shared_ptr<ResidentData>> makeResident(const TensorMap& tensors) override;
  /// runAccumulate with the batch gathered on the device: one kernel copies (or converts) each
  /// row of the batch from the resident tensors into the planned input slots and writes the
  /// scalar inputs, passed by value; no host staging and no copy.
  Expected<void> runAccumulateRows(ResidentData& data, int64_t first, int64_t rows, const TensorMap& scalars,
                                   const std::vector<std::string>& names, double weight, int64_t step) override;
  /// One synchronization and one copy back of the accumulators, which are then zeroed. An
  /// error a kernel reported during an accumulated step (a bad label, say) is returned here,
  /// naming that step; the steps after it ran.
  Expected<Accumulated> takeAccumulated() override;

  /// The generated module (source and launch plan).
  const CudaModuleSource& module() const;
  /// True once the step is captured as a CUDA graph (after the first successful run).
  bool replaysGraph() const;
  std::optional<bool> replaysCudaGraph() const override { return replaysGraph(); }
  /// Profiling times every launch with CUDA events: while on, steps launch one by one (no
  /// graph replay or capture) and each step is waited for. profileSummary(): time per op kind,
  /// then the slowest launches with their node and kernel.
  void setProfiling(bool on) override;
  std::string profileSummary() const override;
  std::string cudaGraphError() const override { return graphCaptureError(); }
  /// Nodes of the captured graph (0 before capture).
  size_t graphNodes() const;
  /// The outputs its kernels write straight into pinned host memory (hostOutputs), by name.
  std::vector<std::string> hostWrittenOutputs() const;
  /// The inputs run() reads in place from the app's GPU memory now (inputsInPlace), by name.
  std::vector<std::string> inputsReadInPlace() const;
  /// The inputs run() copies in from mapped page-locked host memory with a kernel now
  /// (pinnedCopyInBytes), by name.
  std::vector<std::string> inputsCopiedIn() const;
  /// Why capturing the step as a CUDA graph failed ("" if it did not); the step then keeps
  /// launching kernel by kernel, which is correct, only slower.
  const std::string& graphCaptureError() const;
  /// NVRTC milliseconds spent creating this executable (0 on a kernel-cache hit).
  double compileMs() const;
  /// Device time of one step in milliseconds: the step (the graph when captured) is launched
  /// `iterations` more times on the inputs of the last run, between two CUDA events; no
  /// copies in or out. Inputs the last run read in place or copied in are read from their own
  /// buffers again, and the graph that rebinding drops is captured again first (untimed, not
  /// run). Params and state change as they would in training.
  Expected<double> timeStepMs(int iterations);
  /// Device milliseconds of each node's launches in a step (prepare launches left out), the
  /// least over `steps` profiled steps on the inputs of the last run (launched one by one, as
  /// profiling does; the profile's own figures are left as they were).
  Expected<std::map<const Node*, double>> timeNodesMs(int steps);

 protected:
  Expected<void> adoptPersistent(Executable& other) override;

 private:
  struct Impl;
  explicit CudaExecutable(Program program);
  Program program_;
  std::unique_ptr<Impl> impl_;
};

/// Generates `program`'s CUDA source as CudaExecutable::create would (options from the
/// environment) and NVRTC-compiles it into the on-disk kernel cache for `arch` (empty: device
/// 0's), so the executable created later finds its cubin there. Needs no CUDA context.
/// With `autotune`, the module with the tiles the autotuner chose for this device, when the
/// kernel cache holds its choice (else the cost model's: creating the executable tunes).
Expected<void> compileCudaIntoCache(const Program& program, const std::string& arch,
                                    TensorCoreMath precision = TensorCoreMath::Off, bool autotune = false);

/// Creates, now, the CUDA context (stream, cuBLAS handle and workspace) that the executables
/// with this TF32 setting share, and keeps it alive as long as the returned pointer (or an
/// executable using it) lives: a run calls it on another thread while the main one compiles,
/// so the executables created meanwhile find the context made (or wait for it).
Expected<std::shared_ptr<void>> prewarmCudaContext(bool tf32, TensorCoreMath precision = TensorCoreMath::Off);

/// Compiles every kernel of `program` (through the on-disk cache) and binds it to device 0.
/// Errors name the kernel and the call that failed.
Expected<std::unique_ptr<Executable>> createCudaExecutable(Program program, bool tf32, bool verbose,
                                                           const std::string& arch,
                                                           TensorCoreMath precision = TensorCoreMath::Off,
                                                           bool autotune = false);

}  // namespace shoal
