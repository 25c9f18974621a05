// The CLI's ONNX commands: `shoal run model.onnx --input NAME=FILE ...` and
// `shoal conformance DIR...` (ONNX backend test cases).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace shoal {

/// Reads `--input` arguments: `NAME=FILE` or `FILE` (the next model input in order), FILE an
/// ONNX TensorProto (.pb) or a NumPy array (.npy). `inputNames` are the model's inputs.
Expected<TensorMap> readInputFiles(const std::vector<std::string>& specs, const std::vector<std::string>& inputNames);

struct OnnxRunOptions {
  std::string file;
  std::vector<std::string> inputs;  ///< --input specs
  std::string device = "auto";
  int64_t repeat = 0;  ///< timed runs after one warm-up (0: run once)
  bool tf32 = false;
  bool verbose = false;
  int threads = 0;  ///< --threads (0: the cores available)
  TensorCoreMath precision = TensorCoreMath::Off;  ///< --precision (off: fp32)
  bool autotune = false;                           ///< --autotune
};

/// Runs an ONNX model on the given inputs (its symbolic dimensions bound by them): prints
/// each output, fills `report` (device, outputs, and with repeat the run times). Returns
/// the exit status (diagnostics on stderr).
int runOnnxModel(const OnnxRunOptions& opts, nlohmann::ordered_json& report);

struct ConformanceOptions {
  std::vector<std::string> dirs;  ///< test-case folders, or folders of them
  std::string device = "cpu";
  double rtol = 1e-3;  ///< ONNX's backend runner: rtol 1e-3, atol 1e-7
  double atol = 1e-7;
  bool isolate = true;           ///< each case in its own process (a crash is that case's FAIL)
  int64_t timeoutSeconds = 300;  ///< per case, when isolated
  std::string report;            ///< JSON with every case's result, when set
  bool verbose = false;          ///< full messages for FAIL and SKIP
  int threads = 0;               ///< CPU threads (--threads; 0: the cores available, or 1 per case with jobs > 1)
  int64_t jobs = 1;              ///< isolated cases run at once (--jobs); results print in case order
  /// An expectation file (tests/onnx/conformance-expected.txt): `PASS case` for each case that
  /// must pass, `FAIL case reason` for each known failure; any other case must skip. With it,
  /// the exit status is 0 only when every case does what the file says.
  std::string expect;
  std::string writeExpect;  ///< write the results as an expectation file here
};

/// Runs ONNX backend test cases (model.onnx + test_data_set_*/input_*.pb, output_*.pb): one
/// line per case (PASS, FAIL with the largest error, SKIP with the reason), then
/// "N passed, N failed, N skipped". Returns 0 only when none failed (with an expectation file:
/// only when every case did what it says).
int runConformance(const ConformanceOptions& opts);

}  // namespace shoal
