// `shoal run --gpus N`: one child process per rank, their output forwarded with a rank prefix,
// every rank stopped when one fails.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace shoal {

struct LaunchOptions {
  int ranks = 1;
  std::string program;                      ///< the executable each rank runs (shoal itself)
  std::vector<std::string> args;            ///< its arguments (argv[1..])
  std::map<std::string, std::string> env;   ///< set in every child (MASTER_ADDR, NCCL_NVLS_ENABLE, ...)
  /// Per rank: CUDA_VISIBLE_DEVICES of the child (empty list: left as it is).
  std::vector<std::string> visibleDevices;
  int graceSeconds = 5;                     ///< after SIGTERM, before SIGKILL
};

/// Starts the ranks (RANK, LOCAL_RANK and WORLD_SIZE set per child, plus opts.env), forwards
/// each line they write to the same stream prefixed "[rank R] ", and waits. When a rank exits
/// with a failure, says which and how on stderr, stops the others (SIGTERM, then SIGKILL after
/// graceSeconds) and returns 1; returns 0 when every rank succeeded. Children die with the
/// launcher (PR_SET_PDEATHSIG).
int launchRanks(const LaunchOptions& opts);

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed), or 0.
int pickFreePort();

}  // namespace shoal
