// Stackful fibers for the CUDA emulator: see fiber.h.
#include "codegen/fiber.h"

#include <cstdint>
#include <cstdlib>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHOAL_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SHOAL_FIBER_ASAN)
#define SHOAL_FIBER_ASAN 1
#endif
#ifdef SHOAL_FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__) && defined(__linux__)
#define SHOAL_FIBER_X86_64 1
// shoal_fiber_switch(void** saveSp, void* loadSp): pushes the System V callee-saved registers
// (rbp, rbx, r12-r15) and the SSE and x87 control words, stores the stack pointer in *saveSp,
// loads loadSp and pops the same from there; its `ret` returns into the other context (or, for
// a new fiber, into its entry function: make() lays out that first frame).
extern "C" void shoal_fiber_switch(void** saveSp, void* loadSp);
asm(R"(
  .pushsection .text
  .p2align 4
  .globl shoal_fiber_switch
  .hidden shoal_fiber_switch
  .type shoal_fiber_switch, @function
shoal_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r15
  pushq %r14
  pushq %r13
  pushq %r12
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r12
  popq %r13
  popq %r14
  popq %r15
  popq %rbx
  popq %rbp
  ret
  .size shoal_fiber_switch, .-shoal_fiber_switch
  .popsection
)");
#endif

namespace shoal::test::fiber {

void make(Context& c, void* stack, size_t size, void (*entry)()) {
#ifdef SHOAL_FIBER_ASAN
  // A fiber abandoned mid-kernel (the emulator failed the launch) left its frames' redzones
  // poisoned on this stack; a fiber that exited left only its entry's, which the next one's
  // entry poisons alike.
  if (c.live) __asan_unpoison_memory_region(stack, size);
#endif
  c.live = true;
  c.bottom = stack;
  c.size = size;
  c.fakeStack = nullptr;
#ifdef SHOAL_FIBER_X86_64
  // The first frame, from the top: a null return address for `entry` (it never returns), the
  // address shoal_fiber_switch's `ret` takes (16-byte aligned, so `entry` starts with the stack
  // as a call leaves it), six zero registers, then the running thread's control words.
  auto top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  auto* p = reinterpret_cast<uint64_t*>(top);
  *--p = 0;
  *--p = reinterpret_cast<uint64_t>(entry);
  for (int i = 0; i < 6; ++i) *--p = 0;
  uint32_t mxcsr = 0;
  uint16_t fpucw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  *--p = uint64_t(mxcsr) | uint64_t(fpucw) << 32;
  c.sp = p;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
#endif
}

SHOAL_FIBER_CODE void swap(Context& from, Context& to, bool exiting) {
  if (exiting) from.live = false;
#ifdef SHOAL_FIBER_X86_64
#ifdef SHOAL_FIBER_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &from.fakeStack, to.bottom, to.size);
#endif
  shoal_fiber_switch(&from.sp, to.sp);
#ifdef SHOAL_FIBER_ASAN
  __sanitizer_finish_switch_fiber(from.fakeStack, nullptr, nullptr);
#endif
#else
  (void)exiting;
  swapcontext(&from.uc, &to.uc);  // AddressSanitizer intercepts swapcontext itself
#endif
  if (exiting) std::abort();  // an exited fiber was resumed
}

SHOAL_FIBER_CODE void started(Context& from) {
#if defined(SHOAL_FIBER_X86_64) && defined(SHOAL_FIBER_ASAN)
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  from.bottom = bottom;
  from.size = size;
#else
  (void)from;
#endif
}

}  // namespace shoal::test::fiber
