// SHOAL_TEST_ASAN: this test binary is built with AddressSanitizer -- gcc says so with
// __SANITIZE_ADDRESS__, clang with __has_feature(address_sanitizer). Tests that start programs
// the sanitizer runtime cannot serve (an app built without it, a process under ulimit -v) skip
// those parts then.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define SHOAL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHOAL_TEST_ASAN 1
#endif
#endif
