// Loading cuBLAS at run time.
#include "runtime/cuda/cublas_library.h"

#if SHOAL_HAVE_CUDA

#include "support/dynamic_library.h"

#define SHOAL_STRINGIFY2(x) #x
#define SHOAL_STRINGIFY(x) SHOAL_STRINGIFY2(x)

namespace shoal::cudaimpl {

const Expected<CublasLibrary>& cublasLibrary() {
  static const Expected<CublasLibrary> lib = []() -> Expected<CublasLibrary> {
    std::vector<std::string> names;
#ifdef SHOAL_CUDA_VERSION_MAJOR
    names.push_back("libcublas.so." SHOAL_STRINGIFY(SHOAL_CUDA_VERSION_MAJOR));
#endif
    names.push_back("libcublas.so");
    auto dl = DynamicLibrary::open("cuBLAS", names, cudaLibraryDirs());
    if (!dl) return Unexpected(dl.error());
    CublasLibrary cb;
    cb.path = dl->path();
#define SHOAL_CUBLAS_LOAD(name)                                                            \
  cb.name = reinterpret_cast<decltype(&::name)>(dl->symbol(#name));                        \
  if (!cb.name) return fail("cannot load cuBLAS: " + dl->path() + " has no " #name);
    SHOAL_CUBLAS_FUNCTIONS(SHOAL_CUBLAS_LOAD)
#undef SHOAL_CUBLAS_LOAD
    // The types must select the header's declarations (unevaluated: no link-time reference).
    static_assert(sizeof(static_cast<CublasGemmExFn>(&::cublasGemmEx)) > 0);
    static_assert(sizeof(static_cast<CublasGemmStridedBatchedExFn>(&::cublasGemmStridedBatchedEx)) > 0);
    cb.cublasGemmEx = reinterpret_cast<CublasGemmExFn>(dl->symbol("cublasGemmEx"));
    cb.cublasGemmStridedBatchedEx = reinterpret_cast<CublasGemmStridedBatchedExFn>(dl->symbol("cublasGemmStridedBatchedEx"));
    if (!cb.cublasGemmEx || !cb.cublasGemmStridedBatchedEx)
      return fail("cannot load cuBLAS: " + dl->path() + " has no cublasGemmEx / cublasGemmStridedBatchedEx");
    return cb;
  }();
  return lib;
}

const Expected<CublasLtLibrary>& cublasLtLibrary() {
  static const Expected<CublasLtLibrary> lib = []() -> Expected<CublasLtLibrary> {
    std::vector<std::string> names;
#ifdef SHOAL_CUDA_VERSION_MAJOR
    names.push_back("libcublasLt.so." SHOAL_STRINGIFY(SHOAL_CUDA_VERSION_MAJOR));
#endif
    names.push_back("libcublasLt.so");
    auto dl = DynamicLibrary::open("cuBLASLt", names, cudaLibraryDirs());
    if (!dl) return Unexpected(dl.error());
    CublasLtLibrary lt;
    lt.path = dl->path();
#define SHOAL_CUBLASLT_LOAD(name)                                                          \
  lt.name = reinterpret_cast<decltype(&::name)>(dl->symbol(#name));                        \
  if (!lt.name) return fail("cannot load cuBLASLt: " + dl->path() + " has no " #name);
    SHOAL_CUBLASLT_FUNCTIONS(SHOAL_CUBLASLT_LOAD)
#undef SHOAL_CUBLASLT_LOAD
    return lt;
  }();
  return lib;
}

}  // namespace shoal::cudaimpl

#endif  // SHOAL_HAVE_CUDA
