// core/threads.h — the threading policy. Kernels parallelize with OpenMP over the outermost
// independent dimension; GEMM runs on OpenBLAS's OpenMP build, which shares the same pool and runs
// single-threaded when called from inside a parallel region. One number, set once, governs both.
#pragma once

namespace hibari {

// Threads for kernels and BLAS: `requested` if > 0, else OMP_NUM_THREADS, else the core count.
void set_num_threads(int requested);
int num_threads();

}  // namespace hibari
