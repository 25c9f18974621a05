// Data parallelism on the CPU: the in-process communicator's collectives, each rank's share
// of the batches, and N threads at batch B/N training the same weights as one at batch B.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>

#include "runtime/distributed/communicator.h"
#include "runtime/distributed/sharding.h"
#include "runtime/model_programs.h"
#include "runtime/trainer.h"

namespace shoal {
namespace {

// Runs fn(rank) on `n` threads, one per rank.
template <typename Fn>
void onThreads(int n, Fn fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { fn(r); });
  for (auto& t : threads) t.join();
}

TEST(InProcessCommunicator, CollectivesCombineEveryRankInRankOrder) {
  auto comms = InProcessGroup::create(3);
  std::vector<std::vector<double>> sums(3), means(3), mins(3), maxs(3);
  std::vector<std::vector<int64_t>> bcast(3);
  onThreads(3, [&](int r) {
    Communicator& c = *comms[size_t(r)];
    EXPECT_EQ(c.rank(), r);
    EXPECT_EQ(c.size(), 3);
    // Rank r holds [r + 1, 10 (r + 1)].
    for (auto [out, op] : {std::pair{&sums, ReduceKind::Sum}, {&means, ReduceKind::Mean}, {&mins, ReduceKind::Min},
                           {&maxs, ReduceKind::Max}}) {
      std::vector<double> v = {double(r + 1), 10.0 * (r + 1)};
      ASSERT_TRUE(c.allReduceHost(v.data(), DType::F64, 2, op));
      (*out)[size_t(r)] = v;
    }
    std::vector<int64_t> b = {r, -r};
    ASSERT_TRUE(c.broadcastHost(b.data(), b.size() * sizeof(int64_t), 2));
    bcast[size_t(r)] = b;
    ASSERT_TRUE(c.barrier());
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[size_t(r)], (std::vector<double>{6, 60}));
    EXPECT_EQ(means[size_t(r)], (std::vector<double>{2, 20}));
    EXPECT_EQ(mins[size_t(r)], (std::vector<double>{1, 10}));
    EXPECT_EQ(maxs[size_t(r)], (std::vector<double>{3, 30}));
    EXPECT_EQ(bcast[size_t(r)], (std::vector<int64_t>{2, -2}));
  }
}

TEST(InProcessCommunicator, AbortReleasesTheRanksThatWait) {
  auto comms = InProcessGroup::create(2);
  std::string error;
  onThreads(2, [&](int r) {
    if (r == 1) {
      comms[1]->abort("no data");
      return;
    }
    double x = 1;
    auto ok = comms[0]->allReduceHost(&x, DType::F64, 1, ReduceKind::Sum);
    ASSERT_FALSE(ok);
    error = ok.error().message();
  });
  EXPECT_EQ(error, "rank 1 gave up: no data");
}

TEST(AllReduceOp, AveragesOverTheRanksThroughTheInterpreter) {
  // One all_reduce {op=mean, ranks=2} per thread: rank 0 feeds [1, 2, 3], rank 1 [3, 6, -3].
  auto comms = InProcessGroup::create(2);
  std::vector<TensorMap> outs(2);
  onThreads(2, [&](int r) {
    Graph g("avg");
    Attrs in;
    in.set("name", std::string("g"));
    Value* x = g.addNode(OpKind::Input, {}, in, {{"g", {DType::F64, {3}}}})->result();
    Attrs a;
    a.set("op", std::string("mean"));
    a.set("ranks", int64_t(2));
    Value* y = g.addNode(OpKind::AllReduce, {x}, a, {{"avg", {DType::F64, {3}}}})->result();
    Attrs out;
    out.set("name", std::string("avg"));
    g.addNode(OpKind::Output, {y}, out, {});
    auto program = compileProgram(g.clone());
    ASSERT_TRUE(program) << program.error().str();
    auto exe = createExecutable(std::move(*program), DeviceSelection{});
    ASSERT_TRUE(exe);
    (*exe)->setCommunicator(comms[size_t(r)]);
    std::vector<double> v = r == 0 ? std::vector<double>{1, 2, 3} : std::vector<double>{3, 6, -3};
    auto res = (*exe)->run({{"g", Tensor::fromDoubles(DType::F64, {3}, v)}});
    ASSERT_TRUE(res) << res.error().str();
    outs[size_t(r)] = *res;
  });
  for (int r = 0; r < 2; ++r)
    for (int i = 0; i < 3; ++i) EXPECT_EQ(outs[size_t(r)]["avg"].at(i), (std::vector<double>{2, 4, 0})[size_t(i)]);
}

// x[i] = i for 11 rows: batches of 4 leave an uneven last one.
Expected<TensorDataset> elevenRows() {
  std::vector<double> ids(11);
  for (int i = 0; i < 11; ++i) ids[size_t(i)] = i;
  return TensorDataset::create({{"x", Tensor::fromDoubles(DType::F64, {11, 1}, ids)}});
}

TEST(ShardedBatches, RanksSplitEachGlobalBatchAndCutAnUnevenLastOne) {
  // 11 rows, batch 4, shuffled: batches of 4, 4, 3; over 2 ranks each takes 2, 2, 1 rows
  // (the last batch loses its third row).
  auto data = elevenRows();
  ASSERT_TRUE(data);
  DataLoaderOptions o{.batchSize = 4, .shuffle = true, .seed = 7};
  DataLoader global(*data, o), l0(*data, o), l1(*data, o);
  ShardedBatches s0(l0, 0, 2), s1(l1, 1, 2);
  for (int64_t epoch = 1; epoch <= 2; ++epoch) {
    ASSERT_TRUE(global.startEpoch(epoch) && s0.startEpoch(epoch) && s1.startEpoch(epoch));
    for (int b = 0; b < 3; ++b) {
      auto g = global.next();
      auto a = s0.next();
      auto c = s1.next();
      ASSERT_TRUE(g && *g && a && *a && c && *c);
      const Tensor& gx = (**g)["x"];
      const Tensor& ax = (**a)["x"];
      const Tensor& cx = (**c)["x"];
      const int64_t per = gx.shape()[0] / 2;
      ASSERT_EQ(ax.shape()[0], per);
      ASSERT_EQ(cx.shape()[0], per);
      for (int64_t i = 0; i < per; ++i) {
        EXPECT_EQ(ax.at(i), gx.at(i));
        EXPECT_EQ(cx.at(i), gx.at(per + i));
      }
    }
    auto end = s0.next();
    ASSERT_TRUE(end);
    EXPECT_FALSE(end->has_value());
    ASSERT_TRUE(global.next() && s1.next());
  }
  EXPECT_EQ(s0.skippedRows(), 2);  // one row in each epoch
}

// A rank's takeEpoch is its share of every global batch, as its next() yields them, and counts
// the rows an uneven batch loses as next() does.
TEST(ShardedBatches, TakeEpochIsTheRanksShareAsNextYieldsIt) {
  auto data = elevenRows();
  ASSERT_TRUE(data);
  DataLoaderOptions o{.batchSize = 4, .shuffle = true, .seed = 7};
  for (int rank = 0; rank < 2; ++rank) {
    DataLoader la(*data, o), lb(*data, o);
    ShardedBatches viaNext(la, rank, 2), viaTake(lb, rank, 2);
    for (int64_t epoch = 1; epoch <= 2; ++epoch) {
      ASSERT_TRUE(viaNext.startEpoch(epoch) && viaTake.startEpoch(epoch));
      std::vector<double> want;
      std::vector<int64_t> sizes;
      for (;;) {
        auto b = viaNext.next();
        ASSERT_TRUE(b);
        if (!*b) break;
        auto v = (**b)["x"].toDoubles();
        want.insert(want.end(), v.begin(), v.end());
        sizes.push_back(int64_t(v.size()));
      }
      auto taken = viaTake.takeEpoch();
      ASSERT_TRUE(taken.has_value());
      EXPECT_EQ(taken->sizes, sizes);
      std::vector<double> got;
      for (int64_t r : taken->order) got.push_back(taken->tensors->at("x").at(r));
      EXPECT_EQ(got, want) << "rank " << rank << " epoch " << epoch;
    }
    EXPECT_EQ(viaTake.skippedRows(), viaNext.skippedRows());
    EXPECT_EQ(viaTake.skippedRows(), 2);
  }
}

// A float64 MLP (6 -> 8 relu -> 3) and a fixed random data set of 64 rows.
std::shared_ptr<const Graph> mlp64() {
  auto g = std::make_shared<Graph>("mlp64");
  Attrs in;
  in.set("name", std::string("x"));
  Value* x = g->addNode(OpKind::Input, {}, in, {{"x", {DType::F64, {8, 6}}}})->result();
  auto param = [&](const std::string& name, Shape shape, const char* init, int64_t fanIn, int64_t fanOut) {
    Attrs p;
    p.set("init", std::string(init));
    p.set("fan_in", fanIn);
    p.set("fan_out", fanOut);
    return g->addNode(OpKind::Param, {}, p, {{name, {DType::F64, shape}}})->result();
  };
  Value* w1 = param("d1.weight", {8, 6}, "glorot_uniform", 6, 8);
  Value* b1 = param("d1.bias", {8}, "zeros", 0, 0);
  Value* w2 = param("d2.weight", {3, 8}, "glorot_uniform", 8, 3);
  Value* b2 = param("d2.bias", {3}, "zeros", 0, 0);
  Value* h = g->addNode(OpKind::Dense, {x, w1, b1}, {}, {{"d1", {DType::F64, {8, 8}}}})->result();
  Value* r = g->addNode(OpKind::Relu, {h}, {}, {{"r1", {DType::F64, {8, 8}}}})->result();
  Value* o = g->addNode(OpKind::Dense, {r, w2, b2}, {}, {{"d2", {DType::F64, {8, 3}}}})->result();
  Attrs out;
  out.set("name", std::string("logits"));
  g->addNode(OpKind::Output, {o}, out, {});
  return g;
}

TensorDataset randomData(int64_t rows) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  std::vector<double> x(static_cast<size_t>(rows * 6)), labels(static_cast<size_t>(rows));
  for (double& v : x) v = normal(rng);
  for (int64_t i = 0; i < rows; ++i) labels[size_t(i)] = double((x[size_t(i * 6)] > 0) + (x[size_t(i * 6 + 1)] > 0.5));
  return *TensorDataset::create({{"x", Tensor::fromDoubles(DType::F64, {rows, 6}, x)},
                                 {"labels", Tensor::fromDoubles(DType::I64, {rows}, labels)}});
}

