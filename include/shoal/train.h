// Public training vocabulary: devices, per-epoch figures and the report of a run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shoal {

/// Where a program runs. Auto picks the GPU when one is usable, else the CPU interpreter.
enum class DeviceKind { Auto, Cpu, Cuda };

/// One epoch's figures.
struct EpochStats {
  int64_t epoch = 0;  ///< 1-based
  double loss = 0;    ///< mean training loss over the epoch
  double accuracy = 0;
  std::optional<double> validationAccuracy;
  double seconds = 0;
};

/// Progress within an epoch, for progress bars.
struct StepProgress {
  int64_t epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;  ///< 1-based step within the epoch
  double runningLoss = 0;  ///< NaN when the device has not reported it yet (read once per epoch)
};

/// What a training (or evaluation) run reports.
struct TrainReport {
  std::string device;  ///< "cpu" or "cuda:0 NVIDIA H100 80GB HBM3"
  std::vector<EpochStats> epochs;
  std::optional<double> testAccuracy;
  double trainSeconds = 0;
  double stepMsMedian = 0;
  int64_t steps = 0;
  std::string checkpoint;  ///< where parameters were saved, if anywhere
  std::string profile;     ///< per-op time of the training step, when profiling was asked for
};

}  // namespace shoal
