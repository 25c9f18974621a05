// Public data sources for training and evaluation: datasets addressed by row (an app's own,
// or tensors in memory), batch sources that yield an epoch's batches, and the data loader
// that turns a dataset into shuffled batches.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "error.h"
#include "tensor.h"

namespace shoal {

/// Examples addressed by row, like torch::data::Dataset. getBatch() gathers rows into named
/// tensors whose dimension 0 is the batch, e.g. {"x": f32[n,784], "labels": i64[n]}. The
/// names are the model's input names plus "labels" (cross-entropy: class indices, any integer
/// dtype) or "targets" (mean squared error: the shape of the model's output).
///
/// An app implements this over its own storage; TensorDataset serves tensors in memory.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of examples.
  virtual int64_t size() const = 0;
  /// The examples at `rows` (each in [0, size())), in that order.
  virtual Expected<TensorMap> getBatch(std::span<const int64_t> rows) = 0;
  /// When the examples are rows of tensors held in host memory (TensorDataset, the MNIST
  /// files, a Subset of either): those tensors (dimension 0 indexes their rows, getBatch()
  /// gathers from them), with `rows` rewritten in place from this dataset's rows to theirs;
  /// nullptr otherwise, `rows` then unspecified. A trainer on a GPU copies such tensors into
  /// device memory once and gathers every batch there. An app's own dataset need not
  /// override it (getBatch() then feeds every batch).
  virtual const TensorMap* sourceRows(std::vector<int64_t>& rows) const {
    (void)rows;
    return nullptr;
  }
};

/// Examples held in host memory: every tensor's dimension 0 indexes the examples (like
/// torch::data::TensorDataset). The tensors are shared, not copied.
class TensorDataset final : public Dataset {
 public:
  TensorDataset() = default;
  /// Fails when a tensor is a scalar or the tensors disagree on dimension 0.
  static Expected<TensorDataset> create(TensorMap tensors);

  int64_t size() const override { return size_; }
  Expected<TensorMap> getBatch(std::span<const int64_t> rows) override;
  const TensorMap* sourceRows(std::vector<int64_t>& rows) const override;
  const TensorMap& tensors() const { return tensors_; }

 private:
  TensorMap tensors_;
  int64_t size_ = 0;
};

/// Some rows of another dataset, in a given order: a train/validation split, say. `base`
/// must outlive the subset.
class Subset final : public Dataset {
 public:
  Subset(Dataset& base, std::vector<int64_t> rows) : base_(&base), rows_(std::move(rows)) {}
  /// Rows [begin, end) of `base` (clamped to its size).
  static Subset range(Dataset& base, int64_t begin, int64_t end);

  int64_t size() const override { return int64_t(rows_.size()); }
  Expected<TensorMap> getBatch(std::span<const int64_t> rows) override;
  const TensorMap* sourceRows(std::vector<int64_t>& rows) const override;

 private:
  Dataset* base_{};
  std::vector<int64_t> rows_;
};

/// An epoch's batches as rows of tensors held in host memory (BatchSource::takeEpoch): batch
/// k is rows order[o_k .. o_k + sizes[k]) of `tensors`, o_k the sum of the sizes before it.
struct EpochRows {
  const TensorMap* tensors = nullptr;  ///< dimension 0 indexes the rows
  std::vector<int64_t> order;          ///< the epoch's rows, batch after batch
  std::vector<int64_t> sizes;          ///< rows of each batch
};

/// The batches of one epoch after another (what a torch DataLoader yields). An app
/// implements it to stream data it generates or reads; DataLoader makes one from a Dataset.
/// Batches may differ in size: the trainer compiles one program per batch size.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  /// Called before each epoch (1-based, increasing); reshuffle or rewind here.
  virtual Expected<void> startEpoch(int64_t epoch) = 0;
  /// The next batch of this epoch (named tensors, dimension 0 the batch), or std::nullopt
  /// when the epoch is over.
  virtual Expected<std::optional<TensorMap>> next() = 0;
  /// Batches per epoch when known (for progress bars).
  virtual std::optional<int64_t> batchesPerEpoch() const { return std::nullopt; }
  /// After startEpoch(): takes the epoch's remaining batches at once as rows of tensors in
  /// host memory, when the source can (a DataLoader over a dataset with sourceRows()): the
  /// rows next() would have yielded, in the same batches; next() then yields nothing until
  /// the next startEpoch(). A trainer on a GPU gathers them there. nullopt: nothing is
  /// taken, next() yields the batches.
  virtual std::optional<EpochRows> takeEpoch() { return std::nullopt; }
};

struct DataLoaderOptions {
  int64_t batchSize = 64;
  bool shuffle = true;    ///< a new permutation of the rows every epoch
  uint64_t seed = 0;      ///< of the shuffling (deterministic on every machine)
  bool dropLast = false;  ///< drop the last, smaller batch of an epoch
};

/// Batches of a dataset: every epoch walks a (re)shuffled order of the rows in batches of
/// batchSize; the last batch holds the remainder unless dropLast. The permutation of epoch
/// k+1 is drawn from that of epoch k, so a seed fixes the whole run. `data` must outlive
/// the loader.
class DataLoader final : public BatchSource {
 public:
  explicit DataLoader(Dataset& data, DataLoaderOptions opts = {});
  ~DataLoader() override;
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;

  Expected<void> startEpoch(int64_t epoch) override;
  Expected<std::optional<TensorMap>> next() override;
  std::optional<int64_t> batchesPerEpoch() const override;
  /// The epoch's batches not yet taken by next(), when the dataset has sourceRows().
  std::optional<EpochRows> takeEpoch() override;
  const DataLoaderOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
