// Shared helpers for the test suite.
#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "frontend/onnx/onnx_import.h"
#include "runtime/cuda/device.h"

namespace fs = std::filesystem;

namespace shoal::test {

std::string sourcePath(const std::string& rel) { return std::string(SHOAL_SOURCE_DIR) + "/" + rel; }

std::vector<std::string> examplePipelines() {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(sourcePath("examples"))) {
    if (entry.path().extension() != ".mmd") continue;
    if (!onnxAvailable() && readFile(entry.path().string()).find("[onnx:") != std::string::npos) continue;
    files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

namespace {
struct TempDirs {
  std::vector<std::string> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (auto& d : dirs) fs::remove_all(d, ec);
  }
};
TempDirs& tempDirs() {
  static TempDirs t;
  return t;
}
}  // namespace

std::string tempDir() {
  std::string tmpl = (fs::temp_directory_path() / "shoal-test-XXXXXX").string();
  char* made = mkdtemp(tmpl.data());
  if (!made) return fs::temp_directory_path().string();
  tempDirs().dirs.push_back(made);
  return made;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

CommandResult runShell(const std::string& command) {
  std::string dir = tempDir();
  std::string outPath = dir + "/out", errPath = dir + "/err";
  std::string full = "cd '" + std::string(SHOAL_SOURCE_DIR) + "' && " + command + " >'" + outPath + "' 2>'" + errPath + "'";
  int status = std::system(full.c_str());
  CommandResult r;
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = readFile(outPath);
  r.err = readFile(errPath);
  return r;
}

CommandResult runCli(const std::string& args) { return runShell("'" + std::string(SHOAL_CLI_PATH) + "' " + args); }

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool haveHostCompiler() {
  static const bool ok = runShell("${CXX:-c++} --version > /dev/null 2>&1").exitCode == 0;
  return ok;
}

bool haveGpu() {
  static const bool ok = probeCudaDevice(0).has_value();
  return ok;
}

}  // namespace shoal::test
