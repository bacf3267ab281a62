// The in-memory variable table: every variable's metadata and bytes, loaded
// from Storage at start-up and written through to it on every change.
#ifndef VARSCOPE_SERVER_TABLE_VARIABLE_TABLE_H_
#define VARSCOPE_SERVER_TABLE_VARIABLE_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/names.h"
#include "common/tensor.h"
#include "common/variable_ops.h"
#include "server/base/metrics.h"
#include "server/storage/storage.h"
#include "server/table/applied_updates.h"
#include "server/table/batch_update.h"
#include "server/table/dirty_set.h"
#include "server/table/durability.h"
#include "server/table/get_variable_plan.h"
#include "server/table/intents.h"
#include "server/table/optimizers.h"
#include "server/table/variable.h"
#include "server/table/write_behind.h"
#include "varscope/v1/admin_service.pb.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

struct TableOptions {
  // The largest variable (or part of a partitioned variable), in bytes.
  // Default: 4 GiB.
  int64_t max_variable_bytes = int64_t{4} << 30;
  // Target size of a variable's chunks in the store; chunks hold whole rows
  // of the first axis. Default: 1 MiB.
  int64_t chunk_bytes = int64_t{1} << 20;
  // Listing page size when a request gives none, and the largest allowed.
  // Default: 1000 and 10000.
  int32_t default_page_size = 1000;
  int32_t max_page_size = 10000;
  // When changes reach the store (see Durability). Default: wal.
  Durability durability;
  // Called with false when a store write (or interval flush) fails while
  // the store took writes, and with true when one succeeds again after
  // that: the calls alternate, starting with false. It runs on the thread
  // that wrote, with a table lock held: it must be quick and must not call
  // the table. Default: none.
  std::function<void(bool writable)> on_store_writable;
};

// Thread-safe. Reads never touch the store. Updates to one variable are
// applied in order; updates to different variables run in parallel. In the
// wal and sync durability modes every change is in the store before it is
// visible to readers and before the call returns; in the interval mode a
// background thread writes what changed every interval, as of one moment.
// A failed store write changes nothing: the change fails with the store's
// error (RESOURCE_EXHAUSTED when the disk is full, UNAVAILABLE for other I/O
// errors) and what it touched is rewritten before the next change. In the
// interval mode, while the last flush failed, changes fail with its error.
// The similar names a NOT_FOUND lists come from a bounded search of an index
// of names with a lock of its own, so that it never holds up other calls.
//
// The table itself is the name index with its reservations (mu_) and the
// near-match index (names_mu_); each variable has its own locks (see
// TableVariable), get_variable's decisions are in get_variable_plan.h, the
// steps of a batch without the table in batch_update.h, and when changes
// reach the store is WriteBehind's (write_behind.h).
class VariableTable {
 public:
  // Loads every variable from `storage`, which must outlive the table.
  // Returns the store's error (DATA_LOSS for a damaged store).
  static absl::StatusOr<std::unique_ptr<VariableTable>> Load(
      const TableOptions& options, Storage* storage);

  VariableTable(const VariableTable&) = delete;
  VariableTable& operator=(const VariableTable&) = delete;
  // Stops the interval flusher and writes what is pending (Flush), logging
  // an error if that fails.
  ~VariableTable() = default;

  // Writes every change that is not in the store yet (in the interval mode,
  // the changes since the last flush; else, after a failed write, the
  // rewrite of what it touched), in one store write of the table as of one
  // moment. OK if nothing is pending; else the store's error, and the
  // changes stay pending.
  absl::Status Flush() { return write_behind_->Flush(); }

  // Whether a change started now may wait for an fsync, a pause or the
  // rewrite after a failed store write (see WriteBehind::ChangesMayWait).
  bool ChangesMayWait() const { return write_behind_->ChangesMayWait(); }

  // Runs `copy` while no change reaches the store, after writing what is
  // pending, and returns what the table held then: every variable's
  // version, their number and bytes, and the sequence `copy` returns.
  // Changes wait meanwhile: `copy` should be short (a checkpoint of a store
  // whose memtables were just flushed). Errors: Flush's, then `copy`'s.
  absl::StatusOr<StoreSummary> CopyStore(
      const std::function<absl::StatusOr<uint64_t>()>& copy)
      ABSL_LOCKS_EXCLUDED(mu_);

