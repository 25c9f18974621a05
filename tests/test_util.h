// Shared helpers for the test suite: paths, temporary dirs, running the CLI.
#pragma once

#include <string>
#include <vector>

namespace shoal::test {

/// Absolute path of a file in the source tree ("examples/matmul.mmd").
std::string sourcePath(const std::string& rel);
/// Absolute paths of the example pipelines (examples/*.mmd, sorted) this build can load: those
/// holding an ONNX model (`[onnx: ...]`) only when shoal was built with ONNX.
std::vector<std::string> examplePipelines();
/// A fresh empty temporary directory, removed at process exit.
std::string tempDir();
/// Reads a whole file (empty string if missing).
std::string readFile(const std::string& path);
/// Writes a whole file.
void writeFile(const std::string& path, const std::string& text);

struct CommandResult {
  int exitCode = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};
/// Runs the built `shoal` CLI with the given arguments (shell-quoted by the caller) from
/// the source directory.
CommandResult runCli(const std::string& args);
/// Runs any shell command from the source directory.
CommandResult runShell(const std::string& command);

/// The file names in `dir`, sorted.
std::vector<std::string> listDir(const std::string& dir);
/// Whether a host C++ compiler ($CXX, else c++) runs: the CPU emulator of generated CUDA needs
/// one. Asked once.
bool haveHostCompiler();
/// Whether CUDA device 0 can be used (a driver and a card). Asked once.
bool haveGpu();

}  // namespace shoal::test
