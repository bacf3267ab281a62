// A fixed set of threads that run queued tasks, so that gRPC reactions hand
// off work that may block (a store write, an fsync, a wait) and return.
#ifndef VARSCOPE_SERVER_BASE_EXECUTOR_H_
#define VARSCOPE_SERVER_BASE_EXECUTOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace varscope::server {

// Thread-safe. Tasks start in the order they were submitted, up to
// `threads` at a time; at most `max_queued` wait for a thread.
class Executor {
 public:
  // REQUIRES: threads >= 1, max_queued >= 1.
  Executor(int threads, int64_t max_queued);
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  // Calls `cancel` of every task still queued instead of its `run` (from
  // the destructor's thread), then waits for the running tasks.
  ~Executor();

  // Queues `run`; if the executor is being destroyed first, calls `cancel`
  // instead (at once, if it is already).
  // Returns false, calling neither, if `max_queued` tasks wait already: the
  // caller answers for the task at once.
  bool Submit(std::function<void()> run, std::function<void()> cancel);

  // How many tasks wait for a thread now.
  int64_t queued() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  void Work() ABSL_LOCKS_EXCLUDED(mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !tasks_.empty();
  }

  const int64_t max_queued_;
  mutable absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_BASE_EXECUTOR_H_