struct FitResult {
  TensorMap params;
  std::vector<double> losses, accuracies;
  int64_t steps = 0;
  int64_t allReduces = 0;
};

// Trains mlp64 on `ranks` threads at global batch `batch` (Adam, gradient clipping, 2 epochs).
std::vector<FitResult> fitOnRanks(int ranks, int64_t batch, int64_t rows) {
  TrainConfig cfg;
  cfg.optimizer = "adam";
  cfg.lr = 0.01;
  cfg.clipNorm = 0.5;  // clipping reads the averaged gradients
  auto comms = ranks > 1 ? InProcessGroup::create(ranks) : std::vector<std::shared_ptr<Communicator>>{nullptr};
  std::vector<FitResult> results(static_cast<size_t>(ranks));
  onThreads(ranks, [&](int r) {
    TensorDataset data = randomData(rows);
    ModelProgramsOptions mo;
    mo.comm = comms[size_t(r)];
    auto m = ModelPrograms::createTraining(mlp64(), cfg, "logits", batch / ranks, DeviceSelection{}, mo);
    ASSERT_TRUE(m) << m.error().str();
    (*m)->initialize(11);
    DataLoader loader(data, {.batchSize = batch, .shuffle = true, .seed = 5});
    ShardedBatches shards(loader, r, ranks);
    FitPlan plan;
    plan.epochs = 2;
    int64_t step = 0;
    auto report = fitPrograms(**m, shards, plan, step);
    ASSERT_TRUE(report) << report.error().str();
    FitResult& out = results[size_t(r)];
    out.params = report->parameters;
    for (const EpochStats& e : report->epochs) {
      out.losses.push_back(e.loss);
      out.accuracies.push_back(e.accuracy);
    }
    out.steps = step;
    for (Executable* exe : (*m)->trainingSteps())
      for (Node* n : exe->graph().nodes()) out.allReduces += n->kind() == OpKind::AllReduce;
  });
  return results;
}

