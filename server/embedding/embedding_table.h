// Embedding variables' rows: hash tables from int64 keys to rows of float32
// values, with admission by frequency, eviction by global-step TTL and, under
// a memory budget, cold rows kept only in the store and read through.
#ifndef VARSCOPE_SERVER_EMBEDDING_EMBEDDING_TABLE_H_
#define VARSCOPE_SERVER_EMBEDDING_EMBEDDING_TABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/types/span.h"
#include "server/storage/storage.h"
#include "server/table/durability.h"
#include "varscope/v1/storage.pb.h"
#include "varscope/v1/tensor.pb.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server::embedding {

struct EmbeddingOptions {
  // The bytes the rows of every embedding table may hold in memory (the
  // pages holding rows and slots, and their hash indexes' capacity); rows
  // beyond it live only in the store. Callers that would add rows wait while
  // the tables are over 110% of it. Default: 0, no budget (every row in
  // memory).
  int64_t memory_budget = 0;
  // When updates reach the store (see Durability). Default: wal.
  Durability durability;
  // How often the background thread writes the frequencies and last steps
  // that lookups changed, evicts and (under a budget) moves rows out of
  // memory. Default: 1 s (100 ms under a budget).
  absl::Duration maintenance_interval = absl::Seconds(1);
};

// One step of an optimizer on n values: `var[i]` and each slot's [i] change
// by `grad[i]` (OptimizerStep::ApplyElements for float32).
using ApplyFn = absl::FunctionRef<void(
    int64_t n, float* var, absl::Span<float* const> slots, const float* grad)>;

// A slot an optimizer keeps per row: its name (as the optimizer names its
// slot variables) and the value a new row's slot starts at.
struct RowSlot {
  std::string name;
  float initial = 0;
};

// The optimizer slots of some rows: values[s] holds slot slots[s] of each
// row in turn (rows x dim).
struct SlotValues {
  std::vector<RowSlot> slots;
  std::vector<std::vector<float>> values;
};

// One stored row as Export returns it.
struct ExportedRows {
  std::vector<int64_t> keys;
  std::vector<float> values;  // keys.size() x dim
  std::vector<int64_t> frequencies;
  std::vector<int64_t> last_steps;
  SlotValues slots;  // when asked for
  bool done = false;
};

// Adds records (an exactly-once record) to the store write of an update.
using ExtraRecords = std::function<void(StorageBatch&)>;

class EmbeddingStore;

// The rows of one embedding variable. Thread-safe. Lookups of rows in
// memory take one of 32 stripe locks per key for the copy only; updates of
// one table are applied one at a time, each as one store write of the rows
// it touched (wal, sync: before it returns and before readers see it;
// interval: at the next interval) that it makes visible stripe by stripe.
// Lookups change only frequencies and last steps, written by the background
// thread (so a crash may lose the last second of them, never an update).
// Eviction, write-back and moving rows out of memory run in the background,
// one stripe at a time; they hold up only lookups of keys that are not in
// memory, for one small store write.
class EmbeddingTable {
 public:
  EmbeddingTable(const EmbeddingTable&) = delete;
  EmbeddingTable& operator=(const EmbeddingTable&) = delete;

  int64_t dim() const { return dim_; }
  const v1::EmbeddingOptions& options() const { return options_; }

  // Copies the rows of `keys` into `out` (keys.size() x dim): a stored
  // row, else the key's initial row. Unless read_only, counts a lookup of
  // each key at `global_step` (absent: the current step): a key reaching
  // filter_freq is stored with its initial row (and the slots rows have, at
  // their initial values). Errors: the store's (a
  // cold row could not be read); `out` is then unspecified and nothing
  // changed.
  absl::Status Lookup(absl::Span<const int64_t> keys,
                      std::optional<int64_t> global_step, bool read_only,
                      float* out);

