// Deterministic data sharding for data parallelism: each rank's part of every global batch.
#pragma once

#include <shoal/data.h>

namespace shoal {

/// Rank `rank` of `ranks`' share of every batch of `global`: of a batch of b rows, the
/// contiguous rows [rank·b/N, (rank+1)·b/N). Every rank walks the same global order (the
/// same source, seeded alike), so N ranks at b/N rows take the steps one process takes at b:
/// same rows, same order. A batch whose rows do not split evenly (the last of an epoch) is
/// cut to a multiple of N: its last b mod N rows are skipped by every rank, so the ranks stay
/// equal and the gradient average stays the mean over the rows used.
class ShardedBatches final : public BatchSource {
 public:
  ShardedBatches(BatchSource& global, int rank, int ranks) : global_(global), rank_(rank), ranks_(ranks) {}
  Expected<void> startEpoch(int64_t epoch) override { return global_.startEpoch(epoch); }
  Expected<std::optional<TensorMap>> next() override;
  std::optional<int64_t> batchesPerEpoch() const override { return global_.batchesPerEpoch(); }
  /// This rank's share of every remaining global batch of the epoch, as next() would yield
  /// them (the skipped rows counted as it counts them).
  std::optional<EpochRows> takeEpoch() override;
  /// Rows skipped so far (batches that did not split evenly).
  int64_t skippedRows() const { return skipped_; }

 private:
  BatchSource& global_;
  int rank_, ranks_;
  int64_t skipped_ = 0;
};

/// Rows [begin, end) of every tensor of `batch` (dimension 0); tensors of rank 0 are kept.
Expected<TensorMap> sliceRows(const TensorMap& batch, int64_t begin, int64_t end);

}  // namespace shoal
