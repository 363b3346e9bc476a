// threads.h - how many CPU threads the kernels use, and how idle ones wait. Programs call
// these; the kernels' own threading primitive is ops/cpu/parallel.h.
#pragma once

namespace mila {

// OpenMP's thread count for the CPU kernels (at least 1). Results do not depend on it: every
// kernel splits its work so that its bits are the same for any count (ops/cpu/parallel.h).
int num_threads();
void set_num_threads(int n);

// Note [OpenMP wait policy]: libgomp's threads spin after each parallel region, waiting
// for the next. On a quiet machine that saves a wake-up; on a busy one (a data loader's
// threads, a second process, ctest -j2) the spinning threads take the cores the working
// ones need, and a MILA training step measured 0.4 s with OMP_WAIT_POLICY=PASSIVE against
// 0.8-5 s with the default on 2 loaded cores. The policy is read once, when libgomp loads,
// so programs that run next to their own loader threads (examples/train_nyu, predict) call
// this first thing in main(): when the user has not chosen a policy it re-executes the
// program with OMP_WAIT_POLICY=PASSIVE set. Returns normally otherwise (or if exec fails).
void reexec_with_passive_omp_wait(char** argv);

}  // namespace mila
