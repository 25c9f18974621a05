// ONNX import in a build without ONNX (no libonnx-dev / libprotobuf-dev): every entry point
// fails with a message that says how to get it.
#include <fmt/format.h>

#include "frontend/onnx/onnx_import.h"

namespace shoal {

bool onnxAvailable() { return false; }

std::string onnxUnavailableMessage() {
  return "this shoal was built without ONNX support: install ONNX and protobuf (apt-get install libonnx-dev "
         "libprotobuf-dev) and rebuild";
}

bool isOnnxPath(const std::string& path) { return path.size() >= 5 && path.substr(path.size() - 5) == ".onnx"; }

namespace {
OnnxImportError unavailable(const std::string& path, Location loc = {}) {
  return {Error(fmt::format("{}: {}", path, onnxUnavailableMessage()), std::move(loc)), /*unsupported=*/true};
}
}  // namespace

OnnxExpected<OnnxModelInfo> readOnnxModelInfo(const std::string& path) { return Unexpected(unavailable(path)); }

OnnxExpected<Pipeline> importOnnxFile(const std::string& path, const OnnxImportOptions&, OnnxModelInfo*) {
  return Unexpected(unavailable(path));
}

OnnxExpected<std::vector<Value*>> importOnnxInto(Graph&, const std::string& path, const std::vector<Value*>&,
                                                 const std::string&, const Location& loc, const OnnxImportOptions&,
                                                 OnnxModelInfo*) {
  return Unexpected(unavailable(path, loc));
}

OnnxExpected<NamedTensor> readOnnxTensorFile(const std::string& path) { return Unexpected(unavailable(path)); }

Expected<void> writeOnnxTensorFile(const std::string& path, const std::string&, const Tensor&) {
  return fail(fmt::format("{}: {}", path, onnxUnavailableMessage()));
}

}  // namespace shoal
