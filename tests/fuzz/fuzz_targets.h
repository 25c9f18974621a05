// The bodies of the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp), shared with the unit test
// that replays the seed corpora and the crash regressions (tests/fuzz/replay_test.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shoal::fuzz {

/// One harness: its name (the folder under tests/fuzz/corpus and tests/fuzz/regressions) and
/// its body. A body must never crash, hang or trip a sanitizer on any input; it returns "" or
/// the description of a broken property (e.g. "print(parse(x)) does not parse back"), which
/// the harness turns into a crash and the replay test into a failure.
struct Target {
  const char* name;
  std::string (*run)(std::string_view input);
};

/// A Mermaid pipeline through loadPipelineText and the passes `shoal check` runs (training
/// pipelines compile their training step), under a 1 GB memory limit; a small program is then
/// run on the CPU interpreter and checked against its float64 twin (crashes only).
std::string mermaidPipeline(std::string_view input);
/// IR text through parseGraph and verifyGraph; a graph that verifies must print, parse back
/// and print the same text; a small one is then run as mermaidPipeline's are.
std::string irText(std::string_view input);
/// decodeSafetensors; a file that decodes must encode and decode to the same tensors.
std::string safetensors(std::string_view input);
/// parseIdx over plain or gzip bytes; a tensor must match its header's element count.
std::string idx(std::string_view input);
/// decodeCacheEntry; a payload that decodes must encode to the same bytes.
std::string kernelCacheEntry(std::string_view input);

/// An ONNX model (ModelProto bytes) through the importer (the checker included), then
/// compiled as `shoal check model.onnx` does, and a small one run as mermaidPipeline's are;
/// the same bytes also as a TensorProto file. Does nothing in a build without ONNX.
std::string onnxModel(std::string_view input);

/// Every harness, in a fixed order.
const std::vector<Target>& targets();

}  // namespace shoal::fuzz
