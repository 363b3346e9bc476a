// parallel.cpp - see Note [OpenMP wait policy] in parallel.h.
#include "ops/cpu/parallel.h"

#include <unistd.h>

#include <cstdlib>

namespace mila::cpu {

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

}  // namespace mila::cpu
