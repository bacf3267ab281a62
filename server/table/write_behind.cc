#include "server/table/write_behind.h"

#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "server/base/log.h"
#include "server/table/working_copy.h"

namespace varscope::server {

// What is not in the store yet, and the outcome of the last attempt to
// write it. Thread-safe: one lock, never held while calling out.
class WriteBehind::Pending {
 public:
  explicit Pending(std::function<void(bool writable)> on_writable)
      : on_writable_(std::move(on_writable)) {}

  // Interval mode: adds a change to the next flush; the last flush's error,
  // adding nothing, while it failed.
  absl::Status Add(DirtySet dirty) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    VS_RETURN_IF_ERROR(flush_error_);
    dirty_.Merge(std::move(dirty));
    return absl::OkStatus();
  }

  // wal, sync: the store write of a change failed; what it touched is to be
  // rewritten before any other change.
  void AddFailed(DirtySet dirty) ABSL_LOCKS_EXCLUDED(mu_) {
    dirty.MarkFailed();
    absl::MutexLock l(&mu_);
    dirty_.Merge(std::move(dirty));
    rewrite_pending_.store(true);
    ReportWritable(false);
  }

  DirtySet Take() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    return std::exchange(dirty_, DirtySet());
  }

  // Puts back what Take took, whose write failed: it happened before what
  // is pending now.
  void Restore(DirtySet taken) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    taken.Merge(std::exchange(dirty_, DirtySet()));
    dirty_ = std::move(taken);
  }

  // Records the outcome of writing what was pending: in the interval mode
  // changes fail while it is an error; an OK ends a pending rewrite.
  absl::Status Record(absl::Status status, FlushCounters& counters)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    flush_error_ = status;
    ReportWritable(status.ok());
    if (status.ok()) {
      rewrite_pending_.store(false);
      counters.all_written_micros = absl::ToUnixMicros(absl::Now());
    }
    return status;
  }

  // wal, sync: a store write failed and what it touched is not rewritten
  // yet.
  bool rewrite_pending() const { return rewrite_pending_.load(); }

 private:
  // Tells on_writable_ when the store's state changed.
  void ReportWritable(bool writable) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (std::exchange(writable_, writable) == writable) return;
    if (on_writable_) on_writable_(writable);
  }

  const std::function<void(bool writable)> on_writable_;
  absl::Mutex mu_;
  DirtySet dirty_ ABSL_GUARDED_BY(mu_);
  absl::Status flush_error_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> rewrite_pending_{false};
  // What ReportWritable last reported.
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
};

namespace {

// The store write of `dirty`, with the published state `present`. Raises
// the row record bytes of the variables it records rows of.
StorageBatch BatchOf(const DirtySet& dirty, PublishedState& present) {
  StorageBatch batch;
  for (const auto& [name, changed] : dirty.variables) {
    auto it = present.find(name);
    if (changed.reset || it == present.end()) batch.DeleteVariable(name);
    if (it == present.end()) continue;
    PublishedVariable& published = it->second;
    if (published.data == nullptr) {
      published.var->row_record_bytes +=
          static_cast<int64_t>(published.rows.size());
      batch.PutRows(published.meta.info(),
                    RowBytes(published.var->dims, published.var->dtype),
                    std::move(published.rows));
      continue;
    }
    if (!changed.reset && published.var->row_record_bytes != 0) {
      batch.DeleteRows(name);
    }
    batch.PutVariable(published.meta, *published.data);
  }
  for (const auto& [client_id, client] : dirty.clients) {
    for (const auto& [sequence, result] : client.records) {
      if (result.has_value()) {
        batch.PutApplied(client_id, sequence, *result);
      } else {
        batch.DeleteApplied(client_id, sequence);
      }
    }
    for (const auto& [sequence, intent] : client.intents) {
      if (intent != nullptr) {
        batch.PutIntent(client_id, sequence, *intent);
      } else {
        batch.DeleteIntent(client_id, sequence);
      }
    }
  }
  return batch;
}

}  // namespace

WriteBehind::WriteBehind(const Durability& durability, Storage* storage,
                         ReadPublished read, FlushCounters* counters,
                         std::function<void(bool writable)> on_writable)
    : durability_(durability),
      storage_(storage),
      read_(std::move(read)),
      counters_(counters),
      pending_(std::make_unique<Pending>(std::move(on_writable))) {
  counters_->all_written_micros = absl::ToUnixMicros(absl::Now());
  if (durability_.mode == Durability::Mode::kInterval) {
    flusher_ = std::thread([this] { FlushEveryInterval(); });
  }
}

