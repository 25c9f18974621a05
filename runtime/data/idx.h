// Reader for IDX files (the MNIST format), plain or gzip-compressed, and the MNIST loader.
#pragma once

#include <string>
#include <string_view>

#include "support/diagnostics.h"
#include <shoal/tensor.h>

namespace shoal {

/// Reads an IDX file: magic bytes 0, 0, typecode, ndims; then ndims big-endian u32 extents;
/// then the big-endian elements, row-major. The file may be gzip-compressed (recognised by
/// its magic bytes 1f 8b, not by its name). The tensor has shape = the extents and the
/// natural dtype: u8 → U8, i8/i16/i32 → I32, f32 → F32, f64 → F64.
/// Errors name the file and what is wrong (bad magic, truncated header or data, trailing
/// bytes, a zero extent, a corrupt gzip stream, ...).
Expected<Tensor> readIdx(const std::string& path);

/// As readIdx, for bytes already in memory (plain or gzip); `name` prefixes error messages.
Expected<Tensor> parseIdx(std::string_view bytes, const std::string& name);

/// One split of an MNIST-style data set.
struct MnistSet {
  Tensor images;  ///< u8 [n, 1, H, W] (28x28 for MNIST), pixels 0..255
  Tensor labels;  ///< i64 [n], digits 0..9
};

/// Loads the training split (train-images-idx3-ubyte, train-labels-idx1-ubyte) or the test
/// split (t10k-*) from `dir`, each file plain or with a ".gz" suffix (the plain file wins
/// when both exist). Checks that images are u8 [n,H,W], labels u8 [n], the counts match and
/// every label is 0..9.
Expected<MnistSet> loadMnist(const std::string& dir, bool train);

}  // namespace shoal