  // TensorFlow's get_variable for one full name and reuse mode (DESIGN.md
  // §1). Creation is atomic: concurrent callers for one name see one
  // variable, and exactly one of them gets created=true. Errors:
  // INVALID_ARGUMENT (bad name, dtype, shape, initializer, partitioner,
  // collections; shape or dtype mismatch), ALREADY_EXISTS (CREATE of an
  // existing name), NOT_FOUND (REUSE of a missing name; the message lists
  // similar names), FAILED_PRECONDITION (in every mode, when only some parts
  // of the partitioned variable `name` exist: it is never created again over
  // them), RESOURCE_EXHAUSTED (over max_variable_bytes), store errors.
  absl::StatusOr<v1::GetVariableResponse> GetVariable(
      const v1::GetVariableRequest& request);

  // The variable's value and version. NOT_FOUND (with similar names) if
  // missing.
  absl::StatusOr<ReadResult> Read(absl::string_view name) const;

  // A variable's published bytes, shared without a copy: they never change
  // while referenced.
  struct SharedValue {
    std::shared_ptr<const std::string> bytes;
    int64_t version = 0;
    DType dtype = v1::DT_INVALID;
    std::vector<int64_t> dims;
  };
  // As Read, without copying the bytes.
  absl::StatusOr<SharedValue> ReadShared(absl::string_view name) const;

  // The variables' names, values and versions (shared as ReadShared's) as of
  // one moment, in name order: every update of a concurrent BatchUpdate or
  // none is visible. NOT_FOUND if a name is missing.
  absl::StatusOr<std::vector<std::pair<std::string, SharedValue>>> BatchRead(
      const v1::BatchReadRequest& request) const;

  // Rows of a variable by index (first axis). INVALID_ARGUMENT for a scalar
  // variable or an index out of range.
  absl::StatusOr<v1::GatherResponse> Gather(
      const v1::GatherRequest& request) const;

  // Applies the updates in order, all or nothing, in one store write:
  // assign, assign_add, scatter (add sums duplicate indices; update: the last
  // wins) and optimizer steps (dense, or sparse with IndexedSlices semantics;
  // slot variables created on demand, with their initial values, before the
  // batch is checked: they stay if it fails, as TensorFlow's slots exist once
  // apply_gradients is built). Errors change nothing else:
  // INVALID_ARGUMENT for a bad name, dtype, shape, index or optimizer;
  // ABORTED on a failed version check; NOT_FOUND for a missing variable;
  // store errors.
  //
  // With an id (client, sequence), the batch is applied exactly once: a
  // repeat of an applied id returns the first result with duplicate=true
  // and changes nothing (see AppliedUpdates). Its intent (the other shards'
  // parts of a spanning step) is stored in the same store write, and the
  // client's intents below its complete_below are forgotten in it;
  // INVALID_ARGUMENT for a bad intent (Intents::Check), nothing applied.
  absl::StatusOr<v1::BatchUpdateResponse> BatchUpdate(
      v1::BatchUpdateRequest request);
  // The server's exactly-once records, of batches and of embedding
  // variables' updates alike (a client numbers all its updates with one
  // sequence), so that a re-shard moves them all.
  AppliedUpdates& applied() { return applied_; }

  // The intents the store keeps (shared with the embedding calls, which
  // store theirs with their own writes).
  Intents& intents() { return intents_; }
  const Intents& intents() const { return intents_; }
  // Forgets the intent of `id`, durably as the durability mode says.
  // Returns whether it was kept; store errors.
  absl::StatusOr<bool> ForgetIntent(const v1::UpdateId& id);

  // One page of the names under a scope, in name order: every variable when
  // recursive, else the direct child variables and child scopes.
  absl::StatusOr<v1::ListVariablesResponse> List(
      const v1::ListVariablesRequest& request) const;

  // The variable's metadata. NOT_FOUND (with similar names) if missing.
  absl::StatusOr<v1::VariableInfo> Stat(absl::string_view name) const;

  // Deletes `name` and, when recursive, every variable under `name/`, in one
  // atomic store write. Returns how many were deleted; NOT_FOUND (with
  // similar names) if none; FAILED_PRECONDITION, deleting nothing, if that
  // would take some but not all parts of a partitioned variable, or the same
  // optimizer slot of some but not all of its parts.
  absl::StatusOr<int64_t> Delete(absl::string_view name, bool recursive);

