// Data sources: TensorDataset, Subset, DataLoader (batches, shuffling, remainder), MNIST.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/data/datasets.h"
#include "test_util.h"

namespace shoal {
namespace {

// Ten examples: x[i] = [i, 10 + i], y[i] = i % 3.
TensorMap tenRows() {
  Tensor x(DType::F32, {10, 2}), y(DType::I64, {10});
  for (int64_t i = 0; i < 10; ++i) {
    x.set(2 * i, double(i));
    x.set(2 * i + 1, 10.0 + double(i));
    y.set(i, double(i % 3));
  }
  return {{"x", x}, {"y", y}};
}

TEST(TensorDataset, GathersRowsInTheirOrder) {
  auto d = TensorDataset::create(tenRows());
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(d->size(), 10);
  auto b = d->getBatch(std::vector<int64_t>{7, 2, 2});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->at("x").toDoubles(), (std::vector<double>{7, 17, 2, 12, 2, 12}));
  EXPECT_EQ(b->at("y").toDoubles(), (std::vector<double>{1, 2, 2}));
  auto bad = d->getBatch(std::vector<int64_t>{3, 10});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "row 10 is out of range: 'x' has 10 rows");
  auto scalar = TensorDataset::create({{"s", Tensor(DType::F32, {})}});
  ASSERT_FALSE(scalar);
  EXPECT_EQ(scalar.error().message(), "tensor 's' is a scalar; dimension 0 must index the examples");
}

TEST(Subset, MapsRowsToItsBase) {
  auto d = TensorDataset::create(tenRows());
  ASSERT_TRUE(d);
  Subset tail = Subset::range(*d, 6, 99);
  EXPECT_EQ(tail.size(), 4);
  auto b = tail.getBatch(std::vector<int64_t>{0, 3});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->at("x").toDoubles(), (std::vector<double>{6, 16, 9, 19}));
  auto bad = tail.getBatch(std::vector<int64_t>{4});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "row 4 is out of range: the subset has 4 rows");
}

std::vector<std::vector<double>> epochOf(DataLoader& loader, int64_t epoch) {
  std::vector<std::vector<double>> batches;
  EXPECT_TRUE(loader.startEpoch(epoch));
  while (true) {
    auto b = loader.next();
    EXPECT_TRUE(b);
    if (!b || !*b) break;
    batches.push_back((**b).at("x").toDoubles());
  }
  return batches;
}

TEST(DataLoader, BatchesInOrderWithTheRemainderLast) {
  auto d = TensorDataset::create(tenRows());
  ASSERT_TRUE(d);
  DataLoader loader(*d, {.batchSize = 4, .shuffle = false});
  EXPECT_EQ(loader.batchesPerEpoch(), 3);
  auto batches = epochOf(loader, 1);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<double>{0, 10, 1, 11, 2, 12, 3, 13}));
  EXPECT_EQ(batches[2], (std::vector<double>{8, 18, 9, 19}));
  DataLoader dropping(*d, {.batchSize = 4, .shuffle = false, .dropLast = true});
  EXPECT_EQ(dropping.batchesPerEpoch(), 2);
  EXPECT_EQ(epochOf(dropping, 1).size(), 2u);
  DataLoader zero(*d, {.batchSize = 0});
  auto bad = zero.startEpoch(1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "the batch size must be positive, got 0");
}

