// Private to runtime/cuda/*.cpp: the cuBLAS functions shoal calls, loaded from libcublas at
// run time (dlopen), so libshoal has no CUDA library among its link-time dependencies.
#pragma once

#if SHOAL_HAVE_CUDA

#include <cublasLt.h>
#include <cublas_v2.h>

#include <string>

#include "support/diagnostics.h"

namespace shoal::cudaimpl {

// Members carry the API's names (cublas_v2.h maps cublasCreate to cublasCreate_v2, and so on),
// so a call reads `lib.cublasCreate(&handle)`.
#define SHOAL_CUBLAS_FUNCTIONS(X)                                                                    \
  X(cublasCreate_v2) X(cublasDestroy_v2) X(cublasSetStream_v2) X(cublasSetWorkspace_v2)              \
  X(cublasSetMathMode) X(cublasGetMathMode) X(cublasSgemm_v2) X(cublasDgemm_v2)                      \
  X(cublasSgemmStridedBatched) X(cublasDgemmStridedBatched)                                          \
  X(cublasGetStatusString) X(cublasGetStatusName)

// C++ overloads these two (a deprecated cudaDataType compute type), so they are named by type.
using CublasGemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                          const void*, const void*, cudaDataType, int, const void*, cudaDataType, int,
                                          const void*, void*, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
using CublasGemmStridedBatchedExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                                        int, const void*, const void*, cudaDataType, int, long long int,
                                                        const void*, cudaDataType, int, long long int, const void*,
                                                        void*, cudaDataType, int, long long int, int,
                                                        cublasComputeType_t, cublasGemmAlgo_t);

struct CublasLibrary {
#define SHOAL_CUBLAS_MEMBER(name) decltype(&::name) name = nullptr;
  SHOAL_CUBLAS_FUNCTIONS(SHOAL_CUBLAS_MEMBER)
#undef SHOAL_CUBLAS_MEMBER
  CublasGemmExFn cublasGemmEx = nullptr;
  CublasGemmStridedBatchedExFn cublasGemmStridedBatchedEx = nullptr;
  std::string path;
};

/// libcublas.so.<major of the toolkit shoal was built with>, loaded on first use; the error
/// says why it cannot be.
const Expected<CublasLibrary>& cublasLibrary();

// cuBLASLt, for products with an epilogue (CudaGemmCall::hasEpilogue).
#define SHOAL_CUBLASLT_FUNCTIONS(X)                                                                  \
  X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtMatmul) X(cublasLtMatmulDescCreate)                 \
  X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate)      \
  X(cublasLtMatrixLayoutDestroy) X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy) \
  X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulAlgoGetHeuristic)

struct CublasLtLibrary {
#define SHOAL_CUBLASLT_MEMBER(name) decltype(&::name) name = nullptr;
  SHOAL_CUBLASLT_FUNCTIONS(SHOAL_CUBLASLT_MEMBER)
#undef SHOAL_CUBLASLT_MEMBER
  std::string path;
};

/// libcublasLt.so.<major>, loaded on first use; the error says why it cannot be.
const Expected<CublasLtLibrary>& cublasLtLibrary();

}  // namespace shoal::cudaimpl

#endif  // SHOAL_HAVE_CUDA
