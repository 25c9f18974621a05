// The floor under any CUDA program's start-up on a machine: a process that initialises the
// driver and makes the device's primary context (cudaFree(0)), then exits. bench/gpu_bench.sh
// times it beside `shoal run`, so the start-up goals can be read against what the machine
// itself costs.
//
//   shoal_cuda_floor                the driver and the primary context only
//   shoal_cuda_floor --libraries    also loads NVRTC, cuBLAS and cuBLASLt (dlopen, on another
//                                   thread while the context is made, as shoal's start-up does)
//   shoal_cuda_floor --blas         --libraries, then a cuBLAS handle and a 32 MiB workspace
// The differences say what loading those libraries and making the handle cost a process's wall
// time, exit included, where shoal's own breakdown shows them only as overlapped threads.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <thread>

namespace {

void* load(const char* name) {
  void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (!h) std::fprintf(stderr, "cuda_floor: dlopen %s: %s\n", name, dlerror());
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  const bool blas = argc > 1 && std::strcmp(argv[1], "--blas") == 0;
  const bool libraries = blas || (argc > 1 && std::strcmp(argv[1], "--libraries") == 0);
  if (argc > 1 && !libraries) {
    std::fprintf(stderr, "usage: shoal_cuda_floor [--libraries | --blas]\n");
    return 2;
  }
  void* cublas = nullptr;
  bool loaded = true;
  std::thread loader;
  if (libraries)
    loader = std::thread([&] {
      loaded = load("libnvrtc.so.13") != nullptr;
      cublas = load("libcublas.so.13");
      loaded = loaded && cublas && load("libcublasLt.so.13") != nullptr;
    });
  if (cudaError_t e = cudaFree(nullptr); e != cudaSuccess) {
    std::fprintf(stderr, "cuda_floor: cudaFree(0): %s\n", cudaGetErrorString(e));
    if (loader.joinable()) loader.join();
    return 1;
  }
  if (loader.joinable()) loader.join();
  if (!loaded) return 1;
  if (blas) {
    using Create = int (*)(void**);
    auto create = reinterpret_cast<Create>(dlsym(cublas, "cublasCreate_v2"));
    void* handle = nullptr;
    void* workspace = nullptr;
    if (!create || create(&handle) != 0 || cudaMalloc(&workspace, size_t(32) << 20) != cudaSuccess) {
      std::fprintf(stderr, "cuda_floor: cublasCreate or the workspace failed\n");
      return 1;
    }
  }
  return 0;
}