TEST(DataLoader, ShufflesEveryEpochDeterministically) {
  auto d = TensorDataset::create(tenRows());
  ASSERT_TRUE(d);
  DataLoader a(*d, {.batchSize = 10, .seed = 3}), b(*d, {.batchSize = 10, .seed = 3}), c(*d, {.batchSize = 10, .seed = 4});
  auto a1 = epochOf(a, 1), a2 = epochOf(a, 2);
  EXPECT_EQ(a1, epochOf(b, 1));
  EXPECT_EQ(a2, epochOf(b, 2));
  EXPECT_NE(a1, a2);                // a new permutation each epoch
  EXPECT_NE(a1, epochOf(c, 1));     // another seed, another order
  for (const auto& epoch : {a1, a2}) {
    // Every row exactly once: the first features, sorted, are 0..9.
    std::vector<double> firsts;
    for (size_t i = 0; i < epoch[0].size(); i += 2) firsts.push_back(epoch[0][i]);
    std::sort(firsts.begin(), firsts.end());
    EXPECT_EQ(firsts, (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  }
}

// The batches an epoch's rows (takeEpoch) describe, gathered from their tensors.
std::vector<std::vector<double>> batchesOf(const EpochRows& e, const std::string& name) {
  std::vector<std::vector<double>> out;
  size_t at = 0;
  for (int64_t rows : e.sizes) {
    auto b = gatherRows(e.tensors->at(name), std::span(e.order).subspan(at, size_t(rows)), name);
    EXPECT_TRUE(b.has_value());
    out.push_back(b->toDoubles());
    at += size_t(rows);
  }
  EXPECT_EQ(at, e.order.size());
  return out;
}

// takeEpoch describes the batches next() would have yielded: the same rows in the same
// batches, for a shuffled TensorDataset, a Subset of it (rows mapped to the base's), with
// dropLast, and for what is left of an epoch after two next() calls; next() then yields
// nothing. A dataset with no sourceRows() takes nothing.
TEST(DataLoader, TakeEpochDescribesTheBatchesNextWouldYield) {
  auto d = TensorDataset::create(tenRows());
  ASSERT_TRUE(d);
  Subset odd(*d, {1, 3, 5, 7, 9, 8});
  struct Case {
    Dataset* data;
    DataLoaderOptions opts;
    int skip;  // next() calls before takeEpoch
  };
  for (const Case& c : {Case{&*d, {.batchSize = 4, .seed = 3}, 0}, Case{&odd, {.batchSize = 4, .seed = 5}, 0},
                        Case{&*d, {.batchSize = 3, .seed = 2, .dropLast = true}, 0},
                        Case{&*d, {.batchSize = 3, .seed = 9}, 2}}) {
    DataLoader viaNext(*c.data, c.opts), viaTake(*c.data, c.opts);
    for (int64_t epoch = 1; epoch <= 2; ++epoch) {
      SCOPED_TRACE("batch " + std::to_string(c.opts.batchSize) + " epoch " + std::to_string(epoch));
      auto want = epochOf(viaNext, epoch);
      ASSERT_TRUE(viaTake.startEpoch(epoch));
      for (int i = 0; i < c.skip; ++i) ASSERT_TRUE(viaTake.next());
      auto taken = viaTake.takeEpoch();
      ASSERT_TRUE(taken.has_value());
      EXPECT_EQ(taken->tensors, &d->tensors());
      auto got = batchesOf(*taken, "x");
      want.erase(want.begin(), want.begin() + c.skip);
      EXPECT_EQ(got, want);
      auto after = viaTake.next();
      ASSERT_TRUE(after);
      EXPECT_FALSE(after->has_value());
    }
  }
  struct Own final : Dataset {
    int64_t size() const override { return 3; }
    Expected<TensorMap> getBatch(std::span<const int64_t> rows) override {
      return TensorMap{{"x", Tensor(DType::F32, {int64_t(rows.size())})}};
    }
  } own;
  DataLoader loader(own, {.batchSize = 2});
  ASSERT_TRUE(loader.startEpoch(1));
  EXPECT_FALSE(loader.takeEpoch().has_value());
  auto first = loader.next();  // nothing was taken
  ASSERT_TRUE(first && first->has_value());
}

TEST(MnistDataset, ServesImagesAndLabelsUnderTheInputsName) {
  auto set = loadMnist(test::sourcePath("data/mnist-10k"), false);
  ASSERT_TRUE(set) << set.error().str();
  Tensor firstLabels = set->labels;
  MnistDataset d(std::move(*set), "pixels");
  auto b = d.getBatch(std::vector<int64_t>{0, 1});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->at("pixels").type().str(), "u8[2,1,28,28]");
  EXPECT_EQ(b->at("labels").toDoubles(), (std::vector<double>{firstLabels.at(0), firstLabels.at(1)}));
}

}  // namespace
}  // namespace shoal
