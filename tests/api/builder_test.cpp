// The public GraphBuilder: layer names (given or the documented defaults), name errors.
#include <gtest/gtest.h>
#include <shoal/shoal.h>

namespace {

std::vector<std::string> paramNames(const shoal::Model& m) {
  std::vector<std::string> out;
  for (auto& [name, type] : m.parameters()) out.push_back(name);
  return out;
}

TEST(Builder, DefaultNamesCountEachKindFromZero) {
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({2, 1, 8, 8}));
  auto c = b.conv2d(x, 4, 3, 3, {.activation = shoal::Activation::Relu});
  c = b.conv2d(c, 4, 3, 3);
  auto f = b.flatten(b.maxPool2d(c, 2, 2));
  auto h = b.dense(f, 8, shoal::Activation::Relu);
  b.output("logits", b.dense(h, 3));
  auto m = b.build();
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ(paramNames(*m), (std::vector<std::string>{"conv2d_0.weight", "conv2d_0.bias", "conv2d_1.weight", "conv2d_1.bias",
                                                      "dense_0.weight", "dense_0.bias", "dense_1.weight", "dense_1.bias"}));
  EXPECT_NE(m->ir().find("maxpool2d_0"), std::string::npos);
  EXPECT_NE(m->ir().find("flatten_0"), std::string::npos);
}

TEST(Builder, NamedLayersKeepTheirNamesWhenLayersAreAdded) {
  // The same architecture with an extra (named) layer in the middle: the other names stay.
  auto build = [](bool extra) {
    shoal::GraphBuilder b;
    auto x = b.input("x", shoal::f32({2, 6}));
    auto h = b.dense(x, 5, {.activation = shoal::Activation::Relu, .name = "fc1"});
    if (extra) h = b.dense(h, 5, {.activation = shoal::Activation::Relu, .name = "fc_extra"});
    b.output("logits", b.dense(h, 3, {.name = "head"}));
    return b.build();
  };
  auto a = build(false), c = build(true);
  ASSERT_TRUE(a && c);
  EXPECT_EQ(paramNames(*a), (std::vector<std::string>{"fc1.weight", "fc1.bias", "head.weight", "head.bias"}));
  EXPECT_EQ(paramNames(*c), (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc_extra.weight", "fc_extra.bias",
                                                      "head.weight", "head.bias"}));
  // A named layer takes no default number: the next unnamed dense is still dense_0.
  shoal::GraphBuilder b;
  auto x = b.input("x", shoal::f32({2, 6}));
  auto h = b.dense(x, 5, {.name = "fc1"});
  b.output("y", b.dense(h, 2));
  auto m = b.build();
  ASSERT_TRUE(m);
  EXPECT_EQ(paramNames(*m), (std::vector<std::string>{"fc1.weight", "fc1.bias", "dense_0.weight", "dense_0.bias"}));
}

TEST(Builder, NamesMustBeFreeAndWellFormed) {
  {
    shoal::GraphBuilder b;
    auto x = b.input("x", shoal::f32({2, 6}));
    auto h = b.dense(x, 5, {.name = "fc"});
    b.output("y", b.dense(h, 2, {.name = "fc"}));
    auto m = b.build();
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message(), "dense 'fc': the name is taken by another layer or value");
  }
  {
    shoal::GraphBuilder b;
    auto x = b.input("x", shoal::f32({2, 6}));
    b.output("y", b.dense(x, 2, {.name = "x"}));
    auto m = b.build();
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message(), "dense 'x': the name is taken by another layer or value");
  }
  {
    shoal::GraphBuilder b;
    auto x = b.input("x", shoal::f32({2, 6}));
    b.output("y", b.dense(x, 2, {.name = "my layer"}));
    auto m = b.build();
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message(), "dense 'my layer': a layer name holds letters, digits and _ . - / only");
  }
  {
    // A default name skips a name the caller took.
    shoal::GraphBuilder b;
    auto x = b.input("x", shoal::f32({2, 6}));
    auto h = b.dense(x, 4, {.name = "dense_0"});
    b.output("y", b.dense(h, 2));
    auto m = b.build();
    ASSERT_TRUE(m) << m.error().str();
    EXPECT_EQ(paramNames(*m), (std::vector<std::string>{"dense_0.weight", "dense_0.bias", "dense_1.weight", "dense_1.bias"}));
  }
}

TEST(Builder, PreprocessingLayers) {
  // cast u8 -> f32, scale 1/255, normalize: (x/255 - 0.5) / 0.25.
  shoal::GraphBuilder b;
  auto x = b.input("x", {shoal::DType::U8, {1, 1, 1, 3}});
  auto y = b.normalize(b.scale(b.cast(x, shoal::DType::F32), 1.0 / 255), {0.5}, {0.25});
  b.output("y", y);
  auto session = shoal::Session::create(*b.build(), {.device = shoal::DeviceKind::Cpu});
  ASSERT_TRUE(session) << session.error().str();
  auto in = shoal::Tensor::fromDoubles(shoal::DType::U8, {1, 1, 1, 3}, std::vector<double>{0, 51, 255});
  auto out = session->run({{"x", in}});
  ASSERT_TRUE(out) << out.error().str();
  std::vector<double> want = {-2.0, (0.2 - 0.5) / 0.25, 2.0};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(out->at("y").at(int64_t(i)), want[i], 1e-6);
}

}  // namespace
