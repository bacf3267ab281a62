// When a table's changes reach the store: the commit and flush pipeline of
// the durability modes (see Durability).
#ifndef VARSCOPE_SERVER_TABLE_WRITE_BEHIND_H_
#define VARSCOPE_SERVER_TABLE_WRITE_BEHIND_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/base/metrics.h"
#include "server/storage/storage.h"
#include "server/table/dirty_set.h"
#include "server/table/durability.h"
#include "server/table/variable.h"
#include "varscope/v1/storage.pb.h"

namespace varscope::server {

// Store writes of pending changes, for monitoring. Thread-safe.
struct FlushCounters {
  // Writes of pending changes (interval flushes, rewrites after a failed
  // write), those that failed, and their durations.
  metrics::Counter flushes;
  metrics::Counter flush_failures;
  metrics::Histogram flush_seconds{metrics::LatencyBuckets()};
  // When the store last held every change made before (a Flush that
  // succeeded; the load).
  std::atomic<int64_t> all_written_micros{0};
};

// A variable as the table publishes it: what a flush writes for it.
struct PublishedVariable {
  std::shared_ptr<TableVariable> var;
  v1::StoredVariable meta;
  // The whole contents, when the flush writes it whole; else null, and
  // `rows` holds its changed rows as StorageBatch::PutRows takes them.
  std::shared_ptr<const std::string> data;
  std::string rows;
};
// By name.
using PublishedState = std::map<std::string, PublishedVariable, std::less<>>;

// Thread-safe. Makes each change durable as the durability mode says before
// (wal, sync) or after (interval) the table publishes it, and rewrites what
// a failed store write touched before the next change. Locks: commit_mu_
// (shared by each change from its store write to its publication,
// exclusive to take the pending changes as of one moment) and flush_mu_
// (one flush at a time); the pending changes have a lock of their own.
class WriteBehind {
 public:
  // The published state of the variables `dirty` names (those that exist).
  // Called with no change between its store write and its publication.
  using ReadPublished = std::function<PublishedState(const DirtySet& dirty)>;

  // `storage`, `read` and `counters` must outlive this object. In the
  // interval mode a thread flushes every interval until destruction.
  // `on_writable` (may be empty) is told when the store stops or starts
  // taking writes again (see TableOptions::on_store_writable).
  WriteBehind(const Durability& durability, Storage* storage,
              ReadPublished read, FlushCounters* counters,
              std::function<void(bool writable)> on_writable);
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;
  // Stops the interval flusher and writes what is pending (Flush), logging
  // an error if that fails.
  ~WriteBehind();

  // Makes a change durable, then makes it visible with `publish`, which
  // cannot fail. wal, sync: adds the change's records to a store write with
  // `write`, and publishes only if that write succeeds; if it fails, `dirty`
  // (what the change touched) is rewritten before the next change and the
  // store's error is returned. interval: publishes at once and adds `dirty`
  // to the next flush; fails, publishing nothing, with the last flush's
  // error while it failed.
  absl::Status Commit(const std::function<void(StorageBatch&)>& write,
                      DirtySet dirty, const std::function<void()>& publish)
      ABSL_LOCKS_EXCLUDED(commit_mu_);

  // Writes every change that is not in the store yet (interval: those since
  // the last flush; else, after a failed write, the rewrite of what it
  // touched) in one store write of the table as of one moment. OK if
  // nothing is pending; else the store's error, and the changes stay
  // pending.
  absl::Status Flush() ABSL_LOCKS_EXCLUDED(flush_mu_, commit_mu_);

  // Writes what is pending, then runs `body` while no change reaches the
  // store (changes wait). Errors: Flush's, then `body`'s.
  absl::Status WhilePaused(const std::function<absl::Status()>& body)
      ABSL_LOCKS_EXCLUDED(flush_mu_, commit_mu_);

  // Whether a change started now may wait for something slow: an fsync
  // (the sync mode), a pause (WhilePaused) or the rewrite after a failed
  // store write. A hint: a pause may start right after it said no.
  bool ChangesMayWait() const {
    return durability_.mode == Durability::Mode::kSync ||
           pausing_.load(std::memory_order_relaxed) > 0 || RewritePending();
  }

 private:
  class Pending;
  struct Captured {
    DirtySet dirty;
    PublishedState present;
  };

  // Takes the pending changes and the published state they name.
  Captured Capture() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Writes them; on failure they are pending again. Records the outcome
  // (see Pending::Record).
  absl::Status Write(Captured& captured)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(flush_mu_);
  // The interval flusher's loop.
  void FlushEveryInterval();
  bool RewritePending() const;

  const Durability durability_;
  Storage* const storage_;
  const ReadPublished read_;
  FlushCounters* const counters_;
  const std::unique_ptr<Pending> pending_;

  absl::Mutex flush_mu_ ABSL_ACQUIRED_BEFORE(commit_mu_);
  absl::Mutex commit_mu_;
  // How many WhilePaused calls are under way.
  std::atomic<int> pausing_{0};
  absl::Notification stop_flusher_;
  std::thread flusher_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_WRITE_BEHIND_H_
