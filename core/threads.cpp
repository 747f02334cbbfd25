#include "core/threads.h"

#include <omp.h>

#include <cstdlib>

extern "C" void openblas_set_num_threads(int);

namespace hibari {

void set_num_threads(int requested) {
  int n = requested;
  if (n <= 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    n = env ? std::atoi(env) : 0;
  }
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace hibari