double maxRelativeDifference(const TensorMap& a, const TensorMap& b) {
  double worst = 0;
  for (const auto& [name, t] : a) {
    const Tensor& u = b.at(name);
    for (int64_t i = 0; i < t.numElements(); ++i)
      worst = std::max(worst, std::abs(t.at(i) - u.at(i)) / std::max(1e-3, std::abs(u.at(i))));
  }
  return worst;
}

TEST(DataParallel, TwoRanksAtHalfTheBatchTrainWhatOneTrainsAtTheWholeBatch) {
  // 70 rows at global batch 16: 4 full batches and one of 6 (3 rows per rank), two epochs.
  auto one = fitOnRanks(1, 16, 70);
  auto two = fitOnRanks(2, 16, 70);
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(one[0].allReduces, 0);
  EXPECT_EQ(two[0].allReduces, 2 * 4);  // a full-batch step and the remainder step, 4 params each
  for (const FitResult& r : two) {
    EXPECT_EQ(r.steps, one[0].steps);
    // The same float64 arithmetic up to the order of the sums over the batch's rows (a row's
    // gradient is summed in halves, then averaged): differences of a few ulps, which Adam over
    // 10 steps keeps far below 1e-12 relative.
    EXPECT_LT(maxRelativeDifference(r.params, one[0].params), 1e-12);
    for (size_t e = 0; e < r.losses.size(); ++e) {
      EXPECT_NEAR(r.losses[e], one[0].losses[e], 1e-12);
      // accuracy is an f32 fraction per batch (1/3 of a 3-row shard is not exact in f32)
      EXPECT_NEAR(r.accuracies[e], one[0].accuracies[e], 1e-7);
    }
  }
  // The ranks hold bit-identical weights (every rank applies the same averaged gradient).
  EXPECT_EQ(maxRelativeDifference(two[0].params, two[1].params), 0.0);
  // And training moved the weights well beyond that tolerance.
  TrainConfig cfg;
  auto init = ModelPrograms::createTraining(mlp64(), cfg, "logits", 8, DeviceSelection{});
  ASSERT_TRUE(init);
  (*init)->initialize(11);
  EXPECT_GT(maxRelativeDifference((*init)->parameters(), one[0].params), 1e-3);
}

