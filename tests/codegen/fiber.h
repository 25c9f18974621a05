// Stackful fibers for the CUDA emulator (cuda_emulator.h): a block's threads run as fibers that
// switch at every __syncthreads() and shuffle. ucontext's swapcontext saves and restores the
// signal mask on every switch -- two system calls, ~1.4 µs each on CI's virtual machines, where
// the emulation suites spent most of their time in the kernel. On x86-64 the switch here saves
// the callee-saved registers and the stack pointer and nothing else (no system call); elsewhere
// it is swapcontext. Under AddressSanitizer each switch is announced to it
// (__sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber), as it requires of fibers
// it does not see made.
#pragma once

#include <ucontext.h>

#include <cstddef>

/// On the functions a fiber runs (the emulator's entry, kernel call and barrier thunks): no
/// AddressSanitizer frames. An instrumented frame with an addressable local makes ASan create
/// the fiber a fake stack (detect_stack_use_after_return) -- an mmap and munmap of its own for
/// every fiber of every block, most of the sanitized emulation tests' time. The kernels
/// themselves are host-compiled without ASan anyway.
#if defined(__clang__) || defined(__GNUC__)
#define SHOAL_FIBER_CODE __attribute__((no_sanitize("address")))
#else
#define SHOAL_FIBER_CODE
#endif

namespace shoal::test::fiber {

/// Where a fiber (or the thread's own stack) stopped, and the stack it runs on.
struct Context {
  void* sp = nullptr;             ///< the saved stack pointer (x86-64)
  const void* bottom = nullptr;   ///< its stack's lowest address (AddressSanitizer); null: not yet known
  size_t size = 0;                ///< its stack's size in bytes
  void* fakeStack = nullptr;      ///< AddressSanitizer's fake stack while switched away
  bool live = false;              ///< made and not yet exited
  ucontext_t uc{};                ///< the context on targets without the hand-written switch
};

/// Prepares `c` to run `entry` on [stack, stack + size) when first switched to. `entry` must
/// call started() first and must not return: it ends by swap(..., /*exiting=*/true).
void make(Context& c, void* stack, size_t size, void (*entry)());

/// Saves the running context in `from` and runs `to`; returns when a swap resumes `from`.
/// `exiting`: `from` never runs again (its stack may be reused).
void swap(Context& from, Context& to, bool exiting = false);

/// The first statement of a fiber's entry: completes the switch that started it, and records
/// in `from` (the context that switched to it) where that context's stack is.
void started(Context& from);

}  // namespace shoal::test::fiber
