#include "common/mutex_checks.h"

#include "absl/synchronization/mutex.h"

namespace varscope {

void SkipMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace varscope
