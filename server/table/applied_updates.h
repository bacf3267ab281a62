// Exactly-once updates: which identified updates were applied, and with
// what result.
#ifndef VARSCOPE_SERVER_TABLE_APPLIED_UPDATES_H_
#define VARSCOPE_SERVER_TABLE_APPLIED_UPDATES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/storage/storage.h"
#include "varscope/v1/admin_service.pb.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// A client numbers its updates 1, 2, 3, ... under its id; the server keeps
// the result of the last `window` sequences of each client, in the same
// store write as the update itself. Thread-safe.
class AppliedUpdates {
 public:
  // Default window: 4096 sequences per client.
  explicit AppliedUpdates(int64_t window = 4096) : window_(window) {}

  // Loads the records kept in `storage`.
  absl::Status Load(Storage& storage);

  // Before applying the update `id`: returns its recorded result if it was
  // applied (a retry), else nullopt, after marking it in flight (a
  // concurrent duplicate waits for it); the caller then applies it and calls
  // End. INVALID_ARGUMENT for a bad id, FAILED_PRECONDITION for a sequence
  // older than the window.
  absl::StatusOr<std::optional<v1::BatchUpdateResponse>> Begin(
      const v1::UpdateId& id);

  // What to store, in the same store write as the update, to record that
  // `id` was applied with `result`: the serialized result (values over 64
  // KiB in all are not kept: a retry gets versions), and the sequences of
  // that client's records that fall out of the window (usually one; single
  // deletes, not ever-growing range deletions, which RocksDB handles
  // badly).
  struct Record {
    std::string result;
    std::vector<int64_t> forget;
  };
  Record ToRecord(const v1::UpdateId& id,
                  const v1::BatchUpdateResponse& result);

  // Whether `id` was applied, as far as the records tell: true also for a
  // sequence older than the window (its client went on long since).
  bool Applied(const v1::UpdateId& id);

  // Ends the update Begin let through; `applied` is its result if its store
  // write succeeded, else nullptr.
  void End(const v1::UpdateId& id, const v1::BatchUpdateResponse* applied);

  // Every record kept, for a re-shard to carry to other shards.
  std::vector<v1::AppliedRecord> Export() ABSL_LOCKS_EXCLUDED(mu_);
  // Of `records`, those not kept here and within their client's window:
  // what to store before Add. INVALID_ARGUMENT for a bad id.
  absl::StatusOr<std::vector<v1::AppliedRecord>> Missing(
      const google::protobuf::RepeatedPtrField<v1::AppliedRecord>& records)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Keeps `records` (Missing's, once stored), so that a retry of one of
  // them is answered as a repeat.
  void Add(const std::vector<v1::AppliedRecord>& records)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Client {
    absl::btree_map<int64_t, std::string> applied;  // sequence -> result
    absl::flat_hash_set<int64_t> in_flight;
  };
  std::string Serialize(const v1::BatchUpdateResponse& result) const;
  // Drops the records of `client` that fell out of the window.
  void Trim(Client& client) const;

  const int64_t window_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Client> clients_ ABSL_GUARDED_BY(mu_);
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_APPLIED_UPDATES_H_
