// The runtime's own kernels (runtime/cuda/runtime_kernels.h): the module compiles with NVRTC,
// and shoal_gather_rows, run on the CPU emulator, gathers a batch as the host's upload would
// (the same rows, the same conversions, the scalar inputs written bit for bit).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "codegen/nvrtc.h"
#include "runtime/cuda/runtime_kernels.h"
#include "../codegen/cuda_emulator.h"

namespace shoal {
namespace {

using cudaimpl::GatherArgs;
using cudaimpl::gatherConverts;
using cudaimpl::scalarCode;

TEST(RuntimeKernels, CompileWithNvrtcForSm90AndSm80) {
#if SHOAL_HAVE_CUDA
  for (const char* arch : {"sm_90", "sm_80"}) {
    auto cubin = compileCuda(cudaimpl::runtimeKernelsSource(), "shoal_runtime", arch);
    ASSERT_TRUE(cubin.has_value()) << arch << ": " << cubin.error().message();
    EXPECT_NE(cubin->find("shoal_gather_rows"), std::string::npos) << arch;
    EXPECT_NE(cubin->find("shoal_accumulate"), std::string::npos) << arch;
    EXPECT_NE(cubin->find("shoal_copy_in"), std::string::npos) << arch;
  }
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

TEST(RuntimeKernels, GatherConvertsOnlyWhereTheHostConvertsAlike) {
  EXPECT_TRUE(gatherConverts(DType::U8, DType::F32));
  EXPECT_TRUE(gatherConverts(DType::I64, DType::F64));
  EXPECT_TRUE(gatherConverts(DType::F64, DType::F32));
  EXPECT_TRUE(gatherConverts(DType::I32, DType::I64));
  EXPECT_TRUE(gatherConverts(DType::BF16, DType::BF16));  // the same type: bit for bit
  EXPECT_FALSE(gatherConverts(DType::I64, DType::I32));   // the host saturates
  EXPECT_FALSE(gatherConverts(DType::F32, DType::I64));   // the host saturates
  EXPECT_FALSE(gatherConverts(DType::F32, DType::BF16));  // no 16-bit rounding on the device
  EXPECT_FALSE(gatherConverts(DType::U8, DType::I8));
}

// A data set of 7 rows: images u8 [7,2,3] into an f32 input, labels i64 into an i64 input
// (copied bit for bit), weights f64 into f32, ids i32 into i64, codes u8 [7,5] into u8 (rows
// of 5 bytes: the byte-wise copy); rows 5, 0, 3 of the order [6, 2, 5, 0, 3, 1, 4] from 2 on.
// Scalars: step (f32) and lr (f64) given by value.
TEST(RuntimeKernels, GatherRowsEmulatedMatchesTheHostsGather) {
  // The kernel takes its argument by value; the emulator passes pointers: a host-only
  // wrapper calls it (never compiled for a GPU).
  std::string source = std::string(cudaimpl::runtimeKernelsSource()) +
                       "\nextern \"C\" void shoal_gather_rows_at(const ShoalGather* g) { shoal_gather_rows(*g); }\n";
  auto mod = test::EmulatedModule::compile(source, "runtime_kernels");
  ASSERT_TRUE(mod.has_value()) << mod.error().message();

  const int64_t n = 7, rows = 3, first = 2;
  const std::vector<int64_t> order = {6, 2, 5, 0, 3, 1, 4};
  std::mt19937 rng{3};
  Tensor images(DType::U8, {n, 2, 3}), labels(DType::I64, {n}), weights(DType::F64, {n}), ids(DType::I32, {n}),
      codes(DType::U8, {n, 5});
  for (int64_t i = 0; i < images.numElements(); ++i) images.set(i, double(rng() % 256));
  for (int64_t i = 0; i < n; ++i) {
    labels.set(i, double(int64_t(rng() % 1000) - 500));
    weights.set(i, double(rng()) / 3.0e7);  // not representable in f32: rounded
    ids.set(i, double(int32_t(rng() % 100000) - 50000));
  }
  for (int64_t i = 0; i < codes.numElements(); ++i) codes.set(i, double(rng() % 256));
  struct Case {
    const Tensor* src;
    DType to;
  };
  const std::vector<Case> cases = {
      {&images, DType::F32}, {&labels, DType::I64}, {&weights, DType::F32}, {&ids, DType::I64}, {&codes, DType::U8}};
  std::vector<Tensor> dst;
  GatherArgs g{};
  g.order = order.data();
  g.first = first;
  for (const Case& c : cases) {
    ASSERT_TRUE(gatherConverts(c.src->dtype(), c.to));
    Shape shape = c.src->shape();
    shape[0] = rows;
    dst.emplace_back(c.to, shape);
    std::memset(dst.back().raw(), 0xab, dst.back().byteSize());
    auto& a = g.tensor[g.tensors++];
    a.src = c.src->raw();
    a.dst = dst.back().raw();
    a.rowElems = c.src->numElements() / n;
    const bool same = c.src->dtype() == c.to;
    a.srcCode = same ? -1 : int32_t(scalarCode(c.src->dtype()));
    a.dstCode = same ? -1 : int32_t(scalarCode(c.to));
    a.elemBytes = int32_t(dtypeSize(c.to));
  }
  float step = 12345.0f;
  double lr = 1e-3 / 3;
  float stepOut = 0;
  double lrOut = 0;
  g.scalar[0] = {&stepOut, 0, 4, 0};
  std::memcpy(&g.scalar[0].bits, &step, 4);
  g.scalar[1] = {&lrOut, 0, 8, 0};
  std::memcpy(&g.scalar[1].bits, &lr, 8);
  g.scalars = 2;

  // Block (row, tensor), 4 threads: every loop strides over more than one element.
  ASSERT_TRUE(mod->get()->launch("shoal_gather_rows_at", unsigned(rows), unsigned(g.tensors), 4, {&g}, false).has_value());

  const std::vector<int64_t> batchRows(order.begin() + first, order.begin() + first + rows);
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE(std::string(dtypeName(cases[c].src->dtype())) + " -> " + std::string(dtypeName(cases[c].to)));
    // The host's upload: gather the rows, then convert each element through Tensor::set.
    Tensor want(cases[c].to, dst[c].shape());
    const int64_t per = cases[c].src->numElements() / n;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t e = 0; e < per; ++e) want.set(r * per + e, cases[c].src->at(batchRows[size_t(r)] * per + e));
    EXPECT_EQ(std::memcmp(dst[c].raw(), want.raw(), want.byteSize()), 0);
  }
  EXPECT_EQ(std::memcmp(&stepOut, &step, 4), 0);
  EXPECT_EQ(std::memcmp(&lrOut, &lr, 8), 0);
}

// shoal_copy_in on the emulator: every byte copied and none past the end, for sizes with and
// without a tail of under 16 bytes, one vector per thread, four in flight per thread and the
// loop after them (a grid of 2 x 4 threads here), and the launch shape the runtime picks.
TEST(RuntimeKernels, CopyInEmulatedCopiesEveryByteAndNoMore) {
  std::string source = std::string(cudaimpl::runtimeKernelsSource()) +
                       "\nextern \"C\" void shoal_copy_in_at(const unsigned char* s, unsigned char* d, const long long* n) "
                       "{ shoal_copy_in(s, d, *n); }\n";
  auto mod = test::EmulatedModule::compile(source, "runtime_kernels_copy_in");
  ASSERT_TRUE(mod.has_value()) << mod.error().message();
  struct Case {
    long long bytes;
    unsigned grid, block;
  };
  const long long seed = 64 * 28 * 28;  // the seed CNN's batch of 64 u8 images
  for (const Case& c : std::vector<Case>{{5, 2, 4},
                                         {16, 2, 4},
                                         {16 * 8 + 3, 2, 4},
                                         {16 * 40 + 7, 2, 4},
                                         {16 * 77, 2, 4},
                                         {seed, cudaimpl::copyInBlocks(seed), 256},
                                         {12345, cudaimpl::copyInBlocks(12345), 256}}) {
    SCOPED_TRACE(c.bytes);
    std::vector<float> srcStore(size_t(c.bytes / 4 + 8)), dstStore(size_t(c.bytes / 4 + 8));
    auto* src = reinterpret_cast<unsigned char*>(srcStore.data());
    auto* dst = reinterpret_cast<unsigned char*>(dstStore.data());
    ASSERT_EQ(reinterpret_cast<uintptr_t>(src) % 16, 0u);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(dst) % 16, 0u);
    std::mt19937 rng{uint32_t(c.bytes)};
    for (long long i = 0; i < c.bytes + 16; ++i) src[i] = (unsigned char)(rng() % 256);
    std::memset(dst, 0xab, size_t(c.bytes + 16));
    long long n = c.bytes;
    ASSERT_TRUE(mod->get()->launch("shoal_copy_in_at", c.grid, 1, c.block, {src, dst, &n}, false).has_value());
    EXPECT_EQ(std::memcmp(dst, src, size_t(c.bytes)), 0);
    for (long long i = c.bytes; i < c.bytes + 16; ++i) EXPECT_EQ(dst[i], 0xab) << "written past the end at " << i;
  }
  EXPECT_EQ(cudaimpl::copyInBlocks(seed), 13u);
  EXPECT_EQ(cudaimpl::copyInBlocks(1), 1u);
  EXPECT_EQ(cudaimpl::copyInBlocks(int64_t(1) << 30), 2048u);
}

}  // namespace
}  // namespace shoal
