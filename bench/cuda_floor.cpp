// The floor under any CUDA program's start-up on a machine: a process that initialises the
// driver and makes the device's primary context (cudaFree(0)), then exits. bench/gpu_bench.sh
// times it beside `shoal run`, so the start-up goals can be read against what the machine
// itself costs.
#include <cuda_runtime.h>

#include <cstdio>

int main() {
  if (cudaError_t e = cudaFree(nullptr); e != cudaSuccess) {
    std::fprintf(stderr, "cuda_floor: cudaFree(0): %s\n", cudaGetErrorString(e));
    return 1;
  }
  return 0;
}