  // Renames `old_name` and every variable under `old_name/` to the same names
  // under `new_name`, in one atomic store write; parts of a partitioned
  // variable keep pointing at their (renamed) whole. Returns how many were
  // renamed. NOT_FOUND if nothing is named so, ALREADY_EXISTS if a new name
  // is taken, INVALID_ARGUMENT for a bad name or a move into itself,
  // FAILED_PRECONDITION as Delete's; nothing is renamed on error.
  absl::StatusOr<int64_t> Rename(absl::string_view old_name,
                                 absl::string_view new_name);

  // Re-sharding (AdminService): variables moved verbatim between shards.
  //
  // The variables `names` as stored now (metadata with their version, and
  // bytes) and, when `with_applied`, every exactly-once record. NOT_FOUND
  // for a missing name, FAILED_PRECONDITION for an embedding variable (its
  // rows live in its embedding table).
  absl::StatusOr<v1::ExportVariablesResponse> Export(
      const v1::ExportVariablesRequest& request);
  // Stores each variable of `request` that the table lacks, as given, and
  // the exactly-once records it lacks, in one store write; variables it
  // holds (or is creating) stay as they are. INVALID_ARGUMENT, storing
  // nothing, for a bad name, dtype, shape, chunk size or id, bytes that do
  // not fit the shape, or an embedding variable; the store's errors.
  absl::StatusOr<v1::InstallVariablesResponse> Install(
      const v1::InstallVariablesRequest& request);
  // Deletes those of `names` the table holds, in one store write, without
  // Delete's checks of wholes; returns how many.
  absl::StatusOr<int64_t> Remove(const std::vector<std::string>& names);

  struct Totals {
    int64_t variables = 0;
    int64_t bytes = 0;
    int64_t embedding_variables = 0;
  };
  // How many dense variables the table holds and their bytes, and how many
  // embedding variables (whose rows live in their embedding tables).
  Totals GetTotals() const;

  // What the table did since it loaded, for monitoring. Thread-safe.
  // With the store writes of pending changes (FlushCounters).
  struct Counters : FlushCounters {
    // Updates (of batches) applied, and batches answered from their first
    // result (exactly-once repeats).
    metrics::Counter updates_applied;
    metrics::Counter duplicates_skipped;
  };
  const Counters& counters() const { return counters_; }

  // Runs `hook` in every near-match search (of a NOT_FOUND) after it has
  // taken its candidates, while it holds no lock. REQUIRES: no call is in
  // flight.
  void SetNearMatchesHookForTest(std::function<void()> hook) {
    near_matches_hook_ = std::move(hook);
  }

 private:
  using Variable = TableVariable;
  struct Plan;
  struct Selection;

  explicit VariableTable(const TableOptions& options);