// The schedule pass issues each bucket of gradient all-reduces as soon as its gradients exist:
// with 1-byte buckets every all_reduce follows its gradient's producer at once, the last
// layer's first, ahead of the backward work of the layers before it; with one bucket for all,
// the four go out together after the last gradient. Either way the updates read them after.
TEST(DataParallel, AllReducesAreScheduledInBucketsAsTheirGradientsAreReady) {
  std::vector<std::unique_ptr<ModelPrograms>> keep;  // owns the graphs the orders point into
  auto order = [&](int64_t bucketBytes) {
    TrainConfig cfg;
    ModelProgramsOptions mo;
    mo.comm = InProcessGroup::create(2)[0];
    mo.compile.collectiveBucketBytes = bucketBytes;
    auto m = ModelPrograms::createTraining(mlp64(), cfg, "logits", 8, DeviceSelection{}, mo);
    EXPECT_TRUE(m) << m.error().str();
    if (!m) return std::vector<Node*>{};
    keep.push_back(std::move(*m));
    return keep.back()->trainingSteps()[0]->graph().nodes();
  };
  auto indexOf = [](const std::vector<Node*>& nodes, const Node* n) {
    return size_t(std::find(nodes.begin(), nodes.end(), n) - nodes.begin());
  };
  auto isReduce = [](const Node* n) { return n->kind() == OpKind::AllReduce; };
  auto isUpdate = [](const Node* n) { return !mutatedOperands(n->kind()).empty(); };
  {
    std::vector<Node*> nodes = order(1);
    std::vector<size_t> at;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (isReduce(nodes[i])) at.push_back(i);
    ASSERT_EQ(at.size(), 4u);
    for (size_t i : at) EXPECT_EQ(indexOf(nodes, nodes[i]->input(0)->def()), i - 1) << nodes[i]->describe();
    // The first all_reduce (the last layer's) comes before backward work that is no update.
    size_t work = 0;
    for (size_t i = at[0] + 1; i < nodes.size(); ++i) work += !isReduce(nodes[i]) && !isUpdate(nodes[i]) &&
                                                             nodes[i]->kind() != OpKind::Output;
    EXPECT_GE(work, 3u);
    EXPECT_NE(nodes[at[0]]->input(0)->name().find("d2"), std::string::npos) << nodes[at[0]]->describe();
  }
  {
    std::vector<Node*> nodes = order(int64_t(1) << 30);
    std::vector<size_t> at;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (isReduce(nodes[i])) at.push_back(i);
    ASSERT_EQ(at.size(), 4u);
    EXPECT_EQ(at.back() - at.front(), 3u);  // adjacent: one group
    size_t lastGradient = 0;
    for (size_t i : at) lastGradient = std::max(lastGradient, indexOf(nodes, nodes[i]->input(0)->def()));
    EXPECT_EQ(at.front(), lastGradient + 1);
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (isUpdate(nodes[i])) {
        EXPECT_GT(i, at.back()) << nodes[i]->describe();
      }
    }
  }
}

TEST(DataParallel, ThreeRanksMatchOneToo) {
  auto one = fitOnRanks(1, 12, 48);
  auto three = fitOnRanks(3, 12, 48);
  for (const FitResult& r : three) EXPECT_LT(maxRelativeDifference(r.params, one[0].params), 1e-12);
}

}  // namespace
}  // namespace shoal
