// TensorDataset, Subset, DataLoader (the public data sources) and the MNIST dataset.
#include "runtime/data/datasets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "runtime/init.h"

namespace shoal {

Expected<Tensor> gatherRows(const Tensor& t, std::span<const int64_t> rows, const std::string& name) {
  const Shape& s = t.shape();
  if (s.empty()) return fail(fmt::format("'{}' is a scalar; a dataset's tensors need a dimension 0 to index", name));
  Shape out = s;
  out[0] = int64_t(rows.size());
  Tensor b(t.dtype(), out);
  size_t rowBytes = s[0] > 0 ? t.byteSize() / size_t(s[0]) : 0;
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(b.raw());
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t r = rows[i];
    if (r < 0 || r >= s[0]) return fail(fmt::format("row {} is out of range: '{}' has {} rows", r, name, s[0]));
    std::memcpy(dst + i * rowBytes, src + size_t(r) * rowBytes, rowBytes);
  }
  return b;
}

// ---- TensorDataset ----------------------------------------------------------------------

Expected<TensorDataset> TensorDataset::create(TensorMap tensors) {
  if (tensors.empty()) return fail("a TensorDataset needs at least one tensor");
  std::optional<std::pair<std::string, int64_t>> rows;
  for (auto& [name, t] : tensors) {
    if (!t.defined()) return fail(fmt::format("tensor '{}' has no data", name));
    if (t.isOnDevice())
      return fail(fmt::format("tensor '{}' is in GPU memory: a TensorDataset gathers its batches on the host (feed "
                              "GPU batches to Trainer::step, or through a BatchSource)",
                              name));
    if (t.shape().empty()) return fail(fmt::format("tensor '{}' is a scalar; dimension 0 must index the examples", name));
    if (rows && rows->second != t.shape()[0])
      return fail(fmt::format("tensors disagree on the number of examples: '{}' has {}, '{}' has {}", rows->first,
                              rows->second, name, t.shape()[0]));
    if (!rows) rows = std::make_pair(name, t.shape()[0]);
  }
  TensorDataset d;
  d.size_ = rows->second;
  d.tensors_ = std::move(tensors);
  return d;
}

Expected<TensorMap> gatherBatch(const TensorMap& tensors, std::span<const int64_t> rows) {
  TensorMap out;
  for (const auto& [name, t] : tensors) {
    auto b = gatherRows(t, rows, name);
    if (!b) return Unexpected(b.error());
    out[name] = std::move(*b);
  }
  return out;
}

Expected<TensorMap> TensorDataset::getBatch(std::span<const int64_t> rows) { return gatherBatch(tensors_, rows); }

const TensorMap* TensorDataset::sourceRows(std::vector<int64_t>&) const { return &tensors_; }

// ---- Subset -----------------------------------------------------------------------------

Subset Subset::range(Dataset& base, int64_t begin, int64_t end) {
  int64_t n = base.size();
  begin = std::clamp<int64_t>(begin, 0, n);
  end = std::clamp<int64_t>(end, begin, n);
  std::vector<int64_t> rows;
  rows.reserve(size_t(end - begin));
  for (int64_t i = begin; i < end; ++i) rows.push_back(i);
  return Subset(base, std::move(rows));
}

Expected<TensorMap> Subset::getBatch(std::span<const int64_t> rows) {
  std::vector<int64_t> mapped;
  mapped.reserve(rows.size());
  for (int64_t r : rows) {
    if (r < 0 || r >= size()) return fail(fmt::format("row {} is out of range: the subset has {} rows", r, size()));
    mapped.push_back(rows_[size_t(r)]);
  }
  return base_->getBatch(mapped);
}

const TensorMap* Subset::sourceRows(std::vector<int64_t>& rows) const {
  for (int64_t& r : rows) {
    if (r < 0 || r >= size()) return nullptr;
    r = rows_[size_t(r)];
  }
  return base_->sourceRows(rows);
}

// ---- DataLoader -------------------------------------------------------------------------

struct DataLoader::Impl {
  Dataset* data;
  DataLoaderOptions opts;
  std::vector<int64_t> order;
  Rng shuffler;
  size_t pos = 0;
  bool started = false;

  Impl(Dataset& d, DataLoaderOptions o) : data(&d), opts(o), shuffler(seedFor(o.seed, "shuffle")) {}
};

DataLoader::DataLoader(Dataset& data, DataLoaderOptions opts) : impl_(std::make_unique<Impl>(data, opts)) {}
DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

const DataLoaderOptions& DataLoader::options() const { return impl_->opts; }

Expected<void> DataLoader::startEpoch(int64_t) {
  Impl& d = *impl_;
  if (d.opts.batchSize <= 0) return fail(fmt::format("the batch size must be positive, got {}", d.opts.batchSize));
  int64_t n = d.data->size();
  if (int64_t(d.order.size()) != n) {
    d.order.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) d.order[size_t(i)] = i;
  }
  // Each epoch's permutation is drawn from the previous one (Fisher-Yates).
  if (d.opts.shuffle)
    for (size_t i = d.order.size(); i > 1; --i) std::swap(d.order[i - 1], d.order[d.shuffler.below(i)]);
  d.pos = 0;
  d.started = true;
  return {};
}

Expected<std::optional<TensorMap>> DataLoader::next() {
  Impl& d = *impl_;
  if (!d.started) {
    auto ok = startEpoch(1);
    if (!ok) return Unexpected(ok.error());
  }
  size_t left = d.order.size() - d.pos;
  if (left == 0) return std::optional<TensorMap>();
  size_t count = std::min(left, size_t(d.opts.batchSize));
  if (d.opts.dropLast && count < size_t(d.opts.batchSize)) return std::optional<TensorMap>();
  std::span<const int64_t> rows(d.order.data() + d.pos, count);
  d.pos += count;
  auto batch = d.data->getBatch(rows);
  if (!batch) return Unexpected(batch.error());
  return std::optional<TensorMap>(std::move(*batch));
}

std::optional<EpochRows> DataLoader::takeEpoch() {
  Impl& d = *impl_;
  if (!d.started || d.opts.batchSize <= 0) return std::nullopt;
  EpochRows e;
  e.order.assign(d.order.begin() + std::ptrdiff_t(d.pos), d.order.end());
  e.tensors = d.data->sourceRows(e.order);
  if (!e.tensors) return std::nullopt;
  const int64_t n = int64_t(e.order.size()), b = d.opts.batchSize;
  int64_t used = 0;
  for (int64_t at = 0; at < n; at += b) {
    const int64_t count = std::min(b, n - at);
    if (d.opts.dropLast && count < b) break;
    e.sizes.push_back(count);
    used += count;
  }
  e.order.resize(size_t(used));  // a dropped last batch's rows are in no batch
  d.pos = d.order.size();
  return e;
}

std::optional<int64_t> DataLoader::batchesPerEpoch() const {
  int64_t n = impl_->data->size(), b = impl_->opts.batchSize;
  if (b <= 0) return std::nullopt;
  return impl_->opts.dropLast ? n / b : (n + b - 1) / b;
}

// ---- MNIST ------------------------------------------------------------------------------

Expected<TensorMap> MnistDataset::getBatch(std::span<const int64_t> rows) { return gatherBatch(tensors_, rows); }

MnistDataset::MnistDataset(MnistSet set, std::string imagesName)
    : set_(std::move(set)), imagesName_(std::move(imagesName)) {
  tensors_ = TensorMap{{imagesName_, set_.images}, {"labels", set_.labels}};  // shared, not copied
}

}  // namespace shoal