WriteBehind::~WriteBehind() {
  if (flusher_.joinable()) {
    stop_flusher_.Notify();
    flusher_.join();
  }
  if (const absl::Status status = Flush(); !status.ok()) {
    log::Log(log::Level::kError, "final_write_failed",
             {{"code", absl::StatusCodeToString(status.code())},
              {"error", status.message()},
              {"lost", "changes since the last successful store write"}});
  }
}

absl::Status WriteBehind::Commit(
    const std::function<void(StorageBatch&)>& write, DirtySet dirty,
    const std::function<void()>& publish) {
  if (durability_.mode == Durability::Mode::kInterval) {
    absl::ReaderMutexLock c(&commit_mu_);
    VS_RETURN_IF_ERROR(pending_->Add(std::move(dirty)));
    publish();
    return absl::OkStatus();
  }
  StorageBatch batch;
  write(batch);
  for (;;) {
    if (pending_->rewrite_pending()) VS_RETURN_IF_ERROR(Flush());
    absl::ReaderMutexLock c(&commit_mu_);
    if (pending_->rewrite_pending()) continue;  // a write failed meanwhile
    const absl::Status status = storage_->Write(batch);
    if (!status.ok()) {
      pending_->AddFailed(std::move(dirty));
      return status;
    }
    publish();
    return absl::OkStatus();
  }
}

WriteBehind::Captured WriteBehind::Capture() {
  Captured captured;
  captured.dirty = pending_->Take();
  captured.present = read_(captured.dirty);
  return captured;
}

absl::Status WriteBehind::Write(Captured& captured) {
  if (captured.dirty.empty())
    return pending_->Record(absl::OkStatus(), *counters_);
  const StorageBatch batch = BatchOf(captured.dirty, captured.present);
  const absl::Time start = absl::Now();
  absl::Status status = storage_->Recover();
  if (status.ok()) status = storage_->Write(batch);
  counters_->flushes.Add();
  counters_->flush_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (!status.ok()) {
    counters_->flush_failures.Add();
    pending_->Restore(std::move(captured.dirty));
  } else {
    for (const auto& [name, published] : captured.present) {
      if (published.data != nullptr) published.var->row_record_bytes = 0;
    }
  }
  return pending_->Record(status, *counters_);
}

absl::Status WriteBehind::Flush() {
  absl::MutexLock f(&flush_mu_);
  if (durability_.mode == Durability::Mode::kInterval) {
    Captured captured;
    {
      absl::MutexLock c(&commit_mu_);
      captured = Capture();
    }
    // Changes go on meanwhile: what was captured stays unchanged (published
    // buffers are copied on write while shared).
    return Write(captured);
  }
  if (!pending_->rewrite_pending()) return absl::OkStatus();
  // No change may reach the store before the rewrite.
  absl::MutexLock c(&commit_mu_);
  Captured captured = Capture();
  return Write(captured);
}

bool WriteBehind::RewritePending() const { return pending_->rewrite_pending(); }

absl::Status WriteBehind::WhilePaused(
    const std::function<absl::Status()>& body) {
  pausing_.fetch_add(1, std::memory_order_relaxed);
  const absl::Cleanup paused = [this] {
    pausing_.fetch_sub(1, std::memory_order_relaxed);
  };
  VS_RETURN_IF_ERROR(Flush());  // most of what is pending, without a pause
  absl::MutexLock f(&flush_mu_);
  absl::MutexLock c(&commit_mu_);
  Captured captured = Capture();
  VS_RETURN_IF_ERROR(Write(captured));
  return body();
}

void WriteBehind::FlushEveryInterval() {
  const absl::Duration interval = durability_.interval;
  bool failing = false;
  while (!stop_flusher_.WaitForNotificationWithTimeout(interval)) {
    const absl::Status status = Flush();
    if (!status.ok() && !failing) {
      // Updates fail until a flush succeeds; it is retried every interval.
      log::Log(log::Level::kError, "flush_failed",
               {{"code", absl::StatusCodeToString(status.code())},
                {"error", status.message()},
                {"retry_seconds", absl::ToDoubleSeconds(interval)}});
    } else if (status.ok() && failing) {
      log::Log(log::Level::kInfo, "flush_recovered", {});
    }
    failing = !status.ok();
  }
}

}  // namespace varscope::server
