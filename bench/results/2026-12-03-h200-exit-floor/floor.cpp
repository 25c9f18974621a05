#include <cuda_runtime.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>
int main(int argc, char** argv) {
  auto t0 = std::chrono::steady_clock::now();
  cudaFree(0);
  void* p = nullptr; cudaMalloc(&p, 64 << 20);
  void* h = nullptr; if (argc > 2) cudaMallocHost(&h, 64 << 20);
  cudaDeviceSynchronize();
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "init %.1f ms\n", ms);
  if (argc > 1 && std::strcmp(argv[1], "quick") == 0) { std::fflush(nullptr); _exit(0); }
  if (argc > 1 && std::strcmp(argv[1], "reset") == 0) { auto t1 = std::chrono::steady_clock::now(); cudaDeviceReset();
    std::fprintf(stderr, "reset %.1f ms\n", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count()); }
  return 0;
}
