// The public builder's grouped convolutions (Conv2dOptions::groups).
#include <gtest/gtest.h>
#include <shoal/shoal.h>

#include <vector>

namespace {

TEST(ConvBuilder, DepthwiseConvKeepsChannelsApart) {
  shoal::GraphBuilder b("depthwise");
  auto x = b.input("x", shoal::f32({1, 2, 4, 4}));
  b.output("y", b.conv2d(x, 2, 3, 3, {.groups = 2}));
  auto model = b.build();
  ASSERT_TRUE(model) << model.error().str();
  EXPECT_NE(model->ir().find("f32[2,1,3,3]"), std::string::npos) << model->ir();
  EXPECT_NE(model->ir().find("groups=2"), std::string::npos) << model->ir();

  auto exe = shoal::Session::create(*model, {.device = shoal::DeviceKind::Cpu, .seed = 3});
  ASSERT_TRUE(exe) << exe.error().str();
  std::vector<double> input(32);
  for (size_t i = 0; i < input.size(); ++i) input[i] = double(i % 7) - 3;
  auto first = exe->run({{"x", shoal::Tensor::fromDoubles(shoal::DType::F32, {1, 2, 4, 4}, input)}});
  ASSERT_TRUE(first) << first.error().str();
  for (size_t i = 0; i < 16; ++i) input[i] += 1.5;  // channel 0 only
  auto second = exe->run({{"x", shoal::Tensor::fromDoubles(shoal::DType::F32, {1, 2, 4, 4}, input)}});
  ASSERT_TRUE(second);
  std::vector<double> a = first->at("y").toDoubles(), c = second->at("y").toDoubles();
  ASSERT_EQ(a.size(), 8u);
  // Filter 0 sees channel 0 only (its output moves by 1.5 · Σ w0 ≠ 0); filter 1 channel 1 only.
  EXPECT_NE(std::vector<double>(a.begin(), a.begin() + 4), std::vector<double>(c.begin(), c.begin() + 4));
  EXPECT_EQ(std::vector<double>(a.begin() + 4, a.end()), std::vector<double>(c.begin() + 4, c.end()));
}

TEST(ConvBuilder, GroupsMustDivideTheChannels) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({1, 6, 8, 8}));
  b.output("y", b.conv2d(x, 8, 3, 3, {.groups = 4}));
  auto model = b.build();
  ASSERT_FALSE(model);
  EXPECT_EQ(model.error().message(), "conv2d 'conv2d_0': groups=4 must divide the input's 6 channels and the 8 filters");
}

}  // namespace
