// Private to runtime/cuda/*.cpp: turning CUDA and cuBLAS status codes into Errors.
#pragma once

#if SHOAL_HAVE_CUDA

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>
#include <string_view>

#include "runtime/cuda/cublas_library.h"
#include "support/diagnostics.h"

namespace shoal::cudaimpl {

/// "call(what): <CUDA's text> (<error name>)". Also clears CUDA's last-error slot, so a
/// reported non-sticky error does not resurface in a later, unrelated check.
inline Unexpected<Error> cudaFail(cudaError_t err, std::string_view call, std::string_view what) {
  (void)cudaGetLastError();
  std::string msg(call);
  msg += '(';
  msg += what;
  msg += "): ";
  msg += cudaGetErrorString(err);
  msg += " (";
  msg += cudaGetErrorName(err);
  msg += ')';
  return fail(std::move(msg));
}

/// "call(what): <cuBLAS's text> (<status name>)".
inline Unexpected<Error> cublasFail(cublasStatus_t status, std::string_view call, std::string_view what) {
  std::string msg(call);
  msg += '(';
  msg += what;
  msg += "): ";
  if (const auto& lib = cublasLibrary()) {
    msg += lib->cublasGetStatusString(status);
    msg += " (";
    msg += lib->cublasGetStatusName(status);
    msg += ')';
  } else {
    msg += "cuBLAS status " + std::to_string(int(status));
  }
  return fail(std::move(msg));
}

}  // namespace shoal::cudaimpl

#endif  // SHOAL_HAVE_CUDA
