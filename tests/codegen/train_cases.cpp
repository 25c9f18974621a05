// CUDA test cases of the train family (see SHOAL_CUDA_CASE in cuda_test_graphs.h): the
// emulator parity test runs them against the interpreter, NVRTC compiles them for sm_90/sm_80.
#include "codegen/cuda_test_graphs.h"

namespace shoal::test {
namespace {

const TensorType kRate{DType::F64, {}};

SHOAL_CUDA_CASE(SgdUpdate, OpKind::SgdUpdate) {
  Value* lr = b.input("lr", kRate);
  b.op(OpKind::SgdUpdate, {b.param("w", {3, 8}), b.input("g", Shape{3, 8}), lr}, attrs({{"weight_decay", 1e-3}}),
       "sgd");
  b.op(OpKind::SgdUpdate, {b.param("u", {5}), b.input("gu", Shape{5}), lr, b.input("gs", Shape{})}, {}, "clipped");
  return true;
}

SHOAL_CUDA_CASE(SgdMomentumUpdate, OpKind::SgdMomentumUpdate) {
  Value* lr = b.input("lr", kRate);
  b.op(OpKind::SgdMomentumUpdate, {b.param("w", {3, 8}), b.input("g", Shape{3, 8}), b.state("w.velocity", {3, 8}), lr},
       attrs({{"momentum", 0.9}, {"weight_decay", 1e-3}}), "sgd");
  b.op(OpKind::SgdMomentumUpdate,
       {b.param("u", {300}), b.input("gu", Shape{300}), b.state("u.velocity", {300}), lr, b.input("gs", Shape{})},
       attrs({{"momentum", 0.5}, {"nesterov", int64_t(1)}}), "nesterov");
  return true;
}

SHOAL_CUDA_CASE(AdamUpdate, OpKind::AdamUpdate) {
  Value* step = b.input("step", TensorType{DType::F32, {}});
  Value* lr = b.input("lr", kRate);
  b.op(OpKind::AdamUpdate,
       {b.param("w", {3, 8}), b.input("g", Shape{3, 8}), b.state("w.m", {3, 8}), b.state("w.v", {3, 8}), step, lr}, {},
       "adam");
  b.op(OpKind::AdamUpdate,
       {b.param("u", {300}), b.input("gu", Shape{300}), b.state("u.m", {300}), b.state("u.v", {300}), step, lr},
       attrs({{"weight_decay", 0.01}}), "adam_wd");
  b.op(OpKind::AdamUpdate,
       {b.param("x", {7}), b.input("gx", Shape{7}), b.state("x.m", {7}), b.state("x.v", {7}), step, lr,
        b.input("gs", Shape{})},
       attrs({{"eps", 1e-8}, {"weight_decay", 0.05}, {"decoupled_weight_decay", int64_t(1)}}), "adamw");
  return true;
}

SHOAL_CUDA_CASE(BceWithLogits, OpKind::BceWithLogits) {
  b.op(OpKind::BceWithLogits, {b.input("x", Shape{8, 7}), b.input("t", Shape{8, 7})}, {}, "loss");
  b.op(OpKind::BceWithLogits, {b.input("long", Shape{3, 700}), b.input("tl", Shape{3, 700})}, {}, "long_loss");
  return true;
}

SHOAL_CUDA_CASE(BceWithLogitsGrad, OpKind::BceWithLogitsGrad) {
  b.op(OpKind::BceWithLogitsGrad, {b.input("x", Shape{8, 7}), b.input("t", Shape{8, 7}), b.input("dloss", Shape{})}, {},
       "dx");
  return true;
}

SHOAL_CUDA_CASE(OneHot, OpKind::OneHot) {
  const std::string dtype(dtypeName(b.dt()));
  const Attrs a = attrs({{"classes", int64_t(7)}, {"dtype", dtype}});
  b.op(OpKind::OneHot, {b.input("labels", TensorType{DType::I64, {8}})}, a, "hot64");
  b.op(OpKind::OneHot, {b.input("labels32", TensorType{DType::I32, {8}})}, a, "hot32");
  b.op(OpKind::OneHot, {b.input("labels8", TensorType{DType::U8, {8}})},
       attrs({{"classes", int64_t(10)}, {"dtype", dtype}}), "hot8");
  return true;
}

SHOAL_CUDA_CASE(GlobalSumSquares, OpKind::GlobalSumSquares) {
  // One block (a few hundred elements), and a multi-block sum over operands of mixed sizes.
  b.op(OpKind::GlobalSumSquares, {b.input("a", Shape{3, 8}), b.input("s", Shape{})}, {}, "small");
  b.op(OpKind::GlobalSumSquares,
       {b.input("w", Shape{300, 40}), b.input("bias", Shape{40}), b.input("v", Shape{5, 1000})}, {}, "large");
  return true;
}

SHOAL_CUDA_CASE(LossScaleUpdate, OpKind::LossScaleUpdate) {
  b.op(OpKind::LossScaleUpdate, {b.state("e", {}), b.state("good", {}), b.input("s", Shape{})},
       attrs({{"growth_interval", int64_t(2)}}), "update");
  return true;
}

SHOAL_CUDA_CASE(AllReduce, OpKind::AllReduce) {
  // Over one rank (no communicator): the copy into the result; several ranks are tested with
  // an in-process communicator (tests/runtime/data_parallel_test.cpp) and NCCL on the GPU.
  Attrs a;
  a.set("op", std::string("mean"));
  a.set("ranks", int64_t(1));
  b.op(OpKind::AllReduce, {b.input("g", Shape{3, 8})}, a, "avg");
  return true;
}

}  // namespace
}  // namespace shoal::test
