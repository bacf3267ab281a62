// varscoped's place in a cluster: configured by flags or TF_CONFIG, recorded
// in the store at its first start, and kept (a later start configured
// otherwise is refused), so that a store never changes shards under the
// variables it holds.
#ifndef VARSCOPE_SERVER_SERVICE_CLUSTER_IDENTITY_H_
#define VARSCOPE_SERVER_SERVICE_CLUSTER_IDENTITY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/storage/storage.h"
#include "varscope/v1/cluster.pb.h"

namespace varscope::server {

// varscoped's cluster flags.
struct ClusterOptions {
  // --cluster: every shard's HOST:PORT, in cluster order. Default: empty
  // (not given).
  std::vector<std::string> shards;
  // --shard-index: this server's position in `shards`. Default: -1 (not
  // given).
  int64_t shard_index = -1;
  // --cluster-id. Default: "" (derived from `shards`, see
  // DerivedClusterId).
  std::string cluster_id;
};

// The identity `options` configure; nullopt when they give none of the
// flags. INVALID_ARGUMENT naming the flag if --shard-index or --cluster-id
// comes without --cluster or --cluster without --shard-index, if the index
// is not a position in the list, if the list has an empty or repeated
// entry, or if the id is not 1 to 64 letters, digits, '.', '_' or '-'.
absl::StatusOr<std::optional<v1::ClusterIdentity>> ConfiguredIdentity(
    const ClusterOptions& options);

// The cluster options of a parameter server task's TF_CONFIG (`cluster.ps`
// and `task.index`); nullopt when `tf_config` is empty or its task is not of
// type "ps". INVALID_ARGUMENT if it does not parse (see ParseTfConfig).
absl::StatusOr<std::optional<ClusterOptions>> ClusterOptionsFromTfConfig(
    absl::string_view tf_config);

// The identity `storage` serves with: the recorded one, else `configured`
// (or a standalone server's, when nullopt), which is then recorded.
// FAILED_PRECONDITION naming both if `configured` differs from the recorded
// one; the store's errors otherwise (nothing recorded).
absl::StatusOr<v1::ClusterIdentity> SettleIdentity(
    Storage& storage, const std::string& data_dir,
    const std::optional<v1::ClusterIdentity>& configured);

// The identity a running server serves with: settled at start, changed by
// a re-shard (AdminService.SetClusterIdentity). Thread-safe.
class ClusterPlace {
 public:
  explicit ClusterPlace(v1::ClusterIdentity identity)
      : identity_(std::move(identity)) {}

  v1::ClusterIdentity Get() const ABSL_LOCKS_EXCLUDED(mu_);

  // Records `identity` in `storage` (fsynced), then serves with it; returns
  // the identity it replaces. INVALID_ARGUMENT if `identity` has no shards,
  // a shard count other than their number, an index outside them (unless
  // removed), or an id that is not 1 to 64 letters, digits, '.', '_' or
  // '-'; the store's error otherwise (nothing changes).
  absl::StatusOr<v1::ClusterIdentity> Change(Storage& storage,
                                             v1::ClusterIdentity identity)
      ABSL_LOCKS_EXCLUDED(mu_);

  // OK if a call from a client routing for cluster `client_cluster_id` may
  // run here: one that sent no id (a client of one address, an older
  // client), or this cluster's id on a store still in it. Otherwise
  // FAILED_PRECONDITION starting with kStaleClusterPrefix, naming this
  // store's place.
  absl::Status Admit(absl::string_view client_cluster_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  v1::ClusterIdentity identity_ ABSL_GUARDED_BY(mu_);
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_CLUSTER_IDENTITY_H_