  struct ApplyResult {
    int64_t applied = 0;
    int64_t filtered = 0;
  };
  // One optimizer step: duplicate keys' gradients (keys.size() x dim, all
  // finite) are summed, then `apply` runs on each admitted key's row and
  // its `slots` (created at their initial values); keys not admitted yet
  // are counted and left alone. Writes the rows and `extra` in one store
  // write. Errors: the store's, and nothing changed.
  // `extra` gets the result to record.
  absl::StatusOr<ApplyResult> Apply(
      absl::Span<const int64_t> keys, const float* gradients,
      const std::vector<RowSlot>& slots, ApplyFn apply,
      std::optional<int64_t> global_step,
      const std::function<void(const ApplyResult&, StorageBatch&)>& extra);

  // Stores rows as given (values keys.size() x dim; empty frequencies or
  // last_steps: filter_freq, the current step; `slots` for each key, adding
  // the slots the table lacks; other slots keep a replaced row's values or
  // start at their initial values), replacing any, then deletes the rows of
  // `remove`, with `extra`, in one store write. Returns how many rows of
  // `remove` were stored (`extra` gets it too). Errors: the store's, and
  // nothing changed.
  absl::StatusOr<int64_t> Import(
      absl::Span<const int64_t> keys, const float* values,
      absl::Span<const int64_t> frequencies,
      absl::Span<const int64_t> last_steps, const SlotValues& slots,
      absl::Span<const int64_t> remove,
      const std::function<void(int64_t removed, StorageBatch&)>& extra);

  // Up to `limit` stored rows after `start_after` in key order (each row's
  // value, and with `with_slots` its slots), after writing what lookups
  // changed. A concurrent update may or may not be seen. Errors: the
  // store's.
  absl::StatusOr<ExportedRows> Export(std::optional<int64_t> start_after,
                                      int64_t limit, bool with_slots);

  // Keys stored, in memory and on disk, counters and the `hottest` most
  // frequent keys in memory.
  v1::EmbeddingStats Stats(int hottest) const;

  // Test-only: runs one round of write-back, eviction and budget
  // enforcement now.
  absl::Status MaintainForTest();

 private:
  friend class EmbeddingStore;
  struct Stripe;

  EmbeddingTable(EmbeddingStore* store, const v1::VariableInfo& info);

