// Synchronous replicas, TensorFlow's SyncReplicasOptimizer model: gradients
// for a variable set are accumulated until enough workers contributed for the
// current global step, then averaged and applied once, together with the
// global step's increment, as one atomic batch update.
#ifndef VARSCOPE_SERVER_TABLE_SYNC_REPLICAS_H_
#define VARSCOPE_SERVER_TABLE_SYNC_REPLICAS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/base/metrics.h"
#include "server/table/variable_table.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// The global step variable a request names: `name`, or "global_step" for "".
std::string GlobalStepName(const std::string& name);

// Thread-safe. Accumulators live in memory (as TensorFlow's do): a restart
// forgets contributions of a step that had not applied yet. A shard without
// the global step also records each step it applies in the step's write (an
// exactly-once id), so that it applies no step twice across restarts.
class SyncReplicas {
 public:
  // `table` must outlive this object.
  explicit SyncReplicas(VariableTable* table) : table_(table) {}

  SyncReplicas(const SyncReplicas&) = delete;
  SyncReplicas& operator=(const SyncReplicas&) = delete;

  // Counts one worker's gradients for `request.step` (see SyncApplyRequest).
  // A part of a contribution that spans shards (SyncShards) is counted as
  // that message describes: without the global step, staleness is judged by
  // the steps this object applied; with it, the step also waits for the
  // other shards to be reported applied. Errors change nothing:
  // INVALID_ARGUMENT for a bad request or SyncShards, gradients that do not
  // fit their variables, or a contribution that does not match the step's
  // others (variables, optimizer, replicas_to_aggregate, other shards);
  // NOT_FOUND for a missing variable or global step; the table's errors when
  // the step applies (the step's contributions are then dropped).
  absl::StatusOr<v1::SyncApplyResponse> Apply(
      const v1::SyncApplyRequest& request);

  // Called once with the global step's value when it reaches the awaited
  // step, or with an error.
  using WaitCallback = std::function<void(absl::StatusOr<int64_t>)>;

  // Calls `done` when the global step `global_step` is at least `step`: at
  // once (from this call) if it is already, or a missing variable fails;
  // else when Apply applies a step that reaches it, or with UNAVAILABLE on
  // Shutdown. Returns an id for Cancel; 0 when `done` was already called.
  int64_t Wait(const std::string& global_step, int64_t step, WaitCallback done);

  // Forgets waiter `id`. Returns true if it was still waiting: then `done`
  // is never called.
  bool Cancel(int64_t id);

  // Fails every waiter, now and later, with UNAVAILABLE.
  void Shutdown();

  // Test-only: how many callers wait (see Wait).
  int WaitersForTest() {
    absl::MutexLock l(&waiters_mu_);
    return static_cast<int>(waiters_.size());
  }
  // What happened since start, for monitoring. Thread-safe.
  struct Counters {
    // Contributions for a step the global step had passed (dropped).
    metrics::Counter stale_dropped;
    // Waits that could not be answered at once.
    metrics::Counter waits;
  };
  const Counters& counters() const { return counters_; }
  // How many waiters are waiting now.
  int64_t Waiting() ABSL_LOCKS_EXCLUDED(waiters_mu_);

 private:
  struct Accumulator;
  struct Waiter {
    std::string global_step;
    int64_t step;
    WaitCallback done;
  };

  // The global step's value. INVALID_ARGUMENT unless it is a scalar int64.
  absl::StatusOr<int64_t> GlobalStep(const std::string& name) const;
  // Calls the waiters on `global_step` that `value` satisfies.
  void Notify(const std::string& global_step, int64_t value);

  VariableTable* const table_;
  Counters counters_;

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Accumulator>, std::less<>> accumulators_
      ABSL_GUARDED_BY(mu_);

  absl::Mutex waiters_mu_;
  absl::flat_hash_map<int64_t, Waiter> waiters_ ABSL_GUARDED_BY(waiters_mu_);
  int64_t next_waiter_ ABSL_GUARDED_BY(waiters_mu_) = 1;
  bool shut_down_ ABSL_GUARDED_BY(waiters_mu_) = false;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_SYNC_REPLICAS_H_
