// Host tensors.
#include <shoal/tensor.h>

#include <cassert>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "support/float16.h"

namespace shoal {

namespace {
constexpr size_t kAlign = 64;

std::shared_ptr<void> allocate(size_t bytes) {
  size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? kAlign : rounded);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

Tensor::Tensor(TensorType type) : type_(std::move(type)) {
  owner_ = allocate(type_.byteSize());
  data_ = owner_.get();
}

Tensor Tensor::view(TensorType type, void* data) {
  Tensor t;
  t.type_ = std::move(type);
  t.data_ = data;
  return t;
}

Tensor Tensor::onDevice(TensorType type, void* devicePtr, int device) {
  Tensor t = view(std::move(type), devicePtr);
  t.device_ = device < 0 ? 0 : device;
  return t;
}

Tensor Tensor::onDevice(TensorType type, std::shared_ptr<void> owner, int device) {
  Tensor t = onDevice(std::move(type), owner.get(), device);
  t.owner_ = std::move(owner);
  return t;
}

void Tensor::requireHost(const char* what) const {
  if (device_ >= 0)
    throw std::logic_error(std::string("Tensor::") + what + ": the tensor " + type_.str() + " is on GPU " +
                           std::to_string(device_) + " (Tensor::onDevice); its elements cannot be read or written on the host");
}

Tensor Tensor::fromDoubles(DType dtype, Shape shape, std::span<const double> values) {
  Tensor t(dtype, std::move(shape));
  assert(int64_t(values.size()) == t.numElements() && "value count must match the shape");
  for (int64_t i = 0; i < t.numElements(); ++i) t.set(i, values[size_t(i)]);
  return t;
}

double Tensor::at(int64_t i) const {
  requireHost("at");
  switch (type_.dtype) {
    case DType::F32: return data<float>()[i];
    case DType::F64: return data<double>()[i];
    case DType::I32: return data<int32_t>()[i];
    case DType::I64: return double(data<int64_t>()[i]);
    case DType::U8: return data<uint8_t>()[i];
    case DType::Bool: return data<bool>()[i] ? 1.0 : 0.0;
    case DType::F16: return shoal_f16_to_f32(data<uint16_t>()[i]);
    case DType::BF16: return shoal_bf16_to_f32(data<uint16_t>()[i]);
    case DType::I8: return data<int8_t>()[i];
    case DType::I16: return data<int16_t>()[i];
    case DType::U16: return data<uint16_t>()[i];
    case DType::U32: return data<uint32_t>()[i];
    case DType::U64: return double(data<uint64_t>()[i]);
  }
  return 0;
}

namespace {
// Float -> integer conversion that truncates toward zero and saturates at the type's range
// (NaN becomes 0), instead of the undefined behaviour of a plain cast out of range.
template <typename I>
I saturate(double v) {
  if (std::isnan(v)) return 0;
  if (v <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (v >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return I(v);
}
}  // namespace

void Tensor::set(int64_t i, double v) {
  requireHost("set");
  switch (type_.dtype) {
    case DType::F32: data<float>()[i] = float(v); return;
    case DType::F64: data<double>()[i] = v; return;
    case DType::I32: data<int32_t>()[i] = saturate<int32_t>(v); return;
    case DType::I64: data<int64_t>()[i] = saturate<int64_t>(v); return;
    case DType::U8: data<uint8_t>()[i] = saturate<uint8_t>(v); return;
    case DType::Bool: data<bool>()[i] = v != 0; return;  // NaN is true, as C++ and PyTorch convert it
    case DType::F16: data<uint16_t>()[i] = shoal_f64_to_f16(v); return;
    case DType::BF16: data<uint16_t>()[i] = shoal_f64_to_bf16(v); return;
    case DType::I8: data<int8_t>()[i] = saturate<int8_t>(v); return;
    case DType::I16: data<int16_t>()[i] = saturate<int16_t>(v); return;
    case DType::U16: data<uint16_t>()[i] = saturate<uint16_t>(v); return;
    case DType::U32: data<uint32_t>()[i] = saturate<uint32_t>(v); return;
    case DType::U64: data<uint64_t>()[i] = saturate<uint64_t>(v); return;
  }
}

std::vector<double> Tensor::toDoubles() const {
  requireHost("toDoubles");
  std::vector<double> out(static_cast<size_t>(numElements()));
  for (int64_t i = 0; i < numElements(); ++i) out[size_t(i)] = at(i);
  return out;
}

Tensor Tensor::clone() const {
  requireHost("clone");
  Tensor t(type_);
  if (byteSize()) std::memcpy(t.data_, data_, byteSize());
  return t;
}

Tensor Tensor::cast(DType dtype) const {
  requireHost("cast");
  if (dtype == type_.dtype) return clone();
  Tensor t(dtype, type_.shape);
  for (int64_t i = 0; i < numElements(); ++i) t.set(i, at(i));
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  assert(shoal::numElements(shape) == numElements() && "reshape must keep the element count");
  Tensor t = *this;
  t.type_.shape = std::move(shape);
  return t;
}

}  // namespace shoal
