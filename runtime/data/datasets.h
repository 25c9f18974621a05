// Datasets the runtime provides (the public Dataset, TensorDataset, Subset and DataLoader are
// implemented beside them): MNIST-style IDX images with their labels.
#pragma once

#include <string>

#include <shoal/data.h>
#include "runtime/data/idx.h"

namespace shoal {

/// One split of an MNIST-style data set as a Dataset: the images under `imagesName` (u8
/// [n,1,H,W], pixels 0..255) and the digits under "labels" (i64 [n]).
class MnistDataset final : public Dataset {
 public:
  MnistDataset(MnistSet set, std::string imagesName);
  int64_t size() const override { return set_.images.shape()[0]; }
  Expected<TensorMap> getBatch(std::span<const int64_t> rows) override;
  const TensorMap* sourceRows(std::vector<int64_t>&) const override { return &tensors_; }

 private:
  MnistSet set_;
  std::string imagesName_;
  TensorMap tensors_;  ///< the images under imagesName_ and "labels", sharing set_'s data
};

/// Rows `rows` of `t` (dimension 0), gathered into a new tensor; fails on a row out of range.
Expected<Tensor> gatherRows(const Tensor& t, std::span<const int64_t> rows, const std::string& name);

/// Rows `rows` of every tensor of `tensors`, by name (what TensorDataset::getBatch returns).
Expected<TensorMap> gatherBatch(const TensorMap& tensors, std::span<const int64_t> rows);

}  // namespace shoal
