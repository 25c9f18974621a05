// Each rank's contiguous share of every global batch.
#include "runtime/distributed/sharding.h"

#include <fmt/format.h>

#include <cstring>

namespace shoal {

Expected<TensorMap> sliceRows(const TensorMap& batch, int64_t begin, int64_t end) {
  TensorMap out;
  for (const auto& [name, t] : batch) {
    if (t.shape().empty()) {
      out[name] = t;
      continue;
    }
    const int64_t rows = t.shape()[0];
    if (begin < 0 || end > rows || begin > end)
      return fail(fmt::format("'{}' has {} rows; cannot take rows {}..{}", name, rows, begin, end));
    Shape shape = t.shape();
    shape[0] = end - begin;
    Tensor part(TensorType{t.dtype(), shape});
    const size_t rowBytes = rows ? t.byteSize() / size_t(rows) : 0;
    if (part.byteSize()) std::memcpy(part.raw(), static_cast<const char*>(t.raw()) + size_t(begin) * rowBytes, part.byteSize());
    out[name] = std::move(part);
  }
  return out;
}

Expected<std::optional<TensorMap>> ShardedBatches::next() {
  for (;;) {
    auto batch = global_.next();
    if (!batch || !*batch) return batch;
    int64_t rows = -1;
    for (const auto& [name, t] : **batch) {
      if (t.shape().empty()) continue;
      if (rows >= 0 && t.shape()[0] != rows)
        return fail(fmt::format("the batch's tensors disagree on the number of rows ({} and {} in '{}')", rows,
                                t.shape()[0], name));
      rows = t.shape()[0];
    }
    if (rows < 0) return fail("a batch with no rows cannot be shared between ranks");
    const int64_t per = rows / ranks_;
    skipped_ += rows - per * ranks_;
    if (per == 0) continue;  // fewer rows than ranks: every rank skips the batch
    auto part = sliceRows(**batch, int64_t(rank_) * per, int64_t(rank_ + 1) * per);
    if (!part) return Unexpected(part.error());
    return std::optional<TensorMap>(std::move(*part));
  }
}

std::optional<EpochRows> ShardedBatches::takeEpoch() {
  std::optional<EpochRows> global = global_.takeEpoch();
  if (!global) return std::nullopt;
  EpochRows mine;
  mine.tensors = global->tensors;
  size_t at = 0;
  for (int64_t rows : global->sizes) {
    const int64_t per = rows / ranks_;
    skipped_ += rows - per * ranks_;
    if (per > 0) {
      auto first = global->order.begin() + std::ptrdiff_t(at + size_t(rank_ * per));
      mine.order.insert(mine.order.end(), first, first + std::ptrdiff_t(per));
      mine.sizes.push_back(per);
    }
    at += size_t(rows);
  }
  return mine;
}

}  // namespace shoal
