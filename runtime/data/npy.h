// NumPy .npy files (format 1.0-3.0, little-endian, C order): the tensors `shoal run --input`
// reads and the ONNX benchmark exchanges with Python.
#pragma once

#include <shoal/tensor.h>

#include <string>
#include <string_view>

#include "support/diagnostics.h"

namespace shoal {

/// Reads an .npy file of f4, f8, i4, i8, u1 or b1 (as u8) elements in C order. Errors name the
/// file and what is wrong (bad magic, a header that does not parse, Fortran order, an element
/// type shoal has no tensors of, truncated data).
Expected<Tensor> readNpy(const std::string& path);
/// As readNpy, for bytes in memory (`name` prefixes error messages).
Expected<Tensor> parseNpy(std::string_view bytes, const std::string& name);
/// The .npy encoding (format 1.0) of a tensor.
std::string encodeNpy(const Tensor& t);  // bf16 (NumPy has none) is written as f32

}  // namespace shoal
