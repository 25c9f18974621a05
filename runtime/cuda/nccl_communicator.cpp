// NCCL, loaded at run time, behind the Communicator interface.
#include "runtime/cuda/nccl_communicator.h"

#include <fmt/format.h>

#include "runtime/cuda/nccl_library.h"

#if SHOAL_HAVE_NCCL_HEADER
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>
#endif

namespace shoal {

#if SHOAL_HAVE_NCCL_HEADER

namespace {

using cudaimpl::ncclLibrary;

std::string ncclError(ncclResult_t r) { return ncclLibrary()->ncclGetErrorString(r); }

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<TcpGroup> tcp) : tcp_(std::move(tcp)) {}
  ~NcclCommunicator() override {
    // Destroying a communicator whose peers are gone can block; a finished run destroys it,
    // a failed one leaves it to the process's exit.
    if (comm_.load() && finished_) (void)ncclLibrary()->ncclCommDestroy(comm_.load());
  }
  Expected<void> init() {
    ncclUniqueId id;
    if (tcp_->payload().size() != sizeof id) return fail("rendezvous: rank 0 sent no NCCL id");
    std::memcpy(&id, tcp_->payload().data(), sizeof id);
    ncclComm_t comm = nullptr;
    if (auto r = ncclLibrary()->ncclCommInitRank(&comm, size(), id, rank()); r != ncclSuccess)
      return fail(fmt::format("ncclCommInitRank (rank {} of {}): {}", rank(), size(), ncclError(r)));
    comm_ = comm;
    return {};
  }

  int rank() const override { return tcp_->rank(); }
  int size() const override { return tcp_->size(); }
  std::string kind() const override { return "nccl"; }
  TcpGroup& tcp() { return *tcp_; }

  Expected<void> allReduceHost(void* data, DType dtype, int64_t count, ReduceKind op) override {
    return tcp_->allReduceHost(data, dtype, count, op);
  }
  Expected<void> broadcastHost(void* data, size_t bytes, int root) override { return tcp_->broadcastHost(data, bytes, root); }
  Expected<void> barrier() override { return tcp_->barrier(); }
  bool hasDeviceCollectives() const override { return true; }

  Expected<void> allReduceDevice(void* data, DType dtype, int64_t count, ReduceKind op, void* stream) override {
    ncclDataType_t type;
    switch (dtype) {
      case DType::F32: type = ncclFloat32; break;
      case DType::F64: type = ncclFloat64; break;
      case DType::I32: type = ncclInt32; break;
      case DType::I64: type = ncclInt64; break;
      case DType::U8:
      case DType::Bool: type = ncclUint8; break;
      default:  // storage types: no op computes in them, so no collective reduces them
        return fail(fmt::format("all-reduce of {} values: shoal reduces f32, f64 and integer tensors", dtypeName(dtype)));
    }
    ncclRedOp_t nop = ncclSum;
    switch (op) {
      case ReduceKind::Sum: nop = ncclSum; break;
      case ReduceKind::Mean: nop = ncclAvg; break;  // a pre-multiplication by 1/ranks (exact for 2, 4, 8 ranks)
      case ReduceKind::Min: nop = ncclMin; break;
      case ReduceKind::Max: nop = ncclMax; break;
    }
    auto r = ncclLibrary()->ncclAllReduce(data, data, size_t(count), type, nop, comm_.load(), static_cast<cudaStream_t>(stream));
    if (r != ncclSuccess) return fail("ncclAllReduce: " + ncclError(r) + asyncDetail());
    return {};
  }
  Expected<void> groupStart() override {
    if (auto r = ncclLibrary()->ncclGroupStart(); r != ncclSuccess) return fail("ncclGroupStart: " + ncclError(r));
    return {};
  }
  Expected<void> groupEnd() override {
    if (auto r = ncclLibrary()->ncclGroupEnd(); r != ncclSuccess) return fail("ncclGroupEnd: " + ncclError(r) + asyncDetail());
    return {};
  }
  Expected<void> checkAsyncError() override {
    if (auto why = asyncError()) return fail(*why);
    return {};
  }
  std::optional<std::string> asyncError() const {
    ncclComm_t comm = comm_.load();
    if (!comm) return std::nullopt;
    ncclResult_t async = ncclSuccess;
    if (auto r = ncclLibrary()->ncclCommGetAsyncError(comm, &async); r != ncclSuccess) return "NCCL: " + ncclError(r);
    if (async != ncclSuccess && async != ncclInProgress) return "NCCL error: " + ncclError(async);
    return std::nullopt;
  }
  void abort(const std::string& why) override {
    tcp_->abort(why);
    if (comm_.load() && !aborted_.exchange(true)) (void)ncclLibrary()->ncclCommAbort(comm_.load());
  }
  void finish() override {
    finished_ = true;
    tcp_->finish();
  }

 private:
  std::string asyncDetail() const {
    auto why = asyncError();
    return why ? " (" + *why + ")" : "";
  }
  std::unique_ptr<TcpGroup> tcp_;
  std::atomic<ncclComm_t> comm_{nullptr};  ///< read by the watchdog while init() runs
  std::atomic<bool> aborted_{false};
  bool finished_ = false;
};

}  // namespace

Expected<std::string> ncclVersion() {
  const auto& lib = ncclLibrary();
  if (!lib) return Unexpected(lib.error());
  int v = lib->version;
  return fmt::format("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100);
}

Expected<std::shared_ptr<Communicator>> createNcclCommunicator(const RendezvousOptions& opts,
                                                                std::function<void(const std::string&)> onFailure) {
  const auto& lib = ncclLibrary();
  if (!lib) return fail("data parallelism on GPUs needs NCCL: " + lib.error().message());
  if (cudaError_t e = cudaSetDevice(0); e != cudaSuccess)
    return fail(fmt::format("cudaSetDevice(0) for rank {}: {}", opts.rank, cudaGetErrorString(e)));
  auto tcp = TcpGroup::join(opts, [&]() -> Expected<std::string> {
    ncclUniqueId id;
    if (auto r = lib->ncclGetUniqueId(&id); r != ncclSuccess) return fail("ncclGetUniqueId: " + ncclError(r));
    return std::string(reinterpret_cast<const char*>(&id), sizeof id);
  });
  if (!tcp) return Unexpected(tcp.error());
  auto comm = std::make_shared<NcclCommunicator>(std::move(*tcp));
  // The watchdog first: ncclCommInitRank waits for every rank, and a rank that dies before
  // it would leave the others waiting forever.
  NcclCommunicator* raw = comm.get();
  comm->tcp().watch(std::move(onFailure), [raw]() { return raw->asyncError(); });
  if (auto ok = comm->init(); !ok) {
    comm->tcp().abort(ok.error().message());
    return Unexpected(ok.error());
  }
  return std::shared_ptr<Communicator>(comm);
}

#else

Expected<std::string> ncclVersion() { return fail("this shoal was built without the CUDA toolkit's nccl.h"); }

Expected<std::shared_ptr<Communicator>> createNcclCommunicator(const RendezvousOptions&,
                                                                std::function<void(const std::string&)>) {
  return fail("data parallelism on GPUs needs NCCL, and this shoal was built without the CUDA toolkit's nccl.h");
}

#endif

}  // namespace shoal
