// Writing small ONNX models and test cases for the import tests, with ONNX's own protobuf
// classes (so the files are what an exporter writes, not what shoal reads back).
#pragma once

#if SHOAL_HAVE_ONNX

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <shoal/shoal.h>
#include <shoal/tensor.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "test_util.h"

namespace shoal::test {

/// A dimension: a fixed extent or a symbolic name ("N").
using OnnxDim = std::variant<int64_t, std::string>;

inline int32_t onnxType(DType t) {
  switch (t) {
    case DType::F32:
      return onnx::TensorProto::FLOAT;
    case DType::F64:
      return onnx::TensorProto::DOUBLE;
    case DType::I32:
      return onnx::TensorProto::INT32;
    case DType::I64:
      return onnx::TensorProto::INT64;
    case DType::F16:
      return onnx::TensorProto::FLOAT16;
    case DType::I8:
      return onnx::TensorProto::INT8;
    default:
      return onnx::TensorProto::UINT8;
  }
}

inline void fillTensorProto(onnx::TensorProto* p, const std::string& name, const Tensor& t) {
  p->set_name(name);
  p->set_data_type(onnxType(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  p->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.byteSize()));
}

inline Tensor f32Tensor(Shape shape, std::vector<double> values) {
  return Tensor::fromDoubles(DType::F32, std::move(shape), values);
}

inline Tensor i64Tensor(std::vector<int64_t> values) {
  Tensor t(DType::I64, {int64_t(values.size())});
  std::memcpy(t.raw(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

/// Builds a ModelProto node by node.
class OnnxModelBuilder {
 public:
  explicit OnnxModelBuilder(int64_t opset = 17, int64_t irVersion = 8) {
    model_.set_ir_version(irVersion);
    model_.set_producer_name("shoal-tests");
    auto* o = model_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    model_.mutable_graph()->set_name("test_graph");
  }
  onnx::ModelProto& proto() { return model_; }

  void input(const std::string& name, DType t, const std::vector<OnnxDim>& dims) {
    valueInfo(model_.mutable_graph()->add_input(), name, t, dims);
  }
  void output(const std::string& name, DType t, const std::vector<OnnxDim>& dims) {
    valueInfo(model_.mutable_graph()->add_output(), name, t, dims);
  }
  void initializer(const std::string& name, const Tensor& t) {
    fillTensorProto(model_.mutable_graph()->add_initializer(), name, t);
  }
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& ins,
                        const std::vector<std::string>& outs, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : ins) n->add_input(i);
    for (const auto& o : outs) n->add_output(o);
    return *n;
  }
  /// Saves to `dir/file` and returns the path.
  std::string save(const std::string& dir, const std::string& file = "model.onnx") const {
    std::string path = dir + "/" + file;
    std::string bytes;
    model_.SerializeToString(&bytes);
    writeFile(path, bytes);
    return path;
  }

 private:
  static void valueInfo(onnx::ValueInfoProto* vi, const std::string& name, DType t, const std::vector<OnnxDim>& dims) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnxType(t));
    auto* shape = tt->mutable_shape();
    for (const auto& d : dims) {
      auto* dim = shape->add_dim();
      if (auto* v = std::get_if<int64_t>(&d))
        dim->set_dim_value(*v);
      else
        dim->set_dim_param(std::get<std::string>(d));
    }
  }
  onnx::ModelProto model_;
};

inline void attrInt(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

inline void attrFloat(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

inline void attrInts(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

inline void attrString(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

inline void attrStrings(onnx::NodeProto& n, const std::string& name, const std::vector<std::string>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRINGS);
  for (const auto& x : v) a->add_strings(x);
}

inline void attrFloats(onnx::NodeProto& n, const std::string& name, const std::vector<float>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOATS);
  for (float x : v) a->add_floats(x);
}

inline void attrTensor(onnx::NodeProto& n, const std::string& name, const Tensor& t) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::TENSOR);
  fillTensorProto(a->mutable_t(), "", t);
}

/// A Constant node holding `t`.
inline void constantNode(OnnxModelBuilder& b, const std::string& out, const Tensor& t) {
  attrTensor(b.node("Constant", {}, {out}), "value", t);
}

/// x [N,3] -> Gemm with fc.weight [2,3], fc.bias [2] (transB) -> Relu -> y [N,2].
inline OnnxModelBuilder gemmReluModel() {
  OnnxModelBuilder b;
  b.input("x", DType::F32, {std::string("N"), int64_t(3)});
  b.output("y", DType::F32, {std::string("N"), int64_t(2)});
  b.initializer("fc.weight", f32Tensor({2, 3}, {1, -1, 2, 0.5, 0.25, -1}));
  b.initializer("fc.bias", f32Tensor({2}, {0.5, -2}));
  attrInt(b.node("Gemm", {"x", "fc.weight", "fc.bias"}, {"h"}, "fc"), "transB", 1);
  b.node("Relu", {"h"}, {"y"}, "act");
  return b;
}

/// relu(x W^T + b) for gemmReluModel's weights, row by row.
inline std::vector<double> gemmReluReference(const std::vector<double>& x) {
  const double w[2][3] = {{1, -1, 2}, {0.5, 0.25, -1}};
  const double bias[2] = {0.5, -2};
  std::vector<double> y;
  for (size_t r = 0; r < x.size() / 3; ++r)
    for (int o = 0; o < 2; ++o) {
      double s = bias[o];
      for (int i = 0; i < 3; ++i) s += x[r * 3 + size_t(i)] * w[o][i];
      y.push_back(s > 0 ? s : 0);
    }
  return y;
}

/// The model `b` describes, saved and run once on the CPU with `feeds`; a failure to load or
/// run fails the test and gives no outputs.
inline std::map<std::string, Tensor> runOnnxOnCpu(OnnxModelBuilder& b, const std::map<std::string, Tensor>& feeds) {
  auto session = Session::create(b.save(tempDir()), {.device = DeviceKind::Cpu});
  EXPECT_TRUE(session) << session.error().str();
  if (!session) return {};
  auto out = session->run(feeds);
  EXPECT_TRUE(out) << out.error().str();
  return out ? *out : std::map<std::string, Tensor>{};
}

}  // namespace shoal::test

#endif  // SHOAL_HAVE_ONNX
