// The executor that takes blocking work off gRPC reactions, and Offload.
#include "server/base/executor.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/offload.h"

namespace varscope::server {
namespace {

using ::varscope::testing::StatusIs;

// Runs on an executor's thread until released.
struct Blocker {
  absl::Notification started;
  absl::Notification release;
  std::function<void()> Task() {
    return [this] {
      started.Notify();
      release.WaitForNotification();
    };
  }
};

TEST(Executor, RunsTasksInOrderOnItsThreads) {
  std::vector<int> ran;
  absl::Mutex mu;
  absl::Notification last;
  {
    Executor executor(1, 10);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(executor.Submit(
          [&, i] {
            absl::MutexLock l(&mu);
            ran.push_back(i);
            if (i == 4) last.Notify();
          },
          [] { FAIL() << "cancelled"; }));
    }
    last.WaitForNotification();
  }
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Executor, RefusesPastItsBoundAndCancelsWhatWaitsAtDestruction) {
  Blocker blocker;
  absl::Notification cancelled;
  auto executor = std::make_unique<Executor>(1, 1);
  ASSERT_TRUE(executor->Submit(blocker.Task(), [] {}));
  blocker.started.WaitForNotification();
  ASSERT_TRUE(
      executor->Submit([] { FAIL() << "ran"; }, [&] { cancelled.Notify(); }));
  EXPECT_EQ(executor->queued(), 1);
  EXPECT_FALSE(
      executor->Submit([] { FAIL() << "ran"; }, [] { FAIL() << "cancelled"; }));
  // The destructor cancels the queued task while the running one blocks,
  // then waits for it.
  std::thread destroy([&] { executor.reset(); });
  cancelled.WaitForNotification();
  blocker.release.Notify();
  destroy.join();
}

TEST(Offload, FinishesWithTheTasksStatus) {
  Executor executor(2, 10);
  absl::Notification done;
  absl::Status finished;
  Offload(
      executor, [] { return absl::AbortedError("from the task"); },
      [&](const absl::Status& status) {
        finished = status;
        done.Notify();
      },
      "10 calls");
  done.WaitForNotification();
  EXPECT_THAT(finished, StatusIs(absl::StatusCode::kAborted, "from the task"));
}

TEST(Offload, AFullQueueFinishesAtOnceWithResourceExhausted) {
  Executor executor(1, 1);
  Blocker blocker;
  ASSERT_TRUE(executor.Submit(blocker.Task(), [] {}));
  blocker.started.WaitForNotification();
  ASSERT_TRUE(executor.Submit([] {}, [] {}));  // fills the queue
  absl::Status finished;
  Offload(
      executor, [] { return absl::OkStatus(); },
      [&](const absl::Status& status) { finished = status; }, "1 calls");
  EXPECT_THAT(finished,
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "The server is busy: 1 calls wait already; retry "
                       "later"));
  blocker.release.Notify();
}

}  // namespace
}  // namespace varscope::server
