// File utilities every layer may use: capped whole-file reads, atomic writes, output-path
// checks, ~ expansion.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "support/diagnostics.h"

namespace shoal {

/// A kind of file shoal reads and the most bytes it reads of one: a read that reaches the
/// limit stops and fails, so /dev/zero, an endless pipe or a runaway file cannot exhaust
/// memory.
struct FileReadLimit {
  const char* kind;  ///< names the kind in errors: "pipeline file"
  int64_t maxBytes;
};

/// Pipelines (.mmd) and IR text: 64 MiB.
inline constexpr FileReadLimit kPipelineFileLimit{"pipeline file", int64_t(64) << 20};
/// safetensors checkpoints: 64 GiB.
inline constexpr FileReadLimit kCheckpointFileLimit{"checkpoint", int64_t(64) << 30};
/// Dataset files (IDX, compressed or not; also the decompressed data): 16 GiB.
inline constexpr FileReadLimit kDatasetFileLimit{"dataset file", int64_t(16) << 30};
/// ONNX models (.onnx; protobuf's own limit is 2 GiB, larger weights are external data): 2 GiB.
inline constexpr FileReadLimit kOnnxModelFileLimit{"ONNX model", int64_t(2) << 30};
/// Tensor files fed to a run (ONNX TensorProto .pb, NumPy .npy): 16 GiB.
inline constexpr FileReadLimit kTensorFileLimit{"tensor file", int64_t(16) << 30};
/// Kernel-cache entries (cubins): 64 MiB.
inline constexpr FileReadLimit kKernelCacheEntryLimit{"kernel cache entry", int64_t(64) << 20};

/// Reads a whole file (a regular file, a pipe, a device) into memory, at most
/// `limit.maxBytes` bytes. Errors name the path and the reason: "cannot open 'X': No such file
/// or directory", "cannot open 'X': Is a directory", "cannot read 'X': <errno text>",
/// "cannot read 'X': larger than 67108864 bytes, the limit for a pipeline file", "cannot read
/// 'X': out of memory".
Expected<std::string> readFileBytes(const std::string& path, const FileReadLimit& limit);

/// Writes `bytes` to `path`. What happens depends on what `path` names once symbolic links
/// are followed (as open(2) follows them):
///  - nothing, or a regular file: atomically. The data goes to a temporary file in the
///    target's directory ("<target>.tmp.<pid>.<random>"), is fsync'ed, then renamed over the
///    target. On any failure the temporary file is removed and the target is left as it was
///    (old content or absent), never half-written. A replaced file keeps its permissions.
///  - a symbolic link: the file it points to is written, by these rules; the link stays a
///    link (a dangling link's target is created).
///  - a character device or a FIFO (/dev/null, /dev/stdout, a terminal, a named pipe): the
///    bytes are written through, in place and not atomically (nothing may be renamed over a
///    device); a failed or short write (ENOSPC on /dev/full) is an error.
///  - a directory, a socket or a block device: refused, nothing is written.
/// Errors name the path and the errno text.
Expected<void> writeFileAtomic(const std::string& path, std::string_view bytes);

/// Checks, before any work is done, that writeFileAtomic(path, ...) can succeed as far as the
/// file system says now: the path names nothing or a regular file in an existing, writable
/// directory, or a writable character device or FIFO (symbolic links followed). Errors read
/// "cannot write 'X': directory 'D' does not exist", "... directory 'D' is not writable:
/// Permission denied", "... Is a directory".
Expected<void> checkWritablePath(const std::string& path);

/// Expands a leading "~" or "~/" to $HOME (or the password database's home directory when
/// HOME is unset). Other paths, including "~user/...", are returned unchanged.
std::string expandUser(const std::string& path);

}  // namespace shoal
