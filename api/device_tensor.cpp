// shoal::toDevice: a host tensor copied into GPU memory the returned tensor owns.
#include <shoal/shoal.h>

#include <fmt/format.h>

#include "runtime/cuda/device.h"

namespace shoal {

Expected<Tensor> toDevice(const Tensor& t, int device) {
  if (t.isOnDevice()) return fail(fmt::format("toDevice: the tensor {} is already on GPU {}", t.type().str(), t.device()));
  if (device < 0) return fail(fmt::format("toDevice: GPU index {} is negative", device));
  auto buffer = newDeviceCopy(t.raw(), t.byteSize(), device);
  if (!buffer) return Unexpected(Error("toDevice: " + buffer.error().message()));
  return Tensor::onDevice(t.type(), std::move(*buffer), device);
}

}  // namespace shoal