  // Loads the rows from the store (into memory while under the budget).
  absl::Status Load();
  Stripe& StripeOf(int64_t key) const;
  // The key's initial row into `out` (dim values).
  void InitialRow(int64_t key, float* out) const;
  // Reads the cold rows among `keys` (those not in memory) into memory, one
  // MultiGet. REQUIRES: disk_mu_ held shared.
  absl::Status ReadThrough(absl::Span<const int64_t> keys)
      ABSL_SHARED_LOCKS_REQUIRED(disk_mu_);
  // The step of a call given `global_step`; advances the table's step.
  int64_t StepOf(std::optional<int64_t> global_step, bool update);
  std::string RowKey(int64_t key) const;
  std::string EncodeRow(int64_t freq, int64_t last_step, const float* values,
                        size_t floats) const;
  // Stores a row in `stripe` (replacing any) and accounts for it.
  // REQUIRES: stripe.mu held.
  void StoreRow(Stripe& stripe, int64_t key, int64_t freq, int64_t last_step,
                bool dirty, const float* values, size_t floats);
  // Writes the dirty rows (and the exactly-once records waiting for them) in
  // one store write, in key order.
  absl::Status WriteBack() ABSL_LOCKS_EXCLUDED(disk_mu_);
  // Removes the rows not touched in steps_to_live steps.
  absl::Status Evict() ABSL_LOCKS_EXCLUDED(disk_mu_);
  // Moves clean rows not referenced since the clock hand last passed them
  // out of memory until the store's bytes are under `target`.
  absl::Status Spill(int64_t target) ABSL_LOCKS_EXCLUDED(disk_mu_);
  // Adds `delta` to the bytes of rows in memory (the table's and the
  // store's).
  void Account(int64_t delta);
  // Adds a slot to slots_ (and initials_).
  void AddSlot(const RowSlot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // A row of the width rows have now: the value (unset), then each slot at
  // its initial value.
  std::vector<float> NewRowSlots() const;
  // The slot indices of `slots`, adding new ones to slots_ (and their
  // record to `batch`).
  std::vector<int> SlotIndices(const std::vector<RowSlot>& slots,
                               StorageBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);

  EmbeddingStore* const store_;
  const uint64_t table_id_;
  const v1::EmbeddingOptions options_;
  const int64_t dim_;
  const v1::Initializer initializer_;
  const std::unique_ptr<Stripe[]> stripes_;

  // Held shared by whatever reads or writes rows in the store and makes
  // rows in memory agree with it (read-through, updates, write-back);
  // exclusively by eviction and spilling, which remove rows from both.
  mutable absl::Mutex disk_mu_;
  // One update at a time.
  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(disk_mu_);
  // The slots rows hold, in order after the value.
  std::vector<RowSlot> slots_ ABSL_GUARDED_BY(apply_mu_);
  std::atomic<int> num_slots_{0};
  // slots_'s initial values, for the rows lookups admit (which do not take
  // apply_mu_).
  mutable absl::Mutex initials_mu_ ABSL_ACQUIRED_AFTER(apply_mu_);
  std::vector<float> initials_ ABSL_GUARDED_BY(initials_mu_);

  std::atomic<int64_t> step_{0};
  std::atomic<int64_t> cold_keys_{0};
  std::atomic<int64_t> resident_keys_{0};
  std::atomic<int64_t> resident_bytes_{0};
  std::atomic<int64_t> candidates_{0};
  std::atomic<int64_t> admitted_{0};
  std::atomic<int64_t> filtered_{0};
  std::atomic<int64_t> evicted_{0};
};

// Every embedding table of a server, and the background thread that
// maintains them. Thread-safe.
class EmbeddingStore {
 public:
  // `storage` must outlive the store. Starts the background thread.
  static std::unique_ptr<EmbeddingStore> Open(const EmbeddingOptions& options,
                                              Storage* storage);
  // Stops the background thread, then writes what lookups changed (errors
  // go to stderr).
  ~EmbeddingStore();

  // The table of the embedding variable `info` (info.embedding() is set),
  // loaded from the store at its first use. Errors: the store's.
  absl::StatusOr<std::shared_ptr<EmbeddingTable>> Get(
      const v1::VariableInfo& info);

  // Deletes the stored rows of every table whose id is not in `live` (the
  // tables of embedding variables deleted before). Call at start-up, before
  // any Get. Errors: the store's.
  absl::Status DropOthers(const std::vector<uint64_t>& live);

  // The bytes rows take in memory, over every table.
  int64_t ResidentBytes() const { return resident_bytes_.load(); }
  const EmbeddingOptions& options() const { return options_; }

  // Test-only: runs one maintenance round now.
  absl::Status MaintainForTest();

 private:
  friend class EmbeddingTable;
  EmbeddingStore(const EmbeddingOptions& options, Storage* storage);

  // One round: write-back, eviction, budget.
  absl::Status Maintain();
  void Loop();
  // While rows in memory are over 110% of the budget, runs maintenance
  // rounds; returns once under it, or when a round freed nothing.
  void WaitForRoom();
  std::vector<std::shared_ptr<EmbeddingTable>> Tables() const;

  const EmbeddingOptions options_;
  Storage* const storage_;
  std::atomic<int64_t> resident_bytes_{0};

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<EmbeddingTable>> tables_
      ABSL_GUARDED_BY(mu_);
  // One maintenance round at a time.
  absl::Mutex maintain_mu_;
  // Callers waiting for room (see WaitForRoom) wait on room_mu_.
  absl::Mutex room_mu_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace varscope::server::embedding

#endif  // VARSCOPE_SERVER_EMBEDDING_EMBEDDING_TABLE_H_