  // The variable called `name`, or NOT_FOUND listing similar names.
  absl::StatusOr<std::shared_ptr<Variable>> Find(absl::string_view name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // `status`, its message followed by NearMatches(name) if it is NOT_FOUND.
  absl::Status WithNearMatches(absl::Status status,
                               absl::string_view name) const
      ABSL_LOCKS_EXCLUDED(mu_, names_mu_);
  // ` Variables named 'leaf' exist at: ...` and similar names, or "". Holds
  // names_mu_ only to copy a bounded set of candidates, and mu_ not at all.
  std::string NearMatches(absl::string_view name) const
      ABSL_LOCKS_EXCLUDED(mu_, names_mu_);
  // Adds the name of `var` (and of its whole, for a part) to names_, or
  // removes them.
  void IndexNames(const Variable& var, bool add) ABSL_LOCKS_EXCLUDED(names_mu_);
  // The pending structural change blocking any of `names`, if any.
  std::shared_ptr<absl::Notification> Busy(
      const std::vector<std::string>& names) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Picks `name` and, when recursive, every variable under `name/`, plus
  // (for a rename) their new names from `rename`, once no structural change
  // on any of them is in flight, and reserves them all in busy_. NOT_FOUND
  // (with similar names) if nothing is picked; else Pick's errors.
  absl::Status Select(
      absl::string_view name, bool recursive,
      const std::function<std::string(const std::string&)>& rename,
      Selection* selection) ABSL_LOCKS_EXCLUDED(mu_);
  // One attempt of Select: reserves the selection, or sets `wait` to the
  // change in flight on one of its names. NOT_FOUND if nothing is picked
  // (without similar names), ALREADY_EXISTS if a new name is taken,
  // FAILED_PRECONDITION (see CheckWholes).
  absl::Status Pick(
      absl::string_view name, bool recursive,
      const std::function<std::string(const std::string&)>& rename,
      Selection* selection, std::shared_ptr<absl::Notification>* wait)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FAILED_PRECONDITION, naming the command that takes the whole, if
  // `selection` takes some but not all parts of a partitioned variable, or
  // the same optimizer slot of some but not all of its parts: that would
  // leave the whole incomplete.
  absl::Status CheckWholes(const Selection& selection, bool rename) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Deletes the selected variables in one store write, then releases them.
  absl::Status DeleteSelected(Selection& selection) ABSL_LOCKS_EXCLUDED(mu_);
  // Releases the selection's reservations and wakes their waiters.
  void Release(Selection& selection) ABSL_LOCKS_EXCLUDED(mu_);
  // Marks the selection's variables deleted and removes them from vars_,
  // putting moved[i], if given, under the selection's targets[i].
  // REQUIRES: their write locks are held.
  void Retire(Selection& selection,
              std::vector<std::shared_ptr<Variable>> moved)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Creates the variables `plan` reserved, then releases them.
  absl::StatusOr<v1::GetVariableResponse> Create(Plan& plan);
  // The variable of `part` (moved out) with its initial value.
  absl::StatusOr<std::shared_ptr<Variable>> NewVariable(
      const Plan& plan, CreationPlan::Part& part, int64_t seed,
      const v1::Initializer& stored_init, int64_t now) const;

  // BatchUpdate without the exactly-once check; records the id, if any, in
  // the same store write.
  absl::StatusOr<v1::BatchUpdateResponse> ApplyBatch(
      v1::BatchUpdateRequest request);
  // The steps of ApplyBatch (see batch_update.h for those without the
  // table). Every variable the updates involve, by name: theirs, their
  // optimizers' slots (created on demand as TensorFlow's optimizers do) and
  // inputs; NOT_FOUND (with similar names) for a missing one.
  using Involved = std::map<std::string, std::shared_ptr<Variable>>;
  absl::StatusOr<Involved> Involve(const std::vector<BatchOp>& ops);
  // Their published state and private copies. NOT_FOUND for one deleted
  // since Involve. REQUIRES: their write_mu is held.
  static absl::StatusOr<WorkingSet> ReadLocked(const Involved& involved);
  // Makes the touched variables' new versions durable in one store write
  // (with the batch's exactly-once record), then publishes them all at
  // once. Returns the batch's reply; the store's errors.
  absl::StatusOr<v1::BatchUpdateResponse> CommitBatch(
      const v1::BatchUpdateRequest& request, const std::vector<BatchOp>& ops,
      WorkingSet& working);
  // Creates the optimizer's slot variables of `var` that are missing.
  absl::Status EnsureSlots(const Variable& var, const OptimizerStep& optimizer);

  // The published state of the variables `dirty` names, for a flush.
  PublishedState ReadPublished(const DirtySet& dirty) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const TableOptions options_;
  AppliedUpdates applied_;
  Intents intents_;
  Counters counters_;

  mutable absl::Mutex mu_;
  VariableMap vars_ ABSL_GUARDED_BY(mu_);
  // Names with a creation or deletion in flight; waiters block on the
  // notification, then look again.
  absl::flat_hash_map<std::string, std::shared_ptr<absl::Notification>> busy_
      ABSL_GUARDED_BY(mu_);

  // The names of vars_ and of the wholes of its parts, for NearMatches: a
  // lock of its own so that a search never holds mu_.
  mutable absl::Mutex names_mu_ ABSL_ACQUIRED_AFTER(mu_);
  NameIndex names_ ABSL_GUARDED_BY(names_mu_);
  std::function<void()> near_matches_hook_;

  // Last: destroyed first, with its final flush, while what it reads lives.
  std::unique_ptr<WriteBehind> write_behind_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_VARIABLE_TABLE_H_
