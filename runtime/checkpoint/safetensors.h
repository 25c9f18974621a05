// Checkpoints in the safetensors format (the Hugging Face format PyTorch users exchange).
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/diagnostics.h"
#include <shoal/types.h>
#include <shoal/tensor.h>

namespace shoal {

/// Serialises tensors to safetensors bytes: an 8-byte little-endian header length N, N bytes
/// of JSON header (`__metadata__` first when non-empty, then one entry per tensor in the
/// given order, padded with spaces to a multiple of 8), then the little-endian data of each
/// tensor, contiguous and in the given order. Fails on an empty, duplicate or reserved name.
Expected<std::string> encodeSafetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                        const std::map<std::string, std::string>& metadata = {});

/// Writes a safetensors file atomically (via writeFileAtomic): a failed save leaves any
/// previous file at `path` intact. Dtypes F32, F64, I32, I64, U8.
Expected<void> saveSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

/// The contents of a safetensors file.
struct SafetensorsFile {
  /// Tensors in the order of their data in the file (the order they were written).
  std::vector<std::pair<std::string, Tensor>> tensors;
  /// The `__metadata__` string map (empty when absent).
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
};

/// Parses safetensors bytes; `name` (the file) prefixes every error message. Validates the
/// header length (at most 100 MB, as the format says), the JSON (nested at most 64 deep,
/// checked before parsing), each entry's fields and dtype, and that the data_offsets are in
/// range, match shape x dtype size, and tile the data section without overlaps or gaps.
Expected<SafetensorsFile> decodeSafetensors(std::string_view bytes, const std::string& name);

/// Reads (at most kCheckpointFileLimit bytes) and validates a safetensors file (see
/// decodeSafetensors).
Expected<SafetensorsFile> loadSafetensors(const std::string& path);

/// A note naming the tensors of `file` (read from `path`) that are not among `modelTensors`
/// (the names of a model's params and state), or "" when every tensor is used: "note: W:
/// ignored 2 tensors the model does not have: a, b". The optimizer state of the model's
/// params ("<param>.m", ".v", ".velocity", which an inference program has no use for) is
/// named only when `verbose`.
std::string unusedTensorsNote(const std::string& path, const SafetensorsFile& file,
                              const std::set<std::string>& modelTensors, bool verbose);

/// Checks a tensor loaded from a checkpoint against the type the model expects, e.g.
/// "checkpoint tensor 'd1.weight' has shape [64,100], the model expects [64,5408]".
Expected<void> checkTensorMatches(const std::string& name, const Tensor& got, const TensorType& want);

}  // namespace shoal
