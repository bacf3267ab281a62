#include "server/base/executor.h"

#include <utility>

namespace varscope::server {

Executor::Executor(int threads, int64_t max_queued) : max_queued_(max_queued) {
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

Executor::~Executor() {
  std::deque<Task> cancelled;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    cancelled = std::exchange(tasks_, {});
  }
  for (Task& task : cancelled) task.cancel();
  for (std::thread& thread : threads_) thread.join();
}

bool Executor::Submit(std::function<void()> run, std::function<void()> cancel) {
  {
    absl::MutexLock l(&mu_);
    if (!stopping_) {
      if (static_cast<int64_t>(tasks_.size()) >= max_queued_) return false;
      tasks_.push_back({std::move(run), std::move(cancel)});
      return true;
    }
  }
  cancel();
  return true;
}

int64_t Executor::queued() const {
  absl::MutexLock l(&mu_);
  return static_cast<int64_t>(tasks_.size());
}

void Executor::Work() {
  for (;;) {
    Task task;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(this, &Executor::HasWork));
      if (stopping_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task.run();
  }
}

}  // namespace varscope::server
