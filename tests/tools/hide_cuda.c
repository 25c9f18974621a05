/* An LD_PRELOAD module for tests and CI: every dlopen of a CUDA library (libcuda, libcudart,
 * libnvrtc, libcublas, libcublasLt) fails as if the library were not installed, so a test can
 * run shoal as on a machine without CUDA even where the toolkit is in the ld.so cache. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>

static int isCuda(const char* file) {
  static const char* const kHidden[] = {"libcuda.so", "libcudart", "libnvrtc", "libcublas"};
  if (!file) return 0;
  for (size_t i = 0; i < sizeof kHidden / sizeof kHidden[0]; ++i)
    if (strstr(file, kHidden[i])) return 1;
  return 0;
}

void* dlopen(const char* file, int mode) {
  static void* (*real)(const char*, int) = 0;
  if (!real) real = (void* (*)(const char*, int))dlsym(RTLD_NEXT, "dlopen");
  /* A path that cannot exist, so dlerror() says what a missing library says. */
  if (isCuda(file)) return real("/nonexistent/hidden-by-shoal-test/libcuda-library.so", mode);
  return real(file, mode);
}
