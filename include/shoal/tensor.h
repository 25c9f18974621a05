// Public host tensors: a typed, shaped, owning buffer (or a view into an arena).
#pragma once

#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "types.h"

namespace shoal {


/// A dense row-major host tensor. Copies share storage (like a shared_ptr); use clone() for a
/// deep copy. A tensor may also view memory it does not own (an arena slot).
class Tensor {
 public:
  Tensor() = default;
  /// A zero-filled tensor of the given type.
  explicit Tensor(TensorType type);
  Tensor(DType dtype, Shape shape) : Tensor(TensorType{dtype, std::move(shape)}) {}
  /// A non-owning view of `data` (which must outlive every copy of the view). A view of
  /// page-locked memory (cudaMallocHost, cudaHostRegister) is uploaded by Session::run on a
  /// GPU straight from there when its element type is the model's input's (docs/API.md).
  static Tensor view(TensorType type, void* data);
  /// A non-owning view of memory on GPU `device` (cudaMalloc'd by the app, or another
  /// library's tensor), for a Session or Trainer running on that GPU: an input fed this way is
  /// copied on the device, with no trip through the host, and parameters set from it likewise
  /// (the element type must then be the model's: no conversion happens on the device). The
  /// memory must hold its values when run()/step() is called (synchronise the stream that
  /// wrote it first) and outlive the call. Its elements cannot be read or written on the
  /// host: at(), set(), toDoubles(), clone() and cast() throw std::logic_error, and the CPU
  /// backend refuses it with an error naming the input. raw() is then the device address.
  static Tensor onDevice(TensorType type, void* devicePtr, int device = 0);
  /// The same, owning the memory: `owner` (whose get() is the device address) is kept by every
  /// copy of the tensor and released with the last. shoal::toDevice makes these.
  static Tensor onDevice(TensorType type, std::shared_ptr<void> owner, int device = 0);
  /// A tensor holding `values` converted to `dtype`.
  static Tensor fromDoubles(DType dtype, Shape shape, std::span<const double> values);

  const TensorType& type() const { return type_; }
  DType dtype() const { return type_.dtype; }
  const Shape& shape() const { return type_.shape; }
  int64_t numElements() const { return type_.numElements(); }
  size_t byteSize() const { return type_.byteSize(); }
  bool defined() const { return data_ != nullptr || type_.numElements() == 0; }
  /// Whether the elements live in GPU memory (onDevice), and on which GPU (-1: the host).
  bool isOnDevice() const { return device_ >= 0; }
  int device() const { return device_; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() { return static_cast<T*>(data_); }
  template <typename T>
  const T* data() const { return static_cast<const T*>(data_); }

  /// Element i (flat index) converted to double, whatever the dtype.
  double at(int64_t i) const;
  /// Sets element i (flat index) from a double, converting to the dtype (integers truncate
  /// toward zero and saturate at their range, NaN becoming 0; bool is v != 0, so NaN is true).
  void set(int64_t i, double v);
  /// All elements as doubles.
  std::vector<double> toDoubles() const;
  /// A deep copy with its own storage.
  Tensor clone() const;
  /// A copy converted to another element type.
  Tensor cast(DType dtype) const;
  /// Same storage, another shape with the same element count.
  Tensor reshaped(Shape shape) const;

 private:
  TensorType type_;
  /// Throws std::logic_error naming `what` when the elements are on a GPU.
  void requireHost(const char* what) const;

  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  int device_ = -1;
};

/// Named tensors: a model's inputs or outputs, a batch of examples, parameters by name.
using TensorMap = std::map<std::string, Tensor>;

}  // namespace shoal
