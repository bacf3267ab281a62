// Its own test binary: SkipMutexDeadlockDetection changes the whole process.
#include "common/mutex_checks.h"

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"

namespace varscope {
namespace {

// Takes two mutexes in one order, then in the other: a potential deadlock
// that Abseil's detection reports by aborting, in builds that have it on.
void LockInBothOrders() {
  absl::Mutex a;
  absl::Mutex b;
  {
    absl::MutexLock first(&a);
    absl::MutexLock second(&b);
  }
  {
    absl::MutexLock first(&b);
    absl::MutexLock second(&a);
  }
}

TEST(SkipMutexDeadlockDetection, LockOrderInversionNoLongerAborts) {
  SkipMutexDeadlockDetection();
  LockInBothOrders();
  SkipMutexDeadlockDetection();  // again: harmless
  LockInBothOrders();
}

}  // namespace
}  // namespace varscope
