// The host reduction every communicator shares, and the in-process (threads) communicator.
#include "runtime/distributed/communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>

namespace shoal {

Expected<void> Communicator::allReduceDevice(void*, DType, int64_t, ReduceKind, void*) {
  return fail(fmt::format("the {} communicator has no device collectives (a GPU run needs NCCL)", kind()));
}

std::optional<ReduceKind> parseReduceKind(std::string_view s) {
  if (s == "sum") return ReduceKind::Sum;
  if (s == "mean") return ReduceKind::Mean;
  if (s == "min") return ReduceKind::Min;
  if (s == "max") return ReduceKind::Max;
  return std::nullopt;
}

std::string_view reduceKindName(ReduceKind k) {
  switch (k) {
    case ReduceKind::Sum: return "sum";
    case ReduceKind::Mean: return "mean";
    case ReduceKind::Min: return "min";
    case ReduceKind::Max: return "max";
  }
  return "sum";
}

namespace {

template <typename T>
void reduceTyped(T* out, const std::vector<const void*>& parts, int64_t count, ReduceKind op) {
  std::vector<T> acc(static_cast<size_t>(count));
  for (size_t r = 0; r < parts.size(); ++r) {
    const T* p = static_cast<const T*>(parts[r]);
    for (int64_t i = 0; i < count; ++i) {
      if (r == 0) acc[size_t(i)] = p[i];
      else if (op == ReduceKind::Min) acc[size_t(i)] = std::min(acc[size_t(i)], p[i]);
      else if (op == ReduceKind::Max) acc[size_t(i)] = std::max(acc[size_t(i)], p[i]);
      else acc[size_t(i)] = T(acc[size_t(i)] + p[i]);
    }
  }
  if (op == ReduceKind::Mean)
    for (T& v : acc) v = T(v / T(parts.size()));
  std::memcpy(out, acc.data(), acc.size() * sizeof(T));
}

}  // namespace

void reduceInto(void* out, const std::vector<const void*>& parts, DType dtype, int64_t count, ReduceKind op) {
  if (parts.empty() || count <= 0) return;
  switch (dtype) {
    case DType::F32: return reduceTyped(static_cast<float*>(out), parts, count, op);
    case DType::F64: return reduceTyped(static_cast<double*>(out), parts, count, op);
    case DType::I32: return reduceTyped(static_cast<int32_t*>(out), parts, count, op);
    case DType::I64: return reduceTyped(static_cast<int64_t*>(out), parts, count, op);
    case DType::U8:
    case DType::Bool: return reduceTyped(static_cast<uint8_t*>(out), parts, count, op);
    default:  // storage types: no op computes in them (shape inference), so none is reduced
      throw std::logic_error(std::string("reduceInto: cannot reduce ") + std::string(dtypeName(dtype)) + " values");
  }
}

namespace {

// What the ranks of one InProcessGroup share. A collective is a rendezvous of every rank:
// each posts its buffer; the last to arrive computes the result into `result`; each copies it
// out; the next collective waits until every rank has copied (so `result` can be reused).
struct InProcessShared {
  std::mutex mutex;
  std::condition_variable cv;
  int size = 0;
  std::vector<const void*> slots;
  int arrived = 0;
  int leftToCopy = 0;
  uint64_t generation = 0;
  std::vector<char> result;
  std::optional<std::string> aborted;
};

class InProcessCommunicator final : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<InProcessShared> shared, int rank) : shared_(std::move(shared)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return shared_->size; }
  std::string kind() const override { return "in-process"; }

  Expected<void> allReduceHost(void* data, DType dtype, int64_t count, ReduceKind op) override {
    const size_t bytes = size_t(count) * dtypeSize(dtype);
    return collective(data, data, bytes, [&](InProcessShared& s) {
      s.result.resize(bytes);
      reduceInto(s.result.data(), s.slots, dtype, count, op);
    });
  }
  Expected<void> broadcastHost(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size()) return fail(fmt::format("broadcast from rank {} of {}", root, size()));
    return collective(data, data, bytes, [&](InProcessShared& s) {
      s.result.assign(static_cast<const char*>(s.slots[size_t(root)]),
                      static_cast<const char*>(s.slots[size_t(root)]) + bytes);
    });
  }
  Expected<void> barrier() override {
    return collective(nullptr, nullptr, 0, [](InProcessShared& s) { s.result.clear(); });
  }
  void abort(const std::string& why) override {
    std::lock_guard lock(shared_->mutex);
    if (!shared_->aborted) shared_->aborted = fmt::format("rank {} gave up: {}", rank_, why);
    shared_->cv.notify_all();
  }

 private:
  template <typename Combine>
  Expected<void> collective(const void* in, void* out, size_t bytes, Combine combine) {
    InProcessShared& s = *shared_;
    std::unique_lock lock(s.mutex);
    s.cv.wait(lock, [&] { return s.leftToCopy == 0 || s.aborted; });
    if (s.aborted) return fail(*s.aborted);
    s.slots[size_t(rank_)] = in;
    const uint64_t gen = s.generation;
    if (++s.arrived == s.size) {
      combine(s);
      s.arrived = 0;
      s.leftToCopy = s.size;
      ++s.generation;
      s.cv.notify_all();
    } else {
      s.cv.wait(lock, [&] { return s.generation != gen || s.aborted; });
      if (s.generation == gen) return fail(*s.aborted);
    }
    if (bytes) std::memcpy(out, s.result.data(), bytes);
    if (--s.leftToCopy == 0) s.cv.notify_all();
    return {};
  }

  std::shared_ptr<InProcessShared> shared_;
  int rank_;
};

}  // namespace

std::vector<std::shared_ptr<Communicator>> InProcessGroup::create(int size) {
  auto shared = std::make_shared<InProcessShared>();
  shared->size = size;
  shared->slots.assign(size_t(size), nullptr);
  std::vector<std::shared_ptr<Communicator>> out;
  for (int r = 0; r < size; ++r) out.push_back(std::make_shared<InProcessCommunicator>(shared, r));
  return out;
}

}  // namespace shoal
