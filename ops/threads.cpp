#include "ops/threads.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "ops/cpu/parallel.h"

namespace mila {

int num_threads() { return cpu::num_threads(); }

void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(std::max(1, n));
#else
  (void)n;
#endif
}

void reexec_with_passive_omp_wait(char** argv) {
#ifdef _OPENMP
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;  // the user's choice stands (and we already re-executed)
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): continue with the default policy, only slower on a busy machine.
#else
  (void)argv;
#endif
}

}  // namespace mila
