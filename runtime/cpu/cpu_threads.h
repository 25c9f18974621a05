// The CPU backend's thread count (--threads / SessionOptions::threads): shoal's kernel pool
// (support/thread_pool) runs every kernel's parallel work, the GEMMs included: BLAS itself
// is kept single-threaded and cpu::gemm cuts large products into tasks for the pool.
#pragma once

namespace shoal::cpu {

/// Makes shoal's CPU kernels (and so the BLAS calls they make) use `threads` threads (0:
/// defaultCpuThreads()), and sets OpenBLAS's own threads to 1. Cheap when nothing changes,
/// so every CPU run calls it with its executable's count.
void useCpuThreads(int threads);

/// True when the BLAS library's thread count can be set (OpenBLAS's openblas_set_num_threads
/// was found at run time). Another BLAS keeps its own setting (set OMP_NUM_THREADS=1 for
/// results independent of the thread count there).
bool blasThreadsSettable();

}  // namespace shoal::cpu
