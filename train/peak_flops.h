// train/peak_flops.h — the denominator of MFU.  On a CPU there is no datasheet number that holds
// for every SKU, frequency and thread count, so hibari measures it: the sgemm rate this process
// gets from OpenBLAS, on the threads it trains with, under the same environment (e.g. a pinned
// OPENBLAS_CORETYPE).  A user may instead set train.peak_flops (e.g. a GPU's datasheet figure);
// either way the trainer prints which peak it divides by.
#pragma once

#include <cstddef>

namespace hibari {

// FLOP/s of an n x n x n sgemm, best of `repeats` timed runs after one warm-up.
double measure_sgemm_flops(size_t n = 2048, int repeats = 3);

// The same for inference's GEMM (kernels/cpu/rowwise_matmul.h, weights packed beforehand), which
// outruns OpenBLAS on CPUs whose OpenBLAS lacks AVX-512 kernels: inference MFU divides by the
// faster of the two.
double measure_rowwise_flops(size_t n = 2048, int repeats = 3);

}  // namespace hibari
