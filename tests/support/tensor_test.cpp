// Host and device tensors (include/shoal/tensor.h).
#include <gtest/gtest.h>

#include <shoal/tensor.h>

#include <stdexcept>
#include <vector>

#include "runtime/cpu/interpreter.h"
#include "runtime/data/datasets.h"
#include "codegen/cuda_test_graphs.h"

namespace shoal {
namespace {

TEST(DeviceTensor, KeepsItsTypeAndAddressAndRefusesHostAccess) {
  int fake = 0;  // never dereferenced: the tensor only carries the address
  Tensor t = Tensor::onDevice({DType::F32, {2, 3}}, &fake, 1);
  EXPECT_TRUE(t.isOnDevice());
  EXPECT_EQ(t.device(), 1);
  EXPECT_EQ(t.raw(), &fake);
  EXPECT_EQ(t.byteSize(), 24u);
  Tensor r = t.reshaped({3, 2});
  EXPECT_TRUE(r.isOnDevice());
  EXPECT_EQ(r.raw(), &fake);
  EXPECT_THROW((void)t.at(0), std::logic_error);
  EXPECT_THROW(t.set(0, 1.0), std::logic_error);
  EXPECT_THROW((void)t.toDoubles(), std::logic_error);
  EXPECT_THROW((void)t.clone(), std::logic_error);
  EXPECT_THROW((void)t.cast(DType::F64), std::logic_error);
  try {
    (void)t.at(0);
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(),
                 "Tensor::at: the tensor f32[2,3] is on GPU 1 (Tensor::onDevice); its elements cannot be read or "
                 "written on the host");
  }
  Tensor host(DType::F32, {2});
  EXPECT_FALSE(host.isOnDevice());
  EXPECT_EQ(host.device(), -1);
}

TEST(DeviceTensor, TheCpuBackendRefusesItByName) {
  test::OpGraphBuilder b("dev", DType::F32);
  Value* x = b.input("x", Shape{2});
  b.op(OpKind::Relu, {x}, Attrs{}, "y");
  auto g = b.take();
  auto program = compileProgram(g->clone(), test::opTestCompileOptions());
  ASSERT_TRUE(program.has_value()) << program.error().str();
  auto exe = CpuExecutable::create(std::move(*program));
  ASSERT_TRUE(exe.has_value());
  int fake = 0;
  auto out = (*exe)->run({{"x", Tensor::onDevice({DType::F32, {2}}, &fake)}});
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().message().find("input 'x' is in GPU memory (Tensor::onDevice); the CPU backend reads host "
                                       "tensors only"),
            std::string::npos)
      << out.error().message();
}

TEST(DeviceTensor, ATensorDatasetRefusesGpuMemory) {
  int fake = 0;
  auto d = TensorDataset::create({{"x", Tensor::onDevice({DType::F32, {4, 2}}, &fake)}});
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().message().find("tensor 'x' is in GPU memory: a TensorDataset gathers its batches on the host"),
            std::string::npos)
      << d.error().message();
}

}  // namespace
}  // namespace shoal
