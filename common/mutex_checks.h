// Abseil's mutex deadlock detection, which Varscope's programs turn off.
#ifndef VARSCOPE_COMMON_MUTEX_CHECKS_H_
#define VARSCOPE_COMMON_MUTEX_CHECKS_H_

namespace varscope {

// Turns off absl::Mutex deadlock detection for the whole process. Debian
// builds Abseil without NDEBUG, which leaves the detection on: every Lock of
// every absl::Mutex, gRPC's own included (its gpr_mu is one), then looks the
// mutex up in a process-wide graph under a global lock and records the lock
// order, and destroying a mutex removes it from the graph. varscoped, the
// Python extension and the benchmarks call this first thing, as a release
// build of Abseil would behave (bench/RESULTS.md has the measured cost);
// tests keep the detection. Safe to call more than once.
void SkipMutexDeadlockDetection();

}  // namespace varscope

#endif  // VARSCOPE_COMMON_MUTEX_CHECKS_H_
