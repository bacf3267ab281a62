// Intents of steps split over shards: the other shards' parts of a step
// that its keeper (the first shard of its span) keeps until the step's
// client says the step is complete everywhere, so that a recovery pass can
// complete the step if the client dies first (see
// BatchUpdateRequest.intent and AdminService.ListIntents).
#ifndef VARSCOPE_SERVER_TABLE_INTENTS_H_
#define VARSCOPE_SERVER_TABLE_INTENTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/repeated_field.h"
#include "server/storage/storage.h"
#include "server/table/dirty_set.h"
#include "varscope/v1/admin_service.pb.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// The intents a store keeps, in memory as in the store. Thread-safe. A
// change that stores or forgets intents goes in two steps: Prepare says
// what to add to the change's store write, Commit takes it in once that
// write succeeded.
class Intents {
 public:
  // Loads the intents kept in `storage`. DATA_LOSS for a damaged record.
  absl::Status Load(Storage& storage) ABSL_LOCKS_EXCLUDED(mu_);

  // Checks the intent of a change request with id `id` (nullptr: none) and
  // span `span`: OK when it carries none, else INVALID_ARGUMENT with what
  // is wrong (no id; a part for a shard not in the span, for the keeper
  // span[0] or for a shard twice; a part that holds no request, does not
  // parse, or is not of the same step: another id or span, or an intent of
  // its own). Reads each part's id and span only, not its tensors: the
  // part's shard checks the rest when the part is sent there.
  static absl::Status Check(
      const v1::UpdateId* id,
      const google::protobuf::RepeatedField<int32_t>& span,
      const google::protobuf::RepeatedPtrField<v1::IntentPart>& parts);
  template <typename Request>
  static absl::Status Check(const Request& request) {
    return Check(request.has_id() ? &request.id() : nullptr,
                 request.span_shards(), request.intent());
  }

  // A serialized v1::Intent, shared by the change that stores it, the
  // interval mode's pending writes and the kept intents (never copied).
  using Serialized = std::shared_ptr<const std::string>;

  // What a change writes for the intents of its client: its own intent, and
  // deletions of the client's intents below its complete_below (but those
  // in its keep_intents).
  struct Change {
    std::string client_id;
    std::optional<std::pair<int64_t, Serialized>> put;
    std::vector<int64_t> forget;

    bool empty() const { return !put.has_value() && forget.empty(); }
    void Write(StorageBatch& batch) const;
    void AddTo(DirtySet& dirty) const;
  };
  // The Change of a checked request applied under its id (see Check).
  template <typename Request>
  Change Prepare(const Request& request) ABSL_LOCKS_EXCLUDED(mu_) {
    if (!request.has_id()) return {};
    return Prepare(request.id(), request.intent(), request.complete_below(),
                   request.keep_intents());
  }
  // The Change that forgets the intent of `id` (empty if none is kept).
  Change Forget(const v1::UpdateId& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes in a Change whose store write succeeded.
  void Commit(const Change& change) ABSL_LOCKS_EXCLUDED(mu_);

  // How many intents are kept.
  int64_t Kept() const ABSL_LOCKS_EXCLUDED(mu_);

  // The intents at least `min_age_micros` old at `now_micros`, oldest
  // first, and how many are kept in all. DATA_LOSS for a damaged one.
  absl::StatusOr<v1::ListIntentsResponse> List(int64_t min_age_micros,
                                               int64_t now_micros)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Change Prepare(
      const v1::UpdateId& id,
      const google::protobuf::RepeatedPtrField<v1::IntentPart>& parts,
      int64_t complete_below,
      const google::protobuf::RepeatedField<int64_t>& keep)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  // Client id -> sequence -> the intent.
  absl::flat_hash_map<std::string, absl::btree_map<int64_t, Serialized>>
      clients_ ABSL_GUARDED_BY(mu_);
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_INTENTS_H_
